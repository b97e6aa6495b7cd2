"""The judge settings shared by the web app and the CLI: one set of flags, one environment, one meaning.

`add_judge_arguments` adds the flags (each with a GLIDER_* environment variable, so a Hugging Face
Space is configured through its Variables); `judge_choice` turns parsed flags into the back-end to build,
the keyword arguments of `create_backend` and the reason for that back-end (`--backend auto`, the default,
is resolved there by `resolve_backend`); `judge_options` is the same without the reason; `judge_identity`
is the part of them that decides what a grade means (used to recognise a batch job when the same command
runs again), without secrets.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.judge import hardware
from core.judge.common import DEFAULT_GGUF_MODEL_ID, DEFAULT_MODEL_ID, QUANTIZATIONS

AUTO = "auto"
BACKEND_CHOICES = (AUTO, "transformers", "openai", "llamacpp")
DEFAULT_MODELS = {"transformers": DEFAULT_MODEL_ID, "openai": None, "llamacpp": DEFAULT_GGUF_MODEL_ID}
QUANTIZATION_CHOICES = QUANTIZATIONS
LLAMACPP_SETTINGS_CHOICES = ("measure", "fixed")


@dataclass(frozen=True)
class JudgeChoice:
    """The judge to build: the back-end's registry name (never 'auto'), its create_backend options, and why."""

    backend: str
    options: dict[str, Any]
    reason: str


def add_judge_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str] | None = None) -> None:
    """Add --backend, --model, --quantization, --device, --revision, --base-url, --concurrency, --gguf-file,
    --llamacpp-settings."""
    env = os.environ if env is None else env
    group = parser.add_argument_group("judge")
    group.add_argument("--backend", choices=BACKEND_CHOICES, default=env.get("GLIDER_BACKEND", AUTO),
                       help="auto (chosen for this machine: transformers nf4 with a CUDA GPU, else llamacpp "
                            "Q4_K_M when llama-cpp-python is installed, else transformers nf4; a --model or "
                            "--base-url picks the back-end that reads it), transformers (in-process), openai (an "
                            "OpenAI-compatible server: vLLM, TGI, llama.cpp server, transformers serve) or llamacpp "
                            "(a GGUF file; needs llama-cpp-python) (env GLIDER_BACKEND; default %(default)s)")
    group.add_argument("--model", default=env.get("GLIDER_MODEL") or None,
                       help="transformers: Hub id or local directory (default PatronusAI/glider); openai: the served "
                            "model name (default: the server's only model); llamacpp: a .gguf path or Hub repo "
                            "(default PatronusAI/glider-gguf) (env GLIDER_MODEL)")
    group.add_argument("--quantization", choices=QUANTIZATION_CHOICES, default=env.get("GLIDER_QUANTIZATION", "auto"),
                       help="transformers only: auto = nf4 (bitsandbytes, 4-bit) on GPU and CPU alike; int4 = "
                            "PyTorch's own 4-bit CPU kernel (faster prompts, no branch on CPU flags); int8; "
                            "none = bf16 (env GLIDER_QUANTIZATION)")
    group.add_argument("--device", default=env.get("GLIDER_DEVICE", "auto"),
                       help="auto, cpu or cuda[:N] (env GLIDER_DEVICE)")
    group.add_argument("--revision", default=env.get("GLIDER_REVISION") or None,
                       help="transformers: Hub revision (branch, tag or commit) to pin (env GLIDER_REVISION)")
    group.add_argument("--base-url", default=env.get("GLIDER_OPENAI_BASE_URL") or None,
                       help="openai: the server's URL, e.g. http://127.0.0.1:8000/v1 (env GLIDER_OPENAI_BASE_URL); "
                            "the API key is read from GLIDER_OPENAI_API_KEY or OPENAI_API_KEY, never from a flag")
    group.add_argument("--concurrency", type=positive_int, default=positive_int(env.get("GLIDER_CONCURRENCY", "8")),
                       help="openai: requests in flight at once (env GLIDER_CONCURRENCY; default %(default)s)")
    group.add_argument("--gguf-file", default=env.get("GLIDER_GGUF_FILE") or None,
                       help="llamacpp: file name (or glob) inside the Hub repo (default the Q4_K_M file) "
                            "(env GLIDER_GGUF_FILE)")
    group.add_argument("--llamacpp-settings", choices=LLAMACPP_SETTINGS_CHOICES,
                       default=env.get("GLIDER_LLAMACPP_SETTINGS", "measure"),
                       help="llamacpp on a CPU: measure (weight repacking and flash attention timed once per machine "
                            "and GGUF file at the first start, then cached) or fixed (repacking off, flash attention "
                            "on, as measured on one Intel Xeon) (env GLIDER_LLAMACPP_SETTINGS; default %(default)s)")


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (shared by every command's numeric flags)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 (got {text!r})")
    return value


def _gguf_model(model: str) -> bool:
    """Whether `model` names GGUF weights: a .gguf file, a folder of them (no config.json), a '*-gguf' Hub repo."""
    path = Path(model).expanduser()
    if model.lower().endswith(".gguf"):
        return True
    if path.is_dir():
        return not (path / "config.json").is_file() and any(path.rglob("*.gguf"))
    return model.lower().endswith("gguf")  # PatronusAI/glider-gguf, someone/glider-GGUF


def _missing_path(model: str) -> bool:
    """Whether `model` is written as a local path (absolute, ./ ../ ~, or a .gguf file) that does not exist."""
    looks_local = Path(model).is_absolute() or model.startswith((".", "~")) or model.lower().endswith(".gguf")
    return looks_local and not Path(model).expanduser().exists()


def resolve_backend(
    requested: str,
    *,
    model: str | None = None,
    gguf_file: str | None = None,
    base_url: str | None = None,
    quantization: str = "auto",
    device: str = "auto",
    cuda_available: bool | None = None,
    llama_cpp_installed: bool | None = None,
) -> tuple[str, str]:
    """(back-end name, why) for --backend `requested`; 'auto' becomes the back-end chosen for this machine.

    A named back-end is kept. For 'auto', flags only one back-end reads decide first (--base-url: openai;
    --model naming GGUF weights or --gguf-file: llamacpp; another --model, or --quantization other than
    auto: transformers); then a CUDA GPU means transformers (nf4); then llama-cpp-python installed means
    llamacpp (PatronusAI/glider-gguf, Q4_K_M: no quantizing step, less memory, within ~10 % of nf4 per grade); else
    transformers (nf4, loaded from its quantize-once cache after the first start). `cuda_available` and
    `llama_cpp_installed` are looked up (core.judge.hardware) when None; pass them to decide without asking.
    """
    if requested != AUTO:
        if requested not in BACKEND_CHOICES:
            known = ", ".join(BACKEND_CHOICES)
            raise ValueError(f"Unknown judge back-end {requested!r}; known back-ends: {known}.")
        return requested, f"{requested}: chosen with --backend (or GLIDER_BACKEND)"
    if base_url:
        return "openai", "auto: --base-url names an OpenAI-compatible server, read by the openai back-end"
    if model:
        if _missing_path(model):
            backend = "llamacpp" if _gguf_model(model) else "transformers"
            return backend, (f"auto: the --model path {model} does not exist (check the path); the {backend} "
                             "back-end, which reads that kind of model, reports it as missing")
        if _gguf_model(model):
            return "llamacpp", f"auto: {model} is GGUF weights, read by the llamacpp back-end (llama.cpp)"
        return "transformers", f"auto: {model} is a transformers model, read by the transformers back-end"
    if gguf_file:
        return "llamacpp", "auto: --gguf-file names a GGUF file, read by the llamacpp back-end (llama.cpp)"
    if quantization != "auto":
        return "transformers", f"auto: --quantization {quantization} is a setting of the transformers back-end"
    if device.startswith("cuda"):
        return "transformers", f"auto: --device {device} is a GPU, so transformers with GLIDER in nf4 on it"
    if device == "auto" and (hardware.cuda_available() if cuda_available is None else cuda_available):
        return "transformers", "auto: a CUDA GPU is available, so transformers with GLIDER in nf4 on the GPU"
    if hardware.llama_cpp_installed() if llama_cpp_installed is None else llama_cpp_installed:
        return "llamacpp", ("auto: no CUDA GPU and llama-cpp-python is installed, so llama.cpp with "
                            "PatronusAI/glider-gguf (Q4_K_M): no quantizing step, and as fast per grade as nf4 or "
                            "faster (BENCHMARKS.md, 2 cores: a typical grade via /grade 56 s vs 57 s on an AMD EPYC "
                            "with AVX512-BF16; on an Intel Xeon 5.8 vs 7.2 GB peak memory, about the same time)")
    return "transformers", ("auto: no CUDA GPU and llama-cpp-python is not installed, so transformers with GLIDER "
                            "in nf4 on the CPU (quantized once, then loaded from the cache; 57 s per typical grade on "
                            "a 2-core AMD EPYC, BENCHMARKS.md); pip install llama-cpp-python for a start with no "
                            "quantizing step (about the same time per grade)")


def judge_choice(args: argparse.Namespace) -> JudgeChoice:
    """The back-end the parsed flags ask for ('auto' resolved), its create_backend options, and the reason."""
    backend, reason = resolve_backend(
        args.backend, model=args.model, gguf_file=args.gguf_file, base_url=args.base_url,
        quantization=args.quantization, device=args.device,
    )
    model = args.model or DEFAULT_MODELS[backend]
    options: dict[str, Any]
    if backend == "openai":
        options = {"model": model, "base_url": args.base_url, "max_concurrency": args.concurrency}
    elif backend == "llamacpp":
        options = {"model": model, "device": args.device}
        if args.gguf_file:
            options["filename"] = args.gguf_file
        if getattr(args, "llamacpp_settings", "measure") == "fixed":
            options["measure_settings"] = False
    else:
        options = {"model": model, "quantization": args.quantization, "device": args.device,
                   "revision": args.revision}
    return JudgeChoice(backend, options, reason)


def judge_options(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """(back-end name, keyword arguments for create_backend) from the parsed flags ('auto' resolved)."""
    choice = judge_choice(args)
    return choice.backend, choice.options


def judge_identity(backend: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """What decides a grade's meaning: the back-end, the model and how it is run (no keys, no concurrency).

    `backend` is the resolved name (judge_choice's); 'auto' would name different judges on different machines.
    """
    if backend == AUTO:
        raise ValueError("judge_identity needs the resolved back-end (judge_choice(args).backend), not 'auto'.")
    # Like the device, how llama.cpp's CPU settings are chosen changes speed and rounding, not what a job asks
    # (the tiny trained judge grades the same under every setting: tests/test_judge_llamacpp.py).
    ignored = {"max_concurrency", "api_key", "timeout", "max_retries", "device", "measure_settings"}
    return {"backend": backend, **{key: value for key, value in sorted(options.items()) if key not in ignored}}


def describe_options(backend: str, options: Mapping[str, Any]) -> str:
    """One line for logs and banners, e.g. 'transformers: PatronusAI/glider (auto, auto)'."""
    shown = ", ".join(f"{key}={value}" for key, value in options.items() if key != "model" and value is not None)
    return f"{backend}: {options.get('model') or 'server default'}" + (f" ({shown})" if shown else "")
