"""Pairwise studies in core (core.studies.pairs, Studies): creating one, items that must hold both responses, blind
choices recorded in the item's terms with the order they were shown in, ties only where allowed. Migration 8 on
the previous release's database: tests/test_upgrade.py."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from core.pairwise import DEFAULT_PAIR_RUBRIC
from core.store import Store
from core.studies import ANNOTATOR, Studies, StudyInputError, StudySpec, User, pairs
from core.studies.pairs import PAIR_STUDY_TAGS, RESPONSE_A, RESPONSE_B, TIE
from core.studies.publish import export_study, reopen_study

PASSWORD = "correct horse battery"


def pair_study(studies: Studies, admin: User, *, allow_tie: bool = False, items: int = 0) -> int:
    study = studies.create_study(admin, StudySpec(name="Which is kinder", pass_criteria="Which reply is kinder?",
                                                  rubric="", mode="pairwise", allow_tie=allow_tie))
    for number in range(items):
        studies.add_item(admin, study.id, {"USER INPUT": f"Question {number}", RESPONSE_A: f"Kind answer {number}",
                                           RESPONSE_B: f"Curt answer {number}"})
    return study.id


def test_a_pairwise_study_gets_the_pair_tags_and_the_default_rubric(studies: Studies, ada: User) -> None:
    study = studies.get_study(ada, pair_study(studies, ada, allow_tie=True))
    assert study.pairwise and study.mode == "pairwise" and study.allow_tie
    assert study.tags == PAIR_STUDY_TAGS
    assert study.rubric == DEFAULT_PAIR_RUBRIC and study.scale == (0, 1)
    single = studies.create_study(ada, StudySpec(name="s", pass_criteria="p", rubric="0: no\n1: yes", allow_tie=True))
    assert single.mode == "single" and not single.pairwise and not single.allow_tie  # a tie means nothing there


@pytest.mark.parametrize(("spec", "message"), [
    ({"rubric": "1: worse\n2: same\n3: better"}, "0/1 scale"),
    ({"tags": ("USER INPUT", RESPONSE_A)}, "RESPONSE B"),
    ({"mode": "triple"}, "'single' or 'pairwise'"),
])
def test_a_pairwise_study_refuses_what_cannot_be_compared(studies: Studies, ada: User, spec: dict[str, object],
                                                          message: str) -> None:
    fields: dict[str, object] = {"name": "n", "pass_criteria": "p", "rubric": "", "mode": "pairwise", **spec}
    with pytest.raises(StudyInputError, match=message):
        studies.create_study(ada, StudySpec(**fields))  # type: ignore[arg-type]


def test_a_pairwise_item_needs_both_responses(studies: Studies, ada: User, tmp_path: Path) -> None:
    study_id = pair_study(studies, ada)
    with pytest.raises(StudyInputError, match="RESPONSE B is empty"):
        studies.add_item(ada, study_id, {RESPONSE_A: "only one", RESPONSE_B: "  "})
    source = tmp_path / "pairs.csv"
    source.write_text("q,a,b\nWhy?,Because.,Since.\nHow?,Like this.,\n", encoding="utf-8")
    report = studies.import_items(ada, study_id, source, {"USER INPUT": "q", RESPONSE_A: "a", RESPONSE_B: "b"})
    assert report.added == 1
    assert [(error.row, "RESPONSE B is empty" in error.message) for error in report.errors] == [(2, True)]


def test_choices_are_stored_in_item_terms_with_the_order_shown(studies: Studies, ada: User) -> None:
    study_id = pair_study(studies, ada, items=12)
    ann = studies.create_user("ann", PASSWORD, role=ANNOTATOR)
    orders: Counter[str] = Counter()
    while (item := studies.next_item(ann, study_id)) is not None:
        order = studies.pair_order(ann, item.id)
        assert order == studies.pair_order(ann, item.id)  # stable: a reload shows the same sides
        label = studies.submit_choice(ann, item.id, "1", seconds=2.0)
        assert label.shown_order == order and label.choice == order[0]  # slot 1 held the first shown response
        assert label.score == pairs.CHOICES.index(label.choice)
        orders[order] += 1
    assert sum(orders.values()) == 12 and set(orders) == {"AB", "BA"}  # both orders occur
    with pytest.raises(StudyInputError, match="submit_choice"):
        studies.submit(ann, studies.list_items(ada, study_id)[0].id, 1)


def test_a_tie_only_where_the_study_allows_it(studies: Studies, ada: User) -> None:
    strict = pair_study(studies, ada, items=1)
    ann = studies.create_user("ann", PASSWORD, role=ANNOTATOR)
    item = studies.next_item(ann, strict)
    assert item is not None
    with pytest.raises(StudyInputError, match="does not allow a tie"):
        studies.submit_choice(ann, item.id, TIE)
    with pytest.raises(StudyInputError, match="Choose Response 1, Response 2"):
        studies.submit_choice(ann, item.id, "3")
    loose = studies.create_study(ada, StudySpec(name="tie ok", pass_criteria="Which?", rubric="", mode="pairwise",
                                                allow_tie=True))
    added = studies.add_item(ada, loose.id, {RESPONSE_A: "x", RESPONSE_B: "y"})
    tied = studies.submit_choice(ann, added.id, TIE)
    assert (tied.choice, tied.score) == (TIE, 2)
    edited = studies.edit(ann, tied.id, score=0)
    assert (edited.choice, edited.score) == ("A", 0)
    assert studies.history(ann, tied.id)[0].changes["choice"] == (TIE, "A")


def test_single_response_items_still_take_scores(studies: Studies, ada: User) -> None:
    study = studies.create_study(ada, StudySpec(name="s", pass_criteria="p", rubric="0: no\n1: yes"))
    item = studies.add_item(ada, study.id, {"MODEL OUTPUT": "text"})
    ann = studies.create_user("ann", PASSWORD, role=ANNOTATOR)
    with pytest.raises(StudyInputError, match="not in a pairwise study"):
        studies.submit_choice(ann, item.id, "1")
    label = studies.submit(ann, item.id, 1)
    assert (label.choice, label.shown_order) == (None, None)



@pytest.mark.parametrize(("ab", "ba", "verdict", "slot"), [
    (0, 1, "A", None), (1, 0, "B", None), (0, 0, "inconsistent", 1), (1, 1, "inconsistent", 2),
    (None, 0, "undecided", None), (1, None, "undecided", None),
])
def test_the_verdict_of_two_orders(ab: int | None, ba: int | None, verdict: str, slot: int | None) -> None:
    assert pairs.verdict_of(ab, ba) == verdict and pairs.slot_picked(ab, ba) == slot


def test_pair_judgments_stay_hidden_until_labelled(studies: Studies, ada: User, store: Store) -> None:
    study_id = pair_study(studies, ada, items=1)
    item = studies.list_items(ada, study_id)[0]
    assert studies.pair_judgments(ada, item.id) == pairs.PairJudgments(item.id, None, None)  # not graded yet
    from core.studies.grading import grade_study
    from core.studies.pair_runs import pair_verdicts
    from tests.pair_fakes import PairJudge, prefers

    grade_study(studies, ada, study_id, PairJudge(prefers("Kind answer 0")), store)
    verdict = pair_verdicts(studies, ada, study_id)[item.id]
    graded = pairs.PairJudgments(item.id, verdict.judgment_ab, verdict.judgment_ba)
    assert verdict.verdict == "A" and None not in (graded.ab, graded.ba)
    assert studies.pair_judgments(ada, item.id) == graded  # an admin sees both orders
    ann = studies.create_user("ann", PASSWORD, role=ANNOTATOR)
    assert studies.pair_judgments(ann, item.id) == pairs.PairJudgments(item.id, None, None)  # blind until labelled
    studies.submit_choice(ann, item.id, "1")
    assert studies.pair_judgments(ann, item.id) == graded


def test_a_published_pairwise_study_reopens_pairwise_with_its_choices(studies: Studies, ada: User, store: Store,
                                                                     tmp_path: Path) -> None:
    study_id = pair_study(studies, ada, allow_tie=True, items=3)
    ann = studies.create_user("ann", PASSWORD, role=ANNOTATOR)
    for item, slot in zip(studies.list_items(ada, study_id), ("1", "2", TIE), strict=True):
        studies.submit_choice(ann, item.id, slot)
    done = export_study(store, ada, study_id, tmp_path / "out", n_resamples=0, real_names=True)  # labels back to ann
    assert done.report is not None and done.report["mode"] == "pairwise" and done.report["n_labels"] == 3
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "A pairwise study" in card and "Judge position consistency" in card
    reopened = reopen_study(store, ada, tmp_path / "out")
    assert (reopened.mode, reopened.allow_tie, reopened.tags) == ("pairwise", True, PAIR_STUDY_TAGS)

    def choices(study: int) -> list[tuple[str | None, str | None, int]]:
        texts = {item.id: item.fields[RESPONSE_A] for item in studies.list_items(ada, study)}
        return sorted((texts[label.item_id], label.choice, label.shown_order, label.score)  # type: ignore[misc]
                      for label in studies.my_annotations(ann, study))

    assert choices(reopened.id) == choices(study_id)
    assert {choice for _, choice, _, _ in choices(study_id)} >= {TIE}  # type: ignore[misc]
