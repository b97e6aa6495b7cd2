"""ZeroGPU: a GPU is attached only inside functions wrapped by `spaces.GPU`, for the duration each call asks for.

Visitors' daily ZeroGPU quota is charged by the duration requested, not the time used, and a call that
runs past it is stopped. So each call asks for what its own request needs: `spaces.GPU(duration=...)`
accepts a callable that the `spaces` package calls with the wrapped function's own arguments
(documented by Hugging Face as "dynamic duration", e.g. zero-gpu-explorers/README discussion 87); it
receives here `generate(prompt, scale=..., max_new_tokens=...)`, `stream(...)` (the same) or
`generate_batch(prompts, scales=..., max_new_tokens=...)`.

The estimate is deliberately generous (the whole max_new_tokens written, at a slow rate): running out of
time loses the grade, asking a little too much costs some quota. Not measured on ZeroGPU itself (no
ZeroGPU hardware here); the rates are conservative figures for a 3.8B model in 4 bits on one GPU slice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from core.judge.base import DEFAULT_MAX_NEW_TOKENS, JudgeBackend

# Seconds for moving the model onto the GPU slice and starting the call, before any token.
START_S = 10.0
# Prompt tokens read per second (prefill is batched work: fast on any GPU).
PREFILL_TOKENS_PER_S = 1000.0
# Tokens written per second by one row (bitsandbytes nf4 on a GPU decodes far slower than bf16).
DECODE_TOKENS_PER_S = 15.0
# Each extra row of a batch slows every decoding step down by this share (memory-bound steps).
BATCH_ROW_COST = 0.15
# What ZeroGPU accepts; more than the upper bound is refused outright ("illegal duration").
MIN_DURATION_S = 20
MAX_DURATION_S = 300


def estimate_seconds(prompt_tokens: int, max_new_tokens: int, batch_size: int = 1) -> int:
    """Seconds of GPU to ask for: a call that reads `prompt_tokens` (over all rows) and writes up to
    `max_new_tokens` per row for `batch_size` rows, bounded by MIN_DURATION_S and MAX_DURATION_S."""
    rows = max(1, batch_size)
    seconds = (START_S + max(0, prompt_tokens) / PREFILL_TOKENS_PER_S
               + max(1, max_new_tokens) / DECODE_TOKENS_PER_S * (1 + BATCH_ROW_COST * (rows - 1)))
    return int(min(MAX_DURATION_S, max(MIN_DURATION_S, math.ceil(seconds))))


def _tokens(judge: JudgeBackend, prompt: str) -> int:
    try:
        return judge.count_tokens(prompt)
    except Exception:  # an over-long or odd prompt: the back-end says so inside the call; estimate generously
        return len(prompt) // 2


def duration_for(judge: JudgeBackend) -> tuple[Callable[..., int], Callable[..., int]]:
    """The two duration callables for `spaces.GPU`: one for generate/stream (a prompt), one for generate_batch."""

    def single(prompt: str, *_: Any, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, **__: Any) -> int:
        return estimate_seconds(_tokens(judge, prompt), max_new_tokens)

    def batch(prompts: Sequence[str], *_: Any, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, **__: Any) -> int:
        return estimate_seconds(sum(_tokens(judge, prompt) for prompt in prompts), max_new_tokens, len(prompts))

    return single, batch


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def wrap_for_zero_gpu(judge: JudgeBackend, gpu: Callable[..., Decorator]) -> JudgeBackend:
    """Wrap the judge's generating methods in `gpu` (`spaces.GPU`), each with a duration computed per call."""
    single, batch = duration_for(judge)
    judge.generate = gpu(duration=single)(judge.generate)  # type: ignore[method-assign]
    judge.stream = gpu(duration=single)(judge.stream)  # type: ignore[method-assign]
    if hasattr(judge, "generate_batch"):  # batch jobs and /grade batches generate several rows at once
        judge.generate_batch = gpu(duration=batch)(judge.generate_batch)
    return judge
