"""The published GLIDER prompt, and pure functions that fill it in.

The template is reproduced byte for byte from the GLIDER model card (arXiv 2412.14140), including
the trailing space after item 5 and the wording "must in": the model was trained on exactly this text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from core.errors import InputError, RubricError

GLIDER_TEMPLATE = """Analyze the following pass criteria carefully and score the text based on the rubric defined below.

To perform this evaluation, you must:

1. Understand the text tags, pass criteria and rubric thoroughly.
2. Review the finer details of the text and the rubric.
3. Compare the tags to be evaluated to the score descriptions in the rubric.
4. Pay close attention to small details that might impact the final score and form accurate associations between tags and pass criteria.
5. Write a detailed reasoning justifying your evaluation in a bullet point format. 
6. The reasoning must summarize the overall strengths and weaknesses of the output while quoting exact phrases from the output wherever required.
7. Output a list of words or phrases that you believe are the most important in determining the score.
8. Assign a final score based on the scoring rubric.

Data to evaluate:
{data}

Pass Criteria:
{pass_criteria}

Rubric:
{rubric}

Your output must in the following format:
<reasoning>
[Detailed reasoning justifying your evaluation in a bullet point format according to the specifics defined above]
</reasoning>
<highlight>
[List of words or phrases that you believe are the most important in determining the score]
</highlight>
<score>
[The final integer score assigned based on the scoring rubric]
</score>"""

# Default field tags, in the order the paper's examples use them.
CONTEXT, USER_INPUT, MODEL_OUTPUT, GOLD_ANSWER = "CONTEXT", "USER INPUT", "MODEL OUTPUT", "GOLD ANSWER"
DEFAULT_TAGS: tuple[str, ...] = (CONTEXT, USER_INPUT, MODEL_OUTPUT, GOLD_ANSWER)

# A scale wider than this is almost certainly a typo (e.g. "1-100"): GLIDER was trained on 0-1, 1-3, 1-5.
MAX_SCALE_LEVELS = 11

_PLACEHOLDER = re.compile(r"\{(data|pass_criteria|rubric)\}")

_RUBRIC_LINE = re.compile(
    r"""
    ^\s*                      # indentation
    (?:[-*\u2022]\s*)?        # an optional bullet
    (?:score\s*)?             # an optional word "Score"
    (?P<value>-?\d{1,3})      # the score value
    \s*[:.)=\u2013\u2014-]    # a separator: colon, dot, paren, equals, dash
    \s*\S                     # followed by a description
    """,
    re.VERBOSE | re.IGNORECASE | re.MULTILINE,
)

_BAD_TAG_CHARS = re.compile(r"[<>\n\r]")


def check_tag(tag: object) -> str:
    """The tag's name, stripped; InputError when it is empty or holds '<', '>' or a line break.

    The one rule for field tags: prompts (format_data) and study definitions (core.studies) both use it.
    """
    name = tag.strip() if isinstance(tag, str) else ""
    if not name:
        raise InputError("A field tag is empty; give every field a name such as 'MODEL OUTPUT'.")
    if _BAD_TAG_CHARS.search(name):
        raise InputError(f"Field tag {name!r} may not contain '<', '>' or line breaks.")
    return name


def format_data(fields: Mapping[str, str]) -> str:
    """Render the tagged data blocks; fields whose text is empty or blank are omitted."""
    blocks = []
    for tag, text in fields.items():
        if text is None or not str(text).strip():
            continue
        name = check_tag(tag)
        blocks.append(f"<{name}>\n{text}\n</{name}>")
    if not blocks:
        raise InputError("Every field is empty: paste at least the text to be judged.")
    return "\n\n".join(blocks)


def normalize_instructions(text: str) -> str:
    """Pass criteria or a rubric as the prompt holds it: \\n line ends, no spaces at line ends, no blank
    lines or spaces around it; the text and its indentation inside are kept.

    The one place this is decided, so that a rubric from a YAML file (`rubric: |` keeps a final newline),
    a CSV cell, a Windows paste or the same words typed in the Grade tab give the same prompt and the
    same prompt SHA-256.
    """
    lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


def build_prompt(fields: Mapping[str, str], pass_criteria: str, rubric: str) -> str:
    """Fill the GLIDER template with the tagged fields, pass criteria and rubric (pure).

    Pass criteria and rubric are normalised first (normalize_instructions); field texts are used as given,
    since highlights are located by offsets into them.
    """
    pass_criteria, rubric = normalize_instructions(pass_criteria), normalize_instructions(rubric)
    if not pass_criteria:
        raise InputError("The pass criteria are empty: say what a passing text must do.")
    if not rubric:
        raise RubricError("The rubric is empty: give one line per score, e.g. '0: ...' and '1: ...'.")
    values = {"data": format_data(fields), "pass_criteria": pass_criteria, "rubric": rubric}
    # One pass over the template, so braces inside user text are never treated as placeholders.
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], GLIDER_TEMPLATE)


def rubric_scores(rubric: str) -> list[int]:
    """The distinct score values the rubric's numbered lines name, in ascending order."""
    return sorted({int(match.group("value")) for match in _RUBRIC_LINE.finditer(rubric or "")})


def rubric_levels(rubric: str) -> list[tuple[int, str]]:
    """Each score the rubric's numbered lines name, with its description, in ascending score order (pure).

    A description runs on over the following lines until a blank line or the next score line (so a
    level may have bullet points under it); whitespace is collapsed to single spaces. A score named on
    two lines gets both descriptions. Text before the first score line is not part of any level.
    """
    texts: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in (rubric or "").splitlines():
        match = _RUBRIC_LINE.match(line)
        if match is not None:
            current = texts.setdefault(int(match.group("value")), [])
            current.append(line[match.end() - 1 :])  # the match ends on the description's first character
        elif not line.strip():
            current = None
        elif current is not None:
            current.append(line)
    return [(score, " ".join(" ".join(parts).split())) for score, parts in sorted(texts.items())]


def infer_scale(rubric: str) -> tuple[int, int]:
    """The (min, max) score named by the rubric; RubricError when it names none or too many."""
    scores = rubric_scores(rubric)
    if not scores:
        raise RubricError(
            "The rubric names no scores. Write one line per score, for example\n"
            "0: The response is not faithful to the context.\n1: The response is faithful to the context."
        )
    low, high = scores[0], scores[-1]
    if low == high:
        raise RubricError(f"The rubric names only the score {low}; a rubric needs at least two scores.")
    if high - low + 1 > MAX_SCALE_LEVELS:
        raise RubricError(
            f"The rubric spans {low}-{high} ({high - low + 1} levels); GLIDER supports scales of at most "
            f"{MAX_SCALE_LEVELS} levels such as 0-1, 1-3 or 1-5."
        )
    return low, high


def chat_messages(prompt: str) -> list[dict[str, str]]:
    """GLIDER reads the whole prompt as one user turn, with no system message."""
    return [{"role": "user", "content": prompt}]


def prompt_sha256(prompt: str) -> str:
    """Hex SHA-256 of the prompt text, stored with every judgment for reproducibility."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()
