"""The judgments repository: stored grades, their ORM row, and save / get / list / delete.

`core.store` owns the database (engine, sessions, migrations, the one retried write path); this module
owns what a judgment looks like there. `Judgments(store)` is the repository, and it is the
`core.grading.GradeSink` that `grade()` writes finished grades to. The `judgments` table itself is
created by migration 1 in core.migrations, which keeps its own frozen copy of the DDL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Float, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.prompt import MODEL_OUTPUT
from core.store import Base, Store, UTCDateTime

if TYPE_CHECKING:
    from core.grading import GradeResult

PREVIEW_CHARS = 80


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


# --------------------------------------------------------------------------------------------------
# ORM model: the *current* shape of the table. Migration 1 (core.migrations) holds its own frozen copy.


class JudgmentRow(Base):
    """One stored judgment (table `judgments`)."""

    __tablename__ = "judgments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # Plain, indexed copies of the reproducibility record, so History can filter without JSON paths.
    model_id: Mapped[str] = mapped_column(String(512), index=True, info={"label": "The judge's model id"})
    backend: Mapped[str] = mapped_column(String(64), index=True)
    prompt_sha256: Mapped[str] = mapped_column(String(64), index=True)
    # A JSON list of [tag, text] pairs: JSON objects are unordered in some databases (Postgres jsonb).
    fields: Mapped[list[list[str]]] = mapped_column(JSON)
    # Computed once at save time so the History list never has to load whole fields.
    preview: Mapped[str] = mapped_column(Text)
    pass_criteria: Mapped[str] = mapped_column(Text)
    rubric: Mapped[str] = mapped_column(Text)
    scale_min: Mapped[int] = mapped_column(Integer)
    scale_max: Mapped[int] = mapped_column(Integer)
    raw_output: Mapped[str] = mapped_column(Text)
    reasoning: Mapped[str | None] = mapped_column(Text)
    highlights: Mapped[list[str]] = mapped_column(JSON)
    score: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    problems: Mapped[list[str]] = mapped_column(JSON)
    spans: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    ungrounded: Mapped[list[str]] = mapped_column(JSON)
    # none_as_null: "no distribution" is SQL NULL, not the JSON text 'null'.
    distribution: Mapped[dict[str, float] | None] = mapped_column(JSON(none_as_null=True))
    distribution_mass: Mapped[float | None] = mapped_column(Float)
    expected_score: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    timings: Mapped[dict[str, float]] = mapped_column(JSON)
    warnings: Mapped[list[str]] = mapped_column(JSON)
    repro: Mapped[dict[str, Any]] = mapped_column(JSON)


# --------------------------------------------------------------------------------------------------
# The repository


class Judgments:
    """Stored judgments in `store`'s database: save (a GradeSink), get, list, count and delete."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def save_grade(self, result: GradeResult) -> int:
        """Store one finished grade with its reproducibility record; returns the new judgment id."""
        def work(session: Session) -> int:
            row = judgment_row(result)  # a fresh row on every attempt: a retried write starts clean
            session.add(row)
            session.flush()
            return row.id

        return self.store.write("save a judgment to", work)

    def get(self, judgment_id: int) -> StoredJudgment | None:
        """The stored judgment with this id, or None when there is none."""
        with self.store.session("read") as session:
            row = session.get(JudgmentRow, judgment_id)
            return None if row is None else stored_judgment(row)

    def summaries(self, limit: int = 100, offset: int = 0) -> list[JudgmentSummary]:
        """Summaries of stored judgments, newest first."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative.")
        query = (
            select(
                JudgmentRow.id,
                JudgmentRow.created_at,
                JudgmentRow.score,
                JudgmentRow.status,
                JudgmentRow.model_id,
                JudgmentRow.preview,
            )
            # id breaks ties between judgments saved within the same microsecond.
            .order_by(JudgmentRow.created_at.desc(), JudgmentRow.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self.store.session("read") as session:
            return [JudgmentSummary(*row) for row in session.execute(query)]

    def count(self) -> int:
        """How many judgments are stored."""
        with self.store.session("read") as session:
            return session.scalar(select(func.count()).select_from(JudgmentRow)) or 0

    def delete(self, judgment_id: int) -> bool:
        """Delete one judgment; False when no judgment had this id."""

        def work(session: Session) -> bool:
            row = session.get(JudgmentRow, judgment_id)
            if row is None:
                return False
            session.delete(row)
            return True

        return self.store.write("delete a judgment from", work)


# --------------------------------------------------------------------------------------------------
# Row <-> value


def judgment_row(result: GradeResult) -> JudgmentRow:
    """The ORM row of one finished grade (not yet added to a session): for callers that batch writes."""
    request, judgment, generation = result.request, result.judgment, result.generation
    fields = {str(tag): str(text) for tag, text in request.fields.items()}
    repro = _jsonable(dict(result.repro))
    distribution = generation.distribution
    status = judgment.status
    row = JudgmentRow(
        created_at=_utc(result.created_at),
        model_id=str(repro.get("model_id") or ""),
        backend=str(repro.get("backend") or ""),
        prompt_sha256=str(repro.get("prompt_sha256") or ""),
        fields=[[tag, text] for tag, text in fields.items()],
        preview=_preview(fields),
        pass_criteria=request.pass_criteria,
        rubric=request.rubric,
        scale_min=int(result.scale[0]),
        scale_max=int(result.scale[1]),
        raw_output=judgment.raw,
        reasoning=judgment.reasoning,
        highlights=list(judgment.highlights),
        score=judgment.score,
        status=str(getattr(status, "value", status)),
        problems=list(judgment.problems),
        spans=[
            {"field": span.field, "start": span.start, "end": span.end, "phrase": span.phrase}
            for span in result.spans
        ],
        ungrounded=list(result.ungrounded),
        distribution={str(k): float(v) for k, v in distribution.items()} if distribution else None,
        distribution_mass=generation.distribution_mass,
        expected_score=result.expected_score,
        confidence=result.confidence,
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        timings=_jsonable(dict(result.timings)),
        warnings=list(result.warnings),
        repro=repro,
    )
    return row


def stored_judgment(row: JudgmentRow) -> StoredJudgment:
    """The value a stored row stands for (call it inside the session that loaded the row)."""
    return StoredJudgment(
        id=row.id,
        created_at=row.created_at,
        fields={tag: text for tag, text in row.fields},
        pass_criteria=row.pass_criteria,
        rubric=row.rubric,
        scale=(row.scale_min, row.scale_max),
        raw_output=row.raw_output,
        reasoning=row.reasoning,
        highlights=list(row.highlights),
        score=row.score,
        status=row.status,
        problems=list(row.problems),
        spans=[dict(span) for span in row.spans],
        ungrounded=list(row.ungrounded),
        # JSON object keys are always strings: restore the integer score values.
        distribution={int(k): float(v) for k, v in row.distribution.items()} if row.distribution else None,
        distribution_mass=row.distribution_mass,
        expected_score=row.expected_score,
        confidence=row.confidence,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        timings=dict(row.timings),
        repro=dict(row.repro),
        warnings=list(row.warnings),
    )


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("GradeResult.created_at must be timezone-aware (use datetime.now(UTC)).")
    return value.astimezone(UTC)


def _jsonable(value: Any) -> Any:
    """A JSON-safe copy: tuples become lists, unknown objects (a torch dtype ...) their str()."""
    return json.loads(json.dumps(value, default=str))


def _preview(fields: Mapping[str, str]) -> str:
    """The graded output (or the first non-blank field), whitespace collapsed, cut to ~80 characters."""
    text = fields.get(MODEL_OUTPUT) or ""
    if not text.strip():
        text = next((t for t in fields.values() if t and t.strip()), "")
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1].rstrip() + "…"
