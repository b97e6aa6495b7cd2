"""Adjudicated labels as values, and the two reads every part needs: the current one per item, and an item's history.

The adjudications table is append-only (migration 5): a reviewer's new decision on an item is a new row, the
newest row per item is the item's adjudicated label and the older rows are its history. Kept apart from
core.studies.review (who may adjudicate, the triage list) so that the reports and exports
(core.studies.reports) can read the current labels without importing the review service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts import UserRow
from core.studies.rows import AdjudicationRow


@dataclass(frozen=True)
class Adjudication:
    """One reviewer's decision on an item: the settled score and why."""

    id: int
    study_id: int
    item_id: int
    reviewer: str  # username
    score: int
    note: str
    at: datetime


_WITH_REVIEWER = (
    select(AdjudicationRow, UserRow.username).join(UserRow, UserRow.id == AdjudicationRow.reviewer_id)
)


def _value(row: AdjudicationRow, reviewer: str) -> Adjudication:
    return Adjudication(id=row.id, study_id=row.study_id, item_id=row.item_id, reviewer=reviewer, score=row.score,
                        note=row.note, at=row.created_at)


def current(session: Session, study_id: int) -> dict[int, Adjudication]:
    """The study's adjudicated labels: item id -> its newest adjudication (items never adjudicated are absent)."""
    found: dict[int, Adjudication] = {}
    # Oldest first, so the newest row of an item is the one left in the dict (ids grow with time).
    rows = session.execute(_WITH_REVIEWER.where(AdjudicationRow.study_id == study_id)
                           .order_by(AdjudicationRow.created_at, AdjudicationRow.id))
    for row, reviewer in rows:
        found[row.item_id] = _value(row, reviewer)
    return found


def history(session: Session, item_id: int) -> list[Adjudication]:
    """Every adjudication of the item, oldest first (the last one is the current label)."""
    rows = session.execute(_WITH_REVIEWER.where(AdjudicationRow.item_id == item_id)
                           .order_by(AdjudicationRow.created_at, AdjudicationRow.id))
    return [_value(row, reviewer) for row, reviewer in rows]
