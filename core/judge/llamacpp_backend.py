"""GLIDER from a GGUF file on llama.cpp (llama-cpp-python): the quantized judge without torch on the hot path.

llama-cpp-python is an optional dependency (it compiles llama.cpp when installed from source); it is
imported inside the constructor, so core imports without it. Decoding is a plain greedy loop over
llama.cpp's low-level eval and logits, which gives the text, the stop tokens and, at the score step,
the model's own probabilities — the same contract as the transformers back-end.

Speed on a CPU: llama.cpp's weight repacking and flash attention are chosen per machine. Which is faster
depends on the CPU (on 2 Intel AVX-512 cores repacking lengthened loading, took ~1.5 GB more memory and slowed
prompts; on 2 AMD EPYC cores with AVX512-BF16 it decoded a third faster), so the first CPU start with a GGUF
file times every combination briefly and caches the choice (core.judge.llamacpp_tuning); a caller can force
either setting or turn measuring off (then repacking off, flash attention on, the Intel machine's choice).
The settings, and where they came from, are in BackendInfo (kernel and notes) and the start-up log. The
prompt's constant head (the chat opening and GLIDER's instructions, ~204 tokens) stays in the key/value
cache from one grade to the next.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import fnmatch
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from core.errors import JudgeError, ModelLoadError
from core.judge.base import (
    DEFAULT_MAX_NEW_TOKENS,
    TRAINED_CONTEXT,
    BackendInfo,
    Generation,
    SerialBackend,
    StreamEvent,
    register_backend,
)
from core.judge.common import DEFAULT_GGUF_MODEL_ID as DEFAULT_MODEL_ID
from core.judge.common import (
    MIN_ANSWER_TOKENS,
    STOP_TOKENS,
    ScoreTokens,
    combine_value_probabilities,
    constant_chat_prefix,
    fit_context,
    resolve_local_files_only,
    reusable_prefix_length,
)
from core.judge.hardware import logical_cpus, physical_cores
from core.judge.llamacpp_tuning import (
    MEASURE_CONTEXT,
    LlamaCppSettings,
    SettingsCache,
    SettingsChoice,
    choose_settings,
    cpu_identity,
    cpu_label,
    default_settings_dir,
    engine_identity,
    file_identity,
    measure,
    settings_key,
)
from core.judge.quantized_cache import CacheKey
from core.prompt import chat_messages

log = logging.getLogger(__name__)

DEFAULT_FILENAME = "*Q4_K_M.gguf"  # the quantization PatronusAI recommends
DEFAULT_N_BATCH = 512
INSTALL_HINT = (
    "The llamacpp back-end needs llama-cpp-python: pip install llama-cpp-python (it compiles llama.cpp; "
    "about 15 minutes on 2 cores). For NVIDIA GPUs build it with CMAKE_ARGS=\"-DGGML_CUDA=on\". "
    "Or use --backend transformers."
)
# llama-cpp-python reads its model parameters from llama_model_default_params() inside Llama(); a few have
# no keyword, so that function is swapped for the duration of a load (under this lock).
_MODEL_PARAMS_LOCK = threading.Lock()
# Used when the GGUF carries no chat template: Phi-3's format for one user turn.
PHI3_CHAT_FORMAT = "<|user|>\n{prompt}<|end|>\n<|assistant|>\n"
# Phi-3's tokenizer strips the whitespace after these special tokens (rstrip in tokenizer.json), so
# '<|user|>\n' is one token. llama.cpp only does so when the GGUF's general.name contains 'phi3' or
# 'phi-3'; stripping it here tokenizes like transformers (and like GLIDER's training) whatever the name.
_RSTRIP_SPECIALS = re.compile(
    r"""
    ( </s>                                               # Phi-3's end of sequence
    | <\|(?:user|assistant|system|end|placeholder\d+)\|>  # the chat markers and reserved tokens
    )
    \s+                                                  # the whitespace the tokenizer drops after them
    """,
    re.VERBOSE,
)
# llama.cpp's LLAMA_FTYPE_* numbers (general.file_type) and the names quantized files are known by.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
}


# -- pure helpers ------------------------------------------------------------------------------------
def drop_whitespace_after_markers(text: str) -> str:
    """Remove the whitespace Phi-3's tokenizer strips after its chat markers ('<|user|>\\n' → '<|user|>')."""
    return _RSTRIP_SPECIALS.sub(r"\1", text)


def resolve_offload(device: str, n_gpu_layers: int | None, gpu_offload_supported: bool) -> tuple[int, int, str]:
    """(n_gpu_layers, main_gpu, device label) for --device auto/cpu/cuda[:N]; an explicit layer count wins."""
    main_gpu = 0
    if device == "cpu":
        layers, label = 0, "cpu"
    elif device == "auto":
        layers, label = (-1, "gpu") if gpu_offload_supported else (0, "cpu")
    elif device == "cuda" or device.startswith("cuda:"):
        if not gpu_offload_supported:
            raise ModelLoadError(
                f"Device {device!r} was requested but this llama-cpp-python was built without GPU offload. "
                "Reinstall it with CUDA: CMAKE_ARGS=\"-DGGML_CUDA=on\" pip install --force-reinstall --no-cache-dir "
                "llama-cpp-python, or use --device cpu."
            )
        index = device.partition(":")[2]
        if index and not index.isdigit():
            raise ModelLoadError(f"Unknown device {device!r}; use auto, cpu, cuda or cuda:N.")
        main_gpu = int(index or 0)
        layers, label = -1, device
    else:
        raise ModelLoadError(f"Unknown device {device!r}; use auto, cpu, cuda or cuda:N.")
    if n_gpu_layers is not None:
        layers = n_gpu_layers
        label = "cpu" if layers == 0 else (label if label != "cpu" else "gpu")
    return layers, main_gpu, label


def download_command(repo: str, filename: str) -> tuple[str, str]:
    """(the shell command that downloads the GGUF file of `repo` to a folder, that folder)."""
    folder = "./" + repo.rsplit("/", 1)[-1]
    return f'hf download {repo} --include "{filename}" --local-dir {folder}', folder


def _looks_local(model: str) -> bool:
    path = Path(model).expanduser()
    return path.suffix == ".gguf" or path.is_absolute() or model.startswith((".", "~")) or path.exists()


def local_model_file(model: str, filename: str) -> Path:
    """The .gguf file that a local --model names: the file itself, or the one file in a folder matching filename."""
    path = Path(model).expanduser()
    if not path.exists():
        raise ModelLoadError(f"The model path {model!r} does not exist (looked for {path.absolute()}). "
                             "Check --model (a .gguf file or a folder).")
    if path.is_dir():
        matches = sorted(p for p in path.rglob("*.gguf") if fnmatch.fnmatch(str(p.relative_to(path)), filename))
        if len(matches) != 1:
            found = ", ".join(str(p.relative_to(path)) for p in sorted(path.rglob("*.gguf"))) or "none"
            raise ModelLoadError(
                f"{str(path)!r} holds {len(matches)} GGUF files matching {filename!r} (GGUF files there: {found}); "
                "pass the file itself as --model, or name one with --gguf-file."
            )
        return matches[0]
    return path


def hub_model_file(repo: str, filename: str, revision: str | None, local_files_only: bool) -> Path:
    """Download (or find in the Hugging Face cache) the one file of `repo` matching the glob `filename`.

    llama-cpp-python's Llama.from_pretrained is not used: it lists the repository over the network even
    when the file is cached, and passes an argument (local_dir_use_symlinks) that huggingface_hub 1.0
    removed.
    """
    command, folder = download_command(repo, filename)
    advice = (f"Download it on a machine with internet access ({command}), copy the folder here and start "
              f"with --backend llamacpp --model {folder}.")
    try:
        from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    except ImportError as exc:
        raise ModelLoadError(f"Downloading {repo!r} needs huggingface_hub (pip install huggingface_hub). "
                             f"Or: {advice}") from exc
    try:
        if local_files_only:
            snapshot = Path(snapshot_download(repo, revision=revision, allow_patterns=[filename],
                                              local_files_only=True))
            matches = sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file()
                             and fnmatch.fnmatch(str(p.relative_to(snapshot)), filename))
        else:
            files = HfApi().list_repo_files(repo, revision=revision)
            matches = fnmatch.filter(files, filename)
            if len(matches) != 1:
                available = ", ".join(f for f in files if f.endswith(".gguf")) or "none"
                raise ModelLoadError(
                    f"{repo!r} has {len(matches)} files matching {filename!r}; its GGUF files: {available}. "
                    "Name one with --gguf-file."
                )
            return Path(hf_hub_download(repo, matches[0], revision=revision))
    except ModelLoadError:
        raise
    except Exception as exc:  # huggingface_hub raises many types (offline, not found, gated): all mean "no file"
        if local_files_only:
            raise ModelLoadError(
                f"The GGUF file {filename!r} of {repo!r} is not in the local Hugging Face cache and the app is "
                f"offline (HF_HUB_OFFLINE is set or the Hub cannot be reached). {advice}"
            ) from exc
        raise ModelLoadError(
            f"Could not download {filename!r} from {repo!r}: {type(exc).__name__}: {exc}. If this machine cannot "
            f"reach the Hugging Face Hub: {advice} If the id is misspelt, fix --model."
        ) from exc
    if len(matches) != 1:
        raise ModelLoadError(
            f"The local Hugging Face cache holds {len(matches)} files of {repo!r} matching {filename!r} and the "
            f"app is offline. {advice}"
        )
    return snapshot / matches[0]


@contextlib.contextmanager
def model_params_set(llama_cpp: Any, **fields: Any) -> Iterator[None]:
    """Within the block, llama-cpp-python's Llama() loads with these llama_model_params fields set.

    Llama() builds its struct from llama_cpp.llama_model_default_params() and has no keyword for fields
    such as use_extra_bufts (weight repacking); the function is wrapped for the duration of the load.
    """
    module = llama_cpp.llama_cpp
    original = module.llama_model_default_params

    def defaults() -> Any:
        params = original()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    with _MODEL_PARAMS_LOCK:
        module.llama_model_default_params = defaults
        try:
            yield
        finally:
            module.llama_model_default_params = original


_SOURCES = {
    "measured": "measured at this start",
    "cache": "measured at an earlier start, cached",
    "forced": "forced by the caller",
    "fixed": "fixed, not measured",
}


def _kernel_description(choice: SettingsChoice, weight_repacking: bool, flash_attn: bool, layers: int) -> str:
    """The banner's 'Runs' line for a CPU load, e.g. 'llama.cpp CPU: weight repacking on, flash attention off
    (measured at this start)'; empty with layers on a GPU (nothing was chosen there)."""
    if layers != 0:
        return ""
    loaded = LlamaCppSettings(weight_repacking, flash_attn).describe()
    return f"llama.cpp CPU: {loaded} ({_SOURCES.get(choice.source, choice.source)})"


def _log_softmax(logits: Any) -> Any:
    import numpy as np

    values = np.asarray(logits, dtype=np.float64)
    shifted = values - values.max()
    return shifted - math.log(float(np.exp(shifted).sum()))


class _VocabView:
    """The slice of a transformers tokenizer that ScoreTokens reads, answered by llama.cpp's vocabulary."""

    def __init__(self, judge: LlamaCppJudge, pieces: dict[str, int], unk_token_id: int | None) -> None:
        self._judge = judge
        self._pieces = pieces
        self.unk_token_id = unk_token_id

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self._judge.decode(ids)

    def convert_tokens_to_ids(self, piece: str) -> int | None:
        return self._pieces.get(piece, self.unk_token_id)

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": self._judge.tokenize(text, special=False)}


@register_backend("llamacpp")
class LlamaCppJudge(SerialBackend):
    """A GLIDER judge on llama.cpp, from a local .gguf file or a Hub repo; one generation at a time per instance."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL_ID,
        *,
        filename: str = DEFAULT_FILENAME,
        device: str = "auto",
        n_ctx: int = TRAINED_CONTEXT,
        n_threads: int | None = None,
        n_gpu_layers: int | None = None,
        n_batch: int = DEFAULT_N_BATCH,
        revision: str | None = None,
        local_files_only: bool | None = None,
        flash_attn: bool | None = None,
        weight_repacking: bool | None = None,
        measure_settings: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        prefix_cache: bool = True,
    ) -> None:
        """Load the GGUF `model` (a file, a folder, or a Hub repo with the file matching `filename`).

        `flash_attn`: llama.cpp's flash attention; `weight_repacking`: llama.cpp's CPU repacking of quantized
        weights into its interleaved layouts. None (the default) lets a CPU load choose each by measurement
        (core.judge.llamacpp_tuning: every combination timed once per machine and file, then cached under
        `cache_dir`, default GLIDER_CACHE_DIR); True/False forces it. `measure_settings=False` uses the fixed
        settings measured on one Intel Xeon (repacking off, flash attention on) for whatever is not forced, as
        does a GPU load. `prefix_cache`: keep the prompt's constant head in the key/value cache between
        grades (results identical either way).
        """
        super().__init__()
        notes: list[str] = []
        local = _looks_local(model)
        path = local_model_file(model, filename) if local else None  # a wrong path is reported before anything
        try:
            import llama_cpp
        except ImportError as exc:
            raise ModelLoadError(INSTALL_HINT) from exc

        self._llama_cpp = llama_cpp
        layers, main_gpu, device_label = resolve_offload(device, n_gpu_layers, llama_cpp.llama_supports_gpu_offload())
        if path is None:
            local_files_only = resolve_local_files_only(local_files_only, model, notes, local=False)
            path = hub_model_file(model, filename, revision, local_files_only)
        if n_ctx < MIN_ANSWER_TOKENS + 1:
            raise ModelLoadError(f"n_ctx must be more than {MIN_ANSWER_TOKENS} tokens (got {n_ctx}).")
        self.n_threads = n_threads or physical_cores()
        n_threads_batch = max(self.n_threads, logical_cpus()) if n_threads is None else n_threads
        can_switch_repacking = "use_extra_bufts" in {field[0] for field in llama_cpp.llama_model_params._fields_}
        if not can_switch_repacking:  # an older binding: llama.cpp's default (repacking on) is all there is
            if weight_repacking is not True:
                notes.append("weight repacking: llama.cpp's default (this llama-cpp-python cannot turn it off)")
            weight_repacking = True

        def load(settings: LlamaCppSettings, context: int) -> Any:
            params = {"use_extra_bufts": settings.weight_repacking} if can_switch_repacking else {}
            with model_params_set(llama_cpp, **params):
                return llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=context,
                    n_batch=n_batch,
                    n_ubatch=n_batch,
                    n_threads=self.n_threads,
                    n_threads_batch=n_threads_batch,
                    n_gpu_layers=layers,
                    main_gpu=main_gpu,
                    flash_attn=settings.flash_attn,
                    logits_all=False,  # logits are read for the last token only; the score step is re-evaluated
                    verbose=False,
                )

        self.settings_choice = self._choose_settings(
            llama_cpp, path, weight_repacking, flash_attn, measure_settings=measure_settings, on_gpu=layers != 0,
            threads={"n_threads": self.n_threads, "n_threads_batch": n_threads_batch, "n_batch": n_batch},
            cache_dir=cache_dir, load=lambda settings: load(settings, MEASURE_CONTEXT),
        )
        settings = self.settings_choice.settings
        started = time.perf_counter()
        try:
            self.llm = load(settings, n_ctx)
        except Exception as exc:  # llama.cpp reports every load failure as ValueError/RuntimeError text
            text = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, MemoryError) or "context" in text.lower() or "memory" in text.lower():
                raise ModelLoadError(
                    f"llama.cpp could not make room for {str(path)!r} with n_ctx={n_ctx} ({text}). Lower n_ctx, "
                    "use a smaller quantization (Q4_K_M is about 2.4 GB), or offload fewer layers to the GPU."
                ) from exc
            raise ModelLoadError(
                f"llama.cpp could not load {str(path)!r} ({text}). It must be a GGUF model file this "
                "llama-cpp-python version supports; an old or truncated download fails like this."
            ) from exc
        self.load_seconds = time.perf_counter() - started
        self._piece_buffer = ctypes.create_string_buffer(64)
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.max_context = self.llm.n_ctx()
        pieces: dict[str, int] = {}  # piece text ('▁the', '1', '<|end|>') → id, the first id when repeated
        for token_id in range(self.n_vocab):
            pieces.setdefault(self._token_text(token_id), token_id)
        self.stop_token_ids = [pieces[t] for t in STOP_TOKENS if t in pieces] or [self.llm.token_eos()]
        self.chat_template, template_note = self._chat_template()
        notes.append(template_note)
        self.flash_attn = settings.flash_attn
        self.weight_repacking = bool(getattr(self.llm.model_params, "use_extra_bufts", True))
        self.prefix_ids: tuple[int, ...] = self._prefix_ids() if prefix_cache else ()
        # The ids whose keys and values are in llama.cpp's cache as a first segment of their own ((): none).
        self._cached_prefix: tuple[int, ...] = ()
        self.scores = ScoreTokens(_VocabView(self, pieces, pieces.get("<unk>")))
        metadata = self.llm.metadata
        file_type = metadata.get("general.file_type", "")
        quantization = FILE_TYPES.get(int(file_type), f"ftype {file_type}") if file_type.isdigit() else "unknown"
        self.info = BackendInfo(
            backend="llamacpp",
            model_id=model,
            revision=revision,
            quantization=quantization,
            dtype="gguf",
            device=device_label,
            max_context=self.max_context,
            notes=(
                *notes,
                f"file {path.name}",
                f"{self.n_threads} threads, {'all' if layers < 0 else layers} layers on the GPU",
                f"flash attention {'on' if self.flash_attn else 'off'}, weight repacking "
                f"{'on' if self.weight_repacking else 'off'}",
                f"llama.cpp settings: {self.settings_choice.reason}",
                f"prefix cache: {len(self.prefix_ids)} tokens" if self.prefix_ids else "prefix cache off",
                f"loaded in {self.load_seconds:.1f} s",
            ),
            kernel=_kernel_description(self.settings_choice, self.weight_repacking, self.flash_attn, layers),
        )
        log.info("Loaded judge %s in %.1f s", self.info.describe(), self.load_seconds)
        log.info("llama.cpp settings: %s", self.settings_choice.reason)

    def _choose_settings(
        self,
        llama_cpp: Any,
        path: Path,
        weight_repacking: bool | None,
        flash_attn: bool | None,
        *,
        measure_settings: bool,
        on_gpu: bool,
        threads: dict[str, int],
        cache_dir: str | os.PathLike[str] | None,
        load: Callable[[LlamaCppSettings], Any],
    ) -> SettingsChoice:
        """Forced, fixed, cached or measured settings (core.judge.llamacpp_tuning.choose_settings)."""
        cpu = cpu_identity()

        def key() -> CacheKey:
            return settings_key(file_identity(path), cpu, threads, engine_identity(llama_cpp))

        return choose_settings(
            weight_repacking=weight_repacking, flash_attn=flash_attn, measure_settings=measure_settings,
            on_gpu=on_gpu, key=key, run=lambda settings: measure(load, settings),
            cache=SettingsCache(default_settings_dir(cache_dir)), cpu=cpu_label(cpu),
        )

    # -- prompt handling -------------------------------------------------------------------------
    def _token_text(self, token_id: int) -> str:
        return str(self._llama_cpp.llama_vocab_get_text(self._vocab, token_id).decode("utf-8", "replace"))

    def _chat_template(self) -> tuple[Any, str]:
        """The GGUF's own chat template (tokenizer.chat_template) when it renders a user turn, else Phi-3's."""
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None, "chat template: Phi-3 format (the GGUF has none)"
        eos, bos = (self._token_text(t) if t >= 0 else "" for t in (self.llm.token_eos(), self.llm.token_bos()))
        try:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
            # llama_cpp types messages as its own TypedDicts; ours are the same plain {"role", "content"} dicts.
            probe = formatter(messages=cast(Any, chat_messages("PROMPT"))).prompt
        except Exception as exc:  # a template this jinja cannot render: say so and use the known format
            log.warning("The GGUF's chat template cannot be rendered (%s); using Phi-3's format", exc)
            return None, "chat template: Phi-3 format (the GGUF's did not render)"
        if "PROMPT" not in probe:
            return None, "chat template: Phi-3 format (the GGUF's dropped the user turn)"
        return formatter, "chat template: the GGUF's"

    def chat_text(self, prompt: str) -> str:
        """The prompt as one user turn with the generation prompt, whitespace after Phi-3 markers dropped."""
        if self.chat_template is None:
            text = PHI3_CHAT_FORMAT.format(prompt=prompt)
        else:
            text = self.chat_template(messages=chat_messages(prompt)).prompt
        return drop_whitespace_after_markers(text)

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """llama.cpp's token ids for `text`, without BOS (GLIDER's chat format has none), special tokens parsed."""
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    def chat_ids(self, prompt: str) -> list[int]:
        """Token ids of the prompt rendered as one user turn with the generation prompt."""
        return self.tokenize(self.chat_text(prompt))

    def count_tokens(self, prompt: str) -> int:
        """Number of tokens of the chat-formatted prompt."""
        return len(self.chat_ids(prompt))

    # -- the constant prompt prefix --------------------------------------------------------------
    def _prefix_ids(self) -> tuple[int, ...]:
        """Token ids of the chat-formatted text every GLIDER prompt starts with (the turn's opening and the
        instructions up to the data); () when the chat template hides where the prompt starts."""
        text = constant_chat_prefix(self.chat_text)
        return tuple(self.tokenize(text)) if text else ()

    def reusable_prefix(self, ids: Sequence[int]) -> int:
        """How many leading ids are evaluated as a first segment of their own, kept in the cache between grades.

        Those of the stored prefix that the prompt's ids match (tokenization may merge across the boundary),
        leaving at least one id for the second segment. Every prompt is evaluated in the same two segments
        whether or not the first is already cached, so a grade never depends on what was graded before.
        """
        return reusable_prefix_length(ids, self.prefix_ids)

    def _prefill(self, ids: Sequence[int]) -> int:
        """Evaluate the prompt, reusing the cached prefix segment when it is this prompt's; returns the ids reused.

        Called with the lock held. The cached segment is evaluated from an empty cache, exactly as a cold run
        evaluates it, and llama.cpp keeps its cells untouched while later tokens come and go (the cache is
        cut back to its end before the rest is evaluated), so both paths compute the same logits.
        """
        split = self.reusable_prefix(ids)
        segment = tuple(ids[:split])
        if split and segment == self._cached_prefix and self.llm.n_tokens >= split:
            self.llm.n_tokens = split  # eval drops the cached tokens from here on
            reused = split
        else:
            self._cached_prefix = ()
            self.llm.reset()
            if split:
                self._eval(segment)
                self._cached_prefix = segment
            reused = 0
        self._eval(ids[split:])
        return reused

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """The UTF-8 bytes of `ids`, special tokens left out, the SPM leading space removed (as transformers)."""
        if not ids:
            return b""
        llama_cpp = self._llama_cpp
        tokens = (llama_cpp.llama_token * len(ids))(*ids)
        size = max(64, 16 * len(ids))
        for _ in range(2):
            buffer = ctypes.create_string_buffer(size)
            written = llama_cpp.llama_detokenize(self._vocab, tokens, len(ids), buffer, size, False, False)
            if written >= 0:
                return buffer.raw[:written]
            size = -written + 1
        raise JudgeError("llama.cpp could not detokenize the generated tokens.")

    def _piece_bytes(self, token: int) -> bytes:
        """The bytes one token adds after others (its SPM space kept, special tokens empty), as decode joins them."""
        buffer = self._piece_buffer
        written = self._llama_cpp.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        if written < 0:
            self._piece_buffer = buffer = ctypes.create_string_buffer(-written)
            written = self._llama_cpp.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        return buffer.raw[:written]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids` (invalid UTF-8 replaced, as transformers' decode does)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # -- generation ------------------------------------------------------------------------------
    def _eval(self, tokens: Sequence[int]) -> None:
        try:
            self.llm.eval(tokens)
        except Exception as exc:  # llama_decode's failures arrive as RuntimeError with a return code
            raise JudgeError(f"Generation failed: {type(exc).__name__}: {exc}") from exc

    def _last_logits(self) -> Any:
        """The logits after the last evaluated token (a view on llama.cpp's buffer: read before the next eval)."""
        import numpy as np

        pointer = self._llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    def stream(
        self, prompt: str, *, scale: tuple[int, int] | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    ) -> Iterator[StreamEvent]:
        """Yield decoded text as it is generated, then the Generation with the score distribution."""
        import numpy as np

        ids = self.chat_ids(prompt)
        max_new_tokens, warnings = fit_context(len(ids), max_new_tokens, self.max_context)
        stops = set(self.stop_token_ids)
        with self.generation_lock:  # a llama.cpp context is not thread-safe: one generation at a time
            started = time.perf_counter()
            first_token: float | None = None
            generated: list[int] = []
            emitted = ""
            utf8 = codecs.getincrementaldecoder("utf-8")("replace")
            reused = self._prefill(ids)
            while True:
                token = int(np.argmax(self._last_logits()))  # greedy; ties go to the lowest id, as in torch
                generated.append(token)
                if token in stops:
                    break
                # The new token's bytes (the first's SPM space dropped, as decode does); the UTF-8 decoder
                # holds back an incomplete character until its last byte arrives.
                delta = utf8.decode(self.decode_bytes([token]) if len(generated) == 1 else self._piece_bytes(token))
                if delta:
                    if first_token is None:
                        first_token = time.perf_counter() - started
                    yield delta
                    emitted += delta
                if len(generated) >= max_new_tokens:
                    break
                self._eval([token])
            finish_reason = "stop" if generated[-1] in stops else "length"
            text = self.decode(generated[:-1] if finish_reason == "stop" else generated)
            if len(text) > len(emitted) and text.startswith(emitted):
                yield text[len(emitted) :]
            elif not text.startswith(emitted):  # not prefix-stable: the final text is still the truth
                log.warning("Streamed text diverged from the final decode; the final text is kept")
            distribution = mass = None
            if scale is not None:
                read = self._distribution(ids, generated, scale)
                if read is not None:
                    distribution, mass = read
            seconds = time.perf_counter() - started
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
            settings={"do_sample": False, "stop_token_ids": list(self.stop_token_ids), "n_ctx": self.max_context,
                      "prefix_cached_tokens": reused},
        )

    # -- score distribution ----------------------------------------------------------------------
    def _distribution(
        self, ids: list[int], generated: list[int], scale: tuple[int, int]
    ) -> tuple[dict[int, float], float] | None:
        """(value → probability renormalized over the scale, mass before renormalizing), or None.

        The logits at the score step are recomputed by evaluating, on the generation's own cache, the one
        token before the score again (exactly how it was evaluated while decoding), rather than keeping every
        step's logits (a 32k-wide row per token). Multi-token values (10 is '1','0') extend that cache with
        their tokens, as the transformers back-end does. Called with the lock held.
        """
        import numpy as np

        step = self.scores.score_step(generated)
        if step is None:
            return None  # no score tag: nothing to read, nothing invented
        sequences = self.scores.sequences_at(generated, step, scale)
        if sequences is None:
            return None  # the model wrote something else there (e.g. a word)
        sequence_all = ids + generated
        position = len(ids) + step  # index in sequence_all of the score's first token
        contexts: dict[tuple[int, ...], Any] = {}

        def log_probs(context: tuple[int, ...]) -> Any:
            if context not in contexts:
                if context:
                    self.llm.n_tokens = position  # eval drops the cached tokens from here on
                    self._eval(list(context))
                else:
                    self.llm.n_tokens = position - 1
                    self._eval([sequence_all[position - 1]])
                contexts[context] = _log_softmax(self._last_logits())
            return contexts[context]

        return combine_value_probabilities(
            sequences, log_probs, lambda after, tokens: float(np.exp(after[tokens]).sum())
        )
