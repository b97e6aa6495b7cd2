"""The launched app's HTTP API, driven with gradio_client exactly as a user's script would."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client

from core.judge.base import Generation
from core.store import Store
from tests.fakes import ScriptedJudge
from tests.net import SLOW_MACHINE
from tests.webapp_helpers import FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, answer, launched, make_services

# Gradio's queue analytics use a pandas option that pandas 3 deprecates (raised in the server thread).
pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*")

CONTEXT = "Der Fluss 🌊 heißt Rhein. The Rhine flows through Basel, Strasbourg and Cologne."
OUTPUT = "The Rhine flows through Basel and Cologne; it also passes Vienna."
HIGHLIGHTS = ["flows through Basel", "Cologne", "passes Vienna", "heißt Rhein"]


class CountingJudge(ScriptedJudge):
    """A scripted judge that is slow and records how many generations ran at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.active = 0
        self.most_at_once = 0
        self.guard = threading.Lock()

    def generate(self, prompt: str, **kwargs: Any) -> Generation:
        with self.guard:
            self.active += 1
            self.most_at_once = max(self.most_at_once, self.active)
        try:
            time.sleep(0.15)
            return super().generate(prompt, **kwargs)
        finally:
            with self.guard:
                self.active -= 1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Client, Store, CountingJudge]]:
    judge = CountingJudge(answer("- It adds \"passes Vienna\", which the context never says.", HIGHLIGHTS, 0))
    services = make_services(tmp_path_factory.mktemp("server"), judge=judge)
    with launched(services) as url:
        client = Client(url, verbose=False, httpx_kwargs=SLOW_MACHINE)
        yield url, client, services.store, judge
        client.close()
    services.store.close()


def test_grade_returns_the_json_and_stores_the_judgment(server: tuple[str, Client, Store, CountingJudge]) -> None:
    _, client, store, _ = server
    result = client.predict(CONTEXT, "Where does the Rhine flow?", OUTPUT, "", FAITHFULNESS_CRITERIA,
                            FAITHFULNESS_RUBRIC, api_name="/grade")
    assert isinstance(result, dict)
    assert result["score"] == 0 and result["status"] == "ok" and result["problems"] == []
    assert result["highlights"] == HIGHLIGHTS and "passes Vienna" in result["reasoning"]
    assert result["distribution"] == {"0": 0.1, "1": 0.9} and result["scale"] == [0, 1]
    fields = {"CONTEXT": CONTEXT, "MODEL OUTPUT": OUTPUT}
    assert result["spans"], "the highlights occur in the text"
    for span in result["spans"]:
        assert set(span) == {"field", "start", "end", "phrase"}
        located = fields[span["field"]][span["start"] : span["end"]]
        assert located.casefold() == span["phrase"].casefold()
    assert {s["phrase"] for s in result["spans"] if s["field"] == "CONTEXT"} >= {"heißt Rhein", "Cologne"}
    assert result["ungrounded"] == []
    stored = store.get_judgment(result["judgment_id"])
    assert stored is not None and stored.score == 0 and stored.fields["MODEL OUTPUT"] == OUTPUT


def test_named_arguments_and_an_explicit_token_limit(server: tuple[str, Client, Store, CountingJudge]) -> None:
    _, client, _, _ = server
    result = client.predict(context="", user_input="", model_output=OUTPUT, gold_answer="",
                            pass_criteria=FAITHFULNESS_CRITERIA, rubric=FAITHFULNESS_RUBRIC, max_new_tokens=256,
                            api_name="/grade")
    assert result["backend"]["max_new_tokens"] == 256
    assert {s["field"] for s in result["spans"]} == {"MODEL OUTPUT"}


@pytest.mark.parametrize(
    ("rubric", "criteria", "expected"),
    [("", FAITHFULNESS_CRITERIA, "rubric names no scores"), (FAITHFULNESS_RUBRIC, "", "pass criteria are empty")],
)
def test_bad_input_raises_a_clear_error(
    server: tuple[str, Client, Store, CountingJudge], rubric: str, criteria: str, expected: str
) -> None:
    _, client, _, _ = server
    with pytest.raises(Exception, match=expected) as caught:
        client.predict(CONTEXT, "", OUTPUT, "", criteria, rubric, api_name="/grade")
    assert "Traceback" not in str(caught.value)


def test_only_the_grade_and_status_endpoints_are_public(server: tuple[str, Client, Store, CountingJudge]) -> None:
    _, client, _, _ = server
    info = client.view_api(print_info=False, return_format="dict")
    assert sorted(info["named_endpoints"]) == ["/compare", "/grade", "/status"]
    status = client.predict(api_name="/status")
    assert status["state"] == "ready" and status["judge"]["model_id"] == "tests/scripted-judge"
    params = [p["parameter_name"] for p in info["named_endpoints"]["/grade"]["parameters"]]
    assert params == ["context", "user_input", "model_output", "gold_answer", "pass_criteria", "rubric",
                      "max_new_tokens"]


def test_api_calls_never_run_two_generations_at_once(server: tuple[str, Client, Store, CountingJudge]) -> None:
    _, client, _, judge = server
    jobs = [client.submit(CONTEXT, "", OUTPUT, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, api_name="/grade")
            for _ in range(3)]
    ids = {job.result(timeout=30)["judgment_id"] for job in jobs}
    assert len(ids) == 3
    assert judge.most_at_once == 1


def test_page_serves_the_stylesheet(server: tuple[str, Client, Store, CountingJudge]) -> None:
    url, _, _, _ = server
    config = httpx.get(url.rstrip("/") + "/config", timeout=10).json()
    assert "mark.gl-hl" in (config.get("css") or "")


def test_missing_judge_is_reported_by_the_api(tmp_path: Path) -> None:
    services = make_services(tmp_path, judge=None, judge_error="No model at /models/glider.")
    with launched(services) as url:
        client = Client(url, verbose=False, httpx_kwargs=SLOW_MACHINE)
        with pytest.raises(Exception, match="No model at /models/glider"):
            client.predict(CONTEXT, "", OUTPUT, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, api_name="/grade")
        client.close()
    services.store.close()
