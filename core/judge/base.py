"""The judge back-end contract, its value types and the back-end registry.

A back-end turns one finished GLIDER prompt into generated text, plus (where the engine exposes
logits) the probability of each score value at the score position. Everything else — building the
prompt, parsing, span location, storage — happens outside, identically for every back-end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from core.errors import JudgeError, UnknownBackendError
from core.judge.common import DEFAULT_MAX_NEW_TOKENS, TRAINED_CONTEXT, check_batch

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "TRAINED_CONTEXT"]  # re-exported from core.judge.common


@dataclass(frozen=True)
class BackendInfo:
    """What a back-end runs, shown in the UI and stored with every judgment."""

    backend: str
    model_id: str
    revision: str | None = None
    quantization: str = "none"
    dtype: str = "unknown"
    device: str = "cpu"
    max_context: int = TRAINED_CONTEXT
    notes: tuple[str, ...] = ()
    # What multiplies the weights, in plain words, e.g. 'nf4 via bitsandbytes (native CPU kernel, AVX512-BF16
    # path)': the same settings run different routines on different CPUs; empty when there is no choice to name.
    kernel: str = ""

    def describe(self) -> str:
        """One line for banners and logs, e.g. 'PatronusAI/glider · nf4 · cpu'."""
        line = f"{self.model_id} · {self.backend} · {self.quantization} ({self.dtype}) · {self.device}"
        return f"{line} · {self.kernel}" if self.kernel else line


@dataclass(frozen=True)
class Generation:
    """The outcome of one generation: the text and what is known about how it was produced."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (a stop token) or "length" (max_new_tokens reached)
    # Probability of each score value at the score position, renormalized over the scale's values;
    # None when the answer has no score tag or the back-end exposes no logits.
    distribution: dict[int, float] | None = None
    # Probability mass the scale's values had before renormalizing (how sure the model was of *a* score).
    distribution_mass: float | None = None
    seconds: float = 0.0
    first_token_seconds: float | None = None
    warnings: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)


# A stream yields text deltas (str) as they are generated, then exactly one final Generation.
StreamEvent = str | Generation


@runtime_checkable
class JudgeBackend(Protocol):
    """The contract every judge back-end fulfils.

    `generate` and `stream` take the finished GLIDER prompt (not chat-formatted: the back-end applies
    the model's chat template). `scale` is the rubric's (min, max), used only to read the score
    distribution. Both raise ContextTooLongError before generating when the prompt cannot fit, and the
    Generation carries the context guard's warnings (core.judge.common.fit_context).

    Concurrency, the one rule: callers (the web page, the `/grade` API, the Batch tab, a study's grading,
    the CLI) may call a back-end from several threads at once and take no lock of their own. A back-end
    whose engine must run one generation at a time (an in-process model) serialises them itself, with
    the lock of `SerialBackend` held for a whole generation, batch or stream (until its final Generation);
    one that can run several at once (a server) bounds them as it sees fit.
    """

    info: BackendInfo

    def count_tokens(self, prompt: str) -> int:
        """Number of tokens of the chat-formatted prompt."""
        ...

    def generate(
        self, prompt: str, *, scale: tuple[int, int] | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    ) -> Generation:
        """Greedy generation until a stop token or max_new_tokens."""
        ...

    def stream(
        self, prompt: str, *, scale: tuple[int, int] | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    ) -> Iterator[StreamEvent]:
        """Like generate, yielding text deltas as they come and the Generation last."""
        ...


# One prompt's outcome in a batch: its Generation, or the JudgeError that stopped that prompt alone
# (ContextTooLongError for an over-long row). Errors that stop the whole batch are raised instead.
BatchOutcome = Generation | JudgeError


@runtime_checkable
class BatchingBackend(JudgeBackend, Protocol):
    """A back-end that grades several prompts at once (one padded `generate`, or concurrent requests).

    Every Generation must be what `generate` would have returned for that prompt alone (greedy decoding
    is deterministic), and outcomes come back in the order of `prompts`.
    """

    def generate_batch(
        self,
        prompts: Sequence[str],
        *,
        scales: Sequence[tuple[int, int] | None],
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    ) -> list[BatchOutcome]:
        """Greedy generation for each prompt; a failure that concerns one prompt is returned in its place."""
        ...


def generate_many(
    backend: JudgeBackend,
    prompts: Sequence[str],
    *,
    scales: Sequence[tuple[int, int] | None],
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> list[BatchOutcome]:
    """Generate for every prompt: in batches when the back-end can, else one prompt at a time."""
    check_batch(prompts, scales)
    if isinstance(backend, BatchingBackend):
        return backend.generate_batch(prompts, scales=scales, max_new_tokens=max_new_tokens)
    outcomes: list[BatchOutcome] = []
    for prompt, scale in zip(prompts, scales, strict=True):
        try:
            outcomes.append(backend.generate(prompt, scale=scale, max_new_tokens=max_new_tokens))
        except JudgeError as error:  # one bad prompt must not cost the others their grade
            outcomes.append(error)
    return outcomes


class StreamingBackend:
    """For a back-end whose `generate` is its `stream` read to the end: it writes `stream` and inherits this."""

    def stream(
        self, prompt: str, *, scale: tuple[int, int] | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    ) -> Iterator[StreamEvent]:
        raise NotImplementedError

    def generate(
        self, prompt: str, *, scale: tuple[int, int] | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    ) -> Generation:
        """Greedy generation until a stop token or max_new_tokens: `stream`'s final Generation."""
        final = None
        for event in self.stream(prompt, scale=scale, max_new_tokens=max_new_tokens):
            if isinstance(event, Generation):
                final = event
        if final is None:  # a back-end bug, not user error: say so plainly
            raise RuntimeError(f"{type(self).__name__}.stream ended without a final Generation")
        return final


class SerialBackend(StreamingBackend):
    """A back-end whose engine runs one generation at a time (see JudgeBackend's concurrency rule).

    Every generation, batch or stream holds `generation_lock` from its first step to its final Generation,
    so calls from several threads take turns on the engine; nothing outside the back-end takes it.
    """

    def __init__(self) -> None:
        self.generation_lock = threading.Lock()


BackendFactory = Callable[..., JudgeBackend]
BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str) -> Callable[[BackendFactory], BackendFactory]:
    """Class decorator adding a back-end factory to the registry under `name`."""

    def decorate(factory: BackendFactory) -> BackendFactory:
        BACKENDS[name] = factory
        return factory

    return decorate


def create_backend(name: str, **options: Any) -> JudgeBackend:
    """Build the back-end registered as `name`; UnknownBackendError lists the known names."""
    try:
        factory = BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS)) or "none"
        raise UnknownBackendError(f"Unknown judge back-end {name!r}; known back-ends: {known}.") from None
    return factory(**options)
