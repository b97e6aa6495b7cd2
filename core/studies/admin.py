"""Study administration (admins only): edit a study's settings and guidelines, duplicate, archive and delete it,
remove items; the item browser (core.studies.items_browser) and per-annotator progress
(core.studies.team_progress) are reached through it too.

`Studies.admin` is a StudyAdmin on the same store. Every method checks, inside its own transaction, that the
actor is an admin now (core.accounts.require_admin). What a label means must not change under it: once a study
has a label, its rubric (and so its scale), pass criteria, blind mode and field tags are fixed; an admin who
needs other ones duplicates the study (settings and items, no labels) and changes the copy.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.accounts import User, UserRow, require_admin
from core.errors import RubricError, StudyInputError
from core.prompt import infer_scale
from core.store import Store
from core.studies import items_browser, queue_order, team_progress
from core.studies.checks import check_id, check_int
from core.studies.items_browser import ItemDetail, ItemSummary
from core.studies.queue import queue_key
from core.studies.rows import (
    AdjudicationRow,
    AnnotationEditRow,
    AnnotationRow,
    ClaimRow,
    ItemRow,
    StudyAnnotatorRow,
    StudyRow,
    StudySettingChangeRow,
    study_row,
    to_item,
    to_study,
)
from core.studies.team_progress import AnnotatorProgress
from core.studies.types import Item, Study

T = TypeVar("T")

MAX_NAME = 200
MAX_GUIDELINES = 100_000  # characters of Markdown: a long manual, not a file dump
# What a label was given under: none of these may change once a label exists.
LOCKED = {"pass_criteria": "pass criteria", "rubric": "rubric (and so the scale)", "blind": "blind mode"}


@dataclass(frozen=True)
class DeletedStudy:
    """What delete_study removed."""

    study_id: int
    name: str
    items: int
    labels: int


def _now() -> datetime:
    return datetime.now(UTC)


def check_name(name: object) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not text:
        raise StudyInputError("The study needs a name.")
    if len(text) > MAX_NAME:
        raise StudyInputError(f"The study name is longer than {MAX_NAME} characters.")
    return text


def _text(value: object, what: str, limit: int = MAX_GUIDELINES) -> str:
    if not isinstance(value, str):
        raise StudyInputError(f"The {what} must be text.")
    if len(value) > limit:
        raise StudyInputError(f"Too long: the {what} may have at most {limit:,} characters.")
    return value


class StudyAdmin:
    """What an admin does to studies and items after creating them (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _write(self, action: str, work: Callable[[Session], T]) -> T:
        return self._store.write(action, work)  # the one write path, retried while the file is locked

    def _read(self) -> AbstractContextManager[Session]:
        return self._store.session("read")


    @staticmethod
    def _creator(session: Session, row: StudyRow) -> str:
        return session.scalar(select(UserRow.username).where(UserRow.id == row.created_by_id)) or ""

    @staticmethod
    def _label_count(session: Session, study_id: int) -> int:
        return session.scalar(select(func.count()).select_from(AnnotationRow)
                              .where(AnnotationRow.study_id == study_id)) or 0

    # -- settings ----------------------------------------------------------------------------------

    def update_study(
        self, actor: User, study_id: int, *, name: str | None = None, description: str | None = None,
        guidelines: str | None = None, pass_criteria: str | None = None, rubric: str | None = None,
        blind: bool | None = None, overlap_target: int | None = None,
    ) -> Study:
        """Change the given settings (None: keep); the study as it is now.

        Name, description, guidelines (Markdown for annotators) and the overlap target may change at any time.
        Pass criteria, rubric (and with it the scale) and blind mode only while the study has no label:
        afterwards StudyInputError says so and to duplicate the study instead. Giving a locked setting its
        current value is not a change.
        """
        wanted: dict[str, Any] = {}
        if name is not None:
            wanted["name"] = check_name(name)
        if description is not None:
            wanted["description"] = _text(description, "description")
        if guidelines is not None:
            wanted["guidelines"] = _text(guidelines, "guidelines")
        if pass_criteria is not None:
            if not isinstance(pass_criteria, str) or not pass_criteria.strip():
                raise StudyInputError("The pass criteria are empty: say what a passing text must do.")
            wanted["pass_criteria"] = pass_criteria
        if rubric is not None:
            try:
                scale = infer_scale(_text(rubric, "rubric"))
            except RubricError as error:
                raise StudyInputError(str(error)) from error
            wanted["rubric"] = rubric
            wanted["scale_min"], wanted["scale_max"] = scale
        if blind is not None:
            wanted["blind"] = bool(blind)
        if overlap_target is not None:
            overlap = check_int(overlap_target, "overlap target")
            if overlap < 1:
                raise StudyInputError("The overlap target (annotators per item) must be at least 1.")
            wanted["overlap_target"] = overlap

        def work(session: Session) -> Study:
            require_admin(session, actor, "change a study")
            row = study_row(session, study_id)
            changed = {key: value for key, value in wanted.items() if getattr(row, key) != value}
            locked = [text for key, text in LOCKED.items() if key in changed]
            if locked:
                labels = self._label_count(session, row.id)
                if labels:
                    raise StudyInputError(
                        f"The study {row.name!r} already has {labels} label(s), given under its current "
                        f"{' and '.join(locked)}: changing that now would change what those labels mean. "
                        "Duplicate it as a new study (Manage tab, or python -m core duplicate-study) and change "
                        "the copy.")
            for key, value in changed.items():
                setattr(row, key, value)
            if changed:
                row.updated_at = _now()
            return to_study(row, self._creator(session, row))

        return self._write("save a study to", work)

    def duplicate_study(self, actor: User, study_id: int, name: str | None = None) -> Study:
        """A new study with this one's settings, guidelines, chosen annotators and (not removed) items; no labels.

        The items come without the judge's verdicts: the copy is usually made to change what they were graded
        against, so grade it anew. `name` defaults to the old name with " (copy)".
        """
        new_name = check_name(name) if name is not None and name.strip() else None

        def work(session: Session) -> Study:
            me = require_admin(session, actor, "duplicate a study")
            old = study_row(session, study_id)
            now = _now()
            copy = StudyRow(
                name=new_name or check_name(f"{old.name[:MAX_NAME - 7]} (copy)"), description=old.description,
                pass_criteria=old.pass_criteria, rubric=old.rubric, scale_min=old.scale_min, scale_max=old.scale_max,
                tags=list(old.tags), overlap_target=old.overlap_target, blind=old.blind,
                judge_settings=dict(old.judge_settings), created_by_id=me.id, created_at=now, updated_at=now,
                guidelines=old.guidelines or "", archived_at=None, assignment=old.assignment or "open",
                split_items=bool(old.split_items), queue_order=old.queue_order or "random",
                random_first=int(old.random_first or 0))
            session.add(copy)
            session.flush()
            chosen = select(StudyAnnotatorRow.user_id).where(StudyAnnotatorRow.study_id == old.id)
            for user_id in session.scalars(chosen).all():
                session.add(StudyAnnotatorRow(study_id=copy.id, user_id=user_id))
            items = session.scalars(select(ItemRow).where(ItemRow.study_id == old.id, ItemRow.removed_at.is_(None))
                                    .order_by(ItemRow.id)).all()
            for item in items:
                added = ItemRow(study_id=copy.id, fields=[list(pair) for pair in item.fields],
                                external_id=item.external_id, judgment_id=None, order_key=0, created_at=now)
                session.add(added)
                session.flush()  # the queue key is derived from the id the database assigns
                added.order_key = queue_key(copy.id, added.id)
            return to_study(copy, me.username)

        return self._write("save a study to", work)

    # -- queue order (core.studies.queue_order) ------------------------------------------------------

    def set_queue_order(self, actor: User, study_id: int, order: str, random_first: int | None = None) -> Study:
        """Change the study's queue order ("random" / "uncertainty") and 'first N at random' (None: keep), the
        change recorded (queue_order_history); items already handed out keep how they were drawn."""

        def work(session: Session) -> Study:
            row = queue_order.set_queue_order(session, actor, study_id, order, random_first)
            return to_study(row, self._creator(session, row))

        return self._write("save a study to", work)

    def queue_order_history(self, actor: User, study_id: int) -> list[queue_order.QueueOrderChange]:
        """Who changed the study's queue order, when, from what to what; oldest first."""
        with self._read() as session:
            return queue_order.history(session, actor, study_id)

    # -- archive and delete ------------------------------------------------------------------------

    def set_archived(self, actor: User, study_id: int, archived: bool) -> Study:
        """Archive (hidden from annotators' study lists, no labelling; labels kept) or unarchive a study."""

        def work(session: Session) -> Study:
            require_admin(session, actor, "archive a study" if archived else "unarchive a study")
            row = study_row(session, study_id)
            if archived and row.archived_at is None:
                row.archived_at = _now()
                session.execute(delete(ClaimRow).where(ClaimRow.study_id == row.id))  # nobody holds an item now
            elif not archived:
                row.archived_at = None
            return to_study(row, self._creator(session, row))

        return self._write("save a study to", work)

    def delete_study(self, actor: User, study_id: int, confirm: str) -> DeletedStudy:
        """Delete the study and everything in it (items, labels, their edits, adjudications); not the judgments.

        Only an archived study (so nobody is labelling it), and only when `confirm` is the study's exact name:
        StudyInputError otherwise, and nothing is deleted. Export it first: this cannot be undone.
        """

        def work(session: Session) -> DeletedStudy:
            require_admin(session, actor, "delete a study")
            row = study_row(session, study_id)
            if row.archived_at is None:
                raise StudyInputError(f"The study {row.name!r} is not archived: annotators may be labelling it. "
                                      "Archive it first, export its labels, then delete it.")
            if not isinstance(confirm, str) or confirm.strip() != row.name:
                raise StudyInputError(f"To delete the study, type its name exactly ({row.name!r}); nothing was "
                                      "deleted.")
            items = session.scalar(select(func.count()).select_from(ItemRow).where(ItemRow.study_id == row.id)) or 0
            labels = self._label_count(session, row.id)
            labelled = select(AnnotationRow.id).where(AnnotationRow.study_id == row.id)
            session.execute(delete(AnnotationEditRow).where(AnnotationEditRow.annotation_id.in_(labelled)))
            for table in (AdjudicationRow, ClaimRow, StudyAnnotatorRow, StudySettingChangeRow, AnnotationRow, ItemRow):
                session.execute(delete(table).where(table.study_id == row.id))
            deleted = DeletedStudy(row.id, row.name, items, labels)
            session.delete(row)
            return deleted

        return self._write("delete a study from", work)

    # -- items -------------------------------------------------------------------------------------

    def set_item_removed(self, actor: User, item_id: int, removed: bool) -> Item:
        """Remove an item (out of the labelling queue and the agreement report; its labels stay in the exports)
        or put it back."""

        def work(session: Session) -> Item:
            require_admin(session, actor, "remove items" if removed else "restore items")
            row = session.get(ItemRow, check_id(item_id, "item"))
            if row is None:
                raise StudyInputError(f"There is no item with id {item_id!r}.")
            if removed and row.removed_at is None:
                row.removed_at = _now()
                session.execute(delete(ClaimRow).where(ClaimRow.item_id == row.id))  # nobody holds it any more
            elif not removed and row.removed_at is not None:
                row.removed_at = None
            return to_item(row)

        return self._write("save an item to", work)

    def browse_items(self, actor: User, study_id: int, *, state: str | None = None,
                     search: str = "") -> list[ItemSummary]:
        """The study's items (removed ones included, marked), filtered by state and search (items_browser.STATES)."""
        with self._read() as session:
            require_admin(session, actor, "browse a study's items")
            return items_browser.browse(session, study_row(session, study_id), state=state, search=search)

    def item_detail(self, actor: User, item_id: int) -> ItemDetail:
        """One item with every label (before and after the reveal, comment, evidence), their edits and its judgment."""
        with self._read() as session:
            require_admin(session, actor, "see an item's labels")
            return items_browser.detail(session, check_id(item_id, "item"))

    def annotator_progress(self, actor: User, study_id: int) -> list[AnnotatorProgress]:
        """Per annotator: labelled / assigned, median seconds per label, last active, changes after the reveal."""
        with self._read() as session:
            require_admin(session, actor, "see annotators' progress")
            return team_progress.progress(session, study_row(session, study_id))
