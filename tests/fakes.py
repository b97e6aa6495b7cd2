"""A scripted judge back-end for UI-flow tests. It lives in tests/ only: it is never a product mode."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from core.errors import ContextTooLongError
from core.judge.base import DEFAULT_MAX_NEW_TOKENS, BackendInfo, Generation, StreamEvent

WELL_FORMED = """<reasoning>
- The response states that "Paris is the capital of France", which the context supports.
- It adds nothing the context does not say.
</reasoning>
<highlight>
['Paris is the capital of France', 'capital']
</highlight>
<score>
1
</score>"""


class ScriptedJudge:
    """Returns a fixed answer, streamed in small chunks, and records every prompt it was given."""

    def __init__(
        self,
        answer: str = WELL_FORMED,
        distribution: dict[int, float] | None = None,
        max_prompt_chars: int = 200_000,
        chunk_size: int = 16,
    ) -> None:
        self.answer = answer
        self.distribution = distribution if distribution is not None else {0: 0.1, 1: 0.9}
        self.max_prompt_chars = max_prompt_chars
        self.chunk_size = chunk_size
        self.prompts: list[str] = []
        self._lock = threading.Lock()
        self.info = BackendInfo(backend="scripted", model_id="tests/scripted-judge", quantization="none",
                                dtype="n/a", device="cpu")

    def count_tokens(self, prompt: str) -> int:
        return len(prompt.split())

    def _check(self, prompt: str) -> None:
        if len(prompt) > self.max_prompt_chars:
            raise ContextTooLongError(
                f"The prompt has {len(prompt):,} characters; the limit is {self.max_prompt_chars:,}."
            )
        with self._lock:
            self.prompts.append(prompt)

    def _generation(self, prompt: str, scale: tuple[int, int] | None) -> Generation:
        dist = None
        if scale is not None and self.distribution:
            dist = {k: v for k, v in self.distribution.items() if scale[0] <= k <= scale[1]} or None
        return Generation(text=self.answer, prompt_tokens=self.count_tokens(prompt),
                          completion_tokens=len(self.answer.split()), finish_reason="stop",
                          distribution=dist, distribution_mass=1.0 if dist else None, seconds=0.001,
                          first_token_seconds=0.0005)

    def generate(self, prompt: str, *, scale: tuple[int, int] | None = None,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> Generation:
        self._check(prompt)
        return self._generation(prompt, scale)

    def stream(self, prompt: str, *, scale: tuple[int, int] | None = None,
               max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> Iterator[StreamEvent]:
        self._check(prompt)
        for i in range(0, len(self.answer), self.chunk_size):
            yield self.answer[i:i + self.chunk_size]
        yield self._generation(prompt, scale)
