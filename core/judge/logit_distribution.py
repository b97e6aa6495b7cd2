"""Read the probability of each score value at the position where the model wrote its score.

The model writes `<score>\\n4\\n</score>`; the logits of the step that produced '4' give the
probability of every other value it could have written there. Multi-token values (10 on a 0-10
scale is '1','0' in Phi-3's vocabulary) are scored as token sequences, reusing the generation's
key/value cache so no prompt is processed twice. In a left-padded batch, each row's keys and values
are cut out of the batch's cache (without the row's padding) before they are extended.
"""

from __future__ import annotations

from typing import Any

from core.judge.common import ScoreTokens, combine_value_probabilities


class ScoreLocator(ScoreTokens):
    """Maps generated token ids to the score step (core.judge.common.ScoreTokens) and reads the distribution
    there from a transformers generation's logits and key/value cache."""

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
        sequences = self.sequences_at(generated, step, scale)
        if sequences is None:
            return None  # the model wrote something else there (e.g. a word); nothing to read
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

        return combine_value_probabilities(
            sequences, log_probs, lambda after, tokens: float(torch.exp(after[tokens]).sum())
        )

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
