"""Concurrent /grade calls share one batched generation (webapp.grade_queue), each with its own outcome."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client

from core.errors import InputError, JudgeError
from core.grading import GradeRequest
from tests.net import SLOW_MACHINE
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    BatchingJudge,
    build,
    handler,
    launched,
    make_services,
)
from webapp import Services
from webapp.grade_queue import GradeBatcher

# Gradio's queue analytics use a pandas option that pandas 3 deprecates (raised in the server thread).
pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]


def request(text: str, max_new_tokens: int = 64) -> GradeRequest:
    return GradeRequest({"MODEL OUTPUT": text}, "Is it fine?", "0: no\n1: yes", max_new_tokens=max_new_tokens)


class Recorder:
    """A grade_many that answers each request with its text (or the error a test planted for it).

    `busy` stands for the back-end's own generation lock (core.judge.base.SerialBackend): a batch takes it.
    """

    def __init__(self, errors: dict[str, Exception] | None = None, fail: Exception | None = None) -> None:
        self.errors, self.fail = errors or {}, fail
        self.busy = threading.Lock()
        self.batches: list[list[str]] = []

    def __call__(self, requests: Sequence[GradeRequest]) -> list[str | Exception]:
        with self.busy:
            return self._grade(requests)

    def _grade(self, requests: Sequence[GradeRequest]) -> list[str | Exception]:
        texts = [r.fields["MODEL OUTPUT"] for r in requests]
        self.batches.append(texts)
        if self.fail is not None:
            raise self.fail
        return [self.errors.get(text, f"graded {text}") for text in texts]


def submit_all(batcher: GradeBatcher[str], requests: Sequence[GradeRequest]) -> list[str | Exception]:
    """Submit every request from its own thread at once; each thread's result or the error it raised."""

    def one(req: GradeRequest) -> str | Exception:
        try:
            return batcher.submit(req)
        except Exception as error:
            return error

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(one, requests))


def test_concurrent_requests_share_one_batch_and_each_gets_its_own_result() -> None:
    grade_many = Recorder()
    # A long timeout: the first caller waits until the batch is full, so the test does not race.
    batcher = GradeBatcher(grade_many, max_batch_size=5, batch_timeout=30)
    texts = [f"answer {i}" for i in range(5)]
    assert submit_all(batcher, [request(t) for t in texts]) == [f"graded {t}" for t in texts]
    assert len(grade_many.batches) == 1 and sorted(grade_many.batches[0]) == texts


def test_one_requests_error_reaches_that_caller_only() -> None:
    bad = InputError("The rubric names no scores.")
    grade_many = Recorder(errors={"b": bad})
    batcher = GradeBatcher(grade_many, max_batch_size=3, batch_timeout=30)
    assert submit_all(batcher, [request("a"), request("b"), request("c")]) == ["graded a", bad, "graded c"]
    assert len(grade_many.batches) == 1


def test_an_error_that_stops_the_batch_reaches_every_caller_in_it() -> None:
    down = JudgeError("Could not reach the judge server.")
    grade_many = Recorder(fail=down)
    batcher = GradeBatcher(grade_many, max_batch_size=2, batch_timeout=30)
    assert submit_all(batcher, [request("a"), request("b")]) == [down, down]
    assert not grade_many.busy.locked()


def test_batches_are_capped_and_split_by_token_limit() -> None:
    grade_many = Recorder()
    batcher = GradeBatcher(grade_many, max_batch_size=2, batch_timeout=0.05)
    requests = [request(f"x{i}") for i in range(5)] + [request("long", max_new_tokens=128)]
    outcomes = submit_all(batcher, requests)
    assert outcomes == [f"graded {r.fields['MODEL OUTPUT']}" for r in requests]
    assert all(len(batch) <= 2 for batch in grade_many.batches)
    graded = sorted(text for batch in grade_many.batches for text in batch)
    assert graded == sorted(r.fields["MODEL OUTPUT"] for r in requests)
    assert ["long"] in grade_many.batches  # a batch decodes to one max_new_tokens


def test_a_lone_request_is_graded_without_company() -> None:
    grade_many = Recorder()
    batcher = GradeBatcher(grade_many, max_batch_size=8, batch_timeout=0.01)
    assert batcher.submit(request("alone")) == "graded alone"
    assert grade_many.batches == [["alone"]]
    with pytest.raises(ValueError, match="at least 1"):
        GradeBatcher(grade_many, max_batch_size=0)


def test_a_batch_waits_while_the_back_end_is_busy() -> None:
    grade_many = Recorder()
    batcher = GradeBatcher(grade_many, max_batch_size=8, batch_timeout=0)
    grade_many.busy.acquire()  # a streamed grade is generating on the back-end
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(batcher.submit, request("later"))
        time.sleep(0.1)
        assert not pending.done() and grade_many.batches == []
        grade_many.busy.release()
        assert pending.result(timeout=10) == "graded later"
    assert "gate" not in inspect.signature(GradeBatcher).parameters  # the web layer takes no lock of its own


# --- in the app ----------------------------------------------------------------------------------------


def api_args(output: str, rubric: str = FAITHFULNESS_RUBRIC) -> tuple[str, ...]:
    return ("The context.", "", output, "", FAITHFULNESS_CRITERIA, rubric)


@pytest.fixture
def batching(tmp_path: Path) -> Iterator[tuple[Services, BatchingJudge]]:
    judge = BatchingJudge(delay=0.3)
    services = make_services(tmp_path, judge=judge)
    yield services, judge
    services.store.close()


def test_the_streamed_grade_and_api_batches_never_generate_at_once(
    batching: tuple[Services, BatchingJudge],
) -> None:
    services, judge = batching
    demo = build(services)
    on_grade, grade_api = handler(demo, "on_grade"), handler(demo, "grade")
    form = [*("CONTEXT", "USER INPUT", "MODEL OUTPUT", "GOLD ANSWER"), "The context.", "", "It is fine.", "",
            FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, 256]
    calls: list[Callable[[], Any]] = [lambda: list(on_grade(*form))]
    calls += [lambda i=i: grade_api(*api_args(f"output {i}")) for i in range(4)]
    with ThreadPoolExecutor(len(calls)) as pool:
        results = [future.result(timeout=60) for future in [pool.submit(call) for call in calls]]
    assert judge.most_at_once == 1
    assert [r["highlights"] for r in results[1:]] == [[f"output {i}"] for i in range(4)]


def test_the_page_takes_no_lock_a_server_back_end_runs_them_side_by_side(tmp_path: Path) -> None:
    # One concurrency rule: only a back-end that must serialise generations does so (BatchingJudge above
    # holds its own lock); the page, the API and the batcher add none, so a server judge is not throttled.
    judge = BatchingJudge(delay=0.4, serial=False)
    services = make_services(tmp_path, judge=judge)
    try:
        demo = build(services)
        on_grade, grade_api = handler(demo, "on_grade"), handler(demo, "grade")
        form = [*("CONTEXT", "USER INPUT", "MODEL OUTPUT", "GOLD ANSWER"), "The context.", "", "It is fine.", "",
                FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, 256]
        with ThreadPoolExecutor(2) as pool:
            streamed = pool.submit(lambda: list(on_grade(*form)))
            time.sleep(0.2)  # the stream is generating
            graded = pool.submit(grade_api, *api_args("output 0"))
            assert graded.result(timeout=60)["highlights"] == ["output 0"]
            streamed.result(timeout=60)
    finally:
        services.store.close()
    assert judge.most_at_once == 2


def test_concurrent_api_callers_share_batched_generations(batching: tuple[Services, BatchingJudge]) -> None:
    services, judge = batching
    outputs = [f"Answer number {i}." for i in range(7)]
    with launched(services) as url:
        client = Client(url, verbose=False, httpx_kwargs=SLOW_MACHINE)
        jobs = [client.submit(*api_args(output), api_name="/grade") for output in outputs]
        # One more caller over plain HTTP, and one whose rubric has no scores: its error is its own.
        base = url.rstrip("/") + "/gradio_api/call/grade"
        plain = httpx.post(base, json={"data": [*api_args("Sent over HTTP."), 256]}, timeout=10).json()["event_id"]
        bad = client.submit(*api_args("Bad one.", rubric="Grade it sensibly."), api_name="/grade")
        results = [job.result(timeout=60) for job in jobs]
        with pytest.raises(Exception, match="names no scores") as caught:
            bad.result(timeout=60)
        assert "Traceback" not in str(caught.value)
        stream = httpx.get(f"{base}/{plain}", timeout=60).text
        client.close()
    assert [r["highlights"] for r in results] == [[output] for output in outputs]
    assert [r["spans"][0]["phrase"] for r in results] == outputs
    assert len({r["judgment_id"] for r in results}) == len(outputs)
    assert "event: complete" in stream and "Sent over HTTP." in stream
    sizes = [size for size in judge.batches if size]  # the bad call alone makes an empty batch: nothing generated
    assert sum(sizes) == len(outputs) + 1, "every valid call is generated once; the bad one never"
    assert len(sizes) < len(outputs) + 1, f"calls should share generations: {sizes}"
    assert max(sizes) <= services.api_batch_size and judge.most_at_once == 1
    stored = services.store.list_judgments(limit=50)
    assert len(stored) == len(outputs) + 1


@pytest.mark.parametrize("serial", [True, False], ids=["in-process model", "server"])
def test_the_batch_tab_follows_the_same_rule(tmp_path: Path, serial: bool) -> None:
    """A Batch tab run and a streamed grade take turns exactly when the back-end serialises, as /grade does."""
    from tests.test_webapp_batch import start, write_data
    from tests.webapp_helpers import with_batch

    judge = BatchingJudge(delay=0.3, serial=serial)
    services = with_batch(make_services(tmp_path, judge=judge))
    try:
        demo = build(services)
        on_grade = handler(demo, "on_grade")
        form = [*("CONTEXT", "USER INPUT", "MODEL OUTPUT", "GOLD ANSWER"), "The context.", "", "It is fine.", "",
                FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, 256]
        data = write_data(tmp_path / "rows.jsonl")
        with ThreadPoolExecutor(2) as pool:
            batch = pool.submit(start, demo, data)
            deadline = time.monotonic() + 60
            while not judge.batches and time.monotonic() < deadline:  # until the run's first batch generates
                time.sleep(0.01)
            streamed = pool.submit(lambda: list(on_grade(*form)))
            assert batch.result(timeout=120) and streamed.result(timeout=120)
        assert services.batch is not None and services.batch.get(1).status == "done"
    finally:
        services.store.close()
    assert judge.most_at_once == (1 if serial else 2)
