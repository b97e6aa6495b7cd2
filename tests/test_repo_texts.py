"""Texts users copy and run (README, error advice, CI scripts) name commands that exist and behave."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _shipped_texts() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "core").rglob("*.py")), *sorted((ROOT / "webapp").rglob("*.py"))]


def test_no_text_advises_the_removed_huggingface_cli() -> None:
    """The pinned huggingface_hub ships `hf` (`hf download ...`); `huggingface-cli` no longer exists there."""
    offenders = [str(path.relative_to(ROOT)) for path in _shipped_texts() if "huggingface-cli" in path.read_text()]
    assert offenders == []
    assert "hf download PatronusAI/glider --local-dir ./glider" in (ROOT / "README.md").read_text()


def test_ci_installs_debian_packages_without_recommends() -> None:
    scripts = [ROOT / ".ci" / "run", *sorted((ROOT / "scripts").iterdir())]
    installs = [line for path in scripts if path.is_file()
                for line in path.read_text().splitlines() if re.search(r"^\s*apt-get\s+install\b", line)]
    assert installs, "the CI script installs Chromium with apt-get"
    assert all("--no-install-recommends" in line for line in installs), installs


def test_running_the_tests_leaves_the_tracked_screenshots_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's screenshots in assets/ are rewritten only on request (GLIDER_UPDATE_SCREENSHOTS=1)."""
    pytest.importorskip("playwright.sync_api")
    from tests import test_browser, test_browser_batch, test_browser_study
    from tests.test_browser import ASSETS, UPDATE_SCREENSHOTS, screenshot_path

    updating = os.environ.get(UPDATE_SCREENSHOTS) == "1"  # as when the modules were imported
    for module in (test_browser, test_browser_batch, test_browser_study):
        assert (module.SCREENSHOT.parent == ASSETS) is updating, module.__name__
    monkeypatch.delenv(UPDATE_SCREENSHOTS, raising=False)
    assert screenshot_path("screenshot-grade.png").parent != ASSETS
    monkeypatch.setenv(UPDATE_SCREENSHOTS, "1")
    assert screenshot_path("screenshot-grade.png") == ASSETS / "screenshot-grade.png"
    # Every test that writes a screenshot gets its path from screenshot_path, never assets/ directly.
    writers = [path for path in sorted((ROOT / "tests").glob("test_*.py")) if ".screenshot(path=" in path.read_text()]
    assert writers and all("screenshot_path(" in path.read_text() for path in writers)
    assert "GLIDER_UPDATE_SCREENSHOTS=1" in (ROOT / "README.md").read_text()


def test_every_core_command_a_text_names_exists() -> None:
    """`python -m core NAME` in the README, the code or the tests names a registered sub-command."""
    from core.cli import build_parser

    commands = next(action for action in build_parser()._actions if action.dest == "command")
    registered = set(commands.choices)
    texts = [*_shipped_texts(), *sorted((ROOT / "tests").rglob("*.py"))]
    named = {(path.relative_to(ROOT).as_posix(), name) for path in texts
             for name in re.findall(r"python -m core ([a-z][a-z-]*)", path.read_text())}
    assert {name for _, name in named} >= {"grade", "agreement", "create-admin"}, named
    assert sorted(entry for entry in named if entry[1] not in registered) == []
