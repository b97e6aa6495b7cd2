"""Pairwise studies: items that hold two responses, labels that choose one of them (or a tie), blind to the slot.

A pairwise study's items carry RESPONSE A and RESPONSE B (and optionally the context tags). Annotators see the two
responses side by side as "Response 1" and "Response 2"; which of A and B sits on the left is drawn per annotator
and item (`shown_order`: a stable hash, so a reload shows the same order) and recorded with the label, so a human
position bias shows in the data and never in the item's terms. A label is stored in the item's terms: "A", "B",
or, where the study allows it, "tie"; its score column holds the choice's index in CHOICES.

The judge compares the two responses in both orders (core.pairwise); a judge run keeps the (A, B) order's
judgment in run_judgments and the (B, A) order's in run_second_orders (migration 8).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from core.errors import StudyInputError
from core.pairwise import (
    DEFAULT_PAIR_RUBRIC,
    INCONSISTENT,
    UNDECIDED,
    A,
    B,
    PairRequest,
    PairRubricError,
    check_pair_rubric,
)
from core.prompt import CONTEXT, GOLD_ANSWER, USER_INPUT

SINGLE, PAIRWISE = "single", "pairwise"
MODES: tuple[str, ...] = (SINGLE, PAIRWISE)
RESPONSE_A, RESPONSE_B = "RESPONSE A", "RESPONSE B"
PAIR_STUDY_TAGS: tuple[str, ...] = (CONTEXT, USER_INPUT, RESPONSE_A, RESPONSE_B, GOLD_ANSWER)
TIE: Final = "tie"
CHOICES: tuple[str, ...] = (A, B, TIE)  # a pairwise label's score is its choice's index here
ORDERS: tuple[str, ...] = ("AB", "BA")  # shown_order values: "AB" means response A was shown first (slot 1)
SLOT_1, SLOT_2 = "1", "2"
SLOTS: tuple[str, ...] = (SLOT_1, SLOT_2, TIE)  # what an annotator clicks: a slot, or "tie"


def check_mode(mode: object) -> str:
    """"single" or "pairwise"; StudyInputError otherwise."""
    if mode not in MODES:
        raise StudyInputError(f"A study's mode is 'single' or 'pairwise', not {mode!r}.")
    return str(mode)


def check_pair_study(rubric: str, tags: Sequence[str]) -> str:
    """The pairwise study's rubric (the default one when blank); StudyInputError when it is not 0/1 or the tags
    lack RESPONSE A or RESPONSE B."""
    try:
        checked = check_pair_rubric(rubric)
    except PairRubricError as error:
        raise StudyInputError(str(error)) from error
    missing = [tag for tag in (RESPONSE_A, RESPONSE_B) if tag not in tags]
    if missing:
        raise StudyInputError(f"A pairwise study needs the field tags {RESPONSE_A!r} and {RESPONSE_B!r} "
                              f"(missing: {', '.join(map(repr, missing))}).")
    return checked


def check_pair_fields(fields: Mapping[str, str]) -> None:
    """StudyInputError unless both responses of a pairwise item are there and not blank."""
    missing = [tag for tag in (RESPONSE_A, RESPONSE_B) if not (fields.get(tag) or "").strip()]
    if missing:
        raise StudyInputError(f"A pairwise item needs both responses: {' and '.join(missing)} "
                              f"{'is' if len(missing) == 1 else 'are'} empty.")


def label_scale(allow_tie: bool) -> tuple[int, int]:
    """The score range of a pairwise study's labels: indexes into CHOICES."""
    return (0, 2 if allow_tie else 1)


def shown_order(study_id: int, item_id: int, annotator_id: int) -> str:
    """"AB" or "BA": the order this annotator sees this item's responses in; stable and about half of each."""
    digest = hashlib.sha256(f"glider-studio/pair-order/{study_id}/{item_id}/{annotator_id}".encode()).digest()
    return ORDERS[digest[0] & 1]


def choice_of_slot(order: str, slot: str, *, allow_tie: bool) -> str:
    """The item-terms choice ("A", "B", "tie") an annotator made by clicking `slot` with responses shown in
    `order`; StudyInputError for another slot, or a tie where the study allows none."""
    if order not in ORDERS:
        raise StudyInputError(f"Unknown order {order!r}; expected one of {', '.join(ORDERS)}.")
    if slot == TIE:
        if not allow_tie:
            raise StudyInputError("This study does not allow a tie: choose Response 1 or Response 2.")
        return TIE
    if slot not in (SLOT_1, SLOT_2):
        raise StudyInputError(f"Choose Response 1, Response 2{' or a tie' if allow_tie else ''}; got {slot!r}.")
    return order[int(slot) - 1]


def slot_of_choice(order: str, choice: str) -> str:
    """The slot ("1", "2") where the chosen response was shown; "tie" for a tie."""
    return TIE if choice == TIE else str(order.index(choice) + 1)


def score_of_choice(choice: str) -> int:
    return CHOICES.index(choice)


def choice_of_score(score: int) -> str:
    return CHOICES[score]


def pair_request(fields: Mapping[str, str], pass_criteria: str, rubric: str, *, max_new_tokens: int,
                 both_orders: bool = True) -> PairRequest:
    """The core.pairwise request of a pairwise item's fields under its study's criteria and rubric."""
    return PairRequest(
        response_a=fields.get(RESPONSE_A, ""), response_b=fields.get(RESPONSE_B, ""),
        pass_criteria=pass_criteria, rubric=rubric if (rubric or "").strip() else DEFAULT_PAIR_RUBRIC,
        context=fields.get(CONTEXT, ""), user_input=fields.get(USER_INPUT, ""),
        gold_answer=fields.get(GOLD_ANSWER, ""), both_orders=both_orders, max_new_tokens=max_new_tokens)


def verdict_of(score_ab: int | None, score_ba: int | None) -> str:
    """The judge's verdict on a pair from its two orders' scores (0: slot 1 better, 1: slot 2 better), the rules of
    core.pairwise.decide: "A"/"B" when both orders prefer it, "inconsistent" when they disagree (the same slot
    picked twice), "undecided" when an order has no score."""
    if score_ab is None or score_ba is None:
        return UNDECIDED
    first, second = "AB"[score_ab], "BA"[score_ba]
    return first if first == second else INCONSISTENT


def slot_picked(score_ab: int | None, score_ba: int | None) -> int | None:
    """The slot (1 or 2) the judge picked in both orders when inconsistent (its position bias), else None."""
    return score_ab + 1 if verdict_of(score_ab, score_ba) == INCONSISTENT and score_ab is not None else None


@dataclass(frozen=True)
class PairJudgments:
    """A pairwise item's judgments in a run: the (A, B) order's and the (B, A) order's (None: not graded)."""

    item_id: int
    ab: int | None
    ba: int | None
