"""A judge run's two orders of each pairwise item: linking them, reading them, and the run's verdicts.

A pairwise item is graded in both orders (core.pairwise): the (A, B) order's judgment is linked like a single
item's (run_judgments; the first run's mirrors to items.judgment_id), the (B, A) order's in run_second_orders
(migration 8). An item counts as graded in a run when both are stored. The verdict is derived from the two stored
scores by core.studies.pairs.verdict_of / slot_picked, never stored, so it cannot drift from the judgments.
Every public function checks who asks (admins only) in its own transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts import require_admin
from core.errors import StudyInputError
from core.judgments import JudgmentRow
from core.parse import FAILED as PARSE_FAILED
from core.store import Store
from core.studies import pairs
from core.studies.checks import check_id
from core.studies.rows import ItemRow, study_row
from core.studies.runs import (  # _link, _now: the one rule for linking an item's (A, B) judgment, kept in runs
    JudgeRunRow,
    RunJudgmentRow,
    RunSecondOrderRow,
    _link,
    _now,
    first_run_id,
    run_row,
)

if TYPE_CHECKING:
    from core.accounts import User


@dataclass(frozen=True)
class PairVerdict:
    """The judge's verdict on one pairwise item in a run.

    `verdict` is "A", "B", "inconsistent", "undecided" (an order's answer had no score), or None when the run has
    not graded the item in both orders; `slot` is the slot (1 or 2) picked in both orders when inconsistent.
    """

    item_id: int
    verdict: str | None
    slot: int | None = None
    score_ab: int | None = None
    score_ba: int | None = None
    judgment_ab: int | None = None
    judgment_ba: int | None = None


def _store(studies_or_store: object) -> Store:
    """The Store of a Studies service, or the Store itself."""
    if isinstance(studies_or_store, Store):
        return studies_or_store
    found = getattr(studies_or_store, "_store", None)
    if not isinstance(found, Store):
        raise TypeError("Pass a Store or a Studies service.")
    return found


def _chosen_run(session: Session, study_id: int, run: int | str | None) -> int | None:
    """The run's id: `run` (id or name), or the study's first run when None (None: the study has no run yet)."""
    return first_run_id(session, study_id) if run is None else run_row(session, study_id, run).id


def _links(session: Session, run_id: int, table: type[RunJudgmentRow] | type[RunSecondOrderRow]) -> dict[int, int]:
    rows = session.execute(select(table.item_id, table.judgment_id).where(table.run_id == run_id))
    return {item_id: judgment_id for item_id, judgment_id in rows}


def pair_links(studies_or_store: object, actor: User, study_id: int, run: int | str | None = None
               ) -> dict[int, tuple[int | None, int | None]]:
    """item id -> (the (A, B) order's judgment id, the (B, A) order's) in the run (None: the first run), for every
    item of the study that is not removed; None where an order is not stored."""
    with _store(studies_or_store).session("read") as session:
        require_admin(session, actor, "see a study's judge runs")
        study = study_row(session, study_id)
        items = session.scalars(select(ItemRow.id).where(ItemRow.study_id == study.id, ItemRow.removed_at.is_(None))
                                .order_by(ItemRow.id)).all()
        chosen = _chosen_run(session, study.id, run)
        first = {} if chosen is None else _links(session, chosen, RunJudgmentRow)
        second = {} if chosen is None else _links(session, chosen, RunSecondOrderRow)
        return {item_id: (first.get(item_id), second.get(item_id)) for item_id in items}


def attach_pairs(studies_or_store: object, actor: User, run_id: int,
                 links: Iterable[tuple[int, int, int]]) -> None:
    """Link (item id, (A, B) judgment id, (B, A) judgment id) triples in the run, one transaction; the run's earlier
    judgments of an item are replaced, other runs' never (the first run's (A, B) order mirrors to the item)."""
    wanted = [(check_id(item_id, "item"), check_id(ab, "judgment"), check_id(ba, "judgment"))
              for item_id, ab, ba in links]
    store = _store(studies_or_store)

    def work(session: Session) -> None:
        require_admin(session, actor, "attach judgments")
        run = session.get(JudgeRunRow, check_id(run_id, "judge run"))
        if run is None:
            raise StudyInputError(f"There is no judge run with id {run_id!r}.")
        now = _now()
        for item_id, ab, ba in wanted:
            item = session.get(ItemRow, item_id)
            if item is None:
                raise StudyInputError(f"There is no item with id {item_id!r}.")
            if session.get(JudgmentRow, ba) is None:
                raise StudyInputError(f"There is no stored judgment with id {ba!r}.")
            _link(session, run, item, ab, now)
            second = session.get(RunSecondOrderRow, (run.id, item.id))
            if second is None:
                session.add(RunSecondOrderRow(run_id=run.id, item_id=item.id, judgment_id=ba, attached_at=now))
            else:
                second.judgment_id, second.attached_at = ba, now

    store.write("save a judgment link to", work)


def pair_verdicts(studies_or_store: object, actor: User, study_id: int, run: int | str | None = None
                  ) -> dict[int, PairVerdict]:
    """item id -> the run's PairVerdict (run None: the study's first run) for every item of the study that is not
    removed, from the stored scores of both orders (a failed answer has no score: "undecided"). Admins only;
    StudyInputError for an unknown study or run, or a study that is not pairwise."""
    with _store(studies_or_store).session("read") as session:
        require_admin(session, actor, "see a study's judge runs")
        study = study_row(session, study_id)
        if study.mode != pairs.PAIRWISE:
            raise StudyInputError(f"Study {study.id} is not a pairwise study: its judge gives scores, not verdicts.")
        items = session.scalars(select(ItemRow.id).where(ItemRow.study_id == study.id, ItemRow.removed_at.is_(None))
                                .order_by(ItemRow.id)).all()
        chosen = _chosen_run(session, study.id, run)
        first = {} if chosen is None else _links(session, chosen, RunJudgmentRow)
        second = {} if chosen is None else _links(session, chosen, RunSecondOrderRow)
        wanted = set(first.values()) | set(second.values())
        scores: dict[int, int | None] = {
            judgment_id: (score if status != PARSE_FAILED else None)
            for judgment_id, score, status in session.execute(
                select(JudgmentRow.id, JudgmentRow.score, JudgmentRow.status).where(JudgmentRow.id.in_(wanted)))
        } if wanted else {}
        verdicts: dict[int, PairVerdict] = {}
        for item_id in items:
            ab, ba = first.get(item_id), second.get(item_id)
            if ab is None or ba is None:
                verdicts[item_id] = PairVerdict(item_id, None, judgment_ab=ab, judgment_ba=ba)
                continue
            score_ab, score_ba = scores.get(ab), scores.get(ba)
            verdicts[item_id] = PairVerdict(item_id, pairs.verdict_of(score_ab, score_ba),
                                            pairs.slot_picked(score_ab, score_ba), score_ab, score_ba, ab, ba)
        return verdicts
