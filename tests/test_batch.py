"""Batch jobs (core.batch) on a SQLite file and on PostgreSQL (conftest.db_url): creation, row errors, running,
stopping, resuming, exporting."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select, update

from core.batch import (
    DONE,
    ERROR,
    FAILED,
    FINISHED,
    PENDING,
    STOPPED,
    BatchInputRow,
    BatchJobRow,
    BatchJobs,
    JobBusyError,
    JobSpec,
    column_name,
    load_rubric_file,
)
from core.errors import InputError, JudgeError, RubricError
from core.judgments import JudgmentRow
from core.store import Store
from core.tabular import TableError
from tests.fakes import ScriptedJudge
from tests.test_store import WriteLock, release_on_back_off

RUBRIC = "0: The MODEL OUTPUT is not faithful to the CONTEXT.\n1: The MODEL OUTPUT is faithful to the CONTEXT."
SPEC = JobSpec(pass_criteria="Is the MODEL OUTPUT faithful to the CONTEXT?", rubric=RUBRIC)
JUDGE = {"backend": "scripted", "model": "tests/scripted-judge"}


def write_jsonl(path: Path, rows: list[dict], broken_after: int | None = None) -> Path:
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    if broken_after is not None:
        lines.insert(broken_after, '{"context": "unterminated')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sample_rows(count: int) -> list[dict]:
    return [{"id": f"r{i}", "context": f"Fact number {i}.", "model_output": f"Claim number {i}."} for i in range(count)]


@pytest.fixture
def jobs(store: Store) -> BatchJobs:
    return BatchJobs(store)


def judgment_count(jobs: BatchJobs) -> int:
    with jobs.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(JudgmentRow)))


class FailingAfter(ScriptedJudge):
    """Grades `ok_calls` prompts, then fails like a judge whose server went away."""

    def __init__(self, ok_calls: int) -> None:
        super().__init__()
        self.ok_calls = ok_calls

    def generate(self, prompt: str, **kwargs):  # noqa: ANN003, ANN201
        if self.ok_calls <= 0:
            raise JudgeError("Could not reach the judge server (test).")
        self.ok_calls -= 1
        return super().generate(prompt, **kwargs)


# ---- inputs


def test_column_name_is_snake_case_of_the_tag() -> None:
    assert [column_name(t) for t in ("MODEL OUTPUT", "USER INPUT", "Gold-Answer ", "CONTEXT")] == [
        "model_output", "user_input", "gold_answer", "context"]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("r.yaml", "pass_criteria: Faithful?\nrubric: |\n  0: no\n  1: yes\ntags: [CONTEXT, MODEL OUTPUT]\n"),
        ("r.json", json.dumps({"pass_criteria": "Faithful?", "rubric": "0: no\n1: yes",
                               "tags": ["CONTEXT", "MODEL OUTPUT"]})),
        ("r.toml", 'pass_criteria = "Faithful?"\nrubric = """0: no\n1: yes"""\ntags = ["CONTEXT", "MODEL OUTPUT"]\n'),
    ],
)
def test_rubric_files_in_each_format(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    rubric = load_rubric_file(path)
    assert rubric["pass_criteria"] == "Faithful?"
    assert rubric["rubric"].strip() == "0: no\n1: yes"
    assert rubric["tags"] == ["CONTEXT", "MODEL OUTPUT"]


def test_rubric_file_tags_default_to_glider_fields(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"pass_criteria": "P", "rubric": "1: bad\n5: good"}), encoding="utf-8")
    assert load_rubric_file(path)["tags"] == ["CONTEXT", "USER INPUT", "MODEL OUTPUT", "GOLD ANSWER"]


@pytest.mark.parametrize(
    ("name", "text", "expected", "error"),
    [
        ("r.yaml", "pass_criteria: [unclosed", "not valid YAML", InputError),
        ("r.json", json.dumps({"rubric": "0: a\n1: b"}), "needs text for: pass_criteria", InputError),
        ("r.json", json.dumps({"pass_criteria": "P", "rubric": "no scores here"}), "score", RubricError),
        ("r.json", json.dumps({"pass_criteria": "P", "rubric": "0: a\n1: b", "tags": "CONTEXT"}), "must be a list",
         InputError),
        ("r.txt", "pass_criteria: P", "must end in .yaml", InputError),
        ("r.toml", "pass_criteria = ", "not valid TOML", InputError),
        ("r.json", "[1, 2]", "must hold a mapping", InputError),
    ],
)
def test_unusable_rubric_files_say_why(tmp_path: Path, name: str, text: str, expected: str, error: type) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(error, match=expected):
        load_rubric_file(path)


def test_missing_rubric_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no rubric file"):
        load_rubric_file(tmp_path / "absent.yaml")


# ---- opening a job


def test_open_stores_every_row_and_reports_bad_ones(jobs: BatchJobs, tmp_path: Path) -> None:
    rows = sample_rows(10)
    rows[2]["model_output"] = "   "
    del rows[5]["model_output"]
    data = write_jsonl(tmp_path / "data.jsonl", rows, broken_after=7)
    opened = jobs.open(data, SPEC, JUDGE)
    assert opened.created and opened.job.total_rows == 11
    assert [error.row for error in opened.row_errors] == [8]
    progress = jobs.progress(opened.job.id)
    assert (progress.done, progress.errors, progress.pending) == (0, 3, 8)
    results = jobs.results(opened.job.id)
    assert [r.row_number for r in results] == list(range(1, 12))
    by_row = {r.row_number: r for r in results}
    assert "is empty" in by_row[3].error and "is missing" in by_row[6].error
    assert "could not be read" in by_row[8].error
    assert all(r.status == PENDING for n, r in by_row.items() if n not in (3, 6, 8))


def test_open_again_finds_the_same_job(jobs: BatchJobs, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", sample_rows(3))
    first = jobs.open(data, SPEC, JUDGE)
    again = jobs.open(data, SPEC, JUDGE)
    assert not again.created and again.job.id == first.job.id
    other_judge = jobs.open(data, SPEC, {**JUDGE, "model": "another"})
    other_rubric = jobs.open(data, JobSpec(SPEC.pass_criteria, RUBRIC + "\n"), JUDGE)
    assert len({first.job.id, other_judge.job.id, other_rubric.job.id}) == 3
    write_jsonl(data, sample_rows(4))  # the data changed: a new job
    assert jobs.open(data, SPEC, JUDGE).job.id not in {first.job.id, other_judge.job.id, other_rubric.job.id}


def test_mapping_reads_other_columns(jobs: BatchJobs, tmp_path: Path) -> None:
    rows = [{"passage": f"Fact {i}.", "answer": f"Claim {i}."} for i in range(3)]
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    spec = JobSpec(SPEC.pass_criteria, RUBRIC, mapping={"CONTEXT": "passage", "MODEL OUTPUT": "answer"})
    judge = ScriptedJudge()
    job = jobs.open(data, spec, JUDGE).job
    jobs.run(job.id, judge)
    assert len(judge.prompts) == 3
    assert "Fact 1." in judge.prompts[1] and "Claim 1." in judge.prompts[1]


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [({"MODEL OUTPUT": "nope"}, "no column for MODEL OUTPUT -> 'nope'"),
     ({"SUMMARY": "answer"}, "names tag\\(s\\) 'SUMMARY'")],
)
def test_bad_mapping_is_refused_before_the_job_exists(jobs: BatchJobs, tmp_path: Path, mapping: dict,
                                                      expected: str) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", [{"answer": "x"}])
    with pytest.raises(InputError, match=expected):
        jobs.open(data, JobSpec(SPEC.pass_criteria, RUBRIC, mapping=mapping), JUDGE)
    assert jobs.list_jobs() == []


def test_data_without_any_expected_column(jobs: BatchJobs, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", [{"question": "q", "reply": "r"}])
    with pytest.raises(InputError, match="map them with --map"):
        jobs.open(data, SPEC, JUDGE)


def test_unreadable_data_is_a_table_error(jobs: BatchJobs, tmp_path: Path) -> None:
    (tmp_path / "bin.csv").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(TableError, match="binary"):
        jobs.open(tmp_path / "bin.csv", SPEC, JUDGE)
    with pytest.raises(TableError, match="no file"):
        jobs.open(tmp_path / "absent.csv", SPEC, JUDGE)


def test_csv_with_wrong_encoding_and_ragged_rows(jobs: BatchJobs, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes("context,model_output\nCaf\xe9 au lait,ok\nshort\ntoo,many,values\nfine,yes\n".encode("cp1252"))
    opened = jobs.open(data, SPEC, JUDGE)
    assert any("Windows-1252" in note for note in opened.notes)
    results = jobs.results(opened.job.id)
    assert [r.status for r in results] == [PENDING, ERROR, ERROR, PENDING]
    assert results[0].input_values["context"] == "Café au lait"


# ---- running


def test_run_grades_every_pending_row_once(jobs: BatchJobs, tmp_path: Path) -> None:
    rows = sample_rows(21)
    rows[4]["model_output"] = ""
    job = jobs.open(write_jsonl(tmp_path / "data.jsonl", rows), SPEC, JUDGE).job
    judge = ScriptedJudge()
    seen: list[tuple[int, int]] = []
    final = jobs.run(job.id, judge, batch_size=4, on_progress=lambda p, finished: seen.append((p.done, len(finished))))
    assert final.status == FINISHED and (final.done, final.errors, final.pending) == (20, 1, 0)
    assert len(judge.prompts) == 20 and judgment_count(jobs) == 20
    assert [done for done, _ in seen] == [4, 8, 12, 16, 20]
    assert all(count == 4 for _, count in seen)
    # Running a finished job again grades nothing.
    assert jobs.run(job.id, judge).done == 20 and len(judge.prompts) == 20
    results = jobs.results(job.id)
    assert [r.input_values["id"] for r in results] == [f"r{i}" for i in range(21)]
    assert {r.status for i, r in enumerate(results) if i != 4} == {"ok"}
    assert all(r.score == 1 and r.judgment_id for i, r in enumerate(results) if i != 4)
    assert len({r.judgment_id for r in results if r.judgment_id}) == 20


def test_judgments_of_a_job_carry_the_reproducibility_record(jobs: BatchJobs, tmp_path: Path) -> None:
    job = jobs.open(write_jsonl(tmp_path / "data.jsonl", sample_rows(2)), SPEC, JUDGE).job
    jobs.run(job.id, ScriptedJudge())
    stored = jobs.store.get_judgment(jobs.results(job.id)[0].judgment_id)
    assert stored.repro["backend"] == "scripted" and stored.repro["prompt_sha256"]
    assert stored.fields == {"CONTEXT": "Fact number 0.", "MODEL OUTPUT": "Claim number 0."}


def test_stop_between_batches_then_resume(jobs: BatchJobs, tmp_path: Path) -> None:
    job = jobs.open(write_jsonl(tmp_path / "data.jsonl", sample_rows(12)), SPEC, JUDGE).job
    judge = ScriptedJudge()
    batches = []
    stopped = jobs.run(job.id, judge, batch_size=5, on_progress=lambda p, f: batches.append(p.done),
                       should_stop=lambda: len(batches) >= 1)
    assert stopped.status == STOPPED and stopped.done == 5 and "resume" in stopped.message
    final = jobs.run(job.id, judge, batch_size=5)
    assert final.status == FINISHED and final.done == 12
    assert len(judge.prompts) == 12 and judgment_count(jobs) == 12


def test_a_failing_judge_keeps_what_was_graded(jobs: BatchJobs, tmp_path: Path) -> None:
    job = jobs.open(write_jsonl(tmp_path / "data.jsonl", sample_rows(10)), SPEC, JUDGE).job
    with pytest.raises(JudgeError, match="Could not reach"):
        jobs.run(job.id, FailingAfter(ok_calls=6), batch_size=4)
    progress = jobs.progress(job.id)
    assert progress.status == FAILED and progress.done == 6 and "judge failed" in progress.message
    assert judgment_count(jobs) == 6
    final = jobs.run(job.id, ScriptedJudge(), batch_size=4)
    assert final.status == FINISHED and final.done == 10 and judgment_count(jobs) == 10


def test_over_long_rows_become_row_errors(jobs: BatchJobs, tmp_path: Path) -> None:
    rows = sample_rows(5)
    rows[1]["model_output"] = "long " * 5000
    job = jobs.open(write_jsonl(tmp_path / "data.jsonl", rows), SPEC, JUDGE).job
    final = jobs.run(job.id, ScriptedJudge(max_prompt_chars=5000), batch_size=8)
    assert (final.status, final.done, final.errors) == (FINISHED, 4, 1)
    assert "characters" in jobs.results(job.id)[1].error


def test_a_live_runner_holds_the_job(jobs: BatchJobs, tmp_path: Path) -> None:
    job = jobs.open(write_jsonl(tmp_path / "data.jsonl", sample_rows(3)), SPEC, JUDGE).job
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = socket.gethostname()
        _hold(jobs, job.id, f"{host}:{sleeper.pid}:t0k", datetime.now(UTC))
        with pytest.raises(JobBusyError, match=f"process {sleeper.pid}"):
            jobs.run(job.id, ScriptedJudge())
        assert jobs.progress(job.id).done == 0
    finally:
        sleeper.kill()
        sleeper.wait()
    # Its process is gone: the next run takes over at once.
    assert jobs.run(job.id, ScriptedJudge()).done == 3


def test_a_silent_runner_elsewhere_is_replaced_after_the_lease(jobs: BatchJobs, tmp_path: Path) -> None:
    job = jobs.open(write_jsonl(tmp_path / "data.jsonl", sample_rows(2)), SPEC, JUDGE).job
    _hold(jobs, job.id, "another-host:4242:t0k", datetime.now(UTC))
    with pytest.raises(JobBusyError, match="another-host"):
        jobs.run(job.id, ScriptedJudge())
    _hold(jobs, job.id, "another-host:4242:t0k", datetime.now(UTC) - timedelta(hours=1))
    assert jobs.run(job.id, ScriptedJudge()).done == 2


def test_a_runner_that_lost_the_job_writes_nothing(jobs: BatchJobs, tmp_path: Path) -> None:
    job = jobs.open(write_jsonl(tmp_path / "data.jsonl", sample_rows(6)), SPEC, JUDGE).job

    def steal(progress, finished) -> None:  # noqa: ANN001 - another process takes the job after batch 1
        _hold(jobs, job.id, "another-host:1:zz", datetime.now(UTC))

    with pytest.raises(JobBusyError, match="taken over"):
        jobs.run(job.id, ScriptedJudge(), batch_size=3, on_progress=steal)
    assert jobs.progress(job.id).done == 3 and judgment_count(jobs) == 3


def _hold(jobs: BatchJobs, job_id: int, runner: str, at: datetime) -> None:
    with jobs.store.session(write=True) as session:
        session.execute(update(BatchJobRow).where(BatchJobRow.id == job_id)
                        .values(runner=runner, heartbeat_at=at, status="running"))


def test_forget_starts_over(jobs: BatchJobs, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", sample_rows(2))
    job = jobs.open(data, SPEC, JUDGE).job
    jobs.run(job.id, ScriptedJudge())
    assert jobs.forget(data, SPEC, JUDGE) is True
    assert jobs.forget(data, SPEC, JUDGE) is False
    with jobs.store.session() as session:
        assert session.scalar(select(func.count()).select_from(BatchInputRow)) == 0
    fresh = jobs.open(data, SPEC, JUDGE)
    assert fresh.created and jobs.progress(fresh.job.id).done == 0
    assert judgment_count(jobs) == 2  # earlier judgments stay in History


# SQLite only: another program holding a SQLite file's write lock (PostgreSQL locks rows, not the database).
def test_every_batch_write_waits_out_a_locked_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another program holds the write lock at each kind of batch write; Store.write's retry gets through."""
    path = tmp_path / "jobs.db"
    lock = WriteLock(path)
    backed_off = release_on_back_off(monkeypatch, lock)  # SQLite gives up after 50 ms; the back-off frees it
    try:
        jobs = BatchJobs(Store.from_path(path))
        data = write_jsonl(tmp_path / "data.jsonl", sample_rows(4))
        lock.take()
        job = jobs.open(data, SPEC, JUDGE).job  # create
        assert backed_off == [0]
        lock.take()
        # Taken again after every batch: the start, the second batch's results and the end each meet it.
        final = jobs.run(job.id, ScriptedJudge(), batch_size=2, on_progress=lambda p, f: lock.take())
        assert final.status == FINISHED and final.done == 4 and judgment_count(jobs) == 4
        assert backed_off == [0, 0, 0, 0]  # create, start, results of batch 2, finish
        lock.take()
        assert jobs.forget(data, SPEC, JUDGE) is True
        assert backed_off == [0] * 5
    finally:
        lock.close()


def test_bad_batch_size(jobs: BatchJobs, tmp_path: Path) -> None:
    job = jobs.open(write_jsonl(tmp_path / "data.jsonl", sample_rows(1)), SPEC, JUDGE).job
    with pytest.raises(InputError, match="batch size"):
        jobs.run(job.id, ScriptedJudge(), batch_size=0)


def test_unknown_job(jobs: BatchJobs) -> None:
    with pytest.raises(InputError, match="no batch job"):
        jobs.progress(99)


# ---- exporting


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_export_has_one_row_per_input_row_in_order(jobs: BatchJobs, tmp_path: Path, suffix: str) -> None:
    rows = [{**row, "score": i % 3} for i, row in enumerate(sample_rows(6))]  # a human score column
    rows[2]["model_output"] = ""
    job = jobs.open(write_jsonl(tmp_path / "data.jsonl", rows, broken_after=4), SPEC, JUDGE).job
    jobs.run(job.id, ScriptedJudge(answer=_answer_with_highlight("Claim number")))
    out = jobs.export(job.id, tmp_path / f"results{suffix}")
    frame = pd.read_csv(out, dtype=object, keep_default_na=False) if suffix == ".csv" else pd.read_json(out, lines=True)
    assert len(frame) == 7
    assert list(frame.columns[:4]) == ["id", "context", "model_output", "input_score"]
    assert {"score", "status", "reasoning", "highlights", "spans", "distribution", "error"} <= set(frame.columns)
    statuses = list(frame["status"])
    assert statuses == ["ok", "ok", "error", "ok", "error", "ok", "ok"]
    first_spans = frame["spans"][0] if suffix == ".jsonl" else json.loads(frame["spans"][0])
    assert first_spans == [{"field": "MODEL OUTPUT", "start": 0, "end": 12, "phrase": "Claim number"}]
    if suffix == ".csv":
        assert frame["input_score"][1] == "1" and frame["score"][0] == "1"
    else:
        assert frame["input_score"][1] == 1 and frame["highlights"][0] == ["Claim number"]


def test_export_refuses_other_formats(jobs: BatchJobs, tmp_path: Path) -> None:
    job = jobs.open(write_jsonl(tmp_path / "data.jsonl", sample_rows(1)), SPEC, JUDGE).job
    with pytest.raises(InputError, match=".csv or .jsonl"):
        jobs.export(job.id, tmp_path / "results.xlsx")


def test_store_is_at_schema_version_3(jobs: BatchJobs) -> None:
    assert jobs.store.schema_version() >= 3
    assert ("create_batch_jobs" in [name for _, name, _ in jobs.store.applied_migrations()])


def _answer_with_highlight(phrase: str) -> str:
    return (f"<reasoning>\n- It repeats a claim.\n</reasoning>\n<highlight>\n['{phrase}']\n</highlight>\n"
            "<score>\n1\n</score>")


def test_rows_done_and_error_are_never_pending_again(jobs: BatchJobs, tmp_path: Path) -> None:
    job = jobs.open(write_jsonl(tmp_path / "data.jsonl", sample_rows(4)), SPEC, JUDGE).job
    jobs.run(job.id, ScriptedJudge())
    with jobs.store.session() as session:
        statuses = set(session.scalars(select(BatchInputRow.status).where(BatchInputRow.job_id == job.id)))
    assert statuses == {DONE}


def test_reading_what_to_grade_needs_no_database() -> None:
    """core.batch_inputs (spec, rubric file, source, row fields) needs no database; core.batch re-exports it."""
    import core.batch
    import core.batch_inputs

    for name in ("JobSpec", "column_name", "load_rubric_file", "read_source", "row_fields", "job_key"):
        assert getattr(core.batch, name) is getattr(core.batch_inputs, name)
    code = "import sys, core.batch_inputs; print(sorted(m for m in ('core.store', 'sqlalchemy') if m in sys.modules))"
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
