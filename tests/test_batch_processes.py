"""Two OS processes asked to run the same batch job at the same moment, on PostgreSQL and on SQLite: the runner
lease (core.batch) lets one of them grade, the other is told the job is busy, and no row is graded twice.

Each runner is `python -m tests.batch_runner` (the scripted judge, which writes down every row it grades). Both
start on one signal, and each holds its read of the job row for a second before writing the lease: without a
row lock (SELECT ... FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE) both would read "no runner" and both grade.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from core.batch import FINISHED, BatchJobs
from core.store import Store
from tests.batch_runner import BUSY
from tests.test_batch import JUDGE, SPEC, judgment_count, sample_rows, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
ROWS = 24
HOLD_SECONDS = 1.0


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_two_processes_never_grade_a_row_of_one_job_twice(database: str, tmp_path: Path) -> None:
    with Store(database) as store:
        job = BatchJobs(store).open(write_jsonl(tmp_path / "data.jsonl", sample_rows(ROWS)), SPEC, JUDGE).job
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    go = tmp_path / "go"
    runners = []
    for name in ("a", "b"):
        args = [database, str(job.id), str(tmp_path / f"graded-{name}.txt"), str(tmp_path / f"ready-{name}"), str(go),
                str(HOLD_SECONDS)]
        runners.append(subprocess.Popen([sys.executable, "-m", "tests.batch_runner", *args], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{name}").exists() for name in ("a", "b")):
        assert all(runner.poll() is None for runner in runners), [runner.communicate() for runner in runners]
        assert time.monotonic() < deadline, "the runners did not get ready in two minutes"
        time.sleep(0.05)
    go.write_text("go", encoding="utf-8")
    outcomes = []
    for runner in runners:
        out, err = runner.communicate(timeout=180)
        assert runner.returncode in (0, BUSY), err
        outcomes.append((runner.returncode, json.loads(out.strip().splitlines()[-1])))

    assert sorted(code for code, _ in outcomes) == [0, BUSY], outcomes  # one graded, one was told it is busy
    [(_, busy)] = [outcome for outcome in outcomes if outcome[0] == BUSY]
    [(_, finished)] = [outcome for outcome in outcomes if outcome[0] == 0]
    assert "is being graded by process" in busy["message"]
    assert finished == {"outcome": FINISHED, "done": ROWS}
    graded = Counter(line for name in ("a", "b") if (tmp_path / f"graded-{name}.txt").exists()
                     for line in (tmp_path / f"graded-{name}.txt").read_text(encoding="utf-8").split())
    assert graded == Counter({str(n): 1 for n in range(ROWS)})  # every row graded, none twice, by either process
    with Store(database) as store:
        jobs = BatchJobs(store)
        assert jobs.progress(job.id).done == ROWS and judgment_count(jobs) == ROWS
