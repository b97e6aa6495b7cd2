"""A public demo Space is not taken down by one visitor (webapp.demo_limits): anonymous visitors get a limit on
grades in flight and on input size, through the Grade tab and `/grade`; signed-in users do not.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from gradio_client import Client

from tests.net import SLOW_MACHINE
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    BatchingJudge,
    build,
    grade_in_form,
    handler,
    launched,
    make_services,
    value,
)
from webapp.demo_limits import DemoGate, DemoLimitError, DemoLimits, signed_in, visitor_of, waiting_in_queue
from webapp.main import build_services, parse_args

pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*")

CONTEXT = "The Rhine flows through Basel and Cologne."
OUTPUT = "The Rhine flows through Basel."


def visitor(address: str, username: str | None = None) -> gr.Request:
    """The request Gradio hands a callback for a visitor behind the Spaces proxy."""
    return gr.Request(username=username, headers={"x-forwarded-for": f"{address}, 10.16.3.80"},
                      client={"host": "10.16.3.80"})


# ---- configuration


def test_limits_are_on_by_default_only_on_a_space() -> None:
    assert DemoLimits.from_env({}) == DemoLimits(0, 0) and not DemoLimits.from_env({}).active
    assert DemoLimits.from_env({"SPACE_ID": "team/demo"}) == DemoLimits(2, 20_000)
    assert DemoLimits.from_env({"SPACE_ID": "t/d", "GLIDER_DEMO_MAX_QUEUED": "0",
                                "GLIDER_DEMO_MAX_INPUT_CHARS": "500"}) == DemoLimits(0, 500)
    with pytest.raises(ValueError, match="GLIDER_DEMO_MAX_QUEUED must be a whole number"):
        DemoLimits.from_env({"GLIDER_DEMO_MAX_QUEUED": "many"})


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPACE_ID", "team/demo")
    monkeypatch.setenv("GLIDER_DEMO_MAX_INPUT_CHARS", "900")
    args = parse_args(["--demo-max-queued", "5"])
    assert (args.demo_max_queued, args.demo_max_input_chars) == (5, 900)
    services = make_services(tmp_path)
    built = build_services(args, services.store, auth=False)
    assert built.demo_limits == DemoLimits(5, 900)
    monkeypatch.setenv("GLIDER_DEMO_MAX_QUEUED", "-1")
    with pytest.raises(SystemExit):
        parse_args([])


def test_who_is_a_visitor() -> None:
    assert visitor_of(visitor("1.2.3.4")) == "1.2.3.4"  # the client, not the proxy
    assert visitor_of(gr.Request(client={"host": "5.6.7.8"})) == "5.6.7.8"
    assert not signed_in(visitor("1.2.3.4")) and signed_in(visitor("1.2.3.4", "ada")) and not signed_in(None)


# ---- the gate


def test_gate_counts_each_visitor_apart_and_gives_slots_back() -> None:
    gate = DemoGate(DemoLimits(max_queued=2, max_input_chars=100))
    first, second = gate.acquire(visitor("1.1.1.1"), ["a"]), gate.acquire(visitor("1.1.1.1"), ["b"])
    with pytest.raises(DemoLimitError, match="at most 2 items at a time per visitor"):
        gate.acquire(visitor("1.1.1.1"), ["c"])
    assert gate.acquire(visitor("2.2.2.2"), ["d"]) == "2.2.2.2"  # someone else is not held up
    assert gate.acquire(visitor("1.1.1.1", "ada"), ["e"]) is None  # signed in: not counted
    gate.release(first)
    assert gate.in_flight("1.1.1.1") == 1
    gate.release(second)
    assert gate.in_flight("1.1.1.1") == 0
    with pytest.raises(DemoLimitError, match="at most 100 characters .* this grade has 101"):
        gate.acquire(visitor("3.3.3.3"), ["x" * 60, "y" * 41])
    assert gate.acquire(visitor("3.3.3.3", "ada"), ["x" * 1000]) is None


# ---- the Grade tab and /grade


def test_grade_api_refuses_a_second_grade_in_flight_for_the_same_visitor(tmp_path: Path) -> None:
    judge = BatchingJudge(delay=0.6)
    services = make_services(tmp_path, judge=judge)
    services.demo_limits = DemoLimits(max_queued=1)
    grade = handler(build(services), "grade")
    results: list[object] = []
    first = threading.Thread(target=lambda: results.append(
        grade(CONTEXT, "", OUTPUT, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, request=visitor("1.1.1.1"))))
    first.start()
    deadline = time.monotonic() + 5
    while not judge.batches and time.monotonic() < deadline:  # the first grade is generating
        time.sleep(0.01)
    with pytest.raises(gr.Error, match="at most 1 item at a time per visitor"):
        grade(CONTEXT, "", OUTPUT, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, request=visitor("1.1.1.1"))
    other = grade(CONTEXT, "", OUTPUT, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, request=visitor("2.2.2.2"))
    first.join()
    assert other["judgment_id"] and results and results[0]["judgment_id"]  # type: ignore[index]
    again = grade(CONTEXT, "", OUTPUT, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, request=visitor("1.1.1.1"))
    assert again["score"] == 1  # the slot came back when the first grade finished


def test_grade_tab_refuses_an_oversized_grade_for_anonymous_visitors_only(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    services.demo_limits = DemoLimits(max_input_chars=200)
    demo = build(services)
    tags = ["CONTEXT", "USER INPUT", "MODEL OUTPUT", "GOLD ANSWER"]
    long_output = "Basel " * 60
    inputs = (*tags, CONTEXT, "", long_output, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, 256)
    refused = grade_in_form(demo, *inputs, request=visitor("1.1.1.1"))
    message = str(value(refused[-1][next(key for key in refused[-1] if getattr(key, "elem_id", "") == "gl-message")]))
    assert "at most 200 characters" in message and services.judge.prompts == []  # type: ignore[union-attr]
    shown = grade_in_form(demo, *inputs, request=visitor("1.1.1.1", "ada"))  # signed in: no size limit
    assert any(getattr(key, "elem_id", "") == "gl-result-card" for key in shown[-1])
    assert len(services.judge.prompts) == 1  # type: ignore[union-attr]


def test_refusal_through_the_running_app(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    services.demo_limits = DemoLimits(max_input_chars=300)
    with launched(services) as url:
        client = Client(url, verbose=False, httpx_kwargs=SLOW_MACHINE)
        try:
            with pytest.raises(Exception, match="at most 300 characters"):
                client.predict(CONTEXT, "", "x" * 400, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC,
                               api_name="/grade")
            result = client.predict(CONTEXT, "", OUTPUT, "", "Faithful?", "0: no\n1: yes", api_name="/grade")
            assert result["judgment_id"]
        finally:
            client.close()
    services.store.close()


def test_grades_a_visitor_queued_in_other_tabs_count_too(tmp_path: Path) -> None:
    """Several tabs each queue a grade in Gradio's queue; when one starts, the others still waiting count, so
    it is refused at once instead of holding up everyone behind it. Gradio's queue is stood in for here by
    an object of the same shape (Blocks._queue.event_queue_per_concurrency_id[...].queue of events)."""
    services = make_services(tmp_path)
    services.demo_limits = DemoLimits(max_queued=1)
    demo = build(services)
    waiting_event = SimpleNamespace(fn=SimpleNamespace(name="on_grade"), request=visitor("1.1.1.1"))
    other_event = SimpleNamespace(fn=SimpleNamespace(name="on_batch"), request=visitor("1.1.1.1"))
    fake_queue = SimpleNamespace(event_queue_per_concurrency_id={"judge": SimpleNamespace(
        queue=[waiting_event, other_event])})
    assert waiting_in_queue(SimpleNamespace(_queue=fake_queue), "on_grade", "1.1.1.1") == 1
    assert waiting_in_queue(SimpleNamespace(_queue=None), "on_grade", "1.1.1.1") == 0
    demo._queue = fake_queue  # type: ignore[assignment]
    tags = ["CONTEXT", "USER INPUT", "MODEL OUTPUT", "GOLD ANSWER"]
    inputs = (*tags, CONTEXT, "", OUTPUT, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, 256)
    refused = grade_in_form(demo, *inputs, request=visitor("1.1.1.1"))
    message = str(value(refused[-1][next(key for key in refused[-1] if getattr(key, "elem_id", "") == "gl-message")]))
    assert "at most 1 item at a time per visitor" in message
    shown = grade_in_form(demo, *inputs, request=visitor("2.2.2.2"))
    assert any(getattr(key, "elem_id", "") == "gl-result-card" for key in shown[-1])
