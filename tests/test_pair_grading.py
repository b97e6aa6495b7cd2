"""Grading a pairwise study into a judge run (core.studies.pair_grading, core.studies.pair_runs): both orders graded
in one batched generation, stored and linked (run_judgments and run_second_orders), resumed and regraded like a
single-response study, and the run's verdicts; the real tiny model through the real transformers back-end, and
the scripted pair judge where only the flow matters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.store import Store
from core.studies import ADMIN, ANNOTATOR, PermissionDenied, Studies, StudyInputError, StudySpec, User
from core.studies.grading import FAILED, grade_study, select_items
from core.studies.pair_runs import PairVerdict, attach_pairs, pair_links, pair_verdicts
from core.studies.pairs import RESPONSE_A, RESPONSE_B
from tests.pair_fakes import PairJudge, always_slot, answer

PASSWORD = "correct horse battery"


def pair_study(studies: Studies, admin: User, items: int, *, max_new_tokens: int = 64) -> int:
    study = studies.create_study(admin, StudySpec(name="Kindness", pass_criteria="Which reply is kinder?", rubric="",
                                                  mode="pairwise", judge_settings={"max_new_tokens": max_new_tokens}))
    for number in range(items):
        studies.add_item(admin, study.id, {"USER INPUT": f"Question {number}", RESPONSE_A: f"Kind answer {number}",
                                           RESPONSE_B: f"Curt answer {number}"}, external_id=f"p{number}")
    return study.id


def by_item(rule: Callable[[int, str, str], str]) -> Callable[[str, str], str]:
    """A pair judge rule that knows the item's number (the digits ending each response)."""
    def wrapped(first: str, second: str) -> str:
        return rule(int(first.rsplit(" ", 1)[1]), first, second)
    return wrapped


def kind_or_slot_1(number: int, first: str, second: str) -> str:
    """Even items: prefer the kind answer (consistent, "A"); odd items: always slot 1 (inconsistent)."""
    score = (0 if first.startswith("Kind") else 1) if number % 2 == 0 else 0
    return answer("- Kindness.", [first if score == 0 else second], score)


def test_both_orders_are_graded_stored_and_linked(studies: Studies, ada: User, store: Store) -> None:
    study_id = pair_study(studies, ada, 4)
    judge = PairJudge(by_item(kind_or_slot_1))
    result = grade_study(studies, ada, study_id, judge, store, batch_size=3)
    assert (result.total, result.graded, result.failed_to_parse, result.errors) == (4, 4, 0, ())
    assert judge.batches == [6, 2]  # both orders of a batch's pairs in one generation
    assert result.run is not None and result.run_created
    verdicts = pair_verdicts(studies, ada, study_id)
    items = studies.list_items(ada, study_id)
    assert [verdicts[item.id].verdict for item in items] == ["A", "inconsistent", "A", "inconsistent"]
    assert [verdicts[item.id].slot for item in items] == [None, 1, None, 1]
    links = pair_links(studies, ada, study_id, result.run.id)
    for item in items:
        ab, ba = links[item.id]
        assert item.judgment_id == ab and ba is not None and ab != ba  # the first run's (A, B) order on the item
        first, second = store.get_judgment(ab), store.get_judgment(ba)
        assert first is not None and second is not None
        assert (first.repro["pairwise"]["order"], second.repro["pairwise"]["order"]) == ("A,B", "B,A")
        assert verdicts[item.id] == PairVerdict(item.id, verdicts[item.id].verdict, verdicts[item.id].slot,
                                                first.score, second.score, ab, ba)
    assert studies.runs.list_runs(ada, study_id)[0].graded == 4


def test_a_second_call_resumes_and_a_new_run_keeps_the_first(studies: Studies, ada: User, store: Store) -> None:
    study_id = pair_study(studies, ada, 3)
    judge = PairJudge(by_item(kind_or_slot_1))
    calls = iter([False, True])  # the first batch runs, then the run is cancelled
    first = grade_study(studies, ada, study_id, judge, store, batch_size=2, should_stop=lambda: next(calls, True))
    assert first.cancelled and first.graded == 2 and first.pending == 1
    chosen, skipped = select_items(studies, ada, study_id, store)
    assert (len(chosen), skipped) == (1, 2)
    rest = grade_study(studies, ada, study_id, judge, store)
    assert (rest.total, rest.skipped, rest.graded, rest.run_created) == (1, 2, 1, False)
    before = pair_verdicts(studies, ada, study_id)
    other = grade_study(studies, ada, study_id, PairJudge(always_slot(2)), store, new_run="Slot two")
    assert other.run is not None and other.graded == 3 and other.run_created
    assert pair_verdicts(studies, ada, study_id) == before  # the first run is untouched
    second = pair_verdicts(studies, ada, study_id, "Slot two")
    assert {v.verdict for v in second.values()} == {"inconsistent"} and {v.slot for v in second.values()} == {2}


def test_an_item_with_one_order_only_is_not_graded_yet(studies: Studies, ada: User, store: Store) -> None:
    study_id = pair_study(studies, ada, 1)
    item = studies.list_items(ada, study_id)[0]
    grade_study(studies, ada, study_id, PairJudge(by_item(kind_or_slot_1)), store)
    run = studies.runs.list_runs(ada, study_id)[0]
    with store.session("write") as session:  # the (B, A) order lost, as if it had never been stored
        from core.studies.runs import RunSecondOrderRow

        session.query(RunSecondOrderRow).delete()
    assert pair_verdicts(studies, ada, study_id)[item.id].verdict is None
    assert [i.id for i in select_items(studies, ada, study_id, store, run_id=run.id)[0]] == [item.id]


def test_verdicts_are_for_admins_and_pairwise_studies_only(studies: Studies, ada: User) -> None:
    study_id = pair_study(studies, ada, 1)
    ann = studies.create_user("ann", PASSWORD, role=ANNOTATOR)
    with pytest.raises(PermissionDenied):
        pair_verdicts(studies, ann, study_id)
    with pytest.raises(PermissionDenied):
        pair_links(studies, ann, study_id)
    reviewer = studies.create_user("rev", PASSWORD, role="reviewer")
    with pytest.raises(PermissionDenied):
        pair_verdicts(studies, reviewer, study_id)
    run = studies.runs.create(ada, study_id, None, {"backend": "scripted"})
    item = studies.list_items(ada, study_id)[0]
    with pytest.raises(PermissionDenied):
        attach_pairs(studies, ann, run.id, [(item.id, 1, 2)])
    assert {v.verdict for v in pair_verdicts(studies, ada, study_id).values()} == {None}  # no run yet
    single = studies.create_study(ada, StudySpec(name="s", pass_criteria="p", rubric="0: no\n1: yes"))
    with pytest.raises(StudyInputError, match="not a pairwise study"):
        pair_verdicts(studies, ada, single.id)
    with pytest.raises(StudyInputError, match="no judge run"):
        pair_verdicts(studies, ada, study_id, 999)


# --- the real tiny model through the real transformers back-end -------------------------------------
# An untrained tiny Phi-3: its answers carry no readable score, so every pair is undecided (never a made-up
# verdict); both orders are still stored with the real record, counted as failed, and "failed" regrades them.


def test_the_real_tiny_model_grades_a_pair_study_in_both_orders(untrained_model_dir: Path, studies: Studies,
                                                                ada: User, store: Store) -> None:
    from core.judge import create_backend

    judge = create_backend("transformers", model=str(untrained_model_dir), quantization="none", device="cpu")
    study_id = pair_study(studies, ada, 2, max_new_tokens=8)
    result = grade_study(studies, ada, study_id, judge, store)
    assert (result.total, result.graded, result.failed_to_parse, result.errors, result.halted) == (2, 0, 2, (), None)
    verdicts = pair_verdicts(studies, ada, study_id)
    assert {v.verdict for v in verdicts.values()} == {"undecided"}
    for verdict in verdicts.values():
        for judgment_id, order in ((verdict.judgment_ab, "A,B"), (verdict.judgment_ba, "B,A")):
            stored = store.get_judgment(judgment_id or 0)
            assert stored is not None and stored.status == "failed" and stored.repro["backend"] == "transformers"
            assert stored.repro["pairwise"]["order"] == order and stored.repro["max_new_tokens"] == 8
    assert grade_study(studies, ada, study_id, judge, store).total == 0  # graded: both orders are stored
    again = grade_study(studies, ada, study_id, judge, store, which=FAILED)
    assert (again.total, again.failed_to_parse, again.run_created) == (2, 2, False)
    regraded = pair_verdicts(studies, ada, study_id)
    assert all(regraded[i].judgment_ab != verdicts[i].judgment_ab for i in verdicts)  # replaced in its own run


def test_grade_study_grades_a_pair_study_as_a_process(tmp_path: Path, untrained_model_dir: Path) -> None:
    import subprocess
    import sys

    from tests.test_grade_cli import cli_env

    db = tmp_path / "app.db"
    with Store.from_path(db) as store:
        studies = Studies(store, password_cost=16)
        ada = studies.create_user("ada", PASSWORD, role=ADMIN)
        study_id = pair_study(studies, ada, 2, max_new_tokens=8)
    done = subprocess.run(
        [sys.executable, "-m", "core", "grade-study", str(study_id), "--as", "ada", "--db", f"sqlite:///{db}",
         "--backend", "transformers", "--model", str(untrained_model_dir), "--quantization", "none",
         "--device", "cpu"],
        cwd=Path(__file__).resolve().parents[1], env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr  # done, but the untrained model's answers have no score
    assert "2 failed to parse" in done.stderr and "regrade them with --failed" in done.stderr
    with Store.from_path(db) as store:
        studies = Studies(store, password_cost=16)
        ada = studies.get_user("ada")
        assert ada is not None
        links = pair_links(studies, ada, study_id)
        assert len(links) == 2 and all(None not in pair for pair in links.values())


def test_a_perturbation_changes_both_orders_requests(studies: Studies, ada: User, store: Store) -> None:
    """grade_study's `prepare` (the robustness audit's perturbations) applies to each order's request."""
    from dataclasses import replace

    from core.grading import GradeRequest
    from core.studies.types import Item

    study_id = pair_study(studies, ada, 1)
    seen: list[str] = []

    def shout(item: Item, request: GradeRequest) -> GradeRequest:
        seen.append(request.fields["MODEL OUTPUT 1"])
        return replace(request, fields={tag: text.upper() for tag, text in request.fields.items()})

    judge = PairJudge(by_item(lambda number, first, second: answer("- ok.", [first], 0 if "KIND" in first else 1)))
    result = grade_study(studies, ada, study_id, judge, store, new_run="Shouted", prepare=shout)
    assert seen == ["Kind answer 0", "Curt answer 0"] and result.graded == 1
    verdict = next(iter(pair_verdicts(studies, ada, study_id, "Shouted").values()))
    stored = store.get_judgment(verdict.judgment_ab or 0)
    assert verdict.verdict == "A" and stored is not None and stored.fields["MODEL OUTPUT 1"] == "KIND ANSWER 0"
