"""ORM rows of the study tables, and the row -> value converters.

The current shape of the tables that migration 2 (core.migrations) creates. No relationships: each query
names the joins it needs, so the labelling hot path loads nothing it does not use. The users table is
core.accounts' UserRow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from core.accounts import UserRow
from core.errors import StudyInputError
from core.store import Base, UTCDateTime
from core.studies.checks import MAX_EXTERNAL_ID, check_id
from core.studies.types import Annotation, AnnotationEdit, Item, Study


class StudyRow(Base):
    """One study (table `studies`)."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), info={"label": "The study name"})
    description: Mapped[str] = mapped_column(Text)
    pass_criteria: Mapped[str] = mapped_column(Text)
    rubric: Mapped[str] = mapped_column(Text)
    scale_min: Mapped[int] = mapped_column(Integer)
    scale_max: Mapped[int] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(JSON)
    overlap_target: Mapped[int] = mapped_column(Integer)
    blind: Mapped[bool] = mapped_column(Boolean)
    judge_settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Added by migration 5.
    guidelines: Mapped[str] = mapped_column(Text, default="")
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    assignment: Mapped[str] = mapped_column(String(16), default="open")
    split_items: Mapped[bool] = mapped_column(Boolean, default=False)
    # Added by migration 6 (core.studies.queue_order).
    queue_order: Mapped[str] = mapped_column(String(16), default="random")
    random_first: Mapped[int] = mapped_column(Integer, default=0)
    # "single" (one response graded) or "pairwise" (two compared; core.studies.pairs), and whether a pairwise
    # label may be a tie (migration 8).
    mode: Mapped[str] = mapped_column(String(16), default="single")
    allow_tie: Mapped[bool] = mapped_column(Boolean, default=False)


class ItemRow(Base):
    """One thing to label (table `items`)."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    fields: Mapped[list[list[str]]] = mapped_column(JSON)  # [[tag, text], ...] in the study's tag order
    external_id: Mapped[str | None] = mapped_column(String(MAX_EXTERNAL_ID), info={"label": "The item's id"})
    judgment_id: Mapped[int | None] = mapped_column(ForeignKey("judgments.id", ondelete="SET NULL"), index=True)
    order_key: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)  # added by migration 5
    # How the queue first handed it out, "random" / "uncertainty"; None: not yet (migration 6, core.studies.queue).
    drawn_by: Mapped[str | None] = mapped_column(String(16), default=None)


class AnnotationRow(Base):
    """One annotator's label of one item (table `annotations`)."""

    __tablename__ = "annotations"
    __table_args__ = (UniqueConstraint("item_id", "annotator_id", name="uq_annotations_item_annotator"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    score: Mapped[int] = mapped_column(Integer)
    score_before_reveal: Mapped[int] = mapped_column(Integer)
    score_after_reveal: Mapped[int | None] = mapped_column(Integer)
    spans: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(Text)
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Pairwise studies only (migration 8; core.studies.pairs): "A" / "B" / "tie", and "AB" / "BA", the order the
    # two responses were shown in. `score` then holds pairs.CHOICES.index(choice).
    choice: Mapped[str | None] = mapped_column(String(8), default=None)
    shown_order: Mapped[str | None] = mapped_column(String(4), default=None)


class AnnotationEditRow(Base):
    """One later change of an annotation, old -> new per attribute (table `annotation_edits`)."""

    __tablename__ = "annotation_edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), index=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    changes: Mapped[dict[str, list[Any]]] = mapped_column(JSON)


class ClaimRow(Base):
    """The item an annotator was last given by next_item in a study (table `item_claims`)."""

    __tablename__ = "item_claims"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StudyAnnotatorRow(Base):
    """An annotator chosen for a study whose assignment is 'chosen' (table `study_annotators`, migration 5)."""

    __tablename__ = "study_annotators"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class AdjudicationRow(Base):
    """A reviewer's settled label of an item; the newest per item counts (table `adjudications`, migration 5)."""

    __tablename__ = "adjudications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    score: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StudySettingChangeRow(Base):
    """An admin's change of a study's queue order, old -> new per setting (table `study_setting_changes`,
    migration 6)."""

    __tablename__ = "study_setting_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    changes: Mapped[dict[str, list[Any]]] = mapped_column(JSON)


def study_row(session: Any, study_id: int) -> StudyRow:
    """The study's row; StudyInputError when the id is not a valid id or names no study."""
    row = session.get(StudyRow, check_id(study_id, "study"))
    if row is None:
        raise StudyInputError(f"There is no study with id {study_id!r}.")
    return row


def item_row(session: Any, item_id: int) -> ItemRow:
    """The item's row; StudyInputError when the id is not a valid id or names no item."""
    row = session.get(ItemRow, check_id(item_id, "item"))
    if row is None:
        raise StudyInputError(f"There is no item with id {item_id!r}.")
    return row


# Studies with their creator's name.
STUDIES_WITH_CREATOR = select(StudyRow, UserRow.username).join(UserRow, UserRow.id == StudyRow.created_by_id)


def to_item(row: Any, *, hide_judgment: bool = False) -> Item:
    """An Item from an ItemRow or a Core row of the items table."""
    return Item(
        id=row.id,
        study_id=row.study_id,
        fields={tag: text for tag, text in row.fields},
        external_id=row.external_id,
        judgment_id=None if hide_judgment else row.judgment_id,
        order_key=row.order_key,
        removed_at=getattr(row, "removed_at", None),
        # A queue row (core.studies.queue.pick) handed out now is marked by claim() with its `rule`.
        drawn_by=getattr(row, "drawn_by", None) or getattr(row, "rule", None),
    )


def to_study(row: StudyRow, created_by: str) -> Study:
    return Study(
        id=row.id,
        name=row.name,
        description=row.description,
        pass_criteria=row.pass_criteria,
        rubric=row.rubric,
        scale=(row.scale_min, row.scale_max),
        tags=tuple(row.tags),
        overlap_target=row.overlap_target,
        blind=bool(row.blind),
        judge_settings=dict(row.judge_settings),
        created_by=created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        guidelines=row.guidelines or "",
        archived_at=row.archived_at,
        assignment=row.assignment or "open",
        split_items=bool(row.split_items),
        queue_order=row.queue_order or "random",
        random_first=int(row.random_first or 0),
        mode=getattr(row, "mode", None) or "single",
        allow_tie=bool(getattr(row, "allow_tie", False)),
    )


def to_annotation(row: Any, annotator: str) -> Annotation:
    """An Annotation from an AnnotationRow, a Core row of the annotations table, or its inserted values."""
    return Annotation(
        id=row.id,
        study_id=row.study_id,
        item_id=row.item_id,
        annotator=annotator,
        score=row.score,
        score_before_reveal=row.score_before_reveal,
        score_after_reveal=row.score_after_reveal,
        spans=[dict(span) for span in row.spans],
        comment=row.comment,
        seconds=row.seconds,
        created_at=row.created_at,
        updated_at=row.updated_at,
        choice=getattr(row, "choice", None),
        shown_order=getattr(row, "shown_order", None),
    )


def to_edit(row: AnnotationEditRow, editor: str) -> AnnotationEdit:
    return AnnotationEdit(
        annotation_id=row.annotation_id,
        editor=editor,
        at=row.at,
        changes={name: (pair[0], pair[1]) for name, pair in row.changes.items()},
    )
