"""Per-annotator progress in a study, for admins: labelled / assigned, median seconds per label, last active,
and how often they changed their score once the judge's verdict was revealed.

Reached through Studies.admin (core.studies.admin), which checks that the caller is an admin. Who counts as
assigned is core.studies.assignment's (open, chosen annotators, split items).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.accounts import ADMIN, UserRow
from core.studies import assignment
from core.studies.rows import AnnotationEditRow, AnnotationRow, ItemRow, StudyAnnotatorRow, StudyRow


@dataclass(frozen=True)
class AnnotatorProgress:
    username: str
    role: str
    active: bool
    labelled: int  # labels of items still in the study
    assigned: int  # items this annotator may label (see assigned_counts)
    median_seconds: float | None  # time spent per label; None without labels
    last_active: datetime | None  # newest label, change or edit
    changed_at_reveal: int  # labels whose score after the reveal differs from the one given before it
    edited: int  # labels changed later (edit history)


def may_label(session: Session, study: StudyRow) -> list[int]:
    """The users who may label the study now: its chosen annotators, or (open) every active non-admin."""
    if study.assignment == "chosen":
        chosen = select(StudyAnnotatorRow.user_id).where(StudyAnnotatorRow.study_id == study.id)
        return list(session.scalars(select(UserRow.id).where(UserRow.id.in_(chosen), UserRow.active.is_not(False))))
    return list(session.scalars(select(UserRow.id).where(UserRow.role != ADMIN, UserRow.active.is_not(False))))


def assigned_counts(session: Session, study: StudyRow, user_ids: Iterable[int]) -> dict[int, int]:
    """How many items each user is assigned: core.studies.assignment's count (open, chosen or split) for those
    who may label the study now, 0 for the others (admins of an open study, inactive users)."""
    wanted = list(user_ids)
    allowed = set(may_label(session, study))
    counts = assignment.assigned_counts(session, study.id, wanted)
    return {user_id: counts[user_id] if user_id in allowed else 0 for user_id in wanted}


def progress(session: Session, study: StudyRow) -> list[AnnotatorProgress]:
    """One row per user who labelled the study or may label it, by name."""
    labels = session.execute(
        select(AnnotationRow.annotator_id, AnnotationRow.seconds, AnnotationRow.created_at, AnnotationRow.updated_at,
               AnnotationRow.score_before_reveal, AnnotationRow.score_after_reveal, ItemRow.removed_at)
        .join(ItemRow, ItemRow.id == AnnotationRow.item_id)
        .where(AnnotationRow.study_id == study.id)).all()
    edits = session.execute(
        select(AnnotationRow.annotator_id, func.count(func.distinct(AnnotationEditRow.annotation_id)),
               func.max(AnnotationEditRow.at))
        .join(AnnotationRow, AnnotationRow.id == AnnotationEditRow.annotation_id)
        .where(AnnotationRow.study_id == study.id)
        .group_by(AnnotationRow.annotator_id)).all()
    edited = {annotator: (int(count), at) for annotator, count, at in edits}
    people = {label.annotator_id for label in labels} | set(may_label(session, study))
    assigned = assigned_counts(session, study, people)
    users = session.execute(select(UserRow.id, UserRow.username, UserRow.role, UserRow.active)
                            .where(UserRow.id.in_(people)).order_by(UserRow.username)).all()
    rows: list[AnnotatorProgress] = []
    for user in users:
        mine = [label for label in labels if label.annotator_id == user.id]
        count, edited_at = edited.get(user.id, (0, None))
        times = [t for label in mine for t in (label.created_at, label.updated_at)] + ([edited_at] if edited_at else [])
        rows.append(AnnotatorProgress(
            username=user.username, role=user.role, active=user.active is not False,
            labelled=sum(1 for label in mine if label.removed_at is None), assigned=assigned[user.id],
            median_seconds=float(statistics.median(label.seconds for label in mine)) if mine else None,
            last_active=max(times) if times else None,
            changed_at_reveal=sum(1 for label in mine if label.score_after_reveal is not None
                                  and label.score_after_reveal != label.score_before_reveal),
            edited=count))
    return rows
