"""core.prompt.rubric_levels: the meaning of each score, read from the rubric for the Label tab."""

from __future__ import annotations

import pytest

from core.presets import load_presets
from core.prompt import infer_scale, rubric_levels, rubric_scores


@pytest.mark.parametrize(
    ("rubric", "levels"),
    [
        ("0: Bad.\n1: Good.", [(0, "Bad."), (1, "Good.")]),
        # Scores out of order, bullets, "Score", other separators, a trailing newline from YAML.
        ("Score 3 - Best.\n- 1) Worst.\n* 2 = Middle.\n", [(1, "Worst."), (2, "Middle."), (3, "Best.")]),
        # A description runs on over its indented lines; a blank line ends it; a preamble is not a level.
        ("Use this scale:\n1: Poor,\n   misses the point.\n2: Fine.\n\nJudge the output only.",
         [(1, "Poor, misses the point."), (2, "Fine.")]),
        ("1:   lots   of\tspace  \n2: x", [(1, "lots of space"), (2, "x")]),
        ("1: first half.\n2: other.\n1: second half.", [(1, "first half. second half."), (2, "other.")]),
        ("0: none.\n5: some.\n10: all.", [(0, "none."), (5, "some."), (10, "all.")]),
        ("no scores here", []),
        ("", []),
    ],
)
def test_rubric_levels(rubric: str, levels: list[tuple[int, str]]) -> None:
    assert rubric_levels(rubric) == levels
    assert [score for score, _ in levels] == rubric_scores(rubric)  # the same scores the scale is read from


def test_every_preset_describes_every_score_of_its_scale() -> None:
    for preset in load_presets():
        levels = rubric_levels(preset.rubric)
        low, high = infer_scale(preset.rubric)
        assert [score for score, _ in levels] == rubric_scores(preset.rubric) == list(range(low, high + 1))
        assert all(len(text) > 10 and "\n" not in text for _, text in levels), preset.key
