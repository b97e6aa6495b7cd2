"""`python -m core users` / `set-role` / `reset-password` / `deactivate` / `reactivate` / `assign`: the People
tab's actions from the command line, acting as the database's owner (as create-user does).

A new password comes from --password-stdin, $GLIDER_USER_PASSWORD or a hidden prompt (never an argument);
`reset-password --one-time` prints a generated one-time password instead, once, and the user must choose
their own at the next sign-in.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from core.accounts import ROLES
from core.errors import GliderError
from core.settings import default_db_url
from core.store import Store
from core.studies import Studies
from core.studies.assignment import CHOSEN, OPEN
from core.studies_cli import USER_PASSWORD_ENV, _NoPassword, _read_password  # the sources create-user reads

DB_HELP = "SQLAlchemy URL (env GLIDER_DB; default a SQLite file in GLIDER_DATA_DIR or ./data)"


def register(subparsers: Any) -> None:
    """Add the people and assignment sub-commands to the `python -m core` parser."""
    users = subparsers.add_parser("users", help="list the users: role, active, grade right, last active",
                                  description="List every user with their role, whether they may sign in, their "
                                              "grade right and when they were last active.")
    _db(users).set_defaults(run=_run_users)

    role = subparsers.add_parser("set-role", help="make a user an admin, reviewer or annotator",
                                 description="Change a user's role. The last active admin stays an admin.")
    role.add_argument("username")
    role.add_argument("role", choices=ROLES)
    _db(role).set_defaults(run=_run_set_role)

    reset = subparsers.add_parser(
        "reset-password", help="set a user's password, or give them a one-time password",
        description=(f"Set a user's password (from --password-stdin, ${USER_PASSWORD_ENV} or a prompt), or with "
                     "--one-time print a generated one-time password, once: the user must then choose their own "
                     "at the next sign-in."))
    reset.add_argument("username")
    reset.add_argument("--one-time", action="store_true", help="generate a one-time password and print it once")
    reset.add_argument("--must-change", action="store_true",
                       help="the user must choose a new password at the next sign-in (always with --one-time)")
    reset.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of standard input")
    _db(reset).set_defaults(run=_run_reset)

    for name, active, text in (("deactivate", False, "stop a user from signing in (their labels stay)"),
                               ("reactivate", True, "let a deactivated user sign in again")):
        switch = subparsers.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        switch.add_argument("username")
        _db(switch).set_defaults(run=_run_set_active, active=active)

    assign = subparsers.add_parser(
        "assign", help="open a study to every annotator, or to chosen ones (items split or not)",
        description="Choose who may label a study: every annotator (--open) or the users named in --annotators; "
                    "--split deals each item to the study's overlap target k of them, so each labels a share.")
    assign.add_argument("study_id", type=int, metavar="STUDY")
    who = assign.add_mutually_exclusive_group(required=True)
    who.add_argument("--open", action="store_true", help="every annotator may label the study")
    who.add_argument("--annotators", metavar="A,B,...", help="only these users (comma-separated names)")
    assign.add_argument("--split", action="store_true", help="split the items among the chosen annotators")
    _db(assign).set_defaults(run=_run_assign)


def _db(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--db", default=None, help=DB_HELP)
    return parser


def _with_studies(args: argparse.Namespace, work: Callable[[Studies], None]) -> int:
    """Run `work` on the database's studies as its owner; a refusal is printed as `error: ...`, exit code 1."""
    try:
        with Store(args.db or default_db_url()) as store:
            work(Studies(store))
    except GliderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _run_users(args: argparse.Namespace) -> int:
    def work(studies: Studies) -> None:
        rows = [("USER", "ROLE", "ACTIVE", "GRADES", "CREATED", "LAST ACTIVE")]
        for person in studies.people.list_people(None):
            user = person.user
            active = ("yes, must choose a password" if user.must_change_password else "yes") if user.active else "no"
            last = person.last_active.strftime("%Y-%m-%d %H:%M") if person.last_active else "-"
            rows.append((user.username, user.role, active, "yes" if user.can_grade else "no",
                         user.created_at.strftime("%Y-%m-%d"), last))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())

    return _with_studies(args, work)


def _run_set_role(args: argparse.Namespace) -> int:
    def work(studies: Studies) -> None:
        user = studies.people.set_role(None, args.username, args.role)
        print(f"{user.username!r} is now {'an' if user.role[0] in 'aeiou' else 'a'} {user.role}.")

    return _with_studies(args, work)


def _run_reset(args: argparse.Namespace) -> int:
    password = None
    if not args.one_time:
        try:
            password = _read_password(args.password_stdin, USER_PASSWORD_ENV)
        except _NoPassword as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    def work(studies: Studies) -> None:
        reset = studies.people.reset_password(None, args.username, password, must_change=args.must_change)
        if reset.one_time_password is not None:
            print(f"One-time password for {reset.user.username!r} (shown once; they choose their own at the next "
                  f"sign-in): {reset.one_time_password}")
        else:
            then = " They must choose a new one at the next sign-in." if reset.user.must_change_password else ""
            print(f"Password of {reset.user.username!r} set.{then}")

    return _with_studies(args, work)


def _run_set_active(args: argparse.Namespace) -> int:
    def work(studies: Studies) -> None:
        user = studies.people.set_active(None, args.username, args.active)
        print(f"{user.username!r} " + ("may sign in again." if user.active else
                                        "is deactivated: they cannot sign in; their labels stay."))

    return _with_studies(args, work)


def _run_assign(args: argparse.Namespace) -> int:
    def work(studies: Studies) -> None:
        mode = OPEN if args.open else CHOSEN
        done = studies.assignments.set(None, args.study_id, mode, args.annotators or "", split=args.split)
        if done.mode == OPEN:
            print(f"Study #{done.study_id} is open to every annotator.")
            return
        split = " (items split among them)" if done.split_items else ""
        print(f"Study #{done.study_id} is for {', '.join(done.annotators)}{split}.")
        for name, count in studies.assignments.assigned(None, done.study_id).items():
            print(f"  {name}: {count} item{'s' if count != 1 else ''} assigned")

    return _with_studies(args, work)
