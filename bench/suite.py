"""The benchmark suite: GLIDER-shaped judges on every back-end, the app's overhead, reports and page load.

    .venv/bin/python bench/suite.py                                  # everything, GLIDER's shape (hours on a CPU)
    .venv/bin/python bench/suite.py --shape small                    # everything on a 2-layer stand-in (minutes)
    .venv/bin/python bench/suite.py --sections llamacpp-q4km,batch   # some sections; the others keep their results

Models with GLIDER's exact shape and random weights are created once and cached (`--cache-dir`, see
bench/shapes.py). Each judge back-end is measured in its own process (bench/measure.py), so its peak memory
and its first load are its own. Results go to one JSON file per section (`--results-dir`), and the markdown
(`--out`) is regenerated from all of them, so a section measured on another day keeps its numbers and date.
Random weights give real speed, never real answers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (ROOT, BENCH):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import report  # noqa: E402
import shapes  # noqa: E402
from report import BACKEND_SECTIONS, SECTIONS  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")  # Debian's Chromium, as the browser tests use; never a downloaded browser
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # tests/test_browser.py's
APP_TARGET = 1.05
# The item the app-overhead section grades through both paths.
APP_CONTEXT = APP_OUTPUT = "Paris is the capital of France."
APP_CRITERIA = "Is the MODEL OUTPUT faithful to the CONTEXT?"
APP_RUBRIC = "0: The MODEL OUTPUT is not faithful to the CONTEXT.\n1: The MODEL OUTPUT is faithful to the CONTEXT."
# Per-shape defaults of the flags that decide how long a run takes.
DEFAULTS = {
    "glider": {"bf16_new_tokens": 16, "new_tokens": 32, "batch_new_tokens": 32, "bandwidth_mb": 2048, "repeats": 1,
               "batch_backends": "transformers-nf4", "app_runs": 9, "app_warmups": 3, "page_runs": 5},
    "small": {"bf16_new_tokens": 32, "new_tokens": 32, "batch_new_tokens": 16, "bandwidth_mb": 512, "repeats": 1,
              "batch_backends": "transformers-bf16,transformers-nf4", "app_runs": 5, "app_warmups": 1,
              "page_runs": 3},
}
PACKAGES = ("torch", "transformers", "bitsandbytes", "accelerate", "llama-cpp-python", "gradio", "numpy")

Log = Callable[[str], None]
# The command that starts a worker or the app: this interpreter, or (--bnb-without-avx512bf16) this interpreter
# through bench/without_avx512bf16.py, so that bitsandbytes takes its path for CPUs without AVX512-BF16.
PYTHON = [sys.executable]
FORCED_NO_AVX512_BF16 = "bitsandbytes told: no AVX512-BF16 (bench/without_avx512bf16.py)"
# Sections that mean something with bitsandbytes forced onto its other path (the others do not use it).
BNB_SECTIONS = ("memory", "transformers-nf4", "grade")
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile")


def log(message: str) -> None:
    print(f"[suite] {message}", flush=True)


# -- where it ran ------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """CPU model, logical CPUs, physical cores, SIMD level, RAM (Linux /proc; 'unknown' elsewhere)."""
    from core.judge.llamacpp_backend import physical_cores

    cpu, flags = platform.processor() or "unknown CPU", ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name") and cpu in ("unknown CPU", platform.processor()):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1]
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    simd = next((name for token, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("neon", "NEON"))
                 if token in flags.split()), "")
    # The flags that change which kernel a library picks (bitsandbytes' nf4 path, oneDNN's bf16 and AMX).
    kernel_flags = [flag for flag in flags.split() if flag in KERNEL_FLAGS]
    if kernel_flags:
        simd = f"{simd} ({', '.join(kernel_flags)})"
    if PYTHON != [sys.executable]:
        simd = f"{simd}; {FORCED_NO_AVX512_BF16}"
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "physical_cores": physical_cores(), "simd": simd,
            "flags": kernel_flags, "memory_bytes": memory, "platform": platform.platform()}


def package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def exact_command() -> str:
    """The command line as typed from the repository root (paths inside the repository made relative)."""

    def shown(path: str) -> str:
        absolute = Path(os.path.abspath(path))  # not resolved: the venv's python is a link out of the repository
        return str(absolute.relative_to(ROOT)) if ROOT in absolute.parents else path

    return shlex.join([shown(sys.executable), shown(sys.argv[0]), *sys.argv[1:]])


# -- model paths and back-end specifications --------------------------------------------------------------
def backend_spec(section: str, args: argparse.Namespace) -> tuple[dict[str, Any] | None, list[str], str | None]:
    """(the worker's spec, the artifacts it needs, why it cannot run here) for a back-end section."""
    cache, shape = args.cache_dir, args.shape
    bf16 = str(shapes.artifact_path(cache, shape, "bf16"))
    common = {"prefill_lengths": args.prefill_lengths, "decode_tokens": args.new_tokens, "repeats": args.repeats,
              "ttft": True, "ttft_tokens": args.ttft_tokens, "bandwidth_mb": args.bandwidth_mb,
              "batch_sizes": args.batch_sizes, "batch_prompts": args.batch_prompts,
              "batch_new_tokens": args.batch_new_tokens, "warm_main_thread": args.warm_main_thread}
    if section.startswith("transformers"):
        accepts = {name: shapes.backend_accepts("transformers", name) for name in ("quantized_cache", "prefix_cache")}
        common["prefix_cache_supported"] = accepts["prefix_cache"]
        no_cache = {"quantized_cache": False} if accepts["quantized_cache"] else {}
        if section == "transformers-bf16":
            spec = {**common, "label": "transformers bf16", "backend": "transformers",
                    "options": {"model": bf16, "quantization": "none", "device": "cpu"},
                    "decode_tokens": args.bf16_new_tokens}
            return spec, ["bf16"], None
        if section == "transformers-int4":  # the CPU default: loaded in bf16, quantized at every start
            spec = {**common, "label": "transformers int4 (PyTorch CPU kernel)", "backend": "transformers",
                    "options": {"model": bf16, "quantization": "int4", "device": "cpu"}}
            return spec, ["bf16"], None
        if section == "transformers-nf4-quantize":
            spec = {**common, "label": "transformers nf4, quantized while loading", "backend": "transformers",
                    "options": {"model": bf16, "quantization": "nf4", "device": "cpu", **no_cache},
                    "speed": False, "warm_load": False, "ttft": False}
            return spec, ["bf16"], shapes.unavailable("nf4")
        if section == "transformers-nf4":
            if accepts["quantized_cache"]:  # the app's own path: the back-end's quantize-once cache
                cache_dir = str(shapes.shape_dir(cache, shape) / "nf4-cache")
                spec = {**common, "label": "transformers nf4, from the quantize-once cache", "backend": "transformers",
                        "options": {"model": bf16, "quantization": "nf4", "device": "cpu", "quantized_cache": True,
                                    "cache_dir": cache_dir},
                        "loaded_from_quantized_cache": True}
                return spec, ["nf4-cache"], shapes.unavailable("nf4-cache")
            nf4 = str(shapes.artifact_path(cache, shape, "nf4"))
            spec = {**common, "label": "transformers nf4, from a saved pre-quantized copy", "backend": "transformers",
                    "options": {"model": nf4, "quantization": "nf4", "device": "cpu"}}
            return spec, ["nf4"], shapes.unavailable("nf4")
    if section == "llamacpp-q4km":
        prefix = shapes.backend_accepts("llamacpp", "prefix_cache")
        spec = {**common, "label": "llama.cpp Q4_K_M", "backend": "llamacpp",
                "options": {"model": str(shapes.artifact_path(cache, shape, "gguf")), "device": "cpu"},
                "prefix_cache_supported": prefix, "engine_decode": True,
                # llama-cpp-python's own defaults, to show what our load settings change (when it takes them)
                "engine_defaults": ({"flash_attn": False, "weight_repacking": True}
                                    if shapes.backend_accepts("llamacpp", "weight_repacking") else None)}
        return spec, ["gguf"], shapes.unavailable("gguf")
    raise ValueError(f"not a back-end section: {section}")


def run_worker(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """bench/measure.py in a fresh process; its JSON result (RuntimeError when it fails)."""
    name = spec["label"].replace(" ", "-").replace(",", "").replace(".", "")
    spec_path, out_path = workdir / f"{name}.spec.json", workdir / f"{name}.result.json"
    spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    out_path.unlink(missing_ok=True)
    command = [*PYTHON, str(BENCH / "measure.py"), str(spec_path), str(out_path)]
    code = subprocess.run(command, cwd=ROOT).returncode
    if code != 0 or not out_path.is_file():
        raise RuntimeError(f"the worker for {spec['label']} failed (exit code {code}); its output is above")
    return json.loads(out_path.read_text(encoding="utf-8"))


def measure_backend(section: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    spec, _, reason = backend_spec(section, args)
    if reason:
        return {"skipped": reason}
    assert spec is not None
    result = run_worker(spec, workdir)
    if spec.get("loaded_from_quantized_cache") and not result.get("loaded_from_quantized_cache"):
        # The cache did not hold this model (its key changed since it was filled): that load quantized and
        # filled it. Measure again, now that the cache serves the first load in a fresh process.
        log(f"{section}: the quantize-once cache was empty; it is filled now, measuring again")
        result = run_worker(spec, workdir)
    return {"results": result}


def measure_batch(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    outcomes: dict[str, Any] = {}
    for section in args.batch_backends:
        spec, _, reason = backend_spec(section, args)
        if reason or spec is None:
            outcomes[section] = {"skipped": reason}
            continue
        spec = {**spec, "speed": False, "warm_load": False, "ttft": False, "batch": True}
        outcomes[spec["label"]] = run_worker(spec, workdir)["batch"]
    return {"results": outcomes}


# -- the web app -------------------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app_judge_flags(model: Path) -> list[str]:
    """The judge flags the app is started with, and from which the direct path builds the same judge."""
    return ["--backend", "transformers", "--model", str(model), "--quantization", "none", "--device", "cpu"]


@contextmanager
def app_server(model: Path, workdir: Path, timeout: float = 300.0) -> Iterator[tuple[str, str]]:
    """`python app.py` with `model` on a free local port, until its /status says ready; yields (url, command)."""
    # Shown without this run's temporary paths and port, which mean nothing to a reader.
    shown = shlex.join(["python", "app.py", *app_judge_flags(Path(f"<cache-dir>/{model.parent.name}/{model.name}")),
                        "--host", "127.0.0.1"])
    with app_process(app_judge_flags(model), workdir, shown, timeout) as (url, _):
        yield url, shown


@contextmanager
def app_process(flags: list[str], workdir: Path, shown: str, timeout: float = 300.0,
                env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python app.py` with judge `flags` (and `env` added to this process's) on a free local port, until its
    /status says ready; yields (url, process)."""
    import httpx
    from gradio_client import Client

    port = free_port()
    command = [*PYTHON, str(ROOT / "app.py"), *flags, "--host", "127.0.0.1",
               "--port", str(port), "--db", f"sqlite:///{workdir / 'app.db'}"]
    env = {**os.environ, **(env or {}), "GLIDER_DATA_DIR": str(workdir), "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("GLIDER_AUTH", None)
    output = (workdir / "app.log").open("w", encoding="utf-8")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        state = None
        while state != "ready":
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}; see {workdir / 'app.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py was not ready after {timeout:.0f} s (last state {state})")
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    client = Client(url, verbose=False)
                    state = client.predict(api_name="/status").get("state")
                    client.close()
            except (httpx.HTTPError, OSError, ValueError):
                pass
            if state != "ready":
                time.sleep(0.5)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.close()


def measure_app(url: str, app_command: str, model: Path, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The same grade through the running app's /grade (gradio_client) and through core.grading.grade."""
    import torch
    from gradio_client import Client

    from core.grading import GradeRequest, grade
    from core.judge import create_backend
    from core.judge.options import add_judge_arguments, judge_options
    from core.prompt import CONTEXT, GOLD_ANSWER, MODEL_OUTPUT, USER_INPUT
    from core.store import Store

    # One parallel op on this (main) thread first: in a fresh process whose main thread never ran one, every
    # generation (each on its own new thread) was measured 10-25x slower on this 2-core VM under load (OpenMP
    # threads spinning against each other; OMP_WAIT_POLICY=passive removed it too). The app's server warms up
    # by itself over its first grades; the direct path is given the same steady state.
    float(torch.ones(1 << 16).sum())
    parser = argparse.ArgumentParser()
    add_judge_arguments(parser, env={})
    backend, options = judge_options(parser.parse_args(app_judge_flags(model)))
    judge = create_backend(backend, **options)
    store = Store.from_path(workdir / "direct.db")
    context, output = APP_CONTEXT, APP_OUTPUT
    # As webapp.app's grade_api builds it: every default tag, the empty ones omitted from the prompt.
    request = GradeRequest(fields={CONTEXT: context, USER_INPUT: "", MODEL_OUTPUT: output, GOLD_ANSWER: ""},
                           pass_criteria=APP_CRITERIA, rubric=APP_RUBRIC,
                           max_new_tokens=args.app_new_tokens)
    client = Client(url, verbose=False)

    def through_app() -> dict[str, Any]:
        return client.predict(context, "", output, "", APP_CRITERIA, APP_RUBRIC,
                              args.app_new_tokens, api_name="/grade")

    def direct() -> dict[str, Any]:
        return grade(judge, request, store).to_dict()

    tokens = grade(judge, request).generation.completion_tokens  # the length of every grade
    for _ in range(args.app_warmups):
        direct()
        through_app()
    app_times, direct_times, server_times = [], [], []
    for _ in range(args.app_runs):  # alternating, so a slow spell of the machine hits both paths
        time.sleep(0.5)  # let the other process's OpenMP threads stop spinning before timing
        started = time.perf_counter()
        answer = through_app()
        app_times.append(time.perf_counter() - started)
        server_times.append(float(answer["timings"]["total_s"]))  # core.grading.grade inside the server
        time.sleep(0.5)
        started = time.perf_counter()
        direct()
        direct_times.append(time.perf_counter() - started)
    client.close()
    store.close()

    def summary(times: list[float]) -> dict[str, float]:
        return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}

    ratio = statistics.median(app_times) / statistics.median(direct_times)
    web = statistics.median([a / s for a, s in zip(app_times, server_times, strict=True)])
    log(f"app overhead: app {statistics.median(app_times):.3f} s, direct {statistics.median(direct_times):.3f} s, "
        f"ratio {ratio:.3f}; round trip / the server's own grade time {web:.3f}")
    return {"results": {"app": summary(app_times), "direct": summary(direct_times), "server": summary(server_times),
                        "ratio": ratio, "web_layer_ratio": web, "warmups": args.app_warmups,
                        "target": APP_TARGET, "runs": args.app_runs, "completion_tokens": tokens,
                        "max_new_tokens": args.app_new_tokens, "model": "tests/tiny_model (random weights)",
                        "parameters": sum(p.numel() for p in judge.model.parameters()),
                        "app_command": app_command}}


def grade_configurations(args: argparse.Namespace) -> list[tuple[str, list[str], str]]:
    """(label, app.py judge flags, the command as shown) for each back-end the `grade` section measures here."""
    cache, shape = args.cache_dir, args.shape
    bf16, gguf = shapes.artifact_path(cache, shape, "bf16"), shapes.artifact_path(cache, shape, "gguf")
    configurations = [("transformers nf4 (the default install)", ["--model", str(bf16)],
                       f"python app.py --model <cache-dir>/{shape}/bf16")]
    if "int4" in args.grade_backends:
        configurations.append(("transformers int4 (--quantization int4)",
                               ["--model", str(bf16), "--quantization", "int4"],
                               f"python app.py --model <cache-dir>/{shape}/bf16 --quantization int4"))
    if "llamacpp" in args.grade_backends and gguf.is_file():
        configurations.append(("llama.cpp Q4_K_M (llama-cpp-python added)", ["--model", str(gguf)],
                               f"python app.py --model <cache-dir>/{shape}/gguf/{gguf.name}"))
    return configurations


def measure_grades(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The typical grade through /grade for each configuration (bench/typical_grade.py), in this order."""
    import typical_grade

    fields, prompt_tokens = typical_grade.typical_fields(shapes.artifact_path(args.cache_dir, args.shape, "bf16"),
                                                         args.grade_prompt_tokens)
    # The apps' cache folder (nf4's quantize-once copy, llama.cpp's measured settings): the bench's nf4 cache
    # when it exists, so nf4 starts as it would after a user's first start; else a fresh one.
    nf4_cache = shapes.shape_dir(args.cache_dir, args.shape) / "nf4-cache"
    cache = {"GLIDER_CACHE_DIR": str(nf4_cache if nf4_cache.is_dir() else workdir / "quantized-cache")}
    outcomes = []
    for label, flags, shown in grade_configurations(args):
        outcomes.append(typical_grade.measure_configuration(
            lambda f, w, sh: app_process(f, w, sh, timeout=args.grade_start_timeout, env=cache), label, flags,
            shown, workdir, fields, args.grade_runs, args.grade_new_tokens, log))
    return {"results": {"prompt_tokens": prompt_tokens, "new_tokens": args.grade_new_tokens,
                        "runs": args.grade_runs, "configurations": outcomes}}


def measure_verify(args: argparse.Namespace) -> dict[str, Any]:
    """The cost of verifying k prompt-lookup drafts against one step, per quantization (bench/draft_verify.py)."""
    import gc

    import draft_verify

    from core.judge import create_backend

    bf16 = str(shapes.artifact_path(args.cache_dir, args.shape, "bf16"))
    nf4_cache = str(shapes.shape_dir(args.cache_dir, args.shape) / "nf4-cache")
    outcomes = []
    for quantization, extra in (("nf4", {"quantized_cache": True, "cache_dir": nf4_cache}), ("int4", {})):
        judge = create_backend("transformers", model=bf16, quantization=quantization, device="cpu", **extra)
        rows = draft_verify.verify_costs(judge)
        for row in rows:
            log(f"[verify] {quantization}: {row['pass_tokens']} tokens in one pass: {row['median_s'] * 1e3:.0f} ms "
                f"({row['vs_one_step']:.2f}x one step)")
        outcomes.append({"label": f"transformers {quantization}", "kernel": judge.info.kernel, "rows": rows})
        del judge
        gc.collect()
    return {"results": {"context_tokens": draft_verify.CONTEXT_TOKENS, "repeats": draft_verify.REPEATS,
                        "backends": outcomes}}


def measure_threads(args: argparse.Namespace) -> dict[str, Any]:
    """Decode speed and read bandwidth at 1 thread and at every core, per 4-bit judge (bench/thread_scaling.py)."""
    import thread_scaling

    from core.judge import create_backend
    from core.judge.llamacpp_backend import physical_cores

    threads = sorted({1, physical_cores()})
    bandwidth = {count: thread_scaling.read_bandwidth(count, args.bandwidth_mb) for count in threads}
    bf16 = str(shapes.artifact_path(args.cache_dir, args.shape, "bf16"))
    nf4_cache = str(shapes.shape_dir(args.cache_dir, args.shape) / "nf4-cache")
    gguf = shapes.artifact_path(args.cache_dir, args.shape, "gguf")

    def transformers(quantization: str, **extra: Any) -> Callable[[int], Any]:
        return lambda _: create_backend("transformers", model=bf16, quantization=quantization, device="cpu", **extra)

    judges: list[tuple[str, Callable[[int], Any], Callable[[Any], int], bool]] = [
        ("transformers nf4", transformers("nf4", quantized_cache=True, cache_dir=nf4_cache),
         lambda judge: shapes.weight_bytes(judge.model), False),
        ("transformers int4", transformers("int4"), lambda judge: shapes.weight_bytes(judge.model), False),
    ]
    if gguf.is_file() and shapes.unavailable("gguf") is None:
        judges.append(("llama.cpp Q4_K_M",
                       lambda count: create_backend("llamacpp", model=str(gguf), device="cpu", n_threads=count),
                       lambda _: shapes.gguf_weight_bytes(gguf), True))
    outcomes = []
    for label, load, weights, per_load in judges:
        outcome = thread_scaling.scaling(label, load, weights, threads, bandwidth, per_load)
        for row in outcome["rows"]:
            log(f"[threads] {label}: {row['threads']} threads {row['decode_tok_s']:.2f} tok/s, "
                f"{row['share_of_bandwidth']:.2f} of {row['read_gb_s']:.1f} GB/s")
        outcomes.append(outcome)
    return {"results": {"threads": threads, "decode_tokens": thread_scaling.DECODE_TOKENS,
                        "context_tokens": thread_scaling.CONTEXT_TOKENS, "repeats": thread_scaling.REPEATS,
                        "backends": outcomes}}


def measure_page(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Page load in headless Chromium: navigation timing and the moment the Grade button shows."""
    if not CHROMIUM.exists():
        return {"skipped": f"no Chromium at {CHROMIUM}"}
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "playwright is not installed"}
    measures: dict[str, list[float]] = {"DOM content loaded": [], "load event": [], "app ready (Grade button)": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        name = f"Chromium {browser.version}"
        for run in range(args.page_runs + 1):  # the first load warms the browser and the server up
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            started = time.perf_counter()
            page.goto(url, wait_until="load", timeout=60_000)
            page.wait_for_selector("#gl-grade", state="visible", timeout=60_000)
            ready = time.perf_counter() - started
            timing = page.evaluate("() => performance.getEntriesByType('navigation')[0].toJSON()")
            context.close()
            if run == 0:
                continue
            measures["DOM content loaded"].append(timing["domContentLoadedEventEnd"] / 1000)
            measures["load event"].append(timing["loadEventEnd"] / 1000)
            measures["app ready (Grade button)"].append(ready)
        browser.close()
    log(f"page: app ready in {statistics.median(measures['app ready (Grade button)']):.2f} s")
    return {"results": {"browser": name, "runs": args.page_runs, "measures": {
        key: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v)} for key, v in measures.items()}}}


# -- the rest ------------------------------------------------------------------------------------------------
def measure_agreement(args: argparse.Namespace) -> dict[str, Any]:
    """bench/agreement_bench.py's synthetic ratings through core.agreement.agreement_report."""
    import agreement_bench

    from core.agreement import agreement_report

    rows = agreement_bench.synthetic_rows(args.agreement_items, args.agreement_annotators, spans=False)
    agreement_report(rows, n_resamples=1000)  # warm-up: first-call imports and caches
    times = []
    for _ in range(args.agreement_runs):
        started = time.perf_counter()
        agreement_report(rows, n_resamples=1000)
        times.append(time.perf_counter() - started)
    log(f"agreement report: median {statistics.median(times):.3f} s")
    return {"results": {"items": args.agreement_items, "annotators": args.agreement_annotators, "resamples": 1000,
                        "runs": args.agreement_runs, "median_s": statistics.median(times), "min_s": min(times),
                        "max_s": max(times)}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--shape", choices=sorted(shapes.SHAPES), default="glider",
                        help="glider: Phi-3.5-mini's shape (3.8B); small: a 2-layer stand-in for smoke runs")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of: {', '.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=None,
                        help="the markdown (default BENCHMARKS.md; --shape small: bench/results/BENCHMARKS-small.md; "
                             "another --results-dir: BENCHMARKS.md in it)")
    parser.add_argument("--results-dir", type=Path, default=BENCH / "results", help="one JSON per section and shape")
    parser.add_argument("--cache-dir", type=Path, default=shapes.DEFAULT_CACHE_DIR, help="where models are cached")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder (default the Phi-3.5 fixture)")
    parser.add_argument("--render-only", action="store_true", help="only regenerate the markdown from the JSON")
    speed = parser.add_argument_group("back-end speed (defaults depend on --shape)")
    speed.add_argument("--prefill-lengths", default="512,2048", help="prompt lengths in tokens")
    speed.add_argument("--new-tokens", type=int, help="decoded tokens for nf4 and llama.cpp")
    speed.add_argument("--bf16-new-tokens", type=int, help="decoded tokens for bf16 (0.5 tok/s on 2 cores)")
    speed.add_argument("--ttft-tokens", type=int, default=600, help="prompt length for time to first token")
    speed.add_argument("--repeats", type=int, help="keep the best of this many runs")
    speed.add_argument("--bandwidth-mb", type=int, help="array size of the bandwidth measurement")
    speed.add_argument("--warm-main-thread", action="store_true",
                       help="run one parallel torch op on each back-end process's main thread before loading "
                            "(off: measure the path a fresh process takes; see bench/README.md)")
    batch = parser.add_argument_group("batch")
    batch.add_argument("--batch-sizes", default="1,4,8")
    batch.add_argument("--batch-prompts", type=int, default=8)
    batch.add_argument("--batch-new-tokens", type=int)
    batch.add_argument("--batch-backends", help="back-end sections to batch (default depends on --shape)")
    other = parser.add_argument_group("app, agreement and page")
    other.add_argument("--app-runs", type=int)
    other.add_argument("--app-warmups", type=int, help="untimed grades through each path first")
    other.add_argument("--app-new-tokens", type=int, default=256, help="max_new_tokens of the app-overhead grade")
    other.add_argument("--grade-runs", type=int, default=2, help="timed typical grades per back-end, after a warm-up")
    other.add_argument("--grade-new-tokens", type=int, default=300, help="max_new_tokens of the typical grade")
    other.add_argument("--grade-prompt-tokens", type=int, default=600, help="tokens of the typical grade's prompt")
    other.add_argument("--grade-backends", default="int4,llamacpp",
                       help="the typical grade's back-ends besides the default install: int4, llamacpp")
    other.add_argument("--grade-start-timeout", type=float, default=1800.0, help="seconds to wait for each app start")
    other.add_argument("--page-runs", type=int)
    other.add_argument("--agreement-items", type=int, default=10_000)
    other.add_argument("--agreement-annotators", type=int, default=3)
    other.add_argument("--agreement-runs", type=int, default=5)
    parser.add_argument("--bnb-without-avx512bf16", action="store_true",
                        help="run nf4 with bitsandbytes' path for CPUs without AVX512-BF16 (sections "
                             f"{', '.join(BNB_SECTIONS)} only; use its own --results-dir)")
    args = parser.parse_args(argv)
    for key, value in DEFAULTS[args.shape].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    own_folder = args.results_dir.resolve() != (BENCH / "results").resolve()
    if args.out is None and own_folder:  # another machine's folder keeps its own page
        args.out = args.results_dir / "BENCHMARKS.md"
    if args.out is None:
        args.out = ROOT / "BENCHMARKS.md" if args.shape == "glider" else BENCH / "results" / "BENCHMARKS-small.md"
    args.sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    if args.bnb_without_avx512bf16:
        others = sorted(set(args.sections) - set(BNB_SECTIONS))
        if others:
            parser.error(f"--bnb-without-avx512bf16 measures {', '.join(BNB_SECTIONS)} only, not {', '.join(others)}")
        if not own_folder:
            parser.error("--bnb-without-avx512bf16 needs its own --results-dir: its figures are not this CPU's own")
        args.grade_backends = ""  # the grade section then starts nf4 alone
    args.prefill_lengths = [int(n) for n in args.prefill_lengths.split(",")]
    args.batch_sizes = [int(n) for n in args.batch_sizes.split(",")]
    args.batch_backends = [s for s in args.batch_backends.split(",") if s]
    wrong = sorted(set(args.batch_backends) - set(BACKEND_SECTIONS))
    if wrong:
        known = ", ".join(BACKEND_SECTIONS)
        parser.error(f"--batch-backends takes back-end sections ({known}), not {', '.join(wrong)}")
    return args


def write_markdown(args: argparse.Namespace) -> None:
    shape = shapes.SHAPES[args.shape]
    results = report.load_results(args.results_dir, args.shape)
    try:
        hint = os.path.relpath(args.results_dir, args.out.parent)
    except ValueError:
        hint = str(args.results_dir)
    hint = f"{hint}/{args.shape}-*.json"
    command = ".venv/bin/python bench/suite.py" + ("" if args.shape == "glider" else f" --shape {args.shape}")
    machines = report.machine_results(args.results_dir, args.shape)
    side = report.side_by_side(machines) if len(machines) > 1 else None
    text = report.render(results, asdict(shape), shape.describe(), hint, command, side,
                         report.team_deployment(args.results_dir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    log(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bnb_without_avx512bf16:
        PYTHON[:] = [sys.executable, str(BENCH / "without_avx512bf16.py")]
    if args.render_only:
        write_markdown(args)
        return 0
    started = time.perf_counter()
    run = {"id": uuid.uuid4().hex[:12], "date": datetime.now(UTC).isoformat(timespec="seconds"),
           "command": exact_command(), "machine": machine_info(), "versions": package_versions(),
           "shape": asdict(shapes.SHAPES[args.shape]), "load_average": {"before": load_average()}}
    log(f"shape {args.shape}: {shapes.SHAPES[args.shape].describe()}; sections: {', '.join(args.sections)}")
    log("random weights: real speed, never real answers")

    needed: list[str] = []
    for section in args.sections:
        if section in BACKEND_SECTIONS:
            needed += backend_spec(section, args)[1]
        elif section == "batch":
            needed += [a for s in args.batch_backends for a in backend_spec(s, args)[1]]
        elif section in ("app", "page"):
            needed.append("tiny")
        elif section == "grade":
            needed.append("bf16")
        elif section == "verify":
            needed += ["bf16", "nf4-cache"]
        elif section == "threads":
            needed += ["bf16", "nf4-cache", *(["gguf"] if shapes.unavailable("gguf") is None else [])]
    models_started = time.perf_counter()
    shapes.ensure(list(dict.fromkeys(needed)), args.shape, args.cache_dir, tokenizer=args.tokenizer, log=log)
    log(f"models ready after {time.perf_counter() - models_started:.0f} s")

    args.results_dir.mkdir(parents=True, exist_ok=True)
    failures = []

    def save(section: str, outcome: dict[str, Any], load_start: float | None, seconds: float) -> None:
        path = report.result_path(args.results_dir, args.shape, section)
        if outcome.get("skipped"):
            log(f"{section}: skipped ({outcome['skipped']})")
            if path.is_file() and not json.loads(path.read_text(encoding="utf-8")).get("skipped"):
                log(f"{section}: keeping the earlier measurement in {path}")
                return
        record = {"section": section, "shape": args.shape, "run": run, "seconds": seconds,
                  "load_average": {"start": load_start, "end": load_average()}, **outcome}
        path.write_text(json.dumps(record, indent=2), encoding="utf-8")

    def measured(section: str, measure: Callable[[], dict[str, Any]]) -> None:
        if section not in args.sections:
            return
        log(f"--- {section}")
        load_start, section_started = load_average(), time.perf_counter()
        try:
            outcome = measure()
        except Exception as exc:  # one failed section must not cost the others their results
            log(f"{section}: FAILED: {type(exc).__name__}: {exc}")
            failures.append(section)
            return
        seconds = time.perf_counter() - section_started
        log(f"{section}: {seconds:.0f} s")
        save(section, outcome, load_start, seconds)

    from measure import memory_bandwidth

    bandwidth: dict[str, Any] = {}
    if "memory" in args.sections:
        bandwidth["start of run"] = memory_bandwidth(args.bandwidth_mb)
        log(f"memory: {bandwidth['start of run']['read_gb_s']:.1f} GB/s read")
    with tempfile.TemporaryDirectory(prefix="glider-bench-") as temporary:
        workdir = Path(temporary)
        for section in BACKEND_SECTIONS:
            measured(section, lambda s=section: measure_backend(s, args, workdir))
        measured("batch", lambda: measure_batch(args, workdir))
        measured("agreement", lambda: measure_agreement(args))
        measured("grade", lambda: measure_grades(args, workdir))
        measured("verify", lambda: measure_verify(args))
        measured("threads", lambda: measure_threads(args))
        if "app" in args.sections or "page" in args.sections:
            tiny = shapes.artifact_path(args.cache_dir, args.shape, "tiny")
            try:
                with app_server(tiny, workdir) as (url, app_command):
                    measured("app", lambda: measure_app(url, app_command, tiny, args, workdir))
                    measured("page", lambda: measure_page(url, args))
            except RuntimeError as exc:
                log(f"app: FAILED to start: {exc}")
                failures += [s for s in ("app", "page") if s in args.sections]
    if "memory" in args.sections:
        bandwidth["end of run"] = memory_bandwidth(args.bandwidth_mb)
        measured("memory", lambda: {"results": bandwidth})
    write_markdown(args)
    log(f"done in {time.perf_counter() - started:.0f} s" + (f"; FAILED: {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
