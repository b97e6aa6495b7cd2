"""Sign in with Hugging Face in the web app, through its handlers: the profile comes from the request's session
exactly where Gradio reads it to inject a `gr.OAuthProfile` (checked against gradio.helpers.special_args), and
the study tabs, People, History and Batch refuse a visitor who is not signed in, while the Grade tab is theirs
as a demo (never on a blind-study item).

The session is the one Starlette's SessionMiddleware leaves in the request scope after Gradio's /login/callback
(`oauth_info` with `userinfo`); the launched app with Gradio's own login routes is tests/test_access_hub.py.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from gradio.helpers import special_args
from starlette.requests import Request as StarletteRequest

from core.accounts import ADMIN, ANNOTATOR
from core.hub_sign_in import HubRoles
from core.prompt import DEFAULT_TAGS
from core.store import Store
from core.studies import StudySpec
from tests.fakes import ScriptedJudge
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    answer,
    build,
    by_id,
    component,
    grade_in_form,
    handler,
    make_study_services,
    signed_in,
    value,
)
from webapp import Services
from webapp.access import TABS, hidden_classes
from webapp.app import auth_options, on_tabs
from webapp.hub_sign_in import SIGN_IN_HINT, profile_of
from webapp.main import parse_args, sign_in
from webapp.studies.label_tab import Cursor

SECRET = "hub-blind-item-context-51e0"
DEMO_VERDICT = "a demo verdict 0c4d"


def hub_request(username: str | None, *, expires_in: float = 3600) -> gr.Request:
    """The gr.Request of an event whose session Gradio's OAuth login filled in (None: nobody signed in)."""
    session: dict[str, Any] = {} if username is None else {"oauth_info": {
        "access_token": "hf_oauth_token", "token_type": "bearer", "scope": "openid profile",
        "expires_at": int(time.time() + expires_in),
        "userinfo": {"sub": "1", "name": username.title(), "preferred_username": username,
                     "profile": f"https://huggingface.co/{username}", "picture": ""}}}
    scope = {"type": "http", "method": "POST", "path": "/gradio_api/queue/join", "headers": [], "query_string": b"",
             "session": session}
    return gr.Request(request=StarletteRequest(scope))


@contextmanager
def gradio_login_mock(identity: dict[str, Any]) -> Iterator[None]:
    """While the app is built or launched: Gradio's local OAuth mock (used whenever it is not on a Space), with
    the one call it makes to huggingface.co (who is this machine's `hf auth login`?) answered by `identity`.

    Gradio reads the profile once, when it mounts its login routes; the mocked /login/callback then puts it in
    the session (a shallow copy: change `identity` to sign the next login in as someone else).
    """
    mocked = {"access_token": "mock-oauth-token-for-local-dev", "token_type": "bearer", "scope": "openid profile",
              "expires_at": 0, "userinfo": identity}
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SPACE_ID", raising=False)  # not on a Space: Gradio mounts its local mock
        patch.setattr("gradio.oauth._get_mocked_oauth_info", lambda: mocked)
        with pytest.warns(UserWarning, match="OAuth features outside of a Space"):
            yield


@pytest.fixture
def services(tmp_path: Path) -> Services:
    """Hugging Face sign-in; `ada` is an admin by GLIDER_ADMINS, nobody has an account yet."""
    made = make_study_services(tmp_path, judge=ScriptedJudge(), users={})
    made.hub = HubRoles.from_env({"GLIDER_ADMINS": "ada"})
    assert isinstance(made.judge, ScriptedJudge)
    made.judge.answer = answer(f"- {DEMO_VERDICT}", ["Paris"], 1)
    return made


@pytest.fixture
def demo(services: Services) -> gr.Blocks:
    with gradio_login_mock({"preferred_username": "nobody"}):
        return build(services)


def plain(raw: dict[Any, Any]) -> str:
    return html.unescape(" ".join(str(value(update)) for update in raw.values()))


def blind_study(services: Services) -> tuple[int, dict[str, str]]:
    studies = services.studies
    assert studies is not None and services.hub is not None
    from webapp.hub_sign_in import user_of

    ada = user_of(services, profile(hub_request("ada")))
    study = studies.create_study(ada, StudySpec(name="Hub study", pass_criteria=FAITHFULNESS_CRITERIA,
                                                rubric=FAITHFULNESS_RUBRIC, tags=("CONTEXT", "MODEL OUTPUT"),
                                                blind=True))
    fields = {"CONTEXT": SECRET, "MODEL OUTPUT": "Paris is the capital."}
    studies.add_item(ada, study.id, fields)
    return study.id, fields


def profile(request: gr.Request) -> gr.OAuthProfile:
    found = profile_of(request)
    assert found is not None
    return found


@pytest.mark.parametrize(("request_", "username"), [
    (hub_request("ada"), "ada"),
    (hub_request(None), None),
    (hub_request("ann", expires_in=-10), None),  # an expired login is nobody
    (gr.Request(username=None), None),  # no session middleware at all (password mode)
])
def test_the_profile_is_the_one_gradio_injects(request_: gr.Request, username: str | None) -> None:
    def handler_with_profile(who: gr.OAuthProfile | None) -> None:
        raise AssertionError("not called")

    injected = special_args(handler_with_profile, inputs=[], request=request_)[0][0]
    found = profile_of(request_)
    assert (found and found.username) == (injected and injected.username) == username
    assert found == injected


def test_the_header_has_the_login_button_and_no_password_form(services: Services, demo: gr.Blocks,
                                                              tmp_path: Path) -> None:
    assert isinstance(component(demo, "gl-login"), gr.LoginButton) and demo.expects_oauth
    assert auth_options(services) == {}  # Hugging Face signs people in, not Gradio's password form
    (tmp_path / "passwords").mkdir()
    passwords = make_study_services(tmp_path / "passwords")
    assert "auth" in auth_options(passwords)
    assert not build(passwords).expects_oauth  # password mode: no login button, no OAuth routes


def test_signing_in_makes_the_account_and_the_header_says_who(services: Services, demo: gr.Blocks) -> None:
    studies = services.studies
    assert studies is not None
    session = by_id(demo, handler(demo, "on_session")(hub_request("ada")))
    assert "Signed in as <b>ada</b> (admin)" in str(value(session["gl-user"]))
    assert session["gl-logout"]["visible"] is False  # the login button signs out
    assert session["gl-studies-body"]["visible"] is True
    newcomer = by_id(demo, handler(demo, "on_session")(hub_request("newcomer")))
    assert "Signed in as <b>newcomer</b> (annotator)" in str(value(newcomer["gl-user"]))
    assert newcomer["gl-studies-body"]["visible"] is False
    ada, user = studies.get_user("ada"), studies.get_user("newcomer")
    assert ada is not None and ada.role == ADMIN and user is not None and user.role == ANNOTATOR
    # Password-style requests (a username, no session) are nobody here: identity comes only from the session.
    assert "Signed in" not in str(value(by_id(demo, handler(demo, "on_session")(signed_in("ada")))["gl-user"]))


def test_each_role_sees_its_tabs(services: Services) -> None:
    visitor = on_tabs(services, hub_request(None))
    assert visitor == {"elem_classes": hidden_classes(("grade",)), "selected": "grade"}
    annotator = on_tabs(services, hub_request("ann"))
    assert annotator["selected"] == "label"
    assert annotator["elem_classes"] == hidden_classes(("grade", "label"))
    assert on_tabs(services, hub_request("ada"))["elem_classes"] == hidden_classes(TABS)


def test_a_visitor_gets_no_study_data_from_any_study_handler(services: Services, demo: gr.Blocks) -> None:
    study_id, _ = blind_study(services)
    visitor = hub_request(None)
    session = plain(handler(demo, "on_session")(visitor))
    assert SIGN_IN_HINT in session and "Hub study" not in session
    for name, args in [
        ("on_label_study", (study_id, Cursor())),
        ("on_report", (study_id,)),
        ("on_refresh_studies", ()),
        ("on_people_load", ()),
        ("on_refresh", ()),  # History
    ]:
        text = plain(handler(demo, name)(*args, request=visitor))
        assert SECRET not in text and "Hub study" not in text, name
        assert SIGN_IN_HINT in text or "Sign in first" in text, (name, text[-300:])
    # An annotator profile is refused the admin's tabs by core.
    ann = hub_request("ann")
    for name, args in [("on_report", (study_id,)), ("on_people_load", ()), ("on_refresh_studies", ())]:
        text = plain(handler(demo, name)(*args, request=ann))
        assert ("Only an admin may" in text or "managed by admins" in text) and SECRET not in text, (name, text)


def test_a_visitor_may_grade_as_a_demo_but_never_a_blind_item(services: Services, demo: gr.Blocks) -> None:
    _, fields = blind_study(services)

    def graded(request: gr.Request, texts: dict[str, str]) -> str:
        form = [*DEFAULT_TAGS, *(texts.get(tag, "") for tag in DEFAULT_TAGS), FAITHFULNESS_CRITERIA,
                FAITHFULNESS_RUBRIC, 256]
        return plain(grade_in_form(demo, *form, request=request)[-1])

    demo_fields = {"CONTEXT": "France's capital is Paris.", "MODEL OUTPUT": "Paris."}
    assert DEMO_VERDICT in graded(hub_request(None), demo_fields)
    refused = graded(hub_request(None), fields)
    assert "of a blind study" in refused and DEMO_VERDICT not in refused
    # The same for a signed-in annotator without the grade right, and for the /grade endpoint.
    assert "of a blind study" in graded(hub_request("ann"), fields)
    assert DEMO_VERDICT in graded(hub_request("ann"), demo_fields)
    grade_api = handler(demo, "grade")
    with pytest.raises(gr.Error, match="blind study"):
        grade_api(fields["CONTEXT"], "", fields["MODEL OUTPUT"], "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC,
                  request=hub_request(None))
    # The admin grades it (and sees the verdict), as with passwords.
    assert DEMO_VERDICT in graded(hub_request("ada"), fields)


def test_the_app_signs_in_with_hugging_face_on_a_space_with_hf_oauth(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    store = Store.from_path(tmp_path / "app.db")
    space = {"SPACE_ID": "team/glider", "OAUTH_CLIENT_ID": "id", "GLIDER_ADMINS": "Ada, bea"}
    with caplog.at_level(logging.INFO, logger="glider_studio"):
        assert sign_in(parse_args([]), store, space) == (True, HubRoles(admins=frozenset({"ada", "bea"})))
    assert "Sign-in with Hugging Face: admins: ada, bea; annotators: any signed-in" in caplog.text
    assert sign_in(parse_args(["--auth", "hf"]), store, {}) == (True, HubRoles())
    assert sign_in(parse_args([]), store, {**space, "GLIDER_AUTH": "password"}) == (True, None)
    assert sign_in(parse_args([]), store, {}) == (False, None)  # no user, no Space: sign-in off, as before
    store.close()


def test_an_account_not_in_glider_annotators_is_a_visitor_with_a_reason(services: Services, demo: gr.Blocks) -> None:
    services.hub = HubRoles.from_env({"GLIDER_ADMINS": "ada", "GLIDER_ANNOTATORS": "ann"})
    eve = hub_request("eve")
    session = plain(handler(demo, "on_session")(eve))
    assert "'eve' may not label here: ask an admin to add it to GLIDER_ANNOTATORS" in session
    assert "Signed in as" not in session
    assert on_tabs(services, eve) == {"elem_classes": hidden_classes(("grade",)), "selected": "grade"}
    assert services.studies is not None and services.studies.get_user("eve") is None
    assert "Signed in as <b>ann</b>" in plain(handler(demo, "on_session")(hub_request("ann")))
