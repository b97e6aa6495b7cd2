"""parse_output on well-formed, drifting, truncated and hostile GLIDER answers."""

from __future__ import annotations

import dataclasses
import warnings

import pytest

from core.parse import FAILED, MAX_PROBLEMS, OK, REPAIRED, STATUSES, Judgment, parse_output

REASONING = "- The response is supported by the context.\n- It adds nothing."


def answer(
    highlight: str | None = "['Paris', 'capital']", score: str | None = "1", reasoning: str | None = REASONING
) -> str:
    """A GLIDER answer in the trained format; None leaves a block out."""
    parts = []
    if reasoning is not None:
        parts.append(f"<reasoning>\n{reasoning}\n</reasoning>")
    if highlight is not None:
        parts.append(f"<highlight>\n{highlight}\n</highlight>")
    if score is not None:
        parts.append(f"<score>\n{score}\n</score>")
    return "\n".join(parts)


WELL_FORMED = answer()
HUGE_REASONING = answer(reasoning="- " + "the response is fine. " * 48_000, score="3")

# (id, text, scale, score, status, highlights, a fragment one of the problems must contain)
CASES = [
    # Well-formed, each trained scale and its bounds.
    ("scale 0-1", WELL_FORMED, (0, 1), 1, OK, ["Paris", "capital"], None),
    ("scale 0-1 minimum", answer(score="0"), (0, 1), 0, OK, ["Paris", "capital"], None),
    ("scale 1-3", answer(score="2"), (1, 3), 2, OK, ["Paris", "capital"], None),
    ("scale 1-5", answer(score="4"), (1, 5), 4, OK, ["Paris", "capital"], None),
    ("scale 1-5 maximum", answer(score="5"), (1, 5), 5, OK, ["Paris", "capital"], None),
    ("no scale given", answer(score="9"), None, 9, OK, ["Paris", "capital"], None),
    # Missing blocks.
    ("missing reasoning", answer(reasoning=None), (0, 1), 1, REPAIRED, ["Paris", "capital"], "no <reasoning>"),
    ("missing highlight", answer(highlight=None), (0, 1), 1, REPAIRED, [], "no <highlight>"),
    ("missing score", answer(score=None), (0, 1), None, FAILED, ["Paris", "capital"], "no <score>"),
    ("no tags at all", "The response is faithful.\nScore: 1", (0, 1), None, FAILED, [], "no <score>"),
    ("empty text", "", (1, 5), None, FAILED, [], "The model returned no text."),
    ("whitespace only", "  \n\t \n", (1, 5), None, FAILED, [], "The model returned no text."),
    # Truncated or unclosed.
    ("cut off after score digit", answer()[: answer().index("<score>")] + "<score>\n4", (1, 5), 4, REPAIRED,
     ["Paris", "capital"], "not closed"),
    ("cut off in reasoning", "<reasoning>\n- The response is supp", (1, 5), None, FAILED, [], "no <score>"),
    ("cut off right after <score>", answer(score=None) + "\n<score>\n", (1, 5), None, FAILED,
     ["Paris", "capital"], "empty"),
    ("cut off mid-number could be 10", "<score>\n1", (1, 10), None, FAILED, [], "may be incomplete"),
    ("cut off after a finished number", "<score>\n1\n", (1, 10), 1, REPAIRED, [], "not closed"),
    ("reasoning never closed", "<reasoning>\n- fine\n<highlight>\n['a']\n</highlight>\n<score>\n1\n</score>", (0, 1),
     1, REPAIRED, ["a"], "<reasoning> block was not closed"),
    ("score opening tag missing", answer(score=None) + "\n3\n</score>", (1, 5), 3, REPAIRED,
     ["Paris", "capital"], "no opening tag"),
    # Text around the blocks.
    ("text before blocks", "Sure! Here is my evaluation.\n" + WELL_FORMED, (0, 1), 1, REPAIRED,
     ["Paris", "capital"], "outside"),
    ("text after blocks", WELL_FORMED + "\n<|end|>", (0, 1), 1, REPAIRED, ["Paris", "capital"], "outside"),
    # Score written in other ways.
    ("score padded with spaces", answer(score="   4   "), (1, 5), 4, OK, ["Paris", "capital"], None),
    ("score padded with newlines", answer(score="\n 4 \n"), (1, 5), 4, OK, ["Paris", "capital"], None),
    ("score on one line", "<reasoning>r</reasoning><highlight>[]</highlight><score>4</score>", (1, 5), 4, OK, [], None),
    ("Score: 4", answer(score="Score: 4"), (1, 5), 4, REPAIRED, ["Paris", "capital"], "'Score: 4'"),
    ("bold score", answer(score="**3**"), (1, 5), 3, REPAIRED, ["Paris", "capital"], "read as 3"),
    ("bracketed score", answer(score="[2]"), (1, 3), 2, REPAIRED, ["Paris", "capital"], "read as 2"),
    ("score with a full stop", answer(score="4."), (1, 5), 4, REPAIRED, ["Paris", "capital"], "read as 4"),
    ("leading zero", answer(score="04"), (1, 5), 4, REPAIRED, ["Paris", "capital"], "'04'"),
    ("plus sign", answer(score="+3"), (1, 5), 3, REPAIRED, ["Paris", "capital"], "read as 3"),
    ("decimal score", answer(score="3.5"), (1, 5), None, FAILED, ["Paris", "capital"], "'3.5' is not a whole number"),
    ("decimal comma score", answer(score="3,5"), (1, 5), None, FAILED, ["Paris", "capital"], "not a whole number"),
    ("score in words", answer(score="four"), (1, 5), None, FAILED, ["Paris", "capital"], "'four' is not written"),
    ("two numbers in one block", answer(score="4 or 5"), (1, 5), None, FAILED, ["Paris", "capital"], "more than one"),
    ("above the scale", answer(score="7"), (1, 5), None, FAILED, ["Paris", "capital"],
     "Score 7 is outside the rubric's scale 1-5."),
    ("above binary scale", answer(score="2"), (0, 1), None, FAILED, ["Paris", "capital"], "outside"),
    ("negative score", answer(score="-1"), (1, 5), None, FAILED, ["Paris", "capital"], "Score -1 is outside"),
    ("empty score block", answer(score=""), (1, 5), None, FAILED, ["Paris", "capital"], "empty"),
    ("template placeholder echoed", answer(score="[The final integer score assigned based on the scoring rubric]"),
     (1, 5), None, FAILED, ["Paris", "capital"], "not written as a whole number"),
    ("two score blocks agree", WELL_FORMED + "\n<score>\n1\n</score>", (0, 1), 1, REPAIRED, ["Paris", "capital"],
     "agree"),
    ("two score blocks disagree", WELL_FORMED + "\n<score>\n0\n</score>", (0, 1), None, FAILED,
     ["Paris", "capital"], "disagree"),
    # Highlight lists.
    ("empty highlight list", answer(highlight="[]"), (0, 1), 1, OK, [], None),
    ("empty highlight block", answer(highlight=""), (0, 1), 1, REPAIRED, [], "<highlight> block is empty"),
    ("double quotes", answer(highlight='["Paris", "capital"]'), (0, 1), 1, REPAIRED, ["Paris", "capital"],
     "non-standard"),
    ("apostrophe, python repr", answer(highlight="[\"the model's answer\", 'Paris']"), (0, 1), 1, OK,
     ["the model's answer", "Paris"], None),
    ("apostrophe, unescaped", answer(highlight="['the model's answer', 'Paris']"), (0, 1), 1, REPAIRED,
     ["the model's answer", "Paris"], "not a valid Python list"),
    ("trailing comma", answer(highlight="['Paris', 'capital',]"), (0, 1), 1, REPAIRED, ["Paris", "capital"],
     "non-standard"),
    ("missing closing bracket", answer(highlight="['Paris', 'capital'"), (0, 1), 1, REPAIRED, ["Paris", "capital"],
     "closing ']' is missing"),
    ("missing opening bracket", answer(highlight="'Paris', 'capital']"), (0, 1), 1, REPAIRED, ["Paris", "capital"],
     "opening '[' is missing"),
    ("list cut off mid-phrase", answer(highlight="['Paris', 'capi"), (0, 1), 1, REPAIRED, ["Paris", "capi"],
     "closing ']' is missing"),
    ("unquoted items in brackets", answer(highlight="[Paris, capital]"), (0, 1), 1, REPAIRED, ["Paris", "capital"],
     "not a valid Python list"),
    ("bulleted list", answer(highlight="- Paris\n- capital\n* France"), (0, 1), 1, REPAIRED,
     ["Paris", "capital", "France"], "one per line"),
    ("numbered quoted list", answer(highlight="1. 'Paris'\n2. 'capital'"), (0, 1), 1, REPAIRED, ["Paris", "capital"],
     "one per line"),
    ("newline-separated list", answer(highlight="Paris\ncapital of France"), (0, 1), 1, REPAIRED,
     ["Paris", "capital of France"], "one per line"),
    ("quoted items without brackets", answer(highlight="'Paris', 'capital'"), (0, 1), 1, REPAIRED,
     ["Paris", "capital"], "not written as a list"),
    ("smart quotes", answer(highlight="[\u2018Paris\u2019, \u2018capital\u2019]"), (0, 1), 1, REPAIRED,
     ["Paris", "capital"], "not a valid Python list"),
    ("single string literal", answer(highlight="'Paris'"), (0, 1), 1, REPAIRED, ["Paris"], "not written as a list"),
    ("tuple literal", answer(highlight="('Paris', 'capital')"), (0, 1), 1, REPAIRED, ["Paris", "capital"],
     "not written as a list"),
    ("plain phrase", answer(highlight="Paris is the capital"), (0, 1), 1, REPAIRED, ["Paris is the capital"],
     "read as one phrase"),
    ("duplicates, padding and blanks", answer(highlight="['Paris', ' Paris ', '', '  ', 'capital']"), (0, 1), 1, OK,
     ["Paris", "capital"], None),
    ("CJK phrases", answer(highlight="['東京は日本の首都です', '首都']"), (0, 1), 1, OK,
     ["東京は日本の首都です", "首都"], None),
    ("emoji phrases", answer(highlight="['great job 🎉', '👍🏽']"), (0, 1), 1, OK, ["great job 🎉", "👍🏽"], None),
    ("Arabic phrase", answer(highlight="['مرحبا بالعالم']", score="3"), (1, 5), 3, OK, ["مرحبا بالعالم"], None),
    # Tag spelling.
    ("uppercase tags", "<REASONING>\nr\n</REASONING>\n<HIGHLIGHT>\n['a']\n</HIGHLIGHT>\n<SCORE>\n2\n</SCORE>", (1, 3),
     2, REPAIRED, ["a"], "'<SCORE>' was read as '<score>'"),
    ("title-case score tag", answer(score=None) + "\n<Score>\n2\n</Score>", (1, 3), 2, REPAIRED, ["Paris", "capital"],
     "<Score>"),
    ("spaces inside tags", answer(score=None) + "\n< score >\n2\n</ score >", (1, 3), 2, REPAIRED,
     ["Paris", "capital"], "'< score >'"),
    ("plural highlights tag", "<reasoning>r</reasoning><highlights>['a']</highlights><score>1</score>", (0, 1), 1,
     REPAIRED, ["a"], "<highlights>"),
    # Size.
    ("1 MB of reasoning", HUGE_REASONING, (1, 5), 3, OK, ["Paris", "capital"], None),
    ("1 MB without tags", "x" * 1_000_000, (1, 5), None, FAILED, [], "no <score>"),
    ("thousands of open tags", "<score>" * 20_000, (1, 5), None, FAILED, [], "empty"),
]


@pytest.mark.parametrize(
    ("text", "scale", "score", "status", "highlights", "problem"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_parse_output(
    text: str, scale: tuple[int, int] | None, score: int | None, status: str, highlights: list[str], problem: str | None
) -> None:
    judgment = parse_output(text, scale)
    assert (judgment.score, judgment.status, judgment.highlights) == (score, status, highlights), judgment.problems
    assert judgment.raw == text
    assert judgment.scale == scale
    if status == OK:
        assert judgment.problems == []
    else:
        assert judgment.problems, "a repaired or failed judgment must say why"
        assert all(isinstance(p, str) and p.strip() for p in judgment.problems)
    if problem is not None:
        assert any(problem in p for p in judgment.problems), judgment.problems


def test_well_formed_parts() -> None:
    judgment = parse_output(WELL_FORMED, (0, 1))
    assert judgment == Judgment(WELL_FORMED, REASONING, ["Paris", "capital"], 1, OK, [], (0, 1))
    assert judgment.ok


def test_judgment_is_frozen() -> None:
    judgment = parse_output(WELL_FORMED, (0, 1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        judgment.score = 0  # type: ignore[misc]


def test_failed_is_not_ok_and_has_no_score() -> None:
    judgment = parse_output(answer(score="7"), (1, 5))
    assert not judgment.ok
    assert judgment.score is None
    assert judgment.problems[0] == "Score 7 is outside the rubric's scale 1-5."  # the reason leads


def test_repaired_is_ok() -> None:
    assert parse_output(answer(score="Score: 1"), (0, 1)).ok


def test_reasoning_is_stripped_and_missing_reasoning_is_none() -> None:
    assert parse_output("<reasoning>\n\n  - a  \n\n</reasoning><score>1</score>").reasoning == "- a"
    assert parse_output("<score>1</score>").reasoning is None
    assert parse_output("<reasoning>  </reasoning><score>1</score>").reasoning is None


def test_problems_are_capped() -> None:
    text = "".join(f"<score>x{i}</score>" for i in range(500))
    judgment = parse_output(text, (1, 5))
    assert judgment.status == FAILED
    assert len(judgment.problems) == MAX_PROBLEMS + 1
    assert "more problems" in judgment.problems[-1]


ODD_STRINGS = [
    "<score>",
    "</score>",
    "<<<>>>",
    "<>",
    "< / >",
    "<score></score>",
    "<score><score></score></score>",
    "<reasoning><score>3</score></reasoning>",
    "<reasoning><highlight><score>",
    "</reasoning></highlight></score>",
    "<highlight>[[[[</highlight><score>1</score>",
    "<highlight>" + "(" * 10_000 + "</highlight>",
    "<highlight>[" + "-" * 10_000 + "1]</highlight>",
    "<highlight>['a\x00b']</highlight>",
    "<highlight>['\ud800']</highlight><score>1</score>",
    "<highlight>{'a', 'b'}</highlight><score>1</score>",
    "<highlight>{'a': 1}</highlight><score>1</score>",
    "<highlight>[None, True, b'x']</highlight><score>1</score>",
    "<highlight>[1, 2.5, ['a', ['b']]]</highlight><score>1</score>",
    "<highlight>'''</highlight>",
    "<highlight>,,,</highlight>",
    "<score>" + "9" * 10_000 + "</score>",
    "<score>-</score>",
    "<score>Score:</score>",
    "<score>٣</score>",
    "<" + " " * 100_000,
    "\x00\x01\x02",
    "\ud800",
    "'" * 1000,
]


@pytest.mark.parametrize("text", ODD_STRINGS, ids=range(len(ODD_STRINGS)))
@pytest.mark.parametrize("scale", [None, (1, 5)])
def test_never_raises_on_odd_strings(text: str, scale: tuple[int, int] | None) -> None:
    judgment = parse_output(text, scale)
    assert judgment.status in STATUSES
    assert judgment.raw == text
    assert all(isinstance(h, str) and h and h == h.strip() for h in judgment.highlights)
    assert len(set(judgment.highlights)) == len(judgment.highlights)
    if judgment.status == FAILED:
        assert judgment.score is None
    else:
        assert isinstance(judgment.score, int)
        if scale is not None:
            assert scale[0] <= judgment.score <= scale[1]
    if judgment.status != OK:
        assert judgment.problems


def test_non_ascii_digits_are_read_but_flagged() -> None:
    judgment = parse_output("<score>٣</score>", (1, 5))  # Arabic-Indic three
    assert (judgment.score, judgment.status) == (3, REPAIRED)


@pytest.mark.parametrize("action", ["default", "error"])
def test_backslashes_read_the_same_whatever_the_warning_filters(action: str) -> None:
    text = answer(highlight=r"['C:\path', '\d+', 'tab\tstop']")
    with warnings.catch_warnings():
        warnings.simplefilter(action)
        judgment = parse_output(text, (0, 1))
    assert judgment.highlights == ["C:\\path", "\\d+", "tab\tstop"]
    assert judgment.status == REPAIRED
