"""Pairwise grading: which of two responses is better, asked of GLIDER in both orders.

The published GLIDER template is not changed. A comparison is a 0/1 rubric over two tagged outputs, the way
Patronus's own evaluation prompts ask it: the responses go in as <MODEL OUTPUT 1> and <MODEL OUTPUT 2>, and
score 0 means MODEL OUTPUT 1 is better, score 1 that MODEL OUTPUT 2 is (DEFAULT_PAIR_RUBRIC; a user's own
rubric must be a 0/1 scale with the same meaning).

A judge may prefer a slot rather than a response, so by default the pair is graded in both orders, (A, B)
and (B, A), in one batched generation where the back-end batches (core.grading.grade_batch). Verdicts:

- "A" or "B": both orders prefer the same response (with both_orders=False: the one order run prefers it,
  and the result says only one order was run);
- "inconsistent": the orders disagree, i.e. the judge picked the same slot both times (`slot` says which);
- "undecided": an order's answer had no readable score (a failed parse). Nothing is guessed from the order
  that was read: position consistency cannot be checked, so the reason names the failed order and what the
  other order preferred. Both judgments are kept and stored all the same.

There is no tie: GLIDER's pairwise rubric has two levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from core.errors import GliderError, InputError, RubricError
from core.grading import FieldSpan, GradeRequest, GradeResult, GradeSink, grade_batch
from core.judge.base import DEFAULT_MAX_NEW_TOKENS, JudgeBackend
from core.prompt import CONTEXT, GOLD_ANSWER, USER_INPUT, normalize_instructions, rubric_scores

OUTPUT_1, OUTPUT_2 = "MODEL OUTPUT 1", "MODEL OUTPUT 2"
PAIR_TAGS: tuple[str, ...] = (CONTEXT, USER_INPUT, OUTPUT_1, OUTPUT_2, GOLD_ANSWER)
DEFAULT_PAIR_RUBRIC = (
    "0: The MODEL OUTPUT 1 is better than MODEL OUTPUT 2.\n"
    "1: The MODEL OUTPUT 2 is better than MODEL OUTPUT 1."
)
A, B = "A", "B"
INCONSISTENT, UNDECIDED = "inconsistent", "undecided"
VERDICTS: tuple[str, ...] = (A, B, INCONSISTENT, UNDECIDED)
ORDERS: tuple[tuple[str, str], ...] = ((A, B), (B, A))  # which response sits in slot 1, slot 2


class MissingResponseError(InputError):
    """One of the two responses to compare is missing or blank."""


class PairRubricError(RubricError):
    """A pairwise rubric that is not a 0/1 scale (0: MODEL OUTPUT 1 is better, 1: MODEL OUTPUT 2 is)."""


@dataclass(frozen=True)
class PairRequest:
    """Two responses to compare under the user's pass criteria; the context fields are optional."""

    response_a: str
    response_b: str
    pass_criteria: str
    rubric: str = DEFAULT_PAIR_RUBRIC
    context: str = ""
    user_input: str = ""
    gold_answer: str = ""
    both_orders: bool = True
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    def responses(self) -> dict[str, str]:
        return {A: self.response_a, B: self.response_b}

    def grade_request(self, order: tuple[str, str]) -> GradeRequest:
        """The single-item request of one order: order[0]'s text in MODEL OUTPUT 1, order[1]'s in 2."""
        texts = self.responses()
        fields = {CONTEXT: self.context or "", USER_INPUT: self.user_input or "", OUTPUT_1: texts[order[0]],
                  OUTPUT_2: texts[order[1]], GOLD_ANSWER: self.gold_answer or ""}
        # Blank optional fields are left out, so the stored judgment holds only what was sent.
        sent = {tag: text for tag, text in fields.items() if text.strip() or tag in (OUTPUT_1, OUTPUT_2)}
        return GradeRequest(fields=sent, pass_criteria=self.pass_criteria or "",
                            rubric=self.rubric if (self.rubric or "").strip() else DEFAULT_PAIR_RUBRIC,
                            max_new_tokens=self.max_new_tokens)


@dataclass(frozen=True)
class OrderResult:
    """One order's grade: which response sat in which slot, the response its score prefers, and its spans
    re-labelled so that a span over a response names "A" or "B" (context spans keep their tag)."""

    order: tuple[str, str]
    result: GradeResult
    preferred: str | None  # "A", "B", or None when no score was read
    spans: tuple[FieldSpan, ...]

    @property
    def label(self) -> str:
        """"A,B" when A was MODEL OUTPUT 1."""
        return ",".join(self.order)

    @property
    def slot(self) -> int | None:
        """The slot the judge picked (1 or 2); None when no score was read."""
        score = self.result.judgment.score
        return None if score is None else score + 1

    def to_dict(self) -> dict[str, Any]:
        """The order's grade (core.grading.GradeResult.to_dict) with the order, its preference and mapped spans."""
        return {**self.result.to_dict(), "order": self.label, "preferred": self.preferred, "slot": self.slot,
                "spans": [vars(span) for span in self.spans]}


@dataclass(frozen=True)
class PairResult:
    """A finished comparison: the verdict, why, and each order's grade (both stored when a sink was given)."""

    request: PairRequest
    verdict: str  # one of VERDICTS
    reason: str
    orders: tuple[OrderResult, ...]

    @property
    def both_orders(self) -> bool:
        return len(self.orders) == 2

    @property
    def judgment_ids(self) -> list[int | None]:
        return [order.result.judgment_id for order in self.orders]

    @property
    def slot(self) -> int | None:
        """The slot picked in both orders when the verdict is inconsistent (position bias), else None."""
        return self.orders[0].slot if self.verdict == INCONSISTENT else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object /compare returns (keys are stable)."""
        return {"verdict": self.verdict, "reason": self.reason, "both_orders": self.both_orders,
                "slot_when_inconsistent": self.slot, "judgment_ids": self.judgment_ids,
                "orders": [order.to_dict() for order in self.orders]}


def check_pair_rubric(rubric: str) -> str:
    """The rubric to use (the default one when blank); PairRubricError unless it names exactly scores 0 and 1."""
    text = rubric if (rubric or "").strip() else DEFAULT_PAIR_RUBRIC
    scores = rubric_scores(text)
    if scores != [0, 1]:
        named = ", ".join(map(str, scores)) if scores else "none"
        raise PairRubricError(
            f"A pairwise rubric must be a 0/1 scale (scores named: {named}). Write\n{DEFAULT_PAIR_RUBRIC}")
    return text


def check_pair(request: PairRequest) -> None:
    """MissingResponseError when a response is blank; PairRubricError when the rubric is not 0/1."""
    for name, text in request.responses().items():
        if not (text or "").strip():
            raise MissingResponseError(f"Response {name} is empty: paste both responses to compare them.")
    check_pair_rubric(request.rubric)
    if not normalize_instructions(request.pass_criteria or ""):
        raise InputError("The pass criteria are empty: say what makes MODEL OUTPUT 1 or MODEL OUTPUT 2 better.")


def preferred(order: tuple[str, str], score: int | None) -> str | None:
    """The response a score prefers in this order: 0 -> slot 1's, 1 -> slot 2's; None for no score."""
    return None if score is None else order[score]


def map_spans(order: tuple[str, str], spans: Sequence[FieldSpan]) -> tuple[FieldSpan, ...]:
    """Spans over MODEL OUTPUT 1/2 re-labelled with the response that sat there; other fields' spans kept."""
    slots = {OUTPUT_1: order[0], OUTPUT_2: order[1]}
    return tuple(replace(span, field=slots.get(span.field, span.field)) for span in spans)


def decide(orders: Sequence[OrderResult]) -> tuple[str, str]:
    """(verdict, reason) from one or two orders' preferences (the rules are in the module docstring)."""
    failed = [order for order in orders if order.preferred is None]
    if failed:
        why = "; ".join(f"the {order.label} order's answer has no readable score"
                        f" ({(order.result.judgment.problems or ['no score'])[0]})" for order in failed)
        read = [f"the {order.label} order preferred {order.preferred}" for order in orders if order.preferred]
        return UNDECIDED, why + ("; " + "; ".join(read) if read else "") + "."
    if len(orders) == 1:
        only = orders[0]
        return str(only.preferred), (f"Only the {only.label} order was run (slot {only.slot}); "
                                     "position consistency was not checked.")
    first, second = orders
    if first.preferred == second.preferred:
        return str(first.preferred), f"Both orders prefer {first.preferred}."
    return INCONSISTENT, (f"The orders disagree: the judge picked slot {first.slot} both times "
                          f"({first.label} preferred {first.preferred}, {second.label} preferred {second.preferred}).")


def _order_result(order: tuple[str, str], result: GradeResult) -> OrderResult:
    # The stored reproducibility record says which response sat in which slot.
    marked = replace(result, repro={**result.repro, "pairwise": {"order": ",".join(order), OUTPUT_1: order[0],
                                                                  OUTPUT_2: order[1]}})
    return OrderResult(order, marked, preferred(order, result.judgment.score), map_spans(order, result.spans))


def compare_many(backend: JudgeBackend, requests: Sequence[PairRequest],
                 store: GradeSink | None = None) -> list[PairResult | GliderError]:
    """Compare many pairs with one batched generation of all their orders; each pair's error in its place.

    Every request must share one max_new_tokens (as core.grading.grade_batch). Errors that stop the whole
    batch (the judge failed) are raised.
    """
    outcomes: list[PairResult | GliderError | None] = [None] * len(requests)
    asked: list[tuple[int, tuple[str, str], GradeRequest]] = []
    for index, pair in enumerate(requests):
        try:
            check_pair(pair)
        except InputError as error:
            outcomes[index] = error
            continue
        for order in ORDERS if pair.both_orders else ORDERS[:1]:
            asked.append((index, order, pair.grade_request(order)))
    graded = grade_batch(backend, [grade for _, _, grade in asked]) if asked else []
    by_pair: dict[int, list[OrderResult]] = {}
    for (index, order, _), outcome in zip(asked, graded, strict=True):
        if isinstance(outcome, GliderError):
            outcomes[index] = outcomes[index] or outcome  # the pair's first error
        else:
            by_pair.setdefault(index, []).append(_order_result(order, outcome))
    for index, orders in by_pair.items():
        if outcomes[index] is not None:
            continue  # one order could not be graded (e.g. too long): the pair is that error
        if store is not None:
            orders = [replace(order, result=replace(order.result, judgment_id=store.save_grade(order.result)))
                      for order in orders]
        verdict, reason = decide(orders)
        outcomes[index] = PairResult(requests[index], verdict, reason, tuple(orders))
    return [outcome for outcome in outcomes if outcome is not None]


def compare(backend: JudgeBackend, request: PairRequest, store: GradeSink | None = None) -> PairResult:
    """Compare two responses (both orders unless request.both_orders is False); raises the pair's typed error."""
    outcome = compare_many(backend, [request], store)[0]
    if isinstance(outcome, GliderError):
        raise outcome
    return outcome
