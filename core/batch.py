"""Batch grading: a job grades every row of a CSV/JSONL file (or a Hugging Face dataset) and survives crashes.

A job and all its rows are written to the database before any grading starts. Each batch of rows
is graded, then its judgments and the rows' new status are committed in ONE transaction; a process
killed at any moment therefore leaves every row either done (with its judgment) or pending, and
running the job again grades exactly the pending rows: none twice, none lost.

The same command finds its job again: a job's key is the SHA-256 of the data, the rubric, the
column mapping and the judge settings. One runner at a time holds a job (its host, pid and a token);
a runner whose process is gone on this host is replaced at once, one elsewhere after LEASE_SECONDS.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
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

from core.errors import ContextTooLongError, GliderError, InputError, JudgeError
from core.grading import GradeRequest, GradeResult, grade_batch
from core.judge.base import DEFAULT_MAX_NEW_TOKENS, JudgeBackend
from core.judgments import JudgmentRow, judgment_row
from core.prompt import DEFAULT_TAGS, MODEL_OUTPUT, infer_scale
from core.store import Base, Store, UTCDateTime
from core.tables import RowError, Table, TableError, is_blank, read_table

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
_HF_DATASET = re.compile(r"\A(?P<name>[\w.-]+/[\w.-]+)(?::(?P<split>[\w.\[\]:%-]+))?\Z")


class JobBusyError(GliderError):
    """Another process is grading this job right now."""


# --------------------------------------------------------------------------------------------------
# ORM: the current shape of the tables migration 3 (core.store) creates.


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


class BatchRowRow(Base):
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
class JobSpec:
    """What to grade with: the rubric, the field tags in prompt order, and which column feeds each tag."""

    pass_criteria: str
    rubric: str
    tags: tuple[str, ...] = DEFAULT_TAGS
    mapping: Mapping[str, str] = field(default_factory=dict)  # tag -> column; unmapped tags use snake_case
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    name: str = ""

    def column_for(self, tag: str) -> str:
        """The input column that feeds `tag` ('MODEL OUTPUT' -> 'model_output' unless mapped)."""
        return self.mapping.get(tag) or column_name(tag)


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
# Inputs: rubric files, sources, rows


def column_name(tag: str) -> str:
    """'MODEL OUTPUT' -> 'model_output', the column name a tag reads from unless mapped."""
    return re.sub(r"\W+", "_", tag.strip().lower()).strip("_")


def load_rubric_file(path: str | Path) -> dict[str, Any]:
    """Read pass_criteria, rubric and optional tags from a YAML, JSON or TOML file; InputError when unusable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as error:
        raise InputError(f"There is no rubric file at {path}.") from error
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"Could not read the rubric file {path}: {error}.") from error
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise InputError(f"The rubric file {path.name} must end in .yaml, .yml, .json or .toml.")
    except InputError:
        raise
    except Exception as error:  # json, tomllib and yaml each raise their own parse error type
        raise InputError(f"The rubric file {path.name} is not valid {suffix[1:].upper()}: {error}") from error
    if not isinstance(data, dict):
        raise InputError(f"The rubric file {path.name} must hold a mapping with pass_criteria and rubric.")
    missing = [key for key in ("pass_criteria", "rubric")
               if not isinstance(data.get(key), str) or not data[key].strip()]
    if missing:
        raise InputError(f"The rubric file {path.name} needs text for: {', '.join(missing)}.")
    tags = data.get("tags", list(DEFAULT_TAGS))
    if not isinstance(tags, list) or not tags or not all(isinstance(tag, str) and tag.strip() for tag in tags):
        raise InputError(f"'tags' in {path.name} must be a list of field names such as ['CONTEXT', 'MODEL OUTPUT'].")
    infer_scale(data["rubric"])  # RubricError now, not after the data is loaded
    return {"pass_criteria": data["pass_criteria"], "rubric": data["rubric"], "tags": [tag.strip() for tag in tags]}


def read_source(source: str | Path) -> tuple[Table, str]:
    """(rows, SHA-256 identifying the data) of a file, or of a Hugging Face dataset 'owner/name[:split]'."""
    path = Path(source).expanduser()
    if path.exists() or not _HF_DATASET.match(str(source)):
        table = read_table(path)
        return table, _file_sha256(path)
    return _read_hf_dataset(str(source))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_hf_dataset(source: str) -> tuple[Table, str]:
    match = _HF_DATASET.match(source)
    assert match is not None
    name, split = match["name"], match["split"] or "train"
    try:
        import datasets
    except ImportError as error:
        raise TableError(
            f"{source!r} is not a file here; to grade a Hugging Face dataset install the datasets package "
            "(pip install datasets), or export the dataset to CSV/JSONL and pass that file."
        ) from error
    try:
        dataset = datasets.load_dataset(name, split=split)
    except Exception as error:  # offline, unknown name, gated: datasets raises many types
        raise TableError(
            f"Could not load the Hugging Face dataset {name!r} (split {split!r}): {type(error).__name__}: {error}. "
            "Offline machines need the data as a CSV or JSONL file."
        ) from error
    records = dataset.to_list()
    columns = list(dataset.column_names)
    table = Table(columns, [(number, dict(record)) for number, record in enumerate(records, 1)], [], [])
    fingerprint = getattr(dataset, "_fingerprint", "") or hashlib.sha256(
        json.dumps(records, default=str, sort_keys=True).encode()).hexdigest()
    return table, hashlib.sha256(f"hf:{name}:{split}:{fingerprint}".encode()).hexdigest()


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def row_fields(values: Mapping[str, Any], spec: JobSpec) -> tuple[list[list[str]], str | None]:
    """([[tag, text], ...] to grade, or an error saying why this row cannot be graded)."""
    fields: list[list[str]] = []
    for tag in spec.tags:
        value = values.get(spec.column_for(tag))
        if not is_blank(value) and _text(value).strip():
            fields.append([tag, _text(value)])
    # The text being graded must be there: MODEL OUTPUT, or the last field when the tags are custom.
    graded = MODEL_OUTPUT if MODEL_OUTPUT in spec.tags else spec.tags[-1]
    column = spec.column_for(graded)
    if column not in values:
        return fields, f"The column {column!r} (for {graded}) is missing from this row."
    if not any(tag == graded for tag, _ in fields):
        return fields, f"The column {column!r} (for {graded}) is empty."
    return fields, None


def _check_columns(table: Table, spec: JobSpec) -> None:
    """Refuse a mapping that names a column the data does not have, before creating the job."""
    absent = [f"{tag} -> {column!r}" for tag, column in spec.mapping.items() if column not in table.columns]
    unknown = [tag for tag in spec.mapping if tag not in spec.tags]
    if unknown:
        raise InputError(f"--map names tag(s) {', '.join(map(repr, unknown))}, which the rubric's tags "
                         f"({', '.join(spec.tags)}) do not have.")
    if absent:
        raise InputError(f"The data has no column for {'; '.join(absent)}. Its columns are: "
                         f"{', '.join(map(repr, table.columns))}.")
    if not any(spec.column_for(tag) in table.columns for tag in spec.tags):
        wanted = ", ".join(repr(spec.column_for(tag)) for tag in spec.tags)
        raise InputError(f"None of the columns {wanted} is in the data (its columns are "
                         f"{', '.join(map(repr, table.columns))}); map them with --map TAG=COLUMN.")


def job_key(source_sha256: str, spec: JobSpec, judge: Mapping[str, Any]) -> str:
    """The identity of a job: the same data, rubric, mapping and judge give the same key."""
    identity = {
        "source": source_sha256,
        "pass_criteria": spec.pass_criteria,
        "rubric": spec.rubric,
        "tags": list(spec.tags),
        "columns": {tag: spec.column_for(tag) for tag in spec.tags},
        "max_new_tokens": spec.max_new_tokens,
        "judge": dict(judge),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


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
        _check_columns(table, spec)
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
                Base.metadata.tables[BatchRowRow.__tablename__].insert(),
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
            session.execute(delete(BatchRowRow).where(BatchRowRow.job_id == job.id))
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
            select(BatchRowRow.status, func.count()).where(BatchRowRow.job_id == job_id).group_by(BatchRowRow.status)
        ).all())
        return JobProgress(job_id=job_id, status=job.status, total=job.total_rows, done=counts.get(DONE, 0),
                           errors=counts.get(ERROR, 0), message=job.message, **extra)

    def results(self, job_id: int, *, offset: int = 0, limit: int | None = None) -> list[RowResult]:
        """Every row of the job in input order, with its judgment where it has one."""
        query = (
            select(BatchRowRow, JudgmentRow)
            .outerjoin(JudgmentRow, JudgmentRow.id == BatchRowRow.judgment_id)
            .where(BatchRowRow.job_id == job_id)
            .order_by(BatchRowRow.position)
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
            row = session.get(BatchJobRow, job_id)
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
                select(BatchRowRow.id, BatchRowRow.fields)
                .where(BatchRowRow.job_id == job_id, BatchRowRow.status == PENDING)
                .order_by(BatchRowRow.position).limit(limit)
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
                    update(BatchRowRow).where(BatchRowRow.id == row_id, BatchRowRow.status == PENDING)
                    .values(updated_at=now, **values)
                ))
                if done:
                    changed.append(row_id)
            if not changed:
                return []
            rows = session.execute(
                select(BatchRowRow, JudgmentRow)
                .outerjoin(JudgmentRow, JudgmentRow.id == BatchRowRow.judgment_id)
                .where(BatchRowRow.id.in_(changed)).order_by(BatchRowRow.position)
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


def _row_result(row: BatchRowRow, judgment: JudgmentRow | None) -> RowResult:
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
