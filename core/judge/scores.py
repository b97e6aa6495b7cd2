"""Read the probability of each score value at the position where the model wrote its score.

The model writes `<score>\\n4\\n</score>`; the logits of the step that produced '4' give the
probability of every other value it could have written there. Multi-token values (10 on a 0-10
scale is '1','0' in Phi-3's vocabulary) are scored as token sequences, reusing the generation's
key/value cache so no prompt is processed twice.
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
    ) -> tuple[dict[int, float], float] | None:
        """(value → probability renormalized over the scale, mass before renormalizing), or None."""
        import torch

        step = self.score_step(generated)
        if step is None or step >= len(step_logits):
            return None
        values = list(range(scale[0], scale[1] + 1))
        sequences = {value: self.value_tokens(value) for value in values}
        if sequences[values[0]] and not any(generated[step] == seq[0] for seq in sequences.values()):
            return None  # the model wrote something else there (e.g. a word); nothing to read
        continuation = {tid for seq in sequences.values() for tid in seq}
        contexts: dict[tuple[int, ...], Any] = {(): torch.log_softmax(step_logits[step][0].float(), dim=-1)}

        def log_probs(context: tuple[int, ...]) -> Any:
            if context not in contexts:
                contexts[context] = self._next_log_probs(model, generated, cache, prompt_length, step, context)
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
    def _next_log_probs(
        model: Any, generated: list[int], cache: Any, prompt_length: int, step: int, context: tuple[int, ...]
    ) -> Any:
        """Log-probabilities after prompt + generated[:step] + context, extending the cached keys."""
        import torch

        keep = prompt_length + step
        surplus = cache.get_seq_length() - keep
        if surplus > 0:
            cache.crop(-surplus)  # a negative count removes that many tokens from the end
        device = model.device
        input_ids = torch.tensor([list(context)], device=device)
        with torch.inference_mode():
            logits = model(
                input_ids=input_ids,
                cache=cache,
                use_cache=True,
                attention_mask=torch.ones((1, keep + len(context)), dtype=torch.long, device=device),
            ).logits
        return torch.log_softmax(logits[0, -1].float(), dim=-1)
