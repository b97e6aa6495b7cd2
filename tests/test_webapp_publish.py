"""The Agreement tab's "Publish to the Hub" panel, called as Gradio calls it: an admin publishes with their
Hugging Face sign-in's token (report.html included, charts and all); an annotator, a reviewer or a visitor who
is not signed in is refused and nothing reaches the Hub. The Hub is tests.fake_hub, a stand-in on 127.0.0.1."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import pytest

from core.studies import ADMIN, ANNOTATOR, REVIEWER
from tests.fake_hub import FakeHub
from tests.review_data import make_review_study
from tests.webapp_helpers import build, by_id, handler, make_study_services, signed_in, value
from webapp import Services

USERS = {"ada": ADMIN, "rita": REVIEWER, "ann": ANNOTATOR, "bob": ANNOTATOR}


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[gr.Blocks, Services, int, FakeHub]]:
    import huggingface_hub.constants

    services = make_study_services(tmp_path, users=USERS)
    studies = services.studies
    assert studies is not None
    people = {name: studies.get_user(name) for name in USERS}
    made = make_review_study(studies, services.store, people["ada"], people["ann"], people["bob"])  # type: ignore[arg-type]
    hub = FakeHub().start()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # only 127.0.0.1 is reached
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)  # what HF_ENDPOINT sets at import
    yield build(services), services, made.study_id, hub
    hub.stop()
    services.store.close()


def message(demo: gr.Blocks, updates: dict[Any, Any]) -> str:
    return str(value(by_id(demo, updates)["gl-publish-message"]))


def test_an_admin_publishes_with_the_oauth_token(app: tuple[gr.Blocks, Services, int, FakeHub]) -> None:
    demo, _, study_id, hub = app
    token = gr.OAuthToken(token="hf_oauth_of_ada", scope="openid profile write-repos", expires_at=0)
    shown = message(demo, handler(demo, "on_publish")(study_id, "ada/helpfulness", True, False,
                                                      signed_in("ada"), token))
    assert f"Published to {hub.url}/datasets/ada/helpfulness" in shown and "gl-message-info" in shown
    repo = hub.repos["ada/helpfulness"]
    assert repo.visibility == "private" and len(repo.commits) == 1
    assert {auth for _, _, auth in hub.requests} == {"Bearer hf_oauth_of_ada"}
    html = repo.files["report.html"].decode()
    assert "Agreement report: Helpfulness" in html and "plotly" in html.lower()
    labels = pd.read_parquet(io.BytesIO(repo.files["labels.parquet"]))
    assert set(labels["annotator"]) == {"annotator-1", "annotator-2"}  # pseudonymised


@pytest.mark.parametrize("who", ["ann", "rita", None])
def test_no_one_but_an_admin_may_publish(app: tuple[gr.Blocks, Services, int, FakeHub], who: str | None) -> None:
    demo, _, study_id, hub = app
    shown = message(demo, handler(demo, "on_publish")(study_id, "x/y", False, True, signed_in(who), None))
    assert "gl-message-error" in shown and "Published" not in shown
    assert hub.requests == [] and hub.repos == {}


def test_a_bad_repo_id_is_a_clear_message(app: tuple[gr.Blocks, Services, int, FakeHub]) -> None:
    demo, _, study_id, hub = app
    shown = message(demo, handler(demo, "on_publish")(study_id, "<b>no slash", False, False, signed_in("ada"), None))
    assert "is not a dataset repo id" in shown and "<b>no" not in shown
    assert hub.requests == []
