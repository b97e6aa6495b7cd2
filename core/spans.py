"""Find GLIDER's highlight phrases in the user's original text, as character offsets.

Offsets index the original Python str (code points, end exclusive), so a renderer can slice the text
it was given. Matching ignores case and treats any run of whitespace as equal to any other, but it is
done by a regex over the original text, never over a lowered or case-folded copy: 'ß'.casefold() is
'ss' and 'İ'.lower() has two code points, so a copy's indices would drift from the original's.

Phrases are matched as substrings (no word boundaries), because GLIDER quotes fragments of text.
Case-insensitivity is Python's per-character IGNORECASE, so "strasse" does not match "Straße", and
there is no Unicode normalization: a precomposed "é" does not match "e" + combining acute.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol


@dataclass(frozen=True, order=True)
class Span:
    """One occurrence of a phrase: text[start:end] is where `phrase` (as the model wrote it) was found."""

    start: int
    end: int
    phrase: str


@dataclass(frozen=True)
class Segment:
    """A piece of text with every phrase that covers it; `phrases == ()` means plain text."""

    start: int
    end: int
    phrases: tuple[str, ...]


class Located(Protocol):
    """Anything with a span's offsets and phrase (a Span, or grading's per-field FieldSpan)."""

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...

    @property
    def phrase(self) -> str: ...


# Quotes a model may wrap around a phrase, opening → closing.
_QUOTE_PAIRS = {
    '"': '"', "'": "'", "`": "`",
    "\u201c": "\u201d", "\u2018": "\u2019", "\u201e": "\u201c", "\u00ab": "\u00bb",
}


def phrase_pattern(phrase: str) -> re.Pattern[str] | None:
    """A regex matching the phrase case-insensitively with any whitespace run for each of its own; None if blank."""
    pieces = phrase.split()  # splits on the same Unicode whitespace that \s matches
    if not pieces:
        return None
    return re.compile(r"\s+".join(re.escape(piece) for piece in pieces), re.IGNORECASE)


def _variants(phrase: str) -> Iterator[str]:
    """The phrase, then the phrase without one pair of surrounding quotes (if it had them)."""
    yield phrase
    stripped = phrase.strip()
    if len(stripped) > 2 and _QUOTE_PAIRS.get(stripped[0]) == stripped[-1]:
        yield stripped[1:-1]


def _find(text: str, phrase: str) -> list[Span]:
    for variant in _variants(phrase):
        pattern = phrase_pattern(variant)
        if pattern is None:
            return []
        # finditer gives non-overlapping matches left to right: "aa" is found once in "aaa", at 0.
        found = [Span(match.start(), match.end(), phrase) for match in pattern.finditer(text)]
        if found:
            return found
    return []


def locate(text: str, phrases: Iterable[str]) -> list[Span]:
    """Every occurrence of every non-blank phrase in text (case- and whitespace-insensitive), sorted."""
    spans: list[Span] = []
    for phrase in dict.fromkeys(phrases):  # a phrase given twice is searched once
        if isinstance(phrase, str):
            spans.extend(_find(text, phrase))
    return sorted(spans, key=lambda span: (span.start, span.end, span.phrase))


def ungrounded(phrases: Iterable[str], spans: Iterable[Located]) -> list[str]:
    """The non-blank phrases, in input order and without repeats, that no span was found for."""
    found = {span.phrase for span in spans}
    return [p for p in dict.fromkeys(phrases) if isinstance(p, str) and p.strip() and p not in found]


def merge(spans: Iterable[Located]) -> list[Segment]:
    """Cut (possibly overlapping) spans into sorted, non-overlapping segments, each with the phrases covering it."""
    ordered = sorted(
        (span for span in spans if 0 <= span.start < span.end), key=lambda s: (s.start, s.end, s.phrase)
    )
    bounds = sorted({offset for span in ordered for offset in (span.start, span.end)})
    merged: list[Segment] = []
    active: list[Located] = []
    upcoming = iter(ordered)
    pending = next(upcoming, None)
    for start, end in pairwise(bounds):
        while pending is not None and pending.start <= start:
            active.append(pending)
            pending = next(upcoming, None)
        active = [span for span in active if span.end > start]
        if not active:
            continue
        # Phrases in the order their spans start, so the outermost highlight comes first.
        phrases = tuple(dict.fromkeys(span.phrase for span in active))
        previous = merged[-1] if merged else None
        if previous is not None and previous.end == start and set(previous.phrases) == set(phrases):
            merged[-1] = Segment(previous.start, end, previous.phrases)
        else:
            merged.append(Segment(start, end, phrases))
    return merged


def segments(text: str, spans: Iterable[Located]) -> list[Segment]:
    """Partition all of text into consecutive segments; highlighted ones carry their phrases, the rest ()."""
    size = len(text)
    pieces: list[Segment] = []
    position = 0
    # Spans that do not fit the text belong to some other text: they are left out, not clipped.
    for segment in merge(span for span in spans if span.end <= size):
        if segment.start > position:
            pieces.append(Segment(position, segment.start, ()))
        pieces.append(segment)
        position = segment.end
    if position < size:
        pieces.append(Segment(position, size, ()))
    return pieces
