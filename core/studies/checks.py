"""Validation of what admins and annotators hand in: tags, scores, spans, comments, times, item identity.

Each check returns the clean value or raises StudyInputError with a message a user can act on.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.errors import InputError, StudyInputError
from core.prompt import check_tag

MAX_EXTERNAL_ID = 512  # characters of an item's own id (items.external_id)


class DuplicateItemError(StudyInputError):
    """The study already has an item with these fields: a copy would be labelled and counted twice."""

    def __init__(self, message: str, *, item_id: int, external_id: str | None) -> None:
        super().__init__(message)
        self.item_id = item_id  # the item already in the study
        self.external_id = external_id


def check_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise StudyInputError(f"The {what} must be a whole number; got {value!r}.")
    return int(value)


def check_id(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StudyInputError(f"There is no {what} with id {value!r}.")
    return value


def check_score(score: object, scale: tuple[int, int]) -> int:
    value = check_int(score, "score")
    if not scale[0] <= value <= scale[1]:
        raise StudyInputError(f"The score {value} is outside this study's scale {scale[0]}-{scale[1]}.")
    return value


def check_tags(tags: Iterable[str]) -> list[str]:
    """The study's field tags, each checked by the prompt's own rule (core.prompt.check_tag), none twice."""
    if isinstance(tags, str):
        raise StudyInputError("Tags must be a list of names such as ('CONTEXT', 'MODEL OUTPUT'), not one string.")
    names: list[str] = []
    for tag in tags:
        try:
            name = check_tag(tag)
        except InputError as error:
            raise StudyInputError(str(error)) from error
        if name in names:
            raise StudyInputError(f"Field tag {name!r} appears twice.")
        names.append(name)
    if not names:
        raise StudyInputError("A study needs at least one field tag, such as 'MODEL OUTPUT'.")
    return names


def check_spans(spans: Sequence[Mapping[str, Any]], fields: Mapping[str, str]) -> list[dict[str, Any]]:
    """Validated {"field", "start", "end"} spans, sorted and without duplicates."""
    if isinstance(spans, (str, bytes)) or not isinstance(spans, Iterable):
        raise StudyInputError("Spans must be a list of {'field', 'start', 'end'} objects.")
    checked: list[tuple[str, int, int]] = []
    for number, span in enumerate(spans, 1):
        if not isinstance(span, Mapping) or not {"field", "start", "end"} <= set(span):
            raise StudyInputError(f"Span {number} must have 'field', 'start' and 'end'; got {span!r}.")
        tag = span["field"]
        if tag not in fields:
            raise StudyInputError(f"Span {number} names the field {tag!r}, which this item does not have.")
        start, end = check_int(span["start"], "span start"), check_int(span["end"], "span end")
        length = len(fields[tag])
        if not 0 <= start < end <= length:
            raise StudyInputError(
                f"Span {number} ({start}-{end}) is outside the {tag} text, which has {length} characters "
                "(need 0 <= start < end <= length)."
            )
        checked.append((tag, start, end))
    order = {tag: position for position, tag in enumerate(fields)}
    unique = sorted(set(checked), key=lambda s: (order[s[0]], s[1], s[2]))
    return [{"field": tag, "start": start, "end": end} for tag, start, end in unique]


ItemKey = tuple[tuple[str, str], ...]


def item_key(pairs: Iterable[Sequence[str]]) -> ItemKey:
    """What makes two items of a study the same item: the same text in the same fields.

    Line endings (CRLF from a spreadsheet, LF from a form) and whitespace around a field's text count
    as equal: they only record where the text was copied from, and an annotator cannot see them, so
    two such items would be labelled as one and counted twice. Whitespace inside the text counts: a
    line break or an indent can change what it says (code, lists, verse), and the Label tab shows it.
    """
    return tuple((tag, text.replace("\r\n", "\n").replace("\r", "\n").strip()) for tag, text in pairs)


def describe_item(item_id: int, external_id: str | None) -> str:
    return f"item #{item_id}" + (f" (id {external_id!r})" if external_id is not None else "")


def check_comment(comment: object) -> str:
    if not isinstance(comment, str):
        raise StudyInputError("The comment must be text.")
    return comment


def check_seconds(seconds: object) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not math.isfinite(float(seconds)):
        raise StudyInputError(f"The time spent must be a number of seconds; got {seconds!r}.")
    if seconds < 0:
        raise StudyInputError("The time spent cannot be negative.")
    return float(seconds)


def check_json(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as error:
        raise StudyInputError(f"The {what} must be JSON data (text, numbers, lists, objects): {error}.") from error
