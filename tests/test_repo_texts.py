"""Texts users copy and run (README, error advice, CI scripts) name commands that exist and behave."""

from __future__ import annotations

import re
from pathlib import Path

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
