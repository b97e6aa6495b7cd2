"""Grade a pairwise study's items into a judge run: each pair in both orders, both judgments stored and linked.

core.studies.grading.grade_study branches here for a study with mode "pairwise": the same run choice, batches,
progress, cancel flag and counts as a single-response study, but each item is a core.pairwise comparison (the
request of core.studies.pairs.pair_request) graded in both orders in one batched generation (compare_many). The
(A, B) order's judgment is linked in run_judgments and the (B, A) order's in run_second_orders
(core.studies.pair_runs.attach_pairs), both in one transaction as soon as the batch is done.

An item counts as graded in a run when both orders are stored. A pair whose verdict is "undecided" (an order's
answer had no readable score) counts as failed to parse, and "failed" mode regrades exactly those pairs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from core.errors import JudgeError
from core.grading import GradeRequest
from core.pairwise import UNDECIDED, PairRequest, PairResult, compare_many
from core.studies import pair_runs, pairs

if TYPE_CHECKING:
    from core.accounts import User
    from core.judge.base import JudgeBackend
    from core.store import Store
    from core.studies.grading import ItemError, Prepare, ProgressCallback, StudyGrading
    from core.studies.runs import JudgeRun
    from core.studies.service import Studies
    from core.studies.types import Item, Study


@dataclass(frozen=True)
class PreparedPair(PairRequest):
    """A pair whose orders' single-item requests go through `prepare` (a perturbation of the audit) first."""

    item: Item | None = field(default=None, compare=False)
    prepare: Prepare | None = field(default=None, compare=False)

    def grade_request(self, order: tuple[str, str]) -> GradeRequest:
        request = super().grade_request(order)
        return request if self.prepare is None or self.item is None else self.prepare(self.item, request)


def pair_request_of(study: Study, item: Item, max_new_tokens: int, prepare: Prepare | None) -> PairRequest:
    """The comparison the study asks of an item (both orders), through `prepare` when given."""
    request = pairs.pair_request(item.fields, study.pass_criteria, study.rubric, max_new_tokens=max_new_tokens)
    if prepare is None:
        return request
    return PreparedPair(**{name: getattr(request, name) for name in PairRequest.__dataclass_fields__},
                        item=item, prepare=prepare)


def grade_pairs(studies: Studies, actor: User, study: Study, backend: JudgeBackend, store: Store, run: JudgeRun,
                chosen: list[Item], state: StudyGrading, *, batch_size: int, max_new_tokens: int,
                on_progress: ProgressCallback | None, should_stop: Callable[[], bool] | None,
                prepare: Prepare | None, started: float) -> StudyGrading:
    """grade_study's loop for a pairwise study (see the module docstring); `state` is the count before it."""
    from core.studies.grading import ItemError, _items_own_problem

    errors: list[ItemError] = []
    failed_items: list[int] = []

    def snapshot(**changes: Any) -> StudyGrading:
        return replace(state, errors=tuple(errors), failed_items=tuple(failed_items),
                       seconds=round(time.perf_counter() - started, 4), **changes)

    if chosen and on_progress is not None:
        on_progress(snapshot())
    for start in range(0, len(chosen), batch_size):
        if should_stop is not None and should_stop():
            return snapshot(cancelled=True)
        batch = chosen[start:start + batch_size]
        requests = [pair_request_of(study, item, max_new_tokens, prepare) for item in batch]
        try:
            outcomes = compare_many(backend, requests, store)
        except JudgeError as error:  # the whole batch failed: nothing of it was stored
            return snapshot(halted=str(error))
        pair_runs.attach_pairs(studies, actor, run.id, [
            (item.id, ab, ba) for item, outcome in zip(batch, outcomes, strict=True)
            if isinstance(outcome, PairResult) and len(ids := outcome.judgment_ids) == 2
            and (ab := ids[0]) is not None and (ba := ids[1]) is not None])
        halted: str | None = None
        graded, failed = state.graded, state.failed_to_parse
        for item, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, PairResult):
                if outcome.verdict == UNDECIDED:
                    failed += 1
                    failed_items.append(item.id)
                else:
                    graded += 1
            elif _items_own_problem(outcome):
                errors.append(ItemError(item.id, item.external_id, str(outcome)))
            else:
                halted = halted or str(outcome)
        state = snapshot(graded=graded, failed_to_parse=failed, batches=state.batches + 1)
        if on_progress is not None:
            on_progress(state)
        if halted is not None:
            return snapshot(halted=halted)
    return snapshot()


def select_pairs(studies: Studies, actor: User, study_id: int, store: Store, items: list[Item], which: str,
                 run_id: int | None, failed: Callable[[Store, int], bool]) -> list[Item]:
    """The items to grade of `items`: those without both orders in the run (None: the first run), or (which
    "failed") those with both orders stored and at least one answer that failed to parse (`failed(store, id)`)."""
    links = pair_runs.pair_links(studies, actor, study_id, run_id)
    if which == "ungraded":
        return [item for item in items if None in links.get(item.id, (None, None))]
    chosen = []
    for item in items:
        ab, ba = links.get(item.id, (None, None))
        if ab is not None and ba is not None and (failed(store, ab) or failed(store, ba)):
            chosen.append(item)
    return chosen
