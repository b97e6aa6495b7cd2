"""The audit's perturbations (core.audit.perturbations): pure, with their "cannot apply" errors and inverses."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.audit.perturbations import (
    MIRROR,
    OTHER_JUDGE,
    PERTURBATIONS,
    SAME,
    TAG_EQUIVALENTS,
    JudgeConfig,
    PerturbationNotApplicable,
    default_other_judge,
    describe_all,
    rename_in_text,
    rename_tags,
    rename_tags_with,
    resolve,
    reverse_rubric,
    reverse_rubric_text,
    swap_responses,
    whitespace,
)
from core.errors import InputError
from core.grading import GradeRequest
from core.prompt import build_prompt, infer_scale, normalize_instructions, rubric_levels

FIVE = """Score the answer.
1: The MODEL OUTPUT ignores the CONTEXT.
2: The MODEL OUTPUT uses little of the CONTEXT.
   It misses most facts.
3: Half of it.
4: Most of it.
5: The MODEL OUTPUT uses all of the CONTEXT.

Use whole numbers only."""

REQUEST = GradeRequest(
    fields={"CONTEXT": "Paris is the capital of France.", "USER INPUT": "What is the capital?",
            "MODEL OUTPUT": "Paris.", "GOLD ANSWER": "Paris"},
    pass_criteria="Is the MODEL OUTPUT faithful to the CONTEXT and the GOLD ANSWER? CONTEXTUAL hints do not count.",
    rubric=FIVE,
)
PAIRWISE = GradeRequest(
    fields={"USER INPUT": "Name a capital.", "MODEL OUTPUT 1": "Paris.", "MODEL OUTPUT 2": "Lyon."},
    pass_criteria="Which of MODEL OUTPUT 1 and MODEL OUTPUT 2 answers the USER INPUT better?",
    rubric="0: The MODEL OUTPUT 1 is better than MODEL OUTPUT 2.\n1: The MODEL OUTPUT 2 is better than MODEL OUTPUT 1.",
)


# --- reverse-rubric ---------------------------------------------------------------------------------


def test_reverse_rubric_reverses_the_score_blocks_and_keeps_the_other_lines() -> None:
    reversed_ = reverse_rubric_text(FIVE)
    assert reversed_.split("\n") == [
        "Score the answer.",
        "5: The MODEL OUTPUT uses all of the CONTEXT.",
        "4: Most of it.",
        "3: Half of it.",
        "2: The MODEL OUTPUT uses little of the CONTEXT.",
        "   It misses most facts.",
        "1: The MODEL OUTPUT ignores the CONTEXT.",
        "",
        "Use whole numbers only.",
    ]
    # The same levels with the same descriptions, the same scale: only the order changed.
    assert rubric_levels(reversed_) == rubric_levels(FIVE) and infer_scale(reversed_) == (1, 5)


@pytest.mark.parametrize("rubric", [FIVE, PAIRWISE.rubric, "0: no\r\n1: yes  \r\n", "- Score 1: bad\n- Score 3: good"])
def test_reversing_twice_is_the_rubric_as_the_prompt_holds_it(rubric: str) -> None:
    assert reverse_rubric_text(reverse_rubric_text(rubric)) == normalize_instructions(rubric)
    assert reverse_rubric_text(rubric) != normalize_instructions(rubric)


def test_reverse_rubric_changes_only_the_rubric() -> None:
    perturbed = reverse_rubric(REQUEST)
    assert perturbed.score_back == SAME
    assert perturbed.request == replace(REQUEST, rubric=reverse_rubric_text(FIVE))


@pytest.mark.parametrize(("rubric", "why"), [
    ("Rate how faithful the answer is.", "no score lines"),
    ("", "no score lines"),
    ("1: The only level.\nMore about it.", "only one score line"),
])
def test_a_rubric_without_score_lines_cannot_be_reversed(rubric: str, why: str) -> None:
    with pytest.raises(PerturbationNotApplicable, match=why) as caught:
        reverse_rubric(replace(REQUEST, rubric=rubric))
    assert isinstance(caught.value, InputError) and "Cannot reverse the rubric" in str(caught.value)


# --- rename-tags ----------------------------------------------------------------------------------


def test_rename_tags_renames_fields_criteria_and_rubric_consistently_and_keeps_the_texts() -> None:
    perturbed = rename_tags(REQUEST)
    request = perturbed.request
    assert list(request.fields) == ["DOCUMENT", "QUESTION", "RESPONSE", "REFERENCE ANSWER"]
    assert list(request.fields.values()) == list(REQUEST.fields.values())  # the texts are kept
    # Whole words only: CONTEXTUAL stays.
    assert request.pass_criteria == ("Is the RESPONSE faithful to the DOCUMENT and the REFERENCE ANSWER? "
                                     "CONTEXTUAL hints do not count.")
    assert "1: The RESPONSE ignores the DOCUMENT." in request.rubric and "CONTEXT" not in request.rubric
    assert perturbed.score_back == SAME and infer_scale(request.rubric) == (1, 5)
    # The renamed prompt is a valid GLIDER prompt with the new tags.
    assert "<DOCUMENT>\nParis is the capital of France.\n</DOCUMENT>" in build_prompt(
        request.fields, request.pass_criteria, request.rubric)


def test_longest_names_first_so_numbered_outputs_are_renamed_whole() -> None:
    renamed = rename_tags(PAIRWISE).request
    assert list(renamed.fields) == ["QUESTION", "RESPONSE 1", "RESPONSE 2"]
    assert renamed.rubric == ("0: The RESPONSE 1 is better than RESPONSE 2.\n"
                              "1: The RESPONSE 2 is better than RESPONSE 1.")
    # A mapping where the shorter name would half-rename the longer one.
    assert rename_in_text("MODEL OUTPUT 1 vs MODEL OUTPUT", {"MODEL OUTPUT": "A", "MODEL OUTPUT 1": "B"}) == "B vs A"
    assert rename_in_text("MODEL OUTPUT 12", {"MODEL OUTPUT 1": "B"}) == "MODEL OUTPUT 12"


def test_renaming_back_gives_the_original() -> None:
    inverse = {new: old for old, new in TAG_EQUIVALENTS.items()}
    for request in (REQUEST, PAIRWISE):
        assert rename_tags_with(rename_tags(request).request, inverse).request == request


def test_tags_without_an_equivalent_cannot_be_renamed() -> None:
    with pytest.raises(PerturbationNotApplicable, match="none of .* has a known equivalent"):
        rename_tags(replace(REQUEST, fields={"ESSAY": "text", "PROMPT": "write"}))


def test_a_new_name_taken_by_another_field_cannot_be_renamed() -> None:
    with pytest.raises(PerturbationNotApplicable, match="already the name of another field"):
        rename_tags(replace(REQUEST, fields={"MODEL OUTPUT": "a", "RESPONSE": "b"}))


# --- swap-responses ------------------------------------------------------------------------------


def test_swap_exchanges_the_two_responses_and_mirrors_the_score() -> None:
    perturbed = swap_responses(PAIRWISE)
    assert perturbed.request.fields == {"USER INPUT": "Name a capital.", "MODEL OUTPUT 1": "Lyon.",
                                        "MODEL OUTPUT 2": "Paris."}
    assert (perturbed.request.pass_criteria, perturbed.request.rubric) == (PAIRWISE.pass_criteria, PAIRWISE.rubric)
    assert perturbed.score_back == MIRROR
    assert [perturbed.to_original(score, (0, 1)) for score in (0, 1, None)] == [1, 0, None]
    assert [perturbed.to_original(score, (1, 3)) for score in (1, 2, 3)] == [3, 2, 1]  # with a tie in the middle


def test_swapping_twice_is_the_identity() -> None:
    once = swap_responses(PAIRWISE)
    twice = swap_responses(once.request)
    assert twice.request == PAIRWISE
    assert all(twice.to_original(once.to_original(s, (0, 1)), (0, 1)) == s for s in (0, 1))


@pytest.mark.parametrize("fields", [
    {"CONTEXT": "c", "MODEL OUTPUT": "a"},
    {"MODEL OUTPUT 1": "a"},
    {"MODEL OUTPUT 1": "a", "MODEL OUTPUT 2": "   "},
])
def test_a_request_without_both_responses_cannot_be_swapped(fields: dict[str, str]) -> None:
    with pytest.raises(PerturbationNotApplicable, match="Cannot swap the two responses: .*MODEL OUTPUT 2"):
        swap_responses(replace(PAIRWISE, fields=fields))


# --- whitespace ---------------------------------------------------------------------------------


def test_whitespace_changes_only_whitespace() -> None:
    perturbed = whitespace(REQUEST)
    request = perturbed.request
    assert perturbed.score_back == SAME and list(request.fields) == list(REQUEST.fields)
    for tag, text in request.fields.items():
        assert "\r\n" in text and text != REQUEST.fields[tag]
        assert normalize_instructions(text) == normalize_instructions(REQUEST.fields[tag])
        assert text.split() == REQUEST.fields[tag].split()
    # The instructions as the prompt holds them are exactly the same: the normalisation is the regression guard.
    assert normalize_instructions(request.rubric) == normalize_instructions(REQUEST.rubric)
    assert normalize_instructions(request.pass_criteria) == normalize_instructions(REQUEST.pass_criteria)
    assert whitespace(replace(REQUEST, fields={"MODEL OUTPUT": "a", "CONTEXT": ""})).request.fields["CONTEXT"] == ""


# --- other judge, registry --------------------------------------------------------------------------


def test_the_other_judge_changes_the_judge_not_the_request() -> None:
    config = default_other_judge("transformers", {"model": "/m", "quantization": "none", "device": "cpu"})
    assert config == JudgeConfig("transformers", {"model": "/m", "quantization": "nf4", "device": "cpu"})
    auto = default_other_judge("transformers", {"model": "/m", "quantization": "auto"})
    assert auto.options["quantization"] == "none"
    [perturbation] = resolve([OTHER_JUDGE], config)
    assert perturbation.kind == "judge" and perturbation.judge == config and "nf4" in perturbation.description
    assert perturbation.apply(REQUEST).request == REQUEST
    with pytest.raises(InputError, match="Name the other judge"):
        default_other_judge("llamacpp", {"model": "/m.gguf"})


def test_resolve_names_in_order_once_each_and_refuses_unknown_ones() -> None:
    assert [p.name for p in resolve(["whitespace", " reverse-rubric", "whitespace"])] == ["whitespace",
                                                                                         "reverse-rubric"]
    with pytest.raises(InputError, match="Unknown perturbation 'shuffle'"):
        resolve(["shuffle"])
    with pytest.raises(InputError, match="needs the judge"):
        resolve([OTHER_JUDGE])
    with pytest.raises(InputError, match="at least one"):
        resolve([])
    assert [name for name, _ in describe_all()] == list(PERTURBATIONS)
    assert all(description and "\n" not in description for _, description in describe_all())
