"""Who may label a study, and which of its items each annotator is dealt (the study's assignment).

A study is 'open' to every annotator (the default), or 'chosen': only the users in study_annotators may
see and label it (admins still see and manage every study). A chosen study may also split its items:
each item goes to overlap_target (k) of the chosen, active annotators, so an annotator's queue offers
only their share.

The deal is computed, never stored, so it needs no bookkeeping and changing the annotators re-deals at
once without touching a label: the items in queue order (order_key, id) are dealt round-robin over the
annotators sorted by id, k at a time (item i starts at annotator i*k mod n), which gives everyone the
same share within one item. Who already labelled an item keeps it: its labels fill places first, and
only its open places are dealt (see `deal`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Table, bindparam, delete, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from core.accounts import ADMIN, Me, User, UserRow, check_username, find_user, require_admin
from core.errors import PermissionDenied, StudyInputError
from core.store import Store
from core.studies.checks import check_id
from core.studies.rows import AnnotationRow, ItemRow, StudyAnnotatorRow, StudyRow, study_row

T = TypeVar("T")

OPEN, CHOSEN = "open", "chosen"
MODES = (OPEN, CHOSEN)

_items, _labels, _chosen, _users = (cast(Table, model.__table__)
                                    for model in (ItemRow, AnnotationRow, StudyAnnotatorRow, UserRow))
# Built once: next_item and submit run them for chosen studies.
_SQL_IS_CHOSEN = select(_chosen.c.user_id).where(_chosen.c.study_id == bindparam("study_id"),
                                                 _chosen.c.user_id == bindparam("user_id"))
_SQL_DEAL_ITEMS = (select(_items.c.id).where(_items.c.study_id == bindparam("study_id"), _items.c.removed_at.is_(None))
                   .order_by(_items.c.order_key, _items.c.id))
_SQL_DEAL_LABELS = select(_labels.c.item_id, _labels.c.annotator_id).where(_labels.c.study_id == bindparam("study_id"))
_SQL_DEAL_PEOPLE = (select(_chosen.c.user_id).join_from(_chosen, _users, _users.c.id == _chosen.c.user_id)
                    .where(_chosen.c.study_id == bindparam("study_id"), _users.c.active.is_(True))
                    .order_by(_chosen.c.user_id))


@dataclass(frozen=True)
class Assignment:
    """Who may label a study: every annotator (open) or the chosen ones, and whether its items are split."""

    study_id: int
    mode: str  # OPEN or CHOSEN
    split_items: bool
    annotators: tuple[str, ...]  # the chosen annotators' names, sorted (empty when open)


def deal(items: Sequence[int], people: Iterable[int], k: int,
         labellers: Mapping[int, Iterable[int]]) -> dict[int, tuple[int, ...]]:
    """item id -> the annotators it is dealt to, for `items` in queue order.

    Round-robin over `people` sorted, k at a time. An item's labellers among `people` keep it; its labels
    (anyone's) fill places first and only the open places go to the next annotators in its rotation.
    """
    order = sorted(set(people))
    n = len(order)
    dealt: dict[int, tuple[int, ...]] = {}
    for position, item in enumerate(items):
        done = set(labellers.get(item, ()))
        if not n:
            dealt[item] = ()
            continue
        start = position * min(k, n)
        rotation = [order[(start + step) % n] for step in range(n)]
        kept = [person for person in rotation if person in done]
        fresh = [person for person in rotation if person not in done][:max(k - len(done), 0)]
        dealt[item] = tuple(sorted(kept + fresh))
    return dealt


def study_deal(sql: Connection, study_id: int, k: int) -> dict[int, tuple[int, ...]]:
    """The deal of a study's items (removed ones left out) over its chosen, active annotators."""
    params = {"study_id": study_id}
    items = list(sql.execute(_SQL_DEAL_ITEMS, params).scalars())
    people = list(sql.execute(_SQL_DEAL_PEOPLE, params).scalars())
    labellers: dict[int, set[int]] = {}
    for item_id, annotator_id in sql.execute(_SQL_DEAL_LABELS, params):
        labellers.setdefault(item_id, set()).add(annotator_id)
    return deal(items, people, k, labellers)


def share_of(sql: Connection, study: Any, me: Me) -> list[int] | None:
    """The item ids `me` may label in `study` (a row with id, overlap_target, assignment, split_items); None:
    every item. PermissionDenied when the study is for chosen annotators and `me` is not one of them."""
    if (study.assignment or OPEN) != CHOSEN:
        return None
    if sql.execute(_SQL_IS_CHOSEN, {"study_id": study.id, "user_id": me.id}).first() is None:
        raise PermissionDenied(f"Study #{study.id} is for chosen annotators, and {me.username!r} is not one of them: "
                               "an admin can add you (People tab).")
    if not study.split_items:
        return None
    return [item for item, people in study_deal(sql, study.id, study.overlap_target).items() if me.id in people]


def open_to(user_id: int) -> ColumnElement[bool]:
    """A condition on StudyRow: the study is open to this user (open to all, or they are chosen)."""
    chosen_for = select(StudyAnnotatorRow.study_id).where(StudyAnnotatorRow.user_id == user_id)
    return or_(StudyRow.assignment != CHOSEN, StudyRow.id.in_(chosen_for))


def check_open_to(session: Session, study_id: int, me: Me) -> None:
    """PermissionDenied when `me` (not an admin) may not see this chosen study; nothing for an unknown study."""
    if me.role == ADMIN:
        return
    row = session.execute(select(StudyRow.id, StudyRow.assignment).where(StudyRow.id == study_id)).one_or_none()
    if row is not None and row.assignment == CHOSEN and session.connection().execute(
            _SQL_IS_CHOSEN, {"study_id": row.id, "user_id": me.id}).first() is None:
        raise PermissionDenied(f"Study #{row.id} is for chosen annotators, and {me.username!r} is not one of them.")


def assigned_counts(session: Session, study_id: int, user_ids: Iterable[int]) -> dict[int, int]:
    """How many items of the study each user is assigned (the "assigned" of "labelled / assigned").

    Open study: every (not removed) item, for everyone. Chosen: every item for the chosen, 0 for others;
    split: each chosen, active annotator's share (labelled items they keep included).
    """
    sql = session.connection()
    study = session.get(StudyRow, check_id(study_id, "study"))
    if study is None:
        raise StudyInputError(f"There is no study with id {study_id!r}.")
    wanted = list(user_ids)
    if study.assignment != CHOSEN:
        total = len(sql.execute(_SQL_DEAL_ITEMS, {"study_id": study.id}).all())
        return dict.fromkeys(wanted, total)
    chosen = set(session.scalars(select(StudyAnnotatorRow.user_id).where(StudyAnnotatorRow.study_id == study.id)))
    if not study.split_items:
        total = len(sql.execute(_SQL_DEAL_ITEMS, {"study_id": study.id}).all())
        return {user: total if user in chosen else 0 for user in wanted}
    counts = dict.fromkeys(wanted, 0)
    for people in study_deal(sql, study.id, study.overlap_target).values():
        for person in people:
            if person in counts:
                counts[person] += 1
    return counts


def assigned_count(session: Session, study_id: int, user_id: int) -> int:
    """How many items of the study one user is assigned (assigned_counts for one user)."""
    return assigned_counts(session, study_id, [user_id])[user_id]


class Assignments:
    """Read and change who may label a study (admins; `actor` None is the command line, the database's owner)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _write(self, action: str, work: Callable[[Session], T]) -> T:
        return self._store.write(action, work)

    def _read(self) -> AbstractContextManager[Session]:
        return self._store.session("read")


    @staticmethod
    def _current(session: Session, study: StudyRow) -> Assignment:
        names = session.scalars(select(UserRow.username)
                                .join(StudyAnnotatorRow, StudyAnnotatorRow.user_id == UserRow.id)
                                .where(StudyAnnotatorRow.study_id == study.id).order_by(UserRow.username))
        chosen = study.assignment == CHOSEN
        return Assignment(study.id, CHOSEN if chosen else OPEN, chosen and bool(study.split_items),
                          tuple(names) if chosen else ())

    def get(self, actor: User | None, study_id: int) -> Assignment:
        """The study's assignment (admins only)."""
        with self._read() as session:
            if actor is not None:
                require_admin(session, actor, "see who may label a study")
            return self._current(session, study_row(session, study_id))

    def set(self, actor: User | None, study_id: int, mode: str, annotators: Iterable[str] = (), *,
            split: bool = False) -> Assignment:
        """Open the study to every annotator, or to the chosen `annotators` (usernames), items split or not.

        StudyInputError for an unknown mode or user, a chosen study with nobody chosen or with a deactivated
        user, or a split without chosen annotators. Labels are never touched: a re-deal moves open places only.
        """
        if mode not in MODES:
            raise StudyInputError(f"The assignment must be {OPEN!r} or {CHOSEN!r}, not {mode!r}.")
        if isinstance(annotators, str):
            annotators = [part for part in annotators.split(",") if part.strip()]
        names = sorted({check_username(name) for name in annotators}) if mode == CHOSEN else []
        if mode == OPEN and split:
            raise StudyInputError("Splitting items needs chosen annotators: choose who labels the study.")
        if mode == CHOSEN and not names:
            raise StudyInputError("Choose at least one annotator, or open the study to every annotator.")

        def work(session: Session) -> Assignment:
            if actor is not None:
                require_admin(session, actor, "choose who may label a study")
            study = study_row(session, study_id)
            rows = {name: row for name in names if (row := find_user(session, name)) is not None}
            unknown = [name for name in names if name not in rows]
            if unknown:
                raise StudyInputError(f"There is no user {', '.join(map(repr, unknown))}.")
            inactive = [name for name in names if not rows[name].active]
            if inactive:
                raise StudyInputError(f"{', '.join(map(repr, inactive))} is deactivated: reactivate them first.")
            session.execute(delete(StudyAnnotatorRow).where(StudyAnnotatorRow.study_id == study.id))
            chosen = sorted({rows[name].id for name in names})  # "Ada" and "ada" are one person
            session.add_all(StudyAnnotatorRow(study_id=study.id, user_id=user_id) for user_id in chosen)
            study.assignment = mode
            study.split_items = bool(split)
            study.updated_at = datetime.now(UTC)
            session.flush()
            return self._current(session, study)

        return self._write("save who may label a study to", work)

    def assigned(self, actor: User | None, study_id: int) -> dict[str, int]:
        """username -> items assigned, for every active user who may label the study (admins only)."""
        with self._read() as session:
            if actor is not None:
                require_admin(session, actor, "see who is assigned what")
            study = study_row(session, study_id)
            users = session.execute(select(UserRow.id, UserRow.username).where(UserRow.active.is_(True))
                                    .order_by(UserRow.username)).all()
            if study.assignment == CHOSEN:
                chosen = set(session.scalars(select(StudyAnnotatorRow.user_id)
                                             .where(StudyAnnotatorRow.study_id == study.id)))
                users = [user for user in users if user.id in chosen]
            counts = assigned_counts(session, study.id, [user.id for user in users])
            return {user.username: counts[user.id] for user in users}
