"""Batch grading: a job grades every row of a CSV/JSONL file (or a Hugging Face dataset) and survives crashes.

A job and all its rows are written to the database before any grading starts. Each batch of rows
is graded, then its judgments and the rows' new status are committed in ONE transaction; a process
killed at any moment therefore leaves every row either done (with its judgment) or pending, and
running the job again grades exactly the pending rows: none twice, none lost.

The same command finds its job again: a job's key is the SHA-256 of the data, the rubric, the
column mapping and the judge settings. One runner at a time holds a job (its host, pid and a token);
a runner whose process is gone on this host is replaced at once, one elsewhere after LEASE_SECONDS.

What a job grades (JobSpec, the rubric file, the data source, each row's fields) is read by
core.batch_inputs; its names are re-exported here. This module keeps the stored jobs, their runner and
the export.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, delete, func, select, update
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.batch_inputs import JobSpec, check_columns, job_key, read_source, row_fields
from core.batch_inputs import column_name as column_name  # re-exported: `from core.batch import` keeps working
from core.batch_inputs import load_rubric_file as load_rubric_file
from core.errors import ContextTooLongError, GliderError, InputError, JudgeError
from core.grading import GradeRequest, GradeResult, grade_batch
from core.judge.base import JudgeBackend
from core.judgments import JudgmentRow, judgment_row
from core.prompt import infer_scale
from core.store import Base, Store, UTCDateTime
from core.tabular import RowError

PENDING, DONE, ERROR = "pending", "done", "error"
# Job states: ready (created, nothing graded yet), running, stopped (cancelled or interrupted; resumable),
# failed (the judge failed; resumable), done (every row has a judgment or a row error).
READY, RUNNING, STOPPED, FAILED, FINISHED = "ready", "running", "stopped", "failed", "done"
DEFAULT_BATCH_SIZE = 8
# A runner on another host that has not written for this long is presumed dead. Long enough for one
# slow batch on a CPU (8 rows of a 3.8B model can take minutes), short enough to recover the same day.
LEASE_SECONDS = 15 * 60
RESULT_COLUMNS = ("score", "status", "reasoning", "highlights", "spans", "distribution", "expected_score",
                  "confidence", "error", "judgment_id")


class JobBusyError(GliderError):
    """Another process is grading this job right now."""


# --------------------------------------------------------------------------------------------------
# ORM: the current shape of the tables migration 3 (core.migrations) creates.


class BatchJobRow(Base):
    """One batch job (table `batch_jobs`)."""

    __tablename__ = "batch_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    source_sha256: Mapped[str] = mapped_column(String(64))
    columns: Mapped[list[str]] = mapped_column(JSON)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    judge: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    total_rows: Mapped[int] = mapped_column(Integer)
    runner: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BatchInputRow(Base):
    """One input row of a job (table `batch_rows`)."""

    __tablename__ = "batch_rows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("batch_jobs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    row_number: Mapped[int] = mapped_column(Integer)
    input_values: Mapped[dict[str, Any]] = mapped_column(JSON)
    fields: Mapped[list[list[str]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    judgment_id: Mapped[int | None] = mapped_column(ForeignKey("judgments.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --------------------------------------------------------------------------------------------------
# Value types


@dataclass(frozen=True)
class Job:
    """A stored batch job."""

    id: int
    name: str
    source: str
    status: str
    message: str
    total_rows: int
    settings: dict[str, Any]
    judge: dict[str, Any]
    columns: list[str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class JobProgress:
    """How far a job is; rates and ETA are for the current run (None before its first batch)."""

    job_id: int
    status: str
    total: int
    done: int
    errors: int
    rows_per_second: float | None = None
    eta_seconds: float | None = None
    message: str = ""

    @property
    def pending(self) -> int:
        return self.total - self.done - self.errors

    @property
    def finished(self) -> bool:
        """No row is left to grade (each has a judgment or a row error)."""
        return self.pending == 0


@dataclass(frozen=True)
class RowResult:
    """One input row with its outcome, in input order."""

    position: int
    row_number: int
    input_values: dict[str, Any]
    status: str  # pending | error | ok | repaired | failed (the judgment's parse status)
    error: str | None = None
    judgment_id: int | None = None
    score: int | None = None
    reasoning: str | None = None
    highlights: list[str] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    distribution: dict[str, float] | None = None
    expected_score: float | None = None
    confidence: float | None = None


@dataclass(frozen=True)
class OpenedJob:
    """The job for a source and spec, whether it was just created, and the file's notes and row errors."""

    job: Job
    created: bool
    notes: list[str] = field(default_factory=list)
    row_errors: list[RowError] = field(default_factory=list)


ProgressCallback = Callable[[JobProgress, list[RowResult]], None]


# --------------------------------------------------------------------------------------------------
# Jobs


def _now() -> datetime:
    return datetime.now(UTC)


def _job(row: BatchJobRow) -> Job:
    return Job(id=row.id, name=row.name, source=row.source, status=row.status, message=row.message,
               total_rows=row.total_rows, settings=dict(row.settings), judge=dict(row.judge),
               columns=list(row.columns), created_at=row.created_at, updated_at=row.updated_at)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _runner_gone(runner: str, heartbeat: datetime | None, now: datetime) -> bool:
    host, _, rest = runner.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        return not _pid_alive(int(pid_text))
    return heartbeat is None or now - heartbeat > timedelta(seconds=LEASE_SECONDS)


class BatchJobs:
    """Create, run, inspect and export batch jobs stored in `store` (tables from migration 3)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ---- creating

    def open(self, source: str | Path, spec: JobSpec, judge: Mapping[str, Any]) -> OpenedJob:
        """The job for this data, spec and judge: the existing one (to resume) or a new one with every row.

        `judge` is the judge's identity (core.judge.options.judge_identity), part of the job's key.
        Raises InputError (TableError, RubricError) when the data or the spec cannot be used at all.
        """
        scale = infer_scale(spec.rubric)
        if not spec.pass_criteria.strip():
            raise InputError("The pass criteria are empty: say what a passing text must do.")
        if not spec.tags:
            raise InputError("A job needs at least one field tag, such as 'MODEL OUTPUT'.")
        table, digest = read_source(source)
        check_columns(table, spec)
        key = job_key(digest, spec, judge)
        with self.store.session("read") as session:
            existing = session.scalar(select(BatchJobRow).where(BatchJobRow.key == key))
            if existing is not None:
                return OpenedJob(_job(existing), False, list(table.notes), list(table.errors))
        now = _now()
        name = spec.name.strip() or Path(str(source)).name
        settings = {"pass_criteria": spec.pass_criteria, "rubric": spec.rubric, "tags": list(spec.tags),
                    "mapping": {tag: spec.column_for(tag) for tag in spec.tags},
                    "max_new_tokens": spec.max_new_tokens, "scale": list(scale)}
        parse_errors = {error.row: error.message for error in table.errors}
        entries: list[tuple[int, dict[str, Any], list[list[str]], str | None]] = []
        for number, values in table.rows:
            fields, problem = row_fields(values, spec)
            entries.append((number, _jsonable_row(values), fields, problem))
        for number, message in parse_errors.items():
            entries.append((number, {}, [], f"Row {number} could not be read: {message}"))
        entries.sort(key=lambda entry: entry[0])

        def create(session: Session) -> tuple[Job, bool]:
            raced = session.scalar(select(BatchJobRow).where(BatchJobRow.key == key))
            if raced is not None:  # the same command started twice at once: one job
                return _job(raced), False
            job_row = BatchJobRow(key=key, name=name[:200], source=str(source), source_sha256=digest,
                                  columns=list(table.columns), settings=settings, judge=dict(judge), status=READY,
                                  message="", total_rows=len(entries), runner=None, heartbeat_at=None,
                                  created_at=now, updated_at=now)
            session.add(job_row)
            session.flush()
            session.execute(
                Base.metadata.tables[BatchInputRow.__tablename__].insert(),
                [{"job_id": job_row.id, "position": position, "row_number": number, "input_values": values,
                  "fields": fields, "status": ERROR if problem else PENDING, "error": problem, "judgment_id": None,
                  "updated_at": now}
                 for position, (number, values, fields, problem) in enumerate(entries)],
            )
            return _job(job_row), True

        job, created = self.store.write("create a batch job in", create)
        return OpenedJob(job, created, list(table.notes), list(table.errors))

    def forget(self, source: str | Path, spec: JobSpec, judge: Mapping[str, Any]) -> bool:
        """Delete the job this data, spec and judge would resume (its judgments stay in History)."""
        table, digest = read_source(source)
        key = job_key(digest, spec, judge)

        def work(session: Session) -> bool:
            job = session.scalar(select(BatchJobRow).where(BatchJobRow.key == key))
            if job is None:
                return False
            if job.status == RUNNING and job.runner and not _runner_gone(job.runner, job.heartbeat_at, _now()):
                raise JobBusyError(f"Batch job {job.id} is being graded right now; stop that process first.")
            session.execute(delete(BatchInputRow).where(BatchInputRow.job_id == job.id))
            session.delete(job)
            return True

        return self.store.write("delete a batch job from", work)

    # ---- reading

    def get(self, job_id: int) -> Job:
        """The job with this id; InputError when there is none."""
        with self.store.session("read") as session:
            row = session.get(BatchJobRow, job_id)
            if row is None:
                raise InputError(f"There is no batch job with id {job_id!r}.")
            return _job(row)

    def list_jobs(self, limit: int = 100) -> list[Job]:
        """Jobs, newest first."""
        with self.store.session("read") as session:
            rows = session.scalars(select(BatchJobRow).order_by(BatchJobRow.id.desc()).limit(limit))
            return [_job(row) for row in rows]

    def progress(self, job_id: int) -> JobProgress:
        """Counts of done, error and pending rows."""
        with self.store.session("read") as session:
            return self._progress(session, job_id)

    @staticmethod
    def _progress(session: Session, job_id: int, **extra: Any) -> JobProgress:
        job = session.get(BatchJobRow, job_id)
        if job is None:
            raise InputError(f"There is no batch job with id {job_id!r}.")
        counts = dict(session.execute(
            select(BatchInputRow.status, func.count()).where(BatchInputRow.job_id == job_id)
            .group_by(BatchInputRow.status)
        ).all())
        return JobProgress(job_id=job_id, status=job.status, total=job.total_rows, done=counts.get(DONE, 0),
                           errors=counts.get(ERROR, 0), message=job.message, **extra)

    def results(self, job_id: int, *, offset: int = 0, limit: int | None = None) -> list[RowResult]:
        """Every row of the job in input order, with its judgment where it has one."""
        query = (
            select(BatchInputRow, JudgmentRow)
            .outerjoin(JudgmentRow, JudgmentRow.id == BatchInputRow.judgment_id)
            .where(BatchInputRow.job_id == job_id)
            .order_by(BatchInputRow.position)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.store.session("read") as session:
            self.get(job_id)
            return [_row_result(row, judgment) for row, judgment in session.execute(query)]

    # ---- running

    def run(
        self,
        job_id: int,
        backend: JudgeBackend,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        on_progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> JobProgress:
        """Grade the job's pending rows, batch_size at a time, committing each batch; returns the final progress.

        Stops early (status 'stopped', resumable) when should_stop() turns true between batches. A judge
        failure that is not about one row (the server is down, out of memory) marks the job 'failed'
        (resumable) and is raised as JudgeError; rows committed before it stay graded.
        Raises JobBusyError when another live process holds the job.
        """
        if batch_size < 1:
            raise InputError("The batch size must be at least 1.")
        token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        job = self._acquire(job_id, token)
        settings = job.settings
        started, graded_this_run = time.perf_counter(), 0
        progress = self.progress(job_id)
        try:
            while True:
                if should_stop is not None and should_stop():
                    return self._release(job_id, token, STOPPED, "Stopped; run the job again to resume.")
                pending = self._next_rows(job_id, batch_size)
                if not pending:
                    return self._release(job_id, token, FINISHED, _finished_message(progress))
                requests = [GradeRequest(fields=dict((tag, text) for tag, text in row_fields_),
                                         pass_criteria=settings["pass_criteria"], rubric=settings["rubric"],
                                         max_new_tokens=int(settings["max_new_tokens"]))
                            for _, row_fields_ in pending]
                outcomes = grade_batch(backend, requests)
                fatal = next((o for o in outcomes if isinstance(o, JudgeError) and not _row_problem(o)), None)
                finished = self._commit(job_id, token, pending, outcomes)
                graded_this_run += len(finished)
                elapsed = time.perf_counter() - started
                rate = graded_this_run / elapsed if elapsed > 0 and graded_this_run else None
                progress = self.progress(job_id)
                eta = progress.pending / rate if rate else None
                progress = JobProgress(**{**vars(progress), "rows_per_second": rate, "eta_seconds": eta})
                if on_progress is not None:
                    on_progress(progress, finished)
                if fatal is not None:
                    raise fatal
        except BaseException as error:
            # Leave the job resumable and say why (a no-op when another runner has taken it over).
            if isinstance(error, JudgeError):
                status, message = FAILED, f"The judge failed: {error}"
            elif isinstance(error, KeyboardInterrupt):
                status, message = STOPPED, "Interrupted; run the job again to resume."
            else:
                status, message = STOPPED, f"Stopped by an error: {error}; run the job again to resume."
            self._release(job_id, token, status, message, quiet=True)
            raise

    def _acquire(self, job_id: int, token: str) -> Job:
        now = _now()

        def work(session: Session) -> Job:
            # FOR UPDATE: on PostgreSQL two processes starting the job at once would both read "no runner" and both
            # take it; the second now waits for the first's commit and reads its runner (SQLite: BEGIN IMMEDIATE).
            row = session.get(BatchJobRow, job_id, with_for_update={"key_share": True})
            if row is None:
                raise InputError(f"There is no batch job with id {job_id!r}.")
            if row.runner and row.status == RUNNING and not _runner_gone(row.runner, row.heartbeat_at, now):
                host, _, rest = row.runner.partition(":")
                raise JobBusyError(
                    f"Batch job {job_id} is being graded by process {rest.partition(':')[0]} on {host} "
                    f"(last progress {row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC). Wait for it, or stop that process "
                    "and run again."
                )
            row.runner, row.heartbeat_at, row.status, row.message, row.updated_at = token, now, RUNNING, "", now
            return _job(row)

        return self.store.write("start a batch job in", work)

    def _release(self, job_id: int, token: str, status: str, message: str, *, quiet: bool = False) -> JobProgress:
        def work(session: Session) -> JobProgress:
            session.execute(
                update(BatchJobRow).where(BatchJobRow.id == job_id, BatchJobRow.runner == token)
                .values(runner=None, status=status, message=message, updated_at=_now())
            )
            return self._progress(session, job_id)

        try:
            return self.store.write("save a batch job to", work)
        except GliderError:
            if quiet:  # already failing: keep the original error
                return JobProgress(job_id, status, 0, 0, 0, message=message)
            raise

    def _next_rows(self, job_id: int, limit: int) -> list[tuple[int, list[list[str]]]]:
        with self.store.session("read") as session:
            rows = session.execute(
                select(BatchInputRow.id, BatchInputRow.fields)
                .where(BatchInputRow.job_id == job_id, BatchInputRow.status == PENDING)
                .order_by(BatchInputRow.position).limit(limit)
            ).all()
            return [(row_id, fields) for row_id, fields in rows]

    def _commit(
        self,
        job_id: int,
        token: str,
        pending: Sequence[tuple[int, list[list[str]]]],
        outcomes: Sequence[GradeResult | GliderError],
    ) -> list[RowResult]:
        """Store one batch's judgments and row states in one transaction, if this runner still holds the job."""
        now = _now()

        def work(session: Session) -> list[RowResult]:
            held = _rowcount(session.execute(
                update(BatchJobRow).where(BatchJobRow.id == job_id, BatchJobRow.runner == token)
                .values(heartbeat_at=now, updated_at=now)
            ))
            if not held:
                raise JobBusyError(f"Batch job {job_id} was taken over by another process; this run stops.")
            changed: list[int] = []
            for (row_id, _), outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, GradeResult):
                    stored = judgment_row(outcome)
                    session.add(stored)
                    session.flush()
                    values = {"status": DONE, "error": None, "judgment_id": stored.id}
                elif _row_problem(outcome):
                    values = {"status": ERROR, "error": str(outcome), "judgment_id": None}
                else:
                    continue  # a judge failure: the row stays pending for the next run
                done = _rowcount(session.execute(
                    update(BatchInputRow).where(BatchInputRow.id == row_id, BatchInputRow.status == PENDING)
                    .values(updated_at=now, **values)
                ))
                if done:
                    changed.append(row_id)
            if not changed:
                return []
            rows = session.execute(
                select(BatchInputRow, JudgmentRow)
                .outerjoin(JudgmentRow, JudgmentRow.id == BatchInputRow.judgment_id)
                .where(BatchInputRow.id.in_(changed)).order_by(BatchInputRow.position)
            ).all()
            return [_row_result(row, judgment) for row, judgment in rows]

        return self.store.write("save batch results to", work)

    # ---- exporting

    def export(self, job_id: int, path: str | Path) -> Path:
        """Write every row (input columns + results) as CSV or JSONL by the file's extension, atomically."""
        import pandas as pd

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".jsonl", ".ndjson"):
            raise InputError(f"Results go to a .csv or .jsonl file; got {path.name!r}.")
        job = self.get(job_id)
        records = export_records(job, self.results(job_id), nested=suffix != ".csv")
        # object dtype: an integer column with gaps must stay 3, not become 3.0.
        columns = _export_columns(job)
        frame = pd.DataFrame({column: pd.Series([record.get(column) for record in records], dtype=object)
                              for column in columns}, columns=columns)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if suffix == ".csv":
                frame.to_csv(temporary, index=False)
            else:
                frame.to_json(temporary, orient="records", lines=True, force_ascii=False)
            os.replace(temporary, path)  # readers never see half a file
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise InputError(f"Could not write {path}: {error.strerror or error}.") from error
        return path


def _rowcount(result: Result) -> int:
    """Rows an UPDATE matched: Session.execute is typed to return a Result, but for DML it is a CursorResult."""
    return cast(CursorResult, result).rowcount


def _row_problem(error: GliderError) -> bool:
    """Whether an outcome is this row's own problem (bad input, too long) rather than the judge failing."""
    return isinstance(error, (InputError, ContextTooLongError))


def _finished_message(progress: JobProgress) -> str:
    return "" if not progress.errors else f"{progress.errors} row(s) could not be graded; see their error column."


def _jsonable_row(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            value = None
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = str(value)
        out[str(key)] = value
    return out


def _row_result(row: BatchInputRow, judgment: JudgmentRow | None) -> RowResult:
    if judgment is None:
        status = row.status if row.status != DONE else ERROR  # a judgment deleted from History
        error = row.error if row.status != DONE else "Its judgment was deleted from History."
        return RowResult(row.position, row.row_number, dict(row.input_values), status, error)
    return RowResult(
        position=row.position, row_number=row.row_number, input_values=dict(row.input_values),
        status=judgment.status, error=None, judgment_id=judgment.id, score=judgment.score,
        reasoning=judgment.reasoning, highlights=list(judgment.highlights), spans=list(judgment.spans),
        distribution=judgment.distribution, expected_score=judgment.expected_score, confidence=judgment.confidence,
    )


def _export_columns(job: Job) -> list[str]:
    return [_input_column(column) for column in job.columns] + list(RESULT_COLUMNS)


def _input_column(column: str) -> str:
    """Input columns keep their names, except one that clashes with a result column ('score' -> 'input_score')."""
    return f"input_{column}" if column in RESULT_COLUMNS else column


def export_records(job: Job, results: Sequence[RowResult], *, nested: bool = True) -> list[dict[str, Any]]:
    """One record per row: the input's columns, then score, status, reasoning, highlights, spans, ...

    nested=False writes the lists (highlights, spans) and the distribution as JSON text, for CSV cells.
    """

    def cell(value: Any) -> Any:
        return value if nested or value is None else json.dumps(value, ensure_ascii=False)

    records = []
    for result in results:
        record: dict[str, Any] = {_input_column(c): result.input_values.get(c) for c in job.columns}
        record.update(
            score=result.score, status=result.status, reasoning=result.reasoning,
            highlights=cell(result.highlights), spans=cell(result.spans), distribution=cell(result.distribution),
            expected_score=result.expected_score, confidence=result.confidence, error=result.error,
            judgment_id=result.judgment_id,
        )
        records.append(record)
    return records
