"""locate / ungrounded / merge / segments: offsets into the original text, Unicode included."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from itertools import pairwise

import pytest

from core.spans import Segment, Span, locate, merge, phrase_pattern, segments, ungrounded


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def assert_grounded(text: str, spans: Iterable[Span]) -> None:
    """Every span's slice of the original text is its phrase, up to case and whitespace (and quotes)."""
    for span in spans:
        assert 0 <= span.start < span.end <= len(text)
        found = _norm(text[span.start : span.end])
        assert found in (_norm(span.phrase), _norm(span.phrase.strip()[1:-1])), (span, found)


def assert_partition(text: str, pieces: list[Segment], spans: list[Span]) -> None:
    """Segments cover [0, len(text)) in order, without gaps or overlaps, each with exactly its covering phrases."""
    assert [(p.start, p.end) for p in pieces] == list(pairwise([0] + [p.end for p in pieces]))
    assert (pieces[0].start, pieces[-1].end) == (0, len(text)) if text else pieces == []
    for piece in pieces:
        assert piece.start < piece.end
        assert len(set(piece.phrases)) == len(piece.phrases)
        for offset in range(piece.start, piece.end):  # every character is covered by exactly these phrases
            assert set(piece.phrases) == {s.phrase for s in spans if s.start <= offset < s.end}, (piece, offset)


# (id, text, phrases, expected (start, end, phrase) triples)
LOCATE_CASES = [
    ("exact", "Paris is the capital of France.", ["capital"], [(13, 20, "capital")]),
    ("case differs", "PARIS is nice", ["paris"], [(0, 5, "paris")]),
    ("whitespace differs", "I love New\nYork.", ["new  york"], [(7, 15, "new  york")]),
    ("tabs and nbsp", "a\t\u00a0b c", ["A B C"], [(0, 6, "A B C")]),
    ("phrase padding ignored", "the New York times", ["  new york \n"], [(4, 12, "  new york \n")]),
    ("repeated in text", "the cat and the cat", ["the cat"], [(0, 7, "the cat"), (12, 19, "the cat")]),
    ("phrase listed twice", "one cat", ["cat", "cat"], [(4, 7, "cat")]),
    ("overlapping phrases", "the quick brown fox", ["brown fox", "quick brown"],
     [(4, 15, "quick brown"), (10, 19, "brown fox")]),
    ("nested phrases", "the quick brown fox", ["quick brown fox", "brown"],
     [(4, 19, "quick brown fox"), (10, 15, "brown")]),
    ("self-overlap is non-overlapping left to right", "aaa", ["aa"], [(0, 2, "aa")]),
    ("regex characters are literal", "cost (a+b)* is $5.00? yes", ["(a+b)*", "$5.00?"],
     [(5, 11, "(a+b)*"), (15, 21, "$5.00?")]),
    ("quoted by the model", "He said Paris twice", ["'Paris'"], [(8, 13, "'Paris'")]),
    ("quotes kept when the text has them", "the word 'Paris' here", ["'Paris'"], [(9, 16, "'Paris'")]),
    ("smart-quoted by the model", "He said Paris", ["\u201cParis\u201d"], [(8, 13, "\u201cParis\u201d")]),
    ("not in text", "Paris is the capital", ["faithful to the context"], []),
    ("blank phrases ignored", "some text", ["", "   ", "\n"], []),
    ("empty text", "", ["anything"], []),
    ("no phrases", "some text", [], []),
]


@pytest.mark.parametrize(
    ("text", "phrases", "expected"), [case[1:] for case in LOCATE_CASES], ids=[case[0] for case in LOCATE_CASES]
)
def test_locate(text: str, phrases: list[str], expected: list[tuple[int, int, str]]) -> None:
    spans = locate(text, phrases)
    assert spans == [Span(*triple) for triple in expected]
    assert spans == sorted(spans, key=lambda s: (s.start, s.end))
    assert_grounded(text, spans)


# Text whose prefix has code points that a lowered/case-folded copy would grow or shrink.
UNICODE_PREFIXES = [
    "東京は日本の首都です。",  # CJK
    "مرحبا بالعالم ",  # Arabic, right to left
    "😀👍🏽🇫🇷 ",  # emoji: a skin-tone modifier and a flag are several code points each
    "cafe\u0301 nai\u0308ve ",  # combining accents
    "Straße ",  # 'ß'.casefold() == 'ss'
    "İstanbul ",  # 'İ'.lower() has two code points
    "ﬁle ",  # the 'ﬁ' ligature casefolds to 'fi'
    "\U0001d54f\U0001d550 ",  # astral-plane letters
]


@pytest.mark.parametrize("prefix", UNICODE_PREFIXES)
def test_offsets_after_unicode_prefix(prefix: str) -> None:
    text = prefix + "The Model's ANSWER\nis here. " + prefix
    spans = locate(text, ["the model's answer is", prefix.strip()])
    assert Span(len(prefix), len(prefix) + len("The Model's ANSWER\nis"), "the model's answer is") in spans
    own = [s for s in spans if s.phrase == prefix.strip()]
    assert [(s.start, s.end) for s in own][:1] == [(0, len(prefix.strip()))]
    assert text[own[0].start : own[0].end] == prefix.strip()
    assert_grounded(text, spans)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("首都は東京です。東京は大きい。", "東京"),
        ("قال مرحبا بالعالم ثم قال مرحبا", "مرحبا"),
        ("great job 🎉 and again great  JOB 🎉", "great job 🎉"),
        ("ﬁne ß İ then cafe\u0301 and CAFE\u0301", "cafe\u0301"),
    ],
)
def test_unicode_phrases_every_occurrence(text: str, phrase: str) -> None:
    spans = locate(text, [phrase])
    assert len(spans) == 2
    assert_grounded(text, spans)


def test_ungrounded_reports_phrases_only_in_the_rubric() -> None:
    text = "The response says Paris is the capital."
    phrases = ["Paris", "faithful to the context", "  ", "capital", "faithful to the context", "Lyon"]
    spans = locate(text, phrases)
    assert ungrounded(phrases, spans) == ["faithful to the context", "Lyon"]
    assert ungrounded([], spans) == []
    assert ungrounded(["a"], []) == ["a"]


def test_ungrounded_uses_the_phrase_as_given() -> None:
    spans = locate("He said Paris", ["'Paris'", "Paris"])
    assert ungrounded(["'Paris'", "Paris"], spans) == []


def test_segments_partition_overlapping_spans() -> None:
    text = "the quick brown fox jumps"
    spans = locate(text, ["quick brown", "brown fox", "fox"])
    pieces = segments(text, spans)
    assert pieces == [
        Segment(0, 4, ()),
        Segment(4, 10, ("quick brown",)),
        Segment(10, 15, ("quick brown", "brown fox")),
        Segment(15, 16, ("brown fox",)),
        Segment(16, 19, ("brown fox", "fox")),
        Segment(19, 25, ()),
    ]
    assert "".join(text[p.start : p.end] for p in pieces) == text
    assert_partition(text, pieces, spans)


def test_segments_merge_adjacent_pieces_with_the_same_phrases() -> None:
    spans = [Span(0, 2, "ab"), Span(2, 4, "ab"), Span(4, 6, "x")]
    assert segments("abab x!", spans) == [Segment(0, 4, ("ab",)), Segment(4, 6, ("x",)), Segment(6, 7, ())]


def test_segments_edge_cases() -> None:
    assert segments("", []) == []
    assert segments("", [Span(0, 3, "abc")]) == []  # spans beyond the text are left out
    assert segments("plain", []) == [Segment(0, 5, ())]
    assert segments("abc", [Span(0, 3, "abc")]) == [Segment(0, 3, ("abc",))]
    assert segments("abc", [Span(1, 1, "")]) == [Segment(0, 3, ())]  # empty spans add nothing
    assert segments("abc", [Span(1, 9, "far")]) == [Segment(0, 3, ())]


def test_merge_returns_only_highlighted_pieces() -> None:
    spans = [Span(2, 6, "b"), Span(0, 4, "a"), Span(10, 12, "c")]
    assert merge(spans) == [
        Segment(0, 2, ("a",)), Segment(2, 4, ("a", "b")), Segment(4, 6, ("b",)), Segment(10, 12, ("c",))
    ]
    assert merge([]) == []


def test_merge_accepts_any_span_like_object() -> None:
    @dataclasses.dataclass(frozen=True)
    class FieldSpan:  # the shape core.grading uses
        field: str
        start: int
        end: int
        phrase: str

    assert merge([FieldSpan("MODEL OUTPUT", 1, 3, "bc")]) == [Segment(1, 3, ("bc",))]


def test_segments_random_overlaps_stay_a_partition() -> None:
    rng = random.Random(1234)
    for _ in range(200):
        text = "".join(rng.choice("ab cß😀\n") for _ in range(rng.randint(0, 40)))
        phrases = []
        for _ in range(rng.randint(0, 6)):
            start = rng.randint(0, len(text))
            phrases.append(text[start : start + rng.randint(1, 6)])
        spans = locate(text, phrases)
        assert_grounded(text, spans)
        assert ungrounded(phrases, spans) == [p for p in dict.fromkeys(phrases) if p.strip() and not any(
            s.phrase == p for s in spans)]
        for phrase in phrases:
            if phrase.strip():
                assert any(s.phrase == phrase for s in spans), phrase  # cut from the text, so it is found
        assert_partition(text, segments(text, spans), spans)


def test_value_types() -> None:
    span = Span(1, 2, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        span.start = 0  # type: ignore[misc]
    spans = [Span(3, 4, "a"), Span(1, 5, "b"), Span(1, 2, "c")]
    assert sorted(spans) == [Span(1, 2, "c"), Span(1, 5, "b"), Span(3, 4, "a")]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Segment(0, 1, ()).end = 2  # type: ignore[misc]


def test_phrase_pattern() -> None:
    assert phrase_pattern("   ") is None
    pattern = phrase_pattern(" New  York ")
    assert pattern is not None and pattern.fullmatch("new\r\n\tYORK")


def test_large_text() -> None:
    text = ("filler text " * 80 + "dolor sit\namet, lorem ") * 1_000  # ~1 MB
    spans = locate(text, ["Dolor sit amet", "amet,  lorem", "absent phrase"])
    assert len(spans) == 2_000
    assert_grounded(text, spans[:10])
    # Per repeat: filler, 'dolor sit\n', the shared 'amet', ', lorem'; then the final space.
    assert len(segments(text, spans)) == 4 * 1_000 + 1
