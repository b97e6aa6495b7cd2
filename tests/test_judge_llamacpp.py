"""The llamacpp back-end: what works without llama-cpp-python, and a tiny GGUF judge graded for real.

Tests marked `llamacpp` need llama-cpp-python (an optional extra that CI does not build) and skip
without it; they convert the tiny trained Phi-3 judge to GGUF and compare it with the transformers one.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.errors import ContextTooLongError, JudgeError, ModelLoadError
from core.judge import BACKENDS, Generation, JudgeBackend, create_backend
from core.judge.llamacpp_backend import (
    DEFAULT_FILENAME,
    LlamaCppJudge,
    drop_whitespace_after_markers,
    fit_context,
    hub_model_file,
    logical_cpus,
    physical_cores,
    resolve_offload,
)
from core.parse import parse_output
from core.prompt import build_prompt
from tests import tiny_gguf
from tests.fakes import WELL_FORMED
from tests.tiny_model import has_real_tokenizer

try:
    import llama_cpp  # noqa: F401
except ImportError:
    HAVE_LLAMA_CPP = False
else:
    HAVE_LLAMA_CPP = True

needs_llama_cpp = [
    pytest.mark.llamacpp,
    pytest.mark.skipif(
        not HAVE_LLAMA_CPP,
        reason="llama-cpp-python is not installed (optional extra, not built in CI: pip install llama-cpp-python)",
    ),
    pytest.mark.skipif(
        not has_real_tokenizer(),
        reason="the tiny GGUF needs the Phi-3 tokenizer at ../shared/fixtures/phi35-tokenizer",
    ),
]


# -- without llama-cpp-python ------------------------------------------------------------------------
def test_registry_resolves_llamacpp() -> None:
    assert BACKENDS["llamacpp"] is LlamaCppJudge


@pytest.mark.parametrize("model", ["gguf-file", "PatronusAI/glider-gguf"])
def test_missing_llama_cpp_is_explained_before_any_download(
    model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    if model == "gguf-file":
        model = str(tmp_path / "glider.gguf")
        Path(model).write_bytes(b"GGUF")
    with pytest.raises(ModelLoadError, match=r"needs llama-cpp-python: pip install llama-cpp-python \(it compiles"):
        create_backend("llamacpp", model=model)


def test_missing_gguf_path_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        create_backend("llamacpp", model=str(tmp_path / "nowhere" / "glider-Q4_K_M.gguf"))


def test_folder_needs_exactly_one_matching_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="holds 0 GGUF files matching"):
        create_backend("llamacpp", model=str(tmp_path))
    for name in ("a-Q4_K_M.gguf", "b-Q4_K_M.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    with pytest.raises(ModelLoadError, match="holds 2 GGUF files .* a-Q4_K_M.gguf, b-Q4_K_M.gguf"):
        create_backend("llamacpp", model=str(tmp_path))


def test_offline_without_the_file_gives_the_download_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError) as caught:
        hub_model_file("PatronusAI/glider-gguf", DEFAULT_FILENAME, None, local_files_only=True)
    message = str(caught.value)
    assert "offline" in message
    assert 'hf download PatronusAI/glider-gguf --include "*Q4_K_M.gguf" --local-dir ./glider-gguf' in message
    assert "--model ./glider-gguf" in message


def test_offline_finds_the_cached_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file in the Hugging Face cache layout (refs/main → snapshots/<commit>/) is found without a network."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--PatronusAI--glider-gguf"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("glider_Q4_K_M.gguf", "glider_Q8_0.gguf"):
        (snapshot / name).write_bytes(b"GGUF")
    found = hub_model_file("PatronusAI/glider-gguf", DEFAULT_FILENAME, None, local_files_only=True)
    assert found == snapshot / "glider_Q4_K_M.gguf"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<|user|>\nPROMPT<|end|>\n<|assistant|>\n", "<|user|>PROMPT<|end|><|assistant|>"),
        ("<|system|> \n\t x</s>  y<|placeholder3|>\nz", "<|system|>x</s>y<|placeholder3|>z"),
        # Phi-3 keeps the whitespace after these three (no rstrip in its tokenizer.json).
        ("<s> a<unk> b<|endoftext|>\nc", "<s> a<unk> b<|endoftext|>\nc"),
    ],
)
def test_whitespace_after_phi3_markers_is_dropped(text: str, expected: str) -> None:
    assert drop_whitespace_after_markers(text) == expected


def test_context_guard_is_the_transformers_one() -> None:
    assert fit_context(100, 1024, 8192) == (1024, [])
    with pytest.raises(ContextTooLongError, match="reads at most 8,192"):
        fit_context(8192 - 63, 10, 8192)
    assert fit_context(8192 - 64, 1024, 8192) == (64, ["max_new_tokens lowered from 1024 to 64 to fit the model's "
                                                        "context."])
    tokens, warnings = fit_context(9000, 10, 16384)
    assert tokens == 10 and "8,192 GLIDER was trained on" in warnings[0]
    with pytest.raises(JudgeError, match="at least 1"):
        fit_context(10, 0, 8192)


@pytest.mark.parametrize(
    ("device", "layers", "supported", "expected"),
    [
        ("cpu", None, True, (0, 0, "cpu")),
        ("auto", None, True, (-1, 0, "gpu")),
        ("auto", None, False, (0, 0, "cpu")),
        ("cuda", None, True, (-1, 0, "cuda")),
        ("cuda:1", None, True, (-1, 1, "cuda:1")),
        ("auto", 10, True, (10, 0, "gpu")),
        ("cpu", 5, True, (5, 0, "gpu")),
        ("cuda", 0, True, (0, 0, "cpu")),
    ],
)
def test_device_maps_to_gpu_layers(
    device: str, layers: int | None, supported: bool, expected: tuple[int, int, str]
) -> None:
    assert resolve_offload(device, layers, supported) == expected


@pytest.mark.parametrize(("device", "message"), [("cuda", "built without GPU offload"), ("tpu", "Unknown device")])
def test_impossible_devices_are_explained(device: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        resolve_offload(device, None, False)


def test_thread_count_is_physical_cores() -> None:
    assert 1 <= physical_cores() <= logical_cpus()


# -- with llama-cpp-python: a tiny GGUF judge --------------------------------------------------------
def _quantized_kernels_crash(path: Path) -> bool:
    """Whether evaluating a quantized GGUF kills the process with SIGILL (run in a child, so pytest survives).

    A llama-cpp-python compiled with GGML_NATIVE on a CPU that lists AMX runs its AMX kernels for
    quantized weights; some virtual machines list AMX but fault on its first tile instruction.
    """
    code = "import sys, llama_cpp; llama_cpp.Llama(model_path=sys.argv[1], n_ctx=128, verbose=False).eval([1, 2])"
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=300, check=False)
    return result.returncode == -signal.SIGILL


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="module")
def trained_gguf(trained_model_dir: Path, gguf_dir: Path) -> Path:
    return tiny_gguf.convert(trained_model_dir, gguf_dir / "glider-tiny-F32.gguf")


@pytest.fixture(scope="module")
def llama_judge(trained_gguf: Path) -> LlamaCppJudge:
    judge = create_backend("llamacpp", model=str(trained_gguf), device="cpu")
    assert isinstance(judge, LlamaCppJudge)
    return judge


class TestTinyGguf:
    pytestmark = needs_llama_cpp

    def test_info_reads_the_file(self, llama_judge: LlamaCppJudge, trained_gguf: Path) -> None:
        info = llama_judge.info
        assert (info.backend, info.model_id, info.quantization, info.dtype, info.device, info.max_context) == (
            "llamacpp", str(trained_gguf), "F32", "gguf", "cpu", 8192
        )
        assert "chat template: the GGUF's" in info.notes and llama_judge.n_threads == physical_cores()

    def test_tokenizes_like_transformers(self, llama_judge: LlamaCppJudge, trained_judge, taught_prompt: str) -> None:  # noqa: ANN001
        assert llama_judge.chat_ids("PROMPT") == [32010, 349, 3491, 7982, 32007, 32001]
        assert llama_judge.stop_token_ids == [32007, 32001, 32000]
        for prompt in (taught_prompt, WELL_FORMED, "  naïve café — 😀\n\ttabs<|end|>\n after", "10/10 <score>\n7"):
            assert llama_judge.chat_ids(prompt) == trained_judge.chat_ids(prompt), prompt
            assert llama_judge.count_tokens(prompt) == trained_judge.count_tokens(prompt)

    def test_grades_the_taught_prompt_like_transformers(
        self, llama_judge: LlamaCppJudge, trained_judge, taught_prompt: str  # noqa: ANN001
    ) -> None:
        assert isinstance(llama_judge, JudgeBackend)
        reference = trained_judge.generate(taught_prompt, scale=(0, 1))
        generation = llama_judge.generate(taught_prompt, scale=(0, 1))
        assert generation.text == reference.text == WELL_FORMED
        assert (generation.prompt_tokens, generation.completion_tokens, generation.finish_reason) == (
            reference.prompt_tokens, reference.completion_tokens, "stop"
        )
        judgment = parse_output(generation.text, (0, 1))
        assert (judgment.status, judgment.score) == ("ok", 1)

    def test_stream_yields_text_then_the_same_generation(self, llama_judge: LlamaCppJudge, taught_prompt: str) -> None:
        events = list(llama_judge.stream(taught_prompt, scale=(0, 1)))
        deltas = [e for e in events if isinstance(e, str)]
        final = events[-1]
        assert len(deltas) > 3 and isinstance(final, Generation) and all(deltas)
        assert "".join(deltas) == final.text == WELL_FORMED
        assert final.first_token_seconds is not None and final.first_token_seconds <= final.seconds

    def test_distribution_is_the_models_own(
        self, llama_judge: LlamaCppJudge, trained_judge, taught_prompt: str  # noqa: ANN001
    ) -> None:
        generation = llama_judge.generate(taught_prompt, scale=(0, 1))
        dist = generation.distribution
        assert dist is not None and set(dist) == {0, 1}
        assert math.isclose(sum(dist.values()), 1.0, rel_tol=1e-9)
        assert max(dist, key=dist.get) == parse_output(generation.text, (0, 1)).score == 1
        reference = trained_judge.generate(taught_prompt, scale=(0, 1))
        # Both run the same float32 weights; llama.cpp's kernels differ from torch's in the last bits only.
        assert dist[1] == pytest.approx(reference.distribution[1], abs=1e-4)
        assert generation.distribution_mass == pytest.approx(reference.distribution_mass, abs=1e-4)

    def test_multi_token_values_match_transformers(
        self, llama_judge: LlamaCppJudge, trained_judge, taught_prompt: str  # noqa: ANN001
    ) -> None:
        """On 0-10, '1' and '10' share a first token; both back-ends read P(10) = P('1')·P('0'|'1')."""
        dist = llama_judge.generate(taught_prompt, scale=(0, 10)).distribution
        reference = trained_judge.generate(taught_prompt, scale=(0, 10)).distribution
        assert dist is not None and reference is not None and set(dist) == set(range(11))
        assert math.isclose(sum(dist.values()), 1.0, rel_tol=1e-9)
        for value in range(11):
            assert dist[value] == pytest.approx(reference[value], abs=1e-4), value

    def test_no_distribution_without_a_score(
        self, untrained_model_dir: Path, gguf_dir: Path, taught_prompt: str
    ) -> None:
        path = tiny_gguf.convert(untrained_model_dir, gguf_dir / "untrained-F16.gguf", file_type="f16")
        judge = create_backend("llamacpp", model=str(path), device="cpu")
        assert judge.info.quantization == "F16"
        generation = judge.generate(taught_prompt, scale=(0, 1), max_new_tokens=8)
        assert generation.completion_tokens == 8 and generation.finish_reason == "length"
        assert generation.distribution is None  # random weights write no <score>; nothing is invented

    def test_quantized_file_still_grades(self, trained_model_dir: Path, gguf_dir: Path, taught_prompt: str) -> None:
        path = tiny_gguf.convert(trained_model_dir, gguf_dir / "glider-tiny-Q8_0.gguf", file_type="q8_0")
        if _quantized_kernels_crash(path):
            pytest.skip(
                "this llama-cpp-python build's quantized (AMX) kernels die with SIGILL on this CPU; rebuild it with "
                "CMAKE_ARGS=-DGGML_NATIVE=OFF"
            )
        judge = create_backend("llamacpp", model=str(gguf_dir), filename="*Q8_0.gguf", device="cpu")
        assert judge.info.quantization == "Q8_0" and f"file {path.name}" in judge.info.notes
        generation = judge.generate(taught_prompt, scale=(0, 1), max_new_tokens=120)
        assert parse_output(generation.text, (0, 1)).score == 1, generation.text
        assert generation.distribution is not None and generation.distribution[1] > 0.5

    def test_context_guard_refuses_before_generating(self, llama_judge: LlamaCppJudge) -> None:
        prompt = build_prompt({"MODEL OUTPUT": "word " * 9_000}, "Is it fine?", "0: no\n1: yes")
        assert llama_judge.count_tokens(prompt) > llama_judge.max_context
        with pytest.raises(ContextTooLongError, match="reads at most 8,192"):
            llama_judge.generate(prompt)
        with pytest.raises(ContextTooLongError):
            next(iter(llama_judge.stream(prompt)))

    def test_longer_context_warns_and_caps_the_answer(self, trained_gguf: Path) -> None:
        judge = create_backend("llamacpp", model=str(trained_gguf), device="cpu", n_ctx=8192 + 512)
        prompt = build_prompt({"MODEL OUTPUT": "word " * 8_300}, "Is it fine?", "0: no\n1: yes")
        tokens = judge.count_tokens(prompt)
        assert 8192 < tokens and tokens + 64 <= judge.max_context < tokens + 1024
        generation = judge.generate(prompt, max_new_tokens=1024)
        assert generation.prompt_tokens == tokens
        assert generation.completion_tokens <= judge.max_context - tokens
        assert any("8,192" in warning for warning in generation.warnings)
        assert any("max_new_tokens lowered" in warning for warning in generation.warnings)

    def test_concurrent_callers_take_turns(self, llama_judge: LlamaCppJudge, taught_prompt: str) -> None:
        results: list[str] = []
        errors: list[BaseException] = []

        def grade() -> None:
            try:
                results.append(llama_judge.generate(taught_prompt, max_new_tokens=200).text)
            except BaseException as exc:  # noqa: BLE001 - the assertion below reports it
                errors.append(exc)

        threads = [threading.Thread(target=grade) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors and results == [WELL_FORMED] * 3
