"""The transformers back-end, for real: tiny Phi-3 judges saved to disk and loaded like a user's model."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.errors import ContextTooLongError, ModelLoadError, UnknownBackendError
from core.judge import BACKENDS, Generation, JudgeBackend, create_backend
from core.judge.bitsandbytes_cpu import (
    BNB_HUB_KERNEL_REPO,
    BNB_HUB_KERNEL_WARNING,
    bnb_cpu_path,
    detect_bnb_cpu_path,
    import_bitsandbytes,
)
from core.judge.transformers_backend import TransformersJudge
from core.parse import parse_output
from tests.fakes import WELL_FORMED
from tests.test_prompt import real_tokenizer


def test_registry_lists_transformers_and_rejects_unknown_names() -> None:
    assert "transformers" in BACKENDS
    with pytest.raises(UnknownBackendError, match="known back-ends: .*transformers"):
        create_backend("no-such-engine")


def test_trained_judge_reproduces_a_glider_answer(trained_judge: TransformersJudge, taught_prompt: str) -> None:
    assert isinstance(trained_judge, JudgeBackend)
    generation = trained_judge.generate(taught_prompt, scale=(0, 1))
    assert generation.text == WELL_FORMED
    assert generation.finish_reason == "stop"
    assert generation.prompt_tokens == trained_judge.count_tokens(taught_prompt)
    answer_tokens = len(trained_judge.tokenizer(WELL_FORMED, add_special_tokens=False)["input_ids"])
    assert generation.completion_tokens == answer_tokens + 1  # the answer and its <|end|>
    judgment = parse_output(generation.text, (0, 1))
    assert (judgment.status, judgment.score) == ("ok", 1)


def test_stream_yields_text_then_the_same_generation(trained_judge: TransformersJudge, taught_prompt: str) -> None:
    events = list(trained_judge.stream(taught_prompt, scale=(0, 1)))
    deltas = [e for e in events if isinstance(e, str)]
    assert len(deltas) > 3 and isinstance(events[-1], Generation)
    assert "".join(deltas) == events[-1].text == WELL_FORMED
    assert events[-1].first_token_seconds is not None and events[-1].first_token_seconds <= events[-1].seconds


def _reference_next_probs(judge: TransformersJudge, ids: list[int]):  # noqa: ANN202
    """Next-token probabilities from one plain forward pass over the whole sequence (no cache, no generate)."""
    import torch

    with torch.inference_mode():
        logits = judge.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    return torch.softmax(logits, dim=-1)


def _score_prefix(judge: TransformersJudge, prompt: str, generation: Generation) -> list[int]:
    """Prompt ids + generated ids up to (not including) the score's first token."""
    generated = judge.tokenizer(generation.text, add_special_tokens=False)["input_ids"]
    step = judge.scores.score_step(generated)
    assert step is not None
    return judge.chat_ids(prompt) + generated[:step]


def test_score_distribution_matches_an_independent_forward_pass(
    trained_judge: TransformersJudge, taught_prompt: str
) -> None:
    generation = trained_judge.generate(taught_prompt, scale=(0, 1))
    assert generation.distribution is not None and set(generation.distribution) == {0, 1}
    assert math.isclose(sum(generation.distribution.values()), 1.0, rel_tol=1e-9)
    assert max(generation.distribution, key=generation.distribution.get) == 1  # agrees with the written score
    probs = _reference_next_probs(trained_judge, _score_prefix(trained_judge, taught_prompt, generation))
    zero, one = (float(probs[trained_judge.tokenizer.convert_tokens_to_ids(d)]) for d in "01")
    assert generation.distribution[1] == pytest.approx(one / (zero + one), abs=1e-5)
    assert generation.distribution_mass == pytest.approx(zero + one, rel=1e-3)


def test_multi_token_scores_use_the_cache_and_match_a_forward_pass(
    trained_judge: TransformersJudge, taught_prompt: str
) -> None:
    """On 0-10, '1' and '10' share a first token: P(1) = P('1')·P(no digit next), P(10) = P('1')·P('0'|'1')."""
    generation = trained_judge.generate(taught_prompt, scale=(0, 10))
    dist = generation.distribution
    assert dist is not None and set(dist) == set(range(11))
    prefix = _score_prefix(trained_judge, taught_prompt, generation)
    digit = {d: trained_judge.tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)}
    first = _reference_next_probs(trained_judge, prefix)
    after_one = _reference_next_probs(trained_judge, prefix + [digit[1]])
    p_more = float(sum(after_one[t] for t in digit.values()))
    expected = {d: float(first[digit[d]]) for d in range(10)}
    expected[10] = float(first[digit[1]] * after_one[digit[0]])
    expected[1] = float(first[digit[1]]) * (1 - p_more)
    total = sum(expected.values())
    for value in range(11):
        assert dist[value] == pytest.approx(expected[value] / total, abs=1e-5), value


def test_no_distribution_without_a_score(untrained_model_dir: Path, taught_prompt: str) -> None:
    judge = create_backend("transformers", model=str(untrained_model_dir), quantization="none")
    generation = judge.generate(taught_prompt, scale=(0, 1), max_new_tokens=8)
    assert generation.completion_tokens == 8 and generation.finish_reason == "length"
    assert generation.distribution is None  # random weights write no <score>; nothing is invented


def test_nf4_quantized_load_generates(
    trained_model_dir: Path, taught_prompt: str, caplog: pytest.LogCaptureFixture
) -> None:
    bnb = import_bitsandbytes()
    with caplog.at_level(logging.INFO, logger="core.judge.transformers_backend"):
        judge = create_backend("transformers", model=str(trained_model_dir), quantization="nf4")
    assert any(r.getMessage().startswith("Loaded judge") and judge.info.kernel in r.getMessage()
               for r in caplog.records)
    assert judge.info.quantization == "nf4" and judge.info.device == "cpu"
    # The info, the start log line and the banner name the 4-bit routine this CPU runs.
    assert judge.info.kernel == detect_bnb_cpu_path() and judge.info.kernel.startswith("nf4 via bitsandbytes (")
    assert judge.info.kernel in judge.info.describe()
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in judge.model.modules())
    events = list(judge.stream(taught_prompt, scale=(0, 1), max_new_tokens=120))
    final = events[-1]
    assert isinstance(final, Generation) and "".join(e for e in events[:-1]) == final.text
    # Four-bit weights of a 64-wide model still carry the taught answer.
    judgment = parse_output(final.text, (0, 1))
    assert judgment.score == 1, final.text
    assert final.distribution is not None and final.distribution[1] > 0.5


@pytest.mark.parametrize(("native", "bf16", "expected"), [
    (True, True, "nf4 via bitsandbytes (native CPU kernel, AVX512-BF16 path)"),
    (True, False, "nf4 via bitsandbytes (native unpack + PyTorch matmul, no AVX512-BF16)"),
    (False, True, "nf4 via bitsandbytes (PyTorch fallback, no native library: slow)"),
    (False, False, "nf4 via bitsandbytes (PyTorch fallback, no native library: slow)"),
])
def test_the_bitsandbytes_cpu_routine_follows_the_cpu_flags(
    monkeypatch: pytest.MonkeyPatch, native: bool, bf16: bool, expected: str
) -> None:
    import bitsandbytes.cextension
    import bitsandbytes.functional

    assert bnb_cpu_path(native, bf16) == expected
    lib = bitsandbytes.cextension.lib if native else bitsandbytes.cextension.ErrorHandlerMockBNBNativeLibrary("gone")
    monkeypatch.setattr(bitsandbytes.cextension, "lib", lib)
    monkeypatch.setattr(bitsandbytes.functional, "has_avx512bf16", lambda: bf16)
    assert detect_bnb_cpu_path() == expected


# A fresh interpreter loads the tiny nf4 judge through create_backend, as app.py does. "guarded": as if online
# (HF_HUB_OFFLINE=0), with kernels.get_kernel and every internet connection made to fail and be recorded.
# "plain": bitsandbytes imported directly first and offline, i.e. how every start ran before the fix.
_NF4_START = r"""
import json, logging, socket, sys, warnings
mode, model_dir, prompt_file = sys.argv[1:4]
records, calls = [], []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(f"{record.name}: {record.getMessage()}")
logging.getLogger().addHandler(Keep())
logging.getLogger().setLevel(logging.WARNING)
warnings.simplefilter("always")
if mode == "guarded":
    import kernels
    def refuse(*args, **kwargs):
        calls.append(f"get_kernel{args}")
        raise AssertionError("kernels.get_kernel was called")
    kernels.get_kernel = refuse
    connect = socket.socket.connect
    def no_network(self, address, *rest):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            calls.append(f"connect {address}")
            raise OSError("no network in this test")
        return connect(self, address, *rest)
    socket.socket.connect = no_network
else:
    import bitsandbytes  # noqa: F401
from core.judge import create_backend
with warnings.catch_warnings(record=True) as caught:
    judge = create_backend("transformers", model=model_dir, quantization="auto", quantized_cache=False)
    out = judge.generate(open(prompt_file).read(), scale=(0, 1), max_new_tokens=120)
print(json.dumps({"text": out.text, "ids": judge.tokenizer(out.text, add_special_tokens=False)["input_ids"],
                  "distribution": out.distribution, "kernel": judge.info.kernel, "calls": calls,
                  "records": records + [str(w.message) for w in caught]}))
"""


def _start_nf4_judge(mode: str, model_dir: Path, prompt_file: Path, offline: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": offline, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", _NF4_START, mode, str(model_dir), str(prompt_file)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_nf4_start_asks_the_hub_for_no_kernel_and_writes_the_same_tokens(
    trained_model_dir: Path, taught_prompt: str, tmp_path: Path
) -> None:
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text(taught_prompt)
    guarded = _start_nf4_judge("guarded", trained_model_dir, prompt_file, offline="0")
    assert guarded["calls"] == []  # no kernels.get_kernel, no connection
    assert not [r for r in guarded["records"] if "kernels" in r or BNB_HUB_KERNEL_REPO in r], guarded["records"]
    before = _start_nf4_judge("plain", trained_model_dir, prompt_file, offline="1")
    if "AVX512-BF16" in before["kernel"]:  # the CPUs on which bitsandbytes tries the Hub when imported plainly
        assert any(BNB_HUB_KERNEL_WARNING in r for r in before["records"]), before["records"]
    assert guarded["kernel"] == before["kernel"]
    assert (guarded["text"], guarded["ids"], guarded["distribution"]) == (
        before["text"], before["ids"], before["distribution"])
    assert parse_output(guarded["text"], (0, 1)).score == 1


def test_int8_quantized_load_generates(trained_model_dir: Path, taught_prompt: str) -> None:
    import bitsandbytes as bnb

    judge = create_backend("transformers", model=str(trained_model_dir), quantization="int8")
    assert judge.info.quantization == "int8"
    assert any(isinstance(m, bnb.nn.Linear8bitLt) for m in judge.model.modules())
    generation = judge.generate(taught_prompt, max_new_tokens=6)
    assert generation.completion_tokens >= 1 and generation.text


def test_context_guard_refuses_before_generating(trained_judge: TransformersJudge) -> None:
    huge = {"MODEL OUTPUT": "word " * 20_000}
    from core.prompt import build_prompt

    prompt = build_prompt(huge, "Is it fine?", "0: no\n1: yes")
    assert trained_judge.count_tokens(prompt) > trained_judge.max_context
    with pytest.raises(ContextTooLongError, match="reads at most 16,384"):
        trained_judge.generate(prompt)
    with pytest.raises(ContextTooLongError):
        next(iter(trained_judge.stream(prompt)))


def test_context_guard_warns_past_the_trained_length(trained_judge: TransformersJudge) -> None:
    from core.prompt import build_prompt

    prompt = build_prompt({"MODEL OUTPUT": "word " * 8_500}, "Is it fine?", "0: no\n1: yes")
    generation = trained_judge.generate(prompt, max_new_tokens=2)
    assert generation.prompt_tokens > 8192
    assert any("8,192" in warning for warning in generation.warnings)


def test_max_new_tokens_is_capped_to_the_remaining_context(trained_judge: TransformersJudge) -> None:
    from core.prompt import build_prompt

    prompt = build_prompt({"MODEL OUTPUT": "word " * 15_800}, "Is it fine?", "0: no\n1: yes")
    tokens = trained_judge.count_tokens(prompt)
    assert tokens + 1024 > trained_judge.max_context >= tokens + 64
    generation = trained_judge.generate(prompt, max_new_tokens=1024)
    assert generation.completion_tokens <= trained_judge.max_context - tokens
    assert any("max_new_tokens lowered" in warning for warning in generation.warnings)


def test_concurrent_callers_take_turns(trained_judge: TransformersJudge, taught_prompt: str) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def grade() -> None:
        try:
            results.append(trained_judge.generate(taught_prompt, max_new_tokens=200).text)
        except BaseException as exc:  # noqa: BLE001 - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=grade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and results == [WELL_FORMED] * 3


@real_tokenizer
def test_real_tokenizer_ids_and_stop_tokens(trained_judge: TransformersJudge) -> None:
    assert trained_judge.chat_ids("PROMPT") == [32010, 349, 3491, 7982, 32007, 32001]
    assert trained_judge.stop_token_ids == [32007, 32001, 32000]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "/nonexistent/glider"}, "does not exist"),
        ({"model": "PatronusAI/definitely-not-a-model"}, "offline|--model"),
        ({"model": "PatronusAI/glider", "quantization": "fp3"}, "Unknown quantization"),
        ({"model": "PatronusAI/glider", "device": "cuda"}, "CUDA is not available"),
    ],
)
def test_load_failures_raise_actionable_errors(options: dict[str, str], message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        create_backend("transformers", **options)


def test_directory_without_weights_is_explained(tmp_path: Path, tiny_tokenizer) -> None:  # noqa: ANN001
    tiny_tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not a loadable model directory"):
        create_backend("transformers", model=str(tmp_path), quantization="none")


def test_out_of_memory_while_loading_is_explained() -> None:
    from core.judge.transformers_backend import _explain_load_failure

    error = _explain_load_failure("PatronusAI/glider", RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert isinstance(error, ModelLoadError) and "--quantization nf4" in str(error)
    assert "Not enough memory" in str(_explain_load_failure("PatronusAI/glider", MemoryError()))


@pytest.mark.parametrize("offline", [True, False])
def test_the_download_advice_uses_the_hf_command(offline: bool) -> None:
    """`huggingface-cli` is gone from the pinned huggingface_hub; `hf download` is its replacement."""
    from core.judge.transformers_backend import _explain_load_failure

    message = str(_explain_load_failure("PatronusAI/glider", OSError("cannot reach the Hub"), offline=offline))
    assert "hf download PatronusAI/glider --local-dir ./glider" in message
    assert "huggingface-cli" not in message


def test_a_missing_model_path_is_named_as_given_and_where_it_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError) as caught:
        create_backend("transformers", model="./glidr")
    assert f"The model path './glidr' does not exist (looked for {tmp_path / 'glidr'})" in str(caught.value)
    assert "transformers model" not in str(caught.value)
