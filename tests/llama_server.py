"""llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`) on a GGUF file, for tests.

Started as a subprocess on a free port of 127.0.0.1, ready once GET /v1/models lists the model, stopped
(SIGTERM, then SIGKILL) by `stop()`. Its output goes to a log file that `log()` returns, for failure messages.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.net import free_port

START_TIMEOUT = 120.0  # seconds; the tiny judge is listed in 1-4 s on a busy 2-core machine


# What `python -m llama_cpp.server` imports beyond llama-cpp-python: its [server] extra.
SERVER_EXTRAS = ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings", "yaml")


def server_extras_missing() -> list[str]:
    """The server's extra modules that are not installed (found without importing them)."""
    return [name for name in SERVER_EXTRAS if importlib.util.find_spec(name) is None]


class LlamaServer:
    """`python -m llama_cpp.server --model GGUF --host 127.0.0.1 --port N [flags]`, started at once."""

    def __init__(self, model: Path, log_path: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
                   "--host", "127.0.0.1", "--port", str(self.port), *flags]
        started = time.monotonic()
        with open(log_path, "wb") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            self._wait(started + START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def _wait(self, deadline: float) -> None:
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as answer:
                    if answer.status == 200 and json.load(answer).get("data"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not list its model in {START_TIMEOUT:.0f} s:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        """The server's output so far (its last 6,000 characters)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-6000:]

    def stop(self) -> None:
        """Stop the server and wait for it to exit."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
