"""The Batch tab's callbacks, driven through the built Blocks with a scripted judge and a real SQLite store."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import pytest

from core.batch import BatchJobs, JobSpec
from core.judge.base import Generation
from core.judge.options import judge_identity, judge_options
from core.prompt import DEFAULT_TAGS
from tests.fakes import ScriptedJudge
from tests.test_webapp_render import Markup
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    build,
    by_id,
    handler,
    make_services,
    make_study_services,
    signed_in,
    value,
    with_batch,
)
from webapp import Services, render
from webapp.batch_ui import ADMINS_ONLY, BATCH_CONCURRENCY_ID, MAX_MAPPED_TAGS, build_spec
from webapp.main import build_services, parse_args

ROWS = 30
EMPTY_ROW = 7  # model_output is empty: a row error
BROKEN_ROW = 19  # not valid JSON: a row error
TAGS = ", ".join(DEFAULT_TAGS)
MAPPING = ["context", "", "model_output", ""]  # what the upload guesses for CONTEXT, USER INPUT, MODEL OUTPUT, GOLD


class RecordingProgress:
    """Stands in for gr.Progress: records every (progress, desc) the handler reports."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, str | None]] = []

    def __call__(self, progress: Any, desc: str | None = None, total: Any = None, unit: str = "steps") -> None:
        self.calls.append((progress, desc))


class HookedJudge(ScriptedJudge):
    """A scripted judge that calls `hook` once, after it has generated `after` answers."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.hook: Callable[[], None] | None = None

    def generate(self, prompt: str, **kwargs: Any) -> Generation:
        generation = super().generate(prompt, **kwargs)
        if len(self.prompts) == self.after and self.hook is not None:
            self.hook()
        return generation


def write_data(path: Path, rows: int = ROWS, output: Callable[[int], str] | None = None) -> Path:
    """A JSONL file: row n has id n, a context and a model output; two rows cannot be graded."""
    lines = []
    for n in range(1, rows + 1):
        if n == BROKEN_ROW:
            lines.append('{"id": 19, "context": "broken"')
            continue
        text = "" if n == EMPTY_ROW else (output(n) if output else f"Paris is the capital of France ({n}).")
        lines.append(json.dumps({"id": n, "context": "Paris is the capital of France.", "model_output": text}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    services = with_batch(make_services(tmp_path))
    yield services
    services.store.close()


@pytest.fixture
def demo(services: Services) -> gr.Blocks:
    return build(services)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_data(tmp_path / "answers.jsonl")


def merged(updates: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for update in updates:
        out.update(update)
    return {key: value(val) for key, val in out.items()}


def start(demo: gr.Blocks, path: Path | None, *, request: gr.Request | None = None, batch_size: int = 8,
          criteria: str = FAITHFULNESS_CRITERIA, rubric: str = FAITHFULNESS_RUBRIC, tags: str = TAGS,
          mapping: list[str] | None = None, progress: Any = None) -> list[dict[str, Any]]:
    """Every update the Start button's generator yields, keyed by elem_id."""
    chosen = (MAPPING if mapping is None else mapping) + [""] * MAX_MAPPED_TAGS
    generator = handler(demo, "on_batch_start")(
        str(path) if path else None, criteria, rubric, tags, batch_size, "", request or gr.Request(),
        progress or RecordingProgress(), *chosen[:MAX_MAPPED_TAGS])
    return [by_id(demo, update) for update in generator]


def resume(demo: gr.Blocks, job_id: int, *, request: gr.Request | None = None) -> list[dict[str, Any]]:
    generator = handler(demo, "on_batch_resume")(job_id, 8, request=request or gr.Request(),
                                                 progress=RecordingProgress())
    return [by_id(demo, update) for update in generator]


def text(html: Any) -> str:
    return Markup(str(html)).all_text


def table(view: dict[str, Any]) -> pd.DataFrame:
    frame = view["gl-batch-results"]
    assert isinstance(frame, pd.DataFrame)
    return frame


# --- the form -------------------------------------------------------------------------------------------


def test_upload_previews_the_file_and_maps_columns_by_name(demo: gr.Blocks, data: Path) -> None:
    updates = by_id(demo, handler(demo, "on_batch_upload")(str(data), TAGS, gr.Request()))
    preview = value(updates["gl-batch-preview"])
    assert list(preview.columns) == ["id", "context", "model_output"] and len(preview) == 5
    assert preview.iloc[0].tolist() == ["1", "Paris is the capital of France.", "Paris is the capital of France (1)."]
    note = text(value(updates["gl-batch-preview-note"]))
    assert "30 rows, 3 columns" in note and "1 row could not be read (row 19" in note
    pickers = [updates[f"gl-batch-map-{i}"] for i in range(MAX_MAPPED_TAGS)]
    assert [p["label"] for p in pickers[:4]] == list(DEFAULT_TAGS)
    assert [p["value"] for p in pickers[:4]] == MAPPING
    assert [p["visible"] for p in pickers] == [True] * 4 + [False] * 4
    assert ("model_output", "model_output") in pickers[0]["choices"]


def test_rubric_file_fills_the_form_and_renames_the_mapped_fields(demo: gr.Blocks, tmp_path: Path) -> None:
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text("pass_criteria: Is the ANSWER polite?\nrubric: |\n  0: rude\n  1: polite\n"
                      "tags: [QUESTION, ANSWER]\n", encoding="utf-8")
    updates = by_id(demo, handler(demo, "on_batch_rubric_file")(str(rubric), gr.Request()))
    assert value(updates["gl-batch-criteria"]) == "Is the ANSWER polite?"
    assert value(updates["gl-batch-rubric"]) == "0: rude\n1: polite\n"
    assert value(updates["gl-batch-tags"]) == "QUESTION, ANSWER"
    pickers = by_id(demo, handler(demo, "on_batch_tags")("QUESTION, ANSWER", ["question", "answer", "id"]))
    assert [(pickers[f"gl-batch-map-{i}"]["label"], pickers[f"gl-batch-map-{i}"]["value"]) for i in (0, 1)] == [
        ("QUESTION", "question"), ("ANSWER", "answer")]
    assert pickers["gl-batch-map-2"]["visible"] is False


def test_spec_keeps_the_command_lines_key_for_the_default_mapping(tmp_path: Path, data: Path) -> None:
    """The app and `python -m core grade` (no --map) find the same job for the same file and rubric."""
    columns = ["id", "context", "model_output"]
    ui = build_spec(FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, DEFAULT_TAGS, columns, MAPPING)
    cli = JobSpec(FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC)
    jobs = BatchJobs(make_services(tmp_path).store)
    identity = {"backend": "transformers", "model": "PatronusAI/glider"}
    first = jobs.open(data, ui, identity)
    assert jobs.open(data, cli, identity).job.id == first.job.id and first.created
    # Deliberately leaving out a column that exists drops its tag; mapping the graded text is required.
    without_context = build_spec(FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, DEFAULT_TAGS, columns,
                                 ["", "", "model_output", ""])
    assert "CONTEXT" not in without_context.tags and "MODEL OUTPUT" in without_context.tags
    with pytest.raises(ValueError, match=r"Choose the column that holds the text to grade \(MODEL OUTPUT\)"):
        build_spec(FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, DEFAULT_TAGS, columns, ["context", "", "", ""])


# --- running ------------------------------------------------------------------------------------------


def test_start_grades_every_row_in_batches_and_counts_the_errors(
    demo: gr.Blocks, services: Services, data: Path
) -> None:
    progress = RecordingProgress()
    updates = start(demo, data, progress=progress)
    tables = [value(u["gl-batch-results"]) for u in updates if "gl-batch-results" in u]
    assert len(tables) == 1 + 4 + 1, "the table at the start, after each of the four batches of 8, at the end"
    # Streaming: after the first batch 8 rows have a score, the rest are still pending (or row errors).
    first_batch = tables[1]
    assert (first_batch["Score"] == "1").sum() == 8 and (first_batch["Status"] == "pending").sum() == 20
    view = merged(updates)
    result = table(view)
    assert result["Row"].tolist() == [str(n) for n in range(1, ROWS + 1)], "input order"
    assert (result["Status"] == "ok").sum() == 28 and (result["Score"] == "1").sum() == 28
    errors = result[result["Status"] == "error"]
    assert errors["Row"].tolist() == [str(EMPTY_ROW), str(BROKEN_ROW)]
    assert "is empty" in errors.iloc[0]["Error"] and "could not be read" in errors.iloc[1]["Error"]
    assert result.iloc[0]["Model output"] == "Paris is the capital of France (1)."
    status = text(view["gl-batch-status"])
    assert "30 of 30 rows" in status and "28 graded" in status and "2 errors" in status and "done" in status
    message = text(view["gl-batch-message"])
    assert "Job 1 finished: 28 of 30 rows graded. 2 rows could not be graded" in message
    assert text(value(updates[0]["gl-batch-message"])) == (
        "Started job 1: 30 rows. Row 19 could not be read; it is listed as an error.")
    assert view["gl-batch-job-id"] == 1
    jobs = view["gl-batch-jobs"]
    assert jobs.iloc[0].tolist()[:4] == ["1", "answers.jsonl", "done", "30 / 30 (2 errors)"]
    # The progress bar: rows done of the total, with the speed and the time left in its description.
    reported = [p for p, _ in progress.calls]
    assert reported[0] == (2, 30) and reported[-1] == (30, 30)
    assert [done for done, _ in reported] == sorted(done for done, _ in reported)
    assert all("rows/s" in (desc or "") for _, desc in progress.calls[1:])
    assert "ETA" in (progress.calls[1][1] or "")
    assert len(services.store.list_judgments(limit=1000)) == 28


def test_cancel_stops_after_the_batch_and_resume_finishes_without_duplicates(
    tmp_path: Path, data: Path
) -> None:
    judge = HookedJudge(after=8)
    services = with_batch(make_services(tmp_path, judge=judge))
    demo = build(services)
    request = gr.Request()
    cancelled: list[dict[str, Any]] = []
    judge.hook = lambda: cancelled.append(by_id(demo, handler(demo, "on_batch_cancel")(request)))

    view = merged(start(demo, data, request=request))
    assert "Stopping job 1 after the batch in progress" in text(value(cancelled[0]["gl-batch-message"]))
    assert "Stopped job 1 after 10 of 30 rows; press Resume" in text(view["gl-batch-message"])
    assert "stopped" in text(view["gl-batch-status"])
    assert services.batch is not None and services.batch.get(1).status == "stopped"
    assert (table(view)["Score"] == "1").sum() == 8
    assert len(judge.prompts) == 8

    # Nothing runs now: Cancel says so.
    idle = by_id(demo, handler(demo, "on_batch_cancel")(request))
    assert "Nothing is running" in text(value(idle["gl-batch-message"]))

    view = merged(resume(demo, 1, request=request))
    assert text(view["gl-batch-message"]).startswith("Job 1 finished: 28 of 30 rows graded.")
    assert len(judge.prompts) == 28, "no row was graded twice"
    judgments = services.store.list_judgments(limit=1000)
    assert len(judgments) == 28
    results = services.batch.results(1)
    ids = [r.judgment_id for r in results if r.judgment_id is not None]
    assert len(ids) == len(set(ids)) == 28 and set(ids) == {j.id for j in judgments}
    assert (table(view)["Score"] == "1").sum() == 28
    services.store.close()


def test_a_run_whose_page_goes_away_stops_after_its_batch(tmp_path: Path, data: Path) -> None:
    """Gradio closes the generator when the page disconnects or the event is cancelled: the job stops, resumable."""
    judge = HookedJudge(after=1)
    grading, gate = threading.Event(), threading.Event()

    def hold() -> None:  # the first batch is in progress until the test lets it go
        grading.set()
        gate.wait(timeout=10)

    judge.hook = hold
    services = with_batch(make_services(tmp_path, judge=judge))
    demo = build(services)
    run = handler(demo, "on_batch_start")(str(data), FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, TAGS, 8, "",
                                          gr.Request(), RecordingProgress(), *MAPPING)
    first = by_id(demo, next(run))
    assert text(value(first["gl-batch-message"])).startswith("Started job 1")
    assert grading.wait(timeout=10)
    run.close()
    gate.set()
    assert services.batch is not None
    deadline = time.monotonic() + 10
    while services.batch.get(1).status == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    progress = services.batch.progress(1)
    assert (progress.status, progress.done, progress.pending) == ("stopped", 8, 20)
    services.store.close()


def test_starting_the_same_file_again_resumes_its_job(tmp_path: Path, data: Path) -> None:
    judge = HookedJudge(after=8)
    services = with_batch(make_services(tmp_path, judge=judge))
    demo = build(services)
    judge.hook = lambda: handler(demo, "on_batch_cancel")(gr.Request())
    start(demo, data)
    updates = start(demo, data)
    assert text(value(updates[0]["gl-batch-message"])) == (
        "Resuming job 1: 10 of 30 done. Row 19 could not be read; it is listed as an error.")
    assert "Job 1 finished" in text(merged(updates)["gl-batch-message"])
    again = merged(start(demo, data))
    assert text(again["gl-batch-message"]) == "Job 1 is already complete: 30 of 30 rows done."
    assert len(table(again)) == ROWS and len(judge.prompts) == 28
    assert services.batch is not None and len(services.batch.list_jobs()) == 1
    services.store.close()


def test_export_writes_csv_and_jsonl_with_one_row_per_input_row(demo: gr.Blocks, data: Path) -> None:
    start(demo, data)
    for name, read in (("on_batch_export_csv", pd.read_csv), ("on_batch_export_jsonl",
                                                               lambda p: pd.read_json(p, lines=True))):
        updates = by_id(demo, handler(demo, name)(1, gr.Request()))
        download = updates["gl-batch-download"]
        assert download["visible"] is True
        path = Path(download["value"])
        assert path.name == f"batch-1-answers{path.suffix}" and path.suffix in (".csv", ".jsonl")
        frame = read(path)
        assert len(frame) == ROWS
        assert {"id", "context", "model_output", "score", "status", "error", "reasoning"} <= set(frame.columns)
        graded = frame[frame["status"] == "ok"]
        assert len(graded) == 28 and set(graded["score"]) == {1}
        assert frame["error"].notna().sum() == 2
        assert "Exported 30 rows of job 1" in text(value(updates["gl-batch-jobs-message"]))


def test_open_and_select_show_a_stored_job(demo: gr.Blocks, data: Path) -> None:
    start(demo, data)
    opened = by_id(demo, handler(demo, "on_batch_open")(1, gr.Request()))
    assert len(value(opened["gl-batch-results"])) == ROWS and "Job 1" in text(value(opened["gl-batch-status"]))
    event = gr.SelectData(None, {"index": [0, 0], "value": "1", "row_value": ["1", "answers.jsonl"]})
    selected = by_id(demo, handler(demo, "on_batch_select")(event, gr.Request()))
    assert value(selected["gl-batch-job-id"]) == 1
    missing = by_id(demo, handler(demo, "on_batch_open")(99, gr.Request()))
    assert "There is no batch job with id 99" in text(value(missing["gl-batch-jobs-message"]))
    for name, doing in (("on_batch_open", "open"), ("on_batch_export_csv", "export")):
        blank = by_id(demo, handler(demo, name)(None, gr.Request()))
        assert f"Enter the id of the job to {doing}" in text(value(blank["gl-batch-jobs-message"]))


# --- bad input, no judge, other judge -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [("", "is empty"), ("PK\x03\x04 zipped", "looks like a spreadsheet or zip file")],
)
def test_a_bad_file_is_a_message(demo: gr.Blocks, tmp_path: Path, content: str, expected: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content, encoding="utf-8")
    preview = by_id(demo, handler(demo, "on_batch_upload")(str(bad), TAGS, gr.Request()))
    note = value(preview["gl-batch-preview-note"])
    assert "gl-message-error" in note and expected in text(note)
    updates = start(demo, bad)
    assert len(updates) == 1 and expected in text(value(updates[0]["gl-batch-message"]))
    assert "Traceback" not in str(updates)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"rubric": "Grade it fairly."}, "The rubric names no scores"),
        ({"criteria": "  "}, "The pass criteria are empty"),
        ({"mapping": ["context", "", "", ""]}, "Choose the column that holds the text to grade (MODEL OUTPUT)"),
        ({"mapping": ["nope", "", "model_output", ""]}, "The file has no column 'nope' (for CONTEXT)"),
        ({"path": None}, "Upload a CSV or JSONL file first"),
        ({"tags": ", ".join(f"T{i}" for i in range(9))}, "maps at most 8 field tags; this rubric has 9"),
    ],
)
def test_a_bad_rubric_or_mapping_is_a_message(
    demo: gr.Blocks, services: Services, data: Path, change: dict[str, Any], expected: str
) -> None:
    path = change.pop("path", data)
    updates = start(demo, path, **change)
    assert len(updates) == 1
    message = value(updates[0]["gl-batch-message"])
    assert "gl-message-error" in message and expected in text(message)
    assert services.batch is not None and services.batch.list_jobs() == []


def test_a_bad_rubric_file_is_a_message(demo: gr.Blocks, tmp_path: Path) -> None:
    rubric = tmp_path / "rubric.toml"
    rubric.write_text('pass_criteria = "Is it good?"\n', encoding="utf-8")
    updates = by_id(demo, handler(demo, "on_batch_rubric_file")(str(rubric), gr.Request()))
    assert set(updates) == {"gl-batch-message"}
    assert "The rubric file rubric.toml needs text for: rubric." in text(value(updates["gl-batch-message"]))


def test_without_a_judge_start_explains_and_the_jobs_still_show(tmp_path: Path, data: Path) -> None:
    services = with_batch(make_services(tmp_path, judge=None))
    services.judge_loading = "transformers: PatronusAI/glider"
    demo = build(services)
    updates = start(demo, data)
    assert "The judge (transformers: PatronusAI/glider) is still loading" in text(
        value(updates[0]["gl-batch-message"]))
    session = by_id(demo, handler(demo, "on_batch_session")(gr.Request()))
    assert "still loading" in text(value(session["gl-batch-judge"]))
    assert isinstance(value(session["gl-batch-jobs"]), pd.DataFrame)
    services.judge_loading, services.judge_error = None, "No model at /models/glider."
    updates = start(demo, data)
    assert "the judge model is not loaded. No model at /models/glider." in text(value(updates[0]["gl-batch-message"]))
    services.store.close()


def test_the_tab_names_the_judge_in_use(demo: gr.Blocks) -> None:
    session = by_id(demo, handler(demo, "on_batch_session")(gr.Request()))
    line = text(value(session["gl-batch-judge"]))
    assert "tests/scripted-judge" in line and "scripted" in line
    assert session["gl-batch-body"]["visible"] is True


def test_resuming_with_another_judge_is_refused(tmp_path: Path, data: Path) -> None:
    services = with_batch(make_services(tmp_path), identity={"backend": "openai", "model": "glider"})
    assert services.batch is not None
    job = services.batch.open(data, JobSpec(FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC),
                              {"backend": "transformers", "model": "PatronusAI/glider"}).job
    demo = build(services)
    updates = resume(demo, job.id)
    message = text(value(updates[0]["gl-batch-jobs-message"]))
    assert "was started with another judge (transformers: model=PatronusAI/glider)" in message
    assert "this app runs openai: model=glider" in message
    assert services.batch.progress(job.id).done == 0
    services.store.close()


# --- who may use it ------------------------------------------------------------------------------------


def test_only_admins_may_use_the_batch_tab(tmp_path: Path, data: Path) -> None:
    services = with_batch(make_study_services(tmp_path))
    demo = build(services)
    ann, ada = signed_in("ann"), signed_in("ada")
    session = by_id(demo, handler(demo, "on_batch_session")(ann))
    assert session["gl-batch-body"]["visible"] is False and ADMINS_ONLY in text(value(session["gl-batch-notice"]))
    assert "gl-batch-jobs" not in session

    refused = [
        start(demo, data, request=ann)[0]["gl-batch-message"],
        by_id(demo, handler(demo, "on_batch_upload")(str(data), TAGS, ann))["gl-batch-preview-note"],
        resume(demo, 1, request=ann)[0]["gl-batch-jobs-message"],
        by_id(demo, handler(demo, "on_batch_cancel")(ann))["gl-batch-message"],
        by_id(demo, handler(demo, "on_batch_refresh")(ann))["gl-batch-jobs-message"],
        by_id(demo, handler(demo, "on_batch_open")(1, ann))["gl-batch-jobs-message"],
        by_id(demo, handler(demo, "on_batch_export_csv")(1, ann))["gl-batch-jobs-message"],
        by_id(demo, handler(demo, "on_batch_export_jsonl")(1, ann))["gl-batch-jobs-message"],
    ]
    assert all(ADMINS_ONLY in text(value(r)) for r in refused), refused
    assert services.batch is not None and services.batch.list_jobs() == []
    nobody = by_id(demo, handler(demo, "on_batch_export_csv")(1, signed_in(None)))
    assert ADMINS_ONLY in text(value(nobody["gl-batch-jobs-message"]))

    view = merged(start(demo, data, request=ada))
    assert "Job 1 finished" in text(view["gl-batch-message"])
    export = by_id(demo, handler(demo, "on_batch_export_csv")(1, ada))
    assert export["gl-batch-download"]["visible"] is True
    # The admin's job exists now; the annotator still cannot read it.
    opened = by_id(demo, handler(demo, "on_batch_open")(1, ann))
    assert set(opened) == {"gl-batch-jobs-message"}
    services.store.close()


# --- wiring, rendering, the entry point ------------------------------------------------------------------


def test_batch_runs_queue_apart_from_single_grades(demo: gr.Blocks) -> None:
    """Start and Resume share one batch queue (one run at a time), never the judge's queue of single grades."""
    fns = {fn.name: fn for fn in demo.fns.values()}
    for name in ("on_batch_start", "on_batch_resume"):
        assert (fns[name].concurrency_id, fns[name].concurrency_limit) == (BATCH_CONCURRENCY_ID, 1)
    assert fns["on_grade"].concurrency_id == "judge" != BATCH_CONCURRENCY_ID
    assert fns["on_batch_cancel"].queue is False, "Cancel must not wait behind the run it cancels"
    # (js-only events have no name)
    batch_events = [fn for fn in demo.fns.values() if (fn.name or "").startswith("on_batch_")]
    assert len(batch_events) >= 12 and all(fn.api_visibility == "private" for fn in batch_events)


def test_status_and_judge_lines_escape_their_text() -> None:
    payload = '<img src=x onerror="window.__xss=1">'
    status = render.render_batch_status(3, payload, "<b>x</b>", 10, 4, 1, rate="2.00 rows/s", eta="5 s",
                                        message=payload)
    assert "<img" not in status and "&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;" in status
    assert "gl-batch-unknown" in status and "5 of 10 rows" in Markup(status).all_text
    assert 'style="width: 50.0%"' in status
    judge = render.render_batch_judge(payload, payload)
    assert "<img" not in judge and Markup(judge).all_text.count(payload) == 2


def test_the_app_builds_the_judge_from_the_shared_flags(tmp_path: Path) -> None:
    argv = ["--backend", "openai", "--model", "glider", "--base-url", "http://127.0.0.1:9/v1", "--concurrency", "3",
            "--db", f"sqlite:///{tmp_path / 'app.db'}"]
    args = parse_args(argv)
    from core.store import Store

    store = Store(args.db)
    services = build_services(args, store, auth=False)
    assert services.judge_identity == judge_identity(*judge_options(args)) == {"backend": "openai", "model": "glider",
                                                                              "base_url": "http://127.0.0.1:9/v1"}
    assert services.judge_loading is not None and services.judge_loading.startswith("openai: glider")
    assert isinstance(services.batch, BatchJobs) and services.batch.store is store
    default = build_services(parse_args([]), store, auth=True)
    # The default back-end is auto, resolved for this machine before the identity is taken.
    assert default.judge_identity is not None and default.judge_identity["backend"] == judge_options(parse_args([]))[0]
    assert default.judge_identity["backend"] != "auto" and default.judge_reason
    assert default.auth_enabled and default.studies is not None
    store.close()


def test_clearing_the_rubric_file_changes_nothing(demo: gr.Blocks) -> None:
    """Removing the uploaded rubric fires a change with no file: the form keeps what it has (an empty dict
    was read by Gradio as one value for five outputs and failed; found by tests/test_access.py)."""
    assert handler(demo, "on_batch_rubric_file")(None, gr.Request()) == gr.skip()
