"""Plain values the UI shows, built from a fresh GradeResult or a StoredJudgment (no HTML, no gradio).

Both sources become one `JudgmentView`, so the Grade tab and the History tab render a judgment the
same way. The helpers here also map between the four field slots of the form and a tag → text mapping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.errors import InputError, RubricError
from core.grading import FieldSpan
from core.prompt import DEFAULT_TAGS, infer_scale, rubric_scores
from core.spans import locate

if TYPE_CHECKING:
    from core.grading import GradeResult
    from core.store import StoredJudgment

SLOTS = len(DEFAULT_TAGS)


@dataclass(frozen=True)
class JudgmentView:
    """Everything one rendered judgment shows, independent of where it came from."""

    judgment_id: int | None
    created_at: datetime | None
    fields: dict[str, str]
    pass_criteria: str
    rubric: str
    scale: tuple[int, int]
    score: int | None
    status: str
    problems: tuple[str, ...]
    reasoning: str | None
    highlights: tuple[str, ...]
    spans: tuple[FieldSpan, ...]
    ungrounded: tuple[str, ...]
    # Ungrounded phrases that do occur in the pass criteria or rubric: the model quoted the instructions.
    in_instructions: frozenset[str]
    distribution: dict[int, float] | None
    expected_score: float | None
    confidence: float | None
    raw_output: str
    warnings: tuple[str, ...] = ()
    model: str = ""
    api_json: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_result(cls, result: GradeResult) -> JudgmentView:
        """The view of a grade that has just finished."""
        request = result.request
        judgment = result.judgment
        return cls(
            judgment_id=result.judgment_id,
            created_at=result.created_at,
            fields=dict(request.fields),
            pass_criteria=request.pass_criteria,
            rubric=request.rubric,
            scale=tuple(result.scale),  # type: ignore[arg-type]
            score=judgment.score,
            status=judgment.status,
            problems=tuple(judgment.problems),
            reasoning=judgment.reasoning,
            highlights=tuple(judgment.highlights),
            spans=tuple(result.spans),
            ungrounded=tuple(result.ungrounded),
            in_instructions=_in_instructions(result.ungrounded, request.pass_criteria, request.rubric),
            distribution=result.generation.distribution,
            expected_score=result.expected_score,
            confidence=result.confidence,
            raw_output=judgment.raw,
            warnings=tuple(result.warnings),
            model=_model_line(result.backend),
            api_json=result.to_dict(),
        )

    @classmethod
    def from_stored(cls, stored: StoredJudgment) -> JudgmentView:
        """The view of a judgment reopened from the store."""
        spans = tuple(
            FieldSpan(str(s["field"]), int(s["start"]), int(s["end"]), str(s["phrase"])) for s in stored.spans
        )
        return cls(
            judgment_id=stored.id,
            created_at=stored.created_at,
            fields=dict(stored.fields),
            pass_criteria=stored.pass_criteria,
            rubric=stored.rubric,
            scale=(int(stored.scale[0]), int(stored.scale[1])),
            score=stored.score,
            status=stored.status,
            problems=tuple(stored.problems),
            reasoning=stored.reasoning,
            highlights=tuple(stored.highlights),
            spans=spans,
            ungrounded=tuple(stored.ungrounded),
            in_instructions=_in_instructions(stored.ungrounded, stored.pass_criteria, stored.rubric),
            distribution=dict(stored.distribution) if stored.distribution else None,
            expected_score=stored.expected_score,
            confidence=stored.confidence,
            raw_output=stored.raw_output,
            warnings=tuple(stored.warnings),
            model=_model_line(stored.repro),
        )


def _in_instructions(phrases: Sequence[str], pass_criteria: str, rubric: str) -> frozenset[str]:
    """The phrases found in the pass criteria or rubric, matched the same way highlights are."""
    found: set[str] = set()
    for text in (pass_criteria, rubric):
        if phrases and text:
            found.update(span.phrase for span in locate(text, list(phrases)))
    return frozenset(found)


def _model_line(repro: Mapping[str, Any]) -> str:
    parts = [repro.get("model_id"), repro.get("backend"), repro.get("quantization"), repro.get("device")]
    return " · ".join(str(p) for p in parts if p)


def request_fields(tags: Sequence[str], texts: Sequence[str | None]) -> dict[str, str]:
    """The form's slots as an ordered tag → text mapping; two filled fields may not share a tag."""
    fields: dict[str, str] = {}
    for raw_tag, raw_text in zip(tags, texts, strict=True):
        tag, text = (raw_tag or "").strip(), raw_text or ""
        if tag in fields:
            if text.strip() and fields[tag].strip():
                raise InputError(f"Two fields are both tagged {tag!r}; give each field its own tag.")
            if not text.strip():
                continue  # an empty duplicate adds nothing
        fields[tag] = text
    return fields


def fill_slots(fields: Mapping[str, str]) -> list[tuple[str, str]]:
    """Place a tag → text mapping into the form's four slots.

    A default tag goes to its own slot; other tags fill the free slots in order. Unused slots get
    their default tag and no text. More than four fields: the extra ones are dropped (the caller warns).
    """
    slots: list[tuple[str, str] | None] = [None] * SLOTS
    others: list[tuple[str, str]] = []
    for tag, text in fields.items():
        if tag in DEFAULT_TAGS and slots[DEFAULT_TAGS.index(tag)] is None:
            slots[DEFAULT_TAGS.index(tag)] = (tag, text)
        else:
            others.append((tag, text))
    for item in others:
        free = next((i for i, slot in enumerate(slots) if slot is None), None)
        if free is None:
            break
        slots[free] = item
    used = {slot[0] for slot in slots if slot is not None}
    spare = iter(tag for tag in DEFAULT_TAGS if tag not in used)
    return [slot if slot is not None else (next(spare, ""), "") for slot in slots]


def describe_scale(rubric: str) -> str:
    """The scale the rubric defines, as the read-only Scale box shows it, or why it defines none."""
    try:
        low, high = infer_scale(rubric)
    except RubricError as error:
        return str(error)
    named = ", ".join(str(score) for score in rubric_scores(rubric))
    return f"{low}\u2013{high} (scores named in the rubric: {named})"


def format_time(moment: datetime | None) -> str:
    """A stored timestamp as UTC text for tables and cards."""
    if moment is None:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
