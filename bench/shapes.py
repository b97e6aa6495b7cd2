"""GLIDER-shaped random-weight models for the benchmarks, created once and cached on disk.

    .venv/bin/python bench/shapes.py --shape glider                 # create whatever is missing (bf16, nf4, gguf)
    .venv/bin/python bench/shapes.py --shape small --artifacts bf16  # one artifact

Shapes are Phi-3 configurations: `glider` is Phi-3.5-mini's (3.82B parameters, the model GLIDER fine-tunes),
`small` a 2-layer stand-in for tests and smoke runs. The weights are random (normal, std 0.02): they give
the real speed of the real shape, never real answers. Every artifact lives in its own folder under
`<cache-dir>/<shape>/` and is built by its own process (so one model's memory is gone before the next is
made), into a `.partial` folder renamed when complete: an interrupted build is started again, never used.

Artifacts:
- `bf16`: the model in bfloat16 (`save_pretrained`), with the Phi-3.5 tokenizer (GLIDER's ids) beside it.
- `nf4`: the bf16 model quantized to nf4 by bitsandbytes while loading, then saved pre-quantized.
- `nf4-cache`: the transformers back-end's own quantize-once cache, filled by loading `bf16` with
  `quantized_cache=True` (only when the back-end has that parameter).
- `gguf`: a Q4_K_M GGUF for llama.cpp: an f16 GGUF written with the `gguf` package (llama.cpp's converter
  needs a tokenizer.model the fixture lacks), quantized with `llama_cpp.llama_model_quantize`.
- `tiny`: tests/tiny_model's 2-layer model (random weights) for the app-overhead and page-load sections.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import tiny_model  # noqa: E402

DEFAULT_CACHE_DIR = Path(os.environ.get("GLIDER_BENCH_CACHE", "~/.cache/glider-studio/bench")).expanduser()
ARTIFACTS = ("bf16", "nf4", "nf4-cache", "gguf", "tiny")
COMPLETE = "complete.json"  # written last in an artifact's folder: its presence means the build finished


@dataclass(frozen=True)
class Shape:
    """A Phi-3 configuration's sizes."""

    name: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    max_positions: int

    def parameters(self) -> int:
        """Parameter count (untied input embedding and output head, as Phi-3.5-mini)."""
        head_dim = self.hidden // self.heads
        attention = self.hidden * (self.heads + 2 * self.kv_heads) * head_dim + self.hidden * self.hidden
        mlp = 3 * self.hidden * self.intermediate
        per_layer = attention + mlp + 2 * self.hidden
        return self.layers * per_layer + 2 * self.vocab * self.hidden + self.hidden

    def describe(self) -> str:
        return (f"{self.parameters() / 1e9:.2f}B parameters: {self.layers} layers, hidden {self.hidden}, "
                f"intermediate {self.intermediate}, {self.heads} heads, vocabulary {self.vocab}, "
                f"{self.max_positions} positions")


# Phi-3.5-mini publishes 131,072 positions with LongRoPE scaling; 4,096 without scaling computes the same
# way at the lengths measured here (up to ~2,100 tokens) and keeps the GGUF free of rope-factor tensors.
SHAPES = {
    "glider": Shape("glider", layers=32, hidden=3072, intermediate=8192, heads=32, kv_heads=32, vocab=32064,
                    max_positions=4096),
    "small": Shape("small", layers=2, hidden=256, intermediate=512, heads=4, kv_heads=4, vocab=32064,
                   max_positions=4096),
}


def shape_dir(cache_dir: Path, shape: str) -> Path:
    return Path(cache_dir).expanduser() / shape


def artifact_path(cache_dir: Path, shape: str, artifact: str) -> Path:
    """Where an artifact lives: a model folder, or for `gguf` the .gguf file inside its folder."""
    folder = shape_dir(cache_dir, shape) / artifact
    return folder / "model-Q4_K_M.gguf" if artifact == "gguf" else folder


def manifest(cache_dir: Path, shape: str, artifact: str) -> dict[str, Any] | None:
    """What the finished build recorded (seconds, sizes, date), or None when it is not built."""
    path = shape_dir(cache_dir, shape) / artifact / COMPLETE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# -- building blocks ---------------------------------------------------------------------------------------
def load_tokenizer(path: Path | None = None):  # noqa: ANN201 - a transformers tokenizer
    """The Phi-3.5 tokenizer (GLIDER's ids): the fixture by default; the tests' small BPE one without it."""
    from transformers import PreTrainedTokenizerFast

    folder = Path(path) if path else tiny_model.PHI35_TOKENIZER
    if (folder / "tokenizer.json").is_file():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
    else:
        tokenizer = tiny_model.build_tokenizer(["The model answer cites the context."])
    if tokenizer.chat_template is None:
        tokenizer.chat_template = tiny_model.PHI3_CHAT_TEMPLATE
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def phi3_config(shape: Shape, tokenizer: Any = None) -> Any:
    """The transformers Phi3Config of `shape` (GLIDER's special-token ids when a tokenizer is given)."""
    from transformers import Phi3Config

    ids: dict[str, Any] = {}
    if tokenizer is not None:
        ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
               "eos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>")}
    return Phi3Config(
        vocab_size=max(shape.vocab, len(tokenizer) if tokenizer is not None else 0),
        hidden_size=shape.hidden, intermediate_size=shape.intermediate, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.max_positions, original_max_position_embeddings=shape.max_positions,
        tie_word_embeddings=False, **ids,
    )


def random_phi3(shape: Shape, tokenizer: Any = None, *, device: str = "cpu", dtype: str = "bfloat16",
                seed: int = 0) -> Any:
    """A Phi3ForCausalLM of `shape` with random weights, created directly in `dtype` on `device`.

    Creating it with bf16 as the default dtype skips an fp32 copy (15 GB and twice the time for GLIDER's
    shape); on a GPU the initialisation runs there. Weights are transformers' own init (normal, std 0.02).
    """
    import torch
    from transformers import Phi3ForCausalLM

    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            model = Phi3ForCausalLM(phi3_config(shape, tokenizer))
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def weight_bytes(model: Any, *, exclude_embedding: bool = True) -> int:
    """Bytes of the weights one decoding step reads: every weight (with 4-bit quantization statistics),
    except the input embedding table, of which a step reads one row."""
    total = 0
    for name, buffer in model.named_buffers():  # int4 layers (core.judge.int4_cpu): what the kernel reads
        if name.endswith((".packed", ".scales_and_zeros")):
            total += buffer.numel() * buffer.element_size()
    for name, param in model.named_parameters():
        if exclude_embedding and name.endswith("embed_tokens.weight"):
            continue
        if name.endswith(".dense"):  # an int4 layer's bf16 copy, read by prompts only, never by a decoding step
            continue
        total += param.numel() * param.element_size()
        state = getattr(param, "quant_state", None)
        while state is not None:  # bitsandbytes 4-bit: absmax per block (nested when double-quantized)
            absmax = getattr(state, "absmax", None)
            if absmax is not None:
                total += absmax.numel() * absmax.element_size()
            state = getattr(state, "state2", None)
    return total


def gguf_weight_bytes(path: Path, *, exclude_embedding: bool = True) -> int:
    """Bytes of a GGUF file's tensors one decoding step reads (all but token_embd, as weight_bytes)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    return sum(int(t.n_bytes) for t in reader.tensors if not (exclude_embedding and t.name == "token_embd.weight"))


def backend_accepts(backend: str, parameter: str) -> bool:
    """Whether a judge back-end's constructor has `parameter` (features other work adds, e.g. prefix_cache)."""
    from core.judge import BACKENDS

    try:
        return parameter in inspect.signature(BACKENDS[backend]).parameters
    except (KeyError, TypeError, ValueError):
        return False


def llama_cpp_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


# -- one artifact per process -------------------------------------------------------------------------------
def _build_bf16(shape: Shape, out: Path, tokenizer_path: Path | None) -> dict[str, Any]:
    tokenizer = load_tokenizer(tokenizer_path)
    model = random_phi3(shape, tokenizer)
    tiny_model.save(model, tokenizer, out)  # GLIDER's stop ids in generation_config.json, tokenizer beside
    return {"parameters": sum(p.numel() for p in model.parameters()), "weight_bytes": weight_bytes(model)}


def _build_nf4(shape: Shape, out: Path, source: Path) -> dict[str, Any]:
    """Quantize `source` (bf16) to nf4 while loading, exactly as the app does, and save it pre-quantized."""
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from core.judge.transformers_backend import _quantization_config

    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(source), quantization_config=_quantization_config("nf4"),
                                                 device_map="cpu")
    quantize_seconds = time.perf_counter() - started
    model.save_pretrained(out)
    PreTrainedTokenizerFast.from_pretrained(str(source)).save_pretrained(out)
    return {"quantize_seconds": quantize_seconds, "weight_bytes": weight_bytes(model)}


def _build_nf4_cache(shape: Shape, out: Path, source: Path) -> dict[str, Any]:
    """Fill the transformers back-end's quantize-once cache (its own layout) by loading the bf16 model."""
    from core.judge.transformers_backend import TransformersJudge

    if not backend_accepts("transformers", "quantized_cache"):
        raise RuntimeError("the transformers back-end has no quantized_cache parameter")
    out.mkdir(parents=True, exist_ok=True)
    judge = TransformersJudge(str(source), quantization="nf4", device="cpu", quantized_cache=True, cache_dir=str(out))
    return {"load_seconds": judge.load_seconds,
            "loaded_from_quantized_cache": bool(getattr(judge, "loaded_from_quantized_cache", False))}


def write_f16_gguf(model_dir: Path, out: Path, *, name: str = "glider-bench-random-weights") -> Path:
    """Write a saved (bf16, possibly sharded) Phi-3 as an f16 GGUF, one tensor in memory at a time.

    The metadata, tensor names and tokenizer are tests/tiny_gguf.py's (one mapping for tests and benchmarks);
    its own `convert` holds every tensor in memory and reads only unsharded float32 checkpoints.
    """
    import gguf
    import numpy as np
    import torch
    from safetensors import safe_open

    from tests import tiny_gguf

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    files = sorted(model_dir.glob("*.safetensors"))
    where = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                where[key] = file
    writer = gguf.GGUFWriter(out, "phi3")
    writer.add_name(name)
    tiny_gguf._add_hyperparameters(writer, config, tiny_gguf.FILE_TYPES["f16"])
    tiny_gguf._add_tokenizer(writer, model_dir, config["vocab_size"])
    order = sorted(where)
    handles = {file: safe_open(str(file), framework="pt") for file in files}
    for key in order:
        shape = handles[where[key]].get_slice(key).get_shape()
        dtype = np.float16 if len(shape) == 2 else np.float32
        writer.add_tensor_info(tiny_gguf._tensor_name(key), shape, np.dtype(dtype),
                               int(np.prod(shape)) * np.dtype(dtype).itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for key in order:
        tensor = handles[where[key]].get_tensor(key)
        target = torch.float16 if tensor.ndim == 2 else torch.float32
        writer.write_tensor_data(np.ascontiguousarray(tensor.to(target).numpy()))
    writer.close()
    return out


def quantize_gguf(source: Path, out: Path, kind: str = "Q4_K_M") -> Path:
    """llama.cpp's own quantizer (llama_model_quantize) from an f16 GGUF to `kind`."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
    params.nthread = os.cpu_count() or 1
    code = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params)
    if code != 0:
        raise RuntimeError(f"llama_model_quantize returned {code}")
    return out


def _build_gguf(shape: Shape, out: Path, source: Path, keep_f16: bool) -> dict[str, Any]:
    if not llama_cpp_available():
        raise RuntimeError("llama-cpp-python is not installed")
    started = time.perf_counter()
    f16 = out / "model-F16.gguf"
    write_f16_gguf(source, f16)
    f16_seconds = time.perf_counter() - started
    started = time.perf_counter()
    quantize_gguf(f16, out / "model-Q4_K_M.gguf")
    quantize_seconds = time.perf_counter() - started
    if not keep_f16:
        f16.unlink()
    return {"f16_seconds": f16_seconds, "quantize_seconds": quantize_seconds,
            "weight_bytes": gguf_weight_bytes(out / "model-Q4_K_M.gguf")}


def _build_tiny(out: Path, tokenizer_path: Path | None) -> dict[str, Any]:
    """tests/tiny_model's 2-layer, 64-wide judge with random weights (the web app tests' model)."""
    tokenizer = load_tokenizer(tokenizer_path)
    model = tiny_model.build_model(tokenizer, max_positions=4096)
    tiny_model.save(model, tokenizer, out)
    return {"parameters": sum(p.numel() for p in model.parameters())}


def build_artifact(artifact: str, shape_name: str, cache_dir: Path, *, tokenizer: Path | None = None,
                   keep_f16: bool = False) -> dict[str, Any]:
    """Build one artifact in this process (into a .partial folder, renamed when done); returns its manifest."""
    shape = SHAPES[shape_name]
    final = shape_dir(cache_dir, shape_name) / artifact
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    bf16 = artifact_path(cache_dir, shape_name, "bf16")
    started = time.perf_counter()
    if artifact == "bf16":
        details = _build_bf16(shape, partial, tokenizer)
    elif artifact == "nf4":
        details = _build_nf4(shape, partial, bf16)
    elif artifact == "nf4-cache":
        details = _build_nf4_cache(shape, partial, bf16)
    elif artifact == "gguf":
        details = _build_gguf(shape, partial, bf16, keep_f16)
    elif artifact == "tiny":
        details = _build_tiny(partial, tokenizer)
    else:
        raise ValueError(f"unknown artifact {artifact!r}; known: {', '.join(ARTIFACTS)}")
    record = {
        "artifact": artifact, "shape": asdict(shape), "seconds": time.perf_counter() - started,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "disk_bytes": sum(p.stat().st_size for p in partial.rglob("*") if p.is_file()),
        "random_weights": True, **details,
    }
    (partial / COMPLETE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return record


def needs(artifact: str) -> tuple[str, ...]:
    """Artifacts that must exist before `artifact` can be built."""
    return ("bf16",) if artifact in ("nf4", "nf4-cache", "gguf") else ()


def ensure(artifacts: list[str], shape: str, cache_dir: Path, *, tokenizer: Path | None = None,
           keep_f16: bool = False, log: Any = print) -> dict[str, dict[str, Any] | None]:
    """Build every missing artifact (and what it needs); returns their manifests.

    GLIDER-sized artifacts are built each in its own process, so one model's memory is gone before the next
    is made; the small shape's are built in this process (seconds, and no second start of torch).
    An artifact that cannot be built here (gguf without llama-cpp-python, nf4-cache without that back-end
    feature) is skipped with a message, its manifest None.
    """
    wanted: list[str] = []
    for artifact in artifacts:
        for item in (*needs(artifact), artifact):
            if item not in wanted:
                wanted.append(item)
    results: dict[str, dict[str, Any] | None] = {}
    for artifact in wanted:
        record = manifest(cache_dir, shape, artifact)
        if record is None:
            reason = unavailable(artifact)
            if reason:
                log(f"[models] {shape} {artifact}: skipped ({reason})")
                results[artifact] = None
                continue
            log(f"[models] {shape} {artifact}: building under {shape_dir(cache_dir, shape) / artifact} ...")
            if shape == "small":
                build_artifact(artifact, shape, cache_dir, tokenizer=tokenizer, keep_f16=keep_f16)
            else:
                command = [sys.executable, str(Path(__file__).resolve()), "--shape", shape, "--cache-dir",
                           str(cache_dir), "--artifacts", artifact, "--in-process"]
                if tokenizer:
                    command += ["--tokenizer", str(tokenizer)]
                if keep_f16:
                    command.append("--keep-f16")
                subprocess.run(command, check=True)
            record = manifest(cache_dir, shape, artifact)
            assert record is not None, f"building {artifact} left no {COMPLETE}"
            log(f"[models] {shape} {artifact}: built in {record['seconds']:.0f} s")
        results[artifact] = record
    return results


def unavailable(artifact: str) -> str | None:
    """Why this artifact cannot be built on this machine now, or None."""
    if artifact == "gguf" and not llama_cpp_available():
        return "llama-cpp-python is not installed"
    if artifact == "nf4-cache" and not backend_accepts("transformers", "quantized_cache"):
        return "the transformers back-end has no quantized_cache parameter yet"
    if artifact in ("nf4", "nf4-cache"):
        try:
            import accelerate  # noqa: F401
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            return f"{exc.name} is not installed"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="glider")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--artifacts", default="bf16,nf4,nf4-cache,gguf",
                        help=f"comma-separated: {', '.join(ARTIFACTS)}")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder (default: the Phi-3.5 fixture)")
    parser.add_argument("--keep-f16", action="store_true", help="keep the f16 GGUF next to the Q4_K_M one")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # ensure()'s worker
    args = parser.parse_args()
    artifacts = [a for a in args.artifacts.split(",") if a]
    if args.in_process:
        for artifact in artifacts:
            print(json.dumps(build_artifact(artifact, args.shape, args.cache_dir, tokenizer=args.tokenizer,
                                            keep_f16=args.keep_f16)), flush=True)
        return
    records = ensure(artifacts, args.shape, args.cache_dir, tokenizer=args.tokenizer, keep_f16=args.keep_f16)
    print(json.dumps(records, indent=2))


if __name__ == "__main__":
    main()
