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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.errors import GliderError
from core.grading import GradeRequest
from core.pairwise import UNDECIDED, PairRequest, PairResult, compare_many
from core.studies import pair_runs, pairs

if TYPE_CHECKING:
    from core.accounts import User
    from core.judge.base import JudgeBackend
    from core.store import Store
    from core.studies.grading import Prepare, ProgressCallback, StudyGrading
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
    """grade_study's batches for a pairwise study (see the module docstring); `state` is the count before them."""
    from core.studies.grading import grade_in_batches

    def grade(batch: list[Item]) -> list[PairResult | GliderError]:
        requests = [pair_request_of(study, item, max_new_tokens, prepare) for item in batch]
        outcomes = compare_many(backend, requests, store)
        pair_runs.attach_pairs(studies, actor, run.id, [
            (item.id, ab, ba) for item, outcome in zip(batch, outcomes, strict=True)
            if isinstance(outcome, PairResult) and len(ids := outcome.judgment_ids) == 2
            and (ab := ids[0]) is not None and (ba := ids[1]) is not None])
        return outcomes

    return grade_in_batches(chosen, state, started, batch_size=batch_size, on_progress=on_progress,
                            should_stop=should_stop, grade=grade,
                            parse_failed=lambda outcome: outcome.verdict == UNDECIDED)


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
