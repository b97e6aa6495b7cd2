"""How fast a loaded judge writes on this machine: measured once at start, shown with the judge, never guessed.

The same settings run different routines on different CPUs (bitsandbytes picks its nf4 routine by CPU flag, and
without AVX512-BF16 its speed rests on PyTorch's bf16 matrix-vector product, which differed tenfold between the
two CPUs measured: BENCHMARKS.md). So the app times a short generation right after loading a judge on a CPU and
names the figure in the log and the banner; when a typical answer would take minutes it says so and what to try.
The check doubles as the first generation, which fills the prompt-head cache the first real grade then reuses.
"""

from __future__ import annotations

import dataclasses
import logging

from core.errors import GliderError
from core.judge.base import JudgeBackend
from core.prompt import build_prompt

log = logging.getLogger(__name__)

# A typical GLIDER answer (reasoning bullets, highlights, score): about 300 written tokens (issue 14's grade).
TYPICAL_ANSWER_TOKENS = 300
# Beyond this a typical answer is called slow: twice the one-minute grade the project aims for on 2 CPU cores.
SLOW_ANSWER_SECONDS = 120.0
CHECK_TOKENS = 16
# Local judges on a CPU: their speed depends on the machine. A GPU or a remote server is not checked.
CHECKED_BACKENDS = ("transformers", "llamacpp")
_FIELDS = {"CONTEXT": "The report was published in May 2024.", "MODEL OUTPUT": "It came out in 2024."}
_CRITERIA = "Is the MODEL OUTPUT faithful to the CONTEXT?"
_RUBRIC = "0: The MODEL OUTPUT is not faithful to the CONTEXT.\n1: The MODEL OUTPUT is faithful to the CONTEXT."


@dataclasses.dataclass(frozen=True)
class WritingSpeed:
    """Tokens written per second after the first one, over `tokens` tokens of one generation."""

    tokens_per_second: float
    tokens: int

    @property
    def typical_answer_seconds(self) -> float:
        return TYPICAL_ANSWER_TOKENS / self.tokens_per_second

    @property
    def slow(self) -> bool:
        return self.typical_answer_seconds > SLOW_ANSWER_SECONDS

    def describe(self, kernel: str = "") -> str:
        """The banner's line, e.g. 'Writes 7.2 tokens/s here (measured at start): a typical 300-token answer ≈ 42 s.'"""
        seconds = self.typical_answer_seconds
        duration = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
        line = (f"Writes {self.tokens_per_second:.1f} tokens/s here (measured at start): a typical "
                f"{TYPICAL_ANSWER_TOKENS}-token answer takes about {duration}.")
        if not self.slow:
            return line
        runs = f" It runs {kernel}." if kernel else ""
        return (f"{line} That is slow.{runs} On a CPU, `--quantization int4` (PyTorch's own 4-bit kernel) or the "
                "llamacpp back-end may write faster here: BENCHMARKS.md compares them per CPU.")


def measure_writing_speed(judge: JudgeBackend, tokens: int = CHECK_TOKENS) -> WritingSpeed | None:
    """Time one short GLIDER generation; None when it wrote too few tokens to time (it stopped early)."""
    prompt = build_prompt(_FIELDS, _CRITERIA, _RUBRIC)
    generation = judge.generate(prompt, max_new_tokens=tokens)
    first = generation.first_token_seconds
    writing = generation.seconds - first if first is not None else 0.0
    if generation.completion_tokens < 4 or writing <= 0:
        return None
    return WritingSpeed((generation.completion_tokens - 1) / writing, generation.completion_tokens - 1)


def check_writing_speed(judge: JudgeBackend) -> WritingSpeed | None:
    """For a local judge on a CPU: measure, log, and add the figure to the judge's info (its banner line).

    A failed check is logged and leaves the judge as it was: the judge loaded, and grading must not depend on
    the check.
    """
    info = judge.info
    if info.backend not in CHECKED_BACKENDS or not info.device.startswith("cpu"):
        return None
    try:
        speed = measure_writing_speed(judge)
    except (GliderError, RuntimeError, ValueError) as exc:
        log.warning("Could not measure the judge's writing speed at start: %s", exc)
        return None
    if speed is None:
        log.info("The judge's writing speed was not measured: the check's answer stopped after a few tokens")
        return None
    line = speed.describe(info.kernel)
    (log.warning if speed.slow else log.info)(line)
    try:
        judge.info = dataclasses.replace(info, notes=(*info.notes, line))
    except AttributeError:  # a back-end whose info is read-only keeps it; the log has the figure
        pass
    return speed
