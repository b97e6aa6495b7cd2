"""People: what an admin does to users' accounts (list, add, change a role, reset a password, deactivate).

core.accounts owns the users table, passwords and sign-in; this module holds the admin actions on top of
it. Every action takes the acting admin (`actor`), checked inside its own transaction, or None for the
command line (`python -m core users ...`), which acts as the database's owner, as create-user does.

One rule holds whoever acts: the last active admin stays an active admin (nobody could administer the
app in the browser otherwise). A deactivated user cannot sign in and loses access at once (core.accounts
refuses them in every transaction); their labels stay, and count in reports.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.accounts import (
    ADMIN,
    ANNOTATOR,
    DEFAULT_PASSWORD_COST,
    ROLES,
    User,
    UserRow,
    check_new_password,
    check_username,
    find_user,
    hash_password,
    require_admin,
    taken_message,
    to_user,
)
from core.errors import StorageError, StudyInputError
from core.store import Store

T = TypeVar("T")

# A one-time password: 14 letters and digits without look-alikes (0/O, 1/l/I): about 80 bits, easy to read
# out or type once, and never starting with '-' (which a shell or a form might take for something else).
ONE_TIME_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
ONE_TIME_LENGTH = 14


def one_time_password() -> str:
    """A fresh random one-time password (secrets)."""
    return "".join(secrets.choice(ONE_TIME_ALPHABET) for _ in range(ONE_TIME_LENGTH))


@dataclass(frozen=True)
class Person:
    """A user as the People page lists them: the account, and when they last labelled or took an item."""

    user: User
    last_active: datetime | None  # their newest label, label change or item handed out; None: never


@dataclass(frozen=True)
class PasswordReset:
    """What a reset did: the user as stored now, and the one-time password to show the admin ONCE (or None)."""

    user: User
    one_time_password: str | None


class People:
    """The admin actions on accounts, stored in the same database as everything else."""

    def __init__(self, store: Store, *, password_cost: int = DEFAULT_PASSWORD_COST) -> None:
        """Use the users table of `store`; `password_cost`: scrypt's N for reset passwords (lower it only in tests)."""
        self._store = store
        self._password_cost = password_cost

    def _write(self, action: str, work: Callable[[Session], T]) -> T:
        return self._store.write(action, work)

    def _read(self) -> AbstractContextManager[Session]:
        return self._store.session("read")

    @staticmethod
    def _row(session: Session, username: str) -> UserRow:
        name = check_username(username)
        row = find_user(session, name)
        if row is None:
            raise StudyInputError(f"There is no user {name!r}.")
        return row

    @staticmethod
    def _keep_an_admin(session: Session, row: UserRow, doing: str) -> None:
        """StudyInputError when `row` is the last active admin (they are about to stop being one)."""
        if row.role != ADMIN or not row.active:
            return
        others = session.scalar(select(func.count()).select_from(UserRow).where(
            UserRow.role == ADMIN, UserRow.active.is_(True), UserRow.id != row.id)) or 0
        if not others:
            raise StudyInputError(
                f"{row.username!r} is the last active admin and cannot be {doing}: make another user an admin "
                "first (python -m core create-admin NAME, or the People tab).")

    def list_people(self, actor: User | None) -> list[Person]:
        """Every user by name, with when they were last active (admins only)."""
        from core.studies.rows import AnnotationRow, ClaimRow  # here: core.studies imports this module

        with self._read() as session:
            if actor is not None:
                require_admin(session, actor, "list users")
            labelled = {user: at for user, at in session.execute(
                select(AnnotationRow.annotator_id, func.max(AnnotationRow.updated_at))
                .group_by(AnnotationRow.annotator_id))}
            claimed = {user: at for user, at in session.execute(
                select(ClaimRow.annotator_id, func.max(ClaimRow.claimed_at)).group_by(ClaimRow.annotator_id))}
            people = []
            for row in session.scalars(select(UserRow).order_by(UserRow.username)):
                seen = [at for at in (labelled.get(row.id), claimed.get(row.id)) if at is not None]
                people.append(Person(to_user(row), max(seen, default=None)))
            return people

    def add_user(self, actor: User | None, username: str, role: str = ANNOTATOR,
                 password: str | None = None) -> PasswordReset:
        """Add a user (admins): with `password`, or (None) a one-time password returned once, which they replace
        at their first sign-in. StudyInputError for an empty, malformed or taken name, a short password or an
        unknown role."""
        name = check_username(username)
        if role not in ROLES:
            raise StudyInputError(f"Role {role!r} is not one of {', '.join(ROLES)}.")
        one_time = one_time_password() if password is None else None
        encoded = hash_password(check_new_password(password if one_time is None else one_time), n=self._password_cost)

        def work(session: Session) -> PasswordReset:
            if actor is not None:
                require_admin(session, actor, "add users")
            if (taken := find_user(session, name)) is not None:
                raise StudyInputError(taken_message(name, taken))
            row = UserRow(username=name, role=role, password_hash=encoded, created_at=datetime.now(UTC),
                          can_grade=False, active=True, must_change_password=one_time is not None)
            session.add(row)
            session.flush()
            return PasswordReset(to_user(row), one_time)

        try:
            return self._write("add a user to", work)
        except StorageError as error:  # two admins added the same name at once
            if isinstance(error.__cause__, IntegrityError):
                raise StudyInputError(f"The username {name!r} is taken.") from error
            raise

    def set_role(self, actor: User | None, username: str, role: str) -> User:
        """Make the user an admin, reviewer or annotator; the last active admin stays one (StudyInputError)."""
        if role not in ROLES:
            raise StudyInputError(f"Role {role!r} is not one of {', '.join(ROLES)}.")

        def work(session: Session) -> User:
            if actor is not None:
                require_admin(session, actor, "change a role")
            row = self._row(session, username)
            if role != ADMIN:
                self._keep_an_admin(session, row, f"made {'an' if role[0] in 'aeiou' else 'a'} {role}")
            row.role = role
            session.flush()
            return to_user(row)

        return self._write("change a role in", work)

    def set_active(self, actor: User | None, username: str, active: bool) -> User:
        """Deactivate (or reactivate) a user: a deactivated one cannot sign in and loses access at once.

        Their labels stay. An admin cannot deactivate themselves, and the last active admin stays active.
        """

        def work(session: Session) -> User:
            me = require_admin(session, actor, "deactivate or reactivate users") if actor is not None else None
            row = self._row(session, username)
            if not active:
                if me is not None and me.id == row.id:
                    raise StudyInputError("You cannot deactivate your own account; another admin can.")
                self._keep_an_admin(session, row, "deactivated")
            row.active = bool(active)
            if not active:  # free the items they held, so others are offered them at once
                from core.studies.rows import ClaimRow
                session.execute(delete(ClaimRow).where(ClaimRow.annotator_id == row.id))
            session.flush()
            return to_user(row)

        return self._write("change who may sign in to", work)

    def reset_password(self, actor: User | None, username: str, password: str | None = None, *,
                       must_change: bool = True) -> PasswordReset:
        """Set a user's password: `password`, or (None) a fresh one-time password returned once, never stored
        in clear. With `must_change` (always for a one-time password) the user must choose their own at the
        next sign-in before anything else (core.accounts.Accounts.change_password).
        """
        one_time = one_time_password() if password is None else None
        new = check_new_password(password if one_time is None else one_time)
        encoded = hash_password(new, n=self._password_cost)  # slow on purpose: outside the transaction

        def work(session: Session) -> PasswordReset:
            if actor is not None:
                require_admin(session, actor, "reset passwords")
            row = self._row(session, username)
            row.password_hash = encoded
            row.must_change_password = bool(must_change or one_time is not None)
            session.flush()
            return PasswordReset(to_user(row), one_time)

        return self._write("reset a password in", work)
