"""GLIDER's shape on one GPU: nf4 against bf16, prefill and decode at batch 1 and 8, bandwidth and roofline.

    python bench/gpu_bench.py                           # an H100/H200-class GPU, no internet, under 5 minutes
    python bench/gpu_bench.py --wheels ./wheels         # pip install bitsandbytes from local wheels if missing
    .venv/bin/python bench/gpu_bench.py --shape small --device cpu   # the same code on a CPU (the tests run it)

Nothing is downloaded: the model is a Phi-3 of Phi-3.5-mini's exact shape (3.82B parameters) with random
weights, created directly on the device in bf16, then its linear layers are quantized to nf4 in place with
bitsandbytes (the settings the app's `--quantization nf4` uses: nf4 blocks of 64, no double quantization,
bf16 compute; the output head stays bf16, as transformers leaves it). Random weights give real speed, never
real answers. Timing follows the app's path: `model.generate` with a dynamic cache, greedy, stop tokens off.

- prefill tok/s: batch × prompt tokens ÷ one forward pass over the prompts;
- decode tok/s: new tokens per sequence ÷ (generate with N new tokens − generate with 1), and × batch;
- bandwidth: a device-to-device copy and a sum over a large buffer (best of several, GB/s = 1e9 B/s);
- roofline: decode steps/s × bytes of weights read per step ÷ read bandwidth (1.0 = weights streamed at
  the measured bandwidth every step).

Prints a markdown table and writes the raw results as JSON (`--out`).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (ROOT, BENCH):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import shapes  # noqa: E402


def ensure_bitsandbytes(wheels: Path | None) -> str | None:
    """bitsandbytes' version, installing it from `wheels` (pip --no-index) when it is missing; None if absent."""
    try:
        import bitsandbytes
    except ImportError:
        if wheels is None:
            return None
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(wheels),
                        "bitsandbytes"], check=True)
        importlib.invalidate_caches()
        import bitsandbytes
    return str(bitsandbytes.__version__)


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bandwidth(device: str, megabytes: int, repeats: int = 10) -> dict[str, Any]:
    """Copy (read + write bytes) and read (sum) bandwidth over a float32 buffer of `megabytes`, best of `repeats`."""
    import torch

    if device == "cpu":
        from measure import memory_bandwidth

        return memory_bandwidth(megabytes, repeats=min(repeats, 5))
    count = megabytes * 2**20 // 4
    source = torch.ones(count, dtype=torch.float32, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    float(source.sum())
    copies, reads = [], []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        target.copy_(source)
        synchronize(device)
        copies.append(time.perf_counter() - started)
        started = time.perf_counter()
        float(source.sum())  # .item() waits for the result
        reads.append(time.perf_counter() - started)
    del source, target
    size = count * 4
    return {"megabytes": megabytes, "repeats": repeats, "copy_gb_s": 2 * size / min(copies) / 1e9,
            "read_gb_s": size / min(reads) / 1e9}


def quantize_nf4(model: Any, device: str) -> Any:
    """Replace every linear layer but the output head by a bitsandbytes nf4 Linear4bit, quantized on `device`."""
    import bitsandbytes as bnb
    import torch
    from torch import nn

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if not isinstance(child, nn.Linear) or child is model.lm_head:
                continue
            layer = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                      compute_dtype=torch.bfloat16, compress_statistics=False, quant_type="nf4",
                                      device="meta")
            layer.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, quant_type="nf4",
                                             compress_statistics=False, blocksize=64)
            if child.bias is not None:
                layer.bias = nn.Parameter(child.bias.data, requires_grad=False)
            setattr(module, name, layer.to(device))  # Params4bit quantizes when moved to a device
            del child
    gc.collect()
    return model


def _generate(model: Any, ids: Any, new_tokens: int) -> float:
    """Seconds for greedy generate of exactly `new_tokens` tokens per row."""
    import torch

    synchronize(str(ids.device))
    started = time.perf_counter()
    with torch.inference_mode():
        output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                max_new_tokens=new_tokens, min_new_tokens=new_tokens, eos_token_id=None,
                                pad_token_id=0)
    synchronize(str(ids.device))
    seconds = time.perf_counter() - started
    assert output.shape[1] == ids.shape[1] + new_tokens, output.shape
    return seconds


def _prefill(model: Any, ids: Any) -> float:
    import torch

    synchronize(str(ids.device))
    started = time.perf_counter()
    with torch.inference_mode():
        model(input_ids=ids, use_cache=True, logits_to_keep=1)
    synchronize(str(ids.device))
    return time.perf_counter() - started


def measure_variant(model: Any, name: str, args: argparse.Namespace, read_gb_s: float) -> list[dict[str, Any]]:
    """Rows of prefill and decode at every batch size for one loaded model."""
    import torch

    weights = shapes.weight_bytes(model)
    generator = torch.Generator(device="cpu").manual_seed(0)
    vocab = model.config.vocab_size
    rows = []
    for batch in args.batches:
        ids = torch.randint(100, vocab - 100, (batch, args.prompt_tokens), generator=generator).to(args.device)
        _generate(model, ids, 2)  # warm-up: kernels, allocator, cuBLAS handles
        prefill = min(_prefill(model, ids) for _ in range(args.repeats))
        one = min(_generate(model, ids, 1) for _ in range(args.repeats))
        full = min(_generate(model, ids, args.new_tokens) for _ in range(args.repeats))
        steps_s = (args.new_tokens - 1) / max(full - one, 1e-9)
        row = {"weights": name, "batch": batch, "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
               "prefill_s": prefill, "prefill_tok_s": batch * args.prompt_tokens / prefill,
               "decode_tok_s_per_sequence": steps_s, "decode_tok_s_total": steps_s * batch,
               "weight_bytes": weights, "roofline": steps_s * weights / (read_gb_s * 1e9)}
        rows.append(row)
        print(f"{name} batch {batch}: prefill {row['prefill_tok_s']:,.0f} tok/s, decode "
              f"{steps_s:,.1f} tok/s per sequence ({row['decode_tok_s_total']:,.1f} total), "
              f"roofline {row['roofline']:.2f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--shape", choices=sorted(shapes.SHAPES), default="glider")
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    parser.add_argument("--variants", default="bf16,nf4", help="comma-separated: bf16, nf4")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="keep the best of this many runs")
    parser.add_argument("--bandwidth-mb", type=int, default=None, help="default 4096 on a GPU, 1024 on a CPU")
    parser.add_argument("--wheels", type=Path, default=None, help="folder of wheels to install bitsandbytes from")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default bench/results/gpu-<shape>.json)")
    args = parser.parse_args(argv)

    import torch
    import transformers

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.batches = [int(b) for b in args.batches.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    args.bandwidth_mb = args.bandwidth_mb or (4096 if args.device.startswith("cuda") else 1024)
    args.out = args.out or BENCH / "results" / f"gpu-{args.shape}.json"
    started = time.perf_counter()
    bnb_version = ensure_bitsandbytes(args.wheels) if "nf4" in variants else None
    if "nf4" in variants and bnb_version is None:
        print("bitsandbytes is not installed (pass --wheels DIR to install it from local wheels): nf4 skipped")
        variants.remove("nf4")
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None
    shape = shapes.SHAPES[args.shape]
    print(f"{gpu or 'CPU'}; shape {args.shape}: {shape.describe()}. Random weights: real speed, never real answers.")
    memory = bandwidth(args.device, args.bandwidth_mb)
    print(f"bandwidth: copy {memory['copy_gb_s']:,.0f} GB/s, read {memory['read_gb_s']:,.0f} GB/s", flush=True)

    rows: list[dict[str, Any]] = []
    peaks: dict[str, Any] = {}
    for name in variants:
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        built = time.perf_counter()
        model = shapes.random_phi3(shape, device=args.device)
        if name == "nf4":
            model = quantize_nf4(model, args.device)
        print(f"{name}: model ready in {time.perf_counter() - built:.1f} s", flush=True)
        rows += measure_variant(model, name, args, memory["read_gb_s"])
        if args.device.startswith("cuda"):
            peaks[name] = torch.cuda.max_memory_allocated()
        del model
        gc.collect()

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "bench/gpu_bench.py", *(sys.argv[1:] if argv is None else argv)]),
        "device": args.device, "gpu": gpu, "cpu": platform.processor(), "shape": args.shape,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "bitsandbytes": bnb_version,
                     "cuda": torch.version.cuda},
        "bandwidth": memory, "peak_gpu_memory_bytes": peaks, "rows": rows, "random_weights": True,
        "seconds": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")

    print(f"\n{gpu or 'CPU'}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"bitsandbytes {bnb_version}; {args.prompt_tokens}-token prompts, {args.new_tokens} new tokens; "
          f"bandwidth {memory['read_gb_s']:,.0f} GB/s read, {memory['copy_gb_s']:,.0f} GB/s copy\n")
    print("| weights | batch | prefill tok/s | decode tok/s per sequence | decode tok/s total | weights read per step "
          "| roofline | peak GPU memory |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        peak = peaks.get(row["weights"])
        print(f"| {row['weights']} | {row['batch']} | {row['prefill_tok_s']:,.0f} | "
              f"{row['decode_tok_s_per_sequence']:,.1f} | {row['decode_tok_s_total']:,.1f} | "
              f"{row['weight_bytes'] / 1e9:.2f} GB | {row['roofline']:.2f} | "
              f"{f'{peak / 1e9:.1f} GB' if peak else '–'} |")
    print(f"\nJSON: {args.out}; {result['seconds']:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
