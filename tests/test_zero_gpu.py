"""ZeroGPU (webapp.zero_gpu): the GPU time each call asks for is computed from its own request.

The `spaces` package exists only on Hugging Face Spaces, so the wrapping is tested with a fake `spaces`
module put in sys.modules. It does what the real `spaces.GPU(duration=callable)` is documented to do: call
the duration function with the wrapped function's own arguments before running it.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core.judge.base import Generation
from tests.fakes import ScriptedJudge
from tests.webapp_helpers import BatchingJudge
from webapp.main import _on_zero_gpu
from webapp.zero_gpu import MAX_DURATION_S, MIN_DURATION_S, estimate_seconds


class FakeSpaces:
    """`spaces.GPU(duration=...)` as a decorator that records the duration asked for on each call."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    def GPU(self, duration: int | Callable[..., int] = 60) -> Callable[[Callable[..., Any]], Callable[..., Any]]:  # noqa: N802
        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            def called(*args: Any, **kwargs: Any) -> Any:
                seconds = duration(*args, **kwargs) if callable(duration) else duration
                self.asked.append((fn.__name__, int(seconds)))
                return fn(*args, **kwargs)
            return called
        return wrap


@pytest.fixture
def fake_spaces(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSpaces]:
    fake = FakeSpaces()
    module = types.ModuleType("spaces")
    module.GPU = fake.GPU  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spaces", module)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    yield fake


def test_estimate_grows_with_the_request_and_stays_in_bounds() -> None:
    base = estimate_seconds(600, 1024)
    assert estimate_seconds(6000, 1024) > base  # a longer prompt
    assert estimate_seconds(600, 2048) > base > estimate_seconds(600, 256)  # more tokens to write
    assert estimate_seconds(600 * 8, 1024, batch_size=8) > base  # a batch
    assert estimate_seconds(0, 1) == MIN_DURATION_S
    assert estimate_seconds(100_000, 100_000, batch_size=64) == MAX_DURATION_S
    assert base < 180  # the default request asks for less than the fixed 180 s it replaced


def test_generate_and_stream_ask_for_their_own_duration(fake_spaces: FakeSpaces) -> None:
    judge = _on_zero_gpu(ScriptedJudge())
    prompt = "word " * 700
    assert isinstance(judge.generate(prompt, scale=(0, 1), max_new_tokens=256), Generation)
    events = list(judge.stream(prompt, scale=(0, 1), max_new_tokens=2048))
    assert isinstance(events[-1], Generation)
    assert fake_spaces.asked == [("generate", estimate_seconds(700, 256)), ("stream", estimate_seconds(700, 2048))]
    assert fake_spaces.asked[0][1] < fake_spaces.asked[1][1]


def test_a_batch_asks_for_its_rows(fake_spaces: FakeSpaces) -> None:
    judge = _on_zero_gpu(BatchingJudge(delay=0))
    prompts = ["<MODEL OUTPUT>\na b c\n</MODEL OUTPUT>"] * 4
    outcomes = judge.generate_batch(prompts, scales=[(0, 1)] * 4, max_new_tokens=512)  # type: ignore[attr-defined]
    assert len(outcomes) == 4
    tokens = sum(len(prompt.split()) for prompt in prompts)
    assert fake_spaces.asked == [("generate_batch", estimate_seconds(tokens, 512, batch_size=4))]
    assert fake_spaces.asked[0][1] > estimate_seconds(tokens // 4, 512)


def test_without_zero_gpu_nothing_is_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    judge = ScriptedJudge()
    generate = judge.generate
    assert _on_zero_gpu(judge) is judge and judge.generate == generate
