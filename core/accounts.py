"""Who may sign in: users, their roles and grade right, salted scrypt password hashes. Usernames are compared without
regard to case on every database ("Ada" and "ada" are one user: username_key, find_user).

App-wide, not a part of studies: the web app asks it whether anyone can sign in (any_users) and checks
passwords with it; core.studies uses it to check, in each transaction, who the signed-in actor is now
(signed_in, require_admin), so a demoted or deleted user loses access at once. The users table is
created by migration 2 in core.migrations (can_grade by migration 4).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar, cast

from sqlalchemy import Boolean, Integer, String, Table, bindparam, or_, select
from sqlalchemy.engine import default as engine_default
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.errors import PermissionDenied, StorageError, StudyInputError
from core.store import Base, Store, UTCDateTime

ADMIN, REVIEWER, ANNOTATOR = "admin", "reviewer", "annotator"
# A reviewer labels like an annotator and may also settle disagreements (adjudicate); admins may do both.
ROLES = (ADMIN, REVIEWER, ANNOTATOR)

MIN_PASSWORD_LENGTH = 8
MAX_USERNAME_LENGTH = 64
# Letters (any script), digits and . _ @ - : no spaces, so a name is unambiguous in logs and on the CLI.
_USERNAME = re.compile(r"[\w.@-]+")

# scrypt cost: 2**14 x 8 x 1 is ~16 MiB and ~50 ms per check (OWASP's minimum for interactive logins).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SCRYPT_DKLEN, _SALT_BYTES = 2**14, 8, 1, 32, 16
_SCRYPT_MAX_N = 2**20  # refuse stored parameters that would make one check take minutes
DEFAULT_PASSWORD_COST = _SCRYPT_N

T = TypeVar("T")


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str  # "admin" | "reviewer" | "annotator"
    created_at: datetime
    # The grade right (with sign-in on: the Grade tab, /grade, History, Batch): admins by their role,
    # annotators only when an admin granted it (Accounts.set_grading).
    can_grade: bool = False
    active: bool = True  # a deactivated user cannot sign in; their labels stay
    must_change_password: bool = False  # after an admin's reset to a one-time password

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def may_review(self) -> bool:
        """Whether this user may settle disagreements (the Review view): reviewers and admins."""
        return self.role in (ADMIN, REVIEWER)


def username_key(name: str) -> str:
    """The form two usernames are compared in: "Ada" and "ada" are one user, on every database.

    Computed here (str.casefold), not by SQL's lower(): SQLite's lower() folds ASCII only and PostgreSQL's follows
    the server's locale, so the database would otherwise decide who "ÉMILE" is.
    """
    return name.casefold()


def _username_key_default(context: engine_default.DefaultExecutionContext) -> str:
    return username_key(context.get_current_parameters()["username"])


class UserRow(Base):
    """A person who signs in (table `users`)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    can_grade: Mapped[bool] = mapped_column(Boolean, default=False)  # added by migration 4
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # added by migration 5
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)  # added by migration 5
    # username_key(username), unique (migration 10): set from the username on insert; usernames never change.
    username_key: Mapped[str | None] = mapped_column(String(256), default=_username_key_default)


def find_user(session: Session, name: str) -> UserRow | None:
    """The user called `name`, whatever its case ("ADA" finds "Ada"). A user stored with exactly this name comes
    first: two names that differ only in case may exist from before migration 10, and each still signs in."""
    return session.scalars(
        select(UserRow).where(or_(UserRow.username == name, UserRow.username_key == username_key(name)))
        .order_by(UserRow.username != name, UserRow.id).limit(1)).first()


def taken_message(name: str, row: UserRow) -> str:
    """StudyInputError's text for a new user whose name `row` already has (perhaps in another case)."""
    if row.username == name:
        return f"The username {name!r} is taken."
    return f"The username {name!r} is taken: {row.username!r} differs only in case, and names are compared that way."


def to_user(row: UserRow) -> User:
    """The User value of a users row (admins always have the grade right)."""
    return User(id=row.id, username=row.username, role=row.role, created_at=row.created_at,
                can_grade=row.role == ADMIN or bool(row.can_grade), active=bool(row.active),
                must_change_password=bool(row.must_change_password))


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


def check_username(username: object) -> str:
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


def check_new_password(password: object) -> str:
    """`password` when it may be someone's new password; StudyInputError saying why not otherwise."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise StudyInputError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    return password


# --------------------------------------------------------------------------------------------------
# The signed-in actor, checked inside the caller's transaction


class Me(NamedTuple):
    """The signed-in user as the database knows them now (the role is never taken from the caller)."""

    id: int
    username: str
    role: str


_users = cast(Table, UserRow.__table__)
# Built once: every labelling call runs it (building a statement per call cost more than the SQL itself).
_SQL_ME = (select(_users.c.id, _users.c.username, _users.c.role, _users.c.active, _users.c.must_change_password)
           .where(_users.c.id == bindparam("user_id")))
MUST_CHANGE_PASSWORD = "{name!r} must choose a new password first: an admin reset it."


def _stored(session: Session, actor: User) -> Any:
    """The actor's row as stored now (id, username, role, active, must_change_password), if they may sign in."""
    if not isinstance(actor, User):
        raise PermissionDenied("Sign in first.")
    row = session.connection().execute(_SQL_ME, {"user_id": actor.id}).one_or_none()
    if row is None or row.username != actor.username:
        raise PermissionDenied(f"There is no user {actor.username!r} any more; sign in again.")
    if not row.active:
        raise PermissionDenied(f"The account {row.username!r} is deactivated; an admin can reactivate it.")
    return row


def signed_in(session: Session, actor: User) -> Me:
    """The actor as stored now: a deleted or deactivated user, a user who must first choose a new password
    (after an admin's reset), or a User object that was never signed in, is refused."""
    row = _stored(session, actor)
    if row.must_change_password:
        raise PermissionDenied(MUST_CHANGE_PASSWORD.format(name=row.username))
    return Me(row.id, row.username, row.role)


def require_admin(session: Session, actor: User, doing: str) -> Me:
    """The actor, if they are an admin now; PermissionDenied ("Only an admin may {doing}") otherwise."""
    me = signed_in(session, actor)
    if me.role != ADMIN:
        article = "an" if me.role == ANNOTATOR else "a"
        raise PermissionDenied(f"Only an admin may {doing}; {me.username!r} is {article} {me.role}.")
    return me


def require_grade_right(session: Session, actor: User) -> Me:
    """The actor, if they may grade now (admins always; annotators an admin granted it to)."""
    me = signed_in(session, actor)
    if me.role != ADMIN and not session.scalar(select(UserRow.can_grade).where(UserRow.id == me.id)):
        raise PermissionDenied(
            f"{me.username!r} may not grade: grading shows the judge's verdicts, which blind studies hide "
            "from annotators. An admin can grant the right (python -m core grant-grading NAME).")
    return me


# --------------------------------------------------------------------------------------------------
# The service


class Accounts:
    """Users, passwords and the grade right, stored in the same database as judgments and studies."""

    def __init__(self, store: Store, *, password_cost: int = DEFAULT_PASSWORD_COST) -> None:
        """Use the users table of `store` (created by its migration 2).

        `password_cost` is scrypt's N for new password hashes (a power of two); existing hashes keep
        the cost they were made with, so raising it later needs no migration. Lower it only in tests.
        """
        if password_cost < 2 or password_cost & (password_cost - 1) or password_cost > _SCRYPT_MAX_N:
            raise ValueError(f"password_cost must be a power of two between 2 and {_SCRYPT_MAX_N}.")
        self._store = store
        self._password_cost = password_cost

    def _write(self, action: str, work: Callable[[Session], T]) -> T:
        return self._store.write(action, work)  # the one write path, retried while the file is locked

    def _read(self) -> AbstractContextManager[Session]:
        return self._store.session("read")

    def any_users(self) -> bool:
        """Whether anyone can sign in yet (the web app turns sign-in on when someone can)."""
        with self._read() as session:
            return session.scalar(select(UserRow.id).limit(1)) is not None

    def create_user(self, username: str, password: str, role: str = ANNOTATOR) -> User:
        """Add a user with a salted scrypt password hash; StudyInputError for a taken name or weak password.

        Takes no actor: the CLI bootstraps the first admin with it, and the UI offers it to admins only.
        """
        name = check_username(username)
        if role not in ROLES:
            raise StudyInputError(f"Role {role!r} is not one of {', '.join(ROLES)}.")
        check_new_password(password)
        encoded = hash_password(password, n=self._password_cost)  # slow on purpose: outside the transaction

        def work(session: Session) -> User:
            if (taken := find_user(session, name)) is not None:
                raise StudyInputError(taken_message(name, taken))
            row = UserRow(username=name, role=role, password_hash=encoded, created_at=datetime.now(UTC))
            session.add(row)
            session.flush()
            return to_user(row)

        try:
            return self._write("add a user to", work)
        except StorageError as error:  # two processes created the same name at once
            if isinstance(error.__cause__, IntegrityError):
                raise StudyInputError(f"The username {name!r} is taken.") from error
            raise

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches and the account is active, else None (same work, and time, for
        an unknown name). A user who must choose a new password signs in, and core refuses them everything
        else until they have (change_password)."""
        row = None
        if isinstance(username, str) and username.strip():
            with self._read() as session:
                row = find_user(session, username.strip())
        encoded = row.password_hash if row is not None else _dummy_hash(self._password_cost)
        matches = verify_password(password if isinstance(password, str) else "", encoded)
        return to_user(row) if row is not None and matches and row.active else None

    def change_password(self, actor: User, old: str, new: str) -> User:
        """The signed-in user chooses a new password, giving their current one; clears must_change_password.

        PermissionDenied for a wrong current password (or a deactivated account); StudyInputError for a new
        password that is too short or the same as the current one.
        """
        check_new_password(new)
        if isinstance(old, str) and old == new:
            raise StudyInputError("The new password is the same as the current one: choose a different one.")
        with self._read() as session:  # the slow checks happen outside the write transaction
            stored = _stored(session, actor)
            current = session.scalar(select(UserRow.password_hash).where(UserRow.id == stored.id)) or ""
        if not verify_password(old if isinstance(old, str) else "", current):
            raise PermissionDenied("The current password is not right; nothing was changed.")
        encoded = hash_password(new, n=self._password_cost)

        def work(session: Session) -> User:
            row = session.get(UserRow, _stored(session, actor).id)
            assert row is not None  # _stored found it in this transaction
            if row.password_hash != current:  # changed meanwhile (another tab, an admin's reset)
                raise PermissionDenied("The password was changed meanwhile; sign in again.")
            row.password_hash = encoded
            row.must_change_password = False
            session.flush()
            return to_user(row)

        return self._write("change a password in", work)

    def get_user(self, username: str) -> User | None:
        """The user with this name (compared without regard to case: find_user), or None."""
        if not isinstance(username, str):
            return None
        with self._read() as session:
            row = find_user(session, username.strip())
            return None if row is None else to_user(row)

    def list_users(self, actor: User) -> list[User]:
        """Every user, by name (admins only)."""
        with self._read() as session:
            require_admin(session, actor, "list users")
            return [to_user(row) for row in session.scalars(select(UserRow).order_by(UserRow.username))]

    def set_grading(self, actor: User | None, username: str, allowed: bool) -> User:
        """Grant (or revoke) an annotator's grade right; `actor` None is the command line (the database's owner).

        PermissionDenied for an annotator actor; StudyInputError for an unknown user or an admin (whose
        right comes with the role and cannot be revoked without demoting them).
        """
        name = check_username(username)

        def work(session: Session) -> User:
            if actor is not None:
                require_admin(session, actor, "grant or revoke the grade right")
            row = find_user(session, name)
            if row is None:
                raise StudyInputError(f"There is no user {name!r}.")
            if row.role == ADMIN:
                raise StudyInputError(f"{name!r} is an admin: admins may always grade.")
            row.can_grade = bool(allowed)
            session.flush()
            return to_user(row)

        return self._write("change the grade right in", work)
