"""Sign in with Hugging Face, in core: which sign-in the app uses, the role an HF account gets from the
configuration, its users row (made at the first sign-in, its admin role following GLIDER_ADMINS) on a real
SQLite file, and what a visitor who is not signed in may not ask the judge about."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.accounts import ADMIN, ANNOTATOR, REVIEWER, Accounts, verify_password
from core.errors import InputError, PermissionDenied, StudyInputError
from core.hub_sign_in import UNUSABLE_PASSWORD, HubRoles, authorized_orgs, hub_user, sign_in_mode
from core.people import People
from core.store import Store
from core.studies import Studies, StudySpec
from core.studies.visitors import visitor_guard
from tests.webapp_helpers import FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, PASSWORD

SPACE = {"SPACE_ID": "team/glider", "OAUTH_CLIENT_ID": "client-id"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.from_path(tmp_path / "glider.db")
    yield opened
    opened.close()


@pytest.mark.parametrize(("requested", "env", "users", "mode"), [
    (None, {}, False, None),  # nobody can sign in: sign-in off, as before
    (None, {}, True, "password"),  # a user exists: passwords
    ("password", {}, False, "password"),  # --auth
    (None, {"GLIDER_AUTH": "1"}, False, "password"),
    (None, {"GLIDER_AUTH": "hf"}, True, "hf"),  # forced, e.g. to try it locally
    ("hf", {}, False, "hf"),  # --auth hf
    (None, SPACE, False, "hf"),  # a Space with hf_oauth: true
    (None, {**SPACE, "GLIDER_AUTH": "password"}, True, "password"),  # a Space that keeps passwords
    ("password", SPACE, True, "password"),
    (None, {"SPACE_ID": "team/glider"}, True, "password"),  # a Space without hf_oauth
    (None, {"SPACE_ID": "team/glider"}, False, None),
])
def test_the_sign_in_mode(requested: str | None, env: dict[str, str], users: bool, mode: str | None) -> None:
    assert sign_in_mode(requested, env, users) == mode


def test_an_unknown_sign_in_mode_is_refused_with_the_choices() -> None:
    with pytest.raises(InputError, match="'hf' or 'password'"):
        sign_in_mode(None, {"GLIDER_AUTH": "github"}, False)


@pytest.mark.parametrize(("env", "username", "role"), [
    ({"GLIDER_ADMINS": "ada, Bea"}, "ada", ADMIN),
    ({"GLIDER_ADMINS": "ada, Bea"}, "bea", ADMIN),  # HF usernames are unique ignoring case
    ({"GLIDER_ADMINS": "ada,Bea"}, "BEA", ADMIN),
    ({"GLIDER_ADMINS": "ada"}, "anyone", ANNOTATOR),  # no GLIDER_ANNOTATORS: any signed-in account labels
    ({}, "ada", ANNOTATOR),  # no admins configured: nobody is one
    ({"GLIDER_ADMINS": "ada", "GLIDER_ANNOTATORS": "ann bob"}, "bob", ANNOTATOR),
    ({"GLIDER_ADMINS": "ada", "GLIDER_ANNOTATORS": "ann bob"}, "eve", None),  # not on the list: not let in
    ({"GLIDER_ADMINS": "ada", "GLIDER_ANNOTATORS": "ann"}, "ada", ADMIN),  # admins need not be listed twice
    ({"GLIDER_ADMINS": "adam"}, "ada", ANNOTATOR),  # whole names only
    ({"GLIDER_ANNOTATORS": "  "}, "eve", ANNOTATOR),  # blank: not set
])
def test_the_role_an_account_gets_from_the_configuration(env: dict[str, str], username: str,
                                                         role: str | None) -> None:
    assert HubRoles.from_env(env).role_for(username) == role


@pytest.mark.parametrize(("readme", "orgs"), [
    ("---\ntitle: GLIDER\nhf_oauth: true\nhf_oauth_authorized_org: patronus-team\n---\n# GLIDER", ("patronus-team",)),
    ("---\nhf_oauth_authorized_org: [team-a, 'team-b']  # two\n---\n", ("team-a", "team-b")),
    ("---\nhf_oauth: true\n---\nhf_oauth_authorized_org: not-front-matter\n", ()),
    ("# no front matter\nhf_oauth_authorized_org: x\n", ()),
])
def test_the_org_hugging_face_limits_sign_in_to_is_read_from_the_front_matter(readme: str,
                                                                                orgs: tuple[str, ...]) -> None:
    assert authorized_orgs(readme) == orgs
    roles = HubRoles.from_env({"GLIDER_ADMINS": "ada"}, readme)
    assert roles.orgs == orgs and (("only members of " + orgs[0]) in roles.describe() if orgs else True)


def test_the_first_sign_in_makes_an_account_no_password_opens(store: Store) -> None:
    roles = HubRoles.from_env({"GLIDER_ADMINS": "ada"})
    accounts = Accounts(store, password_cost=16)
    assert not accounts.any_users()
    ada, ann = hub_user(store, "ada", roles), hub_user(store, "ann", roles)
    assert (ada.role, ann.role) == (ADMIN, ANNOTATOR) and ada.can_grade and not ann.can_grade
    assert accounts.get_user("ann") == ann and accounts.any_users()
    # Signing in again finds the same row (no second one).
    assert hub_user(store, "ann", roles) == ann
    assert [u.username for u in accounts.list_users(ada)] == ["ada", "ann"]
    # No password signs in as an account Hugging Face made, not even the stored marker itself.
    for guess in ("", UNUSABLE_PASSWORD, "!hf-oauth", PASSWORD):
        assert accounts.authenticate("ann", guess) is None
    assert not verify_password(UNUSABLE_PASSWORD, UNUSABLE_PASSWORD)


def test_the_admin_role_follows_glider_admins_at_every_sign_in(store: Store) -> None:
    people = People(store, password_cost=16)
    before = HubRoles.from_env({"GLIDER_ADMINS": "ada,bea"})
    ada, bea = hub_user(store, "ada", before), hub_user(store, "bea", before)
    cid = hub_user(store, "cid", before)
    assert (ada.role, bea.role, cid.role) == (ADMIN, ADMIN, ANNOTATOR)
    people.set_role(ada, "cid", REVIEWER)  # roles below admin are the People tab's, and stay
    after = HubRoles.from_env({"GLIDER_ADMINS": "ada,cid"})  # bea removed, cid added
    assert hub_user(store, "bea", after).role == ANNOTATOR  # removed: an annotator from this sign-in on
    assert hub_user(store, "cid", after).role == ADMIN
    assert hub_user(store, "ada", after) == ada  # nothing changed, nothing written
    # An admin made in the People tab who is not in GLIDER_ADMINS is an annotator again at the next sign-in.
    people.set_role(ada, "bea", ADMIN)
    assert hub_user(store, "bea", after).role == ANNOTATOR
    # A reviewer keeps the role the People tab gave.
    people.set_role(ada, "cid", REVIEWER)
    assert hub_user(store, "cid", HubRoles.from_env({"GLIDER_ADMINS": "ada"})).role == REVIEWER


def test_an_account_the_configuration_does_not_let_in_gets_no_row_and_keeps_its_labels(store: Store) -> None:
    roles = HubRoles.from_env({"GLIDER_ADMINS": "ada", "GLIDER_ANNOTATORS": "ann"})
    accounts = Accounts(store, password_cost=16)
    with pytest.raises(PermissionDenied, match="GLIDER_ANNOTATORS"):
        hub_user(store, "eve", roles)
    assert accounts.get_user("eve") is None
    ann = hub_user(store, "ann", roles)
    narrower = HubRoles.from_env({"GLIDER_ADMINS": "ada", "GLIDER_ANNOTATORS": "bob"})
    with pytest.raises(PermissionDenied, match="may not label here"):
        hub_user(store, "ann", narrower)
    assert accounts.get_user("ann") == ann  # the row (and the labels on it) stay


def test_a_deactivated_account_is_refused_even_when_hugging_face_signs_it_in(store: Store) -> None:
    roles = HubRoles.from_env({"GLIDER_ADMINS": "ada"})
    ada = hub_user(store, "ada", roles)
    hub_user(store, "ann", roles)
    People(store, password_cost=16).set_active(ada, "ann", False)
    with pytest.raises(PermissionDenied, match="deactivated"):
        hub_user(store, "ann", roles)


def test_a_name_the_users_table_cannot_hold_is_refused(store: Store) -> None:
    with pytest.raises(StudyInputError):
        hub_user(store, "not a name", HubRoles())


def test_a_password_account_with_the_same_name_is_the_one_hugging_face_signs_in(store: Store) -> None:
    """A database moved from self-hosting to a Space: the HF account `ann` is the users row `ann` (its labels)."""
    accounts = Accounts(store, password_cost=16)
    made = accounts.create_user("ann", PASSWORD, ANNOTATOR)
    People(store, password_cost=16).reset_password(None, "ann")  # must choose a new password...
    signed = hub_user(store, "ann", HubRoles())
    assert signed.id == made.id and not signed.must_change_password  # ...which HF sign-in has no use for


def test_a_visitor_may_not_ask_the_judge_about_any_blind_item(store: Store) -> None:
    studies = Studies(store, password_cost=16)
    ada = studies.create_user("ada", PASSWORD, ADMIN)
    blind = studies.create_study(ada, StudySpec(name="Blind", pass_criteria=FAITHFULNESS_CRITERIA,
                                                rubric=FAITHFULNESS_RUBRIC, tags=("CONTEXT", "MODEL OUTPUT"),
                                                blind=True))
    open_ = studies.create_study(ada, StudySpec(name="Open", pass_criteria=FAITHFULNESS_CRITERIA,
                                                rubric=FAITHFULNESS_RUBRIC, tags=("CONTEXT", "MODEL OUTPUT"),
                                                blind=False))
    item = studies.add_item(ada, blind.id, {"CONTEXT": "Secret context.", "MODEL OUTPUT": "Secret output."})
    studies.add_item(ada, open_.id, {"CONTEXT": "Open context.", "MODEL OUTPUT": "Open output."})
    guard = visitor_guard(store)
    assert guard.covers({"CONTEXT": "Secret  context.", "MODEL OUTPUT": "Secret output."}) == item.id
    with pytest.raises(PermissionDenied, match="blind study"):
        guard.check({"USER INPUT": "Secret context.", "MODEL OUTPUT": "Secret output."})
    guard.check({"CONTEXT": "Open context.", "MODEL OUTPUT": "Open output."})  # not blind: a visitor may
    guard.check({"CONTEXT": "Secret context.", "MODEL OUTPUT": "Something else."})
