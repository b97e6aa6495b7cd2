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


# Imported only where they are present, each behind an ImportError with advice (or only on Hugging Face Spaces).
OPTIONAL_IMPORTS = {"datasets", "llama_cpp", "spaces"}


def test_every_direct_dependency_is_declared() -> None:
    """Each third-party package that core/, webapp/ or app.py imports is listed in requirements.txt."""
    import ast
    import sys
    from importlib.metadata import packages_distributions

    modules = set()
    for path in [ROOT / "app.py", *sorted((ROOT / "core").rglob("*.py")), *sorted((ROOT / "webapp").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - {"core", "webapp"} - OPTIONAL_IMPORTS
    assert {"yaml", "tqdm", "gradio", "sqlalchemy"} <= third_party

    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    declared = {canonical(re.split(r"[\[<>=!~ ;]", line.strip(), maxsplit=1)[0])
                for line in (ROOT / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith(("#", "-"))}
    installed = packages_distributions()
    undeclared = sorted(module for module in third_party
                        if not {canonical(name) for name in installed.get(module, [module])} & declared)
    assert undeclared == []


def test_every_document_the_code_points_to_is_in_the_repository() -> None:
    """A comment or docstring that says 'see X.md' names a file a reader of this repository can open."""
    named = {(path.relative_to(ROOT).as_posix(), doc) for path in _shipped_texts()
             for doc in re.findall(r"[\w./-]*\w\.md\b", path.read_text())}
    assert ("core/judge/cpu_decode.py", "BENCHMARKS.md") in named  # the scan finds a known reference
    assert sorted((where, doc) for where, doc in named if not (ROOT / doc).is_file()) == []


def test_metric_labels_are_written_once() -> None:
    """Only core.agreement_labels spells a metric's display name (as given, in ASCII or in lower case)."""
    import ast

    from core.agreement_labels import METRIC_LABELS, ascii_label

    spellings = {form for key, label in METRIC_LABELS.items() for form in (label, ascii_label(key), label.lower())}
    home = ROOT / "core" / "agreement_labels.py"
    found = sorted((path.relative_to(ROOT).as_posix(), node.value) for path in _shipped_texts()
                   if path.suffix == ".py" and path != home for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Constant) and node.value in spellings)
    assert found == []
    assert "Spearman rho" in spellings and "weighted \u03ba (quadratic)" in spellings
