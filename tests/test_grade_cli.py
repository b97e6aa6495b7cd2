"""`python -m core grade` as users run it: a real process, the real tiny model, a real SQLite file, kill -9."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import TEACH_CRITERIA, TEACH_FIELDS, TEACH_RUBRIC

REPO = Path(__file__).resolve().parents[1]


def grade_command(data: Path, rubric: Path, out: Path, db: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "core", "grade", str(data), "--rubric", str(rubric), "--out", str(out),
            "--db", f"sqlite:///{db}", "--model", str(model), "--quantization", "none", "--device", "cpu", *extra]


def cli_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}


def run_cli(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def rubric_file(tmp_path: Path) -> Path:
    path = tmp_path / "rubric.json"
    path.write_text(json.dumps({"pass_criteria": TEACH_CRITERIA, "rubric": TEACH_RUBRIC,
                                "tags": ["CONTEXT", "MODEL OUTPUT"]}), encoding="utf-8")
    return path


def write_data(path: Path, count: int, *, empty: tuple[int, ...] = ()) -> Path:
    rows = []
    for i in range(count):
        output = "" if i in empty else (TEACH_FIELDS["MODEL OUTPUT"] if i == 0 else f"Paris is in France ({i}).")
        rows.append({"key": i, "context": TEACH_FIELDS["CONTEXT"], "model_output": output})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def row_states(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
        return dict(connection.execute("SELECT status, count(*) FROM batch_rows GROUP BY status").fetchall())


def test_help_lists_the_documented_options() -> None:
    result = run_cli([sys.executable, "-m", "core", "grade", "--help"])
    assert result.returncode == 0
    for option in ("--rubric", "--out", "--model", "--quantization", "--backend", "--db", "--batch-size", "--map",
                   "exit codes"):
        assert option in result.stdout


def test_unusable_input_exits_2_with_a_message(tmp_path: Path, rubric_file: Path, untrained_model_dir: Path) -> None:
    data = write_data(tmp_path / "data.jsonl", 2)
    db = tmp_path / "db.sqlite"
    bad_out = run_cli(grade_command(data, rubric_file, tmp_path / "out.xlsx", db, untrained_model_dir))
    assert bad_out.returncode == 2 and "--out must end in .csv or .jsonl" in bad_out.stderr
    no_scores = tmp_path / "r.yaml"
    no_scores.write_text("pass_criteria: P\nrubric: just words\n", encoding="utf-8")
    bad_rubric = run_cli(grade_command(data, no_scores, tmp_path / "out.csv", db, untrained_model_dir))
    assert bad_rubric.returncode == 2 and "error:" in bad_rubric.stderr and "Traceback" not in bad_rubric.stderr
    bad_map = run_cli(grade_command(data, rubric_file, tmp_path / "out.csv", db, untrained_model_dir,
                                    "--map", "MODEL OUTPUT=answer"))
    assert bad_map.returncode == 2 and "no column for MODEL OUTPUT -> 'answer'" in bad_map.stderr
    missing = run_cli(grade_command(tmp_path / "absent.csv", rubric_file, tmp_path / "out.csv", db,
                                    untrained_model_dir))
    assert missing.returncode == 2 and "There is no file" in missing.stderr


def test_a_model_that_cannot_load_exits_1(tmp_path: Path, rubric_file: Path) -> None:
    data = write_data(tmp_path / "data.jsonl", 2)
    result = run_cli(grade_command(data, rubric_file, tmp_path / "out.csv", tmp_path / "db.sqlite",
                                   tmp_path / "no-such-model"))
    assert result.returncode == 1
    assert "could not be loaded" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out.csv").exists()


def test_grades_a_file_with_the_real_model(tmp_path: Path, rubric_file: Path, trained_model_dir: Path) -> None:
    data = write_data(tmp_path / "data.jsonl", 5, empty=(3,))
    out, db = tmp_path / "results.jsonl", tmp_path / "db.sqlite"
    command = grade_command(data, rubric_file, out, db, trained_model_dir, "--batch-size", "2",
                            "--max-new-tokens", "120")
    result = run_cli(command)
    assert result.returncode == 3, result.stderr  # one row has no model output
    assert "1 row(s) could not be graded" in result.stderr
    frame = pd.read_json(out, lines=True)
    assert list(frame["key"]) == [0, 1, 2, 3, 4]
    assert frame["status"][3] == "error" and "is empty" in frame["error"][3]
    # The taught item gets the trained answer: score 1 with highlights located in the output.
    assert frame["score"][0] == 1 and frame["status"][0] == "ok"
    assert {"field": "MODEL OUTPUT", "start": 0, "end": 30, "phrase": "Paris is the capital of France"} in \
        frame["spans"][0]
    assert set(frame["status"]) <= {"ok", "repaired", "failed", "error"}
    # The same command again resumes a finished job: nothing is graded and the judge is not even loaded.
    again = run_cli(command)
    assert again.returncode == 3 and "Resuming job 1" in again.stderr and "Loading the judge" not in again.stderr
    assert pd.read_json(out, lines=True).equals(frame)


def test_kill_9_mid_run_then_resume_loses_and_repeats_nothing(
    tmp_path: Path, rubric_file: Path, trained_model_dir: Path
) -> None:
    total = 120
    data = write_data(tmp_path / "data.jsonl", total)
    out, db = tmp_path / "results.csv", tmp_path / "db.sqlite"
    command = grade_command(data, rubric_file, out, db, trained_model_dir, "--batch-size", "4",
                            "--max-new-tokens", "8", "--quiet")
    log = (tmp_path / "killed.log").open("w")
    process = subprocess.Popen(command, cwd=REPO, env=cli_env(), stdout=log, stderr=log)
    deadline = time.monotonic() + 240
    done_at_kill = 0
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if db.exists():
                try:
                    done_at_kill = row_states(db).get("done", 0)
                except sqlite3.OperationalError:  # tables not created yet
                    done_at_kill = 0
                if done_at_kill >= 12:
                    break
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
        log.close()
    assert process.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    before = row_states(db)
    assert 12 <= before.get("done", 0) < total, f"the run must be killed mid-way: {before}"
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        kept = dict(connection.execute("SELECT position, judgment_id FROM batch_rows WHERE status = 'done'"))

    resumed = run_cli(command)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{before['done']} of {total} rows done" in resumed.stderr
    with sqlite3.connect(db) as connection:
        judgments = connection.execute("SELECT count(*) FROM judgments").fetchone()[0]
        rows = dict(connection.execute("SELECT position, judgment_id FROM batch_rows WHERE status = 'done'"))
    assert judgments == total and len(rows) == total and len(set(rows.values())) == total
    assert all(rows[position] == judgment for position, judgment in kept.items())  # not graded again
    frame = pd.read_csv(out)
    assert list(frame["key"]) == list(range(total)) and frame["status"].isin(["ok", "repaired", "failed"]).all()


def test_sigterm_finishes_the_batch_stops_and_the_job_resumes(
    tmp_path: Path, rubric_file: Path, trained_model_dir: Path
) -> None:
    data = write_data(tmp_path / "data.jsonl", 60)
    out, db = tmp_path / "results.csv", tmp_path / "db.sqlite"
    command = grade_command(data, rubric_file, out, db, trained_model_dir, "--batch-size", "2",
                            "--max-new-tokens", "8", "--quiet")
    process = subprocess.Popen(command, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if db.exists() and row_states(db).get("done", 0) >= 4:
                break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Stopping after the current batch" in stderr and "Run the same command again to resume" in stderr
    assert not out.exists()
    with sqlite3.connect(db) as connection:
        status, message = connection.execute("SELECT status, message FROM batch_jobs").fetchone()
        done = connection.execute("SELECT count(*) FROM batch_rows WHERE status = 'done'").fetchone()[0]
    assert status == "stopped" and "resume" in message and 4 <= done < 60
    assert run_cli(command).returncode == 0 and len(pd.read_csv(out)) == 60
