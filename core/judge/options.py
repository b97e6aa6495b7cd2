"""The judge settings shared by the web app and the CLI: one set of flags, one environment, one meaning.

`add_judge_arguments` adds the flags (each with a GLIDER_* environment variable, so a Hugging Face
Space is configured through its Variables); `judge_options` turns parsed flags into the keyword
arguments of `create_backend`; `judge_identity` is the part of them that decides what a grade means
(used to recognise a batch job when the same command runs again), without secrets.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

BACKEND_CHOICES = ("transformers", "openai", "llamacpp")
DEFAULT_MODELS = {"transformers": "PatronusAI/glider", "openai": None, "llamacpp": "PatronusAI/glider-gguf"}
QUANTIZATION_CHOICES = ("auto", "nf4", "int8", "none")


def add_judge_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str] | None = None) -> None:
    """Add --backend, --model, --quantization, --device, --revision, --base-url, --concurrency, --gguf-file."""
    env = os.environ if env is None else env
    group = parser.add_argument_group("judge")
    group.add_argument("--backend", choices=BACKEND_CHOICES, default=env.get("GLIDER_BACKEND", "transformers"),
                       help="transformers (in-process), openai (an OpenAI-compatible server: vLLM, TGI, llama.cpp "
                            "server, transformers serve) or llamacpp (a GGUF file; needs llama-cpp-python) "
                            "(env GLIDER_BACKEND; default %(default)s)")
    group.add_argument("--model", default=env.get("GLIDER_MODEL") or None,
                       help="transformers: Hub id or local directory (default PatronusAI/glider); openai: the served "
                            "model name (default: the server's only model); llamacpp: a .gguf path or Hub repo "
                            "(default PatronusAI/glider-gguf) (env GLIDER_MODEL)")
    group.add_argument("--quantization", choices=QUANTIZATION_CHOICES, default=env.get("GLIDER_QUANTIZATION", "auto"),
                       help="transformers only: auto = nf4 (4-bit) on GPU and CPU alike (env GLIDER_QUANTIZATION)")
    group.add_argument("--device", default=env.get("GLIDER_DEVICE", "auto"),
                       help="auto, cpu or cuda[:N] (env GLIDER_DEVICE)")
    group.add_argument("--revision", default=env.get("GLIDER_REVISION") or None,
                       help="transformers: Hub revision (branch, tag or commit) to pin (env GLIDER_REVISION)")
    group.add_argument("--base-url", default=env.get("GLIDER_OPENAI_BASE_URL") or None,
                       help="openai: the server's URL, e.g. http://127.0.0.1:8000/v1 (env GLIDER_OPENAI_BASE_URL); "
                            "the API key is read from GLIDER_OPENAI_API_KEY or OPENAI_API_KEY, never from a flag")
    group.add_argument("--concurrency", type=_positive, default=_positive(env.get("GLIDER_CONCURRENCY", "8")),
                       help="openai: requests in flight at once (env GLIDER_CONCURRENCY; default %(default)s)")
    group.add_argument("--gguf-file", default=env.get("GLIDER_GGUF_FILE") or None,
                       help="llamacpp: file name (or glob) inside the Hub repo (default the Q4_K_M file) "
                            "(env GLIDER_GGUF_FILE)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 (got {text!r})")
    return value


def judge_options(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """(back-end name, keyword arguments for create_backend) from the parsed flags."""
    backend = args.backend
    model = args.model or DEFAULT_MODELS[backend]
    if backend == "openai":
        return backend, {"model": model, "base_url": args.base_url, "max_concurrency": args.concurrency}
    if backend == "llamacpp":
        options: dict[str, Any] = {"model": model, "device": args.device}
        if args.gguf_file:
            options["filename"] = args.gguf_file
        return backend, options
    return backend, {"model": model, "quantization": args.quantization, "device": args.device,
                     "revision": args.revision}


def judge_identity(backend: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """What decides a grade's meaning: the back-end, the model and how it is run (no keys, no concurrency)."""
    ignored = {"max_concurrency", "api_key", "timeout", "max_retries", "device"}
    return {"backend": backend, **{key: value for key, value in sorted(options.items()) if key not in ignored}}


def describe_options(backend: str, options: Mapping[str, Any]) -> str:
    """One line for logs and banners, e.g. 'transformers: PatronusAI/glider (auto, auto)'."""
    shown = ", ".join(f"{key}={value}" for key, value in options.items() if key != "model" and value is not None)
    return f"{backend}: {options.get('model') or 'server default'}" + (f" ({shown})" if shown else "")
