"""Grade a study's items with the judge: in batches, with progress, a cancel flag, and honest counts.

The Studies tab's "Grade all items" and "Regrade failed" call grade_study, so grading a study means
what the Batch tab and `python -m core grade` mean: the same prompts, and the same batched generation
(core.grading.grade_batch). Each judgment is stored and attached to its item (Studies.attach_judgment)
as soon as its batch is done, so a cancelled or interrupted run keeps what it graded; running again
grades the rest. In a blind study the attached judgments stay hidden from annotators (core.studies).

A judgment whose answer could not be parsed (status "failed") is attached too: it is what the model
said, and the agreement report leaves it out as "no model score". It is counted as a failure, never
as graded, and "failed" mode regrades exactly those items.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from core.accounts import User
from core.batch import DEFAULT_BATCH_SIZE
from core.errors import GliderError, InputError, JudgeError
from core.grading import GradeRequest, GradeResult, grade_batch
from core.judge.base import DEFAULT_MAX_NEW_TOKENS, JudgeBackend
from core.parse import FAILED as PARSE_FAILED  # an answer that gave no score
from core.store import Store
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


def select_items(studies: Studies, actor: User, study_id: int, store: Store, which: Which = UNGRADED
                 ) -> tuple[list[Item], int]:
    """(items to grade, items left out): those without a judgment, or (which="failed") whose judgment failed."""
    if which not in (UNGRADED, FAILED):
        raise InputError(f"Grade which items? {which!r} is neither {UNGRADED!r} nor {FAILED!r}.")
    items = studies.list_items(actor, study_id)  # admins only: PermissionDenied for anyone else
    items = [item for item in items if item.removed_at is None]  # a removed item is out of the study's work
    if which == UNGRADED:
        chosen = [item for item in items if item.judgment_id is None]
    else:
        chosen = [item for item in items if item.judgment_id is not None and _failed(store, item.judgment_id)]
    return chosen, len(items) - len(chosen)


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
    Raises PermissionDenied for a non-admin and StudyInputError for an unknown study, before grading.
    """
    if batch_size < 1:
        raise InputError("The batch size must be at least 1.")
    study = studies.get_study(actor, study_id)
    chosen, skipped = select_items(studies, actor, study_id, store, which)
    max_new_tokens = int(study.judge_settings.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))
    state = StudyGrading(study_id=study.id, which=which, total=len(chosen), skipped=skipped)
    started = time.perf_counter()
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
        requests = [GradeRequest(fields=dict(item.fields), pass_criteria=study.pass_criteria, rubric=study.rubric,
                                 max_new_tokens=max_new_tokens) for item in batch]
        try:
            outcomes = grade_batch(backend, requests, store)
        except JudgeError as error:  # the whole batch failed: nothing of it was stored
            return snapshot(halted=str(error))
        halted: str | None = None
        graded, failed = state.graded, state.failed_to_parse
        for item, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, GradeResult):
                if outcome.judgment_id is not None:
                    studies.attach_judgment(actor, item.id, outcome.judgment_id)
                if outcome.judgment.status == PARSE_FAILED:
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
