"""People (core.people) and the account rules behind them (core.accounts): roles, password resets and the
must-change flag, deactivation, and the last active admin; on a SQLite file and on PostgreSQL (conftest.db_url)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.accounts import ADMIN, ANNOTATOR, REVIEWER, User
from core.errors import PermissionDenied, StudyInputError
from core.people import People
from core.store import Store
from core.studies import Studies, StudySpec
from tests.databases import raw

PASSWORD = "correct horse battery"
FAST = 2**10  # scrypt's cost for tests
RUBRIC = "0: The MODEL OUTPUT is not faithful.\n1: The MODEL OUTPUT is faithful."


@pytest.fixture
def studies(store: Store) -> Studies:
    return Studies(store, password_cost=FAST)


@pytest.fixture
def people(studies: Studies) -> People:
    return studies.people


@pytest.fixture
def boss(studies: Studies) -> User:
    return studies.create_user("boss", PASSWORD, role=ADMIN)


@pytest.fixture
def ann(studies: Studies) -> User:
    return studies.create_user("ann", PASSWORD)


def _study(studies: Studies, admin: User, items: int = 2) -> int:
    study = studies.create_study(admin, StudySpec(name="Faithfulness", pass_criteria="Faithful?", rubric=RUBRIC,
                                                  tags=("CONTEXT", "MODEL OUTPUT"), overlap_target=2, blind=False))
    for n in range(items):
        studies.add_item(admin, study.id, {"CONTEXT": f"Context {n}.", "MODEL OUTPUT": f"Output {n}."})
    return study.id


def test_list_people_shows_roles_rights_and_last_activity(studies: Studies, people: People, boss: User,
                                                          ann: User) -> None:
    study_id = _study(studies, boss)
    cat = studies.create_user("cat", PASSWORD, role=REVIEWER)
    assert [p.user.username for p in people.list_people(boss)] == ["ann", "boss", "cat"]
    assert all(p.last_active is None for p in people.list_people(boss))
    item = studies.next_item(ann, study_id)  # handed an item: active now
    assert item is not None
    taken = {p.user.username: p.last_active for p in people.list_people(boss)}["ann"]
    assert taken is not None
    label = studies.submit(ann, item.id, 1)
    listed = {p.user.username: p for p in people.list_people(boss)}
    last = listed["ann"].last_active
    assert last is not None and last >= label.updated_at and last >= taken
    assert listed["cat"].user.role == REVIEWER and listed["cat"].user.may_review
    assert listed["boss"].user.can_grade and not listed["ann"].user.can_grade
    assert len(people.list_people(None)) == 3  # the command line
    for who in (ann, cat):
        with pytest.raises(PermissionDenied, match="Only an admin may list users"):
            people.list_people(who)


def test_set_role_and_the_last_active_admin(studies: Studies, people: People, boss: User, ann: User) -> None:
    assert people.set_role(boss, "ann", REVIEWER).role == REVIEWER
    with pytest.raises(StudyInputError, match="Role 'owner' is not one of admin, reviewer, annotator"):
        people.set_role(boss, "ann", "owner")
    with pytest.raises(StudyInputError, match="There is no user 'nobody'"):
        people.set_role(boss, "nobody", ANNOTATOR)
    with pytest.raises(StudyInputError, match="username is empty"):
        people.set_role(boss, "  ", ANNOTATOR)
    for who in (boss, None):  # the last active admin, in the browser or on the command line
        with pytest.raises(StudyInputError, match="'boss' is the last active admin and cannot be made an annotator"):
            people.set_role(who, "boss", ANNOTATOR)
    assert studies.get_user("boss").role == ADMIN  # type: ignore[union-attr]
    reviewer = studies.get_user("ann")
    assert reviewer is not None
    with pytest.raises(PermissionDenied, match="Only an admin may change a role; 'ann' is a reviewer"):
        people.set_role(reviewer, "ann", ADMIN)
    people.set_role(boss, "ann", ADMIN)  # two admins now: the boss may step down, and loses the rights at once
    assert people.set_role(boss, "boss", ANNOTATOR).role == ANNOTATOR
    with pytest.raises(PermissionDenied, match="'boss' is an annotator"):
        people.set_role(boss, "ann", ANNOTATOR)
    with pytest.raises(StudyInputError, match="'ann' is the last active admin"):
        people.set_role(None, "ann", REVIEWER)


def test_a_one_time_password_must_be_replaced_before_anything_else(studies: Studies, people: People, boss: User,
                                                                     ann: User, db_url: str) -> None:
    study_id = _study(studies, boss)
    reset = people.reset_password(boss, "ann")
    one_time = reset.one_time_password
    assert one_time is not None and len(one_time) == 14 and one_time.isalnum() and reset.user.must_change_password
    with raw(db_url) as sql:  # never stored in clear
        stored = b"".join(str(row).encode() for row in sql.execute(text("SELECT * FROM users")))
    assert one_time.encode() not in stored
    assert studies.authenticate("ann", PASSWORD) is None
    signed = studies.authenticate("ann", one_time)
    assert signed is not None and signed.must_change_password
    for action in (lambda: studies.list_studies(signed), lambda: studies.next_item(signed, study_id),
                   lambda: studies.blind_guard(signed)):
        with pytest.raises(PermissionDenied, match="'ann' must choose a new password first"):
            action()
    with pytest.raises(PermissionDenied, match="current password is not right"):
        studies.accounts.change_password(signed, "wrong-guess-123", "a brand new one")
    with pytest.raises(StudyInputError, match="at least 8 characters"):
        studies.accounts.change_password(signed, one_time, "short")
    with pytest.raises(StudyInputError, match="the same as the current one"):
        studies.accounts.change_password(signed, one_time, one_time)
    changed = studies.accounts.change_password(signed, one_time, "a brand new one")
    assert not changed.must_change_password
    assert studies.authenticate("ann", one_time) is None
    again = studies.authenticate("ann", "a brand new one")
    assert again is not None and studies.next_item(again, study_id) is not None
    assert [s.id for s in studies.list_studies(again)] == [study_id]
    # a second one-time password is another one: shown once, never the same
    assert people.reset_password(None, "ann").one_time_password not in (None, one_time)


def test_an_admin_may_set_the_password_and_choose_whether_it_must_change(studies: Studies, people: People,
                                                                          boss: User, ann: User) -> None:
    with pytest.raises(PermissionDenied, match="Only an admin may reset passwords"):
        people.reset_password(ann, "boss", "taken over!")
    assert studies.authenticate("boss", PASSWORD) is not None
    reset = people.reset_password(boss, "ann", "set by the admin", must_change=False)
    assert reset.one_time_password is None and not reset.user.must_change_password
    signed = studies.authenticate("ann", "set by the admin")
    assert signed is not None and studies.list_studies(signed) == []
    assert people.reset_password(boss, "ann", "another one!", must_change=True).user.must_change_password
    with pytest.raises(StudyInputError, match="at least 8 characters"):
        people.reset_password(boss, "ann", "short")
    with pytest.raises(StudyInputError, match="There is no user 'nobody'"):
        people.reset_password(boss, "nobody")


def test_a_deactivated_user_cannot_sign_in_loses_access_at_once_and_keeps_their_labels(
        studies: Studies, people: People, boss: User, ann: User, db_url: str) -> None:
    study_id = _study(studies, boss)
    item = studies.next_item(ann, study_id)
    assert item is not None
    studies.submit(ann, item.id, 1)
    studies.next_item(ann, study_id)  # holds a claim on the next item

    def claims() -> int:
        with raw(db_url) as sql:
            return int(sql.execute(text("SELECT count(*) FROM item_claims WHERE annotator_id = :a"),
                                   {"a": ann.id}).scalar_one())

    assert claims() == 1
    assert not people.set_active(boss, "ann", False).active
    assert claims() == 0  # the item she held is free for others at once
    assert studies.authenticate("ann", PASSWORD) is None
    for action in (lambda: studies.list_studies(ann), lambda: studies.next_item(ann, study_id),
                   lambda: studies.accounts.change_password(ann, PASSWORD, "a brand new one")):
        with pytest.raises(PermissionDenied, match="'ann' is deactivated"):
            action()
    rows = studies.ratings(boss, study_id)  # the label stays and counts
    assert [(row["annotator"], row["human_score"]) for row in rows if row["annotator"]] == [("ann", 1)]
    bob = studies.create_user("bob", PASSWORD)
    with pytest.raises(StudyInputError, match="cannot deactivate your own account"):
        people.set_active(boss, "boss", False)
    with pytest.raises(StudyInputError, match="'boss' is the last active admin and cannot be deactivated"):
        people.set_active(None, "boss", False)
    with pytest.raises(PermissionDenied, match="Only an admin may deactivate or reactivate users"):
        people.set_active(bob, "boss", False)
    assert people.set_active(boss, "ann", True).active
    assert studies.authenticate("ann", PASSWORD) is not None
    assert studies.list_studies(ann) != []


def test_an_admin_adds_users_and_bad_names_are_answered_clearly(studies: Studies, people: People, boss: User,
                                                                 ann: User) -> None:
    added = people.add_user(boss, " cat ", REVIEWER)
    assert added.user.username == "cat" and added.user.role == REVIEWER and added.user.must_change_password
    assert added.one_time_password is not None and studies.authenticate("cat", added.one_time_password) is not None
    typed = people.add_user(boss, "dan", password="dan's own pass")
    assert typed.one_time_password is None and not typed.user.must_change_password
    assert studies.authenticate("dan", "dan's own pass") is not None
    for name, role, password, message in (
        ("cat", ANNOTATOR, None, "The username 'cat' is taken"),
        ("", ANNOTATOR, None, "The username is empty"),
        ("two words", ANNOTATOR, None, "is not allowed"),
        ("eve", "owner", None, "Role 'owner' is not one of"),
        ("eve", ANNOTATOR, "short", "at least 8 characters"),
    ):
        with pytest.raises(StudyInputError, match=message):
            people.add_user(boss, name, role, password)
    with pytest.raises(PermissionDenied, match="Only an admin may add users"):
        people.add_user(ann, "eve")
    assert studies.get_user("eve") is None
