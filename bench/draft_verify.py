"""What verifying k draft tokens costs against one decoding step, on GLIDER's shape (the suite's `verify` section).

Prompt lookup decoding (TransformersJudge(prompt_lookup=k)) drafts k tokens from the prompt's n-grams and checks
them in one forward pass of k+1 tokens. It pays when the tokens accepted per pass exceed that pass's cost in
single steps. Random weights accept nothing meaningful, so this measures only the cost side: the forward
pass over k+1 new tokens after a ~600-token context, against one token, on the judge's own model and cache.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

DRAFT_TOKENS = (0, 1, 3, 7, 10)  # k drafts: a pass of k + 1 tokens
CONTEXT_TOKENS = 600
REPEATS = 5


def verify_costs(judge: Any, context_tokens: int = CONTEXT_TOKENS, repeats: int = REPEATS) -> list[dict[str, Any]]:
    """Median seconds of one forward pass of k+1 tokens after `context_tokens`, for each k in DRAFT_TOKENS."""
    import torch

    from core.judge.cpu_decode import growing_cache

    model = judge.model
    generator = torch.Generator().manual_seed(0)
    context = torch.randint(100, 30000, (1, context_tokens), generator=generator)
    cache = growing_cache(model.config, context_tokens + max(DRAFT_TOKENS) + 1) if judge.cpu_decode else None
    with torch.inference_mode():
        out = model(input_ids=context, use_cache=True, **({"cache": cache} if cache is not None else {}))
        cache = out.cache
        rows = []
        for drafts in DRAFT_TOKENS:
            tokens = torch.randint(100, 30000, (1, drafts + 1), generator=generator)
            positions = torch.arange(context_tokens, context_tokens + drafts + 1).unsqueeze(0)
            times = []
            for _ in range(repeats + 1):  # the first call is a warm-up
                started = time.perf_counter()
                model(input_ids=tokens, cache=cache, use_cache=True, position_ids=positions)
                times.append(time.perf_counter() - started)
                cache.crop(-(drafts + 1))
            rows.append({"draft_tokens": drafts, "pass_tokens": drafts + 1, "median_s": statistics.median(times[1:])})
    single = rows[0]["median_s"]
    for row in rows:
        row["vs_one_step"] = row["median_s"] / single
    return rows
