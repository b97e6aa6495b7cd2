"""The Batch tab: grade every row of a CSV/JSONL file with the judge, with progress, cancel, resume and export.

The work is core.batch's: `BatchJobs.open` finds or creates the job (the same data, rubric, mapping and
judge give the same job, so starting again resumes it), `BatchJobs.run` grades its pending rows a batch
at a time and commits each batch, `BatchJobs.export` writes the results. This module turns widget values
into those calls and their progress into page updates.

With sign-in on, the tab needs the grade right (webapp.access): its results show the model's verdicts, which
blind studies hide from annotators. Every callback checks the signed-in user, not only the layout. Every
event is private.

No `from __future__ import annotations` here: Gradio reads the callbacks' `gr.Request` and
`gr.Progress` type hints at runtime to inject them.
"""

import logging
import queue
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from core.batch import (
    DEFAULT_BATCH_SIZE,
    FINISHED,
    STOPPED,
    BatchJobs,
    Job,
    JobProgress,
    JobSpec,
    RowResult,
    column_name,
    load_rubric_file,
)
from core.errors import InputError
from core.judge.base import JudgeBackend
from core.presets import Preset
from core.prompt import DEFAULT_TAGS, MODEL_OUTPUT
from core.studies import PermissionDenied
from core.tabular import read_table
from webapp import access, render
from webapp.components import (
    MAX_MAPPED_TAGS,
    PRIVATE,
    ColumnMapping,
    RubricForm,
    Unavailable,
)
from webapp.components import as_id as _as_id
from webapp.components import error_update as _error
from webapp.components import html_update as _html
from webapp.components import notice_update as _notice
from webapp.components import session_of as _session
from webapp.services import Services
from webapp.view_models import failure_message, format_duration, format_time, parse_tags

log = logging.getLogger(__name__)

# Batch runs queue in their own group, one at a time: a second Start waits for the first run to end.
# Not the "judge" group of single grades: a batch holds its group for its whole run (minutes to hours),
# and single grades must keep working meanwhile. Two generations never overlap on a model anyway: a
# back-end that must run one at a time serialises them (core.judge.base.JudgeBackend's concurrency rule),
# so a single grade slips in between two batches.
BATCH_CONCURRENCY_ID = "batch"
MAX_BATCH_SIZE = 32
PREVIEW_ROWS = 5
TABLE_LIMIT = 1000  # rows shown in the results table; the exports hold every row
PREVIEW_CHARS = 160
RESULT_HEADERS = ["Row", "Score", "Status", "Error", "Model output"]
JOB_HEADERS = ["ID", "Name", "Status", "Done", "Updated"]
DATA_TYPES = [".csv", ".tsv", ".jsonl", ".ndjson", ".json"]
RUBRIC_TYPES = [".yaml", ".yml", ".json", ".toml"]

ADMINS_ONLY = access.NO_RIGHT
NO_JOBS = "Batch grading is not available: this app was started without a job store."


def _short(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A cell's text on one line, cut to `limit` characters."""
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _rows(count: int) -> str:
    return f"{count} row{'s' if count != 1 else ''}"


# --- plain helpers: the job spec from the form, table rows from results ---------------------------------


def graded_tag(tags: Sequence[str]) -> str:
    """The tag of the text being graded: MODEL OUTPUT, or the last tag when the tags are custom (as core)."""
    return MODEL_OUTPUT if MODEL_OUTPUT in tags else tags[-1]


def build_spec(pass_criteria: str, rubric: str, tags: Sequence[str], columns: Sequence[str],
               chosen: Sequence[str | None], name: str = "") -> JobSpec:
    """The job spec from the form: the chosen column per tag; InputError when the mapping cannot work.

    A tag left on "(not in the file)" reads nothing. Tags keep core's default mapping (their snake_case
    column) where that column is absent anyway, so the app and the CLI give the same job the same key;
    a tag whose snake_case column exists but was deliberately unmapped is left out of the job.
    """
    if not tags:
        raise InputError("Give at least one field tag, such as MODEL OUTPUT.")
    if len(tags) > MAX_MAPPED_TAGS:
        raise InputError(f"The Batch tab maps at most {MAX_MAPPED_TAGS} field tags; this rubric has {len(tags)}. "
                         "Run it with the command line (`python -m core grade`) instead.")
    mapping: dict[str, str] = {}
    used: list[str] = []
    for tag, column in zip(tags, list(chosen) + [None] * len(tags), strict=False):
        if column:
            if column not in columns:
                raise InputError(f"The file has no column {column!r} (for {tag}); upload the file again.")
            mapping[tag] = column
            used.append(tag)
        elif column_name(tag) not in columns:
            used.append(tag)  # core's default: nothing to read for it, as on the command line
    graded = graded_tag(tags)
    if graded not in mapping:
        raise InputError(f"Choose the column that holds the text to grade ({graded}).")
    return JobSpec(pass_criteria=pass_criteria or "", rubric=rubric or "", tags=tuple(used), mapping=mapping,
                   name=(name or "").strip())


def _graded_column(job: Job) -> str | None:
    tags = list(job.settings.get("tags") or DEFAULT_TAGS)
    mapping = job.settings.get("mapping") or {}
    tag = graded_tag(tags)
    return mapping.get(tag) or column_name(tag)


def result_row(result: RowResult, graded_column: str | None) -> list[str]:
    """One line of the results table: row number, score, status, error, the graded text cut short."""
    output = result.input_values.get(graded_column) if graded_column else None
    return [str(result.row_number), "\u2014" if result.score is None else str(result.score), result.status,
            _short(result.error or "", 300), _short(output)]


def _counts(progress: JobProgress) -> tuple[int, int]:
    """(rows finished, rows in the job)."""
    return progress.done + progress.errors, progress.total


# --- layout -------------------------------------------------------------------------------------------


@dataclass
class BatchTab:
    """The Batch tab's components: the form on the left, the run, its results and the jobs on the right."""

    tab: gr.Tab
    notice: gr.HTML
    body: gr.Column
    judge: gr.HTML
    upload: gr.File
    preview: gr.Dataframe
    preview_note: gr.HTML
    rubric_file: gr.File
    form: RubricForm  # preset, pass criteria, rubric, scale
    tags: gr.Textbox
    mapping: ColumnMapping
    batch_size: gr.Slider
    name: gr.Textbox
    start: gr.Button
    cancel: gr.Button
    message: gr.HTML
    status: gr.HTML
    meter: gr.HTML
    results: gr.Dataframe
    refresh: gr.Button
    jobs: gr.Dataframe
    job_id: gr.Number
    open: gr.Button
    resume: gr.Button
    export_csv: gr.Button
    export_jsonl: gr.Button
    download: gr.File
    jobs_message: gr.HTML
    columns: gr.State  # the uploaded file's columns, for the mapping dropdowns

    @classmethod
    def create_in(cls, tab: gr.Tab, presets: list[Preset]) -> "BatchTab":
        notice = gr.HTML(visible=False, elem_id="gl-batch-notice")
        with gr.Column(elem_id="gl-batch-body") as body:
            judge = gr.HTML(elem_id="gl-batch-judge")
            with gr.Row():
                with gr.Column(scale=5, elem_classes="gl-inputs"):
                    gr.HTML(render.render_subtitle("Data"))
                    upload = gr.File(label="CSV or JSONL file (one row per item)", file_types=DATA_TYPES,
                                     type="filepath", elem_id="gl-batch-file")
                    preview_note = gr.HTML(visible=False, elem_id="gl-batch-preview-note")
                    preview = gr.Dataframe(datatype="str", interactive=False, wrap=True, max_height=220,
                                           label="Preview (first rows)", visible=False, elem_id="gl-batch-preview")
                    gr.HTML(render.render_subtitle("Rubric"))
                    preset = RubricForm.picker(presets, "gl-batch-preset")
                    with gr.Accordion("\u2026 or load a rubric file (YAML, JSON or TOML)", open=False):
                        rubric_file = gr.File(label="Rubric file with pass_criteria, rubric and optional tags",
                                              file_types=RUBRIC_TYPES, type="filepath", height=120,
                                              elem_id="gl-batch-rubric-file")
                    form = RubricForm.create(presets, preset, criteria_id="gl-batch-criteria",
                                             rubric_id="gl-batch-rubric", scale_id="gl-batch-scale")
                    tags = gr.Textbox(label="Field tags (comma-separated, in prompt order)", max_lines=3,
                                      value=", ".join(DEFAULT_TAGS), elem_id="gl-batch-tags")
                    gr.HTML(render.render_subtitle("Columns"))
                    gr.HTML(render.render_hint("Choose the column that feeds each field tag; upload a file to "
                                               "see its columns."))
                    mapping = ColumnMapping.create("gl-batch-map")
                    with gr.Row(equal_height=True):
                        batch_size = gr.Slider(1, MAX_BATCH_SIZE, value=DEFAULT_BATCH_SIZE, step=1,
                                               label="Batch size (rows graded together)",
                                               elem_id="gl-batch-size")
                        name = gr.Textbox(label="Job name (optional)", max_lines=1, elem_id="gl-batch-name")
                    with gr.Row():
                        start = gr.Button("Start", variant="primary", elem_id="gl-batch-start")
                        cancel = gr.Button("Cancel", variant="stop", elem_id="gl-batch-cancel")
                    message = gr.HTML(visible=False, elem_id="gl-batch-message")
                with gr.Column(scale=6):
                    status = gr.HTML(render.render_hint("Upload a file, choose a rubric and press Start."),
                                     elem_id="gl-batch-status")
                    # Gradio draws a run's gr.Progress bar over this box. It must not be an output of the run:
                    # once a generator has yielded, its outputs show only a thin "generating" line.
                    meter = gr.HTML(render.render_hint("While a job runs, its progress shows here: rows done of "
                                                       "the total, rows per second and the time left."),
                                    elem_id="gl-batch-progress")
                    # datatype "str": cells are shown as text, so model output holding markup stays inert.
                    results = gr.Dataframe(headers=RESULT_HEADERS, datatype="str", interactive=False, wrap=True,
                                           max_height=420, column_widths=["7%", "9%", "10%", "26%", "48%"],
                                           label="Results (input order)", elem_id="gl-batch-results")
                    with gr.Row(equal_height=True):
                        gr.HTML(render.render_subtitle("Jobs"))
                        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100,
                                            elem_id="gl-batch-refresh")
                    jobs = gr.Dataframe(headers=JOB_HEADERS, datatype="str", interactive=False, wrap=True,
                                        max_height=260, column_widths=["8%", "36%", "12%", "20%", "24%"],
                                        elem_id="gl-batch-jobs")
                    with gr.Row(elem_classes="gl-batch-actions"):
                        job_id = gr.Number(label="Job id", precision=0, minimum=1, scale=1, min_width=110,
                                           elem_id="gl-batch-job-id")
                        with gr.Column(scale=4, min_width=300), gr.Row():
                            open_button = gr.Button("Open", size="sm", min_width=70, elem_id="gl-batch-open")
                            resume = gr.Button("Resume", size="sm", min_width=80, elem_id="gl-batch-resume")
                            export_csv = gr.Button("Export CSV", size="sm", min_width=100,
                                                   elem_id="gl-batch-export-csv")
                            export_jsonl = gr.Button("Export JSONL", size="sm", min_width=110,
                                                     elem_id="gl-batch-export-jsonl")
                    download = gr.File(label="Download", visible=False, interactive=False,
                                       elem_id="gl-batch-download")
                    jobs_message = gr.HTML(visible=False, elem_id="gl-batch-jobs-message")
        columns = gr.State([])
        return cls(tab, notice, body, judge, upload, preview, preview_note, rubric_file, form, tags, mapping,
                   batch_size, name, start, cancel, message, status, meter, results, refresh, jobs, job_id, open_button,
                   resume, export_csv, export_jsonl, download, jobs_message, columns)

    @property
    def run_outputs(self) -> list[Any]:
        """What a run updates as it goes."""
        return [self.message, self.status, self.results, self.job_id, self.jobs, self.download]


# --- callbacks ----------------------------------------------------------------------------------------


@dataclass
class _Run:
    """A run in progress in one browser session: its job and the flag Cancel sets."""

    job_id: int
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class BatchHandlers:
    """The Batch tab's callbacks: each checks the user, calls core.batch, and returns or yields updates."""

    services: Services
    ui: BatchTab
    no_judge: Callable[[Services], str]  # why grading is unavailable (the Grade tab's wording)
    export_root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="glider-batch-")))
    _runs: dict[str | None, _Run] = field(default_factory=dict)  # session hash -> its run
    _guard: threading.Lock = field(default_factory=threading.Lock)

    # --- who is asking, with what -------------------------------------------------------------------

    def refused(self, request: gr.Request | None) -> str | None:
        """Why this user may not use the Batch tab, or None when they may (sign-in off: everyone may).

        With sign-in on it needs the grade right (webapp.access): admins, and annotators an admin allowed.
        """
        try:
            access.grade_guard(self.services, request)
        except PermissionDenied:
            return ADMINS_ONLY
        return None

    def _may_see(self, request: gr.Request | None, jobs: BatchJobs, job_id: int) -> None:
        """PermissionDenied when the job grades a blind-study item this user has not labelled (webapp.access)."""
        access.check_job(access.grade_guard(self.services, request), jobs, job_id)

    def _job(self, request: gr.Request | None, job_id: Any, doing: str) -> tuple[BatchJobs, Any]:
        """The job store and the job `job_id` names, for a user who may see it; InputError without an id."""
        jobs = self._check(request)
        wanted = _as_id(job_id)
        if wanted is None:
            raise InputError(f"Enter the id of the job to {doing} (or click it in the jobs list).")
        job = jobs.get(wanted)
        self._may_see(request, jobs, job.id)
        return jobs, job

    def _check(self, request: gr.Request | None) -> BatchJobs:
        """The job store, for a user who may use it; PermissionDenied or Unavailable otherwise."""
        refused = self.refused(request)
        if refused:
            raise PermissionDenied(refused)
        if self.services.batch is None:
            raise Unavailable(NO_JOBS)
        return self.services.batch

    def _judge(self) -> JudgeBackend:
        judge = self.services.judge
        if judge is None:
            raise Unavailable(self.no_judge(self.services))
        return judge

    def _identity(self, judge: JudgeBackend) -> dict[str, Any]:
        """The judge's identity in job keys: the one main built from the flags, else read from the judge."""
        if self.services.judge_identity is not None:
            return dict(self.services.judge_identity)
        info = judge.info
        return {"backend": info.backend, "model": info.model_id, "quantization": info.quantization,
                "revision": info.revision}

    def _judge_line(self) -> str:
        services = self.services
        judge = services.judge
        if judge is None:
            return render.render_batch_judge(None, None, self.no_judge(services),
                                             loading=bool(services.judge_loading))
        return render.render_batch_judge(judge.info.backend, judge.info.model_id)

    # --- page load and tab ------------------------------------------------------------------------------

    def on_batch_session(self, request: gr.Request) -> dict[Any, Any]:
        """On page load and tab select: the judge in use and the jobs, or why this user cannot see them."""
        b = self.ui
        refused = self.refused(request)
        if refused:
            return {b.notice: _notice(refused), b.body: gr.update(visible=False)}
        updates: dict[Any, Any] = {b.notice: _html(""), b.body: gr.update(visible=True), b.judge: self._judge_line()}
        try:
            updates[b.jobs] = self._jobs_table(self._check(request))
        except Exception as error:
            updates[b.notice] = _error(error)
        return updates

    # --- the form -------------------------------------------------------------------------------------

    def _mapping_updates(self, columns: Sequence[str], tags: Sequence[str]) -> dict[Any, Any]:
        """One column picker per tag, guessed by name (none without columns)."""
        return self.ui.mapping.show(columns, tags if columns else ())

    def on_batch_upload(self, path: str | None, tags_text: str, request: gr.Request) -> dict[Any, Any]:
        """Show the first rows and columns of the uploaded file and guess the column of each field tag."""
        b = self.ui
        hidden = {b.preview: gr.update(visible=False), b.columns: [], **self._mapping_updates([], ())}
        if not path:
            return {**hidden, b.preview_note: _html("")}
        try:
            self._check(request)
            table = read_table(path)
        except Exception as error:
            return {**hidden, b.preview_note: _error(error)}
        columns = [str(c) for c in table.columns]
        shown = [[_short(values.get(c, ""), 200) for c in columns] for _, values in table.rows[:PREVIEW_ROWS]]
        lines = [f"{_rows(len(table.rows) + len(table.errors))}, {len(columns)} column"
                 f"{'s' if len(columns) != 1 else ''}: {', '.join(columns)}."]
        lines += table.notes
        if table.errors:
            first = table.errors[0]
            lines.append(f"{_rows(len(table.errors))} could not be read (row {first.row}: {first.message}); "
                         "they will be listed as errors.")
        tags = parse_tags(tags_text) or DEFAULT_TAGS
        return {b.preview: gr.update(value=pd.DataFrame(shown, columns=columns), visible=True),
                b.preview_note: _notice(" ".join(lines)), b.columns: columns,
                **self._mapping_updates(columns, tags)}

    def on_batch_tags(self, tags_text: str, columns: list[str] | None) -> dict[Any, Any]:
        return self._mapping_updates(columns or [], parse_tags(tags_text) or DEFAULT_TAGS)

    def on_batch_preset(self, key: str | None) -> dict[Any, Any]:
        b = self.ui
        chosen = b.form.chosen(key)
        if chosen is None:
            return gr.skip()  # nothing to change ({} would be read as a value)
        return {**b.form.filled(chosen), b.tags: ", ".join(DEFAULT_TAGS)}

    def on_batch_rubric(self, rubric: str) -> dict[Any, Any]:
        return self.ui.form.scale_of(rubric)

    def on_batch_rubric_file(self, path: str | None, request: gr.Request) -> dict[Any, Any]:
        """Fill the pass criteria, rubric and tags from a YAML/JSON/TOML rubric file."""
        b = self.ui
        if not path:
            return gr.skip()  # nothing to change ({} would be read as a value)
        try:
            self._check(request)
            loaded = load_rubric_file(path)
        except Exception as error:
            return {b.message: _error(error)}
        return {b.form.pass_criteria: loaded["pass_criteria"], b.form.rubric: loaded["rubric"],
                b.tags: ", ".join(loaded["tags"]), b.form.preset: gr.update(value=None),
                b.message: _notice(f"Loaded the rubric from {Path(path).name}.")}

    # --- running --------------------------------------------------------------------------------------

    def on_batch_start(self, path: str | None, pass_criteria: str, rubric: str, tags_text: str, batch_size: Any,
                       name: str, request: gr.Request, progress: gr.Progress = gr.Progress(),  # noqa: B008
                       *chosen: str | None) -> Iterator[dict[Any, Any]]:
        """Open the job for this file and settings (resuming it when it exists) and grade its pending rows.

        `request` and `progress` come before the column pickers (`*chosen`): Gradio injects them only into
        positional parameters, at their place among the inputs.
        """
        b = self.ui
        try:
            jobs = self._check(request)
            judge = self._judge()
            if not path:
                raise InputError("Upload a CSV or JSONL file first.")
            columns = [str(c) for c in read_table(path).columns]
            tags = parse_tags(tags_text) or DEFAULT_TAGS
            spec = build_spec(pass_criteria, rubric, tags, columns, chosen, name)
            opened = jobs.open(path, spec, self._identity(judge))
            self._may_see(request, jobs, opened.job.id)
            before = jobs.progress(opened.job.id)
        except Exception as error:
            yield {b.message: _error(error)}
            return
        job = opened.job
        finished, total = _counts(before)
        notes = list(opened.notes)
        if opened.row_errors:
            notes.append(_unreadable([error.row for error in opened.row_errors]))
        if before.finished:
            text = f"Job {job.id} is already complete: {finished} of {total} rows done."
            yield {**self._show(jobs, job, before, text), b.jobs: self._jobs_table(jobs)}
            return
        lead = (f"Started job {job.id}: {_rows(total)}." if opened.created
                else f"Resuming job {job.id}: {finished} of {total} done.")
        yield from self._run(jobs, judge, job, _batch_size(batch_size), " ".join([lead, *notes]), request, progress)

    def on_batch_resume(self, job_id: Any, batch_size: Any, request: gr.Request,
                        progress: gr.Progress = gr.Progress()) -> Iterator[dict[Any, Any]]:  # noqa: B008
        """Grade the pending rows of a stored job (stopped, failed or interrupted)."""
        b = self.ui
        try:
            jobs, job = self._job(request, job_id, "resume")
            before = jobs.progress(job.id)
            if before.finished:
                finished, total = _counts(before)
                text = f"Job {job.id} is already complete: {finished} of {total} rows done."
                yield {**self._show(jobs, job, before, text), b.jobs: self._jobs_table(jobs)}
                return
            judge = self._judge()
            identity = self._identity(judge)
            if dict(job.judge) != identity:
                raise InputError(
                    f"Job {job.id} was started with another judge ({_describe(job.judge)}); this app runs "
                    f"{_describe(identity)}. Start the app with that judge to resume it, or start a new job."
                )
        except Exception as error:
            yield {b.jobs_message: _error(error)}
            return
        finished, total = _counts(before)
        yield from self._run(jobs, judge, job, _batch_size(batch_size),
                             f"Resuming job {job.id}: {finished} of {total} done.", request, progress)

    def on_batch_cancel(self, request: gr.Request) -> dict[Any, Any]:
        """Ask this page's run to stop after the batch in progress; the job stays resumable."""
        b = self.ui
        try:
            self._check(request)
        except Exception as error:
            return {b.message: _error(error)}
        with self._guard:
            run = self._runs.get(_session(request))
        if run is None:
            return {b.message: _notice("Nothing is running in this page.")}
        run.stop.set()
        return {b.message: _notice(f"Stopping job {run.job_id} after the batch in progress \u2026")}

    def _run(self, jobs: BatchJobs, judge: JudgeBackend, job: Job, batch_size: int, lead: str,
             request: gr.Request | None, progress: gr.Progress) -> Iterator[dict[Any, Any]]:
        """Grade in a worker thread; yield the table and the status line after every committed batch.

        core's run blocks and reports through a callback, so it runs in its own thread and hands each batch
        over a queue. Closing this generator early (the page went away) stops the run after its batch.
        """
        b = self.ui
        session = _session(request)
        run = _Run(job.id)
        with self._guard:
            if session in self._runs:
                yield {b.message: _error("A batch is already running in this page; cancel it or wait for it.")}
                return
            self._runs[session] = run
        try:
            shown = jobs.results(job.id, limit=TABLE_LIMIT)
        except Exception as error:
            with self._guard:
                self._runs.pop(session, None)
            yield {b.message: _error(error)}
            return
        column = _graded_column(job)
        table = {result.position: result_row(result, column) for result in shown}
        events: queue.Queue[tuple[str, Any, Any]] = queue.Queue()

        def work() -> None:
            try:
                final = jobs.run(job.id, judge, batch_size=batch_size, should_stop=run.stop.is_set,
                                 on_progress=lambda now, rows: events.put(("batch", now, rows)))
                events.put(("end", final, None))
            except BaseException as error:  # handed to the page; core has already left the job resumable
                events.put(("error", error, None))

        worker = threading.Thread(target=work, name=f"batch-job-{job.id}", daemon=True)
        more = (f" The table shows the first {TABLE_LIMIT}; the exports hold every row."
                if job.total_rows > TABLE_LIMIT else "")
        try:
            current = jobs.progress(job.id)
            finished, total = _counts(current)
            worker.start()
            yield {b.message: _notice(lead + more), b.job_id: job.id, b.download: gr.update(visible=False),
                   b.status: self._status(job, current, status="running"), b.results: _frame(table)}
            # Progress is reported after each yield: the page drops a progress message that arrives before the
            # update it follows (the queue sends progress on its own schedule, updates at once).
            progress((finished, total), desc=f"Job {job.id}: grading", unit="rows")
            last_rate = ""
            while True:
                kind, value, rows = events.get()
                if kind == "batch":
                    current = value
                    for result in rows:
                        if result.position in table:
                            table[result.position] = result_row(result, column)
                    finished, total = _counts(current)
                    rate = f"{current.rows_per_second:.2f} rows/s" if current.rows_per_second else ""
                    last_rate = rate or last_rate
                    eta = format_duration(current.eta_seconds)
                    yield {b.status: self._status(job, current, rate=rate, eta=eta), b.results: _frame(table)}
                    progress((finished, total), unit="rows",
                             desc=" \u00b7 ".join(p for p in (f"Job {job.id}", rate, eta and f"ETA {eta}") if p))
                    continue
                if kind == "end":
                    final = value
                    # The table again: the last word of the run, whatever the page made of the updates before.
                    yield {b.status: self._status(job, final, rate=last_rate), b.results: _frame(table),
                           b.message: _outcome(job, final), b.jobs: self._jobs_table(jobs)}
                else:
                    final = jobs.progress(job.id)
                    yield {b.status: self._status(job, final), b.message: _error(_run_failure(job, value)),
                           b.jobs: self._jobs_table(jobs)}
                return
        except Exception as error:  # the store failed while reading progress: a message, never a traceback
            yield {b.message: _error(error)}
        finally:
            if worker.is_alive():
                run.stop.set()  # the page went away or the event was cancelled: stop after this batch
            with self._guard:
                if self._runs.get(session) is run:
                    del self._runs[session]

    # --- jobs -----------------------------------------------------------------------------------------

    def _status(self, job: Job, progress: JobProgress, *, status: str | None = None, rate: str = "",
                eta: str = "") -> str:
        return render.render_batch_status(job.id, job.name, status or progress.status, progress.total,
                                          progress.done, progress.errors, rate=rate, eta=eta,
                                          message=progress.message)

    def _show(self, jobs: BatchJobs, job: Job, progress: JobProgress, text: str = "") -> dict[Any, Any]:
        """A stored job on screen: its status line, its results, its id in the job box."""
        b = self.ui
        column = _graded_column(job)
        table = {r.position: result_row(r, column) for r in jobs.results(job.id, limit=TABLE_LIMIT)}
        return {b.status: self._status(job, progress), b.results: _frame(table), b.job_id: job.id,
                b.message: _notice(text) if text else _html("")}

    def _jobs_table(self, jobs: BatchJobs) -> pd.DataFrame:
        rows = []
        for job in jobs.list_jobs():
            progress = jobs.progress(job.id)
            finished, total = _counts(progress)
            done = f"{finished} / {total}" + (f" ({progress.errors} error{'s' if progress.errors != 1 else ''})"
                                                 if progress.errors else "")
            rows.append([str(job.id), job.name, job.status, done, format_time(job.updated_at)])
        return pd.DataFrame(rows, columns=JOB_HEADERS)

    def on_batch_refresh(self, request: gr.Request) -> dict[Any, Any]:
        b = self.ui
        try:
            return {b.jobs: self._jobs_table(self._check(request)), b.jobs_message: _html(""),
                    b.judge: self._judge_line()}
        except Exception as error:
            return {b.jobs_message: _error(error)}

    def on_batch_open(self, job_id: Any, request: gr.Request) -> dict[Any, Any]:
        """Show a stored job's progress and results."""
        b = self.ui
        try:
            jobs, job = self._job(request, job_id, "open")
            return {**self._show(jobs, job, jobs.progress(job.id)), b.jobs_message: _html("")}
        except Exception as error:
            return {b.jobs_message: _error(error)}

    def on_batch_select(self, event: gr.SelectData, request: gr.Request) -> dict[Any, Any]:
        row = event.row_value or []
        return self.on_batch_open(row[0] if row else None, request)

    def _export(self, job_id: Any, suffix: str, request: gr.Request | None) -> dict[Any, Any]:
        b = self.ui
        try:
            jobs, job = self._job(request, job_id, "export")
            # A fresh folder per export: Gradio serves a file from its cache by path.
            folder = Path(tempfile.mkdtemp(prefix=f"job-{job.id}-", dir=self.export_root))
            path = jobs.export(job.id, folder / f"batch-{job.id}-{_slug(job.name)}{suffix}")
            progress = jobs.progress(job.id)
        except Exception as error:
            return {b.jobs_message: _error(error), b.download: gr.update(visible=False)}
        note = "" if progress.finished else (f" Job {job.id} is not finished: {_rows(progress.pending)} "
                                             "have no result yet.")
        return {b.download: gr.update(value=str(path), visible=True),
                b.jobs_message: _notice(f"Exported {_rows(progress.total)} of job {job.id} to {path.name}.{note}")}

    def on_batch_export_csv(self, job_id: Any, request: gr.Request) -> dict[Any, Any]:
        return self._export(job_id, ".csv", request)

    def on_batch_export_jsonl(self, job_id: Any, request: gr.Request) -> dict[Any, Any]:
        return self._export(job_id, ".jsonl", request)

    # --- wiring -----------------------------------------------------------------------------------------

    def wire(self, demo: gr.Blocks) -> None:
        """Attach every Batch event: all private; the two that run the judge share the batch queue."""
        b = self.ui

        def on(trigger: Any, fn: Callable[..., Any], inputs: Any, outputs: Any, **options: Any) -> None:
            trigger(fn, inputs, outputs, api_visibility=PRIVATE, **options)

        gr.on([demo.load, b.tab.select], self.on_batch_session, None, [b.notice, b.body, b.judge, b.jobs],
              api_visibility=PRIVATE)
        mapping_outputs = [*b.mapping.boxes]
        on(b.upload.change, self.on_batch_upload, [b.upload, b.tags],
           [b.preview, b.preview_note, b.columns, *mapping_outputs])
        on(b.tags.change, self.on_batch_tags, [b.tags, b.columns], mapping_outputs, queue=False)
        b.form.wire(self.on_batch_preset, self.on_batch_rubric, also=[b.tags])
        on(b.rubric_file.change, self.on_batch_rubric_file, b.rubric_file,
           [b.form.pass_criteria, b.form.rubric, b.tags, b.form.preset, b.message])
        running = {"concurrency_id": BATCH_CONCURRENCY_ID, "concurrency_limit": 1, "show_progress_on": [b.meter]}
        on(b.start.click, self.on_batch_start,
           [b.upload, b.form.pass_criteria, b.form.rubric, b.tags, b.batch_size, b.name, *b.mapping.boxes],
           b.run_outputs, **running)
        on(b.resume.click, self.on_batch_resume, [b.job_id, b.batch_size], [*b.run_outputs, b.jobs_message],
           **running)
        # Not queued: Cancel must get through while the run holds the batch queue.
        on(b.cancel.click, self.on_batch_cancel, None, b.message, queue=False)
        on(b.refresh.click, self.on_batch_refresh, None, [b.jobs, b.jobs_message, b.judge])
        opened = [b.status, b.results, b.job_id, b.message, b.jobs_message]
        on(b.open.click, self.on_batch_open, b.job_id, opened)
        on(b.jobs.select, self.on_batch_select, None, opened)
        on(b.export_csv.click, self.on_batch_export_csv, b.job_id, [b.download, b.jobs_message])
        on(b.export_jsonl.click, self.on_batch_export_jsonl, b.job_id, [b.download, b.jobs_message])


def _batch_size(value: Any) -> int:
    try:
        size = int(value)
    except (TypeError, ValueError):
        return DEFAULT_BATCH_SIZE
    return min(max(size, 1), MAX_BATCH_SIZE)


def _frame(table: Mapping[int, list[str]]) -> pd.DataFrame:
    return pd.DataFrame([table[position] for position in sorted(table)], columns=RESULT_HEADERS)


def _slug(name: str) -> str:
    """A file-name-safe form of a job name ("my data.jsonl" -> "my-data")."""
    stem = Path(name).stem if "." in name else name
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:60] or "results"


def _unreadable(rows: Sequence[int], limit: int = 10) -> str:
    """"Row 19 could not be read; it is listed as an error." (or the same for several rows)."""
    if len(rows) == 1:
        return f"Row {rows[0]} could not be read; it is listed as an error."
    shown = ", ".join(str(row) for row in rows[:limit]) + (", \u2026" if len(rows) > limit else "")
    return f"Rows {shown} could not be read; they are listed as errors."


def _describe(identity: Mapping[str, Any]) -> str:
    shown = [f"{key}={value}" for key, value in identity.items() if key != "backend" and value is not None]
    return f"{identity.get('backend', 'unknown')}: " + (", ".join(shown) or "defaults")


def _outcome(job: Job, final: JobProgress) -> Any:
    """The message after a run: finished (and how many rows failed), stopped, or left pending."""
    finished, total = _counts(final)
    if final.status == FINISHED:
        text = f"Job {job.id} finished: {final.done} of {total} rows graded."
        if final.errors:
            text += f" {_rows(final.errors)} could not be graded; the Error column says why."
        return _notice(text)
    if final.status == STOPPED:
        return _notice(f"Stopped job {job.id} after {finished} of {total} rows; press Resume to finish it.")
    return _error(final.message or f"Job {job.id} ended as {final.status}; press Resume to try again.")


def _run_failure(job: Job, error: BaseException) -> str:
    text = failure_message(error) if isinstance(error, Exception) else f"The run was interrupted ({error!r})."
    return f"{text} The rows graded so far are kept; press Resume (job {job.id}) to continue."
