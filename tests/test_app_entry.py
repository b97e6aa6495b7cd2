"""`python app.py` for real: the entry point started as a process with a trained tiny judge, driven over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.store import Store
from tests.conftest import TEACH_CRITERIA, TEACH_FIELDS, TEACH_RUBRIC
from tests.net import SLOW_MACHINE, free_port
from webapp.main import parse_args

ROOT = Path(__file__).resolve().parent.parent


def _start(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "GLIDER_DATA_DIR": str(tmp_path)}
    with (tmp_path / "app.log").open("w") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{(tmp_path / 'app.log').read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, port
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"app.py did not start listening:\n{(tmp_path / 'app.log').read_text()}")


def _wait_for_judge(client, timeout: float = 120) -> dict:  # noqa: ANN001
    """Poll /status until the background load has finished (ready or failed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.predict(api_name="/status")
        if status["state"] != "loading":
            return status
        time.sleep(0.5)
    pytest.fail("the judge was still loading after two minutes")


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def test_app_py_grades_with_a_local_model_and_stores(trained_model_dir: Path, tmp_path: Path) -> None:
    from gradio_client import Client

    db = tmp_path / "app.db"
    process, port = _start(["--model", str(trained_model_dir), "--quantization", "none", "--db", f"sqlite:///{db}"],
                           tmp_path)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, httpx_kwargs=SLOW_MACHINE)
        status = _wait_for_judge(client)
        assert status["state"] == "ready" and status["judge"]["quantization"] == "none", status
        result = client.predict(
            TEACH_FIELDS["CONTEXT"], "", TEACH_FIELDS["MODEL OUTPUT"], "", TEACH_CRITERIA, TEACH_RUBRIC,
            api_name="/grade",
        )
    finally:
        _stop(process)
    assert result["score"] == 1 and result["status"] == "ok"
    assert set(result["distribution"]) == {"0", "1"} and result["distribution"]["1"] > 0.5
    for span in result["spans"]:
        text = TEACH_FIELDS[span["field"]]
        assert text[span["start"] : span["end"]].lower() == span["phrase"].lower()
    stored = Store(f"sqlite:///{db}").get_judgment(result["judgment_id"])
    assert stored is not None and stored.score == 1 and stored.repro["model_id"] == str(trained_model_dir)
    log = (tmp_path / "app.log").read_text()
    assert "Judge ready" in log and "quantization" in log
    # The writing speed was measured at start, and the banner's notes carry the same figure as the log.
    [line] = [note for note in status["judge"]["notes"] if "(measured at start)" in note]
    assert line.startswith("Writes ") and line in log


def test_app_py_starts_without_a_model_and_explains(tmp_path: Path) -> None:
    from gradio_client import Client

    process, port = _start(["--model", str(tmp_path / "missing-model")], tmp_path)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, httpx_kwargs=SLOW_MACHINE)
        status = _wait_for_judge(client)
        assert status["state"] == "failed" and "does not exist" in status["error"]
        with pytest.raises(Exception, match="does not exist"):
            client.predict("", "", "An answer.", "", "Is it good?", "0: no\n1: yes", api_name="/grade")
    finally:
        _stop(process)
    assert (tmp_path / "glider-studio.db").exists()  # the default database lives in GLIDER_DATA_DIR


def test_flags_fall_back_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIDER_MODEL", "/models/glider")
    monkeypatch.setenv("GLIDER_QUANTIZATION", "int8")
    monkeypatch.setenv("GLIDER_DB", "sqlite:///x.db")
    monkeypatch.setenv("GLIDER_PORT", "9999")
    args = parse_args([])
    assert (args.model, args.quantization, args.db, args.port) == ("/models/glider", "int8", "sqlite:///x.db", 9999)
    args = parse_args(["--model", "m", "--quantization", "none", "--port", "1234"])
    assert (args.model, args.quantization, args.port) == ("m", "none", 1234)
