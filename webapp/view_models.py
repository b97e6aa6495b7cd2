"""Plain values the UI shows, built from a fresh GradeResult or a StoredJudgment (no HTML, no gradio).

Both sources become one `JudgmentView`, so the Grade tab and the History tab render a judgment the
same way. The helpers here also map between the four field slots of the form and a tag → text mapping,
and prepare what the study tabs show (column guesses, checked text selections, progress lines).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.errors import GliderError, InputError, RubricError
from core.grading import FieldSpan
from core.prompt import DEFAULT_TAGS, infer_scale, rubric_scores
from core.spans import locate

if TYPE_CHECKING:
    from core.grading import GradeResult
    from core.judgments import StoredJudgment

SLOTS = len(DEFAULT_TAGS)

log = logging.getLogger(__name__)


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
            model=_model_line(result.repro),
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


def format_duration(seconds: float | None) -> str:
    """A duration for progress lines: "45 s", "3 min 20 s", "2 h 5 min"; "" when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:  # None, NaN or negative: nothing to say
        return ""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


# --- studies: plain helpers for the Studies, Label and Agreement tabs ----------------------------


def failure_message(error: Exception) -> str:
    """The message a user sees for an error: core's own messages as they are, anything else summarised."""
    if isinstance(error, GliderError):
        return str(error)
    log.exception("Unexpected error while handling a request")
    return f"Something went wrong ({type(error).__name__}: {error}). The details are in the server log."


def snake_case(tag: str) -> str:
    """A field tag as a column name would spell it: "MODEL OUTPUT" -> "model_output"."""
    return re.sub(r"[^0-9a-z]+", "_", tag.casefold()).strip("_")


def guess_column(tag: str, columns: Sequence[str]) -> str | None:
    """The column that holds a field: its snake_case name, or the tag itself in any case; None if none does."""
    wanted = snake_case(tag)
    for column in columns:
        if snake_case(str(column)) == wanted:
            return str(column)
    return None


def parse_tags(text: str) -> tuple[str, ...]:
    """Field tags typed one per line or separated by commas; blanks and repeats dropped, order kept."""
    tags = (part.strip() for part in re.split(r"[,\n]", text or ""))
    return tuple(dict.fromkeys(tag for tag in tags if tag))


def scale_values(scale: Sequence[int]) -> list[int]:
    """Every score of an inclusive (low, high) scale."""
    return list(range(int(scale[0]), int(scale[1]) + 1))


def progress_line(labelled_by_me: int, total: int, complete: int, target: int, mine: int | None = None) -> str:
    """One line of labelling progress, e.g. "12 / 100 labelled by you · 40 of 100 items have 3 of 3 labels";
    `mine`: the items assigned to this user when that is not all of them (a split study: "12 / 40 ...")."""
    return (f"{labelled_by_me} / {total if mine is None else mine} labelled by you \u00b7 {complete} of {total} "
            f"items have {target} of {target} label{'s' if target != 1 else ''}")


def place_selection(fields: Mapping[str, str], raw: str | None) -> dict[str, Any]:
    """Check a text selection sent by the page and return it as a span {"field", "start", "end"}.

    The page sends JSON {"field", "start", "end", "text"} with code-point offsets into the field's
    displayed text. The browser's text can differ from the stored one (HTML turns CRLF into LF), so
    when the slice at the offsets is not the selected text, the occurrence nearest to the offsets is
    used; a selection found nowhere in the field is refused with a message.
    """
    if not raw or not raw.strip():
        raise InputError("Select some text in one of the fields first, then press Mark selection.")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InputError("The selection could not be read; select the text again.") from error
    if not isinstance(data, dict):
        raise InputError("The selection could not be read; select the text again.")
    if data.get("error"):
        raise InputError(str(data["error"]))
    field_name, text = data.get("field"), data.get("text")
    if not isinstance(field_name, str) or field_name not in fields:
        raise InputError("Select text inside one field of the item (a selection may not cross two fields).")
    if not isinstance(text, str) or not text.strip():
        raise InputError("The selection is empty; select some words in a field first.")
    content = fields[field_name]
    try:
        start, end = int(data.get("start", -1)), int(data.get("end", -1))
    except (TypeError, ValueError):
        start, end = -1, -1
    if 0 <= start < end <= len(content) and content[start:end] == text:
        return {"field": field_name, "start": start, "end": end}
    candidates = [text, text.replace("\n", "\r\n")]
    found: list[tuple[int, int]] = []
    for candidate in candidates:
        position = content.find(candidate)
        while position != -1:
            found.append((position, position + len(candidate)))
            position = content.find(candidate, position + 1)
    if not found:
        raise InputError(f"The selected text was not found in {field_name}; select it again.")
    best = min(found, key=lambda span: abs(span[0] - start))
    return {"field": field_name, "start": best[0], "end": best[1]}


def add_span(spans: Sequence[Mapping[str, Any]], span: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The spans with one more, sorted by field order of appearance and offset; an exact repeat is not added."""
    result = [dict(s) for s in spans]
    if not any(s.get("field") == span["field"] and s.get("start") == span["start"] and s.get("end") == span["end"]
               for s in result):
        result.append(dict(span))
    return result
