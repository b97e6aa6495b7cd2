"""BENCHMARKS.md from the suite's JSON results: every number comes from a measurement file, none is typed.

Each section's results are one file, `<results-dir>/<shape>-<section>.json`, holding the run that measured
it (date, command, machine, versions). Rendering reads whatever files exist, so sections measured on
different days merge into one page, each labelled with its run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Section order on the page; suite.py runs them in this order too.
SECTIONS = (
    "memory",
    "transformers-bf16",
    "transformers-int4",
    "transformers-nf4",
    "transformers-nf4-quantize",
    "llamacpp-q4km",
    "batch",
    "app",
    "grade",
    "verify",
    "threads",
    "agreement",
    "page",
)
BACKEND_SECTIONS = SECTIONS[1:6]


def result_path(results_dir: Path, shape: str, section: str) -> Path:
    return Path(results_dir) / f"{shape}-{section}.json"


def load_results(results_dir: Path, shape: str) -> dict[str, dict[str, Any]]:
    """Every section's stored result for `shape` (a section never measured is absent)."""
    found = {}
    for section in SECTIONS:
        path = result_path(results_dir, shape, section)
        if path.is_file():
            found[section] = json.loads(path.read_text(encoding="utf-8"))
    return found


# -- formatting ---------------------------------------------------------------------------------------------
def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100 and digits <= 1:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _rate(value: float | None) -> str:
    """Tokens/s with two significant decimals below 10 (CPU decode is 0.5-4 tok/s)."""
    if value is None:
        return "–"
    return _num(value, 2 if value < 10 else 1)


def _gb(size: float | None) -> str:
    if size is None:
        return "–"
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:,.1f} s"


def _ratio(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


# -- runs ---------------------------------------------------------------------------------------------------
def _run_labels(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Run id → a short label (A, B, ...) in the order of the runs' dates."""
    runs = sorted({(r["run"]["date"], r["run"]["id"]) for r in results.values()})
    return {run_id: chr(ord("A") + i) if i < 26 else str(i + 1) for i, (_, run_id) in enumerate(runs)}


def _machine_line(machine: dict[str, Any]) -> str:
    memory = machine.get("memory_bytes")
    parts = [machine.get("cpu", "unknown CPU"),
             f"{machine.get('logical_cpus', '?')} logical CPUs / {machine.get('physical_cores', '?')} cores"]
    if machine.get("simd"):
        parts.append(machine["simd"])
    if memory:
        parts.append(f"{memory / 2**30:.1f} GiB RAM")
    if machine.get("gpu"):
        parts.append(machine["gpu"])
    return ", ".join(parts)


def _versions_line(versions: dict[str, str | None]) -> str:
    return ", ".join(f"{name} {version or 'not installed'}" for name, version in versions.items())


def _runs_section(results: dict[str, dict[str, Any]], labels: dict[str, str]) -> list[str]:
    seen: dict[str, dict[str, Any]] = {}
    sections: dict[str, list[str]] = {}
    for section, record in results.items():
        seen[record["run"]["id"]] = record["run"]
        sections.setdefault(record["run"]["id"], []).append(section)
    rows = []
    for run_id, run in sorted(seen.items(), key=lambda item: item[1]["date"]):
        rows.append([
            labels[run_id], run["date"].replace("T", " ").removesuffix("+00:00") + " UTC",
            f"`{run['command']}`", ", ".join(sections[run_id]), _machine_line(run["machine"]),
            _versions_line(run["versions"]), _num((run.get("load_average") or {}).get("before"), 2),
        ])
    return ["## Runs", "", *_table(["run", "date", "command", "sections", "machine", "versions",
                                    "load average at start"], rows), ""]


def _measured(record: dict[str, Any], labels: dict[str, str]) -> str:
    run, load = record["run"], record.get("load_average") or {}
    return (f"*Run {labels[run['id']]}, {run['date'][:10]}; load average {_num(load.get('start'), 2)} → "
            f"{_num(load.get('end'), 2)} during this section.*")


# -- sections -----------------------------------------------------------------------------------------------
def _memory(record: dict[str, Any]) -> list[str]:
    rows = []
    for moment, values in record["results"].items():
        rows.append([moment, f"{values['megabytes']:,} MiB float32", values["threads"],
                     _num(values["read_gb_s"]), _num(values["copy_gb_s"])])
    return [
        *_table(["measured", "array", "torch threads", "read GB/s (sum)", "copy GB/s (read + write)"], rows), "",
        "Best of several passes over an array far larger than the last-level cache. Each back-end's row below "
        "also has the read bandwidth measured in its own process right after it, which its roofline ratio uses.",
    ]


def _backends(results: dict[str, dict[str, Any]], labels: dict[str, str]) -> list[str]:
    lengths = sorted({p["target"] for s in BACKEND_SECTIONS if s in results
                      for p in (results[s].get("results", {}).get("prefill") or [])})
    header = ["back-end", "run", "weights read per token", "first load in process", "second load",
              *[f"prefill {n:,} tok/s" for n in lengths], "decode tok/s", "peak RSS", "read GB/s",
              "roofline"]
    rows, skipped = [], []
    for section in BACKEND_SECTIONS:
        record = results.get(section)
        if record is None:
            continue
        if record.get("skipped"):
            skipped.append(f"- {section}: not measured — {record['skipped']}.")
            continue
        r = record["results"]
        prefill = {p["target"]: p for p in r.get("prefill") or []}
        decode = r.get("decode")
        rows.append([
            r["label"], labels[record["run"]["id"]], _gb(r.get("weight_bytes")), _seconds(r.get("load_first_s")),
            _seconds(r.get("load_second_s")),
            *[(f"{_rate(prefill[n]['tok_s'])} ({prefill[n]['tokens']:,} tok)" if n in prefill else "–")
              for n in lengths],
            f"{_rate(decode['tok_s'])} ({decode['tokens']} tok)" if decode else "–",
            _gb(r.get("peak_rss_bytes")), _num(r["bandwidth"]["read_gb_s"]),
            _ratio(r.get("roofline")),
        ])
    lines = _table(header, rows) if rows else ["No back-end measured yet."]
    # What each back-end reported about how it runs (threads, flash attention, caches), load times left out.
    settings = [f"- *{results[s]['results']['label']}*: "
                + "; ".join([n for n in results[s]["results"].get("backend_info", {}).get("notes", [])
                             if not n.startswith("loaded in")]
                            + (["main thread warmed (--warm-main-thread)"]
                               if results[s]["results"].get("warm_main_thread") else [])) + "."
                for s in BACKEND_SECTIONS if s in results and not results[s].get("skipped")
                and results[s]["results"].get("backend_info", {}).get("notes")]
    loads = [f"{results[s]['results']['label']} {_num(results[s]['load_average'].get('start'), 2)} → "
             f"{_num(results[s]['load_average'].get('end'), 2)}"
             for s in BACKEND_SECTIONS if s in results and not results[s].get("skipped")]
    notes = [
        "",
        "- *Weights read per token*: every weight a decoding step reads (4-bit blocks with their scales; the "
        "input embedding table, of which a step reads one row, left out).",
        "- *First load in process*: `create_backend(...)` in a fresh process (Python's imports done before); "
        "the operating system's file cache is not dropped, so files read before may come from memory. "
        "*Second load*: the same again in that process after the first judge was freed.",
        "- *Prefill*: prompt tokens ÷ the model's evaluation of the prompt (its own call, timed by a hook), "
        "prefix reuse off. *Decode*: the steps after a prompt of the first length, stop tokens off so the "
        "count is exact, including the per-token work of the back-end's loop.",
        "- *Peak RSS*: the back-end process's peak resident memory after one load, prefill and decode.",
        "- *Roofline*: decode tok/s × weights read per token ÷ read bandwidth measured in the same process; 1.0 "
        "would mean every step streams the weights at the measured bandwidth.",
        *([f"- *Load average* (start → end of each measurement): {'; '.join(loads)}."] if loads else []),
        *settings,
    ]
    return [*lines, *notes, *([""] + skipped if skipped else [])]


def _ttft(results: dict[str, dict[str, Any]], labels: dict[str, str]) -> list[str]:
    rows = []
    for section in BACKEND_SECTIONS:
        record = results.get(section)
        ttft = (record or {}).get("results", {}).get("ttft")
        if not ttft:
            continue
        without, with_ = ttft["without_reuse"], ttft.get("with_reuse")
        rows.append([
            record["results"]["label"], labels[record["run"]["id"]], f"{ttft['prompt_tokens']:,}",
            _seconds(without["median_s"]), _seconds(with_["median_s"]) if with_ else "back-end has no prefix reuse",
            f"{with_['prefix_cached_tokens']:,}" if with_ else "–",
            f"{without['median_s'] / with_['median_s']:.2f}x" if with_ else "–",
        ])
    if not rows:
        return ["Not measured yet."]
    return [*_table(["back-end", "run", "prompt tokens", "without prefix reuse", "with prefix reuse",
                     "tokens reused", "speed-up"], rows), "",
            "Seconds until the first new token (`generate(..., max_new_tokens=1)`), median over distinct GLIDER "
            "prompts that share only the constant head (chat prefix and instructions). With reuse, one "
            "earlier grade has filled the prefix cache."]


def _batch(record: dict[str, Any], labels: dict[str, str]) -> list[str]:
    rows = []
    notes = []
    for label, batch in record["results"].items():
        if batch.get("skipped"):
            notes.append(f"- {label}: {batch['skipped']}.")
            continue
        for row in batch["rows"]:
            rows.append([label, row["batch"], _num(row["rows_s"], 3), _rate(row["generated_tok_s"]),
                         f"{row['vs_batch_1']:.2f}x", _seconds(row["seconds"]), f"{row['padding_waste']:.0%}"])
        low, high = batch["prompt_tokens"]
        notes.append(f"- {label}: {batch['prompts']} distinct GLIDER prompts of {low}–{high} tokens, "
                     f"{batch['new_tokens']} new tokens each (stop tokens off).")
    return [*_table(["back-end", "batch", "rows/s", "generated tok/s", "vs batch 1", "total", "pad waste"], rows),
            "", "`generate_batch` on the prompts in chunks of the batch size (bench/batch_bench.py's prompts and "
            "loop).", *notes]


def _app(record: dict[str, Any]) -> list[str]:
    r = record["results"]
    ratio = r["ratio"]
    verdict = "met" if ratio <= r["target"] else "**not met**"
    rows = [["`gradio_client` → `/grade` on the running app", _seconds(r["app"]["median_s"]),
             _seconds(r["app"]["min_s"]), _seconds(r["app"]["max_s"])]]
    if r.get("server"):
        rows.append(["… of which `core.grading.grade` inside the server (its `timings.total_s`)",
                     _seconds(r["server"]["median_s"]), _seconds(r["server"]["min_s"]), _seconds(r["server"]["max_s"])])
    rows.append(["`core.grading.grade` on the back-end directly (this process)", _seconds(r["direct"]["median_s"]),
                 _seconds(r["direct"]["min_s"]), _seconds(r["direct"]["max_s"])])
    web = r.get("web_layer_ratio")
    web_line = (f" Round trip ÷ the server's own grade time (the web layer alone, per call): **{web:.3f}**."
                if web is not None else "")
    return [*_table(["path", "median per grade", "min", "max"], rows), "",
            f"Ratio app ÷ direct: **{ratio:.3f}** (target ≤ {r['target']}: {verdict}).{web_line} {r['runs']} grades "
            f"each, alternating, after {r.get('warmups', 1)} untimed ones each; the same item and options, "
            f"{r['completion_tokens']} generated tokens per grade, `{r['model']}` ({r['parameters'] / 1e6:.1f}M "
            f"parameters) started with `{r['app_command']}`."]


GRADE_LABELS = {"transformers-nf4": "transformers nf4", "transformers-int4": "transformers int4",
                "llamacpp-q4km": "llama.cpp"}  # which `grade` configuration a back-end section matches
GRADE_TARGET_S = 60.0  # issue 14: a typical grade in under a minute on 2 CPU cores


def _grade(record: dict[str, Any]) -> list[str]:
    r = record["results"]
    configurations = r["configurations"]
    llama = next((c for c in configurations if c["label"].startswith("llama.cpp")), None)
    rows = []
    for c in configurations:
        versus = f"{c['median_s'] / llama['median_s']:.2f}x" if llama and c is not llama else "–"
        rows.append([c["label"], _seconds(c["median_s"]), _seconds(c["min_s"]), _seconds(c["max_s"]),
                     "met" if c["median_s"] <= GRADE_TARGET_S else "**not met**", versus,
                     ", ".join(str(n) for n in c["completion_tokens"]), _seconds(c["ready_s"]),
                     _gb(c.get("peak_rss_bytes")), c["record"].get("kernel") or c["status"].get("judge", "")])
    commands = "; ".join(f"`{c['command']}`" for c in configurations)
    return [*_table(["back-end", "median per grade", "min", "max", f"≤ {GRADE_TARGET_S:.0f} s", "÷ llama.cpp",
                     "tokens written", "app ready after", "peak RSS", "what multiplies the weights"], rows), "",
            f"A typical grade through the running app: `gradio_client` → `/grade`, a {r['prompt_tokens']}-token "
            f"prompt (its 204-token head reused from the previous grade), max_new_tokens {r['new_tokens']}; "
            f"{r['runs']} timed grades after one warm-up grade, per back-end, each started as a user starts it "
            f"({commands}). "
            "Wall time on the client, from the call to the answer."]


def _verify(record: dict[str, Any]) -> list[str]:
    r = record["results"]
    rows = [[b["label"], row["draft_tokens"], row["pass_tokens"], _seconds(row["median_s"]),
             f"{row['vs_one_step']:.2f}x"] for b in r["backends"] for row in b["rows"]]
    return [*_table(["back-end", "draft tokens", "tokens in the pass", "median per pass", "÷ one step"], rows), "",
            f"One forward pass over the new tokens after a {r['context_tokens']}-token context, on the judge's own "
            f"model and cache (median of {r['repeats']} after a warm-up). Prompt lookup (`prompt_lookup=k`) gains "
            "only when the tokens accepted per pass, plus the one the pass always yields, exceed this ratio. "
            "Random weights accept nothing meaningful, so no speed-up is claimed here; acceptance needs real "
            "GLIDER outputs. The option is off by default."]


def _threads(record: dict[str, Any]) -> list[str]:
    r = record["results"]
    rows = [[b["label"], row["threads"], _rate(row["decode_tok_s"]),
             f"{row['speedup']:.2f}x" if row.get("speedup") else "–", f"{row['consumed_gb_s']:.1f} GB/s",
             f"{row['read_gb_s']:.1f} GB/s", _ratio(row["share_of_bandwidth"])]
            for b in r["backends"] for row in b["rows"]]
    return [*_table(["back-end", "threads", "decode tok/s", "vs 1 thread", "weights read per second",
                     "memory read bandwidth at these threads", "share"], rows), "",
            f"{r['decode_tokens']} tokens written after a {r['context_tokens']}-token prompt, best of "
            f"{r['repeats']}, at each thread count (bench/thread_scaling.py); the bandwidth is a large array's sum "
            "on the same number of threads. A judge whose decoding waited on memory would gain little from a "
            "second core once one core draws most of the bandwidth; one that waits on arithmetic (unpacking "
            "4-bit weights, multiplying) gains nearly in proportion. The share is the decode roofline of that "
            "thread count."]


def _agreement(record: dict[str, Any]) -> list[str]:
    r = record["results"]
    verdict = "met" if r["median_s"] < 1.0 else "**not met**"
    rows = [[f"{r['items']:,} × {r['annotators']}", f"{r['resamples']:,}", _seconds(r["median_s"]),
             _seconds(r["min_s"]), _seconds(r["max_s"]), verdict]]
    return [*_table(["items × annotators", "bootstrap resamples", "median", "min", "max", "target < 1 s"], rows), "",
            f"`core.agreement.agreement_report` on bench/agreement_bench.py's seeded synthetic ratings, median of "
            f"{r['runs']} calls after a warm-up. The whole report: headline, human vs human, per annotator, spans, "
            "and the decision blocks (alt-test, judge vs people with its bootstrap, calibration and the auto-accept "
            "threshold, sampling; 80 % of the items drawn at random)."]


def _page(record: dict[str, Any]) -> list[str]:
    r = record["results"]
    rows = [[name, _seconds(v["median_s"]), _seconds(v["min_s"]), _seconds(v["max_s"])]
            for name, v in r["measures"].items()]
    return [*_table(["measure", "median", "min", "max"], rows), "",
            f"Headless Chromium ({r['browser']}), a new browser context (empty cache) per load, {r['runs']} loads "
            "after one warm-up, the app on 127.0.0.1 with the tiny model. *DOM content loaded* and *load event* "
            "come from the Navigation Timing API; *app ready* is when the Grade button is visible."]


def _get(results: dict[str, dict[str, Any]], section: str) -> dict[str, Any] | None:
    record = results.get(section)
    return None if record is None or record.get("skipped") else record.get("results")


def _prefill_at(record: dict[str, Any] | None, index: int = 0) -> dict[str, Any] | None:
    prefill = (record or {}).get("prefill") or []
    return prefill[index] if len(prefill) > index else None


def _change(before: float | None, after: float | None, *, faster_is_higher: bool) -> str:
    if not before or not after:
        return "–"
    return f"{after / before:.2f}x" if faster_is_higher else f"{before / after:.2f}x"


def _back_end_rows(label: str, before: dict[str, Any], after: dict[str, Any]) -> list[list[Any]]:
    """Prefill, decode and peak memory of one back-end section against another's, as optimization rows."""
    rows = []
    for name, old, new in (
        ("prefill tok/s", (_prefill_at(before) or {}).get("tok_s"), (_prefill_at(after) or {}).get("tok_s")),
        ("decode tok/s", (before.get("decode") or {}).get("tok_s"), (after.get("decode") or {}).get("tok_s")),
        ("peak RSS", before.get("peak_rss_bytes"), after.get("peak_rss_bytes")),
    ):
        shown = _gb if name == "peak RSS" else _rate
        rows.append([label, name, shown(old), shown(new), _change(old, new, faster_is_higher=name != "peak RSS")])
    return rows


def _optimizations(results: dict[str, dict[str, Any]]) -> list[str]:
    """One row per optimization, both figures from the sections above (same shape; runs as labelled there)."""
    rows: list[list[Any]] = []
    quantize, cached = _get(results, "transformers-nf4-quantize"), _get(results, "transformers-nf4")
    if quantize and cached:
        rows.append(["Quantize once (nf4 saved to a local cache, loaded directly later)", "first load in a process",
                     _seconds(quantize.get("load_first_s")), _seconds(cached.get("load_first_s")),
                     _change(quantize.get("load_first_s"), cached.get("load_first_s"), faster_is_higher=False)])
    llama = _get(results, "llamacpp-q4km")
    if cached and llama:
        rows += _back_end_rows("Default CPU back-end: transformers nf4 → llama.cpp Q4_K_M", cached, llama)
    int4 = _get(results, "transformers-int4")
    if cached and int4:
        rows += _back_end_rows("transformers on a CPU: nf4 (bitsandbytes) → int4 (PyTorch kernel, bf16 prompt weights)",
                               cached, int4)
    defaults = (llama or {}).get("engine_defaults")
    if llama and defaults:
        for name, before, after in (
            ("load", defaults.get("load_s"), llama.get("load_second_s")),
            ("prefill tok/s", (_prefill_at(defaults) or {}).get("tok_s"), (_prefill_at(llama) or {}).get("tok_s")),
            ("decode tok/s", (defaults.get("decode") or {}).get("tok_s"), (llama.get("decode") or {}).get("tok_s")),
        ):
            shown = _seconds if name == "load" else _rate
            rows.append(["llama.cpp: the settings chosen for this machine (vs llama-cpp-python's defaults)",
                         name, shown(before), shown(after), _change(before, after, faster_is_higher=name != "load")])
    engine = (llama or {}).get("engine_decode")
    if llama and engine and llama.get("decode"):
        ours = llama["decode"]["tok_s"]
        rows.append(["Our greedy loop vs llama-cpp-python's own `generate` (same model, prompt, tokens)",
                     "decode tok/s", _rate(engine["tok_s"]), _rate(ours),
                     _change(engine["tok_s"], ours, faster_is_higher=True)])
    for section in ("transformers-int4", "transformers-nf4", "llamacpp-q4km", "transformers-bf16"):
        ttft = (_get(results, section) or {}).get("ttft") or {}
        if ttft.get("with_reuse"):
            before, after = ttft["without_reuse"]["median_s"], ttft["with_reuse"]["median_s"]
            rows.append([f"Prefix reuse ({results[section]['results']['label']})",
                         f"time to first token, {ttft['prompt_tokens']:,}-token prompt", _seconds(before),
                         _seconds(after), _change(before, after, faster_is_higher=False)])
    batch = results.get("batch")
    for label, measured in ((batch or {}).get("results") or {}).items():
        table = {row["batch"]: row for row in measured.get("rows") or []}
        if 1 in table and max(table) > 1:
            top = table[max(table)]
            rows.append([f"Batched generation ({label})", f"rows/s, batch 1 → {max(table)}",
                         _num(table[1]["rows_s"], 3), _num(top["rows_s"], 3), f"{top['vs_batch_1']:.2f}x"])
    app = _get(results, "app")
    if app:
        rows.append(["The app around the back-end (target ≤ 1.05)", "seconds per grade, direct → through the app",
                     _seconds(app["direct"]["median_s"]), _seconds(app["app"]["median_s"]),
                     f"{app['ratio']:.3f} (ratio)"])
    if not rows:
        return ["Nothing to compare yet."]
    return [*_table(["optimization", "measure", "before", "after", "change"], rows), "",
            "Each row compares two measurements of this page (the sections below hold them with their runs). "
            "*change* > 1 is better (faster, or less memory). Threads are one per physical core; on this machine "
            "that equals its logical CPUs, so there is no before/after for it here."]


TITLES = {
    "optimizations": "Optimizations: before and after",
    "memory": "Memory bandwidth",
    "backends": "Judge back-ends",
    "ttft": "Time to first token: prefix reuse",
    "batch": "Batch throughput",
    "app": "App overhead",
    "grade": "A typical grade, end to end",
    "verify": "Prompt lookup: the cost of verifying drafts",
    "threads": "Decoding on 1 thread and on every core: memory or arithmetic?",
    "agreement": "Agreement report",
    "page": "Page load in Chromium",
}


def machine_results(results_dir: Path, shape: str) -> dict[str, dict[str, dict[str, Any]]]:
    """{folder: results} for `results_dir` itself ('.') and each folder in it that holds results of `shape`.

    One folder per machine (e.g. bench/results/amd-epyc-avx512bf16): the CPU decides which kernels run, so
    each machine's figures are kept and rendered apart, and compared side by side.
    """
    found = {".": load_results(results_dir, shape)} if Path(results_dir).is_dir() else {}
    for folder in sorted(p for p in Path(results_dir).glob("*") if p.is_dir()):
        loaded = load_results(folder, shape)
        if loaded:
            found[folder.name] = loaded
    return {name: results for name, results in found.items() if results}


def side_by_side(machines: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """One row per machine and back-end: prompt and writing speed, roofline, typical grade through /grade."""
    rows = []
    for folder, results in machines.items():
        grades = (_get(results, "grade") or {}).get("configurations", [])
        for section in BACKEND_SECTIONS:
            record = _get(results, section)
            if not record or section == "transformers-nf4-quantize":
                continue
            decode = record.get("decode") or {}
            grade = next((g for g in grades if g["label"].startswith(GRADE_LABELS.get(section, "?"))), None)
            machine = _machine_line(results[section]["run"]["machine"])
            rows.append([f"`{folder}`", machine, record.get("label", section),
                         _rate((_prefill_at(record) or {}).get("tok_s")), _rate(decode.get("tok_s")),
                         _ratio(record.get("roofline")), _seconds(grade["median_s"]) if grade else "–",
                         results[section]["run"]["date"][:10]])
    if not rows:
        return ["Nothing measured yet."]
    return [*_table(["results folder", "machine (CPU, flags)", "back-end", "prefill tok/s (512)", "decode tok/s",
                     "roofline", "typical grade via /grade", "measured"], rows), "",
            "Each folder is one machine's run of `bench/suite.py --results-dir <folder>`; its own page "
            "(`<folder>/BENCHMARKS.md`) has every figure and how it was measured."]


# Written by tests/test_multiprocess_app.py when GLIDER_MULTIPROC_RESULTS names it: one per machine folder.
TEAM_FILE = "team-deployment.json"


def team_deployment(results_dir: Path) -> list[str]:
    """The three-process labelling runs on one PostgreSQL database, one row per results folder that holds one."""
    rows = []
    for path in sorted(Path(results_dir).glob(f"**/{TEAM_FILE}")):
        r = json.loads(path.read_text(encoding="utf-8"))
        run = f"{r['processes']} processes, {r['annotators']} annotators, {r['items']} items, k = {r['overlap']}"
        rows.append([f"`{path.parent.relative_to(results_dir).as_posix()}`", r["machine"], r["measured"],
                     f"PostgreSQL {r['postgresql']}", _num(r["load_average_at_start"], 2), run,
                     _seconds(r["seconds"]), r["labels_stored"], r["labels_confirmed"],
                     r["confirmed_by_killed_process"], r["stored_unconfirmed"], r["errors"],
                     _seconds(r["round_p50_ms"] / 1000), _seconds(r["round_p95_ms"] / 1000),
                     _seconds(r["move_to_another_process_p50_s"])])
    if not rows:
        return []
    return [*_table(["results folder", "machine", "measured", "database", "load average at start", "run", "time",
                     "labels stored", "confirmed", "confirmed by the killed process",
                     "stored, answer lost in the kill", "errors", "label round p50", "label round p95",
                     "back to work elsewhere (p50)"], rows), "",
            "`tests/test_multiprocess_app.py` (`GLIDER_MULTIPROC_RESULTS=<folder>/team-deployment.json`): three "
            "`app.py` processes on one PostgreSQL database, every annotator labelling through the Label tab's events "
            "as fast as answers come (no pause to read), one process killed with SIGKILL half way; the run ends at "
            "GLIDER_MULTIPROC_SECONDS (60) or when each annotator has given 25 labels (400 of the 600 places), "
            "whichever comes first. A label round is one Submit: the label stored and the next item claimed and "
            "shown. The test's clients, the three app processes and PostgreSQL share the machine's CPUs."]


def render(results: dict[str, dict[str, Any]], shape: dict[str, Any], shape_text: str,
           results_hint: str, command_hint: str, machines: list[str] | None = None,
           team: list[str] | None = None) -> str:
    """The whole BENCHMARKS.md for one shape from its section results (`machines`: the side-by-side lines;
    `team`: the team-deployment lines)."""
    labels = _run_labels(results)
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `bench/suite.py` from the JSON results in `{results_hint}`: every number on this page was "
        "measured by it, none was typed. Sections can be measured separately (`--sections`) and are merged here, "
        "each marked with the run that measured it.",
        "",
        f"> **Random weights.** The models have the shape `{shape['name']}` ({shape_text}) but random weights: "
        "they show the real speed and memory of that shape, never real answers. What they write is noise and "
        "no score in it means anything.",
        "",
    ]
    if not results:
        return "\n".join([*lines, f"Nothing measured yet: run `{command_hint}`.", ""])
    lines += _runs_section(results, labels)
    if machines:
        lines += ["## CPU families side by side", "", *machines, ""]

    def heading(key: str, section: str | None = None) -> None:
        lines.extend([f"## {TITLES[key]}", ""])
        if section and section in results and not results[section].get("skipped"):
            lines.extend([_measured(results[section], labels), ""])

    def missing(section: str) -> list[str]:
        record = results.get(section)
        if record is None:
            return [f"Not measured yet: `{command_hint} --sections {section}`."]
        return [f"Not measured: {record['skipped']}."]

    heading("optimizations")
    lines += _optimizations(results)
    lines.append("")
    heading("memory", "memory")
    lines += _memory(results["memory"]) if "memory" in results and not results["memory"].get("skipped") \
        else missing("memory")
    lines.append("")
    heading("backends")
    lines += _backends(results, labels)
    lines.append("")
    heading("ttft")
    lines += _ttft(results, labels)
    lines.append("")
    for key, render_one in (("batch", lambda r: _batch(r, labels)), ("app", _app), ("grade", _grade),
                            ("verify", _verify), ("threads", _threads), ("agreement", _agreement), ("page", _page)):
        heading(key, key)
        record = results.get(key)
        lines += render_one(record) if record and not record.get("skipped") else missing(key)
        lines.append("")
    if team:
        lines += ["## Several app processes on one PostgreSQL database", "", *team, ""]
    return "\n".join(lines)
