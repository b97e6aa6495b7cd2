"""`python -m core create-admin` / `create-user`: add people who sign in to the studies;
`grant-grading` / `revoke-grading`: give an annotator the grade right (Grade tab, /grade, History, Batch).

The password is read from stdin (--password-stdin), an environment variable, or typed at a hidden
prompt; it is never a command-line argument (other users could read it in the process list) and is
never printed or logged.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from core.accounts import ADMIN, ANNOTATOR, MIN_PASSWORD_LENGTH, ROLES, Accounts
from core.errors import GliderError
from core.settings import default_db_url
from core.store import Store

ADMIN_PASSWORD_ENV = "GLIDER_ADMIN_PASSWORD"
USER_PASSWORD_ENV = "GLIDER_USER_PASSWORD"


class _NoPassword(Exception):
    """No password source was available (the message says how to give one)."""


def register(subparsers: Any) -> None:
    """Add the `create-admin` and `create-user` sub-commands to the `python -m core` parser."""
    admin = subparsers.add_parser(
        "create-admin", help="add an admin who can create studies and see every label",
        description=f"Add an admin. The password comes from --password-stdin, ${ADMIN_PASSWORD_ENV}, or a prompt.",
    )
    admin.add_argument("username")
    _common_options(admin)
    admin.set_defaults(run=_run_create_admin)

    user = subparsers.add_parser(
        "create-user", help="add an annotator (or an admin) who signs in to label studies",
        description=f"Add a user. The password comes from --password-stdin, ${USER_PASSWORD_ENV}, or a prompt.",
    )
    user.add_argument("username")
    user.add_argument("--role", choices=ROLES, default=ANNOTATOR, help="default: %(default)s")
    user.add_argument("--can-grade", action="store_true",
                      help="give an annotator the grade right at once (see grant-grading)")
    _common_options(user)
    user.set_defaults(run=_run_create_user)

    for name, allowed, text in (
        ("grant-grading", True, "let an annotator grade (Grade tab, /grade API, History, Batch); the verdicts of "
                                "blind-study items they have not labelled stay hidden from them"),
        ("revoke-grading", False, "take the grade right back from an annotator"),
    ):
        rights = subparsers.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        rights.add_argument("username")
        rights.add_argument("--db", default=None,
                            help="SQLAlchemy URL (env GLIDER_DB; default a SQLite file in GLIDER_DATA_DIR or ./data)")
        rights.set_defaults(run=_run_set_grading, allowed=allowed)


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None,
                        help="SQLAlchemy URL (env GLIDER_DB; default a SQLite file in GLIDER_DATA_DIR or ./data)")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")


def _run_create_admin(args: argparse.Namespace) -> int:
    return _create(args, ADMIN, ADMIN_PASSWORD_ENV)


def _run_create_user(args: argparse.Namespace) -> int:
    return _create(args, args.role, USER_PASSWORD_ENV)


def _create(args: argparse.Namespace, role: str, env_var: str) -> int:
    try:
        password = _read_password(args.password_stdin, env_var)
    except _NoPassword as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        with Store(args.db or default_db_url()) as store:
            accounts = Accounts(store)
            user = accounts.create_user(args.username, password, role=role)
            if getattr(args, "can_grade", False) and not user.is_admin:
                user = accounts.set_grading(None, user.username, True)
            rights = " who may grade" if user.can_grade and not user.is_admin else ""
            print(f"Created {user.role} {user.username!r}{rights} in {store.url}.")
    except GliderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _run_set_grading(args: argparse.Namespace) -> int:
    try:
        with Store(args.db or default_db_url()) as store:
            user = Accounts(store).set_grading(None, args.username, args.allowed)
            now = "may now grade" if user.can_grade else "may no longer grade"
            print(f"{user.role.capitalize()} {user.username!r} {now} ({store.url}).")
    except GliderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _read_password(from_stdin: bool, env_var: str) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
        if not password:
            raise _NoPassword("--password-stdin was given but standard input held no password.")
        return password
    if os.environ.get(env_var):
        return os.environ[env_var]
    if not sys.stdin.isatty():
        raise _NoPassword(f"No password: pipe it in with --password-stdin, or set {env_var}.")
    try:
        first = getpass.getpass(f"Password (at least {MIN_PASSWORD_LENGTH} characters): ")
        again = getpass.getpass("Password again: ")
    except (EOFError, KeyboardInterrupt) as error:
        raise _NoPassword("No password was entered.") from error
    if first != again:
        raise _NoPassword("The two passwords differ; nothing was created.")
    return first
