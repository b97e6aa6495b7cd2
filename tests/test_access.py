"""Access control, attacked through the running app's own endpoints (enumerated from its /config and API
info, never hand-listed): nothing answers a visitor who is not signed in; annotator bob, signed in, calls
every event of the page with the ids of ann's label, of a blind item and of the admin's batch jobs and gets
none of their data and changes none of it; blind means blind: neither bob (no grade right) nor cat (granted
the grade right) gets the verdict of a blind-study item they have not labelled, from any event or /grade,
even when they paste the item's fields; passwords never reach the database or the logs in clear text;
uploads are bounded in size.
"""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError, AuthenticationError

from core.batch import JobSpec
from core.grading import GradeRequest, grade
from core.prompt import DEFAULT_TAGS
from core.studies import Item, StudySpec
from tests.fakes import ScriptedJudge
from tests.test_load import dependency_index
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    PASSWORD,
    answer,
    build,
    by_id,
    free_port,
    grade_in_form,
    handler,
    launched,
    make_study_services,
    signed_in,
    with_batch,
)
from webapp import Services

ROOT = Path(__file__).resolve().parent.parent
SECRET_COMMENT = "ann-private-comment-7f3a"
# The model's verdict on each of the blind study's three items (item 0 is labelled by ann only).
BLIND_VERDICTS = ("blind-model-verdict-91c2", "blind-unlabelled-verdict-1-4b7e", "blind-unlabelled-verdict-2-8d03")
SECRET_VERDICT = BLIND_VERDICTS[0]
SECRET_BATCH = "admin-batch-row-5d80"
SECRET_BLIND_BATCH = "admin-batch-verdict-on-blind-item-77a1"  # the admin batch-graded item 1's texts
SECRETS = (SECRET_COMMENT, SECRET_VERDICT, SECRET_BATCH, SECRET_BLIND_BATCH)


@dataclass
class Secured:
    base: str
    services: Services
    study_id: int
    item_id: int
    annotation_id: int
    judgment_id: int
    job_id: int
    items: list[Item]
    blind_job_id: int
    judge: ScriptedJudge
    judgments_of: dict[int, set[int]]  # blind item id -> the stored judgments graded on its texts


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    folder = tmp_path_factory.mktemp("access")
    judge = ScriptedJudge()
    services = with_batch(make_study_services(folder, judge=judge))
    studies = services.studies
    assert studies is not None
    ada, ann = studies.get_user("ada"), studies.get_user("ann")
    assert ada is not None and ann is not None
    studies.create_user("cat", PASSWORD)
    assert studies.set_grading(ada, "cat", True).can_grade  # an annotator allowed to grade
    # overlap 1: once ann labelled the first item nobody else is offered it, so its verdict stays hers.
    study = studies.create_study(ada, StudySpec(name="Private", pass_criteria=FAITHFULNESS_CRITERIA,
                                                rubric=FAITHFULNESS_RUBRIC, tags=("CONTEXT", "MODEL OUTPUT"),
                                                overlap_target=1, blind=True))
    items = [studies.add_item(ada, study.id, {"CONTEXT": f"Context {n}.", "MODEL OUTPUT": f"Output {n}."})
             for n in range(3)]
    judge.answer = answer(f"- {SECRET_VERDICT}", ["Output 0."], 1)
    secret = grade(judge, GradeRequest(dict(items[0].fields), FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC),
                   services.store)
    assert secret.judgment_id is not None
    studies.attach_judgment(ada, items[0].id, secret.judgment_id)
    for item, verdict in zip(items[1:], BLIND_VERDICTS[1:], strict=True):
        judge.answer = answer(f"- {verdict}", ["Output"], 1)
        result = grade(judge, GradeRequest(dict(item.fields), FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC),
                       services.store)
        assert result.judgment_id is not None
        studies.attach_judgment(ada, item.id, result.judgment_id)
    claimed = studies.next_item(ann, study.id)
    assert claimed is not None and claimed.id == items[0].id
    label = studies.submit(ann, items[0].id, 0, comment=SECRET_COMMENT)
    data = folder / "admin.jsonl"
    data.write_text(json.dumps({"model_output": SECRET_BATCH}) + "\n", encoding="utf-8")
    assert services.batch is not None
    job = services.batch.open(data, JobSpec(mapping={"MODEL OUTPUT": "model_output"},
                                            pass_criteria=FAITHFULNESS_CRITERIA, rubric=FAITHFULNESS_RUBRIC),
                              services.judge_identity or {"backend": "scripted"})
    services.batch.run(job.job.id, judge)
    blind_data = folder / "blind-items.jsonl"
    blind_data.write_text(json.dumps({"context": "Context 1.", "model_output": "Output 1."}) + "\n", encoding="utf-8")
    judge.answer = answer(f"- {SECRET_BLIND_BATCH}", ["Output"], 1)
    blind_job = services.batch.open(blind_data, JobSpec(mapping={"CONTEXT": "context", "MODEL OUTPUT": "model_output"},
                                                        pass_criteria=FAITHFULNESS_CRITERIA,
                                                        rubric=FAITHFULNESS_RUBRIC),
                                    services.judge_identity or {"backend": "scripted"})
    services.batch.run(blind_job.job.id, judge)
    judge.answer = answer("- A fresh verdict.", ["Output"], 1)  # what any grade made during the attacks says
    stored = [services.store.get_judgment(s.id) for s in services.store.list_judgments()]
    judgments_of = {item.id: {j.id for j in stored if j is not None
                              and set(item.fields.values()) <= set(j.fields.values())} for item in items}
    assert all(judgments_of.values()) and len(judgments_of[items[1].id]) == 2  # the study's and the batch's
    with launched(services) as url:
        yield Secured(url.rstrip("/"), services, study.id, items[0].id, label.id, secret.judgment_id, job.job.id,
                      items, blind_job.job.id, judge, judgments_of)
    services.store.close()


def named_endpoints(base: str) -> list[str]:
    with httpx.Client(timeout=60) as http:
        assert http.post(f"{base}/login", data={"username": "ada", "password": PASSWORD}).is_success
        info = http.get(f"{base}/gradio_api/info").json()
    return sorted(info["named_endpoints"])


def test_nothing_answers_a_visitor_who_is_not_signed_in(secured: Secured) -> None:
    base = secured.base
    dependencies = {d["id"]: d for found in dependency_index(base, "ada").values()
                    for d in (found if isinstance(found, list) else [found])}
    endpoints = named_endpoints(base)
    assert endpoints == ["/compare", "/grade", "/status"] and len(dependencies) > 40
    refused: list[str] = []
    with httpx.Client(timeout=60) as anonymous:
        for path in ("/config", "/gradio_api/info", "/gradio_api/queue/status"):
            response = anonymous.get(base + path)
            assert response.status_code in (401, 403), (path, response.status_code)
            refused.append(path)
        for name in endpoints:
            response = anonymous.post(f"{base}/gradio_api/call{name}", json={"data": []})
            assert response.status_code in (401, 403), (name, response.status_code)
            refused.append(name)
        for dependency in dependencies.values():
            response = anonymous.post(f"{base}/gradio_api/queue/join", json={
                "data": [None] * len(dependency["inputs"]), "fn_index": dependency["id"],
                "session_hash": "anonymous", "trigger_id": dependency["targets"][0][0]})
            assert response.status_code in (401, 403), (dependency["id"], response.status_code)
            refused.append(f"event {dependency['id']}")
        upload = anonymous.post(f"{base}/gradio_api/upload", files={"files": ("x.csv", b"a,b\n1,2\n")})
        assert upload.status_code in (401, 403), upload.status_code
        stream = anonymous.get(f"{base}/gradio_api/queue/data", params={"session_hash": "anonymous"})
        assert stream.status_code in (401, 403), stream.status_code
    print(f"refused {len(refused)} endpoints and events to a visitor who is not signed in")


def _value_for(component: dict[str, Any], ident: int) -> Any:
    """What a hostile client sends for one input: the target id wherever a component could carry one."""
    kind = component.get("type")
    if kind in ("dropdown", "number", "slider"):
        return ident
    if kind in ("textbox", "textarea"):
        return str(ident)
    if kind == "radio":
        return str(ident)
    if kind == "checkbox":
        return True
    return None


def call(http: httpx.Client, base: str, dependency: dict[str, Any], data: list[Any],
         event_data: dict[str, Any] | None, session: str) -> str:
    """Run one event as a page would; the raw text of everything the server sent back."""
    if dependency.get("queue") is False:  # the page posts these directly, outside the queue
        direct = http.post(f"{base}/gradio_api/run/predict", json={
            "data": data, "fn_index": dependency["id"], "session_hash": session, "event_data": event_data,
            "trigger_id": dependency["targets"][0][0]})
        return direct.text
    joined = http.post(f"{base}/gradio_api/queue/join", json={
        "data": data, "fn_index": dependency["id"], "session_hash": session, "event_data": event_data,
        "trigger_id": dependency["targets"][0][0]})
    if joined.status_code != 200:
        return joined.text
    seen = []
    with http.stream("GET", f"{base}/gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            seen.append(line)
            if line.startswith("data:") and json.loads(line[5:]).get("msg") in ("process_completed",
                                                                                  "close_stream"):
                break
    return "\n".join(seen)


def replies(text: str) -> list[dict[str, Any]]:
    """The JSON messages of a reply: one body (direct call) or the queue's `data:` lines."""
    if text.lstrip().startswith("{"):
        try:
            return [json.loads(text)]
        except ValueError:
            return []
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def crashed(reply: dict[str, Any]) -> bool:
    """A failure that carries no message: an exception in a handler that nobody turned into words."""
    if reply.get("msg") == "process_completed":
        return not reply.get("success") and not (reply.get("output") or {}).get("error")
    return "error" in reply and not reply.get("error")


def test_an_annotator_gets_none_of_another_s_or_the_admin_s_data_through_any_event(secured: Secured) -> None:
    base = secured.base
    with httpx.Client(timeout=60) as http:
        assert http.post(f"{base}/login", data={"username": "ada", "password": PASSWORD}).is_success
        config = http.get(f"{base}/config").json()
    components = {c["id"]: c for c in config["components"]}
    targets = (secured.study_id, secured.item_id, secured.annotation_id, secured.judgment_id, secured.job_id,
               secured.blind_job_id)
    studies = secured.services.studies
    assert studies is not None
    ann = studies.get_user("ann")
    assert ann is not None
    before = [(a.id, a.score, a.comment) for a in studies.my_annotations(ann, secured.study_id)]
    ada = studies.get_user("ada")
    assert ada is not None
    # The Manage tab's actions (edit, archive, delete, remove items) change nothing for bob either.
    studies_before = [(s, studies.list_items(ada, s.id)) for s in studies.list_studies(ada)]
    people_before = (studies.list_users(ada), studies.assignments.get(ada, secured.study_id))  # the People tab's
    calls = 0
    leaks: list[str] = []
    crashes: list[str] = []
    with httpx.Client(timeout=60) as bob:
        assert bob.post(f"{base}/login", data={"username": "bob", "password": PASSWORD}).is_success
        server_side = [d for d in config["dependencies"] if d["targets"] and d.get("backend_fn") is not False]
        loads = [d for d in server_side if any(kind == "load" for _, kind in d["targets"])]
        for ident in targets:
            session = f"bob-{ident}"
            for dependency in loads:  # as the page does first: this session's pickers get bob's choices
                call(bob, base, dependency, [None] * len(dependency["inputs"]), None, session)
            for dependency in server_side:
                data = [_value_for(components.get(i, {}), ident) for i in dependency["inputs"]]
                event_data = {"index": [0, 0], "value": str(ident), "row_value": [str(ident)] * 8,
                              "selected": True}
                text = call(bob, base, dependency, data, event_data, session)
                calls += 1
                leaks += [f"event {dependency['id']} ({dependency.get('api_name')}) with {ident}: {secret}"
                          for secret in SECRETS if secret in text]
                crashes += [f"event {dependency['id']} ({dependency.get('api_name')}) with {ident}"
                            for reply in replies(text) if crashed(reply)]
    print(f"bob made {calls} calls over {len(config['dependencies'])} events")
    assert leaks == []
    # Refused with a message (Gradio's validation or ours), never an unhandled exception.
    assert crashes == [], "\n".join(crashes)
    after = [(a.id, a.score, a.comment) for a in studies.my_annotations(ann, secured.study_id)]
    assert after == before and len(studies.history(ann, secured.annotation_id)) == 0
    assert [(s, studies.list_items(ada, s.id)) for s in studies.list_studies(ada)] == studies_before
    # No role, right, password, account or assignment changed (bob is refused every People action).
    assert (studies.list_users(ada), studies.assignments.get(ada, secured.study_id)) == people_before
    assert all(studies.authenticate(name, PASSWORD) is not None for name in ("ada", "ann", "bob", "cat"))
    assert secured.services.batch is not None and secured.services.batch.progress(secured.job_id).done == 1


def test_every_manage_action_refuses_an_annotator_through_its_endpoint(secured: Secured) -> None:
    """bob sends each Manage tab event the inputs an admin would (a valid form, the study's own name as the
    delete confirmation, an item row): each is refused, by Gradio (bob's Manage picker offers him no study, so
    a study id is not a valid value) or by core, and the study stays as it was."""
    base, studies = secured.base, secured.services.studies
    assert studies is not None
    ada = studies.get_user("ada")
    assert ada is not None
    before = [(s, studies.list_items(ada, s.id)) for s in studies.list_studies(ada)]
    with httpx.Client(timeout=60) as http:
        assert http.post(f"{base}/login", data={"username": "ada", "password": PASSWORD}).is_success
        config = http.get(f"{base}/config").json()
    elem_ids = {c["id"]: (c.get("props") or {}).get("elem_id") for c in config["components"]}
    sent = {"gl-manage-study": secured.study_id, "gl-manage-name": "Hijacked", "gl-manage-description": "",
            "gl-manage-guidelines": "hijacked", "gl-manage-criteria": FAITHFULNESS_CRITERIA,
            "gl-manage-rubric": FAITHFULNESS_RUBRIC, "gl-manage-blind": True, "gl-manage-overlap": 1,
            "gl-manage-copy-name": "Copied", "gl-manage-confirm": "Private", "gl-manage-search": "",
            "gl-manage-state": "all"}
    manage = [d for d in config["dependencies"] if str(d.get("api_name") or "").startswith("on_manage_")
              and d.get("api_name") != "on_manage_session"]
    assert len(manage) >= 12
    refused: dict[str, str] = {}
    with httpx.Client(timeout=60) as bob:
        assert bob.post(f"{base}/login", data={"username": "bob", "password": PASSWORD}).is_success
        for dependency in manage:
            data = [sent.get(elem_ids.get(i) or "") for i in dependency["inputs"]]
            row = [str(secured.item_id)] * 7
            text = html.unescape(call(bob, base, dependency, data, {"index": [0, 0], "value": row[0],
                                                                    "row_value": row}, "bob-manage"))
            refused[dependency["api_name"]] = ("core" if "Only an admin" in text else
                                               "gradio" if "is not in the list of choices" in text else text[-300:])
    assert set(refused.values()) <= {"core", "gradio"}, refused
    assert refused["on_manage_item_select"] == "core"  # the one event without the picker among its inputs
    assert [(s, studies.list_items(ada, s.id)) for s in studies.list_studies(ada)] == before


def _payload(component: dict[str, Any], ident: int, item: Item) -> Any:
    """What an annotator who copied a blind item sends: its texts in the Grade form, ids everywhere else."""
    elem_id = str((component.get("props") or {}).get("elem_id") or "")
    slot = elem_id.rsplit("-", 1)[-1]
    if elem_id.startswith("gl-tag-") and slot.isdigit():
        return DEFAULT_TAGS[int(slot)]
    if elem_id.startswith("gl-field-") and slot.isdigit():
        return item.fields.get(DEFAULT_TAGS[int(slot)], str(ident))
    if elem_id == "gl-pass-criteria":
        return FAITHFULNESS_CRITERIA
    if elem_id == "gl-rubric":
        return FAITHFULNESS_RUBRIC
    if component.get("type") == "slider":  # e.g. max new tokens: a value Gradio accepts, so the handler runs
        return (component.get("props") or {}).get("value")
    return _value_for(component, ident)


def _listed_judgments(text: str) -> set[int]:
    """The judgment ids in any History table a reply carries (each row shows that judgment's score)."""
    found: set[int] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if list(value.get("headers") or [])[:3] == ["ID", "Time", "Score"]:
                found.update(int(row[0]) for row in value.get("data") or [] if row and str(row[0]).isdigit())
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(replies(text))
    return found


def _verdicts_seen(secured: Secured, text: str, prompts: list[str]) -> set[int]:
    """The blind items whose verdict a reply carried, or that the judge was asked about meanwhile."""
    seen = set()
    listed = _listed_judgments(text)
    for item, verdict in zip(secured.items, BLIND_VERDICTS, strict=True):
        if verdict in text or (item.id == secured.items[1].id and SECRET_BLIND_BATCH in text):
            seen.add(item.id)
        if listed & secured.judgments_of[item.id]:
            seen.add(item.id)
        if any(all(value in prompt for value in item.fields.values()) for prompt in prompts):
            seen.add(item.id)
    return seen


def test_a_granted_annotator_cannot_batch_grade_a_blind_item(secured: Secured, tmp_path: Path) -> None:
    from tests.test_webapp_batch import MAPPING, TAGS, RecordingProgress

    services, judge = secured.services, secured.judge
    demo = build(services)
    data = tmp_path / "copied.jsonl"
    item = secured.items[2]
    data.write_text(json.dumps({"context": item.fields["CONTEXT"], "model_output": item.fields["MODEL OUTPUT"]})
                    + "\n", encoding="utf-8")
    studies = services.studies
    assert studies is not None
    cat = studies.get_user("cat")
    assert cat is not None
    # This test runs before cat's attack on every event (file order), so she has labelled nothing yet.
    assert studies.my_annotations(cat, secured.study_id) == []
    before = len(judge.prompts)
    run = handler(demo, "on_batch_start")(str(data), FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, TAGS, 8, "",
                                          signed_in("cat"), RecordingProgress(), *MAPPING)
    replies = [str(update) for updates in run for update in updates.values()]
    assert any("has not labelled yet" in reply and "data rows 1" in reply for reply in replies), replies
    assert judge.prompts[before:] == []
    for name in ("on_batch_open", "on_batch_export_csv"):
        refused = handler(demo, name)(secured.blind_job_id, signed_in("cat"))
        assert any("has not labelled yet" in str(update) for update in refused.values())
        assert SECRET_BLIND_BATCH not in str(refused)
    opened = handler(demo, "on_batch_open")(secured.job_id, signed_in("cat"))  # no blind item in it: hers to see
    assert SECRET_BATCH in str(opened)


@pytest.mark.parametrize(("username", "refusal"), [
    ("bob", "Grading is for admins"),  # no grade right
    ("cat", "has not labelled yet"),  # granted the grade right, still blind
])
def test_no_door_shows_an_annotator_the_verdict_of_a_blind_item_they_have_not_labelled(
        secured: Secured, username: str, refusal: str) -> None:
    base, judge, studies = secured.base, secured.judge, secured.services.studies
    assert studies is not None
    user = studies.get_user(username)
    assert user is not None

    def labelled() -> set[int]:
        return {a.item_id for a in studies.my_annotations(user, secured.study_id)}

    unlabelled = [item for item in secured.items if item.id not in labelled()]
    assert unlabelled, "every blind item was labelled already: nothing left to test"
    # /grade, as a script would call it (README): every unlabelled item's fields are refused, with the reason.
    client = Client(base + "/", auth=(username, PASSWORD), verbose=False)
    try:
        before = len(judge.prompts)
        for item in unlabelled:
            with pytest.raises(AppError, match=refusal):
                client.predict(item.fields.get("CONTEXT", ""), "", item.fields.get("MODEL OUTPUT", ""), "",
                               FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, api_name="/grade")
        assert _verdicts_seen(secured, "", judge.prompts[before:]) == set()
        other = ("Unrelated context.", "", "An unrelated output.", "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC)
        if username == "cat":  # the right is real: anything else is graded for her
            assert client.predict(*other, api_name="/grade")["score"] == 1
        else:
            with pytest.raises(AppError, match=refusal):
                client.predict(*other, api_name="/grade")
    finally:
        client.close()

    # Every event of the page, with the first unlabelled item's texts in the Grade form and ids elsewhere.
    with httpx.Client(timeout=60) as http:
        assert http.post(f"{base}/login", data={"username": username, "password": PASSWORD}).is_success
        config = http.get(f"{base}/config").json()
        components = {c["id"]: c for c in config["components"]}
        server_side = [d for d in config["dependencies"] if d["targets"] and d.get("backend_fn") is not False]
        loads = [d for d in server_side if any(kind == "load" for _, kind in d["targets"])]
        idents = (unlabelled[0].id, *sorted(set().union(*secured.judgments_of.values())), secured.blind_job_id)
        leaks: list[str] = []
        calls = 0
        for ident in idents:
            session = f"{username}-blind-{ident}"
            for dependency in loads:
                call(http, base, dependency, [None] * len(dependency["inputs"]), None, session)
            for dependency in server_side:
                data = [_payload(components.get(i, {}), ident, unlabelled[0]) for i in dependency["inputs"]]
                event_data = {"index": [0, 0], "value": str(ident), "row_value": [str(ident)] * 8, "selected": True}
                before = len(judge.prompts)
                text = call(http, base, dependency, data, event_data, session)
                calls += 1
                # A verdict shown with the very submit that labels the item is the blind flow's reveal.
                leaks += [f"event {dependency['id']} with {ident}: item {item_id}"
                          for item_id in _verdicts_seen(secured, text, judge.prompts[before:]) - labelled()]
    print(f"{username} made {calls} calls with a blind item's fields")
    assert leaks == []


def test_the_grade_and_history_tabs_say_why_they_refuse(secured: Secured) -> None:
    services = secured.services
    demo = build(services)
    studies = services.studies
    cat = studies.get_user("cat") if studies is not None else None
    assert studies is not None and cat is not None
    mine = {a.item_id for a in studies.my_annotations(cat, secured.study_id)}  # earlier tests may have labelled
    unlabelled = [item for item in secured.items if item.id not in mine]
    assert unlabelled and secured.items[0] in unlabelled  # ann holds item 0's only place
    item = unlabelled[-1]
    form = [*DEFAULT_TAGS, *(item.fields.get(tag, "") for tag in DEFAULT_TAGS), FAITHFULNESS_CRITERIA,
            FAITHFULNESS_RUBRIC, 256]
    other = [*DEFAULT_TAGS, "Unrelated context.", "", "An unrelated output.", "", FAITHFULNESS_CRITERIA,
             FAITHFULNESS_RUBRIC, 256]

    def grade_message(request: Any, values: list[Any]) -> str:
        done = by_id(demo, grade_in_form(demo, *values, request=request)[-1])
        return html.unescape(str(done.get("gl-message")) + str(done.get("gl-result-reasoning")))

    assert "Grading is for admins and for annotators an admin allowed to grade" in grade_message(
        signed_in("bob"), form)
    assert "Grading is for admins" in grade_message(signed_in("bob"), other)
    refused = grade_message(signed_in("cat"), form)
    assert f"item #{item.id} of a blind study that 'cat' has not labelled yet" in refused
    assert "A fresh verdict" not in refused
    assert "A fresh verdict" in grade_message(signed_in("cat"), other)  # the right is real
    assert "Sign in first" in grade_message(None, other)  # sign-in is on: no request, no grade
    # History: cat's list leaves out every judgment of the blind items she has not labelled; opening one says why.
    hidden = set().union(*(secured.judgments_of[i.id] for i in unlabelled))
    listed = by_id(demo, handler(demo, "on_refresh")(request=signed_in("cat")))["gl-history"]
    ids = {int(row_id) for row_id in listed["ID"]}
    assert ids and not ids & hidden and secured.judgment_id not in ids
    opened = html.unescape(str(by_id(demo, handler(demo, "on_open")(secured.judgment_id, request=signed_in("cat")))))
    assert f"Judgment #{secured.judgment_id} is the verdict on an item of a blind study" in opened
    assert SECRET_VERDICT not in opened
    everything = by_id(demo, handler(demo, "on_refresh")(request=signed_in("ada")))["gl-history"]
    assert hidden <= {int(row_id) for row_id in everything["ID"]}  # the admin sees them all


def _readme_api_example() -> str:
    """The first Python block of the README's "Using it from scripts" section, as a user would copy it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Using it from scripts", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_api_example_works_with_sign_in_on(secured: Secured, capsys: pytest.CaptureFixture[str]) -> None:
    code = _readme_api_example()
    # The documented call shape, as a user adapts it: their URL and their own user and password.
    assert 'Client("http://127.0.0.1:7860/", auth=("ada", "her password"))' in code
    assert 'api_name="/grade"' in code
    for username, works in (("ada", True), ("cat", True), ("bob", False)):
        mine = code.replace("http://127.0.0.1:7860/", secured.base + "/").replace(
            '("ada", "her password")', repr((username, PASSWORD)))
        if works:
            exec(compile(mine, "README.md", "exec"), {})  # the README's own example
            printed = capsys.readouterr().out.strip().splitlines()[-1].split()  # the example's own print
            assert printed[:2] == ["1", "ok"], printed  # score and status
        else:  # an annotator without the grade right: refused, with the reason
            with pytest.raises(AppError, match="Grading is for admins"):
                exec(compile(mine, "README.md", "exec"), {})
    without = code.replace("http://127.0.0.1:7860/", secured.base + "/").replace(
        ', auth=("ada", "her password")', "")
    with pytest.raises(AuthenticationError, match="credentials were not provided"):  # why the README shows auth
        exec(compile(without, "README.md", "exec"), {})


def test_uploads_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIDER_MAX_UPLOAD_MB", "1")
    services = make_study_services(tmp_path)
    with launched(services) as url, httpx.Client(timeout=60) as http:
        base = url.rstrip("/")
        assert http.post(f"{base}/login", data={"username": "ada", "password": PASSWORD}).is_success
        small = http.post(f"{base}/gradio_api/upload", files={"files": ("ok.csv", b"a,b\n" * 100_000)})
        assert small.status_code == 200, small.text
        large = http.post(f"{base}/gradio_api/upload", files={"files": ("big.csv", b"a,b\n" * 400_000)})
        assert large.status_code in (400, 413), large.status_code
    services.store.close()


def test_passwords_never_reach_the_database_or_the_logs_in_clear(tmp_path: Path) -> None:
    password, wrong = "correct-horse-battery-9k2", "wrong-guess-for-ann-3j7"
    db = tmp_path / "app.db"
    env = {**os.environ, "GLIDER_DB": f"sqlite:///{db}", "PYTHONUNBUFFERED": "1"}
    created = subprocess.run([sys.executable, "-m", "core", "create-admin", "ann", "--password-stdin", "--db",
                              f"sqlite:///{db}"], input=password + "\n", capture_output=True, text=True, env=env,
                             cwd=ROOT, timeout=120)
    assert created.returncode == 0, created.stderr
    port = free_port()
    log = tmp_path / "app.log"
    with log.open("w") as sink:
        server = subprocess.Popen([sys.executable, "app.py", "--backend", "openai", "--base-url",
                                   "http://127.0.0.1:9/v1", "--model", "glider", "--port", str(port)],
                                  stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/config", timeout=5).status_code in (200, 401):
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline and server.poll() is None, log.read_text()
                time.sleep(0.5)
            with httpx.Client(timeout=60) as http:
                assert http.post(f"{base}/login", data={"username": "ann", "password": wrong}).status_code == 400
                assert http.post(f"{base}/login", data={"username": "ann", "password": password}).is_success
                assert http.get(f"{base}/config").status_code == 200
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("app.db*"))
    logged = log.read_text(encoding="utf-8", errors="replace") + created.stdout + created.stderr
    for secret in (password, wrong):
        assert secret.encode() not in stored and secret not in logged
    assert b"scrypt" in stored  # the hash is there, with its parameters
    assert "ann" in created.stdout + created.stderr
