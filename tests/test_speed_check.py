"""The writing-speed check at start: the measured figure in the judge's info and log; slow paths named."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from core.errors import JudgeError
from core.judge.base import BackendInfo, Generation
from core.judge.speed_check import (
    SLOW_ANSWER_SECONDS,
    TYPICAL_ANSWER_TOKENS,
    WritingSpeed,
    check_writing_speed,
    measure_writing_speed,
)
from tests.fakes import ScriptedJudge


class TimedJudge(ScriptedJudge):
    """Reports a generation of `tokens` tokens that took `seconds`, the first after `first` seconds."""

    def __init__(self, tokens: int, seconds: float, first: float | None, backend: str = "transformers",
                 device: str = "cpu") -> None:
        super().__init__()
        self.timing = (tokens, seconds, first)
        self.info = BackendInfo(backend=backend, model_id="tests/timed", device=device, notes=("loaded in 1.0 s",),
                                kernel="nf4 via bitsandbytes (native unpack + PyTorch matmul, no AVX512-BF16)")
        self.max_new_tokens: list[int] = []

    def generate(self, prompt: str, *, scale: tuple[int, int] | None = None, max_new_tokens: int = 0) -> Generation:
        self._check(prompt)
        self.max_new_tokens.append(max_new_tokens)
        tokens, seconds, first = self.timing
        return Generation(text="x", prompt_tokens=10, completion_tokens=tokens, finish_reason="length",
                          seconds=seconds, first_token_seconds=first)


def test_speed_counts_the_tokens_after_the_first() -> None:
    judge = TimedJudge(tokens=16, seconds=3.5, first=0.5)
    speed = measure_writing_speed(judge)
    assert speed == WritingSpeed(tokens_per_second=5.0, tokens=15)
    assert judge.max_new_tokens == [16]
    assert judge.prompts[0].startswith("Analyze the following pass criteria") and "MODEL OUTPUT" in judge.prompts[0]


@pytest.mark.parametrize(("tokens", "seconds", "first"), [(3, 1.0, 0.2), (16, 1.0, None), (16, 0.5, 0.5)])
def test_nothing_to_time_gives_no_figure(tokens: int, seconds: float, first: float | None) -> None:
    assert measure_writing_speed(TimedJudge(tokens, seconds, first)) is None


def test_a_fast_judge_gets_its_figure_in_the_banner_notes() -> None:
    judge = TimedJudge(tokens=16, seconds=2.5, first=0.5)  # 7.5 tokens/s: 300 tokens in 40 s
    speed = check_writing_speed(judge)
    assert speed is not None and not speed.slow and speed.typical_answer_seconds == pytest.approx(40.0)
    assert judge.info.notes[0] == "loaded in 1.0 s"
    assert judge.info.notes[1] == (f"Writes 7.5 tokens/s here (measured at start): a typical {TYPICAL_ANSWER_TOKENS}"
                                   "-token answer takes about 40 s.")


def test_a_slow_judge_is_named_slow_with_its_figure_and_what_to_try(caplog: pytest.LogCaptureFixture) -> None:
    judge = TimedJudge(tokens=16, seconds=37.5, first=0.0)  # 0.4 tokens/s, as bitsandbytes' other path here
    with caplog.at_level(logging.INFO, logger="core.judge.speed_check"):
        speed = check_writing_speed(judge)
    assert speed is not None and speed.slow and speed.typical_answer_seconds > SLOW_ANSWER_SECONDS
    note = judge.info.notes[-1]
    assert note.startswith("Writes 0.4 tokens/s here (measured at start)") and "about 12.5 min" in note
    assert "no AVX512-BF16" in note and "--quantization int4" in note and "llamacpp" in note
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [note]


@pytest.mark.parametrize(("backend", "device"), [("openai", "remote"), ("transformers", "cuda:0"), ("scripted", "cpu")])
def test_only_local_judges_on_a_cpu_are_checked(backend: str, device: str) -> None:
    judge = TimedJudge(tokens=16, seconds=2.5, first=0.5, backend=backend, device=device)
    before = judge.info
    assert check_writing_speed(judge) is None
    assert judge.info == before and judge.prompts == []  # nothing generated


def test_a_failing_check_leaves_the_judge_as_it_loaded(caplog: pytest.LogCaptureFixture) -> None:
    judge = TimedJudge(tokens=16, seconds=2.5, first=0.5)

    def broken(prompt: str, **_: object) -> Generation:
        raise JudgeError("the model ran out of memory")

    judge.generate = broken  # type: ignore[method-assign]
    before = judge.info
    with caplog.at_level(logging.WARNING, logger="core.judge.speed_check"):
        assert check_writing_speed(judge) is None
    assert judge.info == before
    assert "Could not measure the judge's writing speed at start: the model ran out of memory" in caplog.text


def test_the_real_tiny_judge_is_measured_through_its_own_generation(untrained_model_dir: Path) -> None:
    from core.judge import create_backend

    judge = create_backend("transformers", model=str(untrained_model_dir), quantization="none", device="cpu")
    judge.stop_token_ids = []  # random weights could write a stop token early; this check needs the full count
    loaded = judge.info
    speed = check_writing_speed(judge)
    assert speed is not None and speed.tokens == 15 and speed.tokens_per_second > 0
    assert judge.info == dataclasses.replace(loaded, notes=(*loaded.notes, speed.describe(loaded.kernel)))
    assert judge._prefix_state is not None  # the check filled the prompt-head cache the first grade reuses
