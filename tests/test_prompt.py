"""The GLIDER prompt, pinned byte for byte, and its chat rendering pinned to token ids."""

from __future__ import annotations

import os

import pytest

from core.errors import InputError, RubricError
from core.prompt import (
    DEFAULT_TAGS,
    GLIDER_TEMPLATE,
    build_prompt,
    chat_messages,
    format_data,
    infer_scale,
    normalize_instructions,
    prompt_sha256,
    rubric_scores,
)
from tests.tiny_model import PHI35_TOKENIZER, has_real_tokenizer

# Typed out again from the published template (not imported), so a stray edit to the constant fails here.
EXPECTED = (
    "Analyze the following pass criteria carefully and score the text based on the rubric defined below.\n"
    "\n"
    "To perform this evaluation, you must:\n"
    "\n"
    "1. Understand the text tags, pass criteria and rubric thoroughly.\n"
    "2. Review the finer details of the text and the rubric.\n"
    "3. Compare the tags to be evaluated to the score descriptions in the rubric.\n"
    "4. Pay close attention to small details that might impact the final score and form accurate associations "
    "between tags and pass criteria.\n"
    "5. Write a detailed reasoning justifying your evaluation in a bullet point format. \n"
    "6. The reasoning must summarize the overall strengths and weaknesses of the output while quoting exact "
    "phrases from the output wherever required.\n"
    "7. Output a list of words or phrases that you believe are the most important in determining the score.\n"
    "8. Assign a final score based on the scoring rubric.\n"
    "\n"
    "Data to evaluate:\n"
    "<CONTEXT>\nThe Eiffel Tower is in Paris.\n</CONTEXT>\n"
    "\n"
    "<USER INPUT>\nWhere is the Eiffel Tower?\n</USER INPUT>\n"
    "\n"
    "<MODEL OUTPUT>\nIt is in Rome.\n</MODEL OUTPUT>\n"
    "\n"
    "Pass Criteria:\n"
    "Is the MODEL OUTPUT faithful to the CONTEXT?\n"
    "\n"
    "Rubric:\n"
    "0: Not faithful.\n1: Faithful.\n"
    "\n"
    "Your output must in the following format:\n"
    "<reasoning>\n"
    "[Detailed reasoning justifying your evaluation in a bullet point format according to the specifics defined "
    "above]\n"
    "</reasoning>\n"
    "<highlight>\n"
    "[List of words or phrases that you believe are the most important in determining the score]\n"
    "</highlight>\n"
    "<score>\n"
    "[The final integer score assigned based on the scoring rubric]\n"
    "</score>"
)

FIELDS = {
    "CONTEXT": "The Eiffel Tower is in Paris.",
    "USER INPUT": "Where is the Eiffel Tower?",
    "MODEL OUTPUT": "It is in Rome.",
    "GOLD ANSWER": "",
}


def test_prompt_is_byte_exact() -> None:
    prompt = build_prompt(FIELDS, "Is the MODEL OUTPUT faithful to the CONTEXT?", "0: Not faithful.\n1: Faithful.")
    assert prompt == EXPECTED
    assert "format. \n6." in prompt  # the published template keeps a space after item 5
    assert "Your output must in the following format:" in prompt


def test_template_constant_is_unchanged() -> None:
    assert prompt_sha256(GLIDER_TEMPLATE) == "7c7a68f6106ea95ce061dde2499e35291c955e8e281d11489f9aae9811aac7fb"


def test_default_tags_in_order() -> None:
    assert DEFAULT_TAGS == ("CONTEXT", "USER INPUT", "MODEL OUTPUT", "GOLD ANSWER")


def test_blank_fields_are_omitted_and_order_kept() -> None:
    data = format_data({"GOLD ANSWER": "  \n", "ANSWER": "b", "QUESTION": "a"})
    assert data == "<ANSWER>\nb\n</ANSWER>\n\n<QUESTION>\na\n</QUESTION>"


def test_user_text_is_kept_verbatim() -> None:
    text = "  leading spaces, {rubric} and {data} braces, trailing newline\n"
    prompt = build_prompt({"MODEL OUTPUT": text}, "criteria {pass_criteria}", "0: a\n1: b")
    assert f"<MODEL OUTPUT>\n{text}\n</MODEL OUTPUT>" in prompt
    assert prompt.count("{rubric}") == 1 and "criteria {pass_criteria}" in prompt  # never substituted twice


def test_renamed_tags() -> None:
    prompt = build_prompt({"RETRIEVED PASSAGE": "p", "SUMMARY": "s"}, "Is the SUMMARY supported?", "0: no\n1: yes")
    assert "<RETRIEVED PASSAGE>\np\n</RETRIEVED PASSAGE>\n\n<SUMMARY>\ns\n</SUMMARY>" in prompt


@pytest.mark.parametrize(
    ("fields", "criteria", "rubric", "message"),
    [
        ({"MODEL OUTPUT": " "}, "c", "0: a\n1: b", "Every field is empty"),
        ({"MODEL OUTPUT": "x"}, " ", "0: a\n1: b", "pass criteria are empty"),
        ({"MODEL OUTPUT": "x"}, "c", "", "rubric is empty"),
        ({"BAD<TAG": "x"}, "c", "0: a\n1: b", "may not contain"),
        ({"": "x"}, "c", "0: a\n1: b", "tag is empty"),
    ],
)
def test_bad_input_raises_input_error(fields: dict[str, str], criteria: str, rubric: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        build_prompt(fields, criteria, rubric)


@pytest.mark.parametrize(
    ("rubric", "scale"),
    [
        ("0: The response is not faithful.\n1: The response is faithful.", (0, 1)),
        ("1: Poor\n2: Fair\n3: Good", (1, 3)),
        ("1: a\n2: b\n3: c\n4: d\n5: e", (1, 5)),
        ("Score 1: bad\nScore 5: great", (1, 5)),
        ("- 1. bad\n- 2. ok\n- 3. good", (1, 3)),
        ("5 = excellent\n4 = good\n1 = awful", (1, 5)),
        ("Intro text mentioning 2020 in passing.\n0: no\n1: yes", (0, 1)),
        ("  0) fails\n  1) passes", (0, 1)),
        ("0: a\n10: b", (0, 10)),
    ],
)
def test_infer_scale(rubric: str, scale: tuple[int, int]) -> None:
    assert infer_scale(rubric) == scale


@pytest.mark.parametrize(
    ("rubric", "message"),
    [
        ("Be nice.", "names no scores"),
        ("", "names no scores"),
        ("1: only one", "only the score 1"),
        ("1: bad\n100: perfect", "at most 11 levels"),
    ],
)
def test_infer_scale_errors(rubric: str, message: str) -> None:
    with pytest.raises(RubricError, match=message) as caught:
        infer_scale(rubric)
    assert isinstance(caught.value, ValueError)


def test_rubric_scores_are_distinct_and_sorted() -> None:
    assert rubric_scores("3: c\n1: a\n3: again\n2: b") == [1, 2, 3]


def test_chat_messages_single_user_turn() -> None:
    assert chat_messages("P") == [{"role": "user", "content": "P"}]


# CI always has the fixture, so there a missing fixture fails instead of skipping.
real_tokenizer = pytest.mark.skipif(
    not has_real_tokenizer() and not os.environ.get("CI"), reason="needs ../shared/fixtures/phi35-tokenizer"
)


@real_tokenizer
def test_chat_rendering_token_ids_with_real_tokenizer() -> None:
    from core.judge.transformers_backend import _load_tokenizer

    tokenizer = _load_tokenizer(str(PHI35_TOKENIZER), None, True)
    text = tokenizer.apply_chat_template(chat_messages("PROMPT"), tokenize=False, add_generation_prompt=True)
    assert text == "<|user|>\nPROMPT<|end|>\n<|assistant|>\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    # 349 is '▁P' as in the published tokenizer.json; transformers' rebuilt Llama tokenizer gives 29925 ('P').
    assert ids == [32010, 349, 3491, 7982, 32007, 32001]

    prompt = build_prompt(FIELDS, "Is the MODEL OUTPUT faithful to the CONTEXT?", "0: Not faithful.\n1: Faithful.")
    chat = tokenizer.apply_chat_template(chat_messages(prompt), tokenize=False, add_generation_prompt=True)
    full = tokenizer(chat, add_special_tokens=False)["input_ids"]
    assert full[0] == 32010 and full[-2:] == [32007, 32001]
    header = chat[: chat.index("Data to evaluate:\n") + len("Data to evaluate:\n")]
    assert len(tokenizer(header, add_special_tokens=False)["input_ids"]) == 204  # the constant, cacheable prefix


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("0: no\n1: yes", "0: no\n1: yes"),
        ("0: no\n1: yes\n", "0: no\n1: yes"),  # YAML `rubric: |`
        ("0: no   \r\n1: yes\r\n", "0: no\n1: yes"),  # a Windows paste with trailing spaces
        ("\n\n  0: no\n    - detail\n1: yes\n\n", "0: no\n    - detail\n1: yes"),  # inner indentation kept
        ("0: no\r1: yes", "0: no\n1: yes"),
    ],
)
def test_instructions_are_normalised_in_the_prompt(given: str, expected: str) -> None:
    assert normalize_instructions(given) == expected
    prompt = build_prompt({"MODEL OUTPUT": "x"}, given, given)
    assert prompt == build_prompt({"MODEL OUTPUT": "x"}, expected, expected)
    assert f"Pass Criteria:\n{expected}\n\nRubric:\n{expected}\n\nYour output" in prompt
