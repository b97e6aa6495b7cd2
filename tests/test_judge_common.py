"""core.judge.common: the facts and helpers every back-end shares, and the contract's two mixins."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator

import pytest

from core.errors import ContextTooLongError, JudgeError
from core.judge import common
from core.judge.base import Generation, SerialBackend, StreamEvent, StreamingBackend
from core.judge.common import (
    check_batch,
    combine_value_probabilities,
    constant_chat_prefix,
    fit_context,
    prompt_head,
    resolve_local_files_only,
    reusable_prefix_length,
    scale_sequences,
    trained_context_warning,
)
from core.judge.llamacpp_backend import LlamaCppJudge
from core.judge.openai_backend import OpenAIJudge
from core.judge.transformers_backend import TransformersJudge


def test_the_guard_words_the_training_warning_once_for_everyone() -> None:
    assert trained_context_warning(8192) is None
    beyond = trained_context_warning(9000)
    assert beyond == ("The prompt has 9,000 tokens, more than the 8,192 GLIDER was trained on; "
                      "scores may be less reliable.")
    assert fit_context(9000, 10, 16384) == (10, [beyond])
    assert fit_context(8192 - 64, 1024, 8192) == (64, ["max_new_tokens lowered from 1024 to 64 to fit the model's "
                                                       "context."])
    with pytest.raises(ContextTooLongError, match="at least 64 for the answer"):
        fit_context(8192 - 63, 10, 8192)


def test_batch_arguments_are_checked_in_one_place() -> None:
    check_batch(["a", "b"], [None, (0, 1)], 1)
    with pytest.raises(ValueError, match="2 prompts but 1 scales"):
        check_batch(["a", "b"], [None])
    with pytest.raises(JudgeError, match="at least 1"):
        check_batch(["a"], [None], 0)
    check_batch(["a"], [None])  # without a limit only the pairing is checked


def test_the_constant_head_is_cut_at_the_data() -> None:
    phi3 = constant_chat_prefix(lambda text: f"<|user|>\n{text}<|end|>\n<|assistant|>\n")
    assert phi3 == "<|user|>\n" + prompt_head()
    assert constant_chat_prefix(lambda text: "a template that drops the turn") == ""
    assert reusable_prefix_length([1, 2, 3, 4], (1, 2, 9)) == 2
    assert reusable_prefix_length([1, 2], (1, 2, 3)) == 1  # one id is always left to evaluate
    assert reusable_prefix_length([1, 2], ()) == 0


def test_offline_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bool] = []

    def unreachable(timeout: float = 3.0) -> bool:
        asked.append(True)
        return False

    monkeypatch.setattr(common, "hub_reachable", unreachable)
    notes: list[str] = []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_local_files_only(None, "org/model", notes, local=False) is True
    assert resolve_local_files_only(False, "org/model", notes, local=False) is False  # asked for: kept
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert resolve_local_files_only(None, "./here", notes, local=True) is False and not asked and not notes
    assert resolve_local_files_only(None, "org/model", notes, local=False) is True
    assert asked and notes == ["Hugging Face Hub unreachable: loaded from the local cache only"]


def test_values_combine_into_a_distribution_whatever_the_engine() -> None:
    # 0-10 in a Phi-3-like vocabulary: '0'..'9' are ids 0..9; 10 is '1','0'.
    sequences = scale_sequences(lambda value: [int(ch) for ch in str(value)], (0, 10), chosen=1)
    assert sequences is not None and sequences[10] == [1, 0] and sequences[1] == [1]
    assert scale_sequences(lambda value: [int(ch) for ch in str(value)], (0, 10), chosen=42) is None
    at_score = [math.log(0.05)] * 10  # ids 0..9, '1' included, each 5 %
    after_one = [math.log(0.01)] * 10
    after_one[0] = math.log(0.6)  # after '1', '0' (making 10) with 60 %, any other digit 1 % each
    rows = {(): at_score, (1,): after_one}
    read = combine_value_probabilities(
        sequences, lambda context: rows[context], lambda row, ids: sum(math.exp(row[i]) for i in ids)
    )
    assert read is not None
    distribution, mass = read
    p_ten = 0.05 * 0.6
    p_one = 0.05 * (1 - (0.6 + 9 * 0.01))  # '1' ends the number only when no digit follows
    assert mass == pytest.approx(9 * 0.05 + p_one + p_ten)
    assert distribution[10] == pytest.approx(p_ten / mass) and distribution[1] == pytest.approx(p_one / mass)
    assert sum(distribution.values()) == pytest.approx(1.0)


class Echo(StreamingBackend):
    def __init__(self, final: bool = True) -> None:
        self.final = final

    def stream(self, prompt: str, *, scale: tuple[int, int] | None = None,
               max_new_tokens: int = 1024) -> Iterator[StreamEvent]:
        yield prompt
        if self.final:
            yield Generation(prompt, 1, 1, "stop")


def test_generate_is_the_drained_stream() -> None:
    assert Echo().generate("hi") == Generation("hi", 1, 1, "stop")
    with pytest.raises(RuntimeError, match="Echo.stream ended without a final Generation"):
        Echo(final=False).generate("hi")
    for in_process in (TransformersJudge, LlamaCppJudge):
        assert issubclass(in_process, SerialBackend) and in_process.generate is StreamingBackend.generate
    assert not issubclass(OpenAIJudge, SerialBackend)  # a server runs requests side by side


def test_a_serial_backend_owns_one_lock_per_instance() -> None:
    class Engine(SerialBackend):
        pass

    first, second = Engine(), Engine()
    assert isinstance(first.generation_lock, type(threading.Lock()))
    assert first.generation_lock is not second.generation_lock
