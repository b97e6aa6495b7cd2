"""Perturbations of a grading request that should not change the verdict, each a pure function.

A text perturbation takes a core.grading.GradeRequest and returns a `Perturbed`: the changed request and how
its score maps back to the original request's meaning (the same, or mirrored when the two responses of a
pairwise request were swapped). A judge perturbation changes nothing in the request: it names another judge
configuration of the same model (another back-end or quantization), which the runner loads through
core.judge.create_backend, as the app and the CLI load theirs.

When a perturbation cannot apply to a request (a rubric without score lines, a request without both
responses, tags with no known equivalent) it raises PerturbationNotApplicable, an InputError whose message
says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from core.errors import InputError
from core.grading import GradeRequest
from core.prompt import _RUBRIC_LINE, normalize_instructions

SAME: Final = "same"
MIRROR: Final = "mirror"
ScoreBack = Literal["same", "mirror"]

# The two responses of a pairwise request (GLIDER's pairwise prompts: "0: The MODEL OUTPUT 1 is better ...").
RESPONSE_1, RESPONSE_2 = "MODEL OUTPUT 1", "MODEL OUTPUT 2"

# Tag names and the equivalents GLIDER was also trained with (its training data varied the tag names).
TAG_EQUIVALENTS: Final[Mapping[str, str]] = {
    "CONTEXT": "DOCUMENT",
    "USER INPUT": "QUESTION",
    "MODEL OUTPUT": "RESPONSE",
    "GOLD ANSWER": "REFERENCE ANSWER",
    RESPONSE_1: "RESPONSE 1",
    RESPONSE_2: "RESPONSE 2",
}


class PerturbationNotApplicable(InputError):
    """The perturbation cannot apply to this request; the message says why (e.g. the rubric has no score lines)."""


@dataclass(frozen=True)
class Perturbed:
    """A perturbed request, and how a score of it maps back to the original request's meaning."""

    request: GradeRequest
    score_back: ScoreBack = SAME

    def to_original(self, score: int | None, scale: tuple[int, int]) -> int | None:
        """The perturbed request's score in the original's meaning: as is, or mirrored (low + high - score)."""
        if score is None or self.score_back == SAME:
            return score
        low, high = scale
        return low + high - score  # for a 0/1 pairwise rubric: 1 - score


@dataclass(frozen=True)
class JudgeConfig:
    """Another judge of the same model: a back-end registry name and its create_backend options."""

    backend: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """'transformers: /models/glider (quantization=nf4, device=auto)'."""
        from core.judge.options import describe_options

        return describe_options(self.backend, dict(self.options))


@dataclass(frozen=True)
class Perturbation:
    """A named perturbation: `apply` changes the request (text kind); a judge kind names another judge."""

    name: str
    description: str
    kind: Literal["text", "judge"]
    apply: Callable[[GradeRequest], Perturbed]
    judge: JudgeConfig | None = None


# --- rubric lines in reverse order -----------------------------------------------------------------------


def _rubric_blocks(rubric: str) -> tuple[list[str], list[int], list[list[str]]]:
    """(lines, the index of each score block's first line, each block's lines) of a normalised rubric.

    A block is a score line (core.prompt's rubric line) and the lines under it, until a blank line or the
    next score line: the same reading as core.prompt.rubric_levels. Other lines are kept where they are.
    """
    lines = normalize_instructions(rubric).split("\n")
    starts: list[int] = []
    blocks: list[list[str]] = []
    inside = False
    for index, line in enumerate(lines):
        if _RUBRIC_LINE.match(line):
            starts.append(index)
            blocks.append([line])
            inside = True
        elif not line.strip():
            inside = False
        elif inside:
            blocks[-1].append(line)
    return lines, starts, blocks


def reverse_rubric_text(rubric: str) -> str:
    """The rubric with its score lines (and the lines under each) in reverse order; other lines stay in place.

    PerturbationNotApplicable when the rubric has fewer than two score lines. Reversing twice gives the
    rubric as the prompt holds it (core.prompt.normalize_instructions).
    """
    lines, starts, blocks = _rubric_blocks(rubric)
    if len(blocks) < 2:
        raise PerturbationNotApplicable(
            "Cannot reverse the rubric's lines: it has " + ("no score lines" if not blocks else "only one score line")
            + " (write one line per score, e.g. '0: ...' and '1: ...')."
        )
    out: list[str] = []
    cursor = 0
    for start, block, replacement in zip(starts, blocks, reversed(blocks), strict=True):
        out.extend(lines[cursor:start])
        out.extend(replacement)
        cursor = start + len(block)
    out.extend(lines[cursor:])
    return "\n".join(out)


def reverse_rubric(request: GradeRequest) -> Perturbed:
    """The request with its rubric's score lines in reverse order (same scale, same descriptions)."""
    return Perturbed(replace(request, rubric=reverse_rubric_text(request.rubric)))


# --- tag names renamed to equivalents ------------------------------------------------------------------


def rename_in_text(text: str, mapping: Mapping[str, str]) -> str:
    """Every whole-word, case-sensitive occurrence of a mapping key replaced by its value, in one pass.

    Longer names are tried first, so 'MODEL OUTPUT 1' becomes 'RESPONSE 1', never 'RESPONSE' + ' 1' from a
    shorter key; a replacement is never renamed again.
    """
    if not mapping or not text:
        return text
    names = sorted(mapping, key=len, reverse=True)
    pattern = re.compile(
        r"(?<![\w])"  # not preceded by a letter, digit or underscore
        r"(" + "|".join(re.escape(name) for name in names) + r")"  # one of the names, longest first
        r"(?![\w])"  # not followed by one
    )
    return pattern.sub(lambda match: mapping[match.group(1)], text)


def rename_tags_with(request: GradeRequest, mapping: Mapping[str, str]) -> Perturbed:
    """The request with each field tag in `mapping` renamed, and its pass criteria and rubric renamed alike.

    Only the tags the request has are renamed (whole words, case-sensitive); the field texts are kept as
    they are. PerturbationNotApplicable when no tag has an equivalent, or a new name is taken by another field.
    """
    present = {tag.strip(): mapping[tag.strip()] for tag in request.fields if tag.strip() in mapping}
    if not present:
        known = ", ".join(sorted(mapping))
        raise PerturbationNotApplicable(
            f"Cannot rename the tags: none of {sorted(t.strip() for t in request.fields)} has a known equivalent "
            f"(known: {known})."
        )
    fields = {present.get(tag.strip(), tag): text for tag, text in request.fields.items()}
    if len(fields) != len(request.fields):
        raise PerturbationNotApplicable(
            "Cannot rename the tags: a new name is already the name of another field "
            f"({sorted(t for t in request.fields if t.strip() in present.values())})."
        )
    return Perturbed(replace(request, fields=fields, pass_criteria=rename_in_text(request.pass_criteria, present),
                             rubric=rename_in_text(request.rubric, present)))


def rename_tags(request: GradeRequest) -> Perturbed:
    """rename_tags_with GLIDER's equivalents: CONTEXT -> DOCUMENT, MODEL OUTPUT -> RESPONSE, ... (TAG_EQUIVALENTS)."""
    return rename_tags_with(request, TAG_EQUIVALENTS)


# --- pairwise: the two responses swapped --------------------------------------------------------------


def swap_responses(request: GradeRequest) -> Perturbed:
    """The texts of MODEL OUTPUT 1 and MODEL OUTPUT 2 swapped (tags, criteria and rubric unchanged).

    A score of the swapped request means the opposite: `to_original` mirrors it (0/1: score -> 1 - score).
    PerturbationNotApplicable when the request lacks either response, or either is blank.
    """
    tags = {tag.strip(): tag for tag in request.fields}
    missing = [name for name in (RESPONSE_1, RESPONSE_2)
               if name not in tags or not (request.fields[tags[name]] or "").strip()]
    if missing:
        raise PerturbationNotApplicable(
            f"Cannot swap the two responses: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            "missing or empty (a pairwise request has both MODEL OUTPUT 1 and MODEL OUTPUT 2)."
        )
    first, second = tags[RESPONSE_1], tags[RESPONSE_2]
    fields = dict(request.fields)
    fields[first], fields[second] = request.fields[second], request.fields[first]
    return Perturbed(replace(request, fields=fields), MIRROR)


# --- whitespace and line endings --------------------------------------------------------------------


def _messy(text: str) -> str:
    """The text with a leading blank line, two spaces at each line's end, CRLF line ends and two trailing ones."""
    if not (text or "").strip():
        return text  # a blank field is left out of the prompt either way
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\r\n" + "\r\n".join(f"{line}  " for line in lines) + "\r\n\r\n"


def whitespace(request: GradeRequest) -> Perturbed:
    """Every field, the pass criteria and the rubric with CRLF line ends, trailing spaces and blank lines around.

    Nothing that matters changes: the words, their order and the line breaks are the same.
    """
    fields = {tag: _messy(text) for tag, text in request.fields.items()}
    return Perturbed(replace(request, fields=fields, pass_criteria=_messy(request.pass_criteria),
                             rubric=_messy(request.rubric)))


# --- another judge -------------------------------------------------------------------------------------


def unchanged(request: GradeRequest) -> Perturbed:
    """The request as it is (a judge perturbation changes the judge, not the request)."""
    return Perturbed(request)


OTHER_JUDGE = "other-judge"


def other_judge(config: JudgeConfig) -> Perturbation:
    """The judge perturbation: the same requests graded by `config` (another back-end or quantization)."""
    return Perturbation(OTHER_JUDGE, f"the same model through another back-end or quantization: {config.describe()}",
                        "judge", unchanged, config)


def default_other_judge(backend: str, options: Mapping[str, Any]) -> JudgeConfig:
    """The quantization-drift check's default: transformers bf16 (none) vs nf4; InputError where none is implied."""
    if backend != "transformers":
        raise InputError(f"Name the other judge to compare with (the {backend} back-end has no default "
                         "alternative): e.g. --other-backend transformers --other-model PATH.")
    quantization = str(options.get("quantization") or "auto")
    other = "nf4" if quantization == "none" else "none"  # auto means nf4 (core.judge.options)
    return JudgeConfig("transformers", {**options, "quantization": other})


# --- the registry -------------------------------------------------------------------------------------

PERTURBATIONS: Final[Mapping[str, Perturbation]] = {
    perturbation.name: perturbation
    for perturbation in (
        Perturbation("reverse-rubric", "the rubric's score lines in reverse order", "text", reverse_rubric),
        Perturbation("rename-tags", "tag names renamed to equivalents (CONTEXT -> DOCUMENT, MODEL OUTPUT -> "
                     "RESPONSE, ...), the pass criteria and rubric alike", "text", rename_tags),
        Perturbation("swap-responses", "pairwise: the two responses swapped (the verdict mapped back)", "text",
                     swap_responses),
        Perturbation("whitespace", "CRLF line ends, trailing spaces and blank lines around every text (should "
                     "flip nothing)", "text", whitespace),
        Perturbation(OTHER_JUDGE, "the same model through another back-end or quantization (the "
                     "quantization-drift check)", "judge", unchanged),
    )
}
TEXT_DEFAULTS: Final = ("reverse-rubric", "rename-tags", "whitespace")


def describe_all() -> list[tuple[str, str]]:
    """(name, one-line description) of every perturbation, for the CLI's help and the Audit panel."""
    return [(name, perturbation.description) for name, perturbation in PERTURBATIONS.items()]


def resolve(names: Sequence[str], judge: JudgeConfig | None = None) -> list[Perturbation]:
    """The perturbations named, in order, once each; InputError for an unknown name or other-judge without a judge."""
    chosen: list[Perturbation] = []
    for raw in names:
        name = raw.strip()
        if not name or name in (p.name for p in chosen):
            continue
        if name not in PERTURBATIONS:
            raise InputError(f"Unknown perturbation {name!r}; known: {', '.join(PERTURBATIONS)}.")
        if name == OTHER_JUDGE:
            if judge is None:
                raise InputError("The other-judge perturbation needs the judge to compare with.")
            chosen.append(other_judge(judge))
        else:
            chosen.append(PERTURBATIONS[name])
    if not chosen:
        raise InputError(f"Choose at least one perturbation: {', '.join(PERTURBATIONS)}.")
    return chosen
