"""The benchmark suite (bench/suite.py) and the GPU benchmark (bench/gpu_bench.py), run for real on the small shape.

The suite runs as a user runs it, in a subprocess, on a fast subset of its sections; the checks are on what it
writes: one JSON per section with positive measurements, and a BENCHMARKS.md whose rows come from them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import measure  # noqa: E402
import report  # noqa: E402
import shapes  # noqa: E402

# Few tokens, one repeat, small arrays: the numbers are meaningless here, only their presence is tested.
FAST = ["--shape", "small", "--repeats", "1", "--bandwidth-mb", "128", "--prefill-lengths", "512,768",
        "--bf16-new-tokens", "6", "--new-tokens", "6", "--ttft-tokens", "400", "--agreement-items", "300",
        "--agreement-runs", "2", "--app-runs", "1", "--app-warmups", "0", "--app-new-tokens", "8",
        "--page-runs", "1"]


def run(script: str, *args: Any, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, str(BENCH / script), *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def suite(base: Path, sections: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run("suite.py", *FAST, "--sections", sections, "--cache-dir", base / "cache", "--out",
               base / "BENCHMARKS.md", "--results-dir", base / "results", *extra)


def load(base: Path, section: str) -> dict[str, Any]:
    return json.loads((base / "results" / f"small-{section}.json").read_text(encoding="utf-8"))


def table_rows(markdown: str, first_cell: str) -> list[list[str]]:
    """The cells of every table row whose first cell is `first_cell`."""
    rows = []
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            rows.append(cells)
    return rows


def section(markdown: str, title: str) -> str:
    """The text under the heading `## title`, up to the next heading of that level."""
    return markdown.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def positive_number(cell: str) -> float:
    match = re.search(r"[\d,]*\.?\d+", cell)
    assert match, f"no number in {cell!r}"
    value = float(match.group().replace(",", ""))
    assert value > 0, cell
    return value


# Looked up, not imported: importing llama_cpp leaves a /dev/null handle open (a ResourceWarning at exit).
HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One suite run into a temporary folder: memory bandwidth, the bf16 back-end (and llama.cpp's when
    llama-cpp-python is installed), the agreement report, and the launched app's overhead and page load."""
    base = tmp_path_factory.mktemp("bench")
    suite(base, "memory,transformers-bf16,agreement,app,page" + (",llamacpp-q4km" if HAS_LLAMA_CPP else ""))
    return base


# -- pure parts ---------------------------------------------------------------------------------------------
def test_glider_shape_is_phi35_mini() -> None:
    assert shapes.SHAPES["glider"].parameters() == 3_821_079_552  # Phi-3.5-mini-instruct's count


def test_roofline_is_the_share_of_the_bandwidth_bound() -> None:
    # 2 tok/s reading 5 GB per token at 20 GB/s is half of the 4 tok/s the bandwidth allows.
    assert measure.roofline(2.0, 5_000_000_000, 20.0) == pytest.approx(0.5)


def test_prompts_of_a_given_length_fit_and_share_the_header() -> None:
    def count(prompt: str) -> int:  # a word-ish count stands in for a tokenizer
        return len(prompt.split())

    first, tokens = measure.prompt_of_length(count, 400, seed=1)
    second, _ = measure.prompt_of_length(count, 400, seed=2)
    assert 390 <= tokens <= 400 and count(first) == tokens
    assert first != second
    assert first[:200] == second[:200]  # only the data differs: a prefix cache can reuse the head


def test_an_empty_results_folder_renders_a_page_that_says_so(tmp_path: Path) -> None:
    text = report.render({}, {"name": "small"}, "tiny", "results/small-*.json", "python bench/suite.py")
    assert "Random weights" in text and "Nothing measured yet" in text


def test_the_team_deployment_run_is_rendered_from_the_json_its_test_wrote(tmp_path: Path) -> None:
    """tests/test_multiprocess_app.py writes team-deployment.json; BENCHMARKS.md shows it, one row per folder."""
    committed = BENCH / "results" / "amd-epyc-avx512bf16" / report.TEAM_FILE
    figures = json.loads(committed.read_text(encoding="utf-8"))
    (tmp_path / "some-machine").mkdir()
    (tmp_path / "some-machine" / report.TEAM_FILE).write_text(json.dumps({**figures, "labels_stored": 123}))
    [row] = [line for line in report.team_deployment(tmp_path) if line.startswith("| `some-machine`")]
    assert "| 123 |" in row and f"| {figures['labels_confirmed']} |" in row
    assert report.team_deployment(tmp_path / "some-machine" / "nothing-here") == []
    [measured] = [line for line in report.team_deployment(BENCH / "results") if "amd-epyc-avx512bf16" in line]
    assert measured in (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")  # the page was rendered from it


# -- the suite, for real ----------------------------------------------------------------------------------
def test_each_section_writes_json_with_positive_measurements(measured: Path) -> None:
    memory = load(measured, "memory")
    for moment in ("start of run", "end of run"):
        assert memory["results"][moment]["read_gb_s"] > 0 and memory["results"][moment]["copy_gb_s"] > 0
    bf16 = load(measured, "transformers-bf16")
    run_info = bf16["run"]
    assert run_info["versions"]["torch"] and run_info["machine"]["logical_cpus"] >= 1
    assert "bench/suite.py" in run_info["command"] and "--shape small" in run_info["command"]
    r = bf16["results"]
    assert r["load_first_s"] > 0 and r["load_second_s"] > 0 and r["peak_rss_bytes"] > 0
    assert r["weight_bytes"] > 0 and r["bandwidth"]["read_gb_s"] > 0 and r["roofline"] > 0
    assert [p["target"] for p in r["prefill"]] == [512, 768]
    for prefill in r["prefill"]:
        assert prefill["tok_s"] > 0 and prefill["target"] - 40 <= prefill["tokens"] <= prefill["target"]
        assert prefill["timed_by"] == "model calls"
    assert r["decode"]["tokens"] == 6 and r["decode"]["tok_s"] > 0
    assert r["ttft"]["without_reuse"]["median_s"] > 0
    if shapes.backend_accepts("transformers", "prefix_cache"):
        assert r["ttft"]["with_reuse"]["median_s"] > 0 and r["ttft"]["with_reuse"]["prefix_cached_tokens"] > 0
    agreement = load(measured, "agreement")["results"]
    assert agreement["items"] == 300 and agreement["annotators"] == 3 and agreement["median_s"] > 0
    app = load(measured, "app")["results"]
    assert app["ratio"] > 0 and app["web_layer_ratio"] > 0 and app["completion_tokens"] == 8
    assert app["app"]["median_s"] >= app["server"]["median_s"] > 0 and app["direct"]["median_s"] > 0
    page = load(measured, "page")
    if not page.get("skipped"):  # needs Chromium at /usr/bin/chromium and playwright
        assert all(m["median_s"] > 0 for m in page["results"]["measures"].values())


def test_the_markdown_has_the_measured_rows(measured: Path) -> None:
    text = (measured / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert "Random weights" in text and "never real answers" in text
    assert "torch " in text and "transformers " in text and "bench/suite.py --shape small" in text
    [bf16] = table_rows(section(text, "Judge back-ends"), "transformers bf16")
    # back-end, run, weights, first load, second load, prefill 512, prefill 768, decode, RSS, GB/s, roofline
    assert len(bf16) == 11 and bf16[1] == "A"
    for cell in bf16[2:10]:  # the roofline (last) of a model this small can round to 0.00
        positive_number(cell)
    assert float(bf16[10]) >= 0
    [ttft] = table_rows(section(text, "Time to first token: prefix reuse"), "transformers bf16")
    positive_number(ttft[3])
    assert len(table_rows(section(text, "Memory bandwidth"), "start of run")) == 1
    [agreement] = table_rows(section(text, "Agreement report"), "300 × 3")
    positive_number(agreement[2])
    assert "Not measured yet" in text  # the sections this run left out say how to measure them
    [app] = table_rows(section(text, "App overhead"), "`gradio_client` → `/grade` on the running app")
    positive_number(app[1])
    assert re.search(r"Ratio app ÷ direct: \*\*\d+\.\d{3}\*\*", text)


def test_a_later_run_of_one_section_keeps_the_others(measured: Path) -> None:
    before = load(measured, "transformers-bf16")
    suite(measured, "agreement")
    assert load(measured, "transformers-bf16") == before
    assert load(measured, "agreement")["run"]["id"] != before["run"]["id"]
    text = (measured / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert table_rows(section(text, "Judge back-ends"), "transformers bf16")[0][1] == "A"
    assert [row[0] for row in table_rows(section(text, "Runs"), "A") + table_rows(section(text, "Runs"), "B")] \
        == ["A", "B"]
    assert "*Run B," in section(text, "Agreement report")


@pytest.mark.llamacpp
@pytest.mark.skipif(not HAS_LLAMA_CPP and not os.environ.get("CI"),  # CI builds it: there it must run
                    reason="needs llama-cpp-python (optional; .ci/run builds it)")
def test_llamacpp_section_measures_a_q4_k_m_gguf(measured: Path) -> None:
    r = load(measured, "llamacpp-q4km")["results"]
    assert r["decode"]["tok_s"] > 0 and r["prefill"][0]["tok_s"] > 0 and r["weight_bytes"] > 0
    assert r["backend_info"]["quantization"] == "Q4_K_M"
    text = (measured / "BENCHMARKS.md").read_text(encoding="utf-8")
    [row] = table_rows(section(text, "Judge back-ends"), "llama.cpp Q4_K_M")
    positive_number(row[7])


def test_gpu_bench_runs_on_a_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gpu_bench

    out = tmp_path / "gpu.json"
    assert gpu_bench.main(["--shape", "small", "--device", "cpu", "--out", str(out), "--repeats", "1",
                           "--prompt-tokens", "64", "--new-tokens", "4", "--bandwidth-mb", "128",
                           "--batches", "1,2"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text(encoding="utf-8"))
    variants = ["bf16", "nf4"] if result["versions"]["bitsandbytes"] else ["bf16"]
    assert [(r["weights"], r["batch"]) for r in result["rows"]] == [(v, b) for v in variants for b in (1, 2)]
    assert result["bandwidth"]["read_gb_s"] > 0 and result["random_weights"] is True
    for row in result["rows"]:
        for key in ("prefill_tok_s", "decode_tok_s_per_sequence", "decode_tok_s_total", "weight_bytes", "roofline"):
            assert row[key] > 0, (row["weights"], key)
    if "nf4" in variants:  # the output head stays bf16 (most of this small shape's bytes); the layers shrink
        sizes = {r["weights"]: r["weight_bytes"] for r in result["rows"]}
        assert sizes["nf4"] < sizes["bf16"]
    assert "| weights | batch | prefill tok/s |" in printed and "| bf16 | 2 |" in printed


def test_threads_section_measures_each_judge_at_one_thread_and_every_core(tmp_path: Path) -> None:
    from core.judge.llamacpp_backend import physical_cores

    suite(tmp_path, "threads")
    r = load(tmp_path, "threads")["results"]
    threads = sorted({1, physical_cores()})
    labels = ["transformers nf4", "transformers int4"] + (["llama.cpp Q4_K_M"] if HAS_LLAMA_CPP else [])
    if shapes.unavailable("nf4-cache"):
        labels.remove("transformers nf4")
    assert [b["label"] for b in r["backends"]] == labels and r["threads"] == threads
    for backend in r["backends"]:
        assert [row["threads"] for row in backend["rows"]] == threads and backend["rows"][0]["speedup"] == 1.0
        for row in backend["rows"]:
            assert row["decode_tok_s"] > 0 and row["weight_bytes"] > 0 and row["read_gb_s"] > 0
            assert row["share_of_bandwidth"] == pytest.approx(row["consumed_gb_s"] / row["read_gb_s"])
    text = (tmp_path / "BENCHMARKS.md").read_text(encoding="utf-8")
    rows = table_rows(section(text, "Decoding on 1 thread and on every core: memory or arithmetic?"),
                      "transformers int4")
    assert [row[1] for row in rows] == [str(t) for t in threads]
    positive_number(rows[0][2])


def test_the_forced_bitsandbytes_path_is_the_one_for_cpus_without_avx512_bf16(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from core.judge.bitsandbytes_cpu import detect_bnb_cpu_path\nprint(detect_bnb_cpu_path())\n",
                     encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    forced = subprocess.run([sys.executable, str(BENCH / "without_avx512bf16.py"), str(probe)], cwd=tmp_path,
                            capture_output=True, text=True, env=env, timeout=300)
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.strip() == "nf4 via bitsandbytes (native unpack + PyTorch matmul, no AVX512-BF16)"


def test_the_forced_path_measures_nf4_into_its_own_folder(tmp_path: Path) -> None:
    run("suite.py", *FAST, "--bnb-without-avx512bf16", "--sections", "transformers-nf4", "--cache-dir",
        tmp_path / "cache", "--results-dir", tmp_path / "forced")
    record = json.loads((tmp_path / "forced" / "small-transformers-nf4.json").read_text(encoding="utf-8"))
    assert "no AVX512-BF16" in record["results"]["backend_info"]["kernel"]
    assert record["run"]["machine"]["simd"].endswith("bitsandbytes told: no AVX512-BF16 (bench/without_avx512bf16.py)")
    assert record["results"]["decode"]["tok_s"] > 0
    text = (tmp_path / "forced" / "BENCHMARKS.md").read_text(encoding="utf-8")  # its own page, by default
    assert "bitsandbytes told: no AVX512-BF16" in text


@pytest.mark.parametrize(("argv", "message"), [
    (["--bnb-without-avx512bf16", "--sections", "transformers-int4", "--results-dir", "elsewhere"],
     "measures memory, transformers-nf4, grade only, not transformers-int4"),
    (["--bnb-without-avx512bf16", "--sections", "transformers-nf4"], "needs its own --results-dir"),
])
def test_the_forced_path_refuses_what_it_cannot_measure(argv: list[str], message: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import suite as suite_module

    with pytest.raises(SystemExit):
        suite_module.parse_args(argv)
    assert message in capsys.readouterr().err
