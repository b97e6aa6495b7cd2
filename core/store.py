"""Storage of judgments through SQLAlchemy 2.x (SQLite file by default, any SQLAlchemy URL works).

CONTRACT STUB — the value types and method signatures below are fixed; the bodies are to be written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.grading import GradeResult


@dataclass(frozen=True)
class JudgmentSummary:
    """One row of the History list."""

    id: int
    created_at: datetime
    score: int | None
    status: str
    model_id: str
    preview: str  # the first ~80 characters of the graded output field (or first non-empty field)


@dataclass(frozen=True)
class StoredJudgment:
    """A judgment as stored: everything needed to show it again or reproduce it."""

    id: int
    created_at: datetime
    fields: dict[str, str]  # tag -> text, in the original order
    pass_criteria: str
    rubric: str
    scale: tuple[int, int]
    raw_output: str
    reasoning: str | None
    highlights: list[str]
    score: int | None
    status: str  # ok | repaired | failed
    problems: list[str]
    spans: list[dict[str, Any]]  # each {"field", "start", "end", "phrase"}
    ungrounded: list[str]
    distribution: dict[int, float] | None
    distribution_mass: float | None
    expected_score: float | None
    confidence: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    timings: dict[str, float] = field(default_factory=dict)
    repro: dict[str, Any] = field(default_factory=dict)  # backend, model_id, revision, quantization, ...
    warnings: list[str] = field(default_factory=list)


class Store:
    """Owns the engine; every read and write opens and commits its session here."""

    def __init__(self, url: str) -> None:
        raise NotImplementedError

    def save_grade(self, result: GradeResult) -> int:
        raise NotImplementedError

    def get_judgment(self, judgment_id: int) -> StoredJudgment | None:
        raise NotImplementedError

    def list_judgments(self, limit: int = 100, offset: int = 0) -> list[JudgmentSummary]:
        raise NotImplementedError
