"""llama.cpp's CPU settings chosen per machine: a short measurement at the first start, cached as JSON.

Which of llama.cpp's CPU settings is fastest depends on the CPU and the build: on a 2-core Intel Xeon
(AVX-512, no BF16) weight repacking off with flash attention on prefilled fastest and decoded as fast as
llama-cpp-python's defaults; on a 2-core AMD EPYC with AVX512-BF16 the defaults (repacking on) decoded
8.32 tok/s against 6.24 (issue 14). So a CPU load measures every candidate ({weight repacking on/off} ×
{flash attention on/off}) once: load, evaluate a fixed 128-token prompt, take 16 greedy steps, and
keeps the one with the shortest typical GLIDER grade. The choice is cached under the quantize-once
cache's root (GLIDER_CACHE_DIR), keyed by what decides it: the GGUF file, the CPU and its SIMD flags, the
thread counts and batch size, llama-cpp-python's version and llama.cpp's build features. A later start
with the same key reads the cached choice and measures nothing.

Limits, said plainly: the figures come from a 128-token context (a grade attends over 600–900 tokens, where
flash attention matters a little more) and one pass per candidate (a busy machine makes them noisy). No
setting is bit-exact against another: on the tests' tiny GGUFs flash attention moved the logits by up to
~1e-2, and so did repacking with flash attention off (~2e-6 with it on). The tiny trained judge writes the
same tokens and grades under all four; where two logits nearly tie (random weights) a greedy token can
differ, as it can between CPUs or thread counts. The choice is cached, so a machine's grades do not change
from one start to the next.

Pure logic (the candidates, the typical-grade estimate, the choice, the key) is separate from `measure`
(which needs a loaded llama.cpp model) and from `SettingsCache` (files); `choose_settings` ties them together.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.judge.quantized_cache import CacheKey, default_cache_dir

log = logging.getLogger(__name__)

# A typical GLIDER grade (issue 14, BENCHMARKS.md): a ~600-token prompt whose constant 204-token head is
# reused from the key/value cache, so ~400 tokens are evaluated, and ~300 written tokens. The settings are
# ranked by this grade's time, which weighs prefill and decode speed as a real grade does.
TYPICAL_PROMPT_TOKENS = 400
TYPICAL_WRITTEN_TOKENS = 300
# The measurement: short enough for a first start (seconds on GLIDER's shape per candidate), long enough
# that one batch of prompt tokens and several single-token steps are timed, not just their start-up.
MEASURE_PROMPT_TOKENS = 128
MEASURE_DECODE_STEPS = 16
MEASURE_WARMUP_TOKENS = 8
MEASURE_CONTEXT = 256  # room for the prompt and the steps; a small cache keeps each candidate's load quick
# A candidate this many times slower than the fastest is measured once more (see _remeasure_outliers).
OUTLIER_RATIO = 1.5
# What was used before settings were measured, and what a load uses when measuring is off or fails:
# measured on a 2-core Intel Xeon (AVX-512, no BF16), where repacking lengthened loading, took ~1.5 GB more
# memory and slowed prompts, and flash attention made prompts ~20 % faster (BENCHMARKS.md).
FIXED_WEIGHT_REPACKING = False
FIXED_FLASH_ATTN = True
# Bump when the cached file's layout or the meaning of its key changes: older files then stop matching.
FORMAT = 1
SETTINGS_FOLDER = "llamacpp-settings"
# /proc/cpuinfo flags that decide which kernels llama.cpp runs (x86 SIMD and matrix units, Arm's features).
_CPU_FLAG = re.compile(r"^(avx|amx|fma|f16c|sse4|ssse3|vnni|bf16|asimd|sve|sme|i8mm|dotprod|fphp)")
_SHOWN_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8", "sve", "i8mm")
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class LlamaCppSettings:
    """One candidate: llama.cpp's CPU weight repacking (use_extra_bufts) and flash attention."""

    weight_repacking: bool
    flash_attn: bool

    def describe(self) -> str:
        """'weight repacking on, flash attention off'."""
        return (f"weight repacking {'on' if self.weight_repacking else 'off'}, "
                f"flash attention {'on' if self.flash_attn else 'off'}")


FIXED_SETTINGS = LlamaCppSettings(weight_repacking=FIXED_WEIGHT_REPACKING, flash_attn=FIXED_FLASH_ATTN)
CANDIDATES = tuple(LlamaCppSettings(repack, flash) for repack in (False, True) for flash in (True, False))


@dataclass(frozen=True)
class Measurement:
    """What one candidate measured: its load time and its prompt and writing speeds."""

    settings: LlamaCppSettings
    load_seconds: float
    prefill_tokens_per_second: float
    decode_tokens_per_second: float

    @property
    def grade_seconds(self) -> float:
        """The typical grade's estimated time with these speeds (typical_grade_seconds)."""
        return typical_grade_seconds(self.prefill_tokens_per_second, self.decode_tokens_per_second)

    def describe(self) -> str:
        """'weight repacking on, flash attention off: prefill 35.4 tok/s, decode 8.32 tok/s, grade ≈ 47.4 s'."""
        return (f"{self.settings.describe()}: prefill {self.prefill_tokens_per_second:.1f} tok/s, decode "
                f"{self.decode_tokens_per_second:.2f} tok/s, typical grade ≈ {self.grade_seconds:.1f} s")


@dataclass(frozen=True)
class SettingsChoice:
    """The settings a load uses, where they came from and, when measured, every candidate's figures.

    `source` is 'measured' (this start), 'cache' (an earlier start's measurement), 'forced' (the caller
    named both), 'fixed' (measuring off or failed: FIXED_SETTINGS) or 'gpu' (layers offloaded: not measured).
    """

    settings: LlamaCppSettings
    source: str
    reason: str
    measurements: tuple[Measurement, ...] = ()
    cache_path: Path | None = None
    cpu: str = ""


# -- pure logic ------------------------------------------------------------------------------------
def typical_grade_seconds(prefill_tokens_per_second: float, decode_tokens_per_second: float) -> float:
    """Seconds for a typical grade: TYPICAL_PROMPT_TOKENS at the prefill speed plus TYPICAL_WRITTEN_TOKENS at
    the decode speed (infinite when a speed is not positive)."""
    if prefill_tokens_per_second <= 0 or decode_tokens_per_second <= 0:
        return float("inf")
    return TYPICAL_PROMPT_TOKENS / prefill_tokens_per_second + TYPICAL_WRITTEN_TOKENS / decode_tokens_per_second


def candidates(weight_repacking: bool | None, flash_attn: bool | None) -> tuple[LlamaCppSettings, ...]:
    """The candidates consistent with the settings a caller forced (None: free to choose)."""
    return tuple(c for c in CANDIDATES if weight_repacking in (None, c.weight_repacking)
                 and flash_attn in (None, c.flash_attn))


def best_measurement(
    measurements: Iterable[Measurement], allowed: Sequence[LlamaCppSettings] = CANDIDATES
) -> Measurement:
    """The allowed measurement with the shortest typical grade (ties: the earlier one); ValueError if none."""
    usable = [m for m in measurements if m.settings in allowed]
    if not usable:
        raise ValueError("no measurement of an allowed candidate")
    return min(usable, key=lambda m: m.grade_seconds)


def compare_text(chosen: Measurement, measurements: Sequence[Measurement]) -> str:
    """'typical grade est. 47.4 s vs 55.6 s (weight repacking off, flash attention on), ...'."""
    others = [m for m in measurements if m.settings != chosen.settings]
    versus = ", ".join(f"{m.grade_seconds:.1f} s ({m.settings.describe()})" for m in others)
    return f"typical grade est. {chosen.grade_seconds:.1f} s" + (f" vs {versus}" if versus else "")


def cpu_identity(cpuinfo: str | None = None) -> dict[str, Any]:
    """The CPU's model name, its kernel-relevant flags and the architecture (from /proc/cpuinfo on Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    model, flags = "", set[str]()
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
        elif name in ("flags", "features") and not flags:
            flags = {flag for flag in value.split() if _CPU_FLAG.match(flag)}
    return {"model": model or platform.processor() or "unknown CPU", "flags": sorted(flags),
            "machine": platform.machine()}


def cpu_label(cpu: Mapping[str, Any]) -> str:
    """'AMD EPYC (avx2, avx512f, avx512_bf16)': the model name and the flags that most change llama.cpp's speed."""
    shown = [flag for flag in _SHOWN_FLAGS if flag in cpu.get("flags", ())]
    return f"{cpu.get('model') or 'unknown CPU'}" + (f" ({', '.join(shown)})" if shown else "")


def file_identity(path: Path) -> dict[str, Any]:
    """The GGUF file as its resolved path, size and modification time.

    Hashing a 2.4 GB file would cost seconds at every start; a rewritten file changes its size or mtime. A file
    in the Hugging Face cache resolves to a blob named by its content hash, so there the path is the content.
    """
    resolved = path.resolve()
    stat = resolved.stat()
    return {"path": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def settings_key(
    file: Mapping[str, Any], cpu: Mapping[str, Any], threads: Mapping[str, int], engine: Mapping[str, str]
) -> CacheKey:
    """The cache key of a measurement: the file, the CPU, the thread counts and batch size, the engine (pure)."""
    fields = {"format": FORMAT, "file": dict(file), "cpu": dict(cpu), "threads": dict(threads),
              "engine": dict(engine)}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()
    label = _SLUG.sub("-", Path(str(file.get("path", "model"))).stem).strip("-.")[:48] or "model"
    return CacheKey(name=f"{label}-{digest[:20]}", digest=digest, fields=fields)


def engine_identity(llama_cpp: Any) -> dict[str, str]:
    """llama-cpp-python's version and llama.cpp's compiled CPU features (a rebuild can change the kernels)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package = version("llama_cpp_python")
    except PackageNotFoundError:
        package = str(getattr(llama_cpp, "__version__", "unknown"))
    try:
        system = llama_cpp.llama_print_system_info()
        features = system.decode("utf-8", "replace") if isinstance(system, bytes) else str(system)
    except Exception:  # an old binding without it: the version alone
        features = "unknown"
    return {"llama_cpp_python": package, "system_info": features.strip()}


# -- measuring -------------------------------------------------------------------------------------
def measure_prompt_ids(tokenize: Callable[[bytes], Sequence[int]], tokens: int = MEASURE_PROMPT_TOKENS) -> list[int]:
    """The first `tokens` ids of GLIDER's instructions (repeated if short): a real prompt's text, always the same."""
    from core.prompt import GLIDER_TEMPLATE

    ids = list(tokenize(GLIDER_TEMPLATE.encode("utf-8")))
    if not ids:
        raise ValueError("the model's tokenizer gave no tokens for GLIDER's instructions")
    return (ids * (tokens // len(ids) + 1))[:tokens]


def measure(
    load: Callable[[LlamaCppSettings], Any],
    settings: LlamaCppSettings,
    *,
    prompt_tokens: int = MEASURE_PROMPT_TOKENS,
    decode_steps: int = MEASURE_DECODE_STEPS,
    clock: Callable[[], float] = time.perf_counter,
) -> Measurement:
    """Load with `settings` (`load` returns a llama_cpp.Llama), time a fixed prompt in one batch, then greedy steps.

    A short batch first touches every weight and the batched kernels (pages of a memory-mapped file, the
    repacked copy, the thread pool), so that the prompt's speed includes no one-time cost; the decode speed
    is the median step's (the first step's set-up, or one step slowed by another process, does not decide
    it). The model is closed afterwards.
    """
    import llama_cpp
    import numpy as np

    started = clock()
    llm = load(settings)
    load_seconds = clock() - started
    try:
        n_vocab = llm.n_vocab()
        prompt = measure_prompt_ids(lambda text: llm.tokenize(text, add_bos=False, special=False), prompt_tokens)

        def next_token() -> int:
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
            return int(np.argmax(logits))

        llm.eval(prompt[:MEASURE_WARMUP_TOKENS])
        llm.reset()
        started = clock()
        llm.eval(prompt)
        prefill = clock() - started
        token = next_token()
        steps = []
        for _ in range(decode_steps):
            started = clock()
            llm.eval([token])
            token = next_token()
            steps.append(clock() - started)
        decode = statistics.median(steps)  # one step slowed by another process does not decide the speed
    finally:
        close = getattr(llm, "close", None)
        if close is not None:
            close()
    return Measurement(settings, round(load_seconds, 4), round(prompt_tokens / max(prefill, 1e-9), 3),
                       round(1 / max(decode, 1e-9), 3))


# -- the cache -------------------------------------------------------------------------------------
def default_settings_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where measured settings are kept: SETTINGS_FOLDER in the quantize-once cache's root (GLIDER_CACHE_DIR)."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / SETTINGS_FOLDER


class SettingsCache:
    """A folder of JSON files, one per key, each with the chosen settings and every measured candidate."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_settings_dir()

    def path(self, key: CacheKey) -> Path:
        """The file for `key` (whether or not it exists)."""
        return self.root / f"{key.name}.json"

    def load(self, key: CacheKey) -> tuple[Measurement, ...] | None:
        """The measurements stored for `key`; None when absent, or unreadable (with a warning)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT or data.get("digest") != key.digest:
                raise ValueError("it was written for another key")
            measurements = tuple(
                Measurement(LlamaCppSettings(bool(m["settings"]["weight_repacking"]),
                                             bool(m["settings"]["flash_attn"])),
                            float(m["load_seconds"]), float(m["prefill_tokens_per_second"]),
                            float(m["decode_tokens_per_second"]))
                for m in data["measurements"]
            )
            if not measurements:
                raise ValueError("it holds no measurement")
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("Ignoring the measured llama.cpp settings in %s (%s: %s); measuring again.",
                        path, type(exc).__name__, exc)
            return None
        return measurements

    def save(self, key: CacheKey, measurements: Sequence[Measurement]) -> Path | None:
        """Write the measurements and the fastest of them atomically (a temporary sibling, then renamed); None,
        with a warning, when the file cannot be written."""
        path = self.path(key)
        data = {
            "format": FORMAT,
            "digest": key.digest,
            "key": dict(key.fields),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "typical_grade": {"prompt_tokens": TYPICAL_PROMPT_TOKENS, "written_tokens": TYPICAL_WRITTEN_TOKENS},
            "measure": {"prompt_tokens": MEASURE_PROMPT_TOKENS, "decode_steps": MEASURE_DECODE_STEPS},
            "fastest": asdict(best_measurement(measurements).settings),
            "measurements": [{**asdict(m), "grade_seconds": round(m.grade_seconds, 3)} for m in measurements],
        }
        temporary: str | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".tmp-{key.name}-", suffix=".json", dir=self.root)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2)
            os.replace(temporary, path)
            return path
        except OSError as exc:
            log.warning("Could not save the measured llama.cpp settings to %s (%s); they will be measured again "
                        "at the next start.", path, exc)
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            return None


# -- the choice ------------------------------------------------------------------------------------
def choose_settings(
    *,
    weight_repacking: bool | None,
    flash_attn: bool | None,
    measure_settings: bool,
    on_gpu: bool,
    key: Callable[[], CacheKey],
    run: Callable[[LlamaCppSettings], Measurement],
    cache: SettingsCache,
    cpu: str,
) -> SettingsChoice:
    """The settings to load with and why.

    Forced settings (both named) and GPU offload are used as given; with measuring off, what is not forced
    comes from FIXED_SETTINGS. Otherwise the candidates consistent with a forced setting are taken from the
    cache for `key()`; those it lacks are measured with `run` (an outlier twice, the faster figure kept) and
    the cache is rewritten with them, and the fastest typical grade wins. A candidate that fails to measure is
    left out; if none is left, FIXED_SETTINGS is used (nothing cached, so the next start measures again).
    """
    fixed = LlamaCppSettings(FIXED_WEIGHT_REPACKING if weight_repacking is None else weight_repacking,
                             FIXED_FLASH_ATTN if flash_attn is None else flash_attn)
    forced = [f"{name} {'on' if value else 'off'}" for name, value in
              (("weight repacking", weight_repacking), ("flash attention", flash_attn)) if value is not None]
    forced_text = f" ({', '.join(forced)} forced)" if forced else ""
    if on_gpu:
        return SettingsChoice(fixed, "gpu", f"{fixed.describe()}: layers on the GPU, not measured{forced_text}")
    if weight_repacking is not None and flash_attn is not None:
        return SettingsChoice(fixed, "forced", f"{fixed.describe()}: forced by the caller, not measured")
    if not measure_settings:
        return SettingsChoice(fixed, "fixed", f"{fixed.describe()}: fixed settings (measuring is off; these were "
                                              f"measured on one Intel Xeon){forced_text}")
    allowed = candidates(weight_repacking, flash_attn)
    cache_key = key()
    known = {m.settings: m for m in cache.load(cache_key) or ()}
    missing = [c for c in allowed if c not in known]
    if not missing:
        measurements = tuple(known.values())
        chosen = best_measurement(measurements, allowed)
        return SettingsChoice(
            chosen.settings, "cache",
            f"{chosen.settings.describe()}: from the cache ({cache.path(cache_key)}), measured at an earlier start "
            f"on {cpu}: {compare_text(chosen, [known[c] for c in allowed])}{forced_text}",
            measurements, cache.path(cache_key), cpu,
        )
    log.info("Measuring llama.cpp's CPU settings on %s (%d short loads, once; the choice is cached)",
             cpu, len(missing))
    started = time.perf_counter()
    for candidate in missing:
        try:
            known[candidate] = run(candidate)
        except Exception as exc:  # a candidate this build or machine cannot load: leave it out, say so
            log.warning("Could not measure llama.cpp with %s (%s: %s)", candidate.describe(), type(exc).__name__, exc)
            continue
        log.info("  %s", known[candidate].describe())
    _remeasure_outliers(known, [c for c in missing if c in known], run)
    seconds = time.perf_counter() - started
    usable = [known[c] for c in allowed if c in known]
    if not usable:
        return SettingsChoice(fixed, "fixed", f"{fixed.describe()}: fixed settings (measuring failed; see the "
                                              f"log){forced_text}", tuple(known.values()), None, cpu)
    measurements = tuple(known.values())
    path = cache.save(cache_key, measurements) if any(c in known for c in missing) else None
    chosen = best_measurement(usable)
    where = f"cached at {path}" if path is not None else "not cached (see the warning)"
    return SettingsChoice(
        chosen.settings, "measured",
        f"{chosen.settings.describe()}: measured at this start on {cpu} in {seconds:.1f} s: "
        f"{compare_text(chosen, usable)}; {where}{forced_text}",
        measurements, path, cpu,
    )


def _remeasure_outliers(
    known: dict[LlamaCppSettings, Measurement],
    fresh: Sequence[LlamaCppSettings],
    run: Callable[[LlamaCppSettings], Measurement],
) -> None:
    """Measure again, once, each fresh candidate whose typical grade is OUTLIER_RATIO× the fastest's or more;
    keep the faster figure. Another program on the CPU only ever slows a measurement down (on 2 busy cores
    whole loads ran ~200 ms slower per evaluation), while the settings themselves differed by ~1.2× (issue 14)."""
    if not fresh:
        return
    fastest = min(known[c].grade_seconds for c in fresh)
    for candidate in fresh:
        first = known[candidate]
        if first.grade_seconds < OUTLIER_RATIO * fastest:
            continue
        try:
            again = run(candidate)
        except Exception as exc:  # it loaded before; keep its first figure
            log.warning("Could not measure llama.cpp again with %s (%s)", candidate.describe(), exc)
            continue
        log.info("  again (the first figure was %.1f× the fastest's; was the CPU busy?): %s",
                 first.grade_seconds / fastest, again.describe())
        if again.grade_seconds < first.grade_seconds:
            known[candidate] = again
