"""Access control with Sign in with Hugging Face, attacked through the running app's own endpoints (enumerated
from its /config, never hand-listed), as tests/test_access.py does for passwords: a visitor who is not signed in
and annotator bob, signed in with Hugging Face, call every event of the page with the ids of the study, its
items, ann's label, the judge's verdicts and the admin's batch job, and get none of their data.

The login is Gradio's own local OAuth mock (gradio.oauth._add_mocked_oauth_routes: /login/huggingface,
/login/callback, /logout and the signed session cookie of Starlette's SessionMiddleware), which Gradio uses
whenever the app is not on a Space. The one thing replaced is `gradio.oauth._get_mocked_oauth_info`, which
would ask huggingface.co who the machine's `hf auth login` token belongs to: it returns a profile the test
chooses instead (tests.test_webapp_hub_sign_in.gradio_login_mock), so nothing here needs the internet or a
Hugging Face token. The real OAuth dance with
huggingface.co (and `hf_oauth_authorized_org`) can only be checked on a Space.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from core.batch import JobSpec
from core.grading import GradeRequest, grade
from core.hub_sign_in import HubRoles, hub_user
from core.studies import StudySpec
from tests.fakes import ScriptedJudge
from tests.test_access import _value_for, call, crashed, replies
from tests.test_webapp_hub_sign_in import gradio_login_mock
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    answer,
    launched,
    make_study_services,
    with_batch,
)
from webapp import Services

STUDY_NAME = "Hub-private-study-3c9e"
SECRET_COMMENT = "hub-ann-private-comment-2b71"
SECRET_VERDICT = "hub-blind-verdict-6f18"
SECRET_BATCH = "hub-admin-batch-row-90de"
SECRETS = (STUDY_NAME, SECRET_COMMENT, SECRET_VERDICT, SECRET_BATCH)  # the blind verdict: bob has not labelled


@dataclass
class HubApp:
    base: str
    services: Services
    identity: dict[str, Any]  # the profile Gradio's mocked login puts in the next session
    targets: tuple[int, ...]
    study_id: int


@pytest.fixture(scope="module")
def hub_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubApp]:
    folder = tmp_path_factory.mktemp("access-hub")
    judge = ScriptedJudge()
    services = with_batch(make_study_services(folder, judge=judge, users={}))
    services.hub = roles = HubRoles.from_env({"GLIDER_ADMINS": "ada"})
    studies, store = services.studies, services.store
    assert studies is not None and services.batch is not None
    ada, ann = hub_user(store, "ada", roles), hub_user(store, "ann", roles)
    study = studies.create_study(ada, StudySpec(name=STUDY_NAME, pass_criteria=FAITHFULNESS_CRITERIA,
                                                rubric=FAITHFULNESS_RUBRIC, tags=("CONTEXT", "MODEL OUTPUT"),
                                                overlap_target=1, blind=True))
    item = studies.add_item(ada, study.id, {"CONTEXT": "Context 0.", "MODEL OUTPUT": "Output 0."})
    judge.answer = answer(f"- {SECRET_VERDICT}", ["Output 0."], 1)
    verdict = grade(judge, GradeRequest(dict(item.fields), FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC), store)
    assert verdict.judgment_id is not None
    studies.attach_judgment(ada, item.id, verdict.judgment_id)
    assert studies.next_item(ann, study.id) is not None
    label = studies.submit(ann, item.id, 0, comment=SECRET_COMMENT)
    data = folder / "admin.jsonl"
    data.write_text(f'{{"model_output": "{SECRET_BATCH}"}}\n', encoding="utf-8")
    job = services.batch.open(data, JobSpec(mapping={"MODEL OUTPUT": "model_output"},
                                            pass_criteria=FAITHFULNESS_CRITERIA, rubric=FAITHFULNESS_RUBRIC),
                              {"backend": "scripted"})
    services.batch.run(job.job.id, judge)
    judge.answer = answer("- A fresh verdict.", ["Output"], 1)  # what any grade made during the attacks says
    identity: dict[str, Any] = {"sub": "1", "name": "", "preferred_username": "", "profile": "", "picture": ""}
    with ExitStack() as stack:
        with gradio_login_mock(identity):
            url = stack.enter_context(launched(services))
        targets = tuple(sorted({study.id, item.id, label.id, verdict.judgment_id, job.job.id}))
        yield HubApp(url.rstrip("/"), services, identity, targets, study.id)
    store.close()


def sign_in(app: HubApp, username: str) -> httpx.Client:
    """A client signed in as `username` through Gradio's login routes (the session cookie they set)."""
    app.identity.update(preferred_username=username, name=username.title(),
                        profile=f"https://huggingface.co/{username}")
    with httpx.Client(timeout=60) as http:
        start = http.get(f"{app.base}/login/huggingface", follow_redirects=False)
        assert start.status_code in (302, 307) and "/login/callback" in start.headers["location"]
        callback = http.get(urljoin(app.base + "/", start.headers["location"]), follow_redirects=False)
        assert callback.status_code in (302, 307), callback.text
    cookies = [c.split(";", 1)[0] for c in callback.headers.get_list("set-cookie") if c.startswith("session=")]
    assert cookies, callback.headers
    # The cookie is `Secure` (Gradio's SessionMiddleware), which httpx keeps from plain http: sent by hand.
    return httpx.Client(timeout=60, headers={"Cookie": cookies[0]})


def every_event(app: HubApp, http: httpx.Client, who: str) -> tuple[str, int, list[str]]:
    """Run the page-load events, then every server-side event with each target id; all text sent back."""
    config = http.get(f"{app.base}/config").json()
    components = {c["id"]: c for c in config["components"]}
    server_side = [d for d in config["dependencies"] if d["targets"] and d.get("backend_fn") is not False]
    loads = [d for d in server_side if any(kind == "load" for _, kind in d["targets"])]
    seen, calls, crashes = [], 0, []
    for ident in app.targets:
        session = f"{who}-{ident}"
        for dependency in loads:
            seen.append(call(http, app.base, dependency, [None] * len(dependency["inputs"]), None, session))
        for dependency in server_side:
            data = [_value_for(components.get(i, {}), ident) for i in dependency["inputs"]]
            event_data = {"index": [0, 0], "value": str(ident), "row_value": [str(ident)] * 8, "selected": True}
            text = call(http, app.base, dependency, data, event_data, session)
            calls += 1
            seen.append(text)
            crashes += [f"event {dependency['id']} ({dependency.get('api_name')}) with {ident}"
                        for reply in replies(text) if crashed(reply)]
    return html.unescape("\n".join(seen)), calls, crashes


def page_load(app: HubApp, http: httpx.Client, session: str) -> str:
    """Everything the page's load events send back to this client (who is signed in, the tabs, the pickers)."""
    config = http.get(f"{app.base}/config").json()
    loads = [d for d in config["dependencies"] if any(kind == "load" for _, kind in d["targets"])
             and d.get("backend_fn") is not False]
    return html.unescape("\n".join(call(http, app.base, d, [None] * len(d["inputs"]), None, session)
                                   for d in loads))


def test_gradio_s_login_signs_in_a_profile_and_makes_its_account(hub_app: HubApp) -> None:
    studies = hub_app.services.studies
    assert studies is not None and studies.get_user("newcomer") is None
    with sign_in(hub_app, "newcomer") as http:
        text = page_load(hub_app, http, "newcomer")
        assert "Signed in as <b>newcomer</b> (annotator)" in text and "Sign out (newcomer)" in text
        logout = http.get(f"{hub_app.base}/logout", follow_redirects=False)
        assert logout.status_code in (302, 307)
    user = studies.get_user("newcomer")
    assert user is not None and user.role == "annotator"


def test_the_admin_s_profile_sees_the_study(hub_app: HubApp) -> None:
    """The attack below would see a leak: the admin's page shows the study, which it must not show others."""
    with sign_in(hub_app, "ada") as http:
        text = page_load(hub_app, http, "ada")
    assert "Signed in as <b>ada</b> (admin)" in text and STUDY_NAME in text


@pytest.mark.parametrize("who", ["visitor", "bob"])
def test_a_visitor_or_an_annotator_gets_no_study_data_through_any_event(hub_app: HubApp, who: str) -> None:
    studies = hub_app.services.studies
    assert studies is not None
    ada, ann = studies.get_user("ada"), studies.get_user("ann")
    assert ada is not None and ann is not None
    before = (studies.list_studies(ada), studies.my_annotations(ann, hub_app.study_id))
    http = httpx.Client(timeout=60) if who == "visitor" else sign_in(hub_app, who)
    with http:
        assert http.get(f"{hub_app.base}/config").status_code == 200  # the public Grade demo is open to all
        text, calls, crashes = every_event(hub_app, http, who)
    print(f"{who} made {calls} calls")
    assert calls > 40
    # An annotator may see the study's name (it is open to every annotator to label), a visitor not even that.
    secrets = SECRETS if who == "visitor" else tuple(secret for secret in SECRETS if secret != STUDY_NAME)
    assert [secret for secret in secrets if secret in text] == []
    assert crashes == [], "\n".join(crashes)
    assert (studies.list_studies(ada), studies.my_annotations(ann, hub_app.study_id)) == before  # nothing changed
    bob = studies.get_user("bob")
    assert (bob is None) == (who == "visitor") and (bob is None or bob.role == "annotator")
