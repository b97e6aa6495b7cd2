"""Grade a study's items with the judge: in batches, with progress, a cancel flag, and honest counts.

The Studies tab's "Grade all items" and "Regrade failed" call grade_study, so grading a study means
what the Batch tab and `python -m core grade` mean: the same prompts, and the same batched generation
(core.grading.grade_batch). Each judgment is stored and attached to its item in its judge run (Runs.attach)
as soon as its batch is done, so a cancelled or interrupted run keeps what it graded; running again
grades the rest. In a blind study the attached judgments stay hidden from annotators (core.studies).

A judgment whose answer could not be parsed (status "failed") is attached too: it is what the model
said, and the agreement report leaves it out as "no model score". It is counted as a failure, never
as graded, and "failed" mode regrades exactly those items.

Every judgment goes into a judge run (core.studies.runs): the study's latest run with the judge's configuration
(`run_config`: back-end, model, revision, quantization, dtype, prompt variant, decoding) is continued; a judge
configured differently, or `new_run`, starts a new run, which grades every item again without touching the
other runs' verdicts. `run_id` grades into a given run (the robustness audit's), `prepare` changes each item's
request first (a perturbation), and `item_ids` limits the work to some items (a sample).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from core.accounts import User
from core.batch import DEFAULT_BATCH_SIZE
from core.errors import GliderError, InputError, JudgeError, StudyInputError
from core.grading import GradeRequest, GradeResult, grade_batch
from core.judge.base import DEFAULT_MAX_NEW_TOKENS, JudgeBackend
from core.parse import FAILED as PARSE_FAILED  # an answer that gave no score
from core.store import Store
from core.studies.runs import JudgeRun, run_config
from core.studies.service import Studies
from core.studies.types import Item

UNGRADED: Final = "ungraded"
FAILED: Final = "failed"
Which = Literal["ungraded", "failed"]


@dataclass(frozen=True)
class ItemError:
    """An item the run could not grade (no judgment was made): why, in words a user can act on."""

    item_id: int
    external_id: str | None
    message: str

    @property
    def label(self) -> str:
        """How the study's admin knows the item: its id from the imported file, else its number."""
        return repr(self.external_id) if self.external_id is not None else f"#{self.item_id}"


@dataclass(frozen=True)
class StudyGrading:
    """Where a run is, after each batch, and how it ended (grade_study's return value).

    `total` items were chosen to grade; `skipped` items of the study were not (already graded, or, when
    regrading failures, not failed). Of the chosen, `graded` got a score, `failed_to_parse` got a
    judgment without one, `errors` could not be graded, and `pending` were not reached (cancelled, or
    the judge stopped working: `halted` says why).
    """

    study_id: int
    which: str
    total: int
    skipped: int
    graded: int = 0
    failed_to_parse: int = 0
    errors: tuple[ItemError, ...] = ()
    cancelled: bool = False
    halted: str | None = None
    seconds: float = 0.0
    batches: int = 0
    failed_items: tuple[int, ...] = ()  # item ids whose judgment failed to parse
    run: JudgeRun | None = None  # the judge run graded into (core.studies.runs); None: nothing was chosen
    run_created: bool = False  # the run was made by this call

    @property
    def done(self) -> int:
        """Items handled so far: graded, failed to parse, or refused."""
        return self.graded + self.failed_to_parse + len(self.errors)

    @property
    def pending(self) -> int:
        return self.total - self.done

    @property
    def items_per_second(self) -> float | None:
        return self.done / self.seconds if self.done and self.seconds > 0 else None


ProgressCallback = Callable[[StudyGrading], None]
# How grade_study's `prepare` changes an item's request before it is graded (e.g. a perturbation of the audit).
Prepare = Callable[[Item, GradeRequest], GradeRequest]


def select_items(studies: Studies, actor: User, study_id: int, store: Store, which: Which = UNGRADED, *,
                 run_id: int | None = None, item_ids: Collection[int] | None = None) -> tuple[list[Item], int]:
    """(items to grade, items left out): those without a judgment, or (which="failed") whose judgment failed.

    The judgments are judge run `run_id`'s (core.studies.runs); None: the first run's (items.judgment_id).
    `item_ids`: only these items are considered (the others count as left out).
    """
    if which not in (UNGRADED, FAILED):
        raise InputError(f"Grade which items? {which!r} is neither {UNGRADED!r} nor {FAILED!r}.")
    items = studies.list_items(actor, study_id)  # admins only: PermissionDenied for anyone else
    live = [item for item in items if item.removed_at is None]  # a removed item is out of the study's work
    if item_ids is not None:
        wanted = set(item_ids)
        items = [item for item in live if item.id in wanted]
    else:
        items = live
    if studies.get_study(actor, study_id).pairwise:  # graded: both orders stored (core.studies.pair_grading)
        from core.studies.pair_grading import select_pairs

        chosen = select_pairs(studies, actor, study_id, store, items, which, run_id, _failed)
        return chosen, len(live) - len(chosen)
    judged = ({item.id: item.judgment_id for item in items} if run_id is None
              else studies.runs.judgments(actor, study_id, run_id))
    if which == UNGRADED:
        chosen = [item for item in items if judged.get(item.id) is None]
    else:
        chosen = [item for item in items if (judgment := judged.get(item.id)) is not None and _failed(store, judgment)]
    return chosen, len(live) - len(chosen)


def _failed(store: Store, judgment_id: int) -> bool:
    stored = store.get_judgment(judgment_id)
    return stored is not None and stored.status == PARSE_FAILED


def grade_study(
    studies: Studies,
    actor: User,
    study_id: int,
    backend: JudgeBackend,
    store: Store,
    *,
    which: Which = UNGRADED,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    new_run: bool | str = False,
    run_id: int | None = None,
    prepare: Prepare | None = None,
    item_ids: Collection[int] | None = None,
) -> StudyGrading:
    """Grade the study's ungraded items (or those whose judgment failed to parse), batch_size at a time.

    `store` is the database the study lives in (the judgments are saved there). After every batch the
    judgments are attached to their items and on_progress gets the counts so far (it gets them once
    before the first batch too, when there is anything to grade). should_stop() is asked
    before each batch: when it turns true the run ends, cancelled, keeping what it graded. Each batch is
    one `generate_batch`, so a back-end that serialises its generations lets other users of the model
    have their turn between two batches. A judge failure that is not one item's own (the server went
    away, out of memory) ends the run with `halted` set; items that are refused alone (an empty field, a
    prompt too long for the model) are listed in `errors` and the others are graded.

    The judge run (core.studies.runs): `run_id` grades into that run of the study; otherwise the study's latest
    run with this judge's configuration is continued, or a new run made when none has it or `new_run` asks
    (True, or the new run's name). "failed" mode regrades the failures of this judge's run (StudyInputError
    when the study has runs but none of this judge). `prepare(item, request)` returns the request to grade
    instead of the study's own; `item_ids` grades only those items.
    Raises PermissionDenied for a non-admin and StudyInputError for an unknown study, before grading.
    """
    if batch_size < 1:
        raise InputError("The batch size must be at least 1.")
    study = studies.get_study(actor, study_id)
    max_new_tokens = int(study.judge_settings.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))
    run, created = _choose_run(studies, actor, study.id, backend, max_new_tokens, which, new_run, run_id, item_ids)
    if run is None:  # nothing to grade: no item, or no run of this judge to regrade failures in
        _, skipped = select_items(studies, actor, study.id, store, which, item_ids=item_ids)
        return StudyGrading(study_id=study.id, which=which, total=0, skipped=skipped)
    chosen, skipped = select_items(studies, actor, study.id, store, which, run_id=run.id, item_ids=item_ids)
    state = StudyGrading(study_id=study.id, which=which, total=len(chosen), skipped=skipped, run=run,
                         run_created=created)
    started = time.perf_counter()
    if study.pairwise:  # each item compared in both orders (core.studies.pair_grading)
        from core.studies.pair_grading import grade_pairs

        return grade_pairs(studies, actor, study, backend, store, run, chosen, state, batch_size=batch_size,
                           max_new_tokens=max_new_tokens, on_progress=on_progress, should_stop=should_stop,
                           prepare=prepare, started=started)
    def grade(batch: list[Item]) -> list[GradeResult | GliderError]:
        requests = [GradeRequest(fields=dict(item.fields), pass_criteria=study.pass_criteria, rubric=study.rubric,
                                 max_new_tokens=max_new_tokens) for item in batch]
        if prepare is not None:
            requests = [prepare(item, request) for item, request in zip(batch, requests, strict=True)]
        outcomes = grade_batch(backend, requests, store)
        # Every judgment of the batch joins the run in one transaction, failed answers too (what the model said).
        studies.runs.attach(actor, run.id, [
            (item.id, outcome.judgment_id) for item, outcome in zip(batch, outcomes, strict=True)
            if isinstance(outcome, GradeResult) and outcome.judgment_id is not None])
        return outcomes

    return grade_in_batches(chosen, state, started, batch_size=batch_size, on_progress=on_progress,
                            should_stop=should_stop, grade=grade,
                            parse_failed=lambda outcome: outcome.judgment.status == PARSE_FAILED)


def grade_in_batches(chosen: list[Item], state: StudyGrading, started: float, *, batch_size: int,
                     on_progress: ProgressCallback | None, should_stop: Callable[[], bool] | None,
                     grade: Callable[[list[Item]], Sequence[Any]], parse_failed: Callable[[Any], bool]
                     ) -> StudyGrading:
    """The batch loop of grade_study: `grade(batch)` grades and stores one batch, an outcome per item (a result, or
    the item's GliderError; JudgeError raised: the whole batch failed, nothing stored); `parse_failed(result)`
    says whether a result's answer failed to parse. `state` is the count before the loop."""
    errors: list[ItemError] = []
    failed_items: list[int] = []

    def snapshot(**changes: Any) -> StudyGrading:
        return replace(state, errors=tuple(errors), failed_items=tuple(failed_items),
                       seconds=round(time.perf_counter() - started, 4), **changes)

    if chosen and on_progress is not None:  # the count, before a first batch that may take minutes on a CPU
        on_progress(snapshot())
    for start in range(0, len(chosen), batch_size):
        if should_stop is not None and should_stop():
            return snapshot(cancelled=True)
        batch = chosen[start:start + batch_size]
        try:
            outcomes = grade(batch)
        except JudgeError as error:  # the whole batch failed: nothing of it was stored
            return snapshot(halted=str(error))
        halted: str | None = None
        graded, failed = state.graded, state.failed_to_parse
        for item, outcome in zip(batch, outcomes, strict=True):
            if not isinstance(outcome, GliderError):
                if parse_failed(outcome):
                    failed += 1
                    failed_items.append(item.id)
                else:
                    graded += 1
            elif _items_own_problem(outcome):
                errors.append(ItemError(item.id, item.external_id, str(outcome)))
            else:  # the judge failed on this item for a reason of its own: the rest of the run would too
                halted = halted or str(outcome)
        state = snapshot(graded=graded, failed_to_parse=failed, batches=state.batches + 1)
        if on_progress is not None:
            on_progress(state)
        if halted is not None:
            return snapshot(halted=halted)
    return snapshot()


def _choose_run(studies: Studies, actor: User, study_id: int, backend: JudgeBackend, max_new_tokens: int,
                which: Which, new_run: bool | str, run_id: int | None, item_ids: Collection[int] | None
                ) -> tuple[JudgeRun | None, bool]:
    """(the run to grade into, whether it was made now); None when there is nothing to grade."""
    if run_id is not None:
        return studies.runs.get(actor, study_id, run_id), False
    wanted = None if item_ids is None else set(item_ids)
    if not [item for item in studies.list_items(actor, study_id)
            if item.removed_at is None and (wanted is None or item.id in wanted)]:
        return None, False  # no item to grade: no run is made
    config = run_config(backend.info, max_new_tokens)
    if which == FAILED and not new_run:
        found = studies.runs.find(actor, study_id, config)
        if found is None and studies.runs.list_runs(actor, study_id):
            raise StudyInputError("No judge run of this study was graded by this judge configuration "
                                  f"({backend.info.describe()}, {max_new_tokens} new tokens): Regrade failed regrades "
                                  "the failed answers of this judge's own run. Grade all items to grade them as a "
                                  "new run.")
        return found, False
    return studies.runs.for_grading(actor, study_id, config, new_run=new_run)


def _items_own_problem(error: GliderError) -> bool:
    """Whether an outcome is the item's own problem (bad input, too long) rather than the judge failing."""
    return isinstance(error, InputError)  # ContextTooLongError is an InputError too


def summary_line(result: StudyGrading) -> str:
    """"18 graded, 2 failed to parse, 1 not graded" (the parts that are not zero; "nothing graded" if none)."""
    parts = [f"{result.graded} graded"] if result.graded or not (result.failed_to_parse or result.errors) else []
    if result.failed_to_parse:
        parts.append(f"{result.failed_to_parse} failed to parse")
    if result.errors:
        parts.append(f"{len(result.errors)} not graded")
    return ", ".join(parts)
