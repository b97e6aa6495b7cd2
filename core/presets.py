"""Rubric presets shipped in assets/presets.json.

CONTRACT STUB — the value type and function signature are fixed; the body is to be written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Preset:
    key: str  # stable identifier, e.g. "faithfulness"
    name: str  # shown in the picker, e.g. "Faithfulness to context (0-1)"
    description: str
    pass_criteria: str
    rubric: str
    example: dict[str, str]  # field tag -> text, a worked example one click away


def load_presets(path: Path | None = None) -> list[Preset]:
    raise NotImplementedError
