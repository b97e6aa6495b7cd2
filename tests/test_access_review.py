"""Review and adjudication, attacked through the running app's own events (enumerated from its /config, as in
tests.test_access): annotator bob calls every event of the page with the ids of the study and its items and a
valid score, and neither records an adjudication nor sees the reviewer's notes or another annotator's comments.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from core.studies import ADMIN, ANNOTATOR, REVIEWER, AdjudicationRow
from core.studies.review import Reviews
from tests.review_data import ReviewStudy, make_review_study
from tests.test_access import _value_for, call, crashed, replies
from tests.webapp_helpers import PASSWORD, launched, make_study_services
from webapp import Services

SECRET_NOTE = "reviewer-private-note-3c9e"
USERS = {"ada": ADMIN, "rita": REVIEWER, "ann": ANNOTATOR, "bob": ANNOTATOR}


@dataclass
class Running:
    base: str
    services: Services
    made: ReviewStudy


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    services = make_study_services(tmp_path_factory.mktemp("access-review"), users=USERS)
    studies = services.studies
    assert studies is not None
    people = {name: studies.get_user(name) for name in USERS}
    made = make_review_study(studies, services.store, people["ada"], people["ann"], people["bob"])  # type: ignore[arg-type]
    Reviews(services.store).adjudicate(people["rita"], made.item_ids[0], 1, SECRET_NOTE)  # type: ignore[arg-type]
    with launched(services) as url:
        yield Running(url.rstrip("/"), services, made)
    services.store.close()


def adjudications(services: Services) -> int:
    with services.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(AdjudicationRow)) or 0)


def test_an_annotator_can_neither_review_nor_adjudicate_through_any_event(running: Running) -> None:
    base, made = running.base, running.made
    with httpx.Client(timeout=60) as http:
        assert http.post(f"{base}/login", data={"username": "ada", "password": PASSWORD}).is_success
        config = http.get(f"{base}/config").json()
    components = {c["id"]: c for c in config["components"]}
    server_side = [d for d in config["dependencies"] if d["targets"] and d.get("backend_fn") is not False]
    loads = [d for d in server_side if any(kind == "load" for _, kind in d["targets"])]
    # The adjudication form's events are among them (found by the elem_ids of their inputs, not by a list).
    ids = {c["id"]: (c.get("props") or {}).get("elem_id") for c in config["components"]}
    assert any("gl-review-score" in [ids.get(i) for i in d["inputs"]] for d in server_side)
    before = adjudications(running.services)
    leaks, crashes, calls = [], [], 0
    with httpx.Client(timeout=60) as bob:
        assert bob.post(f"{base}/login", data={"username": "bob", "password": PASSWORD}).is_success
        for ident in (made.study_id, made.item_ids[0], made.item_ids[1]):
            session = f"bob-review-{ident}"
            for dependency in loads:
                call(bob, base, dependency, [None] * len(dependency["inputs"]), None, session)
            for dependency in server_side:
                data = [_value_for(components.get(i, {}), ident) for i in dependency["inputs"]]
                event_data = {"index": [0, 0], "value": str(ident), "row_value": [str(ident)] * 9, "selected": True}
                reply = call(bob, base, dependency, data, event_data, session)
                calls += 1
                leaks += [f"event {dependency['id']} with {ident}: {secret}"
                          for secret in (SECRET_NOTE, f"ann on {made.item_ids[0]}", f"ann on {made.item_ids[1]}")
                          if secret in reply]
                crashes += [f"event {dependency['id']} with {ident}" for r in replies(reply) if crashed(r)]
    print(f"bob made {calls} calls")
    assert leaks == [] and crashes == []
    assert adjudications(running.services) == before == 1
