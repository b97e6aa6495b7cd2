"""Read the probability of each score value at the position where the model wrote its score.

The model writes `<score>\\n4\\n</score>`; the logits of the step that produced '4' give the
probability of every other value it could have written there. Multi-token values (10 on a 0-10
scale is '1','0' in Phi-3's vocabulary) are scored as token sequences, reusing the generation's
key/value cache so no prompt is processed twice. In a left-padded batch, each row's keys and values
are cut out of the batch's cache (without the row's padding) before they are extended.
"""

from __future__ import annotations

import math
import re
from typing import Any

_SCORE_START = re.compile(
    r"""
    <score>                    # the opening tag (the last one wins, as in the parser)
    \s*                        # newline or spaces GLIDER writes before the value
    (?:score\s*[:=]?\s*)?      # a 'Score:' label some answers repeat
    (?=-?\d)                   # stop right before the number itself
    """,
    re.VERBOSE | re.IGNORECASE,
)


class ScoreLocator:
    """Maps generated token ids to the score step and reads the distribution there."""

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
        matches = list(_SCORE_START.finditer(text))
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

    def distribution(
        self,
        model: Any,
        generated: list[int],
        step_logits: tuple[Any, ...],
        cache: Any,
        prompt_length: int,
        scale: tuple[int, int],
        *,
        row: int = 0,
        padding: int = 0,
    ) -> tuple[dict[int, float], float] | None:
        """(value → probability renormalized over the scale, mass before renormalizing), or None.

        `step_logits` and `cache` come from one `generate` call; `row` picks this prompt's row of a batch
        and `padding` is how many pad tokens sit before its prompt (left padding). A single unpadded row
        extends `cache` in place; a batch's cache is left untouched.
        """
        import torch

        step = self.score_step(generated)
        if step is None or step >= len(step_logits):
            return None
        values = list(range(scale[0], scale[1] + 1))
        sequences = {value: self.value_tokens(value) for value in values}
        if sequences[values[0]] and not any(generated[step] == seq[0] for seq in sequences.values()):
            return None  # the model wrote something else there (e.g. a word); nothing to read
        continuation = {tid for seq in sequences.values() for tid in seq}
        contexts: dict[tuple[int, ...], Any] = {(): torch.log_softmax(step_logits[step][row].float(), dim=-1)}
        keep = prompt_length + step  # tokens before the score: the prompt and generated[:step]
        own_cache = None
        if any(len(seq) > 1 for seq in sequences.values()):  # only multi-token values need forward passes
            own_cache = row_cache(model, cache, row, padding, keep)
            if own_cache is None:
                return None

        def log_probs(context: tuple[int, ...]) -> Any:
            if context not in contexts:
                contexts[context] = self._next_log_probs(model, own_cache, keep, context)
            return contexts[context]

        probabilities: dict[int, float] = {}
        for value, sequence in sequences.items():
            logp = 0.0
            for index, token in enumerate(sequence):
                logp += float(log_probs(tuple(sequence[:index]))[token])
            extends = [s for s in sequences.values() if len(s) > len(sequence) and s[: len(sequence)] == sequence]
            if extends:  # '1' only counts as the value 1 when no further digit follows
                after = log_probs(tuple(sequence))
                p_more = float(torch.exp(after[list(continuation)]).sum())
                logp += math.log(max(1e-12, 1.0 - p_more))
            probabilities[value] = math.exp(logp)
        mass = sum(probabilities.values())
        if mass <= 0.0:
            return None
        return {value: p / mass for value, p in probabilities.items()}, mass

    @staticmethod
    def _next_log_probs(model: Any, cache: Any, keep: int, context: tuple[int, ...]) -> Any:
        """Log-probabilities after the first `keep` cached tokens + context, extending the cached keys.

        `cache` holds one unpadded row, so the context sits at positions keep, keep+1, … as it would have
        in the generation; the positions are passed explicitly rather than inferred from the cache.
        """
        import torch

        surplus = cache.get_seq_length() - keep
        if surplus > 0:
            cache.crop(-surplus)  # a negative count removes that many tokens from the end
        device = model.device
        input_ids = torch.tensor([list(context)], device=device)
        position_ids = torch.arange(keep, keep + len(context), device=device).unsqueeze(0)
        with torch.inference_mode():
            logits = model(
                input_ids=input_ids,
                cache=cache,
                use_cache=True,
                position_ids=position_ids,
                attention_mask=torch.ones((1, keep + len(context)), dtype=torch.long, device=device),
            ).logits
        return torch.log_softmax(logits[0, -1].float(), dim=-1)


def row_cache(model: Any, cache: Any, row: int, padding: int, keep: int) -> Any | None:
    """One row's first `keep` real tokens of a generation's cache, as an unpadded one-row cache (or None).

    A batch of one without padding is returned as it is (the caller crops and extends it in place, as
    the single path always did). Otherwise the row's keys and values from `padding` on are copied into a
    fresh DynamicCache built from the model's config: a copy of one row's cache (for GLIDER, ~0.4 MB per
    token in bf16), made only when a multi-token score value needs a forward pass, and never a second
    pass over the prompt. The batch's cache itself is not modified, so other rows can still read it.
    """
    from transformers import DynamicCache

    layers = list(cache.layers)
    if row == 0 and padding == 0 and all(layer.keys.shape[0] == 1 for layer in layers):
        return cache
    own = DynamicCache(config=model.config)
    for index, layer in enumerate(layers):
        if layer.keys.shape[-2] != cache.get_seq_length(index):
            # A sliding-window layer that already dropped its oldest tokens: absolute positions no longer
            # index its tensors (GLIDER's window, 262,144, is longer than any context it reads).
            return None
        stop = padding + keep
        own.update(layer.keys[row : row + 1, :, padding:stop], layer.values[row : row + 1, :, padding:stop], index)
    return own
