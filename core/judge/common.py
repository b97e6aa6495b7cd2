"""What every judge back-end shares: GLIDER's facts, the context guard and the small pure helpers.

Back-ends import from here and from core.judge.base, never from one another (httpx's transports share
a base module the same way). This module is the bottom layer of core.judge: it imports no back-end, no
engine (torch, numpy, llama_cpp, openai) and not even core.judge.base, so base can build on it.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from core.errors import ContextTooLongError, JudgeError
from core.prompt import GLIDER_TEMPLATE

log = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 1024
# GLIDER was trained at 8,192 tokens; longer prompts may work (Phi-3.5 reads 128k) but are untested.
TRAINED_CONTEXT = 8192
# Leave at least this many tokens for the answer when deciding whether a prompt fits.
MIN_ANSWER_TOKENS = 64
# GLIDER stops on <|end|>, <|assistant|> and <|endoftext|> (ids 32007, 32001, 32000 in Phi-3's vocabulary).
STOP_TOKENS = ("<|end|>", "<|assistant|>", "<|endoftext|>")

DEFAULT_MODEL_ID = "PatronusAI/glider"  # the transformers back-end's weights
DEFAULT_GGUF_MODEL_ID = "PatronusAI/glider-gguf"  # the llama.cpp back-end's quantized files
# The transformers back-end's quantization names ('auto' resolves to nf4 there).
QUANTIZATIONS = ("auto", "nf4", "int4", "int8", "none")

# Where the score's number starts in the answer's text: every back-end reads the distribution there.
SCORE_START = re.compile(
    r"""
    <score>                    # the opening tag (the last one wins, as in the parser)
    \s*                        # newline or spaces GLIDER writes before the value
    (?:score\s*[:=]?\s*)?      # a 'Score:' label some answers repeat
    (?=-?\d)                   # stop right before the number itself
    """,
    re.VERBOSE | re.IGNORECASE,
)
# Stands where the data would start, to cut the constant head out of a chat-formatted prompt.
DATA_MARKER = "\ue000GLIDER-DATA\ue000"


# -- the context guard -----------------------------------------------------------------------------
def trained_context_warning(prompt_tokens: int) -> str | None:
    """The warning for a prompt longer than GLIDER's training context, or None when it is not."""
    if prompt_tokens <= TRAINED_CONTEXT:
        return None
    return (f"The prompt has {prompt_tokens:,} tokens, more than the {TRAINED_CONTEXT:,} GLIDER was trained on; "
            "scores may be less reliable.")


def check_max_new_tokens(max_new_tokens: int) -> None:
    """JudgeError unless at least one token may be generated."""
    if max_new_tokens < 1:
        raise JudgeError("max_new_tokens must be at least 1.")


def fit_context(prompt_tokens: int, max_new_tokens: int, max_context: int) -> tuple[int, list[str]]:
    """The context guard: refuse what cannot fit, warn past GLIDER's training length, cap the answer.

    Returns the (possibly lowered) max_new_tokens and the warnings. A back-end that cannot count a prompt
    before generating (a server) words its own refusal and adds `trained_context_warning` afterwards.
    """
    check_max_new_tokens(max_new_tokens)
    if prompt_tokens + MIN_ANSWER_TOKENS > max_context:
        raise ContextTooLongError(
            f"The prompt has {prompt_tokens:,} tokens but the model reads at most {max_context:,} "
            f"(including at least {MIN_ANSWER_TOKENS} for the answer). Shorten the context or the output; "
            "nothing is truncated silently."
        )
    warnings = [warning for warning in (trained_context_warning(prompt_tokens),) if warning]
    room = max_context - prompt_tokens
    if max_new_tokens > room:
        warnings.append(f"max_new_tokens lowered from {max_new_tokens} to {room} to fit the model's context.")
        max_new_tokens = room
    return max_new_tokens, warnings


def check_batch(prompts: Sequence[str], scales: Sequence[Any], max_new_tokens: int | None = None) -> None:
    """ValueError when prompts and scales do not pair up; JudgeError for a max_new_tokens below 1 (if given)."""
    if len(scales) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(scales)} scales.")
    if max_new_tokens is not None:
        check_max_new_tokens(max_new_tokens)


# -- the constant prompt head ----------------------------------------------------------------------
def prompt_head() -> str:
    """GLIDER's instructions up to where the data starts: the text every prompt begins with."""
    return GLIDER_TEMPLATE.split("{data}", 1)[0]


def constant_chat_prefix(chat_format: Callable[[str], str]) -> str:
    """The chat-formatted text every GLIDER prompt starts with: the turn's opening and the instructions.

    `chat_format` renders a prompt as one user turn with the generation prompt (the back-end's own chat
    template); a marker where the data would start shows where to cut. '' when the template hides it.
    """
    text = chat_format(prompt_head() + DATA_MARKER)
    cut = text.find(DATA_MARKER)
    return text[:cut] if cut >= 0 else ""


def common_prefix_length(first: Sequence[int], second: Sequence[int]) -> int:
    """How many leading ids the two sequences share."""
    length = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        length += 1
    return length


def reusable_prefix_length(ids: Sequence[int], prefix_ids: Sequence[int]) -> int:
    """How many of the prompt's leading ids equal the stored prefix's, leaving at least one id to evaluate.

    Only the leading ids that match count (tokenization may merge across the prefix's end); 0 without a prefix.
    """
    if not prefix_ids:
        return 0
    return min(common_prefix_length(ids, prefix_ids), len(ids) - 1)


# -- offline detection -----------------------------------------------------------------------------
def offline_by_environment() -> bool:
    """Whether HF_HUB_OFFLINE tells the Hugging Face client not to go online."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connect quickly (offline, its client retries for minutes)."""
    import socket
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_local_files_only(local_files_only: bool | None, model: str, notes: list[str], *, local: bool) -> bool:
    """Whether to load `model` from local files only: as asked, else when HF_HUB_OFFLINE says so or when the
    Hub cannot be reached (asked only for a Hub id, not a `local` path).

    When the Hub cannot be reached, says so in `notes` (shown with the judge) and in the log.
    """
    if local_files_only is not None:
        return local_files_only
    if offline_by_environment():
        return True
    if local or hub_reachable():
        return False
    notes.append("Hugging Face Hub unreachable: loaded from the local cache only")
    log.warning("The Hugging Face Hub is unreachable; looking for %s in the local cache only", model)
    return True


# -- the score distribution ------------------------------------------------------------------------
def scale_sequences(
    value_tokens: Callable[[int], list[int]], scale: tuple[int, int], chosen: int
) -> dict[int, list[int]] | None:
    """Each value of the scale → the token ids that write it; None when `chosen` (the token the model wrote
    at the score step) begins none of them (it wrote something else there, e.g. a word)."""
    values = range(scale[0], scale[1] + 1)
    sequences = {value: value_tokens(value) for value in values}
    if sequences[scale[0]] and not any(chosen == sequence[0] for sequence in sequences.values()):
        return None
    return sequences


def combine_value_probabilities(
    sequences: Mapping[int, Sequence[int]],
    log_probs: Callable[[tuple[int, ...]], Any],
    more_digits: Callable[[Any, list[int]], float],
) -> tuple[dict[int, float], float] | None:
    """(value → probability renormalized over the scale, mass before renormalizing), or None.

    `log_probs(context)` is the next-token log-probability row after the score step's context (the value's
    tokens written so far; () at the score step itself), indexable by token id, whatever the engine (torch,
    numpy). `more_digits(row, ids)` is the probability, in that row, of writing one of `ids`. A value is the
    product of its tokens' probabilities; '1' only counts as the value 1 when no further digit follows.
    """
    continuation = sorted({token for sequence in sequences.values() for token in sequence})
    probabilities: dict[int, float] = {}
    for value, sequence in sequences.items():
        logp = 0.0
        for index, token in enumerate(sequence):
            logp += float(log_probs(tuple(sequence[:index]))[token])
        longer = any(len(s) > len(sequence) and list(s[: len(sequence)]) == list(sequence) for s in sequences.values())
        if longer:
            p_more = more_digits(log_probs(tuple(sequence)), continuation)
            logp += math.log(max(1e-12, 1.0 - p_more))
        probabilities[value] = math.exp(logp)
    mass = sum(probabilities.values())
    if mass <= 0.0:
        return None
    return {value: p / mass for value, p in probabilities.items()}, mass


class ScoreTokens:
    """Finds the score step among generated token ids and the ids each value is written with.

    Needs only the slice of a tokenizer it calls (decode, convert_tokens_to_ids, unk_token_id, __call__),
    so the llama.cpp back-end answers it from its own vocabulary; reading the distribution is the engine's.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def value_tokens(self, value: int) -> list[int]:
        """Token ids the model writes for `value` right after whitespace (one per character in Phi-3)."""
        unk = self.tokenizer.unk_token_id
        per_char = [self.tokenizer.convert_tokens_to_ids(ch) for ch in str(value)]
        if all(tid is not None and tid != unk for tid in per_char):
            return per_char
        ids = self.tokenizer(str(value), add_special_tokens=False)["input_ids"]
        return list(ids)

    def score_step(self, generated: list[int]) -> int | None:
        """Index into `generated` of the first token of the score value, or None when there is none."""
        text = self._decode(generated)
        matches = list(SCORE_START.finditer(text))
        if not matches:
            return None
        position = matches[-1].end()
        # Smallest i whose decoded prefix reaches past the score's first character.
        low, high = 0, len(generated) - 1
        while low < high:
            middle = (low + high) // 2
            if len(self._decode(generated[: middle + 1])) > position:
                high = middle
            else:
                low = middle + 1
        prefix = self._decode(generated[: low + 1])
        if len(prefix) <= position or not text.startswith(prefix[: position + 1]):
            return None  # decoding is not prefix-stable here; better no distribution than a wrong one
        return low

    def sequences_at(self, generated: list[int], step: int, scale: tuple[int, int]) -> dict[int, list[int]] | None:
        """Each value of the scale → its token ids; None when the model wrote no value at `step`."""
        return scale_sequences(self.value_tokens, scale, generated[step])
