"""Property-based attacks on the parser and the span locator: whatever the model or the user writes.

CI runs a bounded, derandomized campaign (the "ci" profile, tests/conftest.py); a long random one runs on
demand with `HYPOTHESIS_PROFILE=campaign .venv/bin/python -m pytest tests/test_fuzz.py -q
--hypothesis-show-statistics` (100,000 examples per property, 2,000 for the two heavy ones; set
HYPOTHESIS_MAX_EXAMPLES for another count; figures in the issue note).
"""

from __future__ import annotations

import string

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.grading import locate_in_fields
from core.parse import FAILED, STATUSES, parse_output
from core.spans import locate, merge, phrase_pattern, segments, ungrounded

# Examples of megabyte answers and thousands of phrases cost ~1,000 times a small one: a fiftieth as many.
HEAVY = settings(max_examples=max(20, settings().max_examples // 50))
TAG_NAMES = ("reasoning", "highlight", "highlights", "score", "REASONING", "Score", "HighLight")
# Pieces a GLIDER answer (or a broken one) is made of: tags with odd spacing and case, list syntax, numbers.
FRAGMENTS = st.one_of(
    st.sampled_from(TAG_NAMES).map(lambda name: f"<{name}>"),
    st.sampled_from(TAG_NAMES).map(lambda name: f"</{name}>"),
    st.sampled_from(TAG_NAMES).map(lambda name: f"< / {name} >"),
    st.sampled_from(["[", "]", "'", '"', ",", "\\", "\\'", "- ", "\n", "Score:", "**", "`", "<", ">", "/"]),
    st.integers(-10**30, 10**30).map(str),
    st.sampled_from(["1.5", "1e3", "0x1F", "٣", "５", "NaN", "∞", "\u200b", "\ufeff", "\x00", "\ud7ff", "🙂"]),
    st.text(max_size=40),
)


def structured_answers() -> st.SearchStrategy[str]:
    """Mostly GLIDER-shaped answers: nested, unbalanced, repeated or truncated tags around any text."""
    return st.lists(FRAGMENTS, max_size=60).map("".join)


def answer_with(reasoning: str, phrases: list[str], score: str) -> str:
    return f"<reasoning>{reasoning}</reasoning>\n<highlight>{phrases!r}</highlight>\n<score>{score}</score>"


SCALES = st.one_of(st.none(), st.tuples(st.integers(-5, 5), st.integers(0, 100)).filter(lambda s: s[0] <= s[1]))


def check_judgment(text: str, scale: tuple[int, int] | None) -> None:
    judgment = parse_output(text, scale)
    assert judgment.raw == text
    assert judgment.status in STATUSES
    assert all(isinstance(problem, str) and problem for problem in judgment.problems)
    assert all(isinstance(phrase, str) for phrase in judgment.highlights)
    if judgment.status == FAILED:
        assert judgment.score is None and judgment.problems  # a failure always says why, never a made-up score
    else:
        assert isinstance(judgment.score, int)
        if scale is not None:
            assert scale[0] <= judgment.score <= scale[1]


@given(st.text(), SCALES)
def test_parse_output_never_raises_on_any_text(text: str, scale: tuple[int, int] | None) -> None:
    check_judgment(text, scale)


@given(structured_answers(), SCALES)
def test_parse_output_never_raises_on_broken_glider_answers(text: str, scale: tuple[int, int] | None) -> None:
    check_judgment(text, scale)


@given(st.text(max_size=200), st.lists(st.text(max_size=30), max_size=40), st.integers(0, 5))
def test_a_well_formed_answer_round_trips(reasoning: str, phrases: list[str], score: int) -> None:
    assume("</reasoning>" not in reasoning.lower() and "<score" not in reasoning.lower())
    assume("<highlight" not in reasoning.lower() and "<reasoning" not in reasoning.lower())
    judgment = parse_output(answer_with(reasoning, phrases, str(score)), (0, 5))
    assert judgment.score == score and judgment.status != FAILED


@HEAVY
@given(st.integers(1, 20_000), st.sampled_from(["<reasoning>", "</score>", "<score>3", "[", "'", "\\", "a "]),
       SCALES)
def test_huge_repetitive_answers_parse(repeat: int, piece: str, scale: tuple[int, int] | None) -> None:
    check_judgment(piece * repeat, scale)
    check_judgment(answer_with("- fine " * repeat, ["fine"] * min(repeat, 3000), "1"), scale)


# --- spans --------------------------------------------------------------------------------------------------

TEXTS = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="aAbB ßİıẞﬀ\u0130\u0131\t\n\u00a0\u2003é\u0301🙂", max_size=300),
)


def check_spans(text: str, phrases: list[str]) -> None:
    spans = locate(text, phrases)
    assert spans == sorted(spans, key=lambda s: (s.start, s.end, s.phrase))
    for span in spans:
        assert 0 <= span.start < span.end <= len(text)
        assert span.phrase in phrases
        found = text[span.start : span.end]
        variants = [span.phrase, span.phrase.strip()[1:-1]]
        assert any((p := phrase_pattern(v)) is not None and p.fullmatch(found) for v in variants), (span, found)
    lost = ungrounded(phrases, spans)
    assert not {span.phrase for span in spans} & set(lost)
    merged = merge(spans)
    for left, right in zip(merged, merged[1:], strict=False):
        assert left.end <= right.start  # never overlapping after merging
    covered = {i for span in spans for i in range(span.start, span.end)}
    assert {i for segment in merged for i in range(segment.start, segment.end)} == covered
    pieces = segments(text, spans)
    assert "".join(text[p.start : p.end] for p in pieces) == text  # a partition of the original text
    assert all(p.start < p.end for p in pieces)


@given(TEXTS, st.lists(st.text(max_size=20), max_size=30))
def test_locate_offsets_always_index_the_original_text(text: str, phrases: list[str]) -> None:
    check_spans(text, phrases)


@given(TEXTS, st.data())
def test_a_phrase_copied_from_the_text_is_always_found(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    phrase = text[start:end]
    assume(phrase.strip())
    assert any(span.phrase == phrase for span in locate(text, [phrase]))
    # The same phrase changed in case and spacing is found too.
    assert locate(text, [" " + "\n".join(phrase.upper().split()) + " "]) or phrase.upper().lower() != phrase.lower()


@HEAVY
@given(st.text(alphabet=string.ascii_lowercase + " ", min_size=1, max_size=2_000),
       st.lists(st.text(alphabet="ab ", min_size=1, max_size=6), min_size=1000, max_size=3000))
def test_thousands_of_highlight_phrases(text: str, phrases: list[str]) -> None:
    check_spans(text, phrases)


@given(st.dictionaries(st.sampled_from(["CONTEXT", "USER INPUT", "MODEL OUTPUT"]), TEXTS, max_size=3),
       st.lists(st.text(max_size=20), max_size=30))
def test_field_spans_index_their_own_field(fields: dict[str, str], phrases: list[str]) -> None:
    spans, missing = locate_in_fields(fields, phrases)
    for span in spans:
        assert 0 <= span.start < span.end <= len(fields[span.field])
    assert not {span.phrase for span in spans} & set(missing)
