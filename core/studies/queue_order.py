"""A study's queue order: random (unbiased) or least-confident judgment first (uncertainty sampling).

'random' hands items out in the stable pseudo-random order_key order: agreement measured on them estimates
agreement on the whole study. 'uncertainty' hands out first the items whose judgment has the lowest stored
confidence (the probability the judge gave its own score): people's time goes where the judge is least sure,
but agreement on those items is biased toward hard items. A study may mix: with random_first = N, the first
N items handed out still come from the random order.

Where the draw is recorded, and why there: `items.drawn_by` is set once, when the queue first hands the item
out (core.studies.queue.claim), and never changed. The rule that chose an item is known only at that moment;
recording it per item keeps the report's split right however the setting changes later (a study switched
from uncertainty back to random keeps its uncertainty-drawn items marked), and it costs one indexed UPDATE
only when an item is first handed out. Items handed out before migration 6 were drawn at random (the only
order then): the migration marks them so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts import User, UserRow, require_admin
from core.errors import StudyInputError
from core.studies.rows import StudyRow, StudySettingChangeRow, study_row

RANDOM: Final = "random"
UNCERTAINTY: Final = "uncertainty"
ORDERS = (RANDOM, UNCERTAINTY)
MAX_RANDOM_FIRST = 1_000_000
# What each order is for, in the words the Studies and Manage tabs and the CLI show.
EXPLANATION = {
    RANDOM: "random: items come in a fixed random order, so the agreement numbers are unbiased (use this to "
            "decide whether the judge can replace an annotator).",
    UNCERTAINTY: "least-confident judgment first: people label first the items where the judge is least sure, "
                 "which spends their time where it helps most, but agreement measured on those items is biased "
                 "toward hard items. 'First N at random' keeps an unbiased random sample too.",
}


@dataclass(frozen=True)
class QueueOrderChange:
    """An admin's change of a study's queue order: who, when, and {setting: (old, new)}."""

    study_id: int
    editor: str
    at: datetime
    changes: dict[str, tuple[Any, Any]]


def check_queue_order(order: object, random_first: object = 0) -> tuple[str, int]:
    """(order, random_first) checked; StudyInputError naming what is wrong."""
    if order not in ORDERS:
        raise StudyInputError(f"The queue order must be {' or '.join(map(repr, ORDERS))}; got {order!r}.")
    if isinstance(random_first, float) and random_first.is_integer():
        random_first = int(random_first)
    if isinstance(random_first, bool) or not isinstance(random_first, int):
        raise StudyInputError(f"'First N at random' must be a whole number; got {random_first!r}.")
    if not 0 <= random_first <= MAX_RANDOM_FIRST:
        raise StudyInputError(f"'First N at random' must be between 0 and {MAX_RANDOM_FIRST:,}; got {random_first}.")
    return str(order), random_first


def set_queue_order(session: Session, actor: User, study_id: int, order: object,
                    random_first: object = None) -> StudyRow:
    """Change the study's queue order (admins only; random_first None: keep), recording the change; the row.

    Items already handed out keep how they were drawn (items.drawn_by): the change applies to what comes next.
    """
    me = require_admin(session, actor, "change a study's queue order")
    row = study_row(session, study_id)
    wanted = check_queue_order(order, row.random_first if random_first is None else random_first)
    changes = {key: [getattr(row, key), value] for key, value in zip(("queue_order", "random_first"), wanted,
                                                                     strict=True) if getattr(row, key) != value}
    if changes:
        now = datetime.now(UTC)
        row.queue_order, row.random_first = wanted
        row.updated_at = now
        session.add(StudySettingChangeRow(study_id=row.id, editor_id=me.id, at=now, changes=changes))
    return row


def history(session: Session, actor: User, study_id: int) -> list[QueueOrderChange]:
    """The study's queue-order changes, oldest first (admins only)."""
    require_admin(session, actor, "see a study's queue-order changes")
    row = study_row(session, study_id)
    found = session.execute(select(StudySettingChangeRow, UserRow.username)
                            .join(UserRow, UserRow.id == StudySettingChangeRow.editor_id)
                            .where(StudySettingChangeRow.study_id == row.id)
                            .order_by(StudySettingChangeRow.at, StudySettingChangeRow.id))
    return [QueueOrderChange(change.study_id, editor, change.at,
                             {key: (pair[0], pair[1]) for key, pair in change.changes.items()})
            for change, editor in found]
