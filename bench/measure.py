"""What bench/suite.py measures, and the worker that measures one judge back-end in its own process.

    .venv/bin/python bench/measure.py SPEC.json RESULT.json     # run by suite.py, one process per back-end

A back-end gets its own process so that its peak resident memory (getrusage's ru_maxrss) is its own and
its first load is really the first in that process. The worker loads the judge through
`core.judge.create_backend`, as the app does, then times what a grade consists of:

- prefill: the prompt's evaluation, read from the model's own call timestamps (a forward hook on the
  transformers model, a wrapper around llama.cpp's `eval`), so the sampling loop is not counted;
- decode: the steps after the prompt, one token each (stop ids switched off, so exactly N tokens come);
- time to first token with and without prefix reuse (when the back-end takes `prefix_cache`);
- batch throughput with `generate_batch` (bench/batch_bench.py's prompts and loop);
- memory read bandwidth, after the model is gone, for the roofline ratio.

Random weights give real speed, never real answers.
"""

from __future__ import annotations

import gc
import json
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from core.prompt import build_prompt  # noqa: E402

CRITERIA = "Is the MODEL OUTPUT faithful to the CONTEXT?"
RUBRIC = "0: The MODEL OUTPUT is not faithful to the CONTEXT.\n1: The MODEL OUTPUT is faithful to the CONTEXT."
WORDS = (
    "the model answer cites the context and adds a claim about the capital river city that the source "
    "does not support while the summary keeps every number and date exactly as written in the report"
).split()


# -- pure helpers ------------------------------------------------------------------------------------------
def peak_rss_bytes() -> int:
    """This process's peak resident set size so far.

    Linux: VmHWM, the high-water mark of this process's own memory map. getrusage's ru_maxrss is not used
    there: Linux carries it over exec from the process that started this one (the suite, with torch and
    its bandwidth buffer loaded), so every back-end would report at least the suite's size.
    """
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux and BSD KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def memory_bandwidth(megabytes: int = 2048, repeats: int = 5) -> dict[str, Any]:
    """Read (sum) and copy bandwidth of a float32 array of `megabytes`, best of `repeats`, in GB/s (1e9 B).

    The array must be far larger than the last-level cache (300 MB on the development VM) to measure memory
    rather than cache. torch runs it on its intra-op threads, the threads the transformers back-end uses.
    """
    import torch

    count = megabytes * 2**20 // 4
    data = torch.ones(count, dtype=torch.float32)  # written once, so every page is really allocated
    target = torch.zeros_like(data)
    reads, copies = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        float(data.sum())
        reads.append(time.perf_counter() - started)
        started = time.perf_counter()
        target.copy_(data)
        copies.append(time.perf_counter() - started)
    del data, target
    size = count * 4
    return {"megabytes": megabytes, "threads": torch.get_num_threads(), "repeats": repeats,
            "read_gb_s": size / min(reads) / 1e9, "copy_gb_s": 2 * size / min(copies) / 1e9}


def roofline(decode_tok_s: float, weight_bytes: int, bandwidth_gb_s: float) -> float:
    """Measured decode speed as a share of the memory-bound ceiling (every weight read once per token)."""
    return decode_tok_s * weight_bytes / (bandwidth_gb_s * 1e9)


def prompt_of_length(count_tokens: Callable[[str], int], target: int, seed: int = 0) -> tuple[str, int]:
    """A GLIDER prompt (built with core.prompt) whose chat-formatted length is at most `target` tokens,
    as close to it as whole words allow; returns (prompt, tokens). Seeds give different data, same header."""
    rng = random.Random(seed)
    pool = rng.choices(WORDS, k=max(16, target * 2))
    output = " ".join(rng.choices(WORDS, k=20)).capitalize() + "."

    def build(words: int) -> str:
        context = " ".join(pool[:words]).capitalize() + "."
        return build_prompt({"CONTEXT": context, "MODEL OUTPUT": output}, CRITERIA, RUBRIC)

    low, high = 0, len(pool)  # the largest word count whose prompt fits
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(build(middle)) <= target:
            low = middle
        else:
            high = middle - 1
    prompt = build(low)
    return prompt, count_tokens(prompt)


class StepClock:
    """Start and end time, and token count, of every model evaluation while it is active.

    transformers: forward pre/post hooks on the model (generate calls it once for the prompt, then once per
    token); llama.cpp: a wrapper around `Llama.eval`. Another back-end records nothing (`events` stays empty).
    """

    def __init__(self, judge: Any) -> None:
        self.judge = judge
        self.events: list[tuple[float, float, int]] = []
        self._starts: list[tuple[float, int]] = []

    @contextmanager
    def running(self) -> Iterator[StepClock]:
        self.events.clear()
        model = getattr(self.judge, "model", None)
        llm = getattr(self.judge, "llm", None)
        if model is not None and hasattr(model, "register_forward_pre_hook"):
            handles = [model.register_forward_pre_hook(self._before, with_kwargs=True),
                       model.register_forward_hook(self._after, with_kwargs=True)]
            try:
                yield self
            finally:
                for handle in handles:
                    handle.remove()
        elif llm is not None and hasattr(llm, "eval"):
            original = llm.eval

            def timed(tokens: Any) -> Any:
                started = time.perf_counter()
                try:
                    return original(tokens)
                finally:
                    self.events.append((started, time.perf_counter(), len(tokens)))

            llm.eval = timed
            try:
                yield self
            finally:
                del llm.eval  # the instance attribute goes; the class's method shows again
        else:
            yield self

    def _before(self, module: Any, args: Any, kwargs: Any) -> None:
        ids = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else (args[0] if args else None)
        self._starts.append((time.perf_counter(), int(ids.shape[-1]) if ids is not None else 0))

    def _after(self, module: Any, args: Any, kwargs: Any, output: Any) -> None:
        started, tokens = self._starts.pop()
        self.events.append((started, time.perf_counter(), tokens))

    def prefill(self) -> tuple[int, float] | None:
        """(tokens, seconds) of the first evaluation: the prompt."""
        if not self.events:
            return None
        started, ended, tokens = self.events[0]
        return tokens, ended - started

    def decode(self) -> tuple[int, float] | None:
        """(tokens, seconds) from the end of the prompt's evaluation to the end of the last step."""
        if len(self.events) < 2:
            return None
        return len(self.events) - 1, self.events[-1][1] - self.events[0][1]


# -- the worker ---------------------------------------------------------------------------------------------
def _without_stops(judge: Any) -> None:
    """Random weights may write a stop id at any step; without stops every generation has exactly N tokens."""
    judge.stop_token_ids = []
    model = getattr(judge, "model", None)
    if model is not None and getattr(model, "generation_config", None) is not None:
        model.generation_config.eos_token_id = None


def _load(spec: dict[str, Any], **extra: Any) -> tuple[Any, float]:
    from core.judge import create_backend

    gc.collect()
    started = time.perf_counter()
    judge = create_backend(spec["backend"], **spec["options"], **extra)
    return judge, time.perf_counter() - started


def _weight_bytes(judge: Any, spec: dict[str, Any]) -> int | None:
    from shapes import gguf_weight_bytes, weight_bytes

    if spec["backend"] == "llamacpp":
        return gguf_weight_bytes(Path(spec["options"]["model"]))
    model = getattr(judge, "model", None)
    return weight_bytes(model) if model is not None else None


def _speed(judge: Any, spec: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    """Prefill at each length and decode after the first length's prompt, best of spec['repeats']."""
    _without_stops(judge)
    clock = StepClock(judge)
    warm_prompt, _ = prompt_of_length(judge.count_tokens, 64, seed=99)
    judge.generate(warm_prompt, max_new_tokens=2)  # first calls allocate and pick kernels
    prefill: list[dict[str, Any]] = []
    decode: dict[str, Any] = {}
    for index, length in enumerate(spec["prefill_lengths"]):
        prompt, tokens = prompt_of_length(judge.count_tokens, length, seed=index)
        new_tokens = spec["decode_tokens"] if index == 0 else 1
        best: dict[str, Any] = {}
        for _ in range(spec["repeats"]):
            with clock.running():
                generation = judge.generate(prompt, max_new_tokens=new_tokens)
            assert generation.completion_tokens == new_tokens, generation.completion_tokens
            measured = clock.prefill()
            seconds = measured[1] if measured else generation.seconds
            if not best or seconds < best["seconds"]:
                best = {"target": length, "tokens": tokens, "seconds": seconds, "tok_s": tokens / seconds,
                        "first_token_s": generation.seconds if new_tokens == 1 else None,
                        "timed_by": "model calls" if measured else "generate"}
            steps = clock.decode()
            if index == 0 and steps is not None:
                rate = steps[0] / steps[1]
                if rate > decode.get("tok_s", 0.0):
                    decode = {"tokens": steps[0] + 1, "context": tokens, "seconds": steps[1], "tok_s": rate}
        prefill.append(best)
        log(f"prefill {best['tokens']} tokens: {best['tok_s']:.1f} tok/s")
    if decode:
        log(f"decode {decode['tokens']} tokens: {decode['tok_s']:.2f} tok/s")
    return {"prefill": prefill, "decode": decode or None}


def _engine_decode(judge: Any, spec: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any] | None:
    """Decode tok/s of llama-cpp-python's own loop (`Llama.generate`, greedy) on the loaded model, timed as ours.

    The same prompt (the first prefill length), the same number of tokens and the same eval timestamps as
    `_speed`, so the ratio to our decode is what our greedy loop (logits, score bookkeeping, detokenizing)
    costs on top of the engine.
    """
    llm = getattr(judge, "llm", None)
    if llm is None or not hasattr(llm, "generate"):
        return None
    prompt, tokens = prompt_of_length(judge.count_tokens, spec["prefill_lengths"][0], seed=0)
    ids = judge.chat_ids(prompt)
    clock = StepClock(judge)
    best: dict[str, Any] = {}
    for _ in range(spec["repeats"]):
        with clock.running():
            for count, _token in enumerate(llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True), 1):
                if count >= spec["decode_tokens"]:
                    break
        if hasattr(judge, "_cached_prefix"):
            judge._cached_prefix = ()  # llama-cpp-python reused or replaced the cache its own way
        steps = clock.decode()
        if steps is not None and steps[0] / steps[1] > best.get("tok_s", 0.0):
            best = {"tokens": steps[0] + 1, "context": tokens, "seconds": steps[1], "tok_s": steps[0] / steps[1]}
    if best:
        log(f"llama-cpp-python's own generate: decode {best['tok_s']:.2f} tok/s")
    return best or None


def _first_token(judge: Any, prompts: list[str], repeats: int) -> dict[str, Any]:
    """Seconds to the first token (generate with max_new_tokens=1) for each prompt: the best, and the median."""
    times, cached = [], []
    for prompt in prompts[:repeats]:
        generation = judge.generate(prompt, max_new_tokens=1)
        times.append(generation.seconds)
        cached.append(int(generation.settings.get("prefix_cached_tokens", 0) or 0))
    return {"best_s": min(times), "median_s": statistics.median(times), "runs": len(times),
            "prefix_cached_tokens": max(cached) if cached else 0}


def _batch(judge: Any, spec: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    """bench/batch_bench.py's distinct prompts and chunked generate_batch, at each batch size."""
    import batch_bench

    if not hasattr(judge, "generate_batch"):
        return {"skipped": f"{type(judge).__name__} has no batched generation (generate_batch)"}
    _without_stops(judge)
    items = batch_bench.prompts(spec["batch_prompts"])
    new_tokens = spec["batch_new_tokens"]
    batch_bench.run_batches(judge, items[:2], 2, 2)  # warm-up
    lengths = [judge.count_tokens(p) for p in items]
    rows = []
    for size in spec["batch_sizes"]:
        seconds = min(batch_bench.run_batches(judge, items, size, new_tokens) for _ in range(spec["repeats"]))
        rows.append({"batch": size, "seconds": seconds, "rows_s": len(items) / seconds,
                     "generated_tok_s": len(items) * new_tokens / seconds,
                     "padding_waste": batch_bench.padding_waste(judge, items, size)})
        log(f"batch {size}: {rows[-1]['rows_s']:.3f} rows/s")
    for row in rows:
        row["vs_batch_1"] = rows[0]["seconds"] / row["seconds"]
    return {"prompts": len(items), "prompt_tokens": [min(lengths), max(lengths)], "new_tokens": new_tokens,
            "rows": rows}


def run_worker(spec: dict[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure one back-end as `spec` says (see suite.py's backend_spec); returns the raw results."""
    started = time.perf_counter()
    # Imported before the clock starts: the load time is the judge's, not Python's imports. llama.cpp's worker
    # leaves torch out until the bandwidth measurement, so its peak memory is llama.cpp's alone.
    if spec["backend"] == "transformers":
        import torch
        import transformers  # noqa: F401

        threads: int | None = torch.get_num_threads()
    else:
        import llama_cpp  # noqa: F401

        threads = None
    result: dict[str, Any] = {"label": spec["label"], "options": spec["options"],
                              "import_s": time.perf_counter() - started, "torch_threads": threads,
                              "warm_main_thread": bool(spec.get("warm_main_thread"))}
    if spec.get("warm_main_thread"):
        # One parallel torch op on the main thread before anything else (see bench/README.md: in a fresh process
        # without it, generations on the back-end's worker threads were measured far slower on a busy CPU).
        import torch

        float(torch.ones(1 << 16).sum())
    off = {"prefix_cache": False} if spec.get("prefix_cache_supported") else {}

    judge, seconds = _load(spec, **off)
    result["load_first_s"] = seconds
    result["backend_info"] = {"quantization": judge.info.quantization, "dtype": judge.info.dtype,
                              "device": judge.info.device, "notes": list(judge.info.notes),
                              "kernel": judge.info.kernel}
    if "loaded_from_quantized_cache" in spec:  # the quantize-once cache: was this load really served by it?
        result["loaded_from_quantized_cache"] = bool(getattr(judge, "loaded_from_quantized_cache", False))
    log(f"first load in process: {seconds:.1f} s")
    result["weight_bytes"] = _weight_bytes(judge, spec)

    if spec.get("speed", True):
        result.update(_speed(judge, spec, log))
    if spec.get("engine_decode"):
        result["engine_decode"] = _engine_decode(judge, spec, log)
    if spec.get("batch"):
        result["batch"] = _batch(judge, spec, log)
    result["peak_rss_bytes"] = peak_rss_bytes()  # one judge loaded and used; the warm loads come after
    log(f"peak RSS: {result['peak_rss_bytes'] / 1e9:.2f} GB")

    ttft_prompts: list[str] = []
    if spec.get("ttft"):
        ttft_prompts = [prompt_of_length(judge.count_tokens, spec["ttft_tokens"], seed=100 + i)[0]
                        for i in range(spec["repeats"] + 1)]
    if spec.get("warm_load", True):
        del judge
        judge, seconds = _load(spec, **off)
        result["load_second_s"] = seconds
        log(f"second load in process: {seconds:.1f} s")
    if spec.get("ttft"):
        timed = ttft_prompts[1:]  # every timed prompt differs from the others: only the constant head repeats
        result["ttft"] = {"prompt_tokens": judge.count_tokens(timed[0]),
                          "without_reuse": _first_token(judge, timed, spec["repeats"])}
        if spec.get("prefix_cache_supported"):
            del judge
            judge, _ = _load(spec, prefix_cache=True)
            judge.generate(ttft_prompts[0], max_new_tokens=1)  # computes and keeps the constant head's cache
            result["ttft"]["with_reuse"] = _first_token(judge, timed, spec["repeats"])
        log(f"time to first token: {json.dumps(result['ttft'])}")
    if spec.get("engine_defaults"):
        # The engine as its Python binding loads it by default: the "before" of our load settings.
        del judge
        judge, seconds = _load(spec, **off, **spec["engine_defaults"])
        before = {"options": spec["engine_defaults"], "load_s": seconds, "notes": list(judge.info.notes)}
        before.update(_speed(judge, {**spec, "prefill_lengths": spec["prefill_lengths"][:1]}, log))
        result["engine_defaults"] = before
        log(f"with the engine's default settings: load {seconds:.1f} s")
    del judge
    gc.collect()
    result["bandwidth"] = memory_bandwidth(spec["bandwidth_mb"])
    decode = result.get("decode")
    if decode and result["weight_bytes"]:
        result["roofline"] = roofline(decode["tok_s"], result["weight_bytes"], result["bandwidth"]["read_gb_s"])
    result["seconds"] = time.perf_counter() - started
    return result


def main() -> None:
    spec_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))

    def log(message: str) -> None:
        print(f"[{spec['label']}] {message}", flush=True)

    out_path.write_text(json.dumps(run_worker(spec, log), indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
