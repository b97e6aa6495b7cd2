"""Does decoding wait on memory or on the cores? (the suite's `threads` section)

Each judge writes the same tokens at 1 thread and at every core, and the read bandwidth is measured at the
same thread counts. A step that waits on memory gains little from a second core once one core already draws
most of the bandwidth; a step that waits on arithmetic (unpacking 4-bit weights, multiplying) gains nearly in
proportion. With the bytes of weights each step reads, the rows show how much of what memory delivers at that
thread count each kernel actually consumes: the decode roofline's gap, split into its cause.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

DECODE_TOKENS = 32
CONTEXT_TOKENS = 128
REPEATS = 2


def decode_speed(judge: Any, tokens: int = DECODE_TOKENS, repeats: int = REPEATS) -> float:
    """Best tokens per second over `repeats` generations of `tokens` after a CONTEXT_TOKENS prompt (stops off)."""
    from measure import StepClock, _without_stops, prompt_of_length

    _without_stops(judge)
    clock = StepClock(judge)
    prompt, _ = prompt_of_length(judge.count_tokens, CONTEXT_TOKENS, seed=1)
    judge.generate(prompt, max_new_tokens=4)  # first calls allocate; a thread pool of a new size starts
    best = 0.0
    for _ in range(repeats):
        with clock.running():
            judge.generate(prompt, max_new_tokens=tokens)
        steps = clock.decode()
        if steps is not None:
            best = max(best, steps[0] / steps[1])
    return best


def read_bandwidth(threads: int, megabytes: int) -> float:
    """GB/s of a large array's sum on `threads` of torch's threads (measure.memory_bandwidth)."""
    import torch
    from measure import memory_bandwidth

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return float(memory_bandwidth(megabytes)["read_gb_s"])
    finally:
        torch.set_num_threads(before)


def scaling(label: str, load: Callable[[int], Any], weight_bytes: Callable[[Any], int], threads: list[int],
            bandwidth: dict[int, float], per_load: bool) -> dict[str, Any]:
    """Decode speed of one judge at each thread count; `per_load`: the judge takes its thread count when loaded
    (llama.cpp), else one judge is loaded and torch's thread count changed between measurements."""
    import torch

    rows = []
    judge = None if per_load else load(max(threads))
    kernel = ""
    for count in threads:
        if per_load:
            judge = load(count)
        else:
            torch.set_num_threads(count)
        assert judge is not None
        rate = decode_speed(judge)
        read = weight_bytes(judge)
        kernel = getattr(judge.info, "kernel", "") or kernel
        consumed = rate * read / 1e9
        rows.append({"threads": count, "decode_tok_s": rate, "weight_bytes": read, "consumed_gb_s": consumed,
                     "read_gb_s": bandwidth[count], "share_of_bandwidth": consumed / bandwidth[count]})
        if per_load:
            del judge
            judge = None
            gc.collect()
    torch.set_num_threads(max(threads))
    del judge
    gc.collect()
    first = rows[0]["decode_tok_s"]
    for row in rows:
        row["speedup"] = row["decode_tok_s"] / first if first else None
    return {"label": label, "kernel": kernel, "rows": rows}
