"""Read the score distribution from the token log-probabilities an OpenAI-compatible server returns.

With `logprobs=True, top_logprobs=k` a server lists, for every generated token, its text and the k
most likely tokens it could have written instead, each with its log-probability. This module finds
the step where the model wrote its score the way logit_distribution.py does on logits (the last `<score>` tag,
then the first character of the number) and reads the probability of each value of the scale there.
It is pure: no server, no tokenizer, no torch.

Only probability the server listed is ever counted. A token outside the top k counts as 0, so the
returned mass is a lower bound of the probability of writing a value of the scale.

Multi-token values (10 is '1','0' in Phi-3's vocabulary) are followed along the path the model took:
when it chose '1', the next step lists what could follow that '1', so P(10) = P('1')·P('0' | '1') and
P(1) = P('1')·P(anything that ends the number | '1'). When it chose another first token, no server
says how P('1') splits between 1 and 10; the distribution cannot be read and None is returned, unless
'1' is not among the listed alternatives at all (then, like any unlisted token, it counts as 0).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from typing import Any, NamedTuple

# The same pattern the other back-ends use on decoded ids, so every back-end reads the score at the same place.
from core.judge.common import SCORE_START

# The number a token path spells out: an optional minus sign and the digits that follow it.
_NUMBER = re.compile(r"-?\d*")
# A SentencePiece byte token as some servers print it raw, e.g. '<0x0A>' for a newline.
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class TokenStep(NamedTuple):
    """One generated token: its text and the alternatives (text, log-probability) the server listed.

    The alternatives should include the chosen token itself (they do for greedy decoding, whose choice
    is the most likely token); steps_from_openai adds it when a server lists it only separately.
    """

    token: str
    alternatives: Sequence[tuple[str, float]]


Steps = Sequence[TokenStep | tuple[str, Sequence[tuple[str, float]]]]


def score_distribution(steps: Steps, scale: tuple[int, int]) -> tuple[dict[int, float], float] | None:
    """(value → probability renormalized over the scale, listed mass before renormalizing), or None.

    None when the text has no score, the score step has no log-probabilities, the value the model
    chose is not among the listed alternatives, or a shared first token makes the split unreadable.
    """
    if not steps:
        return None
    texts = [step[0] for step in steps]
    text = "".join(texts)
    matches = list(SCORE_START.finditer(text))
    if not matches:
        return None
    position = matches[-1].end()
    ends = list(accumulate(len(token) for token in texts))
    index = bisect_right(ends, position)  # the step whose text holds the number's first character
    if index >= len(steps):
        return None
    start = ends[index] - len(texts[index])
    values = {str(value): value for value in range(scale[0], scale[1] + 1)}
    probabilities = dict.fromkeys(values.values(), 0.0)
    lead = text[start:position]  # what the chosen token holds before the number (e.g. a space)
    if not _read(steps, index, lead, "", 1.0, values, probabilities):
        return None
    mass = sum(probabilities.values())
    if mass <= 0.0:
        return None
    return {value: p / mass for value, p in probabilities.items()}, mass


def _read(
    steps: Steps,
    index: int,
    lead: str,
    written: str,
    weight: float,
    values: Mapping[str, int],
    out: dict[int, float],
) -> bool:
    """Add to `out` the probability of each value reachable from step `index`; False when unreadable.

    `written` is the part of the number already written on the chosen path, `weight` its probability.
    """
    chosen, alternatives = steps[index][0], _merge(steps[index][1])
    if chosen not in alternatives:
        return False  # nothing says how likely the model's own choice was
    for text, probability in alternatives.items():
        if not text.startswith(lead):
            continue  # a token that does not begin the way the chosen one does: not a value here
        rest = text[len(lead):]
        if not rest and not written:
            continue  # no character of a number: not a value at the score step
        # After a digit, a token with no text (the end of the turn: servers print special tokens as '') ends
        # the number like any other non-digit; llama.cpp's server lists it right after a '1' on 0-10.
        spelled = written + rest
        number = _number(spelled)
        if len(number) <= len(written):  # this token ends the number written so far
            if written in values:
                out[values[written]] += weight * probability
            continue
        ended = len(number) < len(spelled)  # something other than a digit follows within the token
        longer = any(len(value) > len(number) and value.startswith(number) for value in values)
        if ended or not longer:
            # Like logit_distribution.py, a value no other value extends counts as written without looking further.
            if number in values:
                out[values[number]] += weight * probability
            continue
        # The token stops inside a number a longer value could continue ('1' on 0-10).
        if text != chosen or index + 1 >= len(steps):
            return False  # only the path the model took says what follows; the split is unknown
        if not _read(steps, index + 1, "", number, weight * probability, values, out):
            return False
    return True


def _number(text: str) -> str:
    """The number `text` starts with ('' when none); the pattern also matches the empty string."""
    match = _NUMBER.match(text)
    return match.group() if match else ""


def _merge(alternatives: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Probability of each distinct text: different tokens that decode alike write the same text."""
    merged: dict[str, float] = {}
    for text, logprob in alternatives:
        if text is None or logprob is None or math.isnan(logprob):
            continue
        merged[text] = merged.get(text, 0.0) + math.exp(logprob)
    return merged


def steps_from_openai(content: Iterable[Any] | None) -> list[TokenStep] | None:
    """TokenSteps from a chat completion's `choices[i].logprobs.content`, or None when there is none.

    Accepts the openai client's objects or plain JSON dicts: vLLM's and llama.cpp's `token`/`logprob`/
    `top_logprobs`, and llama.cpp's `prob`/`top_probs` (post-sampling probabilities) alike.
    """
    if not content:
        return None
    steps = []
    for entry in content:
        fields = _fields(entry)
        token = _piece(fields.get("token"))
        listed = fields.get("top_logprobs") or fields.get("top_probs") or []
        alternatives = [(_piece(_fields(alt).get("token")), _logprob(_fields(alt))) for alt in listed]
        own = _logprob(fields)
        if own is not None and token not in {text for text, _ in alternatives}:
            alternatives.append((token, own))
        steps.append(TokenStep(token, [(text, lp) for text, lp in alternatives if lp is not None]))
    return steps


def _fields(entry: Any) -> dict[str, Any]:
    if isinstance(entry, Mapping):
        return dict(entry)
    if hasattr(entry, "model_dump"):  # the openai client's pydantic models
        return dict(entry.model_dump())
    return dict(vars(entry))


def _logprob(fields: Mapping[str, Any]) -> float | None:
    if fields.get("logprob") is not None:
        return float(fields["logprob"])
    if fields.get("prob") is not None:  # llama.cpp with post_sampling_probs reports probabilities
        probability = float(fields["prob"])
        return math.log(probability) if probability > 0 else -math.inf
    return None


def _piece(token: Any) -> str:
    """Token text as written; raw SentencePiece pieces ('▁1', '<0x0A>') are turned into that text."""
    text = "" if token is None else str(token)
    byte = _BYTE_PIECE.fullmatch(text)
    if byte and int(byte.group(1), 16) < 0x80:
        return chr(int(byte.group(1), 16))
    return text.replace("\u2581", " ")
