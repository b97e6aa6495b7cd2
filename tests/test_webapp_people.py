"""The People tab and the "Choose a new password" panel, through their handlers (webapp.people_tab,
webapp.password_panel): an admin's actions work and say so, an annotator is refused each of them and changes
nothing, and a user whose password was reset sees only the panel until they have chosen a new one."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.studies import StudySpec
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    PASSWORD,
    build,
    by_id,
    handler,
    make_study_services,
    signed_in,
    value,
)
from webapp import Services, access
from webapp.app import on_tabs


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    services = make_study_services(tmp_path)
    yield services
    services.store.close()


def _study(services: Services) -> int:
    studies = services.studies
    assert studies is not None
    ada = studies.get_user("ada")
    assert ada is not None
    study = studies.create_study(ada, StudySpec(name="<b>Bold</b> study", pass_criteria=FAITHFULNESS_CRITERIA,
                                                rubric=FAITHFULNESS_RUBRIC, tags=("CONTEXT", "MODEL OUTPUT"),
                                                overlap_target=1))
    for n in range(4):
        studies.add_item(ada, study.id, {"CONTEXT": f"Context {n}.", "MODEL OUTPUT": f"Output {n}."})
    return study.id


def text(update: Any) -> str:
    return html.unescape(str(value(update)))


def test_the_admin_sees_the_users_and_changes_them(services: Services) -> None:
    demo = build(services)
    studies = services.studies
    assert studies is not None
    ada = signed_in("ada")
    loaded = by_id(demo, handler(demo, "on_people_load")(ada))
    table = value(loaded["gl-people-table"])
    assert list(table["User"]) == ["ada", "ann", "bob"] and list(table["Role"]) == ["admin", "annotator", "annotator"]
    assert loaded["gl-people-body"]["visible"] is True
    picked = by_id(demo, handler(demo, "on_user_pick")("ann", ada))
    assert (picked["gl-people-role"], picked["gl-people-can-grade"]) == ("annotator", False)
    done = by_id(demo, handler(demo, "on_set_role")("ann", "reviewer", ada))
    assert "ann is now a reviewer." in text(done["gl-people-message"])
    assert list(value(done["gl-people-table"])["Role"]) == ["admin", "reviewer", "annotator"]
    assert access.tabs_for(services, studies.get_user("ann")) == ("label", "review")  # labels, and settles disputes
    done = by_id(demo, handler(demo, "on_set_grading")("bob", True, ada))
    assert "bob may now grade." in text(done["gl-people-message"])
    assert studies.get_user("bob").can_grade  # type: ignore[union-attr]
    done = by_id(demo, handler(demo, "on_deactivate")("bob", ada))
    assert "bob is deactivated" in text(done["gl-people-message"])
    assert list(value(done["gl-people-table"])["Active"]) == ["yes", "yes", "no"]
    assert studies.authenticate("bob", PASSWORD) is None
    done = by_id(demo, handler(demo, "on_reactivate")("bob", ada))
    assert "bob may sign in again." in text(done["gl-people-message"])
    refused = by_id(demo, handler(demo, "on_set_role")("ada", "annotator", ada))
    assert "'ada' is the last active admin" in text(refused["gl-people-message"])
    assert "Choose a user first." in text(by_id(demo, handler(demo, "on_deactivate")(None, ada))["gl-people-message"])
    refused = by_id(demo, handler(demo, "on_deactivate")("ada", ada))
    assert "cannot deactivate your own account" in text(refused["gl-people-message"])


def test_a_one_time_password_is_shown_once_and_must_be_replaced(services: Services) -> None:
    demo = build(services)
    studies = services.studies
    assert studies is not None
    done = by_id(demo, handler(demo, "on_reset_password")("ann", "", True, signed_in("ada")))
    shown = re.search(r'<code class="gl-one-time-password">([^<]+)</code>', str(value(done["gl-people-message"])))
    assert shown is not None and value(done["gl-people-password"]) == ""
    one_time = html.unescape(shown.group(1))
    assert list(value(done["gl-people-table"])["Password"]) == ["", "must choose a new one", ""]
    # ann signs in with it: only the panel, no tabs, and every other call refused by core
    assert studies.authenticate("ann", one_time) is not None
    ann = signed_in("ann")
    assert by_id(demo, handler(demo, "on_password_load")(ann))["gl-password-panel"]["visible"] is True
    assert by_id(demo, handler(demo, "on_password_load")(signed_in("bob")))["gl-password-panel"]["visible"] is False
    locked = on_tabs(services, ann)
    assert access.LOCKED_CLASS in locked["elem_classes"]
    session = by_id(demo, handler(demo, "on_session")(ann))  # what the Label tab shows meanwhile
    assert "'ann' must choose a new password first" in text(session["gl-label-notice"])
    choose = handler(demo, "on_choose_password")
    for current, new, again, message in ((one_time, "a new secret", "a new secrex", "The two new passwords differ"),
                                         ("wrong-one-123", "a new secret", "a new secret", "not right"),
                                         (one_time, "short", "short", "at least 8 characters")):
        refused = by_id(demo, choose(current, new, again, ann))
        assert message in text(refused["gl-password-message"]) and "gl-password-done" not in refused
    saved = by_id(demo, choose(one_time, "a new secret", "a new secret", ann))
    assert saved["gl-password-done"] is True and "new password is saved" in text(saved["gl-password-message"])
    assert all(value(saved[box]) == "" for box in ("gl-password-current", "gl-password-new", "gl-password-again"))
    assert access.LOCKED_CLASS not in on_tabs(services, ann)["elem_classes"]
    assert studies.authenticate("ann", "a new secret") is not None and studies.authenticate("ann", one_time) is None
    # a password the admin types is set as typed; the one-time box is not shown
    typed = by_id(demo, handler(demo, "on_reset_password")("bob", "typed by ada", False, signed_in("ada")))
    assert "The password of bob is set." in text(typed["gl-people-message"])
    assert "gl-one-time-password" not in str(value(typed["gl-people-message"]))
    assert studies.authenticate("bob", "typed by ada") is not None


def test_the_admin_adds_a_user_with_a_one_time_password(services: Services) -> None:
    demo = build(services)
    studies = services.studies
    assert studies is not None
    added = by_id(demo, handler(demo, "on_add_user")("cat", "reviewer", "", signed_in("ada")))
    shown = re.search(r'<code class="gl-one-time-password">([^<]+)</code>', str(value(added["gl-people-message"])))
    assert shown is not None and value(added["gl-people-new-name"]) == ""
    assert list(value(added["gl-people-table"])["User"]) == ["ada", "ann", "bob", "cat"]
    cat = studies.authenticate("cat", html.unescape(shown.group(1)))
    assert cat is not None and cat.role == "reviewer" and cat.must_change_password
    taken = by_id(demo, handler(demo, "on_add_user")("ann", "annotator", "", signed_in("ada")))
    assert "The username 'ann' is taken." in text(taken["gl-people-message"])
    empty = by_id(demo, handler(demo, "on_add_user")("  ", "annotator", "", signed_in("ada")))
    assert "The username is empty." in text(empty["gl-people-message"])
    typed = by_id(demo, handler(demo, "on_add_user")("dan", "annotator", "dan's password", signed_in("ada")))
    assert "Added annotator dan." in text(typed["gl-people-message"]) and value(typed["gl-people-new-password"]) == ""


def test_the_admin_chooses_who_labels_a_study(services: Services) -> None:
    demo = build(services)
    study_id = _study(services)
    ada = signed_in("ada")
    loaded = by_id(demo, handler(demo, "on_people_load")(ada))
    choices = [tuple(choice) for choice in loaded["gl-assign-study"]["choices"]]
    assert (f"<b>Bold</b> study (#{study_id})", study_id) in choices  # a Dropdown shows its labels as text
    saved = by_id(demo, handler(demo, "on_save_assignment")(study_id, "chosen", ["ann", "bob"], True, ada))
    assert "Only the chosen annotators (items split); items assigned: ann: 2, bob: 2." in text(
        saved["gl-assign-message"])
    picked = by_id(demo, handler(demo, "on_assignment_pick")(study_id, ada))
    assert (picked["gl-assign-mode"], picked["gl-assign-annotators"], picked["gl-assign-split"]) == (
        "chosen", ["ann", "bob"], True)
    refused = by_id(demo, handler(demo, "on_save_assignment")(study_id, "chosen", [], False, ada))
    assert "Choose at least one annotator" in text(refused["gl-assign-message"])
    refused = by_id(demo, handler(demo, "on_save_assignment")(None, "open", [], False, ada))
    assert "Choose a study first." in text(refused["gl-assign-message"])
    opened = by_id(demo, handler(demo, "on_save_assignment")(study_id, "open", ["ann"], False, ada))
    assert "Open to every annotator" in text(opened["gl-assign-message"])


def test_an_annotator_is_refused_every_people_action_and_changes_nothing(services: Services) -> None:
    demo = build(services)
    study_id = _study(services)
    studies = services.studies
    assert studies is not None
    ada = studies.get_user("ada")
    assert ada is not None
    before = ([(p.user, p.last_active) for p in studies.people.list_people(ada)],
              studies.assignments.get(ada, study_id))
    bob = signed_in("bob")
    loaded = by_id(demo, handler(demo, "on_people_load")(bob))
    assert loaded["gl-people-body"]["visible"] is False and "managed by admins" in text(loaded["gl-people-notice"])
    assert "gl-people-table" not in loaded
    calls: dict[str, tuple[Any, ...]] = {
        "on_user_pick": ("ada",),
        "on_add_user": ("eve", "admin", "eve's own password"),
        "on_set_role": ("bob", "admin"),
        "on_set_grading": ("bob", True),
        "on_reset_password": ("ada", "", True),
        "on_deactivate": ("ada",),
        "on_reactivate": ("bob",),
    }
    for name, args in calls.items():
        reply = by_id(demo, handler(demo, name)(*args, bob))
        assert "Only an admin may manage people; 'bob' is an annotator." in text(reply["gl-people-message"]), name
        assert "gl-people-table" not in reply and "gl-one-time-password" not in str(reply)
    assignment_calls: dict[str, tuple[Any, ...]] = {"on_assignment_pick": (study_id,),
                                                    "on_save_assignment": (study_id, "chosen", ["bob"], False)}
    for name, args in assignment_calls.items():
        reply = by_id(demo, handler(demo, name)(*args, bob))
        assert "Only an admin may manage people" in text(reply["gl-assign-message"]), name
    after = ([(p.user, p.last_active) for p in studies.people.list_people(ada)], studies.assignments.get(ada, study_id))
    assert after == before
    assert studies.authenticate("ada", PASSWORD) is not None and studies.get_user("eve") is None
    # nobody signed in: refused too
    assert "Only an admin" not in text(by_id(demo, handler(demo, "on_set_role")("bob", "admin", signed_in(None)))
                                       ["gl-people-message"])
    assert studies.get_user("bob").role == "annotator"  # type: ignore[union-attr]
