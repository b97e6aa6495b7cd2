"""GLIDER on Hugging Face transformers, optionally quantized with bitsandbytes (nf4 or int8).

torch and transformers are imported inside the functions that need them, so importing core stays
cheap and works on machines without them.

Two things keep a CPU judge usable: a quantized copy is saved once and reloaded in seconds afterwards
(`core.judge.quantized_cache`), and the key/value cache of the prompt's constant head (the chat prefix and
GLIDER's instructions, ~204 tokens) is computed once per judge and reused by every `stream`/`generate`.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.errors import ContextTooLongError, JudgeError, ModelLoadError
from core.judge.base import (
    DEFAULT_MAX_NEW_TOKENS,
    TRAINED_CONTEXT,
    BackendInfo,
    BatchOutcome,
    Generation,
    SerialBackend,
    StreamEvent,
    register_backend,
)
from core.judge.bitsandbytes_cpu import detect_bnb_cpu_path, import_bitsandbytes
from core.judge.common import (
    DEFAULT_MODEL_ID,
    MIN_ANSWER_TOKENS,
    QUANTIZATIONS,
    STOP_TOKENS,
    check_batch,
    constant_chat_prefix,
    fit_context,
    resolve_local_files_only,
    reusable_prefix_length,
)
from core.judge.cpu_decode import growing_cache, register_attention
from core.judge.hardware import logical_cpus, physical_cores
from core.judge.int4_cpu import Int4Summary, quantize_linear_layers
from core.judge.logit_distribution import ScoreLocator
from core.judge.quantized_cache import CacheKey, QuantizedCache, cache_key, identify_source, library_versions
from core.prompt import chat_messages

log = logging.getLogger(__name__)


def resolve_quantization(quantization: str, device: str = "cuda") -> str:
    """'auto' is nf4 (bitsandbytes) on a GPU and on a CPU; int4 (PyTorch's CPU kernel) is chosen by name.

    Measured end to end through /grade on a 2-core AMD EPYC with AVX512-BF16 (BENCHMARKS.md, one run): nf4
    57 s per typical grade, int4 62 s (int4 evaluates prompts faster, 50 vs 36 tok/s; bitsandbytes' fused
    AVX512-BF16 kernel writes faster, 7.2 vs 5.7 tok/s). int4 has not been measured on a CPU without
    AVX512-BF16 yet, so 'auto' does not choose it by guess.
    """
    if quantization not in QUANTIZATIONS:
        raise ModelLoadError(f"Unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}.")
    if quantization == "int4" and not device.startswith("cpu"):
        raise ModelLoadError(f"Quantization 'int4' is PyTorch's CPU kernel; on {device} use --quantization nf4 "
                             "(or auto), or --device cpu.")
    return "nf4" if quantization == "auto" else quantization


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"Device {device!r} was requested but CUDA is not available on this machine; "
            "use --device cpu (or auto), or run on a machine with an NVIDIA GPU."
        )
    return device


def _kernel_description(quantization: str, device: str, int4: Int4Summary | None = None) -> str:
    """What multiplies the weights, for the judge's info, the start log line and the banner."""
    if int4 is not None:
        return int4.describe()
    if quantization == "nf4" and device.startswith("cpu"):
        return detect_bnb_cpu_path()
    if quantization != "none":
        return f"{quantization} via bitsandbytes ({device.split(':')[0]})"
    return ""


def _quantization_config(quantization: str) -> Any:
    import torch

    try:
        import accelerate  # noqa: F401  bitsandbytes needs it to place quantized weights, on CPU too

        import_bitsandbytes()
    except ImportError as exc:
        raise ModelLoadError(
            f"Quantization {quantization!r} needs the packages bitsandbytes and accelerate ({exc.name} is missing): "
            "pip install bitsandbytes accelerate, or start with --quantization none."
        ) from exc
    from transformers import BitsAndBytesConfig

    if quantization == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def _quantization_settings(quantization: str, load_kwargs: dict[str, Any], device: str) -> dict[str, Any]:
    """What decides a quantized copy's bytes besides the model and the libraries: the cache key's settings."""
    config = load_kwargs["quantization_config"]
    return {
        "quantization": quantization,
        "config": json.loads(config.to_json_string(use_diff=False)),  # every field, defaults included
        "dtype": str(load_kwargs.get("dtype", "default")),
        "device": device.split(":")[0],  # cpu or cuda: bitsandbytes quantizes with each device's own kernels
    }


def configure_cpu_threads(device: str) -> str | None:
    """On CPU, give torch one intra-op thread per physical core unless the user chose a count; returns a note.

    A second thread on a hyper-threaded core only adds contention to memory-bound decoding. A count the user
    set through OMP_NUM_THREADS / MKL_NUM_THREADS, or torch.set_num_threads to anything but torch's own
    default (the logical CPU count) or the physical core count, is kept.
    """
    if not device.startswith("cpu"):
        return None
    import torch

    def threads(count: int) -> str:
        return f"{count} CPU thread{'' if count == 1 else 's'}"

    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(variable):
            return f"{threads(torch.get_num_threads())} ({variable}={os.environ[variable]})"
    cores = physical_cores()
    current = torch.get_num_threads()
    if current not in (cores, logical_cpus(), os.cpu_count()):
        return f"{threads(current)} (set with torch.set_num_threads)"
    if current != cores:
        torch.set_num_threads(cores)
    return f"{threads(cores)} (one per physical core)"


def warm_parallel_runtime() -> None:
    """Run one parallel op on the calling thread, so generation on worker threads runs at full speed.

    Without it, generation on worker threads ran many times slower (OpenMP threads spinning; figures in
    bench/README.md). Call it on the main thread when the judge is loaded elsewhere.
    """
    import torch

    with torch.inference_mode():
        torch.ones(256, 256) @ torch.ones(256, 256)


def constant_prompt_prefix(tokenizer: Any) -> str:
    """The chat-formatted text every GLIDER prompt starts with: the turn's opening and the instructions.

    Rendered through the tokenizer's own chat template (with a marker where the data would start), so it
    is whatever that template puts before the user's text; '' when the template hides the marker.
    """
    return constant_chat_prefix(
        lambda text: tokenizer.apply_chat_template(chat_messages(text), tokenize=False, add_generation_prompt=True)
    )


def _load_tokenizer(model: str, revision: str | None, local_files_only: bool) -> Any:
    """Load the tokenizer exactly as published in tokenizer.json.

    transformers 5 rebuilds Llama-family tokenizers with a different pre-tokenizer than the file's
    (a word after a special token loses its leading '▁': 'P' 29925 instead of '▁P' 349), which is not
    the text GLIDER was trained on. Loading the file through the generic fast class keeps it intact.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    kwargs: dict[str, Any] = {"revision": revision, "local_files_only": local_files_only}
    try:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(model, **kwargs)
    except (OSError, ValueError, TypeError):
        tokenizer = AutoTokenizer.from_pretrained(model, **kwargs)
    if tokenizer.chat_template is None:
        raise ModelLoadError(f"The tokenizer of {model!r} has no chat template; GLIDER's prompt needs Phi-3's.")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _explain_load_failure(model: str, exc: BaseException, offline: bool = False) -> ModelLoadError:
    """Turn whatever from_pretrained raised into a message a user can act on."""
    text = f"{type(exc).__name__}: {exc}"
    local = Path(model).expanduser()
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return ModelLoadError(
            f"Not enough memory to load {model!r}. Use --quantization nf4 (about 2.5 GB for GLIDER), "
            "close other programs, or use a machine with more memory."
        )
    looks_local = local.is_absolute() or model.startswith((".", "~")) or local.exists()
    if looks_local:
        if not local.exists():
            return ModelLoadError(f"The model path {model!r} does not exist (looked for {local.absolute()}). "
                                  "Check --model.")
        return ModelLoadError(f"{str(local)!r} is not a loadable model directory ({text}). It needs config.json, "
                              "the weights (*.safetensors) and the tokenizer files.")
    if offline:
        return ModelLoadError(
            f"The model {model!r} is not in the local Hugging Face cache and the app is offline "
            "(HF_HUB_OFFLINE is set or the Hub cannot be reached). "
            "Download it on a machine with internet access (hf download PatronusAI/glider --local-dir "
            "./glider), copy the folder here and start with --model ./glider."
        )
    return ModelLoadError(
        f"Could not load the model {model!r}: {text}. If this machine is offline or cannot reach the Hugging Face "
        "Hub, download the model elsewhere (hf download PatronusAI/glider --local-dir ./glider) and "
        "start with --model ./glider. If the id is misspelt, fix --model."
    )


@dataclass(frozen=True)
class _Row:
    """One prompt of a batch, after the context guard: where it goes, its ids, limit and warnings."""

    index: int
    ids: list[int]
    scale: tuple[int, int] | None
    max_new_tokens: int
    warnings: tuple[str, ...]


def _generation_error(exc: BaseException, rows: int = 1) -> JudgeError:
    """What `model.generate` raised (for `rows` prompts at once), as the JudgeError a caller can show."""
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        advice = "shorten the input" if rows == 1 else f"grade fewer than {rows} items at once or shorten the inputs"
        return JudgeError(f"The model ran out of memory while generating; {advice}.")
    return JudgeError(f"Generation failed: {type(exc).__name__}: {exc}")


class _GenerateThread:
    """`model.generate` running on its own thread, which the caller streams from or waits for, and can stop.

    Both `stream` and `generate_batch` generate this way, so they run under the same conditions: on a busy
    CPU, PyTorch's small parallel ops are much slower on the main thread than on a fresh one (OpenMP workers
    spinning against other processes; figures in bench/README.md). `stop` ends the generation at
    its next step, so a caller that leaves early (a closed stream, Ctrl-C) can wait for it before
    releasing the model's lock.
    """

    def __init__(
        self,
        model: Any,
        config: Any,
        streamer: Any = None,
        prepare: Callable[[], dict[str, Any]] | None = None,
        **inputs: Any,
    ) -> None:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        cancelled = threading.Event()

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool, device=input_ids.device)

        self._cancelled = cancelled
        self._rows = int(inputs["input_ids"].shape[0])
        self._outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                with torch.inference_mode():
                    # Extra inputs (a copy of the prefix cache) are made here, on this thread, for the speed
                    # reason above; a failure is reported like generate's own.
                    extra = prepare() if prepare is not None else {}
                    self._outcome["output"] = model.generate(
                        **inputs,
                        **extra,
                        generation_config=config,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([Cancelled()]),
                    )
            except BaseException as exc:  # re-raised in the caller's thread by `result`
                self._outcome["error"] = exc
                if streamer is not None:
                    streamer.end()

        self._thread = threading.Thread(target=run, name="glider-generate", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        """Wait for generate's output; what it raised comes back as a JudgeError."""
        self._thread.join()
        if "error" in self._outcome:
            raise _generation_error(self._outcome["error"], self._rows) from self._outcome["error"]
        return self._outcome["output"]

    def stop(self) -> None:
        """End the generation early if it still runs, and wait until it has."""
        if self._thread.is_alive():
            self._cancelled.set()
            self._thread.join()


@register_backend("transformers")
class TransformersJudge(SerialBackend):
    """A GLIDER judge running in-process on transformers; one generation (or one batch) at a time per instance.

    `quantized_cache` keeps a saved copy of an nf4/int8 model under `cache_dir` (default: $GLIDER_CACHE_DIR,
    else ~/.cache/glider-studio/quantized) so that only the first load quantizes; `prefix_cache` reuses the
    key/value cache of the prompt's constant head across generations. With int4 (the CPU default) the model
    is loaded in bf16 and quantized in seconds (no cache needed); `keep_prompt_weights` keeps those bf16
    weights for prompt-sized matmuls (None: when the memory left allows it, `core.judge.int4_cpu`).
    `cpu_decode` (on a CPU) keeps keys and values in a growing float32 cache read by float32 attention
    (`core.judge.cpu_decode`); False gives transformers' own cache and attention, for comparison.
    `prompt_lookup` > 0 drafts that many tokens from n-grams of the prompt (transformers' prompt lookup
    decoding) and verifies them in one forward pass: greedy output is unchanged (tested); whether it is faster
    depends on how much of the prompt GLIDER quotes, which random weights cannot show (BENCHMARKS.md); with it
    the prompt's head is not reused (see `stream`).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL_ID,
        *,
        quantization: str = "auto",
        device: str = "auto",
        revision: str | None = None,
        dtype: str = "auto",
        local_files_only: bool | None = None,
        quantized_cache: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        prefix_cache: bool = True,
        keep_prompt_weights: bool | None = None,
        cpu_decode: bool = True,
        prompt_lookup: int = 0,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM
        except ImportError as exc:
            raise ModelLoadError(f"The transformers back-end needs torch and transformers: {exc}.") from exc

        super().__init__()
        if prompt_lookup < 0:
            raise ModelLoadError(f"prompt_lookup must be 0 (off) or a number of draft tokens, not {prompt_lookup}.")
        self.prompt_lookup = prompt_lookup
        self.device = _resolve_device(device)
        self.quantization = resolve_quantization(quantization, self.device)
        notes: list[str] = []
        local_files_only = resolve_local_files_only(local_files_only, model, notes,
                                                    local=Path(model).expanduser().exists())
        threads = configure_cpu_threads(self.device)
        if self.device.startswith("cpu"):
            warm_parallel_runtime()
        started = time.perf_counter()
        load_kwargs: dict[str, Any] = {"revision": revision, "local_files_only": local_files_only}
        if self.quantization == "none":
            load_kwargs["dtype"] = dtype if dtype != "auto" else "auto"
            load_kwargs["device_map"] = self.device
        elif self.quantization == "int4":
            load_kwargs["dtype"] = torch.bfloat16  # the kernel's compute type; quantized after loading
            load_kwargs["device_map"] = self.device
        else:
            load_kwargs["quantization_config"] = _quantization_config(self.quantization)
            load_kwargs["device_map"] = self.device
            if self.quantization == "int8":
                load_kwargs["dtype"] = torch.float16  # int8 matmuls compute in fp16
        self.loaded_from_quantized_cache = False
        self.quantized_cache_path: Path | None = None
        store: QuantizedCache | None = None
        key: CacheKey | None = None
        commit: str | None = None
        if self.quantization in ("nf4", "int8") and quantized_cache:
            store = QuantizedCache(cache_dir)
            source = identify_source(model, revision, local_files_only)
            if source is None:
                notes.append("quantized copy not cached: the model's hub commit is unknown")
            else:
                commit = source.commit
                settings = _quantization_settings(self.quantization, load_kwargs, self.device)
                key = cache_key(source, settings, library_versions())
        try:
            self.tokenizer = _load_tokenizer(model, revision, local_files_only)
            loaded = None
            if store is not None and key is not None:
                loaded = self._load_quantized_copy(store, key, load_kwargs)
            if loaded is None:
                loaded = AutoModelForCausalLM.from_pretrained(model, **load_kwargs)
            self.model = loaded
        except ModelLoadError:
            raise
        except Exception as exc:  # from_pretrained raises many unrelated types; all mean "could not load"
            raise _explain_load_failure(model, exc, offline=local_files_only) from exc
        self.model.eval()
        # On a CPU, single-token steps use float32 matmul attention and a cache that grows without copying
        # (core.judge.cpu_decode: at 900 tokens of context they took 230 ms a step before, mostly both).
        self.cpu_decode = cpu_decode and self.device.startswith("cpu")
        if self.cpu_decode:
            self.model.set_attn_implementation(register_attention())
        self.int4: Int4Summary | None = None
        if self.quantization == "int4":
            self.int4 = quantize_linear_layers(self.model, keep_dense=keep_prompt_weights)
            notes.append(f"int4: {self.int4.converted} layers, {self.int4.int4_bytes / 1e9:.2f} GB of 4-bit weights"
                         + (f", bf16 weights kept for prompts ({self.int4.dense_bytes / 1e9:.2f} GB)"
                            if self.int4.dense_kept else ""))
        if store is not None and key is not None:
            if self.loaded_from_quantized_cache:
                notes.append(f"quantized copy loaded from the cache ({self.quantized_cache_path})")
            else:
                self._save_quantized_copy(store, key, model, notes)
        self.load_seconds = time.perf_counter() - started
        self.stop_token_ids = [
            tid for tid in (self.tokenizer.convert_tokens_to_ids(t) for t in STOP_TOKENS)
            if tid is not None and tid != self.tokenizer.unk_token_id
        ]
        self.max_context = int(getattr(self.model.config, "max_position_embeddings", TRAINED_CONTEXT))
        self._longest_token_chars: int | None = None
        self.scores = ScoreLocator(self.tokenizer)
        self.prefix_ids: tuple[int, ...] = self._prefix_ids() if prefix_cache else ()
        self._prefix_state: Any = None  # the prefix's key/value cache, computed by the first generation
        compute_dtype = str(getattr(self.model, "dtype", "unknown")).removeprefix("torch.")
        kernel = _kernel_description(self.quantization, self.device, self.int4)
        self.info = BackendInfo(
            backend="transformers",
            model_id=model,
            revision=getattr(self.model.config, "_commit_hash", None) or commit or revision,
            quantization=self.quantization,
            dtype=f"{self.quantization}/bfloat16" if self.quantization in ("nf4", "int4") else compute_dtype,
            device=self.device,
            max_context=self.max_context,
            notes=(*notes, *([threads] if threads else []), f"loaded in {self.load_seconds:.1f} s"),
            kernel=kernel,
        )
        log.info("Loaded judge %s in %.1f s", self.info.describe(), self.load_seconds)
        if "slow" in kernel:
            log.warning("The judge runs %s; grading will be slow on this machine", kernel)

    # -- the quantized copy ----------------------------------------------------------------------
    def _load_quantized_copy(self, store: QuantizedCache, key: CacheKey, load_kwargs: dict[str, Any]) -> Any:
        """The model from the cache entry for `key`, or None when there is none (a broken one is discarded)."""
        from transformers import AutoModelForCausalLM

        entry = store.lookup(key)
        if entry is None:
            return None
        # The entry's config.json carries its quantization config; passing one again would re-quantize.
        kwargs = {k: v for k, v in load_kwargs.items() if k not in ("quantization_config", "revision")}
        kwargs["local_files_only"] = True
        try:
            loaded = AutoModelForCausalLM.from_pretrained(str(entry), **kwargs)
        except Exception as exc:  # a damaged file the manifest could not see: rebuild rather than fail
            store.discard(key, f"it could not be loaded ({type(exc).__name__}: {exc})")
            return None
        self.loaded_from_quantized_cache = True
        self.quantized_cache_path = entry
        return loaded

    def _save_quantized_copy(self, store: QuantizedCache, key: CacheKey, model: str, notes: list[str]) -> None:
        """Save the freshly quantized model (and tokenizer) as the cache entry for `key`; failures only warn."""

        def write(directory: Path) -> None:
            self.model.save_pretrained(directory)
            self.tokenizer.save_pretrained(directory)

        saved = store.save(key, write, extra={"model": model, "quantization": self.quantization})
        if saved is None:
            notes.append(f"quantized copy could not be saved to {store.root} (see the log)")
        else:
            self.quantized_cache_path = saved
            notes.append(f"quantized copy saved to the cache ({saved})")

    # -- the constant prompt prefix --------------------------------------------------------------
    def _prefix_ids(self) -> tuple[int, ...]:
        """Token ids of the constant prompt head whose key/value cache is reused; () when it cannot be."""
        text = constant_prompt_prefix(self.tokenizer)
        if not text:
            return ()
        ids = tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        window = getattr(self.model.config, "sliding_window", None)
        if window and len(ids) >= window - 1:
            return ()  # a sliding-window cache would already have dropped keys a cold run still reads
        return ids

    def reusable_prefix(self, ids: Sequence[int]) -> int:
        """How many of the prompt's leading ids can come from the prefix cache (0 means a cold run).

        Only the leading ids that equal the stored prefix's count (tokenization may merge across its end),
        and at least one id is left for `generate` to process. Past `original_max_position_embeddings`, Phi-3
        switches RoPE to its long-context factors and recomputes every key, so the cache would be unused.
        """
        limit = getattr(self.model.config, "original_max_position_embeddings", None)
        if limit and len(ids) > limit:
            return 0
        return reusable_prefix_length(ids, self.prefix_ids)

    def _prefix_cache_copy(self, length: int, capacity: int = 0) -> Any:
        """A fresh copy of the prefix's key/value cache holding its first `length` tokens (caller holds the lock).

        On a CPU it is a growing cache with room for `capacity` tokens (the prompt and the answer).

        `generate` extends the cache it is given in place, so each call gets its own copy (for GLIDER in bf16
        about 0.4 MB per token, ~80 MB for the whole prefix).
        """
        import torch

        if self._prefix_state is None:
            prefix = torch.tensor([self.prefix_ids], device=self.model.device)
            with torch.inference_mode():
                start = {"cache": growing_cache(self.model.config, len(prefix[0]))} if self.cpu_decode else {}
                self._prefix_state = self.model(input_ids=prefix, use_cache=True, logits_to_keep=1, **start).cache
        if self.cpu_decode:
            cache = growing_cache(self.model.config, capacity, prefill=self._prefix_state)
        else:
            cache = copy.deepcopy(self._prefix_state)
        surplus = cache.get_seq_length() - length
        if surplus > 0:
            cache.crop(-surplus)  # a negative count removes that many tokens from the end
        return cache

    def _fresh_cache(self, capacity: int) -> Callable[[], dict[str, Any]] | None:
        """What `generate` gets as its empty cache: a growing one with room for `capacity` tokens on a CPU."""
        if not self.cpu_decode:
            return None
        return lambda: {"cache": growing_cache(self.model.config, capacity)}

    # -- prompt handling -------------------------------------------------------------------------
    def chat_ids(self, prompt: str) -> list[int]:
        """Token ids of the prompt rendered as one user turn with the generation prompt."""
        text = self.tokenizer.apply_chat_template(chat_messages(prompt), tokenize=False, add_generation_prompt=True)
        self._refuse_beyond_any_tokenization(text)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _refuse_beyond_any_tokenization(self, text: str) -> None:
        """Refuse a prompt that cannot fit however it tokenizes, before paying for tokenizing it.

        No token covers more characters than its vocabulary string is long, so len(text) / that length is
        a floor on the token count (halved once more in case a normalizer merges characters). Tokenizing a
        pasted megabyte takes about a second on a laptop core; this check takes microseconds.
        """
        if self._longest_token_chars is None:
            self._longest_token_chars = max((len(token) for token in self.tokenizer.get_vocab()), default=1)
        fewest_tokens = len(text) // (2 * max(self._longest_token_chars, 1))
        if fewest_tokens + MIN_ANSWER_TOKENS > self.max_context:
            raise ContextTooLongError(
                f"The prompt has {len(text):,} characters, at least {fewest_tokens:,} tokens, but the model reads "
                f"at most {self.max_context:,}. Shorten the context or the output; nothing is truncated silently."
            )

    def count_tokens(self, prompt: str) -> int:
        """Number of tokens of the chat-formatted prompt."""
        return len(self.chat_ids(prompt))

    def _fit(self, prompt_tokens: int, max_new_tokens: int) -> tuple[int, list[str]]:
        """Apply the context guard (core.judge.common.fit_context) to this model's context."""
        return fit_context(prompt_tokens, max_new_tokens, self.max_context)

    # -- generation ------------------------------------------------------------------------------
    def _generation_config(self, max_new_tokens: int, *, single: bool = False) -> Any:
        """Greedy decoding to a stop token, keeping every step's logits (the score distribution reads them).

        `single`: one prompt, so prompt lookup drafts can be verified (transformers does so for one row only).
        """
        from transformers import GenerationConfig

        lookup = {"prompt_lookup_num_tokens": self.prompt_lookup} if single and self.prompt_lookup else {}
        return GenerationConfig(
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=self.stop_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            return_dict_in_generate=True,
            output_logits=True,
            **lookup,
        )

    def _settings(self, **extra: Any) -> dict[str, Any]:
        lookup = {"prompt_lookup_tokens": self.prompt_lookup} if self.prompt_lookup else {}
        return {"do_sample": False, "stop_token_ids": list(self.stop_token_ids), **lookup, **extra}

    def stream(
        self, prompt: str, *, scale: tuple[int, int] | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    ) -> Iterator[StreamEvent]:
        """Yield decoded text as it is generated, then the Generation with the score distribution."""
        import torch
        from transformers import TextIteratorStreamer

        ids = self.chat_ids(prompt)
        max_new_tokens, warnings = self._fit(len(ids), max_new_tokens)
        input_ids = torch.tensor([ids], device=self.model.device)
        config = self._generation_config(max_new_tokens, single=True)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        with self.generation_lock:  # one generation at a time on this model
            started = time.perf_counter()
            first_token: float | None = None
            # With a cache of the first `reused` ids, generate is still given the full ids and mask (it derives
            # positions from the mask) and processes only the ids past the cache.
            # transformers' prompt lookup (assisted generation) mis-reads a cache that already holds part of the
            # prompt (from the second token on the text differed from plain greedy decoding in our test), so with
            # prompt lookup the head is prefilled again.
            reused = 0 if self.prompt_lookup else self.reusable_prefix(ids)
            capacity = len(ids) + max_new_tokens
            prepare = ((lambda: {"cache": self._prefix_cache_copy(reused, capacity)}) if reused
                       else self._fresh_cache(capacity))
            worker = _GenerateThread(
                self.model, config, streamer, prepare, input_ids=input_ids, attention_mask=torch.ones_like(input_ids)
            )
            try:
                for text in streamer:
                    if text:
                        if first_token is None:
                            first_token = time.perf_counter() - started
                        yield text
                output = worker.result()
            finally:
                worker.stop()  # a reader that stopped early must not leave generate running once the lock is free
            generated = output.sequences[0, len(ids):].tolist()
            seconds = time.perf_counter() - started
            finish_reason = "stop" if generated and generated[-1] in self.stop_token_ids else "length"
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            distribution = mass = None
            if scale is not None:
                read = self.scores.distribution(
                    self.model, generated, output.logits, output.cache, len(ids), scale
                )
                if read is not None:
                    distribution, mass = read
        yield Generation(
            text=text,
            prompt_tokens=len(ids),
            completion_tokens=len(generated),
            finish_reason=finish_reason,
            distribution=distribution,
            distribution_mass=mass,
            seconds=seconds,
            first_token_seconds=first_token,
            warnings=tuple(warnings),
            settings=self._settings(prefix_cached_tokens=reused),
        )

    def generate_batch(
        self,
        prompts: Sequence[str],
        *,
        scales: Sequence[tuple[int, int] | None],
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    ) -> list[BatchOutcome]:
        """Greedy generation for many prompts, left-padded into one `generate` per group of rows.

        Each Generation is what `generate(prompt)` alone returns (text, token counts, finish reason,
        warnings, distribution to float rounding); a prompt that cannot fit gets its ContextTooLongError
        in its place. Rows are grouped by the limit the context guard leaves them (normally one group),
        so a row near the context's end does not shorten the others. Errors that stop the whole call
        (out of memory) are raised.
        """
        check_batch(prompts, scales, max_new_tokens)
        if len(prompts) == 1:  # one prompt (each /grade call alone): the single path reuses the prompt head's cache
            try:
                single = self.generate(prompts[0], scale=scales[0], max_new_tokens=max_new_tokens)
            except ContextTooLongError as error:
                return [error]
            return [replace(single, settings={**single.settings, "batch_size": 1})]
        outcomes: list[BatchOutcome | None] = [None] * len(prompts)
        groups: dict[int, list[_Row]] = {}
        for index, (prompt, scale) in enumerate(zip(prompts, scales, strict=True)):
            ids = self.chat_ids(prompt)
            try:
                limit, warnings = self._fit(len(ids), max_new_tokens)
            except ContextTooLongError as error:  # this prompt alone; the others still run
                outcomes[index] = error
                continue
            groups.setdefault(limit, []).append(_Row(index, ids, scale, limit, tuple(warnings)))
        with self.generation_lock:  # one generation at a time on this model, as in `stream`
            for rows in groups.values():
                for row, generation in zip(rows, self._generate_rows(rows), strict=True):
                    outcomes[row.index] = generation
        return [outcome for outcome in outcomes if outcome is not None]

    def _generate_rows(self, rows: list[_Row]) -> list[Generation]:
        """One left-padded greedy `generate` for rows sharing max_new_tokens; the caller holds the lock."""
        import torch

        width = max(len(row.ids) for row in rows)
        pad = self.tokenizer.pad_token_id
        device = self.model.device
        input_ids = torch.tensor([[pad] * (width - len(row.ids)) + row.ids for row in rows], device=device)
        # generate derives each row's positions from this mask (cumsum - 1), so a padded row's prompt sits
        # at the positions 0..len-1 it has when generated alone.
        attention_mask = torch.tensor(
            [[0] * (width - len(row.ids)) + [1] * len(row.ids) for row in rows], dtype=torch.long, device=device
        )
        started = time.perf_counter()
        config = self._generation_config(rows[0].max_new_tokens)
        worker = _GenerateThread(self.model, config, None, self._fresh_cache(width + rows[0].max_new_tokens),
                                 input_ids=input_ids, attention_mask=attention_mask)
        try:
            output = worker.result()  # a failure here stops every row: raised, not returned
        finally:
            worker.stop()  # interrupted while waiting (Ctrl-C): end generate before the lock is released
        sequences = output.sequences[:, width:].tolist()
        seconds = (time.perf_counter() - started) / len(rows)  # the batch's wall time, shared evenly
        generations = []
        for index, row in enumerate(rows):
            generated = self._until_stop(sequences[index])
            distribution = mass = None
            if row.scale is not None:
                read = self.scores.distribution(
                    self.model, generated, output.logits, output.cache, len(row.ids), row.scale,
                    row=index, padding=width - len(row.ids),
                )
                if read is not None:
                    distribution, mass = read
            generations.append(
                Generation(
                    text=self.tokenizer.decode(generated, skip_special_tokens=True),
                    prompt_tokens=len(row.ids),
                    completion_tokens=len(generated),
                    finish_reason="stop" if generated and generated[-1] in self.stop_token_ids else "length",
                    distribution=distribution,
                    distribution_mass=mass,
                    seconds=seconds,
                    # Every row gets its first token at the batch's first step; that latency is not this
                    # row's, and mixing it with the amortised `seconds` would mislead, so none is claimed.
                    first_token_seconds=None,
                    warnings=row.warnings,
                    settings=self._settings(batch_size=len(rows)),
                )
            )
        return generations

    def _until_stop(self, tokens: list[int]) -> list[int]:
        """A batch row's generated ids up to and including its first stop id (generate pads finished rows)."""
        stops = set(self.stop_token_ids)
        for position, token in enumerate(tokens):
            if token in stops:
                return tokens[: position + 1]
        return tokens
