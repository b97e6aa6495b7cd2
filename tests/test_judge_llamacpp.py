"""The llamacpp back-end: what works without llama-cpp-python, and a tiny GGUF judge graded for real.

Tests marked `llamacpp` need llama-cpp-python (an optional extra; .ci/run builds it, so in CI they never
skip) and skip without it elsewhere; they convert the tiny trained Phi-3 judge to GGUF and compare it with
the transformers one, check that the prefix cache changes no result, and that the back-end's greedy loop
decodes as fast as llama-cpp-python's own.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.errors import ContextTooLongError, JudgeError, ModelLoadError
from core.judge import BACKENDS, Generation, JudgeBackend, create_backend, hardware, llamacpp_backend
from core.judge.common import fit_context
from core.judge.llamacpp_backend import (
    DEFAULT_FILENAME,
    LlamaCppJudge,
    drop_whitespace_after_markers,
    hub_model_file,
    logical_cpus,
    model_params_set,
    physical_cores,
    resolve_offload,
)
from core.judge.llamacpp_tuning import CANDIDATES, FIXED_SETTINGS, LlamaCppSettings, Measurement
from core.parse import parse_output
from core.prompt import GLIDER_TEMPLATE, build_prompt
from tests import tiny_gguf, tiny_model
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
        not HAVE_LLAMA_CPP and not os.environ.get("CI"),  # CI builds it: there a missing package must fail
        reason="llama-cpp-python is not installed (optional extra: pip install llama-cpp-python; .ci/run builds it)",
    ),
    pytest.mark.skipif(
        not has_real_tokenizer() and not os.environ.get("CI"),  # CI has the fixture: there it must fail
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
    # Moved to core.judge.hardware; still importable from here.
    assert (physical_cores, logical_cpus) == (hardware.physical_cores, hardware.logical_cpus)


def test_model_params_are_set_for_one_load_only() -> None:
    """Fields Llama() has no keyword for (use_extra_bufts) are set while it loads, and only then."""
    made: list[SimpleNamespace] = []

    def defaults() -> SimpleNamespace:
        made.append(SimpleNamespace(use_extra_bufts=True, n_gpu_layers=0))
        return made[-1]

    fake = SimpleNamespace(llama_cpp=SimpleNamespace(llama_model_default_params=defaults))
    with model_params_set(fake, use_extra_bufts=False):
        assert fake.llama_cpp.llama_model_default_params().use_extra_bufts is False
    assert fake.llama_cpp.llama_model_default_params is defaults and defaults().use_extra_bufts is True
    with pytest.raises(RuntimeError), model_params_set(fake, use_extra_bufts=False):
        raise RuntimeError("load failed")
    assert fake.llama_cpp.llama_model_default_params is defaults


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

    def test_streamed_pieces_join_to_the_decoded_text(self, llama_judge: LlamaCppJudge) -> None:
        """stream decodes one token at a time; joined, the pieces are decode's bytes (multi-byte characters too)."""
        for text in ("  naïve café — 😀\n\ttabs<|end|>\n after", "<reasoning>\n- 10/10 \"quoted\"", "日本語 ✓ ∑"):
            ids = llama_judge.tokenize(text)
            joined = llama_judge.decode_bytes(ids[:1]) + b"".join(llama_judge._piece_bytes(t) for t in ids[1:])
            assert joined == llama_judge.decode_bytes(ids), text

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


# -- speed: the prefix cache, flash attention, weight repacking, the greedy loop's own cost -----------
HEAD = GLIDER_TEMPLATE.split("{data}", 1)[0]


def _prompts(taught_prompt: str) -> dict[str, str]:
    # Cut mid-word inside the instructions, so the prompt's ids leave the stored prefix's before its end.
    cut = HEAD.index("carefully") + len("caref")
    return {
        "taught": taught_prompt,
        "other data": build_prompt(
            {"CONTEXT": "Berlin is the capital of Germany.", "USER INPUT": "Capital?", "MODEL OUTPUT": "Munich."},
            "Is the MODEL OUTPUT faithful to the CONTEXT?",
            "1: Unfaithful.\n2: Partly faithful.\n3: Faithful.",
        ),
        "long data": build_prompt({"MODEL OUTPUT": "It repeats. " * 200}, "Is it concise?", "0: No\n1: Yes"),
        "diverges inside the head": HEAD[:cut] + "ully, then stop.",
        "no common head": "Say hello.",
    }


@pytest.fixture(scope="module")
def tiny_q4_k_m(trained_gguf: Path, gguf_dir: Path) -> Path:
    """The trained tiny judge as Q4_K_M (its 64-wide rows get llama.cpp's q5_0/q8_0 fallbacks)."""
    path = tiny_gguf.quantize(trained_gguf, gguf_dir / "glider-tiny-Q4_K_M.gguf", "Q4_K_M")
    if _quantized_kernels_crash(path):
        pytest.skip("this llama-cpp-python's quantized kernels die with SIGILL on this CPU; rebuild it with "
                    "CMAKE_ARGS=-DGGML_NATIVE=OFF")
    return path


@pytest.fixture(scope="module")
def wide_q4_k_m(tiny_tokenizer, gguf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    """Random weights 256 wide, so that Q4_K_M really holds Q4_K and Q6_K tensors (the kernels GLIDER runs on)."""
    from transformers import Phi3Config, Phi3ForCausalLM

    config = Phi3Config(
        vocab_size=32064, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=4096, pad_token_id=tiny_tokenizer.pad_token_id,
        bos_token_id=tiny_tokenizer.bos_token_id, eos_token_id=tiny_tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        tie_word_embeddings=False,
    )
    model_dir = tiny_model.save(Phi3ForCausalLM(config), tiny_tokenizer, tmp_path_factory.mktemp("wide"))
    f32 = tiny_gguf.convert(model_dir, gguf_dir / "wide-F32.gguf")
    path = tiny_gguf.quantize(f32, gguf_dir / "wide-Q4_K_M.gguf", "Q4_K_M")
    if _quantized_kernels_crash(path):
        pytest.skip("this llama-cpp-python's quantized kernels die with SIGILL on this CPU; rebuild it with "
                    "CMAKE_ARGS=-DGGML_NATIVE=OFF")
    return path


def _identical(first: Generation, second: Generation) -> None:
    """Token for token and bit for bit: the same text, counts and distribution."""
    assert (first.text, first.prompt_tokens, first.completion_tokens, first.finish_reason) == (
        second.text, second.prompt_tokens, second.completion_tokens, second.finish_reason
    )
    assert (first.distribution, first.distribution_mass) == (second.distribution, second.distribution_mass)


class TestPrefixCache:
    pytestmark = needs_llama_cpp

    def test_the_prefix_is_the_chat_opening_and_the_instructions(
        self, llama_judge: LlamaCppJudge, taught_prompt: str
    ) -> None:
        prefix = llama_judge.prefix_ids
        assert len(prefix) == 204  # the figure the CPU notes measured with GLIDER's tokenizer
        # The chat markers are special tokens (decode leaves them out); the text starts with SPM's space.
        assert llama_judge.decode(list(prefix)).lstrip() == HEAD
        assert tuple(llama_judge.chat_ids(taught_prompt)[: len(prefix)]) == prefix
        assert "prefix cache: 204 tokens" in llama_judge.info.notes

    def test_reusable_prefix_counts_only_matching_ids(self, llama_judge: LlamaCppJudge, taught_prompt: str) -> None:
        prompts = _prompts(taught_prompt)
        assert llama_judge.reusable_prefix(llama_judge.chat_ids(prompts["taught"])) == 204
        assert 0 < llama_judge.reusable_prefix(llama_judge.chat_ids(prompts["diverges inside the head"])) < 204
        assert llama_judge.reusable_prefix(llama_judge.chat_ids(prompts["no common head"])) < 5
        assert llama_judge.reusable_prefix(list(llama_judge.prefix_ids)) == 203  # one id is left to evaluate

    @pytest.mark.parametrize("kind", ["F32", "Q4_K_M"])
    def test_grades_are_identical_to_a_cold_run(
        self, kind: str, trained_gguf: Path, tiny_q4_k_m: Path, taught_prompt: str
    ) -> None:
        """Grade A, B, ... then A again on one judge; each equals a cold run of a fresh judge, bit for bit."""
        path = {"F32": trained_gguf, "Q4_K_M": tiny_q4_k_m}[kind]
        prompts = _prompts(taught_prompt)
        warm = create_backend("llamacpp", model=str(path), device="cpu")
        order = ["taught", "other data", "long data", "taught", "diverges inside the head", "taught",
                 "no common head", "other data"]
        previous_full = False
        for name in order:
            scale = (0, 10) if name == "taught" else (0, 1)
            actual = warm.generate(prompts[name], scale=scale, max_new_tokens=120)
            fresh = create_backend("llamacpp", model=str(path), device="cpu")
            _identical(actual, fresh.generate(prompts[name], scale=scale, max_new_tokens=120))
            # Reused when the previous grade left this prompt's first segment (the whole head) in the cache.
            full = warm.reusable_prefix(warm.chat_ids(prompts[name])) == 204
            assert actual.settings["prefix_cached_tokens"] == (204 if full and previous_full else 0), name
            previous_full = full
            if name == "taught":
                assert actual.text == WELL_FORMED and actual.distribution is not None
        # Without the cache the prompt is evaluated in one piece: the same grade, to rounding.
        plain = create_backend("llamacpp", model=str(path), device="cpu", prefix_cache=False)
        assert plain.prefix_ids == () and "prefix cache off" in plain.info.notes
        reference = warm.generate(prompts["taught"], scale=(0, 10))
        unsplit = plain.generate(prompts["taught"], scale=(0, 10))
        assert unsplit.text == reference.text and unsplit.settings["prefix_cached_tokens"] == 0
        for value, probability in reference.distribution.items():
            assert unsplit.distribution[value] == pytest.approx(probability, abs=1e-6)

    def test_logits_are_bitwise_equal_with_q4_k_kernels(self, wide_q4_k_m: Path, taught_prompt: str) -> None:
        import numpy as np

        prompts = _prompts(taught_prompt)
        warm = create_backend("llamacpp", model=str(wide_q4_k_m), device="cpu")
        for name in ("taught", "long data", "other data", "taught"):
            ids = warm.chat_ids(prompts[name])
            with warm.generation_lock:
                warm._prefill(ids)
                logits = warm._last_logits().copy()
            fresh = create_backend("llamacpp", model=str(wide_q4_k_m), device="cpu")
            with fresh.generation_lock:
                assert fresh._prefill(ids) == 0
                assert np.array_equal(logits, fresh._last_logits()), name
        generation = warm.generate(prompts["long data"], max_new_tokens=16)
        assert generation.settings["prefix_cached_tokens"] == 204
        cold = create_backend("llamacpp", model=str(wide_q4_k_m), device="cpu").generate(prompts["long data"],
                                                                                      max_new_tokens=16)
        _identical(generation, cold)

    def test_a_stream_left_early_does_not_spoil_the_next(self, trained_gguf: Path, taught_prompt: str) -> None:
        judge = create_backend("llamacpp", model=str(trained_gguf), device="cpu")
        stream = judge.stream(taught_prompt, scale=(0, 1))
        next(stream)
        stream.close()
        generation = judge.generate(taught_prompt, scale=(0, 1))
        assert generation.text == WELL_FORMED and generation.settings["prefix_cached_tokens"] == 204

    def test_the_cache_shortens_the_time_to_the_first_token(self, trained_gguf: Path, taught_prompt: str) -> None:
        """Measured, not asserted (the machine is shared): the reused prompt head costs nothing to evaluate."""
        judge = create_backend("llamacpp", model=str(trained_gguf), device="cpu")
        prompt = _prompts(taught_prompt)["long data"]
        cold = judge.generate(prompt, max_new_tokens=1)
        warm = judge.generate(prompt, max_new_tokens=1)
        assert (cold.settings["prefix_cached_tokens"], warm.settings["prefix_cached_tokens"]) == (0, 204)
        print(f"time to first token: {cold.seconds * 1000:.1f} ms cold, {warm.seconds * 1000:.1f} ms with the "
              f"prefix cached ({warm.prompt_tokens} prompt tokens)")


class TestSpeedSwitches:
    pytestmark = needs_llama_cpp

    def test_defaults_are_measured_and_loaded(self, llama_judge: LlamaCppJudge) -> None:
        import llama_cpp

        choice = llama_judge.settings_choice
        assert choice.source in ("measured", "cache") and len(choice.measurements) == 4
        assert _loaded(llama_judge) == choice.settings
        assert choice.settings.describe() in llama_judge.info.kernel
        # The switch lasts for the load only: llama-cpp-python's own defaults are untouched.
        assert llama_cpp.llama_model_default_params().use_extra_bufts is True

    def test_the_other_settings_grade_the_same(self, tiny_q4_k_m: Path, taught_prompt: str) -> None:
        import llama_cpp

        judge = create_backend("llamacpp", model=str(tiny_q4_k_m), device="cpu", flash_attn=False,
                               weight_repacking=True)
        assert judge.llm.model_params.use_extra_bufts is True
        assert judge.llm.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        assert "flash attention off, weight repacking on" in judge.info.notes
        generation = judge.generate(taught_prompt, scale=(0, 1))
        assert generation.text == WELL_FORMED and generation.distribution[1] > 0.99

    def test_q4_k_m_grades(self, tiny_q4_k_m: Path, taught_prompt: str) -> None:
        judge = create_backend("llamacpp", model=str(tiny_q4_k_m), device="cpu")
        assert judge.info.quantization == "Q4_K_M"
        generation = judge.generate(taught_prompt, scale=(0, 1))
        assert generation.text == WELL_FORMED and parse_output(generation.text, (0, 1)).score == 1

    @pytest.mark.timing
    def test_the_greedy_loop_adds_no_time_to_the_engines(self, trained_gguf: Path, taught_prompt: str) -> None:
        """Per generated token, the time spent outside llama.cpp's eval: ours against llama-cpp-python's own loop.

        Both loops call the same Llama.eval, timed here; what is left is each loop's own work (reading the
        logits, the stop check, detokenizing). One thread and the best of three, as the machine is shared.
        """
        judge = create_backend("llamacpp", model=str(trained_gguf), device="cpu", n_threads=1)
        llm = judge.llm
        inner = llm.eval
        in_eval = [0.0]

        def timed_eval(tokens: list[int]) -> None:
            started = time.perf_counter()
            inner(tokens)
            in_eval[0] += time.perf_counter() - started

        llm.eval = timed_eval
        ids = judge.chat_ids(taught_prompt)
        ours, theirs = [], []
        for _ in range(3):
            events = judge.stream(taught_prompt, max_new_tokens=200)
            next(events)  # the prompt is evaluated and the first token out: decoding starts here
            in_eval[0], started = 0.0, time.perf_counter()
            final = list(events)[-1]
            assert isinstance(final, Generation) and final.text == WELL_FORMED
            ours.append((time.perf_counter() - started - in_eval[0]) / (final.completion_tokens - 1))
            tokens = []
            for token in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
                tokens.append(token)
                if len(tokens) == 1:
                    in_eval[0], started = 0.0, time.perf_counter()
                if len(tokens) == final.completion_tokens:
                    break
            theirs.append((time.perf_counter() - started - in_eval[0]) / (len(tokens) - 1))
            assert judge.decode(tokens[:-1]) == final.text  # the same greedy tokens
            judge._cached_prefix = ()  # llm.generate used the cache its own way
        print(f"time outside llama.cpp per token: ours {min(ours) * 1e6:.0f} µs, "
              f"llama-cpp-python's generate {min(theirs) * 1e6:.0f} µs")
        assert min(ours) <= max(1.5 * min(theirs), min(theirs) + 300e-6)


def _loaded(judge: LlamaCppJudge) -> LlamaCppSettings:
    """The settings llama.cpp was loaded with, read back from its parameter structs."""
    import llama_cpp

    flash = judge.llm.context_params.flash_attn_type
    assert flash in (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED, llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
    return LlamaCppSettings(bool(judge.llm.model_params.use_extra_bufts),
                            flash == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED)


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[LlamaCppSettings, LlamaCppSettings]]:
    """Every measurement the back-end runs, as (candidate, what its measuring load really loaded)."""
    calls: list[tuple[LlamaCppSettings, LlamaCppSettings]] = []
    real = llamacpp_backend.measure

    def spy(load, settings: LlamaCppSettings, **options) -> Measurement:  # noqa: ANN001, ANN003
        def checked(candidate: LlamaCppSettings):  # noqa: ANN202
            llm = load(candidate)
            calls.append((candidate, _loaded(SimpleNamespace(llm=llm))))
            return llm

        return real(checked, settings, **options)

    monkeypatch.setattr(llamacpp_backend, "measure", spy)
    return calls


class TestMeasuredSettings:
    """llama.cpp's CPU settings chosen by a short measurement at the first start, then read from the cache."""

    pytestmark = needs_llama_cpp

    def test_measured_at_the_first_start_then_read_from_the_cache(
        self, tiny_q4_k_m: Path, tmp_path: Path, measured: list, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="core.judge"):
            first = create_backend("llamacpp", model=str(tiny_q4_k_m), device="cpu", cache_dir=str(tmp_path))
        # Each candidate once (a slow outlier once more: the machine may be busy), each load with its candidate.
        assert [candidate for candidate, _ in measured[:4]] == list(CANDIDATES)
        assert set(measured[4:]) <= set(measured[:4]) and len(measured) <= 8
        assert all(candidate == loaded for candidate, loaded in measured)
        count = len(measured)
        choice = first.settings_choice
        assert choice.source == "measured" and {m.settings for m in choice.measurements} == set(CANDIDATES)
        assert choice.cache_path is not None and choice.cache_path.parent == tmp_path / "llamacpp-settings"
        assert json.loads(choice.cache_path.read_text(encoding="utf-8"))["key"]["file"]["path"] == str(
            tiny_q4_k_m.resolve())
        assert _loaded(first) == choice.settings
        assert first.info.kernel == f"llama.cpp CPU: {choice.settings.describe()} (measured at this start)"
        assert f"llama.cpp settings: {choice.reason}" in first.info.notes
        assert f"cached at {choice.cache_path}" in choice.reason and "typical grade est." in choice.reason
        assert f"llama.cpp settings: {choice.reason}" in caplog.text
        from webapp.render import render_backend_banner

        assert f"llama.cpp CPU: {choice.settings.describe()}" in render_backend_banner(first.info)  # the Runs chip
        print(choice.reason)  # how long measuring took on the tiny GGUF, and every candidate's estimate

        second = create_backend("llamacpp", model=str(tiny_q4_k_m), device="cpu", cache_dir=str(tmp_path))
        assert len(measured) == count  # nothing measured again
        again = second.settings_choice
        assert (again.source, again.settings, again.measurements) == ("cache", choice.settings, choice.measurements)
        assert _loaded(second) == choice.settings
        assert second.info.kernel.endswith("(measured at an earlier start, cached)")
        assert any(note.startswith(f"llama.cpp settings: {choice.settings.describe()}: from the cache")
                   for note in second.info.notes)

    def test_a_changed_file_is_measured_again(self, trained_gguf: Path, tmp_path: Path, measured: list) -> None:
        model = tmp_path / "model" / "glider-tiny-F32.gguf"
        model.parent.mkdir()
        shutil.copyfile(trained_gguf, model)
        create_backend("llamacpp", model=str(model), device="cpu", cache_dir=str(tmp_path))
        count = len(measured)
        create_backend("llamacpp", model=str(model), device="cpu", cache_dir=str(tmp_path))
        assert len(measured) == count >= 4
        stat = model.stat()
        os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # as a new download would leave it
        create_backend("llamacpp", model=str(model), device="cpu", cache_dir=str(tmp_path))
        assert len(measured) >= count + 4
        assert len(list((tmp_path / "llamacpp-settings").glob("*.json"))) == 2

    def test_a_corrupt_cache_file_is_measured_again(
        self, trained_gguf: Path, tmp_path: Path, measured: list, caplog: pytest.LogCaptureFixture
    ) -> None:
        path = create_backend("llamacpp", model=str(trained_gguf), device="cpu",
                              cache_dir=str(tmp_path)).settings_choice.cache_path
        count = len(measured)
        path.write_text('{"format": 1, "digest": ', encoding="utf-8")
        with caplog.at_level(logging.WARNING):
            judge = create_backend("llamacpp", model=str(trained_gguf), device="cpu", cache_dir=str(tmp_path))
        assert "Ignoring the measured llama.cpp settings" in caplog.text
        assert len(measured) >= count + 4 and judge.settings_choice.source == "measured"
        assert len(json.loads(path.read_text(encoding="utf-8"))["measurements"]) == 4

    @pytest.mark.parametrize("settings", CANDIDATES, ids=lambda s: s.describe())
    def test_forced_settings_are_loaded_without_measuring(
        self, settings: LlamaCppSettings, tiny_q4_k_m: Path, tmp_path: Path, measured: list
    ) -> None:
        judge = create_backend("llamacpp", model=str(tiny_q4_k_m), device="cpu", cache_dir=str(tmp_path),
                               weight_repacking=settings.weight_repacking, flash_attn=settings.flash_attn)
        assert measured == [] and not (tmp_path / "llamacpp-settings").exists()
        assert _loaded(judge) == settings and judge.settings_choice.source == "forced"
        assert judge.info.kernel == f"llama.cpp CPU: {settings.describe()} (forced by the caller)"
        assert (f"flash attention {'on' if settings.flash_attn else 'off'}, weight repacking "
                f"{'on' if settings.weight_repacking else 'off'}") in judge.info.notes

    def test_measuring_off_loads_the_fixed_settings(self, trained_gguf: Path, tmp_path: Path, measured: list) -> None:
        judge = create_backend("llamacpp", model=str(trained_gguf), device="cpu", cache_dir=str(tmp_path),
                               measure_settings=False)
        assert measured == [] and _loaded(judge) == FIXED_SETTINGS
        assert judge.info.kernel == "llama.cpp CPU: weight repacking off, flash attention on (fixed, not measured)"
        # One setting forced, the other measured: only the two candidates that agree are measured.
        judge = create_backend("llamacpp", model=str(trained_gguf), device="cpu", cache_dir=str(tmp_path),
                               flash_attn=False)
        assert {candidate for candidate, _ in measured} == {c for c in CANDIDATES if not c.flash_attn}
        assert _loaded(judge).flash_attn is False and "(flash attention off forced)" in judge.settings_choice.reason

    def test_every_setting_writes_the_same_grade_on_the_trained_judge(
        self, tiny_q4_k_m: Path, taught_prompt: str
    ) -> None:
        """Greedy output of the tiny trained judge (Q4_K_M) under each candidate: the same tokens, the same grade."""
        prompts = [taught_prompt, _prompts(taught_prompt)["long data"]]
        outputs = {}
        for settings in CANDIDATES:
            judge = create_backend("llamacpp", model=str(tiny_q4_k_m), device="cpu",
                                   weight_repacking=settings.weight_repacking, flash_attn=settings.flash_attn)
            assert _loaded(judge) == settings
            outputs[settings] = [judge.generate(prompt, scale=(0, 10), max_new_tokens=120) for prompt in prompts]
        reference = outputs[FIXED_SETTINGS]
        assert reference[0].text == WELL_FORMED
        for settings, generations in outputs.items():
            for generation, expected in zip(generations, reference, strict=True):
                assert (generation.text, generation.completion_tokens, generation.finish_reason) == (
                    expected.text, expected.completion_tokens, expected.finish_reason), settings.describe()
                for value, probability in (expected.distribution or {}).items():
                    assert generation.distribution[value] == pytest.approx(probability, abs=1e-4)

    def test_what_each_setting_changes_on_real_q4_k_tensors(self, wide_q4_k_m: Path, taught_prompt: str) -> None:
        """On real Q4_K/Q6_K tensors (random weights): how far the settings move the logits. Measured and bounded.

        No setting is bit-exact against another: measured here, repacking moved the logits by ~2e-6 with flash
        attention on and ~1e-2 with it off; flash attention (another order, half-precision accumulation) by
        ~1e-2. Where two logits nearly tie, that can change a greedy token: this random model's top logits are a
        few hundredths apart, and its 120-token greedy texts under the four settings part after a few dozen
        tokens (printed, not asserted; the thread count moves them too). The trained judge's grades do not
        change (the test above), and a machine's settings are cached, so its grades stay the same from start
        to start.
        """
        import numpy as np

        prompt = _prompts(taught_prompt)["long data"]
        logits, tokens = {}, {}
        for settings in CANDIDATES:
            judge = create_backend("llamacpp", model=str(wide_q4_k_m), device="cpu",
                                   weight_repacking=settings.weight_repacking, flash_attn=settings.flash_attn)
            with judge.generation_lock:
                judge._prefill(judge.chat_ids(prompt))
                logits[settings] = judge._last_logits().copy()
            tokens[settings] = judge.tokenize(judge.generate(prompt, max_new_tokens=120).text, special=False)
        reference = FIXED_SETTINGS
        for settings in CANDIDATES:
            difference = float(np.abs(logits[settings] - logits[reference]).max())
            parted = next((i for i, (a, b) in enumerate(zip(tokens[settings], tokens[reference], strict=False))
                           if a != b), None)
            print(f"{settings.describe()} vs {reference.describe()}: logits differ by up to {difference:.1e}; greedy "
                  + ("text identical" if parted is None else f"text parts at token {parted}"))
            assert difference < 0.05


def test_a_missing_gguf_path_is_named_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError, match=r"The model path './glider-Q4_K_M.gguf' does not exist \(looked for "):
        create_backend("llamacpp", model="./glider-Q4_K_M.gguf")
