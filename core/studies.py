"""Human-agreement studies: annotators, studies, items, blind annotations with edit history.

The value types, the exceptions and the public method signatures below are a contract the UI codes
against. Every method that reads or changes labels takes the signed-in `actor` and checks it against
the database (so a demoted or deleted user loses access at once): annotators only ever see and
change their own labels, admins see everything. Study tables live in the same database as
judgments; they are created by migration 2 in core.store, and every write is one short transaction
(BEGIN IMMEDIATE on SQLite, retried when the file stays locked).

Queue: items are offered in a stable pseudo-random order (order_key, a hash of study and item ids).
next_item claims the item it hands out, so annotators working at the same moment spread over
different items instead of all over-filling the first one; submit() claims the annotator's next
item in its own transaction, so the usual submit -> next_item round trip commits once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import numbers
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple, TypeVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.errors import GliderError, InputError, RubricError, StorageError
from core.judgments import JudgmentRow, StoredJudgment
from core.prompt import infer_scale
from core.store import Base, Store, UTCDateTime
from core.tables import RowError, TableError, is_blank, preview_value, read_table

ADMIN, ANNOTATOR = "admin", "annotator"
ROLES = (ADMIN, ANNOTATOR)

MIN_PASSWORD_LENGTH = 8
MAX_USERNAME_LENGTH = 64
# Letters (any script), digits and . _ @ - : no spaces, so a name is unambiguous in logs and on the CLI.
_USERNAME = re.compile(r"[\w.@-]+")
_BAD_TAG_CHARS = re.compile(r"[<>\n\r]")

# scrypt cost: 2**14 x 8 x 1 is ~16 MiB and ~50 ms per check (OWASP's minimum for interactive logins).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SCRYPT_DKLEN, _SALT_BYTES = 2**14, 8, 1, 32, 16
_SCRYPT_MAX_N = 2**20  # refuse stored parameters that would make one check take minutes

# How long an item handed out by next_item stays reserved for that annotator (an abandoned tab frees it then).
CLAIM_SECONDS = 20 * 60

# A write that finds the database locked (or loses a race on the one-label rule) is retried this often.
_WRITE_ATTEMPTS = 6

T = TypeVar("T")


class PermissionDenied(GliderError):
    """The signed-in user may not see or change this."""


class StudyInputError(InputError):
    """A study, item, file or label is not acceptable as given; the message says why."""


class DuplicateItemError(StudyInputError):
    """The study already has an item with these fields: a copy would be labelled and counted twice."""

    def __init__(self, message: str, *, item_id: int, external_id: str | None) -> None:
        super().__init__(message)
        self.item_id = item_id  # the item already in the study
        self.external_id = external_id


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str  # "admin" | "annotator"
    created_at: datetime
    # The grade right (with sign-in on: the Grade tab, /grade, History, Batch): admins by their role,
    # annotators only when an admin granted it (Studies.set_grading).
    can_grade: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


@dataclass(frozen=True)
class StudySpec:
    """What an admin fills in to create a study."""

    name: str
    pass_criteria: str
    rubric: str
    tags: tuple[str, ...] = ("CONTEXT", "USER INPUT", "MODEL OUTPUT", "GOLD ANSWER")
    description: str = ""
    overlap_target: int = 3  # how many different annotators should label each item
    blind: bool = True  # hide the model's verdict until the human has submitted
    judge_settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Study:
    id: int
    name: str
    description: str
    pass_criteria: str
    rubric: str
    scale: tuple[int, int]
    tags: tuple[str, ...]
    overlap_target: int
    blind: bool
    judge_settings: dict[str, Any]
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Item:
    id: int
    study_id: int
    fields: dict[str, str]  # tag -> text, in the study's tag order; blank fields may be absent
    external_id: str | None  # the id column of an imported file, if any
    judgment_id: int | None  # the model's stored judgment (core.store), once graded
    order_key: int  # stable pseudo-random position in the labelling queue


@dataclass(frozen=True)
class Annotation:
    id: int
    study_id: int
    item_id: int
    annotator: str  # username
    score: int  # the current score: the revised one when revised, else the first one
    score_before_reveal: int  # the score given before the model's verdict was shown
    score_after_reveal: int | None  # the (possibly equal) score confirmed after the reveal; None if not yet
    spans: list[dict[str, Any]]  # human evidence: each {"field", "start", "end"} (character offsets)
    comment: str
    seconds: float  # time spent on the item
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AnnotationEdit:
    annotation_id: int
    editor: str
    at: datetime
    changes: dict[str, tuple[Any, Any]]  # field name -> (old, new)


@dataclass(frozen=True)
class Progress:
    labelled_by_me: int
    total_items: int
    items_complete: int  # items with >= overlap_target labels
    overlap_target: int
    annotators: int  # distinct annotators with at least one label


@dataclass(frozen=True)
class ImportReport:
    added: int
    item_ids: list[int]
    errors: list[RowError]


# --------------------------------------------------------------------------------------------------
# ORM models: the current shape of the tables that migration 2 (core.store) creates. No relationships:
# each query names the joins it needs, so the labelling hot path loads nothing it does not use.


class UserRow(Base):
    """A person who signs in (table `users`)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    can_grade: Mapped[bool] = mapped_column(Boolean, default=False)  # added by migration 4


class StudyRow(Base):
    """One study (table `studies`)."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
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


class ItemRow(Base):
    """One thing to label (table `items`)."""

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    fields: Mapped[list[list[str]]] = mapped_column(JSON)  # [[tag, text], ...] in the study's tag order
    external_id: Mapped[str | None] = mapped_column(String(512))
    judgment_id: Mapped[int | None] = mapped_column(ForeignKey("judgments.id", ondelete="SET NULL"), index=True)
    order_key: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


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


# --------------------------------------------------------------------------------------------------
# Passwords


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, n: int = _SCRYPT_N) -> str:
    """A salted scrypt hash "scrypt$n$r$p$salt_b64$hash_b64" (parameters and salt travel with it)."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, n, _SCRYPT_R, _SCRYPT_P, _SCRYPT_DKLEN)
    return f"scrypt${n}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches the stored hash; compared in constant time; False for a damaged hash."""
    try:
        algorithm, n, r, p, salt_b64, digest_b64 = encoded.split("$")
        n_, r_, p_ = int(n), int(r), int(p)
        salt, expected = base64.b64decode(salt_b64, validate=True), base64.b64decode(digest_b64, validate=True)
    except (ValueError, binascii.Error):
        return False
    if algorithm != "scrypt" or not (1 < n_ <= _SCRYPT_MAX_N and 0 < r_ <= 32 and 0 < p_ <= 16) or not expected:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n_, r_, p_, len(expected)), expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # maxmem: scrypt needs 128*r*n bytes (+ a little); OpenSSL's default cap (32 MiB) is too tight for n=2**15.
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen,
                          maxmem=2 * 128 * r * n * max(p, 1) + 2**20)


_DUMMY_HASHES: dict[int, str] = {}


def _dummy_hash(n: int) -> str:
    """A hash checked for unknown usernames, so a login takes as long whether or not the name exists."""
    if n not in _DUMMY_HASHES:
        _DUMMY_HASHES[n] = hash_password(secrets.token_urlsafe(16), n=n)
    return _DUMMY_HASHES[n]


# --------------------------------------------------------------------------------------------------
# Small pure helpers


def _now() -> datetime:
    return datetime.now(UTC)


def _order_key(study_id: int, item_id: int) -> int:
    """A stable pseudo-random queue position: the same on every machine and run, unrelated to insertion order."""
    digest = hashlib.sha256(f"glider-studio/queue/{study_id}/{item_id}".encode()).digest()
    return int.from_bytes(digest[:7], "big")  # 56 bits: fits a signed 64-bit BIGINT everywhere


def _check_username(username: object) -> str:
    if not isinstance(username, str):
        raise StudyInputError("The username must be text.")
    name = username.strip()
    if not name:
        raise StudyInputError("The username is empty.")
    if len(name) > MAX_USERNAME_LENGTH or not _USERNAME.fullmatch(name):
        raise StudyInputError(
            f"Username {name!r} is not allowed: use up to {MAX_USERNAME_LENGTH} letters, digits, '.', '_', '@' or "
            "'-' (no spaces)."
        )
    return name


def _check_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise StudyInputError(f"The {what} must be a whole number; got {value!r}.")
    return int(value)


def _id(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StudyInputError(f"There is no {what} with id {value!r}.")
    return value


def _check_score(score: object, scale: tuple[int, int]) -> int:
    value = _check_int(score, "score")
    if not scale[0] <= value <= scale[1]:
        raise StudyInputError(f"The score {value} is outside this study's scale {scale[0]}-{scale[1]}.")
    return value


def _check_tags(tags: Iterable[str]) -> list[str]:
    if isinstance(tags, str):
        raise StudyInputError("Tags must be a list of names such as ('CONTEXT', 'MODEL OUTPUT'), not one string.")
    names: list[str] = []
    for tag in tags:
        name = tag.strip() if isinstance(tag, str) else ""
        if not name:
            raise StudyInputError("A field tag is empty; give every field a name such as 'MODEL OUTPUT'.")
        if _BAD_TAG_CHARS.search(name):
            raise StudyInputError(f"Field tag {name!r} may not contain '<', '>' or line breaks.")
        if name in names:
            raise StudyInputError(f"Field tag {name!r} appears twice.")
        names.append(name)
    if not names:
        raise StudyInputError("A study needs at least one field tag, such as 'MODEL OUTPUT'.")
    return names


def _check_spans(spans: Sequence[Mapping[str, Any]], fields: Mapping[str, str]) -> list[dict[str, Any]]:
    """Validated {"field", "start", "end"} spans, sorted and without duplicates."""
    if isinstance(spans, (str, bytes)) or not isinstance(spans, Iterable):
        raise StudyInputError("Spans must be a list of {'field', 'start', 'end'} objects.")
    checked: list[tuple[str, int, int]] = []
    for number, span in enumerate(spans, 1):
        if not isinstance(span, Mapping) or not {"field", "start", "end"} <= set(span):
            raise StudyInputError(f"Span {number} must have 'field', 'start' and 'end'; got {span!r}.")
        tag = span["field"]
        if tag not in fields:
            raise StudyInputError(f"Span {number} names the field {tag!r}, which this item does not have.")
        start, end = _check_int(span["start"], "span start"), _check_int(span["end"], "span end")
        length = len(fields[tag])
        if not 0 <= start < end <= length:
            raise StudyInputError(
                f"Span {number} ({start}-{end}) is outside the {tag} text, which has {length} characters "
                "(need 0 <= start < end <= length)."
            )
        checked.append((tag, start, end))
    order = {tag: position for position, tag in enumerate(fields)}
    unique = sorted(set(checked), key=lambda s: (order[s[0]], s[1], s[2]))
    return [{"field": tag, "start": start, "end": end} for tag, start, end in unique]


ItemKey = tuple[tuple[str, str], ...]


def _item_key(pairs: Iterable[Sequence[str]]) -> ItemKey:
    """What makes two items of a study the same item: the same text in the same fields.

    Line endings (CRLF from a spreadsheet, LF from a form) and whitespace around a field's text count
    as equal: they only record where the text was copied from, and an annotator cannot see them, so
    two such items would be labelled as one and counted twice. Whitespace inside the text counts: a
    line break or an indent can change what it says (code, lists, verse), and the Label tab shows it.
    """
    return tuple((tag, text.replace("\r\n", "\n").replace("\r", "\n").strip()) for tag, text in pairs)


def _describe_item(item_id: int, external_id: str | None) -> str:
    return f"item #{item_id}" + (f" (id {external_id!r})" if external_id is not None else "")


def _check_comment(comment: object) -> str:
    if not isinstance(comment, str):
        raise StudyInputError("The comment must be text.")
    return comment


def _check_seconds(seconds: object) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not math.isfinite(float(seconds)):
        raise StudyInputError(f"The time spent must be a number of seconds; got {seconds!r}.")
    if seconds < 0:
        raise StudyInputError("The time spent cannot be negative.")
    return float(seconds)


def _jsonable(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as error:
        raise StudyInputError(f"The {what} must be JSON data (text, numbers, lists, objects): {error}.") from error


def _is_retryable(error: StorageError, integrity_retries_left: bool) -> bool:
    cause = error.__cause__
    if isinstance(cause, OperationalError):
        text = str(cause).lower()
        return "locked" in text or "busy" in text
    # Another writer stored the same (item, annotator) label between our check and insert (databases
    # without SQLite's up-front write lock): run the work again, which now sees that label.
    return isinstance(cause, IntegrityError) and integrity_retries_left


# --------------------------------------------------------------------------------------------------
# Row conversion


def _read_study_table(path: str | Path) -> Any:
    """read_table, with its errors as StudyInputError (what the study UI and CLI catch)."""
    try:
        return read_table(path)
    except TableError as error:
        raise StudyInputError(str(error)) from error


class _Me(NamedTuple):
    """The signed-in user as the database knows them now (the role is never taken from the caller)."""

    id: int
    username: str
    role: str


def _item(row: Any, *, hide_judgment: bool = False) -> Item:
    """An Item from an ItemRow or a Core row of the items table."""
    return Item(
        id=row.id,
        study_id=row.study_id,
        fields={tag: text for tag, text in row.fields},
        external_id=row.external_id,
        judgment_id=None if hide_judgment else row.judgment_id,
        order_key=row.order_key,
    )


def _user(row: UserRow) -> User:
    return User(id=row.id, username=row.username, role=row.role, created_at=row.created_at,
                can_grade=row.role == ADMIN or bool(row.can_grade))


def _fingerprint(texts: Iterable[object]) -> Counter[str]:
    """The non-blank texts of an item or a grade request, whitespace collapsed, as a multiset.

    Tags are left out on purpose: the same texts under renamed tags still ask the judge about the item.
    """
    found: Counter[str] = Counter()
    for value in texts:
        words = " ".join(str(value).split()) if value is not None else ""
        if words:
            found[words] += 1
    return found


@dataclass(frozen=True)
class BlindGuard:
    """What one user may not see of the judge's verdicts: the items of blind studies they have not labelled.

    Built by Studies.blind_guard; empty for an admin (who may see everything).
    """

    username: str
    hidden_judgments: frozenset[int] = frozenset()  # judgments attached to such items
    items: tuple[tuple[int, Counter[str]], ...] = ()  # (item id, fingerprint) of such items

    def covers(self, fields: Mapping[str, str] | Sequence[Sequence[str]]) -> int | None:
        """The id of the hidden item whose every text the given fields contain, or None."""
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        asked = _fingerprint(pair[1] for pair in pairs)
        for item_id, item in self.items:
            if item and not item - asked:  # every text of the item is in the request
                return item_id
        return None

    def hides(self, judgment_id: int, fields: Mapping[str, str] | Sequence[Sequence[str]]) -> bool:
        """Whether a stored judgment is a verdict this user may not see (attached to, or graded on, a hidden item)."""
        return judgment_id in self.hidden_judgments or self.covers(fields) is not None

    def check(self, fields: Mapping[str, str]) -> None:
        """PermissionDenied when these fields are (or contain) a blind item this user has not labelled."""
        item_id = self.covers(fields)
        if item_id is not None:
            raise PermissionDenied(
                f"These fields are item #{item_id} of a blind study that {self.username!r} has not labelled yet: "
                "its verdict stays hidden until you have labelled it in the Label tab.")


def _study(row: StudyRow, created_by: str) -> Study:
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
    )


def _annotation(row: Any, annotator: str) -> Annotation:
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
    )


def _edit(row: AnnotationEditRow, editor: str) -> AnnotationEdit:
    return AnnotationEdit(
        annotation_id=row.annotation_id,
        editor=editor,
        at=row.at,
        changes={name: (pair[0], pair[1]) for name, pair in row.changes.items()},
    )


_STUDIES = select(StudyRow, UserRow.username).join(UserRow, UserRow.id == StudyRow.created_by_id)
_ANNOTATIONS = select(AnnotationRow, UserRow.username).join(UserRow, UserRow.id == AnnotationRow.annotator_id)

# The labelling hot path (next_item, submit, and the actor check of every call) runs these Core
# statements, built once: building and ORM-loading a statement per call cost more than the SQL itself.
_users, _studies, _items, _labels, _claims = (
    cast(Table, model.__table__) for model in (UserRow, StudyRow, ItemRow, AnnotationRow, ClaimRow)
)
_SQL_ME = select(_users.c.id, _users.c.username, _users.c.role).where(_users.c.id == bindparam("user_id"))
_SQL_QUEUE_STUDY = (select(_studies.c.id, _studies.c.overlap_target, _studies.c.blind)
                    .where(_studies.c.id == bindparam("study_id")))
_LABELS_OF_ITEM = (select(func.count()).select_from(_labels).where(_labels.c.item_id == _items.c.id)
                   .correlate(_items).scalar_subquery())
_CLAIMS_BY_OTHERS = (select(func.count()).select_from(_claims)
                     .where(_claims.c.item_id == _items.c.id, _claims.c.annotator_id != bindparam("me"),
                            _claims.c.claimed_at > bindparam("since"))
                     .correlate(_items).scalar_subquery())
_QUEUE = (select(*_items.c)
          .where(_items.c.study_id == bindparam("study_id"),
                 _items.c.id.not_in(bindparam("skip", expanding=True)),
                 _items.c.id.not_in(select(_labels.c.item_id).where(_labels.c.study_id == bindparam("study_id"),
                                                                    _labels.c.annotator_id == bindparam("me"))))
          .order_by(_items.c.order_key, _items.c.id)
          .limit(1))
_SQL_NEXT_FREE = _QUEUE.where(_LABELS_OF_ITEM + _CLAIMS_BY_OTHERS < bindparam("k"))  # open, unclaimed places
_SQL_NEXT_ANY = _QUEUE.where(_LABELS_OF_ITEM < bindparam("k"))  # open places, claimed or not
# (Bind names differ from column names: UPDATE reserves those for its SET clause.)
_MY_CLAIM = (_claims.c.study_id == bindparam("claim_study")) & (_claims.c.annotator_id == bindparam("claimer"))
_SQL_CLAIM_MOVE = update(_claims).where(_MY_CLAIM).values(item_id=bindparam("claim_item"),
                                                          claimed_at=bindparam("claim_at"))
_SQL_CLAIM_ADD = insert(_claims)
_SQL_CLAIM_DROP = delete(_claims).where(_MY_CLAIM)
_SQL_MY_CLAIM = select(_claims.c.item_id, _claims.c.claimed_at).where(_MY_CLAIM)
_SQL_ITEM_FOR_LABEL = (select(_items.c.id, _items.c.study_id, _items.c.fields, _studies.c.scale_min,
                              _studies.c.scale_max, _studies.c.overlap_target)
                       .join_from(_items, _studies, _studies.c.id == _items.c.study_id)
                       .where(_items.c.id == bindparam("item")))
_SQL_MY_LABEL = select(*_labels.c).where(_labels.c.item_id == bindparam("item"),
                                         _labels.c.annotator_id == bindparam("me"))
_SQL_ADD_LABEL = insert(_labels)


# --------------------------------------------------------------------------------------------------
# The service


class Studies:
    """Studies, items, users and annotations, stored in the same database as judgments."""

    def __init__(self, store: Store, *, password_cost: int = _SCRYPT_N, claim_seconds: float = CLAIM_SECONDS) -> None:
        """Use the study tables of `store` (created by its migration 2).

        `password_cost` is scrypt's N for new password hashes (a power of two); existing hashes keep
        the cost they were made with, so raising it later needs no migration. Lower it only in tests.
        `claim_seconds`: how long an item handed out by next_item counts as taken by that annotator.
        """
        if password_cost < 2 or password_cost & (password_cost - 1) or password_cost > _SCRYPT_MAX_N:
            raise ValueError(f"password_cost must be a power of two between 2 and {_SCRYPT_MAX_N}.")
        if not claim_seconds >= 0:
            raise ValueError("claim_seconds must not be negative.")
        self._store = store
        self._password_cost = password_cost
        self._claim_seconds = float(claim_seconds)

    # -- sessions and permissions ----------------------------------------------------------------

    def _write(self, action: str, work: Callable[[Session], T]) -> T:
        """Run `work` in one short write transaction, retried when the database is locked."""
        integrity_retries = 1
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with self._store.session(action, write=True) as session:
                    return work(session)
            except StorageError as error:
                if attempt == _WRITE_ATTEMPTS - 1 or not _is_retryable(error, integrity_retries > 0):
                    raise
                if isinstance(error.__cause__, IntegrityError):
                    integrity_retries -= 1
                # Jittered back-off, so writers that collided do not collide again in step.
                time.sleep(random.uniform(0.01, 0.05) * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self) -> AbstractContextManager[Session]:
        return self._store.session("read")

    @staticmethod
    def _actor(session: Session, actor: User) -> _Me:
        """The actor as stored now: a deleted user, or a User object that was never signed in, is refused."""
        if not isinstance(actor, User):
            raise PermissionDenied("Sign in first.")
        row = session.connection().execute(_SQL_ME, {"user_id": actor.id}).one_or_none()
        if row is None or row.username != actor.username:
            raise PermissionDenied(f"There is no user {actor.username!r} any more; sign in again.")
        return _Me(row.id, row.username, row.role)

    @classmethod
    def _admin(cls, session: Session, actor: User, doing: str) -> _Me:
        me = cls._actor(session, actor)
        if me.role != ADMIN:
            raise PermissionDenied(f"Only an admin may {doing}; {me.username!r} is an annotator.")
        return me

    @staticmethod
    def _study_row(session: Session, study_id: int) -> StudyRow:
        row = session.get(StudyRow, study_id) if isinstance(study_id, int) else None
        if row is None:
            raise StudyInputError(f"There is no study with id {study_id!r}.")
        return row

    @staticmethod
    def _item_row(session: Session, item_id: int) -> ItemRow:
        row = session.get(ItemRow, item_id) if isinstance(item_id, int) else None
        if row is None:
            raise StudyInputError(f"There is no item with id {item_id!r}.")
        return row

    @staticmethod
    def _username(session: Session, user_id: int) -> str:
        return session.scalar(select(UserRow.username).where(UserRow.id == user_id)) or ""

    @staticmethod
    def _annotation_row(session: Session, me: _Me, annotation_id: int, doing: str,
                        *, admin_may: bool) -> AnnotationRow:
        """The annotation, if `me` may `doing` it: their own, or (admin_may) any for an admin."""
        row = session.get(AnnotationRow, annotation_id) if isinstance(annotation_id, int) else None
        if row is None:
            raise StudyInputError(f"There is no annotation with id {annotation_id!r}.")
        if row.annotator_id != me.id and not (admin_may and me.role == ADMIN):
            raise PermissionDenied(f"{me.username!r} may not {doing} another annotator's label.")
        return row

    # -- users -----------------------------------------------------------------------------------

    def create_user(self, username: str, password: str, role: str = ANNOTATOR) -> User:
        """Add a user with a salted scrypt password hash; StudyInputError for a taken name or weak password.

        Takes no actor: the CLI bootstraps the first admin with it, and the UI offers it to admins only.
        """
        name = _check_username(username)
        if role not in ROLES:
            raise StudyInputError(f"Role {role!r} is not one of {', '.join(ROLES)}.")
        if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
            raise StudyInputError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
        encoded = hash_password(password, n=self._password_cost)  # slow on purpose: outside the transaction

        def work(session: Session) -> User:
            if session.scalar(select(UserRow.id).where(UserRow.username == name)) is not None:
                raise StudyInputError(f"The username {name!r} is taken.")
            row = UserRow(username=name, role=role, password_hash=encoded, created_at=_now())
            session.add(row)
            session.flush()
            return _user(row)

        try:
            return self._write("add a user to", work)
        except StorageError as error:  # two processes created the same name at once
            if isinstance(error.__cause__, IntegrityError):
                raise StudyInputError(f"The username {name!r} is taken.") from error
            raise

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches, else None (same work, and time, for an unknown name)."""
        row = None
        if isinstance(username, str) and username.strip():
            with self._read() as session:
                row = session.scalar(select(UserRow).where(UserRow.username == username.strip()))
        encoded = row.password_hash if row is not None else _dummy_hash(self._password_cost)
        matches = verify_password(password if isinstance(password, str) else "", encoded)
        return _user(row) if row is not None and matches else None

    def get_user(self, username: str) -> User | None:
        """The user with this name, or None."""
        if not isinstance(username, str):
            return None
        with self._read() as session:
            row = session.scalar(select(UserRow).where(UserRow.username == username.strip()))
            return None if row is None else _user(row)

    def list_users(self, actor: User) -> list[User]:
        """Every user, by name (admins only)."""
        with self._read() as session:
            self._admin(session, actor, "list users")
            return [_user(row) for row in session.scalars(select(UserRow).order_by(UserRow.username))]

    def set_grading(self, actor: User | None, username: str, allowed: bool) -> User:
        """Grant (or revoke) an annotator's grade right; `actor` None is the command line (the database's owner).

        PermissionDenied for an annotator actor; StudyInputError for an unknown user or an admin (whose
        right comes with the role and cannot be revoked without demoting them).
        """
        name = _check_username(username)

        def work(session: Session) -> User:
            if actor is not None:
                self._admin(session, actor, "grant or revoke the grade right")
            row = session.scalar(select(UserRow).where(UserRow.username == name))
            if row is None:
                raise StudyInputError(f"There is no user {name!r}.")
            if row.role == ADMIN:
                raise StudyInputError(f"{name!r} is an admin: admins may always grade.")
            row.can_grade = bool(allowed)
            session.flush()
            return _user(row)

        return self._write("change the grade right in", work)

    def blind_guard(self, actor: User) -> BlindGuard:
        """What `actor` may not see of the judge's verdicts; PermissionDenied without the grade right.

        Admins see everything. Anyone else with the grade right may not see (nor ask the judge for) the
        verdict of an item of a blind study they have not labelled yet.
        """
        with self._read() as session:
            me = self._actor(session, actor)
            if me.role == ADMIN:
                return BlindGuard(me.username)
            granted = session.scalar(select(UserRow.can_grade).where(UserRow.id == me.id))
            if not granted:
                raise PermissionDenied(
                    f"{me.username!r} may not grade: grading shows the judge's verdicts, which blind studies hide "
                    "from annotators. An admin can grant the right (python -m core grant-grading NAME).")
            mine = select(AnnotationRow.item_id).where(AnnotationRow.annotator_id == me.id)
            rows = session.execute(
                select(ItemRow.id, ItemRow.fields, ItemRow.judgment_id)
                .join(StudyRow, StudyRow.id == ItemRow.study_id)
                .where(StudyRow.blind.is_(True), ItemRow.id.not_in(mine))).all()
        hidden = frozenset(row.judgment_id for row in rows if row.judgment_id is not None)
        items = tuple((row.id, _fingerprint(text for _, text in row.fields)) for row in rows)
        return BlindGuard(me.username, hidden, items)

    def visible_judgments(self, actor: User, judgment_ids: Iterable[int]) -> set[int]:
        """Which of these stored judgments `actor` may see (blind_guard's rule); PermissionDenied without the right."""
        guard = self.blind_guard(actor)
        wanted = [int(j) for j in judgment_ids]
        if not guard.items:
            return set(wanted)
        with self._read() as session:
            rows = session.execute(select(JudgmentRow.id, JudgmentRow.fields).where(JudgmentRow.id.in_(wanted)))
            return {row.id for row in rows if not guard.hides(row.id, row.fields)}

    # -- studies and items -----------------------------------------------------------------------

    def create_study(self, actor: User, spec: StudySpec) -> Study:
        """Create a study (admins only); the scale comes from the rubric (StudyInputError when it names none)."""
        name = spec.name.strip() if isinstance(spec.name, str) else ""
        if not name:
            raise StudyInputError("The study needs a name.")
        if len(name) > 200:
            raise StudyInputError("The study name is longer than 200 characters.")
        if not isinstance(spec.pass_criteria, str) or not spec.pass_criteria.strip():
            raise StudyInputError("The pass criteria are empty: say what a passing text must do.")
        if not isinstance(spec.rubric, str):
            raise StudyInputError("The rubric must be text.")
        try:
            scale = infer_scale(spec.rubric)
        except RubricError as error:
            raise StudyInputError(str(error)) from error
        tags = _check_tags(spec.tags)
        overlap = _check_int(spec.overlap_target, "overlap target")
        if overlap < 1:
            raise StudyInputError("The overlap target (annotators per item) must be at least 1.")
        settings = _jsonable(dict(spec.judge_settings or {}), "judge settings")
        description = spec.description if isinstance(spec.description, str) else ""

        def work(session: Session) -> Study:
            me = self._admin(session, actor, "create a study")
            now = _now()
            row = StudyRow(
                name=name, description=description, pass_criteria=spec.pass_criteria, rubric=spec.rubric,
                scale_min=scale[0], scale_max=scale[1], tags=tags, overlap_target=overlap, blind=bool(spec.blind),
                judge_settings=settings, created_by_id=me.id, created_at=now, updated_at=now,
            )
            session.add(row)
            session.flush()
            return _study(row, me.username)

        return self._write("save a study to", work)

    def list_studies(self, actor: User) -> list[Study]:
        """Every study, newest first (any signed-in user: every annotator may label every study)."""
        with self._read() as session:
            self._actor(session, actor)
            rows = session.execute(_STUDIES.order_by(StudyRow.created_at.desc(), StudyRow.id.desc()))
            return [_study(row, creator) for row, creator in rows]

    def get_study(self, actor: User, study_id: int) -> Study:
        """The study (any signed-in user); StudyInputError when there is none."""
        with self._read() as session:
            self._actor(session, actor)
            found = session.execute(_STUDIES.where(StudyRow.id == _id(study_id, "study"))).one_or_none()
            if found is None:
                raise StudyInputError(f"There is no study with id {study_id!r}.")
            return _study(*found)

    def add_item(
        self, actor: User, study_id: int, fields: Mapping[str, str], *, external_id: str | None = None,
        judgment_id: int | None = None,
    ) -> Item:
        """Add one item (admins only); fields must use the study's tags, and at least one must be non-blank.

        DuplicateItemError (a StudyInputError naming the existing item) when the study already has an item
        with the same fields (see _item_key for what counts as the same).
        """

        def work(session: Session) -> Item:
            self._admin(session, actor, "add items")
            study = self._study_row(session, study_id)
            pairs = self._fields(study, fields)
            if judgment_id is not None:
                self._check_judgment(session, judgment_id)
            known = self._item_keys(session, study)
            return _item(self._new_item(session, study, pairs, external_id, judgment_id, known))

        return self._write("save an item to", work)

    @staticmethod
    def _fields(study: StudyRow, fields: Mapping[str, str]) -> list[list[str]]:
        if not isinstance(fields, Mapping):
            raise StudyInputError("Item fields must be a mapping of tag -> text.")
        unknown = [tag for tag in fields if tag not in study.tags]
        if unknown:
            raise StudyInputError(f"Unknown field tag(s) {', '.join(map(repr, unknown))}; this study's tags are "
                                  f"{', '.join(map(repr, study.tags))}.")
        for tag, text in fields.items():
            if text is not None and not isinstance(text, str):
                raise StudyInputError(f"The {tag} field must be text; got {type(text).__name__}.")
        pairs = [[tag, fields[tag]] for tag in study.tags if fields.get(tag) and fields[tag].strip()]
        if not pairs:
            raise StudyInputError("Every field of the item is empty.")
        return pairs

    @staticmethod
    def _check_judgment(session: Session, judgment_id: int) -> None:
        if not isinstance(judgment_id, int) or session.get(JudgmentRow, judgment_id) is None:
            raise StudyInputError(f"There is no stored judgment with id {judgment_id!r}.")

    @staticmethod
    def _item_keys(session: Session, study: StudyRow) -> dict[ItemKey, tuple[int, str | None]]:
        """The study's items by _item_key: (item id, external id) of the first item with those fields."""
        known: dict[ItemKey, tuple[int, str | None]] = {}
        for item_id, external_id, pairs in session.execute(
            select(ItemRow.id, ItemRow.external_id, ItemRow.fields).where(ItemRow.study_id == study.id)
            .order_by(ItemRow.id)
        ):
            known.setdefault(_item_key(pairs), (item_id, external_id))
        return known

    @staticmethod
    def _new_item(session: Session, study: StudyRow, pairs: list[list[str]], external_id: str | None,
                  judgment_id: int | None, known: dict[ItemKey, tuple[int, str | None]]) -> ItemRow:
        """Insert one item; DuplicateItemError when `known` (the study's items, kept up to date) has its fields."""
        if external_id is not None and not isinstance(external_id, str):
            raise StudyInputError("The external id must be text.")
        key = _item_key(pairs)
        if key in known:
            item_id, existing_id = known[key]
            raise DuplicateItemError(
                f"This study already has an item with these fields: {_describe_item(item_id, existing_id)}. "
                "A copy would be labelled and counted twice, so nothing was added.",
                item_id=item_id, external_id=existing_id,
            )
        row = ItemRow(study_id=study.id, fields=pairs, external_id=external_id, judgment_id=judgment_id,
                      order_key=0, created_at=_now())
        session.add(row)
        session.flush()  # the key is derived from the id, which the database assigns
        row.order_key = _order_key(study.id, row.id)
        known[key] = (row.id, external_id)
        return row

    def preview_file(self, path: str | Path, rows: int = 5) -> tuple[list[str], list[dict[str, Any]]]:
        """(column names, first rows) of a CSV or JSONL file, for the column-mapping step."""
        table = _read_study_table(path)
        first = [{column: preview_value(values.get(column)) for column in table.columns}
                 for _, values in table.rows[: max(rows, 0)]]
        return table.columns, first

    def import_items(
        self, actor: User, study_id: int, path: str | Path, mapping: Mapping[str, str], *, id_column: str | None = None
    ) -> ImportReport:
        """Import CSV/JSONL rows; `mapping` is field tag -> column. Bad rows are reported, good rows kept.

        A RowError with row 0 is a note about the whole file (e.g. "read as Windows-1252"), not a bad row.
        Rows whose id (id_column) is already in the study, or repeats an earlier row, are reported, not added;
        so are rows whose fields equal an item already in the study or an earlier row (see _item_key).
        """
        with self._read() as session:  # fail fast, before reading a large file
            self._admin(session, actor, "import items")
            tags = list(self._study_row(session, study_id).tags)
        mapping = {tag: column for tag, column in dict(mapping).items() if column}
        if not mapping:
            raise StudyInputError("Map at least one field tag to a column of the file.")
        unknown = [tag for tag in mapping if tag not in tags]
        if unknown:
            raise StudyInputError(f"Unknown field tag(s) {', '.join(map(repr, unknown))}; this study's tags are "
                                  f"{', '.join(map(repr, tags))}.")
        table = _read_study_table(path)
        wanted = [*mapping.values(), *([id_column] if id_column else [])]
        absent = [column for column in dict.fromkeys(wanted) if column not in table.columns]
        if absent:
            raise StudyInputError(f"The file has no column {', '.join(map(repr, absent))}; its columns are "
                                  f"{', '.join(map(repr, table.columns))}.")
        errors = list(table.errors)
        good: list[tuple[int, list[list[str]], str | None]] = []
        for number, values in table.rows:
            pairs, external_id, problem = self._row_fields(values, tags, mapping, id_column)
            if problem:
                errors.append(RowError(number, problem))
            else:
                good.append((number, pairs, external_id))

        def work(session: Session) -> tuple[list[int], list[RowError]]:
            # Errors found here are returned, not appended outside: a retried transaction starts afresh.
            self._admin(session, actor, "import items")
            study = self._study_row(session, study_id)
            taken = set(session.scalars(select(ItemRow.external_id).where(
                ItemRow.study_id == study.id, ItemRow.external_id.is_not(None))))
            first_row: dict[str, int] = {}
            known = self._item_keys(session, study)
            row_of_item: dict[int, int] = {}  # item id -> the row of this file that added it
            ids: list[int] = []
            repeated: list[RowError] = []
            for number, pairs, external_id in good:
                if external_id is not None:
                    if external_id in taken:
                        repeated.append(RowError(number, f"An item with id {external_id!r} is already in the study."))
                        continue
                    if external_id in first_row:
                        repeated.append(RowError(number, f"Repeats the id {external_id!r} of row "
                                                         f"{first_row[external_id]}."))
                        continue
                try:
                    added = self._new_item(session, study, pairs, external_id, None, known)
                except DuplicateItemError as duplicate:
                    earlier = row_of_item.get(duplicate.item_id)
                    repeated.append(RowError(number, (
                        f"Repeats the fields of row {earlier}." if earlier is not None else
                        f"Has the same fields as {_describe_item(duplicate.item_id, duplicate.external_id)}, "
                        "already in the study.")))
                    continue
                if external_id is not None:
                    first_row[external_id] = number
                row_of_item[added.id] = number
                ids.append(added.id)
            return ids, repeated

        item_ids, repeated = self._write("save items to", work)
        notes = [RowError(0, note) for note in table.notes]
        return ImportReport(added=len(item_ids), item_ids=item_ids,
                            errors=notes + sorted(errors + repeated, key=lambda error: error.row))

    @staticmethod
    def _row_fields(values: Mapping[str, Any], tags: list[str], mapping: Mapping[str, str],
                    id_column: str | None) -> tuple[list[list[str]], str | None, str | None]:
        """(fields in tag order, external id, problem) for one file row."""
        problems: list[str] = []
        texts: dict[str, str] = {}
        for tag, column in mapping.items():
            if column not in values:
                problems.append(f"no value in column {column!r} ({tag})")
                continue
            value = values[column]
            if is_blank(value):
                continue  # JSON null: a blank field
            if not isinstance(value, str):
                problems.append(f"column {column!r} ({tag}) holds {type(value).__name__} {value!r}, not text")
                continue
            if value.strip():
                texts[tag] = value
        external_id: str | None = None
        if id_column:
            raw = values.get(id_column)
            if isinstance(raw, bool) or not isinstance(raw, (str, int)) or not str(raw).strip():
                problems.append(f"no usable id in column {id_column!r}")
            else:
                external_id = str(raw).strip()
        if not problems and not texts:
            problems.append("every mapped field is empty")
        if problems:
            message = "; ".join(problems)
            return [], None, f"{message[0].upper()}{message[1:]}."
        return [[tag, texts[tag]] for tag in tags if tag in texts], external_id, None

    def list_items(self, actor: User, study_id: int) -> list[Item]:
        """Every item of the study in the order they were added (admins only)."""
        with self._read() as session:
            self._admin(session, actor, "list a study's items")
            self._study_row(session, study_id)
            rows = session.scalars(select(ItemRow).where(ItemRow.study_id == study_id).order_by(ItemRow.id))
            return [_item(row) for row in rows]

    def get_item(self, actor: User, item_id: int) -> Item:
        """One item. In a blind study an annotator gets judgment_id None until they have labelled the item."""
        with self._read() as session:
            me = self._actor(session, actor)
            row = self._item_row(session, item_id)
            hide = False
            if me.role != ADMIN and session.scalar(select(StudyRow.blind).where(StudyRow.id == row.study_id)):
                hide = self._label_id(session, row.id, me.id) is None
            return _item(row, hide_judgment=hide)

    def attach_judgment(self, actor: User, item_id: int, judgment_id: int) -> None:
        """Link the item to the model's stored judgment (admins only)."""

        def work(session: Session) -> None:
            self._admin(session, actor, "attach judgments")
            row = self._item_row(session, item_id)
            self._check_judgment(session, judgment_id)
            row.judgment_id = judgment_id

        self._write("save a judgment link to", work)

    # -- labelling -------------------------------------------------------------------------------

    @staticmethod
    def _label_id(session: Session, item_id: int, annotator_id: int) -> int | None:
        return session.scalar(select(AnnotationRow.id).where(AnnotationRow.item_id == item_id,
                                                             AnnotationRow.annotator_id == annotator_id))

    def next_item(self, actor: User, study_id: int, *, skip: Iterable[int] = ()) -> Item | None:
        """An item this annotator has not labelled that has < overlap_target labels, in stable random order.

        The item handed out is claimed for `claim_seconds`: an item whose free places are all claimed
        by other annotators is skipped while another is open, so people labelling at the same time do
        not all pile onto the same item. When only claimed items are left, one is offered anyway (its
        claim may be abandoned), so None always means there is nothing left for this annotator.
        Asking again without submitting returns the same item; `skip` leaves out items the annotator
        passed over (e.g. this session), and the claim moves to the item offered instead.
        In a blind study the item comes with judgment_id None; get_item gives it once the label is in.
        """
        skipped = sorted({_id(item_id, "item") for item_id in skip})
        # Usually submit() has already claimed this annotator's next item: then this is only a read.
        with self._read() as session:
            me = self._actor(session, actor)
            sql = session.connection()
            study = self._queue_study(sql, study_id)
            now = _now()
            row = self._pick(sql, me.id, study, now, skipped)
            claim = sql.execute(_SQL_MY_CLAIM, {"claim_study": study.id, "claimer": me.id}).one_or_none()
            fresh = now - timedelta(seconds=self._claim_seconds / 2)
            if row is None and claim is None:
                return None
            if row is not None and claim is not None and claim.item_id == row.id and claim.claimed_at > fresh:
                return _item(row, hide_judgment=bool(study.blind))

        def work(session: Session) -> Item | None:  # choose again under the write lock, and claim
            me = self._actor(session, actor)
            sql = session.connection()
            study = self._queue_study(sql, study_id)
            now = _now()
            row = self._pick(sql, me.id, study, now, skipped)
            self._claim(sql, study.id, me.id, None if row is None else row.id, now)
            return None if row is None else _item(row, hide_judgment=bool(study.blind))

        return self._write("hand out an item from", work)

    @staticmethod
    def _queue_study(sql: Connection, study_id: int) -> Row[Any, Any, Any]:
        study = sql.execute(_SQL_QUEUE_STUDY, {"study_id": _id(study_id, "study")}).one_or_none()
        if study is None:
            raise StudyInputError(f"There is no study with id {study_id!r}.")
        return study

    def _pick(self, sql: Connection, me_id: int, study: Any, now: datetime,
              skip: Sequence[int] = ()) -> Row[Any] | None:
        """The first queue item with an open place no one else has claimed, else the first with any open place."""
        params = {"study_id": study.id, "me": me_id, "k": study.overlap_target, "skip": list(skip),
                  "since": now - timedelta(seconds=self._claim_seconds)}
        row = sql.execute(_SQL_NEXT_FREE, params).one_or_none()
        return row if row is not None else sql.execute(_SQL_NEXT_ANY, params).one_or_none()

    @staticmethod
    def _claim(sql: Connection, study_id: int, me_id: int, item_id: int | None, now: datetime) -> None:
        """Point the annotator's one claim in this study at `item_id` (None: drop it)."""
        mine = {"claim_study": study_id, "claimer": me_id}
        if item_id is None:
            sql.execute(_SQL_CLAIM_DROP, mine)
        elif not sql.execute(_SQL_CLAIM_MOVE, {**mine, "claim_item": item_id, "claim_at": now}).rowcount:
            sql.execute(_SQL_CLAIM_ADD, {"study_id": study_id, "annotator_id": me_id, "item_id": item_id,
                                         "claimed_at": now})

    def progress(self, actor: User, study_id: int) -> Progress:
        """Counts for the progress bar (any signed-in user; no one's labels are shown)."""
        with self._read() as session:
            me = self._actor(session, actor)
            study = self._study_row(session, study_id)
            in_study = AnnotationRow.study_id == study.id
            mine = session.scalar(select(func.count()).where(in_study, AnnotationRow.annotator_id == me.id)) or 0
            total = session.scalar(select(func.count()).select_from(ItemRow).where(ItemRow.study_id == study.id)) or 0
            per_item = (select(AnnotationRow.item_id).where(in_study).group_by(AnnotationRow.item_id)
                        .having(func.count() >= study.overlap_target).subquery())
            complete = session.scalar(select(func.count()).select_from(per_item)) or 0
            people = session.scalar(select(func.count(func.distinct(AnnotationRow.annotator_id))).where(in_study)) or 0
            return Progress(labelled_by_me=mine, total_items=total, items_complete=complete,
                            overlap_target=study.overlap_target, annotators=people)

    def submit(
        self, actor: User, item_id: int, score: int, *, spans: Sequence[Mapping[str, Any]] = (), comment: str = "",
        seconds: float = 0.0,
    ) -> Annotation:
        """Store the annotator's (blind) label; committed before returning.

        One label per item and annotator: submitting the very same label again (score, spans, comment)
        returns the stored one (a double click or a retried request); a different one is refused with
        StudyInputError, pointing to edit(). A label for an item that reached its overlap target in the
        meantime is still kept: next_item is what stops offering full items.
        """
        comment = _check_comment(comment)
        seconds = _check_seconds(seconds)

        def work(session: Session) -> Annotation:
            me = self._actor(session, actor)
            sql = session.connection()
            item = sql.execute(_SQL_ITEM_FOR_LABEL, {"item": _id(item_id, "item")}).one_or_none()
            if item is None:
                raise StudyInputError(f"There is no item with id {item_id!r}.")
            value = _check_score(score, (item.scale_min, item.scale_max))
            checked = _check_spans(spans, {tag: text for tag, text in item.fields})
            existing = sql.execute(_SQL_MY_LABEL, {"item": item.id, "me": me.id}).one_or_none()
            if existing is not None:
                if existing.score_before_reveal == value and existing.spans == checked and existing.comment == comment:
                    return _annotation(existing, me.username)
                raise StudyInputError(
                    f"You already labelled item {item.id} (annotation {existing.id}); edit that label instead."
                )
            now = _now()
            values = {"study_id": item.study_id, "item_id": item.id, "annotator_id": me.id, "score": value,
                      "score_before_reveal": value, "score_after_reveal": None, "spans": checked,
                      "comment": comment, "seconds": seconds, "created_at": now, "updated_at": now}
            added = sql.execute(_SQL_ADD_LABEL, values).inserted_primary_key
            assert added is not None  # an INSERT into a table with an integer primary key
            # The label now holds its place itself. Claim the annotator's next item in this same
            # transaction, so the next_item call that follows is a read, not a second commit.
            study = SimpleNamespace(id=item.study_id, overlap_target=item.overlap_target)
            following = self._pick(sql, me.id, study, now)
            self._claim(sql, item.study_id, me.id, None if following is None else following.id, now)
            return _annotation(SimpleNamespace(id=added[0], **values), me.username)

        return self._write("save a label to", work)

    def confirm_after_reveal(self, actor: User, annotation_id: int, score: int) -> Annotation:
        """Record the score after the model's verdict was revealed (once); the first score is kept."""

        def work(session: Session) -> Annotation:
            me = self._actor(session, actor)
            row = self._annotation_row(session, me, annotation_id, "confirm", admin_may=False)
            study = self._study_row(session, row.study_id)
            value = _check_score(score, (study.scale_min, study.scale_max))
            if row.score_after_reveal is not None:
                raise StudyInputError(
                    f"Annotation {row.id} was already confirmed after the reveal; change it with edit instead."
                )
            row.score_after_reveal = value
            row.score = value
            row.updated_at = _now()
            return _annotation(row, me.username)

        return self._write("save a label to", work)

    def edit(
        self, actor: User, annotation_id: int, *, score: int | None = None, comment: str | None = None,
        spans: Sequence[Mapping[str, Any]] | None = None,
    ) -> Annotation:
        """Change one's own label later; every change is kept in the edit history.

        Only the current score changes; score_before_reveal and score_after_reveal stay as recorded.
        An edit that changes nothing records nothing.
        """
        if comment is not None:
            comment = _check_comment(comment)

        def work(session: Session) -> Annotation:
            me = self._actor(session, actor)
            row = self._annotation_row(session, me, annotation_id, "edit", admin_may=False)
            changes: dict[str, list[Any]] = {}
            if score is not None:
                study = self._study_row(session, row.study_id)
                value = _check_score(score, (study.scale_min, study.scale_max))
                if value != row.score:
                    changes["score"] = [row.score, value]
            if spans is not None:
                item = self._item_row(session, row.item_id)
                checked = _check_spans(spans, {tag: text for tag, text in item.fields})
                if checked != row.spans:
                    changes["spans"] = [row.spans, checked]
            if comment is not None and comment != row.comment:
                changes["comment"] = [row.comment, comment]
            if changes:
                now = _now()
                for name, (_old, new) in changes.items():
                    setattr(row, name, new)
                row.updated_at = now
                session.add(AnnotationEditRow(annotation_id=row.id, editor_id=me.id, at=now, changes=changes))
            return _annotation(row, me.username)

        return self._write("save a label to", work)

    def my_annotations(self, actor: User, study_id: int) -> list[Annotation]:
        """The actor's own labels in the study, oldest first."""
        with self._read() as session:
            me = self._actor(session, actor)
            self._study_row(session, study_id)
            rows = session.scalars(
                select(AnnotationRow)
                .where(AnnotationRow.study_id == study_id, AnnotationRow.annotator_id == me.id)
                .order_by(AnnotationRow.created_at, AnnotationRow.id)
            )
            return [_annotation(row, me.username) for row in rows]

    def my_labels(self, actor: User, study_id: int) -> list[tuple[Annotation, str | None]]:
        """The actor's own labels in the study, each with its item's external id (None if it has none), oldest first."""
        with self._read() as session:
            me = self._actor(session, actor)
            self._study_row(session, study_id)
            rows = session.execute(
                select(AnnotationRow, ItemRow.external_id)
                .join(ItemRow, ItemRow.id == AnnotationRow.item_id)
                .where(AnnotationRow.study_id == study_id, AnnotationRow.annotator_id == me.id)
                .order_by(AnnotationRow.created_at, AnnotationRow.id)
            )
            return [(_annotation(row, me.username), external_id) for row, external_id in rows]

    def pending_reveal(self, actor: User, study_id: int) -> Annotation | None:
        """The actor's latest label in a blind study whose reveal is not answered yet, else None.

        That is a label whose item has the model's judgment now but that has no after-reveal score: the
        page was reloaded or closed on the reveal, or the item was graded only after it was labelled.
        """
        with self._read() as session:
            me = self._actor(session, actor)
            study = self._study_row(session, study_id)
            if not study.blind:
                return None
            row = session.scalars(
                select(AnnotationRow)
                .join(ItemRow, ItemRow.id == AnnotationRow.item_id)
                .where(AnnotationRow.study_id == study.id, AnnotationRow.annotator_id == me.id,
                       AnnotationRow.score_after_reveal.is_(None), ItemRow.judgment_id.is_not(None))
                .order_by(AnnotationRow.created_at.desc(), AnnotationRow.id.desc())
                .limit(1)
            ).first()
            return _annotation(row, me.username) if row is not None else None

    def get_annotation(self, actor: User, annotation_id: int) -> Annotation:
        """One label: the annotator's own, or any for an admin."""
        with self._read() as session:
            me = self._actor(session, actor)
            row = self._annotation_row(session, me, annotation_id, "see", admin_may=True)
            return _annotation(row, self._username(session, row.annotator_id))

    def history(self, actor: User, annotation_id: int) -> list[AnnotationEdit]:
        """The edits of one label, oldest first: the annotator's own, or any for an admin."""
        with self._read() as session:
            me = self._actor(session, actor)
            row = self._annotation_row(session, me, annotation_id, "see the history of", admin_may=True)
            edits = session.execute(
                select(AnnotationEditRow, UserRow.username)
                .join(UserRow, UserRow.id == AnnotationEditRow.editor_id)
                .where(AnnotationEditRow.annotation_id == row.id)
                .order_by(AnnotationEditRow.at, AnnotationEditRow.id)
            )
            return [_edit(edit, editor) for edit, editor in edits]

    # -- reporting (admins) ----------------------------------------------------------------------

    def _report_rows(self, actor: User, study_id: int, doing: str) -> tuple[
        StudyRow, list[tuple[ItemRow, AnnotationRow | None, str | None]], dict[int, StoredJudgment]
    ]:
        """The study, (item, label, annotator) per label plus (item, None, None) per unlabelled item, judgments."""
        with self._read() as session:
            self._admin(session, actor, doing)
            study = self._study_row(session, study_id)
            items = list(session.scalars(select(ItemRow).where(ItemRow.study_id == study.id).order_by(ItemRow.id)))
            labels: dict[int, list[tuple[AnnotationRow, str]]] = {}
            for label, username in session.execute(_ANNOTATIONS.where(AnnotationRow.study_id == study.id)
                                                   .order_by(UserRow.username, AnnotationRow.id)):
                labels.setdefault(label.item_id, []).append((label, username))
        rows: list[tuple[ItemRow, AnnotationRow | None, str | None]] = []
        for item in items:
            if item.id in labels:
                rows.extend((item, label, username) for label, username in labels[item.id])
            else:
                rows.append((item, None, None))
        judgments: dict[int, StoredJudgment] = {}
        for judgment_id in sorted({item.judgment_id for item in items if item.judgment_id is not None}):
            judgment = self._store.get_judgment(judgment_id)
            if judgment is not None:
                judgments[judgment_id] = judgment
        return study, rows, judgments

    def ratings(self, actor: User, study_id: int) -> list[dict[str, Any]]:
        """One row per annotation, the input of core.agreement.agreement_report (see its docstring).

        Items nobody has labelled yet add one row each with annotator and human_score None, so a report
        can count them. model_score is None when the item has no judgment or the judgment failed to parse.
        `blind` (the study's mode) tells the report to use human_score_before_reveal as its headline.
        """
        study, pairs, judgments = self._report_rows(actor, study_id, "see a study's ratings")
        rows: list[dict[str, Any]] = []
        for item, label, username in pairs:
            judgment = judgments.get(item.judgment_id) if item.judgment_id is not None else None
            rows.append({
                "item_id": item.id,
                "external_id": item.external_id,
                "annotation_id": label.id if label else None,
                "annotator": username,
                "human_score": label.score if label else None,
                "model_score": judgment.score if judgment is not None and judgment.status != "failed" else None,
                "model_status": judgment.status if judgment is not None else None,
                "blind": bool(study.blind),
                "human_score_before_reveal": label.score_before_reveal if label else None,
                "human_score_after_reveal": label.score_after_reveal if label else None,
                "human_spans": [dict(span) for span in label.spans] if label else [],
                "model_spans": [dict(span) for span in judgment.spans] if judgment is not None else [],
                "fields": {tag: text for tag, text in item.fields},
            })
        return rows

    def export_rows(self, actor: User, study_id: int) -> list[dict[str, Any]]:
        """One row per annotation with the item's fields and the model's outputs, for CSV/JSONL export.

        Every row has the same keys: each field tag is a column (prefixed "field " if it would clash with
        another column); spans, highlights and the distribution are JSON text, so a CSV keeps them whole.
        `python -m core agreement` reads the file as it is (`blind` picks the before-reveal headline).
        """
        study, pairs, judgments = self._report_rows(actor, study_id, "export a study")
        fixed = ["study", "study_id", "item_id", "external_id", "annotation_id", "annotator", "score",
                 "score_before_reveal", "score_after_reveal", "blind", "comment", "seconds", "spans", "created_at",
                 "updated_at", "judgment_id", "model_score", "model_status", "model_reasoning", "model_highlights",
                 "model_distribution", "model_expected_score"]
        columns = {tag: (f"field {tag}" if tag in fixed else tag) for tag in study.tags}
        rows: list[dict[str, Any]] = []
        for item, label, username in pairs:
            if label is None:
                continue
            judgment = judgments.get(item.judgment_id) if item.judgment_id is not None else None
            fields = {tag: text for tag, text in item.fields}
            distribution = judgment.distribution if judgment is not None else None
            row: dict[str, Any] = {"study": study.name, "study_id": study.id, "item_id": item.id,
                                   "external_id": item.external_id}
            row.update({columns[tag]: fields.get(tag, "") for tag in study.tags})
            row.update({
                "annotation_id": label.id,
                "annotator": username,
                "score": label.score,
                "score_before_reveal": label.score_before_reveal,
                "score_after_reveal": label.score_after_reveal,
                "blind": bool(study.blind),  # True: score_before_reveal was given without seeing the verdict
                "comment": label.comment,
                "seconds": label.seconds,
                "spans": json.dumps(label.spans, ensure_ascii=False),
                "created_at": label.created_at.isoformat(),
                "updated_at": label.updated_at.isoformat(),
                "judgment_id": judgment.id if judgment is not None else None,
                "model_score": judgment.score if judgment is not None else None,
                "model_status": judgment.status if judgment is not None else None,
                "model_reasoning": judgment.reasoning if judgment is not None else None,
                "model_highlights": json.dumps(judgment.highlights, ensure_ascii=False) if judgment else None,
                "model_distribution": (json.dumps({str(k): v for k, v in distribution.items()})
                                       if distribution else None),
                "model_expected_score": judgment.expected_score if judgment is not None else None,
            })
            rows.append(row)
        return rows
