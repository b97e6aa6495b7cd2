"""The labelling queue: which item an annotator gets next, and the claims that spread annotators out.

Items are offered in a stable pseudo-random order (order_key, a hash of study and item ids), or, in a study
whose queue order is 'uncertainty' (core.studies.queue_order), least-confident judgment first: items already
drawn at random first (so the random sample gets its overlap filled), then by the stored confidence of the
item's judgment, ascending, then items without a judgment (or without a confidence) in the random order.
With random_first = N, the random order is used until N items were drawn at random. The claim that hands an
item out first records how it was drawn (items.drawn_by), once.
Studies.next_item claims the item it hands out, so annotators working at the same moment spread over
different items instead of all over-filling the first one; Studies.submit claims the annotator's next
item in its own transaction, so the usual submit -> next_item round trip commits once.

The labelling hot path (next_item, submit) runs these Core statements, built once: building and
ORM-loading a statement per call cost more than the SQL itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, delete, func, insert, literal, select, update
from sqlalchemy.engine import Connection, Row

from core.errors import StudyInputError
from core.judgments import JudgmentRow
from core.studies.checks import check_id
from core.studies.queue_order import RANDOM, UNCERTAINTY
from core.studies.rows import AnnotationRow, ClaimRow, ItemRow, StudyRow

# How long an item handed out by next_item stays reserved for that annotator (an abandoned tab frees it then).
CLAIM_SECONDS = 20 * 60

_studies, _items, _labels, _claims, _judgments = (
    cast(Table, model.__table__) for model in (StudyRow, ItemRow, AnnotationRow, ClaimRow, JudgmentRow)
)
_SQL_QUEUE_STUDY = (select(_studies.c.id, _studies.c.overlap_target, _studies.c.blind, _studies.c.name,
                           _studies.c.archived_at, _studies.c.assignment, _studies.c.split_items,
                           _studies.c.queue_order, _studies.c.random_first)
                    .where(_studies.c.id == bindparam("study_id")))
# The queue's writes in one study take turns on PostgreSQL, as SQLite's single writer makes them: a row lock on the
# study, held to the commit, so pick() sees every claim committed before it (without it, processes labelling at once
# all read the same first open item and claim it past k). NO KEY UPDATE: rows that merely reference the study (new
# items, labels) need not wait for it. SQLite renders no FOR UPDATE: BEGIN IMMEDIATE already serialized the writes.
_SQL_LOCK_QUEUE = (select(_studies.c.id).where(_studies.c.id == bindparam("study_id"))
                   .with_for_update(key_share=True))
_LABELS_OF_ITEM = (select(func.count()).select_from(_labels).where(_labels.c.item_id == _items.c.id)
                   .correlate(_items).scalar_subquery())
_CLAIMS_BY_OTHERS = (select(func.count()).select_from(_claims)
                     .where(_claims.c.item_id == _items.c.id, _claims.c.annotator_id != bindparam("me"),
                            _claims.c.claimed_at > bindparam("since"))
                     .correlate(_items).scalar_subquery())
_WAITING = (_items.c.study_id == bindparam("study_id"), _items.c.removed_at.is_(None),
            _items.c.id.not_in(bindparam("skip", expanding=True)),
            _items.c.id.not_in(select(_labels.c.item_id).where(_labels.c.study_id == bindparam("study_id"),
                                                               _labels.c.annotator_id == bindparam("me"))))
# Each statement names the rule it draws by (`rule`), which claim() records on an item handed out first.
_QUEUE = (select(*_items.c, literal(RANDOM).label("rule")).where(*_WAITING)
          .order_by(_items.c.order_key, _items.c.id).limit(1))
_CONFIDENCE = _judgments.c.confidence
_QUEUE_UNSURE = (select(*_items.c, literal(UNCERTAINTY).label("rule"))
                 .select_from(_items.outerjoin(_judgments, _judgments.c.id == _items.c.judgment_id))
                 .where(*_WAITING)
                 .order_by(case((_items.c.drawn_by == RANDOM, 0), else_=1),  # the random sample's open places first
                           case((_CONFIDENCE.is_(None), 1), else_=0), _CONFIDENCE,  # least sure first, none last
                           _items.c.order_key, _items.c.id)
                 .limit(1))
# Slower than the random order, which walks ix_items_study_order and stops at the first open item: this one sorts
# every waiting item by its judgment's confidence (read from the wide judgments row) after counting its open places.
# Measured on 10,000 items (SQLite, 2 shared CPUs): a round (submit + next_item) about 100 ms here, 1 ms at random.
_FREE = _LABELS_OF_ITEM + _CLAIMS_BY_OTHERS < bindparam("k")  # open, unclaimed places
_ANY = _LABELS_OF_ITEM < bindparam("k")  # open places, claimed or not
# The same within an annotator's share of a split study (core.studies.assignment).
_ONLY = _items.c.id.in_(bindparam("only", expanding=True))
# (free, any) statements by (rule, within a share?).
_SQL_NEXT = {(rule, only): (queue.where(_FREE, *where), queue.where(_ANY, *where))
             for rule, queue in ((RANDOM, _QUEUE), (UNCERTAINTY, _QUEUE_UNSURE))
             for only, where in ((False, ()), (True, (_ONLY,)))}
# The same free-place statements for a write transaction that claims what it picks. On PostgreSQL (and any database
# with row locks) two annotators asking at the same moment each run pick() before the other's claim is committed;
# locking the picked item row and skipping rows another transaction holds (FOR NO KEY UPDATE OF items SKIP LOCKED)
# hands them different items whenever one is free. NO KEY UPDATE, not UPDATE: a label or a claim inserted for the
# item (a foreign-key check, FOR KEY SHARE) does not wait for it. SQLite compiles no FOR UPDATE: its one writer
# (BEGIN IMMEDIATE) already runs these transactions one at a time.
_SQL_NEXT_LOCKED = {key: (free.with_for_update(skip_locked=True, key_share=True, of=_items), any_)
                    for key, (free, any_) in _SQL_NEXT.items()}
# Whether the item locked by such a pick still has a free place, read with a new snapshot: a claim committed after the
# pick's statement began, but before it reached the row, was neither locked nor seen by it.
_SQL_STILL_FREE = select(_items.c.id).where(_items.c.id == bindparam("picked"), _FREE)
# How many items were drawn at random, counted up to :n (enough to know whether random_first is reached).
_SQL_DRAWN_AT_RANDOM = select(func.count()).select_from(
    select(_items.c.id).where(_items.c.study_id == bindparam("study_id"), _items.c.drawn_by == RANDOM)
    .limit(bindparam("n")).subquery())
_SQL_MARK_DRAWN = (update(_items).where(_items.c.id == bindparam("drawn_item"), _items.c.drawn_by.is_(None))
                   .values(drawn_by=bindparam("drawn_rule")))
# (Bind names differ from column names: UPDATE reserves those for its SET clause.)
_MY_CLAIM = (_claims.c.study_id == bindparam("claim_study")) & (_claims.c.annotator_id == bindparam("claimer"))
_SQL_CLAIM_MOVE = update(_claims).where(_MY_CLAIM).values(item_id=bindparam("claim_item"),
                                                          claimed_at=bindparam("claim_at"))
_SQL_CLAIM_ADD = insert(_claims)
_SQL_CLAIM_DROP = delete(_claims).where(_MY_CLAIM)
_SQL_MY_CLAIM = select(_claims.c.item_id, _claims.c.claimed_at).where(_MY_CLAIM)
_SQL_ITEM_FOR_LABEL = (select(_items.c.id, _items.c.study_id, _items.c.fields, _studies.c.scale_min,
                              _studies.c.scale_max, _studies.c.overlap_target, _items.c.removed_at,
                              _studies.c.archived_at, _studies.c.name, _studies.c.assignment,
                              _studies.c.split_items, _studies.c.queue_order, _studies.c.random_first,
                              _studies.c.mode, _studies.c.allow_tie)
                       .join_from(_items, _studies, _studies.c.id == _items.c.study_id)
                       .where(_items.c.id == bindparam("item")))
_SQL_MY_LABEL = select(*_labels.c).where(_labels.c.item_id == bindparam("item"),
                                         _labels.c.annotator_id == bindparam("me"))
_SQL_ADD_LABEL = insert(_labels)

# A Core row of any width (the queue's statements select different columns).
AnyRow = Row[*tuple[Any, ...]]


def queue_key(study_id: int, item_id: int) -> int:
    """A stable pseudo-random queue position: the same on every machine and run, unrelated to insertion order."""
    digest = hashlib.sha256(f"glider-studio/queue/{study_id}/{item_id}".encode()).digest()
    return int.from_bytes(digest[:7], "big")  # 56 bits: fits a signed 64-bit BIGINT everywhere


def queue_study(sql: Connection, study_id: int) -> AnyRow:
    """(id, overlap_target, blind, name, archived_at, assignment, split_items) of the study; StudyInputError when
    there is none or it is archived."""
    study = sql.execute(_SQL_QUEUE_STUDY, {"study_id": check_id(study_id, "study")}).one_or_none()
    if study is None:
        raise StudyInputError(f"There is no study with id {study_id!r}.")
    _check_open(study.name, study.archived_at)
    return study


def lock_queue(sql: Connection, study_id: int) -> None:
    """Hold the study's queue until this transaction ends (PostgreSQL: a row lock; SQLite: already held)."""
    sql.execute(_SQL_LOCK_QUEUE, {"study_id": study_id})


def _check_open(name: str, archived_at: datetime | None) -> None:
    if archived_at is not None:
        raise StudyInputError(f"The study {name!r} is archived: it takes no labels now. An admin can unarchive it "
                              "in the Manage tab (python -m core unarchive-study).")


def drawing_rule(sql: Connection, study: Any) -> str:
    """How the study's queue draws now: RANDOM, or UNCERTAINTY once random_first items were drawn at random.

    `study`: a row with id, queue_order and random_first. Only items drawn at random count toward
    random_first, so a study switched to a mixed order later still gets its N random items.
    """
    if (study.queue_order or RANDOM) != UNCERTAINTY:
        return RANDOM
    wanted = int(study.random_first or 0)
    if wanted and sql.execute(_SQL_DRAWN_AT_RANDOM, {"study_id": study.id, "n": wanted}).scalar_one() < wanted:
        return RANDOM
    return UNCERTAINTY


def pick(sql: Connection, me_id: int, study: Any, now: datetime, claim_seconds: float,
         skip: Sequence[int] = (), only: Sequence[int] | None = None, *, lock: bool = False) -> AnyRow | None:
    """The first queue item with an open place no one else has claimed, else the first with any open place;
    `only`: among these items (an annotator's share of a split study), None: among all. The row's `rule` is
    how it was drawn (drawing_rule): give it to claim(). `lock`: in the write transaction that claims it, lock the
    free item picked and skip items other such transactions hold (see _SQL_NEXT_LOCKED)."""
    params = {"study_id": study.id, "me": me_id, "k": study.overlap_target, "skip": list(skip),
              "since": now - timedelta(seconds=claim_seconds)}
    if only is not None:
        params["only"] = list(only)
    free, any_ = (_SQL_NEXT_LOCKED if lock else _SQL_NEXT)[(drawing_rule(sql, study), only is not None)]
    row = sql.execute(free, params).one_or_none()
    if lock and sql.dialect.name != "sqlite":
        while row is not None and sql.execute(_SQL_STILL_FREE, {**params, "picked": row.id}).first() is None:
            params["skip"] = [*params["skip"], row.id]  # taken meanwhile: the next free one
            row = sql.execute(free, params).one_or_none()
    return row if row is not None else sql.execute(any_, params).one_or_none()


def my_claim(sql: Connection, study_id: int, me_id: int) -> AnyRow | None:
    """(item_id, claimed_at) of the annotator's claim in this study, or None."""
    return sql.execute(_SQL_MY_CLAIM, {"claim_study": study_id, "claimer": me_id}).one_or_none()


def claim(sql: Connection, study_id: int, me_id: int, picked: AnyRow | None, now: datetime) -> None:
    """Point the annotator's one claim in this study at the item pick() gave (None: drop it); an item handed
    out for the first time records how it was drawn (items.drawn_by, never changed afterwards)."""
    mine = {"claim_study": study_id, "claimer": me_id}
    if picked is None:
        sql.execute(_SQL_CLAIM_DROP, mine)
        return
    item_id = picked.id
    if picked.drawn_by is None:
        sql.execute(_SQL_MARK_DRAWN, {"drawn_item": item_id, "drawn_rule": picked.rule})
    if not sql.execute(_SQL_CLAIM_MOVE, {**mine, "claim_item": item_id, "claim_at": now}).rowcount:
        sql.execute(_SQL_CLAIM_ADD, {"study_id": study_id, "annotator_id": me_id, "item_id": item_id,
                                     "claimed_at": now})


def item_for_label(sql: Connection, item_id: int) -> AnyRow:
    """(id, study_id, fields, scale_min, scale_max, overlap_target, ..., assignment, split_items) of the item;
    StudyInputError when there is none, it was removed, or its study is archived."""
    item = sql.execute(_SQL_ITEM_FOR_LABEL, {"item": check_id(item_id, "item")}).one_or_none()
    if item is None:
        raise StudyInputError(f"There is no item with id {item_id!r}.")
    if item.removed_at is not None:
        raise StudyInputError(f"Item #{item.id} was removed from the study by an admin: it takes no more labels.")
    _check_open(item.name, item.archived_at)
    return item


def my_label(sql: Connection, item_id: int, me_id: int) -> AnyRow | None:
    """The annotator's label of this item (a Core row of the annotations table), or None."""
    return sql.execute(_SQL_MY_LABEL, {"item": item_id, "me": me_id}).one_or_none()


def add_label(sql: Connection, values: dict[str, Any]) -> int:
    """Insert one label (the annotations table's columns); its new id."""
    added = sql.execute(_SQL_ADD_LABEL, values).inserted_primary_key
    assert added is not None  # an INSERT into a table with an integer primary key
    return int(added[0])
