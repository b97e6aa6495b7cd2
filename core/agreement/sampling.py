"""Which items were drawn at random and which least-confident first: the report's `sampling` block and the
mask that restricts a statistic to the items drawn at random.

A study whose queue order is 'uncertainty' (core.studies.queue_order) hands out first the items where the
judge is least sure. Agreement measured on those items describes hard items, not the study: it is biased
(usually downward). Items drawn at random are an unbiased sample. The input column `drawn_at_random`
(one value per item, repeated on its rows; None = unknown) says which is which; unknown counts as random,
because a study before the option existed, and any data from outside the app, had only that order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.agreement.metrics import _plain

BIAS_NOTE = (
    "Some items were handed out least-confident judgment first (uncertainty sampling), so agreement computed on "
    "them is biased toward hard items: the headline numbers cover all items and may understate how well the "
    "judge does on a typical item. The replacement test and the auto-accept threshold use only the items drawn "
    "at random."
)
RANDOM_NOTE = ("Every labelled item was drawn in the study's random order: the agreement numbers are not biased by "
               "the queue.")
UNRECORDED_NOTE = ("How items were drawn is not recorded in this input: every item counts as drawn at random, "
                   "as in a study whose queue order is random.")


def random_items(drawn: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Per item: True unless one of its rows says drawn_at_random is False (None = unknown = random).

    `drawn`: the rows' drawn_at_random values (True / False / None, dtype object); `items`: each row's item code.
    """
    at_random = np.ones(n_items, dtype=bool)
    flagged = np.fromiter((value is False for value in drawn), dtype=bool, count=len(drawn))
    at_random[items[flagged]] = False
    return at_random


def random_rows(drawn: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Per row: whether the row's item was drawn at random (random_items), to restrict a statistic to them."""
    return random_items(drawn, items, n_items)[items] if len(items) else np.zeros(0, dtype=bool)


def sampling_report(drawn: np.ndarray, items: np.ndarray, item_ids: np.ndarray, scored: np.ndarray,
                    graded: np.ndarray) -> dict[str, Any]:
    """The `sampling` block: counts and ids of the items drawn at random and least-confident first.

    Per row: `drawn` (drawn_at_random values), `items` (item codes into `item_ids`), `scored` (the row has a
    human score the headline uses); per item: `graded` (has a model score). `biased` is True when any labelled
    item was drawn least-confident first.
    """
    n_items = len(item_ids)
    if n_items == 0:
        return {"available": False, "reason": "no items"}
    labelled = np.bincount(items[scored], minlength=n_items) > 0
    recorded = any(value is not None for value in drawn)
    at_random = random_items(drawn, items, n_items)

    def kind(mask: np.ndarray) -> dict[str, Any]:
        return {
            "n_items": int(mask.sum()),
            "n_labelled": int((mask & labelled).sum()),
            "n_graded": int((mask & graded).sum()),
            "n_labelled_and_graded": int((mask & labelled & graded).sum()),  # what judge-vs-human numbers use
            "item_ids": [_plain(value) for value in item_ids[mask]],
        }

    unsure = kind(~at_random)
    biased = unsure["n_labelled"] > 0
    return {
        "available": True,
        "recorded": recorded,
        "biased": biased,
        "note": BIAS_NOTE if biased else (RANDOM_NOTE if recorded else UNRECORDED_NOTE),
        "random": kind(at_random),
        "uncertainty": unsure,
    }
