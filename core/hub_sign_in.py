"""Sign in with Hugging Face: which sign-in the app uses, and who an HF account is here and what it may do.

Two sign-in modes share one users table and one rule for "who may do what" (core.accounts: every action
checks the actor's stored row in its own transaction):

- password (self-hosting): accounts made with `python -m core create-user` / the People tab, checked by
  core.accounts.Accounts.authenticate;
- hf (a Space with `hf_oauth: true`, or GLIDER_AUTH=hf / `--auth hf`): Hugging Face signs the person in; this
  module maps the HF username to a users row (`hub_user`), created at the first sign-in with a password hash
  that no password matches, so labels, reviews and the People tab work unchanged.

Roles come from the configuration (`HubRoles`): admins are the HF usernames in GLIDER_ADMINS; any other
signed-in HF account is an annotator, or only those in GLIDER_ANNOTATORS when it is set. `hf_oauth_authorized_org`
in the Space's README front matter makes Hugging Face itself refuse non-members at login; it is recorded here
(for the log and the page), not checked again. GLIDER_ADMINS decides the admin role at every sign-in: someone
removed from it is an annotator from their next request on (their labels stay); an admin made in the People tab
who is not in GLIDER_ADMINS is likewise demoted. Reviewer roles, the grade right and deactivation are kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from core.accounts import ADMIN, ANNOTATOR, User, UserRow, check_username, find_user, to_user
from core.errors import InputError, PermissionDenied
from core.store import Store

PASSWORD_MODE, HUB_MODE = "password", "hf"
SIGN_IN_MODES = (PASSWORD_MODE, HUB_MODE)
# Not a scrypt hash (core.accounts.verify_password refuses anything but six '$'-separated parts), so no
# password signs in as an account that Hugging Face created; the People tab can still set one for self-hosting.
UNUSABLE_PASSWORD = "!hf-oauth"
_TRUE = {"1", "true", "yes", "on", PASSWORD_MODE}
_FALSE = {"", "0", "false", "no", "off"}
_ORG_LINE = re.compile(r"^hf_oauth_authorized_org:\s*(?P<value>.*?)\s*$", re.MULTILINE)


def _names(text: str | None) -> frozenset[str]:
    """Comma- or space-separated HF usernames, compared without case (HF usernames are unique ignoring case)."""
    return frozenset(name.lower() for name in re.split(r"[,\s]+", text or "") if name)


@dataclass(frozen=True)
class HubRoles:
    """Who may sign in with Hugging Face and as what (read from GLIDER_ADMINS, GLIDER_ANNOTATORS and the org)."""

    admins: frozenset[str] = frozenset()
    annotators: frozenset[str] | None = None  # None: any signed-in HF account
    orgs: tuple[str, ...] = ()  # hf_oauth_authorized_org: HF enforces it at login; recorded only

    @classmethod
    def from_env(cls, env: Mapping[str, str], readme: str = "") -> HubRoles:
        """The roles configured by GLIDER_ADMINS / GLIDER_ANNOTATORS and the README front matter's org."""
        annotators = env.get("GLIDER_ANNOTATORS", "").strip()
        return cls(admins=_names(env.get("GLIDER_ADMINS")), annotators=_names(annotators) if annotators else None,
                   orgs=authorized_orgs(readme))

    def role_for(self, username: str) -> str | None:
        """ADMIN for GLIDER_ADMINS, ANNOTATOR for any other account allowed in, None for an account that is not."""
        name = username.strip().lower()
        if name in self.admins:
            return ADMIN
        if self.annotators is None or name in self.annotators:
            return ANNOTATOR
        return None

    def describe(self) -> str:
        """One line for the log: who is an admin, who may label, and the org HF limits sign-in to."""
        admins = ", ".join(sorted(self.admins)) or "nobody (set GLIDER_ADMINS to HF usernames)"
        labellers = ("any signed-in Hugging Face account" if self.annotators is None
                     else "only " + (", ".join(sorted(self.annotators)) or "nobody"))
        org = f"; Hugging Face lets in only members of {', '.join(self.orgs)}" if self.orgs else ""
        return f"admins: {admins}; annotators: {labellers}{org}"


def authorized_orgs(readme: str) -> tuple[str, ...]:
    """The orgs of `hf_oauth_authorized_org` in a Space README's front matter (a name or an inline list)."""
    if not readme.startswith("---"):
        return ()
    front = readme.split("\n---", 1)[0]
    match = _ORG_LINE.search(front)
    if match is None:
        return ()
    value = match.group("value").split("#", 1)[0].strip().strip("[]")
    return tuple(name.strip().strip("'\"") for name in value.split(",") if name.strip().strip("'\""))


def sign_in_mode(requested: str | None, env: Mapping[str, str], users_exist: bool) -> str | None:
    """Which sign-in the app uses: `requested` (--auth) or GLIDER_AUTH when given; else hf on a Space with
    `hf_oauth` (SPACE_ID and OAUTH_CLIENT_ID set), password once a user exists, and None (sign-in off)."""
    asked = (requested if requested is not None else env.get("GLIDER_AUTH", "")).strip().lower()
    if asked in ("hf", "huggingface", "hugging-face"):
        return HUB_MODE
    if asked in _TRUE:
        return PASSWORD_MODE
    if asked not in _FALSE:
        raise InputError(f"GLIDER_AUTH / --auth must be 'hf' or 'password' (or 1/0), not {asked!r}.")
    if env.get("SPACE_ID") and env.get("OAUTH_CLIENT_ID"):
        return HUB_MODE
    return PASSWORD_MODE if users_exist else None


def _settled(row: UserRow, role: str) -> bool:
    """Whether the stored row already agrees with the configuration (then signing in writes nothing)."""
    return (row.role == ADMIN) == (role == ADMIN) and not row.must_change_password


def hub_user(store: Store, username: str, roles: HubRoles) -> User:
    """The user a Hugging Face account signs in as: its users row, made at the first sign-in with `roles`' role,
    its admin role following GLIDER_ADMINS each time (an admin removed from it becomes an annotator).

    PermissionDenied for an account the configuration does not let in (its row, if any, and labels stay) or one
    an admin deactivated; StudyInputError for a username the users table cannot hold.
    """
    name = check_username(username)
    role = roles.role_for(name)
    if role is None:
        raise PermissionDenied(
            f"The Hugging Face account {name!r} may not label here: ask an admin to add it to GLIDER_ANNOTATORS. "
            "You can still grade in the Grade tab.")
    with store.session("read") as session:
        row = find_user(session, name)
        user = None if row is None or not _settled(row, role) else to_user(row)
    if user is None:
        user = store.write("sign in to", lambda session: _sync(session, name, role))
    if not user.active:
        raise PermissionDenied(f"The account {user.username!r} is deactivated; an admin can reactivate it.")
    return user


def _sync(session: Session, name: str, role: str) -> User:
    """Create the account, or bring its admin role in line with the configuration (in one write transaction)."""
    row = find_user(session, name)
    if row is None:  # first sign-in (Store.write runs this again after a concurrent first sign-in's insert)
        row = UserRow(username=name, role=role, password_hash=UNUSABLE_PASSWORD, created_at=datetime.now(UTC),
                      can_grade=False, active=True, must_change_password=False)
        session.add(row)
    elif (row.role == ADMIN) != (role == ADMIN):
        row.role = role if role == ADMIN else ANNOTATOR  # out of GLIDER_ADMINS: an annotator (reviewers stay)
    row.must_change_password = False  # HF signed them in: there is no password of theirs to change
    session.flush()
    return to_user(row)
