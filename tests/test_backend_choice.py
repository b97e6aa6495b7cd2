"""`--backend auto`: which back-end each machine and each set of flags gets, and why (pure, no model loaded)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from core.judge import hardware, options
from core.judge.options import (
    BACKEND_CHOICES,
    JudgeChoice,
    add_judge_arguments,
    judge_choice,
    judge_identity,
    judge_options,
    resolve_backend,
)


def _parse(argv: list[str], env: dict[str, str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_judge_arguments(parser, env or {})
    return parser.parse_args(argv)


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - returns the setter
    """Pretend this machine has (or lacks) a CUDA GPU and llama-cpp-python."""

    def set_machine(*, cuda: bool, llama_cpp: bool) -> None:
        monkeypatch.setattr(hardware, "cuda_available", lambda: cuda)
        monkeypatch.setattr(hardware, "llama_cpp_installed", lambda: llama_cpp)

    return set_machine


# -- the machine decides when the flags do not --------------------------------------------------------
@pytest.mark.parametrize(
    ("cuda", "llama_cpp", "device", "expected", "why"),
    [
        (True, True, "auto", "transformers", "CUDA GPU"),
        (True, False, "auto", "transformers", "CUDA GPU"),
        (False, True, "auto", "llamacpp", "llama-cpp-python is installed"),
        (False, False, "auto", "transformers", "llama-cpp-python is not installed"),
        # --device cpu: the GPU is not to be used, so the CPU's fastest path.
        (True, True, "cpu", "llamacpp", "llama-cpp-python is installed"),
        (True, False, "cpu", "transformers", "not installed"),
        # --device cuda asks for a GPU whatever is detected.
        (False, True, "cuda", "transformers", "--device cuda"),
        (False, True, "cuda:1", "transformers", "--device cuda:1"),
    ],
)
def test_the_machine_decides(cuda: bool, llama_cpp: bool, device: str, expected: str, why: str) -> None:
    backend, reason = resolve_backend("auto", device=device, cuda_available=cuda, llama_cpp_installed=llama_cpp)
    assert backend == expected
    assert reason.startswith("auto: ") and why in reason


def test_reasons_say_what_runs() -> None:
    _, cpu_gguf = resolve_backend("auto", cuda_available=False, llama_cpp_installed=True)
    assert "PatronusAI/glider-gguf (Q4_K_M)" in cpu_gguf
    _, cpu_nf4 = resolve_backend("auto", cuda_available=False, llama_cpp_installed=False)
    assert "nf4" in cpu_nf4 and "pip install llama-cpp-python" in cpu_nf4
    _, gpu = resolve_backend("auto", cuda_available=True, llama_cpp_installed=True)
    assert "nf4" in gpu


# -- flags that only one back-end reads decide first --------------------------------------------------
@pytest.fixture
def model_paths(tmp_path: Path) -> dict[str, str]:
    hf_dir = tmp_path / "glider"
    hf_dir.mkdir()
    (hf_dir / "config.json").write_text("{}")
    gguf_dir = tmp_path / "glider-gguf"  # what the download command in the llamacpp back-end's advice makes
    gguf_dir.mkdir()
    (gguf_dir / "glider_Q4_K_M.gguf").write_bytes(b"GGUF")
    both = tmp_path / "both"  # a transformers folder that also holds a GGUF export: config.json wins
    both.mkdir()
    (both / "config.json").write_text("{}")
    (both / "model.gguf").write_bytes(b"GGUF")
    empty = tmp_path / "empty"
    empty.mkdir()
    return {"hf dir": str(hf_dir), "gguf dir": str(gguf_dir), "gguf file": str(gguf_dir / "glider_Q4_K_M.gguf"),
            "both": str(both), "empty dir": str(empty)}


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gguf file", "llamacpp"),
        ("gguf dir", "llamacpp"),
        ("hf dir", "transformers"),
        ("both", "transformers"),
        ("empty dir", "transformers"),
        ("PatronusAI/glider-gguf", "llamacpp"),
        ("someone/Glider-GGUF", "llamacpp"),
        ("missing/file-Q4_K_M.gguf", "llamacpp"),  # not there: the llamacpp back-end says so
        ("PatronusAI/glider", "transformers"),
        ("microsoft/Phi-3.5-mini-instruct", "transformers"),
    ],
)
@pytest.mark.parametrize(("cuda", "llama_cpp"), [(False, True), (True, False), (False, False)])
def test_an_explicit_model_gets_the_back_end_that_reads_it(
    model: str, expected: str, cuda: bool, llama_cpp: bool, model_paths: dict[str, str]
) -> None:
    name = model_paths.get(model, model)
    backend, reason = resolve_backend("auto", model=name, cuda_available=cuda, llama_cpp_installed=llama_cpp)
    assert backend == expected and name in reason


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"base_url": "http://127.0.0.1:8000/v1"}, "openai"),
        ({"base_url": "http://127.0.0.1:8000/v1", "model": "glider"}, "openai"),
        ({"gguf_file": "*Q8_0.gguf"}, "llamacpp"),
        ({"quantization": "none"}, "transformers"),
        ({"quantization": "int8"}, "transformers"),
        ({"quantization": "auto"}, "llamacpp"),
    ],
)
def test_flags_of_one_back_end_pick_it(flags: dict[str, str], expected: str) -> None:
    backend, _ = resolve_backend("auto", cuda_available=False, llama_cpp_installed=True, **flags)
    assert backend == expected


@pytest.mark.parametrize("named", ["transformers", "openai", "llamacpp"])
def test_a_named_back_end_is_kept(named: str) -> None:
    for cuda, llama_cpp in [(True, True), (False, False)]:
        backend, reason = resolve_backend(named, model="x.gguf", cuda_available=cuda, llama_cpp_installed=llama_cpp)
        assert (backend, reason) == (named, f"{named}: chosen with --backend (or GLIDER_BACKEND)")


def test_an_unknown_back_end_is_refused() -> None:
    with pytest.raises(ValueError, match="known back-ends: auto, transformers, openai, llamacpp"):
        resolve_backend("vllm")


# -- from the command line ---------------------------------------------------------------------------
def test_auto_is_the_default_and_the_environment_still_wins() -> None:
    assert BACKEND_CHOICES[0] == "auto"
    assert _parse([]).backend == "auto"
    assert _parse([], {"GLIDER_BACKEND": "transformers"}).backend == "transformers"
    assert _parse(["--backend", "openai"], {"GLIDER_BACKEND": "transformers"}).backend == "openai"


@pytest.mark.parametrize(
    ("argv", "cuda", "llama_cpp", "expected"),
    [
        ([], False, True, JudgeChoice("llamacpp", {"model": "PatronusAI/glider-gguf", "device": "auto"}, "")),
        ([], False, False, JudgeChoice("transformers", {"model": "PatronusAI/glider", "quantization": "auto",
                                                         "device": "auto", "revision": None}, "")),
        ([], True, True, JudgeChoice("transformers", {"model": "PatronusAI/glider", "quantization": "auto",
                                                       "device": "auto", "revision": None}, "")),
        (["--gguf-file", "*Q8_0.gguf", "--device", "cpu"], True, True,
         JudgeChoice("llamacpp", {"model": "PatronusAI/glider-gguf", "device": "cpu", "filename": "*Q8_0.gguf"}, "")),
        (["--model", "my.gguf"], False, False, JudgeChoice("llamacpp", {"model": "my.gguf", "device": "auto"}, "")),
        (["--base-url", "http://h:8000/v1", "--concurrency", "3"], False, True,
         JudgeChoice("openai", {"model": None, "base_url": "http://h:8000/v1", "max_concurrency": 3}, "")),
    ],
)
def test_judge_choice_resolves_auto(
    argv: list[str], cuda: bool, llama_cpp: bool, expected: JudgeChoice, machine  # noqa: ANN001
) -> None:
    machine(cuda=cuda, llama_cpp=llama_cpp)
    args = _parse(argv)
    choice = judge_choice(args)
    assert (choice.backend, choice.options) == (expected.backend, expected.options)
    assert choice.reason.startswith("auto: ")
    assert judge_options(args) == (choice.backend, choice.options)  # the older API, same answer
    identity = judge_identity(choice.backend, choice.options)
    assert identity["backend"] == expected.backend != "auto"


def test_a_named_back_end_skips_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> bool:
        raise AssertionError("detection ran although --backend named the back-end")

    monkeypatch.setattr(hardware, "cuda_available", fail)
    monkeypatch.setattr(hardware, "llama_cpp_installed", fail)
    choice = judge_choice(_parse(["--backend", "transformers", "--quantization", "none"]))
    assert choice == JudgeChoice("transformers", {"model": "PatronusAI/glider", "quantization": "none",
                                                  "device": "auto", "revision": None},
                                 "transformers: chosen with --backend (or GLIDER_BACKEND)")


def test_identity_never_records_auto() -> None:
    with pytest.raises(ValueError, match="resolved back-end"):
        judge_identity("auto", {"model": "PatronusAI/glider"})


def test_the_same_flags_name_the_same_job_on_the_same_machine(machine) -> None:  # noqa: ANN001
    """A batch job started with the default flags is found again by the same command on this machine."""
    machine(cuda=False, llama_cpp=True)
    first = judge_identity(*judge_options(_parse([])))
    assert first == judge_identity(*judge_options(_parse([]))) == {"backend": "llamacpp",
                                                                    "model": "PatronusAI/glider-gguf"}
    assert first == judge_identity(*judge_options(_parse(["--backend", "llamacpp"])))


def test_llamacpp_settings_can_be_fixed_without_renaming_the_job(machine) -> None:  # noqa: ANN001
    """--llamacpp-settings fixed (or GLIDER_LLAMACPP_SETTINGS) turns measuring off; the settings change speed only."""
    machine(cuda=False, llama_cpp=True)
    assert _parse([]).llamacpp_settings == "measure"
    fixed = judge_choice(_parse(["--llamacpp-settings", "fixed"]))
    assert fixed.options == {"model": "PatronusAI/glider-gguf", "device": "auto", "measure_settings": False}
    assert judge_choice(_parse([], {"GLIDER_LLAMACPP_SETTINGS": "fixed"})).options == fixed.options
    assert judge_identity(fixed.backend, fixed.options) == judge_identity(*judge_options(_parse([])))
    with pytest.raises(SystemExit):
        _parse(["--llamacpp-settings", "fast"])


# -- what the machine offers -------------------------------------------------------------------------
def test_hardware_answers_cheaply() -> None:
    assert 1 <= hardware.physical_cores() <= hardware.logical_cpus()
    assert isinstance(hardware.cuda_available(), bool)
    assert isinstance(hardware.llama_cpp_installed(), bool)


def test_llama_cpp_is_looked_up_not_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    hardware.llama_cpp_installed()
    assert "llama_cpp" not in sys.modules
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # how tests make a package unimportable
    assert hardware.llama_cpp_installed() is False


def test_no_gpu_driver_means_no_cuda_without_importing_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "_GPU_DEVICE_FILES", ("/nonexistent/nvidia",))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setitem(sys.modules, "torch", None)  # importing torch would now fail
    assert hardware.cuda_available() is False


def test_the_options_module_imports_nothing_heavy() -> None:
    assert options.hardware is hardware
    for heavy in ("torch", "llama_cpp", "transformers"):
        assert heavy not in vars(options)


@pytest.mark.parametrize(
    ("model", "expected"),
    [("./glidr", "transformers"), ("~/no-such-glider", "transformers"), ("/no/such/glider", "transformers"),
     ("./no-such-Q4_K_M.gguf", "llamacpp"), ("models/no-such.gguf", "llamacpp")],
)
def test_a_model_path_that_does_not_exist_is_reported_as_missing(model: str, expected: str) -> None:
    backend, reason = resolve_backend("auto", model=model, cuda_available=False, llama_cpp_installed=True)
    assert backend == expected
    assert f"the --model path {model} does not exist" in reason
    assert "is a transformers model" not in reason and "is GGUF weights" not in reason


def test_the_cpu_advice_quotes_measured_figures_not_twice_the_speed() -> None:
    """BENCHMARKS.md measures llama.cpp about as fast as nf4 per grade on a CPU, not twice as fast."""
    benchmarks = (Path(__file__).resolve().parent.parent / "BENCHMARKS.md").read_text()
    _, with_llama = resolve_backend("auto", cuda_available=False, llama_cpp_installed=True)
    _, without = resolve_backend("auto", cuda_available=False, llama_cpp_installed=False)
    for reason in (with_llama, without):
        assert "twice" not in reason and "fastest" not in reason
    # the figures quoted below are the measured ones: the AMD run's typical grades, the Intel run's peak memory
    for figure in ("| llama.cpp Q4_K_M | 27.0 | 10.0 | 0.45 | 56.4 s |", "from the quantize-once cache | 35.8 | "
                   "7.16 | 0.44 | 57.0 s |", "5.77 GB", "7.16 GB"):
        assert figure in benchmarks
    assert "56 s vs 57 s" in with_llama and "5.8 vs 7.2 GB" in with_llama
    assert "57 s per typical grade" in without
