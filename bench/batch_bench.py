"""Throughput of the transformers back-end's batched generation (generate_batch) at batch 1, 4 and 8.

    .venv/bin/python bench/batch_bench.py                       # tiny 2-layer model and the wider stand-in
    .venv/bin/python bench/batch_bench.py --models wide --new-tokens 128 --repeats 2

The models have random weights, saved to a temporary directory and loaded through
create_backend("transformers", model=dir, quantization="none") as a user's model is. Random weights
give speed, not answers: the stop ids are switched off so every row decodes exactly --new-tokens
tokens (checked), and the prompts are distinct GLIDER prompts built with core.prompt.build_prompt.
Each batch size grades the same prompts in chunks of that size; the best of --repeats runs is kept.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.judge import Generation, create_backend  # noqa: E402
from core.judge.transformers_backend import TransformersJudge  # noqa: E402
from core.prompt import build_prompt  # noqa: E402
from tests import tiny_model  # noqa: E402

WORDS = (
    "the model answer cites the context and adds a claim about the capital river city that the source "
    "does not support while the summary keeps every number and date exactly as written in the report"
).split()
RUBRIC = "0: The MODEL OUTPUT is not faithful to the CONTEXT.\n1: The MODEL OUTPUT is faithful to the CONTEXT."


def prompts(count: int, seed: int = 0) -> list[str]:
    """`count` distinct GLIDER prompts whose fields have 20-60 random words (so lengths and padding vary)."""
    rng = random.Random(seed)
    built = []
    for _ in range(count):
        context = " ".join(rng.choices(WORDS, k=rng.randint(20, 60))).capitalize() + "."
        output = " ".join(rng.choices(WORDS, k=rng.randint(10, 30))).capitalize() + "."
        fields = {"CONTEXT": context, "MODEL OUTPUT": output}
        built.append(build_prompt(fields, "Is the MODEL OUTPUT faithful to the CONTEXT?", RUBRIC))
    return built


def tiny(tokenizer):  # noqa: ANN001, ANN201
    return tiny_model.build_model(tokenizer)


def wide(tokenizer):  # noqa: ANN001, ANN201
    """A random Phi-3 of ~170M parameters (Phi-3.5-mini is 3.8B): big enough that matmuls, not Python, dominate."""
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(0)
    config = Phi3Config(
        vocab_size=max(32064, len(tokenizer)), hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
        num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"), tie_word_embeddings=False,
    )
    return Phi3ForCausalLM(config)


MODELS: dict[str, Callable] = {"tiny": tiny, "wide": wide}


def load(name: str, tokenizer, directory: Path, quantization: str) -> TransformersJudge:  # noqa: ANN001
    model = MODELS[name](tokenizer)
    tiny_model.save(model, tokenizer, directory / name)
    judge = create_backend("transformers", model=str(directory / name), quantization=quantization)
    assert isinstance(judge, TransformersJudge)
    # Random weights may write a stop id at any step; without stops every row decodes exactly N tokens.
    judge.stop_token_ids = []
    judge.model.generation_config.eos_token_id = None
    return judge


def run_batches(judge: TransformersJudge, items: list[str], size: int, new_tokens: int) -> float:
    """Seconds to generate for every prompt in chunks of `size`; checks every row decoded `new_tokens`."""
    started = time.perf_counter()
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        rows = judge.generate_batch(chunk, scales=[(0, 1)] * len(chunk), max_new_tokens=new_tokens)
        for row in rows:
            assert isinstance(row, Generation), row
            assert row.completion_tokens == new_tokens and row.finish_reason == "length", row.completion_tokens
    return time.perf_counter() - started


def run_singles(judge: TransformersJudge, items: list[str], new_tokens: int) -> float:
    started = time.perf_counter()
    for prompt in items:
        assert judge.generate(prompt, scale=(0, 1), max_new_tokens=new_tokens).completion_tokens == new_tokens
    return time.perf_counter() - started


def padding_waste(judge: TransformersJudge, items: list[str], size: int) -> float:
    """Pad tokens the prefill computes, as a share of the real prompt tokens, at this batch size."""
    lengths = [judge.count_tokens(p) for p in items]
    chunks = [lengths[i : i + size] for i in range(0, len(lengths), size)]
    return sum(len(c) * max(c) - sum(c) for c in chunks) / sum(lengths)


def bench(name: str, judge: TransformersJudge, items: list[str], sizes: list[int], new_tokens: int,
          repeats: int) -> tuple[list[str], str]:
    """Markdown table rows for this model, and the line stating batch max / batch 1 throughput."""
    run_batches(judge, items[:2], 2, 2)  # warm-up: first calls allocate and pick kernels
    n = len(items)
    lengths = [judge.count_tokens(p) for p in items]
    print(f"\n{name}: {sum(p.numel() for p in judge.model.parameters()) / 1e6:.1f}M parameters, "
          f"{n} prompts of {min(lengths)}-{max(lengths)} tokens, {new_tokens} new tokens each", flush=True)
    timings: dict[str, float] = {}
    prefill: dict[int, float] = {}
    for _ in range(repeats):
        timings["generate"] = min(timings.get("generate", 1e9), run_singles(judge, items, new_tokens))
        for size in sizes:
            timings[str(size)] = min(timings.get(str(size), 1e9), run_batches(judge, items, size, new_tokens))
            # One new token: the prefill (and one step), to split the time into prompt and decoding.
            prefill[size] = min(prefill.get(size, 1e9), run_batches(judge, items, size, 1))
    base = timings[str(sizes[0])]
    lines = []
    for key, seconds in timings.items():
        size = int(key) if key.isdigit() else 1
        label = "1 (`generate`)" if key == "generate" else key
        decode = ""
        if key.isdigit():
            decode = f"{n * (new_tokens - 1) / max(1e-9, seconds - prefill[size]):.0f}"
        waste = f"{padding_waste(judge, items, size):.0%}" if key.isdigit() else "0%"
        pre = f"{prefill[size]:.1f}" if key.isdigit() else ""
        lines.append(
            f"| {name} | {label} | {n / seconds:.2f} | {n * new_tokens / seconds:.0f} | {base / seconds:.2f}x "
            f"| {seconds:.1f} | {pre} | {decode} | {waste} |"
        )
        print(lines[-1], flush=True)
    ratio = f"{name}: batch {max(sizes)} / batch {sizes[0]} throughput = {base / timings[str(max(sizes))]:.2f}x"
    return lines, ratio


def main() -> None:
    import torch
    import transformers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,wide", help="comma-separated: tiny, wide")
    parser.add_argument("--sizes", default="1,4,8")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1, help="keep the best of this many runs")
    parser.add_argument("--quantization", default="none", choices=["none", "nf4", "int8"],
                        help="as the app's --quantization (its default, auto, is nf4)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    items = prompts(args.prompts)
    load_average = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average {load_average}")
    print("Random weights give speed, not answers; stop ids are off, so every row decodes exactly "
          f"{args.new_tokens} tokens (asserted).")
    tokenizer = tiny_model.build_tokenizer(items)
    header = ("| model | batch | rows/s | generated tok/s | vs batch 1 | total s | prefill s | decode tok/s "
              "| pad waste |\n|---|---|---|---|---|---|---|---|---|")
    lines: list[str] = []
    ratios: list[str] = []
    with tempfile.TemporaryDirectory() as directory:
        for name in args.models.split(","):
            judge = load(name, tokenizer, Path(directory), args.quantization)
            label = name if args.quantization == "none" else f"{name} {args.quantization}"
            rows, ratio = bench(label, judge, items, sizes, args.new_tokens, args.repeats)
            lines += rows
            ratios.append(ratio)
            del judge
    print("\n" + header + "\n" + "\n".join(lines) + "\n\n" + "\n".join(ratios))
    print(f"\nprefill s: the same chunks with max_new_tokens=1; decode tok/s: {args.new_tokens - 1} further tokens "
          "per row over (total - prefill). load average after: "
          f"{os.getloadavg() if hasattr(os, 'getloadavg') else '?'}")


if __name__ == "__main__":
    main()
