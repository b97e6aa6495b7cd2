"""Faults: the app killed with SIGKILL while labels are being submitted, a read-only database, a full disk
and a judge that fails to load. The database must open afterwards, nothing committed may be lost, and
the parts that do not need the judge keep working. (SIGKILL during a batch job, then resume: see
tests/test_grade_cli.py::test_kill_9_mid_run_then_resume.)
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import httpx
import pytest
from sqlalchemy import event

from core.errors import StorageError
from core.grading import GradeRequest, grade
from core.store import Store
from core.studies import Studies, StudySpec
from tests.fakes import ScriptedJudge
from tests.test_load import Session, dependency_index, shown_item
from tests.webapp_helpers import FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, PASSWORD, build, free_port, handler
from webapp import Services

ROOT = Path(__file__).resolve().parent.parent
REQUEST = GradeRequest({"CONTEXT": "Paris is the capital of France.", "MODEL OUTPUT": "Paris."},
                       FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC)


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


@contextmanager
def app_process(db: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python app.py` on a free port with a judge that cannot load (a model folder that does not exist)."""
    port = free_port()
    env = {**os.environ, "GLIDER_DB": f"sqlite:///{db}", "PYTHONUNBUFFERED": "1"}
    with log.open("a") as sink:
        server = subprocess.Popen([sys.executable, "app.py", "--backend", "transformers", "--model",
                                   str(db.parent / "no-such-model"), "--port", str(port)],
                                  stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/config", timeout=5).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, log.read_text()
            time.sleep(0.3)
        yield base, server
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=60)


@pytest.fixture
def study_db(tmp_path: Path) -> tuple[Path, int]:
    db = tmp_path / "glider-studio.db"
    store = Store(f"sqlite:///{db}")
    studies = Studies(store, password_cost=16)
    ada = studies.create_user("ada", PASSWORD, "admin")
    studies.create_user("ann", PASSWORD, "annotator")
    study = studies.create_study(ada, StudySpec(name="Kill", pass_criteria=FAITHFULNESS_CRITERIA,
                                                rubric="1: bad\n2: poor\n3: fair\n4: good\n5: great",
                                                tags=("CONTEXT", "MODEL OUTPUT"), overlap_target=1, blind=False))
    for n in range(200):
        studies.add_item(ada, study.id, {"CONTEXT": f"Context {n}.", "MODEL OUTPUT": f"Output {n}."})
    store.close()
    return db, study.id


def labels_in(db: Path) -> list[tuple[int, int, str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT item_id, score, comment FROM annotations ORDER BY item_id").fetchall()


def test_sigkill_during_label_submits_loses_no_committed_label(study_db: tuple[Path, int], tmp_path: Path) -> None:
    db, study_id = study_db
    log = tmp_path / "app.log"
    confirmed: list[int] = []
    with app_process(db, log) as (base, server):
        dependencies = dependency_index(base, "ada")
        session = Session(base, "ann", dependencies)
        item = shown_item(session.event("gl-label-study", "change", [study_id, None]))
        killer = threading.Timer(2.0, lambda: os.kill(server.pid, signal.SIGKILL))
        killer.start()
        try:
            while item is not None:
                outputs = session.event("gl-label-submit", "click", ["3", f"ann on #{item}", None])
                assert f"item #{item}" in str(outputs)
                confirmed.append(item)
                item = shown_item(outputs)
        except (httpx.HTTPError, AssertionError, RuntimeError):
            pass  # the server died under this request
        finally:
            killer.join()
            session.close()
        assert server.wait(timeout=30) == -signal.SIGKILL
    assert 0 < len(confirmed) < 200, "the kill should land in the middle of the submits"
    assert integrity(db) == "ok"
    stored = labels_in(db)
    stored_items = [row[0] for row in stored]
    assert set(confirmed) <= set(stored_items), "a label the page saw saved was lost"
    assert len(stored_items) == len(set(stored_items)) and len(stored) - len(confirmed) in (0, 1)
    assert all(comment == f"ann on #{item}" and score == 3 for item, score, comment in stored)

    # Restarted on the same file, ann carries on where she was, and nothing she labelled comes back.
    with app_process(db, log) as (base, _):
        session = Session(base, "ann", dependency_index(base, "ada"))
        try:
            outputs = session.event("gl-label-study", "change", [study_id, None])
            following = shown_item(outputs)
            assert following is not None and following not in stored_items
            saved = session.event("gl-label-submit", "click", ["4", "after the restart", None])
            assert f"item #{following}" in str(saved)
        finally:
            session.close()
    assert len(labels_in(db)) == len(stored) + 1 and integrity(db) == "ok"
    print(f"killed after {len(confirmed)} confirmed labels; {len(stored)} stored; all confirmed ones kept")


def test_a_judge_that_fails_to_load_leaves_labelling_and_reports_working(study_db: tuple[Path, int],
                                                                         tmp_path: Path) -> None:
    db, study_id = study_db
    with app_process(db, tmp_path / "app.log") as (base, _):
        with httpx.Client(timeout=60) as http:
            assert http.post(f"{base}/login", data={"username": "ada", "password": PASSWORD}).is_success
            status = http.post(f"{base}/gradio_api/call/status", json={"data": []}).json()["event_id"]
            answer = http.get(f"{base}/gradio_api/call/status/{status}").text
            assert '"failed"' in answer or '"loading"' in answer
        dependencies = dependency_index(base, "ada")
        ann = Session(base, "ann", dependencies)
        ada = Session(base, "ada", dependencies)
        try:
            item = shown_item(ann.event("gl-label-study", "change", [study_id, None]))
            assert item is not None
            assert f"item #{item}" in str(ann.event("gl-label-submit", "click", ["5", "", None]))
            report = ada.event("gl-agree-run", "click", [study_id, "annotators", 0.2, 0.9, None])  # as the page sends
            shown = str(report)
            assert "gl-message-error" not in shown and "1 annotator" in shown, shown[:2000]
        finally:
            ann.close()
            ada.close()


def test_a_read_only_database_gives_a_clear_error_and_stays_intact(tmp_path: Path) -> None:
    db = tmp_path / "glider-studio.db"
    writable = Store(f"sqlite:///{db}")
    grade(ScriptedJudge(), REQUEST, writable)
    writable.close()
    before = db.read_bytes()
    read_only = Store(f"sqlite:///file:{db}?mode=ro&uri=true")
    try:
        assert read_only.count_judgments() == 1  # reading still works
        with pytest.raises(StorageError, match="read-only"):
            grade(ScriptedJudge(), REQUEST, read_only)
        services = Services(store=read_only, presets=[], judge=ScriptedJudge())
        with pytest.raises(gr.Error, match="read-only"):
            handler(build(services), "grade")("Paris is the capital of France.", "", "Paris.", "",
                                                  FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC)
    finally:
        read_only.close()
    assert integrity(db) == "ok" and db.read_bytes() == before


def test_a_full_disk_gives_a_clear_error_and_keeps_what_was_saved(tmp_path: Path) -> None:
    db = tmp_path / "glider-studio.db"
    store = Store(f"sqlite:///{db}")
    with sqlite3.connect(db) as connection:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]

    @event.listens_for(store.engine, "connect")
    def _small_disk(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # SQLite's own size cap fails a write exactly as a full disk does (SQLITE_FULL).
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 12}")

    store.engine.dispose()
    judge = ScriptedJudge(answer=ScriptedJudge().answer + " " + "padding " * 300)
    saved = 0
    with pytest.raises(StorageError) as raised:
        for _ in range(1000):
            grade(judge, REQUEST, store)
            saved += 1
    message = str(raised.value)
    assert "full" in message and "Traceback" not in message, message
    assert 0 < saved < 1000
    event.remove(store.engine, "connect", _small_disk)
    store.engine.dispose()
    assert store.count_judgments() == saved  # every grade before the failure is there, the failed one is not
    grade(ScriptedJudge(), REQUEST, store)  # room again: it works again
    assert store.count_judgments() == saved + 1
    store.close()
    assert integrity(db) == "ok"
