"""Grading a study's items (core.studies.grading): batches, parse failures, regrading, cancel, blind studies."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.errors import InputError, JudgeError
from core.judge.base import DEFAULT_MAX_NEW_TOKENS, BatchOutcome, Generation, SerialBackend
from core.store import Store
from core.studies import ADMIN, ANNOTATOR, PermissionDenied, Studies, StudyInputError, StudySpec, User
from core.studies.grading import FAILED, StudyGrading, grade_study, summary_line
from tests.conftest import TEACH_CRITERIA, TEACH_FIELDS, TEACH_RUBRIC
from tests.fakes import WELL_FORMED, ScriptedJudge

PASSWORD = "correct horse battery"
GARBLED = "GARBLED"  # an item whose MODEL OUTPUT holds this gets an answer without a score
RUBRIC = "0: The MODEL OUTPUT is not faithful to the CONTEXT.\n1: The MODEL OUTPUT is faithful to the CONTEXT."


class BatchingScriptedJudge(ScriptedJudge):
    """A ScriptedJudge that generates in batches (and never one prompt at a time), recording each batch size.

    Items whose prompt holds GARBLED get an answer that cannot be parsed while `garble` is on; the batch
    numbered `fail_on_batch` (1-based) fails as a whole, like a judge server that went away.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.batches: list[int] = []
        self.garble = True
        self.fail_on_batch: int | None = None

    def generate(self, prompt: str, **kwargs: Any) -> Generation:
        raise AssertionError("a study is graded in batches, never one prompt at a time")

    def generate_batch(self, prompts: Sequence[str], *, scales: Sequence[tuple[int, int] | None],
                       max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> list[BatchOutcome]:
        self.batches.append(len(prompts))
        if self.fail_on_batch == len(self.batches):
            raise JudgeError("Could not reach the judge server (test).")
        outcomes: list[BatchOutcome] = []
        for prompt, scale in zip(prompts, scales, strict=True):
            try:
                self._check(prompt)
            except JudgeError as error:  # this prompt alone (too long)
                outcomes.append(error)
                continue
            text = "I would rather not say." if self.garble and GARBLED in prompt else self.answer
            outcomes.append(replace(self._generation(prompt, scale), text=text))
        return outcomes


def make_study(studies: Studies, admin: User, outputs: Sequence[str], *, blind: bool = True,
               max_new_tokens: int | None = None) -> int:
    settings = {} if max_new_tokens is None else {"max_new_tokens": max_new_tokens}
    study = studies.create_study(admin, StudySpec(name="Capitals", pass_criteria="Is it faithful?", rubric=RUBRIC,
                                                  tags=("CONTEXT", "MODEL OUTPUT"), blind=blind,
                                                  judge_settings=settings))
    for number, output in enumerate(outputs, 1):
        studies.add_item(admin, study.id, {"CONTEXT": "Paris is the capital of France.", "MODEL OUTPUT": output},
                         external_id=f"c{number}")
    return study.id


def outputs(count: int, garbled: Sequence[int] = ()) -> list[str]:
    return [f"Output {n}{' ' + GARBLED if n in garbled else ''}." for n in range(1, count + 1)]


def judgments(studies: Studies, admin: User, study_id: int) -> dict[str | None, int | None]:
    return {item.external_id: item.judgment_id for item in studies.list_items(admin, study_id)}


def test_ungraded_items_are_graded_in_batches_and_parse_failures_are_counted_as_failures(
    studies: Studies, store: Store, ada: User
) -> None:
    study_id = make_study(studies, ada, outputs(5, garbled=[2, 5]))
    judge = BatchingScriptedJudge()
    seen: list[StudyGrading] = []
    result = grade_study(studies, ada, study_id, judge, store, batch_size=2, on_progress=seen.append)

    assert judge.batches == [2, 2, 1]  # the back-end's batch method, more than one row at a time
    assert (result.total, result.graded, result.failed_to_parse, result.errors, result.skipped) == (5, 3, 2, (), 0)
    assert (result.cancelled, result.halted, result.pending, result.batches) == (False, None, 0, 3)
    assert summary_line(result) == "3 graded, 2 failed to parse"
    assert [(s.done, s.graded, s.failed_to_parse) for s in seen] == [(0, 0, 0), (2, 1, 1), (4, 3, 1), (5, 3, 2)]
    # Every item has its judgment attached, the failed ones too (what the model said), with the status that says so.
    attached = judgments(studies, ada, study_id)
    assert all(judgment_id is not None for judgment_id in attached.values())
    statuses = {key: store.get_judgment(value).status for key, value in attached.items()}  # type: ignore[union-attr,arg-type]
    assert statuses == {"c1": "ok", "c2": "failed", "c3": "ok", "c4": "ok", "c5": "failed"}
    assert sorted(result.failed_items) == sorted(i.id for i in studies.list_items(ada, study_id)
                                                 if i.external_id in ("c2", "c5"))

    again = grade_study(studies, ada, study_id, judge, store)  # nothing is ungraded any more
    assert (again.total, again.skipped, again.done, judge.batches) == (0, 5, 0, [2, 2, 1])
    assert summary_line(again) == "0 graded"


def test_regrade_failed_grades_only_the_items_whose_judgment_failed_to_parse(
    studies: Studies, store: Store, ada: User
) -> None:
    study_id = make_study(studies, ada, outputs(4, garbled=[1, 3]))
    judge = BatchingScriptedJudge()
    first = grade_study(studies, ada, study_id, judge, store)
    assert (first.graded, first.failed_to_parse, judge.batches) == (2, 2, [4])
    before = judgments(studies, ada, study_id)

    judge.garble = False  # e.g. the app now runs a judge that answers these
    regraded = grade_study(studies, ada, study_id, judge, store, which=FAILED)
    assert (regraded.total, regraded.skipped, regraded.graded, regraded.failed_to_parse) == (2, 2, 2, 0)
    assert judge.batches == [4, 2]
    after = judgments(studies, ada, study_id)
    assert [key for key in after if after[key] != before[key]] == ["c1", "c3"]  # new judgments for those only
    assert all(store.get_judgment(j).status == "ok" for j in after.values() if j is not None)
    assert grade_study(studies, ada, study_id, judge, store, which=FAILED).total == 0


def test_cancel_is_honoured_between_batches_and_a_later_run_grades_the_rest(
    studies: Studies, store: Store, ada: User
) -> None:
    study_id = make_study(studies, ada, outputs(7))
    judge = BatchingScriptedJudge()
    stop = threading.Event()
    result = grade_study(studies, ada, study_id, judge, store, batch_size=3,
                         on_progress=lambda state: state.done and stop.set(), should_stop=stop.is_set)
    assert (result.cancelled, result.graded, result.pending, result.batches, judge.batches) == (True, 3, 4, 1, [3])
    assert sum(j is not None for j in judgments(studies, ada, study_id).values()) == 3

    rest = grade_study(studies, ada, study_id, judge, store, batch_size=3)
    assert (rest.cancelled, rest.total, rest.skipped, rest.graded, judge.batches) == (False, 4, 3, 4, [3, 3, 1])
    stop.clear()
    assert grade_study(studies, ada, study_id, judge, store, should_stop=lambda: True).cancelled is False  # no work


def test_an_items_own_problem_is_listed_and_a_judge_failure_ends_the_run_keeping_earlier_batches(
    studies: Studies, store: Store, ada: User
) -> None:
    study_id = make_study(studies, ada, ["Short.", "Long " * 400, "Fine.", "Also fine.", "Last."],
                          max_new_tokens=64)
    judge = BatchingScriptedJudge(max_prompt_chars=2_500)
    judge.fail_on_batch = 2
    result = grade_study(studies, ada, study_id, judge, store, batch_size=3)
    assert (result.graded, result.failed_to_parse, result.pending, result.batches) == (2, 0, 2, 1)
    assert [(e.external_id, e.label) for e in result.errors] == [("c2", "'c2'")]
    assert "characters" in result.errors[0].message
    assert result.halted == "Could not reach the judge server (test)."
    assert summary_line(result) == "2 graded, 1 not graded"
    attached = judgments(studies, ada, study_id)
    assert [key for key, value in attached.items() if value is not None] == ["c1", "c3"]
    assert store.get_judgment(attached["c1"]).repro["max_new_tokens"] == 64  # type: ignore[union-attr,arg-type]


class SerialScriptedJudge(BatchingScriptedJudge, SerialBackend):
    """Runs each batch under its own generation lock, as an in-process model does (the contract's rule)."""

    def __init__(self, **options: Any) -> None:
        BatchingScriptedJudge.__init__(self, **options)
        SerialBackend.__init__(self)

    def generate_batch(self, prompts: Sequence[str], **kwargs: Any) -> list[BatchOutcome]:
        with self.generation_lock:
            return super().generate_batch(prompts, **kwargs)


def test_the_judge_is_free_between_two_batches(studies: Studies, store: Store, ada: User) -> None:
    study_id = make_study(studies, ada, outputs(5))
    judge = SerialScriptedJudge()
    free: list[str] = []

    def on_progress(state: object) -> None:  # another user of the model could take its turn here
        taken = judge.generation_lock.acquire(blocking=False)
        free.append(f"{'free' if taken else 'held'} {len(judge.batches)}")
        if taken:
            judge.generation_lock.release()

    grade_study(studies, ada, study_id, judge, store, batch_size=2, on_progress=on_progress)
    assert free == ["free 0", "free 1", "free 2", "free 3"] and judge.batches == [2, 2, 1]
    with pytest.raises(TypeError, match="gate"):  # the caller takes no lock of its own any more
        grade_study(studies, ada, study_id, judge, store, gate=threading.Lock())  # type: ignore[call-arg]


def test_a_blind_studys_judgments_are_attached_and_stay_hidden_from_annotators(
    studies: Studies, store: Store, ada: User
) -> None:
    ann = studies.create_user("ann", PASSWORD, role=ANNOTATOR)
    study_id = make_study(studies, ada, outputs(2), blind=True)
    assert grade_study(studies, ada, study_id, BatchingScriptedJudge(), store).graded == 2
    offered = studies.next_item(ann, study_id)
    assert offered is not None and offered.judgment_id is None
    assert studies.get_item(ann, offered.id).judgment_id is None
    assert studies.get_item(ada, offered.id).judgment_id is not None


def test_only_an_admin_may_grade_and_bad_requests_are_refused_before_grading(
    studies: Studies, store: Store, ada: User
) -> None:
    ann = studies.create_user("ann", PASSWORD, role=ANNOTATOR)
    study_id = make_study(studies, ada, outputs(2))
    judge = BatchingScriptedJudge()
    with pytest.raises(PermissionDenied, match="Only an admin"):
        grade_study(studies, ann, study_id, judge, store)
    with pytest.raises(StudyInputError, match="no study"):
        grade_study(studies, ada, 999, judge, store)
    with pytest.raises(InputError, match="neither"):
        grade_study(studies, ada, study_id, judge, store, which="all")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="at least 1"):
        grade_study(studies, ada, study_id, judge, store, batch_size=0)
    assert judge.batches == [] and all(j is None for j in judgments(studies, ada, study_id).values())


def test_the_tiny_transformers_judge_grades_a_study_in_batches(
    studies: Studies, store: Store, ada: User, trained_judge: Any
) -> None:
    study = studies.create_study(ada, StudySpec(name="Tiny", pass_criteria=TEACH_CRITERIA, rubric=TEACH_RUBRIC,
                                                tags=("CONTEXT", "MODEL OUTPUT"),
                                                judge_settings={"max_new_tokens": 100}))
    taught = studies.add_item(ada, study.id, dict(TEACH_FIELDS), external_id="taught")
    for number, extra in enumerate([" It lies on the Seine.", " Lyon is a city in France." * 2], 1):
        studies.add_item(ada, study.id, {**TEACH_FIELDS, "CONTEXT": TEACH_FIELDS["CONTEXT"] + extra},
                         external_id=f"variant-{number}")
    result = grade_study(studies, ada, study.id, trained_judge, store, batch_size=3)
    assert (result.total, result.done, result.errors, result.halted) == (3, 3, (), None)
    assert result.graded + result.failed_to_parse == 3
    items = {item.external_id: item for item in studies.list_items(ada, study.id)}
    stored = {key: store.get_judgment(item.judgment_id) for key, item in items.items()}  # type: ignore[arg-type]
    assert all(judgment is not None for judgment in stored.values())
    # One batched generation of all three rows, and the taught item gets the taught verdict.
    assert {judgment.repro["decoding"]["batch_size"] for judgment in stored.values()} == {3}  # type: ignore[union-attr]
    assert items["taught"].id == taught.id and stored["taught"].raw_output == WELL_FORMED  # type: ignore[union-attr]
    assert (stored["taught"].status, stored["taught"].score) == ("ok", 1)  # type: ignore[union-attr]


# --- the command line: python -m core grade-study -------------------------------------------------------


def test_grade_study_command_grades_reports_parse_failures_and_regrades_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from core import judge as judge_package
    from core.cli import main

    db = tmp_path / "app.db"
    with Store.from_path(db) as store:
        studies = Studies(store, password_cost=16)
        ada = studies.create_user("ada", PASSWORD, role=ADMIN)
        studies.create_user("ann", PASSWORD, role=ANNOTATOR)
        study_id = make_study(studies, ada, outputs(3, garbled=[2]))
    judge = BatchingScriptedJudge()
    built: list[tuple[str, dict[str, Any]]] = []

    def create_backend(name: str, **options: Any) -> BatchingScriptedJudge:
        built.append((name, options))
        return judge

    monkeypatch.setattr(judge_package, "create_backend", create_backend)
    command = ["grade-study", str(study_id), "--as", "ada", "--db", f"sqlite:///{db}", "--backend", "transformers",
               "--model", str(tmp_path / "judge"), "--batch-size", "2"]

    assert main(command) == 3  # done, but an answer failed to parse
    err = capsys.readouterr().err
    assert "2 graded, 1 failed to parse (3 of 3 items of 'Capitals'" in err and "regrade them with --failed" in err
    assert "2 of 3 items: 1 graded, 1 failed to parse, 0 not graded" in err and judge.batches == [2, 1]
    assert built[0][0] == "transformers" and built[0][1]["model"] == str(tmp_path / "judge")

    judge.garble = False
    assert main([*command, "--failed"]) == 0
    assert "1 graded (1 of 1 items" in capsys.readouterr().err and judge.batches == [2, 1, 1]
    assert main(command) == 0 and "every item already has a judgment" in capsys.readouterr().err
    # The judge is loaded even so: only it knows its configuration, hence which judge run it continues.
    assert len(built) == 3 and judge.batches == [2, 1, 1]

    assert main([*command[:3], "ann", *command[4:]]) == 2
    assert "Only an admin" in capsys.readouterr().err
    assert main([*command[:3], "nobody", *command[4:]]) == 2
    assert "no user 'nobody'" in capsys.readouterr().err
    assert main(["grade-study", "999", *command[2:]]) == 2
    assert "no study with id 999" in capsys.readouterr().err


def test_the_old_module_name_still_imports() -> None:
    """core.study_grading moved into the studies package; code that imports the old name gets the same objects."""
    from core import study_grading
    from core.studies import grading

    assert study_grading.__all__ and all(getattr(study_grading, name) is getattr(grading, name)
                                         for name in study_grading.__all__)
    assert study_grading.grade_study is grade_study
