"""Three `python app.py` processes on one PostgreSQL database, as a team deployment runs them behind a proxy.

16 annotators, spread over the three processes, label one 200-item study (k = 3) through the Label tab's own
events (sign-in cookie, Gradio queue, as a browser sends them) for a bounded time. Half-way, one process is
killed with SIGKILL; its annotators sign in on another process and go on. Asserted: no error response, every
label a client saw confirmed is stored exactly once (those confirmed by the killed process included), no item
holds more than k labels; and a sign-in taken by one process is not known to another (why the proxy is sticky).
The figures (labels, errors, p50/p95 of a label round) are printed; with GLIDER_MULTIPROC_RESULTS=<file.json>
they are also written there (bench/results/<machine>/team-deployment.json, rendered into BENCHMARKS.md).

The run ends at GLIDER_MULTIPROC_SECONDS (default 60) or when every annotator has given ROUNDS labels, whichever
comes first. The app processes start without a judge (labelling needs none): `--backend openai` pointed at a
port nothing listens on, which the banner reports as failed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from core.store import Store
from core.studies import ADMIN, AnnotationRow, Studies, StudySpec
from tests.net import free_port
from tests.test_load import Session, dependency_index, percentile, shown_item
from tests.webapp_helpers import FAITHFULNESS_CRITERIA, PASSWORD

pytestmark = pytest.mark.load

ROOT = Path(__file__).resolve().parent.parent
PROCESSES, ANNOTATORS, ITEMS, OVERLAP = 3, 16, 200, 3
SECONDS = float(os.environ.get("GLIDER_MULTIPROC_SECONDS", "60"))
# At most this many labels per annotator: 16 x 25 = 400 of the study's 600 places, so the queue never reaches
# its end, where items whose open places are all claimed are offered again (by design, see Studies.next_item)
# and may end above k. Below that end, a label beyond k is a lost claim race between processes.
ROUNDS = 25
VICTIM = 0  # the process killed half-way


@dataclass
class Tally:
    """What the clients saw: confirmed labels (annotator, item, process, before the kill?), latencies, errors."""

    confirmed: list[tuple[str, int, int, bool]] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)
    moves: list[float] = field(default_factory=list)  # seconds from losing a process to the next item elsewhere
    errors: list[str] = field(default_factory=list)
    killed: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def _start_app(url: str, port: int, judge_port: int, log: Path, data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "GLIDER_DATA_DIR": str(data_dir),
           "GLIDER_DB": url}
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), "--backend", "openai",
             "--base-url", f"http://127.0.0.1:{judge_port}/v1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )


def _wait_listening(processes: list[subprocess.Popen[str]], ports: list[int], logs: list[Path]) -> None:
    deadline = time.monotonic() + 240  # three Gradio apps importing at once on a 2-core machine
    waiting = set(range(len(ports)))
    while waiting and time.monotonic() < deadline:
        for index in sorted(waiting):
            if processes[index].poll() is not None:
                pytest.fail(f"app.py #{index} exited with {processes[index].returncode}:\n{logs[index].read_text()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", ports[index])) == 0:
                    waiting.discard(index)
        time.sleep(0.5)
    if waiting:
        pytest.fail("app.py did not start listening:\n" + "\n".join(logs[i].read_text() for i in waiting))


@pytest.fixture
def team(postgres_url: str, tmp_path: Path) -> Iterator[tuple[str, int, list[int], list[subprocess.Popen[str]]]]:
    """The study in a fresh PostgreSQL database and three app.py processes serving it: (url, study, ports, procs)."""
    with Store(postgres_url) as store:
        studies = Studies(store, password_cost=16)  # scrypt's cost kept low: tests only
        ada = studies.create_user("ada", PASSWORD, role=ADMIN)
        for n in range(ANNOTATORS):
            studies.create_user(f"user{n:02d}", PASSWORD)
        study = studies.create_study(ada, StudySpec(
            name="Team", pass_criteria=FAITHFULNESS_CRITERIA, rubric="1: bad\n2: poor\n3: fair\n4: good\n5: great",
            tags=("CONTEXT", "MODEL OUTPUT"), overlap_target=OVERLAP, blind=False))
        source = tmp_path / "items.csv"
        source.write_text("context,output\n" + "".join(f"Context {n}.,Output {n}.\n" for n in range(ITEMS)),
                          encoding="utf-8")
        report = studies.import_items(ada, study.id, source, {"CONTEXT": "context", "MODEL OUTPUT": "output"})
        assert (report.added, report.errors) == (ITEMS, [])
    ports, judge_port = [free_port() for _ in range(PROCESSES)], free_port()
    logs = [tmp_path / f"app{index}.log" for index in range(PROCESSES)]
    processes = [_start_app(postgres_url, port, judge_port, log, tmp_path)
                 for port, log in zip(ports, logs, strict=True)]
    try:
        _wait_listening(processes, ports, logs)
        yield postgres_url, study.id, ports, processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def annotate(name: str, home: int, ports: list[int], study_id: int, deadline: float, tally: Tally,
             dependencies: list[dict[tuple[str, str], dict[str, Any]]]) -> None:
    """Sign in on process `home` and label until the deadline (or ROUNDS labels); when the killed process drops
    the connection, sign in on the next live process and go on where the database says."""
    process, turn, lost_at = home, 0, None
    while turn < ROUNDS and time.monotonic() < deadline:
        session = None
        try:
            session = Session(f"http://127.0.0.1:{ports[process]}", name, dependencies[process])
            item = shown_item(session.event("gl-label-study", "change", [study_id, None]))
            if lost_at is not None:
                tally.moves.append(time.perf_counter() - lost_at)
                lost_at = None
            while item is not None and turn < ROUNDS and time.monotonic() < deadline:
                turn += 1
                before_kill = not tally.killed.is_set()
                started = time.perf_counter()
                outputs = session.event("gl-label-submit", "click", [str(1 + turn % 5), f"{name} on #{item}", None])
                seconds = time.perf_counter() - started
                text = json.dumps(outputs)
                if "Saved your score" not in text or f"item #{item}" not in text:
                    tally.errors.append(f"{name} on process {process}: submit of #{item} said {text[:300]}")
                    return
                with tally.lock:
                    tally.rounds.append(seconds)
                    tally.confirmed.append((name, item, process, before_kill))
                item = shown_item(outputs)
            return  # the deadline, the round limit, or nothing left for this annotator
        except Exception as error:  # noqa: BLE001 - every failure is counted, except the killed process's
            if process == VICTIM and tally.killed.is_set():
                lost_at = time.perf_counter()
                process = (home + 1 + turn % (PROCESSES - 1)) % PROCESSES  # one of the others, spread out
                continue
            tally.errors.append(f"{name} on process {process}: {type(error).__name__}: {error}")
            return
        finally:
            if session is not None:
                session.close()


def test_three_app_processes_label_one_postgresql_study_and_survive_a_killed_one(
    team: tuple[str, int, list[int], list[subprocess.Popen[str]]],
) -> None:
    url, study_id, ports, processes = team
    dependencies = [dependency_index(f"http://127.0.0.1:{port}", "ada") for port in ports]
    names = [f"user{n:02d}" for n in range(ANNOTATORS)]
    homes = {name: n % PROCESSES for n, name in enumerate(names)}
    tally = Tally()
    load_at_start = os.getloadavg()[0]
    started = time.monotonic()
    deadline = started + SECONDS
    with ThreadPoolExecutor(ANNOTATORS) as pool:
        futures = [pool.submit(annotate, name, homes[name], ports, study_id, deadline, tally, dependencies)
                   for name in names]
        # Half-way: at half the time, or when half the labels the round limit allows are in, whichever comes first,
        # so the killed process's annotators still have labels to give elsewhere on a fast machine too.
        while time.monotonic() < started + SECONDS / 2 and len(tally.confirmed) < ANNOTATORS * ROUNDS // 2:
            time.sleep(0.1)
        at_kill = {name: sum(1 for who, *_ in tally.confirmed if who == name) for name in names}
        tally.killed.set()  # before the signal: a connection it drops from now on is the kill, not an error
        processes[VICTIM].send_signal(signal.SIGKILL)
        processes[VICTIM].wait(timeout=30)
        for future in futures:
            future.result(timeout=SECONDS + 600)
    elapsed = time.monotonic() - started

    with Store(url) as store:
        studies = Studies(store)
        ids = {name: user.id for name in names if (user := studies.get_user(name)) is not None}
        by_id = {user_id: name for name, user_id in ids.items()}
        with store.session("read") as session:
            server_version = session.execute(text("SHOW server_version")).scalar_one()
            stored = [(by_id[annotator], item) for annotator, item in session.execute(
                select(AnnotationRow.annotator_id, AnnotationRow.item_id)
                .where(AnnotationRow.study_id == study_id)).all()]
    per_item: dict[int, int] = {}
    for _, item in stored:
        per_item[item] = per_item.get(item, 0) + 1
    confirmed = [(name, item) for name, item, _, _ in tally.confirmed]
    by_victim = [(name, item) for name, item, process, before in tally.confirmed if process == VICTIM and before]
    victims = [name for name in names if homes[name] == VICTIM]
    unconfirmed = set(stored) - set(confirmed)  # stored while the process died, before its answer came back
    figures = {
        "processes": PROCESSES, "annotators": ANNOTATORS, "items": ITEMS, "overlap": OVERLAP,
        "seconds": round(elapsed, 1), "labels_stored": len(stored), "labels_confirmed": len(confirmed),
        "confirmed_by_killed_process": len(by_victim), "stored_unconfirmed": len(unconfirmed),
        "errors": len(tally.errors),
        "round_p50_ms": round(statistics.median(tally.rounds) * 1000) if tally.rounds else None,
        "round_p95_ms": round(percentile(tally.rounds, 0.95) * 1000) if tally.rounds else None,
        "round_max_ms": round(max(tally.rounds) * 1000) if tally.rounds else None,
        "move_to_another_process_p50_s": round(statistics.median(tally.moves), 2) if tally.moves else None,
        "labels_per_second": round(len(stored) / elapsed, 1),
        "machine": f"{_cpu_model()}, {os.cpu_count()} logical CPUs", "postgresql": server_version,
        "load_average_at_start": round(load_at_start, 2),
        "measured": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    print("three app.py processes, one PostgreSQL database:", json.dumps(figures))
    if os.environ.get("GLIDER_MULTIPROC_RESULTS"):
        Path(os.environ["GLIDER_MULTIPROC_RESULTS"]).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")

    assert tally.errors == []
    assert processes[VICTIM].returncode == -signal.SIGKILL
    assert all(process.poll() is None for index, process in enumerate(processes) if index != VICTIM)
    assert len(confirmed) == len(set(confirmed)) and len(stored) == len(set(stored))  # once per annotator and item
    assert set(confirmed) <= set(stored)  # every confirmed label is stored, those of the killed process included
    assert by_victim and set(by_victim) <= set(stored)
    # Only a label in flight when its process died may be stored without its annotator having seen it: one each.
    assert {name for name, _ in unconfirmed} <= set(victims) and len(unconfirmed) <= len(victims)
    # The killed process's annotators went on elsewhere, from where the database had them.
    going_on = [name for name in victims if at_kill[name] < ROUNDS - 1]  # those with labels left to give
    assert going_on and len(going_on) <= len(tally.moves) <= len(victims)
    assert all(any(name == victim and not before for name, _, _, before in tally.confirmed) for victim in going_on)
    assert len(stored) < ITEMS * OVERLAP  # the queue's end was not reached, so k is a hard limit here
    assert max(per_item.values()) <= OVERLAP, sorted(per_item.items(), key=lambda kv: -kv[1])[:10]
    # Why the proxy must be sticky (README, Team deployment): a sign-in is known only to the process that took it.
    with httpx.Client(timeout=60) as browser:
        signed = browser.post(f"http://127.0.0.1:{ports[1]}/login", data={"username": "ada", "password": PASSWORD})
        assert signed.is_success and browser.cookies
        assert browser.get(f"http://127.0.0.1:{ports[1]}/config").status_code == 200
        assert browser.get(f"http://127.0.0.1:{ports[2]}/config").status_code == 401
