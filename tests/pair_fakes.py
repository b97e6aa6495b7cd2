"""A scripted pairwise judge for exact verdict tests and UI flow (never a product mode)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from core.errors import JudgeError
from core.judge.base import DEFAULT_MAX_NEW_TOKENS, BatchOutcome, Generation
from core.pairwise import OUTPUT_1, OUTPUT_2
from tests.fakes import ScriptedJudge
from tests.webapp_helpers import answer

PARIS = "Paris is the capital of France."
LYON = "Lyon is the capital of France."
CRITERIA = "Which of MODEL OUTPUT 1 and MODEL OUTPUT 2 answers the USER INPUT correctly?"
QUESTION = "What is the capital of France?"
UNREADABLE = "<reasoning>\n- I cannot decide.\n</reasoning>\n<score>\nboth\n</score>"


def slot_text(prompt: str, tag: str) -> str:
    """The text a pairwise prompt holds in one slot."""
    return prompt.split(f"<{tag}>\n", 1)[1].split(f"\n</{tag}>", 1)[0]


def prefers(favourite: str) -> Callable[[str, str], str]:
    """A rule: prefer whichever slot holds `favourite`, highlighting it."""
    def rule(first: str, second: str) -> str:
        score = 0 if first == favourite else 1
        return answer(f'- The output that says "{favourite}" is right.', [favourite], score)
    return rule


def always_slot(slot: int) -> Callable[[str, str], str]:
    """A rule with pure position bias: always the same slot, highlighting what sits there."""
    def rule(first: str, second: str) -> str:
        return answer(f"- Slot {slot} reads better.", [first if slot == 1 else second], slot - 1)
    return rule


def unreadable_when_first(text: str, otherwise: Callable[[str, str], str]) -> Callable[[str, str], str]:
    """A rule whose answer has no score when `text` sits in slot 1, else `otherwise`'s answer."""
    def rule(first: str, second: str) -> str:
        return UNREADABLE if first == text else otherwise(first, second)
    return rule


class PairJudge(ScriptedJudge):
    """Answers each pairwise prompt by `rule(slot 1 text, slot 2 text)`; records every batch's size."""

    def __init__(self, rule: Callable[[str, str], str]) -> None:
        super().__init__()
        self.rule = rule
        self.batches: list[int] = []

    def _generation(self, prompt: str, scale: tuple[int, int] | None) -> Generation:
        generation = super()._generation(prompt, scale)
        text = self.rule(slot_text(prompt, OUTPUT_1), slot_text(prompt, OUTPUT_2))
        return replace(generation, text=text)

    def generate_batch(self, prompts: Sequence[str], *, scales: Sequence[tuple[int, int] | None],
                       max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> list[BatchOutcome]:
        self.batches.append(len(prompts))
        outcomes: list[BatchOutcome] = []
        for prompt, scale in zip(prompts, scales, strict=True):
            try:
                outcomes.append(self.generate(prompt, scale=scale, max_new_tokens=max_new_tokens))
            except JudgeError as error:
                outcomes.append(error)
        return outcomes
