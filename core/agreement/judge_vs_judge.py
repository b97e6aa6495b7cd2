"""Judge vs judge: how much two judge runs agree on the same items, as two annotators would.

A judge configuration is a rater: the numbers are the ones the report gives between two people (exact
agreement and quadratic-weighted Cohen's kappa, from core.agreement.metrics), plus the flip rate (the share
of items whose score changed) and the mean absolute score difference, each with a percentile-bootstrap
confidence interval over items (core.agreement.bootstrap's multinomial resampling of the score-pair table,
the same draws as the report's human-vs-model intervals for the same seed). Only items both runs scored are
compared; the others are counted by reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from core.agreement.bootstrap import CONFIDENCE, _add_ci, _pooled_table, table_statistics
from core.agreement.metrics import _defined, _plain, _undefined, exact_metrics, weighted_kappa
from core.errors import InputError

METRICS = ("exact", "flip_rate", "mean_abs_diff", "weighted_kappa")
METHOD = (
    "Items both runs gave a score (an answer that failed to parse, or an item a run has not graded, is left out). "
    "exact: share of items with the same score; flip_rate: share with a different score (1 - exact); "
    "mean_abs_diff: mean |score A - score B|; weighted_kappa: quadratic-weighted Cohen's kappa with every value of "
    "the scale as a label, the two runs taken as two annotators. 95% intervals: percentile bootstrap over items."
)
BOOTSTRAP_NOTE = (
    "Each resample draws n items with replacement. The statistics depend on a resample only through how many "
    "items fall in each (score A, score B) cell, so these counts are drawn directly from the multinomial "
    "distribution over cells, which is exactly their distribution under item resampling."
)


def _score(value: Any, scale: tuple[int, int], run: str, item: Any) -> int | None:
    """A run's score of an item as a whole number on the scale, or None (not scored)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    try:
        whole = not isinstance(value, bool) and float(value).is_integer()
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise InputError(f"{run}'s score of item {item!r} is {value!r}, not a whole number")
    if not scale[0] <= value <= scale[1]:
        raise InputError(f"{run}'s score of item {item!r} is {value!r}, outside the scale {scale[0]}-{scale[1]}")
    return int(value)


def _resampled(a: np.ndarray, b: np.ndarray, low: int, n_labels: int, n_resamples: int,
               seed: int) -> dict[str, np.ndarray]:
    """Every metric on `n_resamples` item resamples: the draws of core.agreement.bootstrap.bootstrap_statistics."""
    table = _pooled_table(a.astype(float), a, b.astype(float), low)
    counts = table["counts"]
    n = int(counts.sum())
    probabilities = counts.ravel() / n
    distance = np.abs(table["x_values"][:, None] - table["y_values"][None, :])
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // max(1, probabilities.size))  # as bootstrap_statistics: the same draws
    parts: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        draws = rng.multinomial(n, probabilities, size=size).reshape(size, *counts.shape)
        stats = table_statistics(draws, table["x_values"], table["y_values"], table["x_labels"], table["y_labels"],
                                 n_labels)
        parts["exact"].append(stats["exact"])
        parts["flip_rate"].append(1.0 - stats["exact"])
        parts["weighted_kappa"].append(stats["weighted_kappa"])
        parts["mean_abs_diff"].append(np.sum(draws * distance, axis=(1, 2)) / n)
    return {name: np.concatenate(values) for name, values in parts.items()}


def judge_vs_judge(
    scores_a: Mapping[Any, Any],
    scores_b: Mapping[Any, Any],
    scale: tuple[int, int],
    *,
    names: tuple[str, str] = ("run A", "run B"),
    external_ids: Mapping[Any, Any] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Agreement of two judge runs on the items both scored, as a JSON-ready dict; InputError on bad input.

    `scores_a` / `scores_b`: item id -> score (None: no score). Keys: `n_items` (compared), `left_out` (counts:
    only_a, only_b, neither), each of METRICS as a metric object (`value`, `n`, `ci_low`, `ci_high`, or
    `value` None with a `reason`), `changed` (the items whose score differs, largest change first, each with
    item_id, external_id when known, score_a, score_b and diff = b - a), `names`, `scale`, `bootstrap`, `method`.
    """
    try:
        low, high = (int(v) for v in scale)
    except (TypeError, ValueError) as error:
        raise InputError(f"scale must be two whole numbers (min, max), got {scale!r}") from error
    if low >= high:
        raise InputError(f"scale must be two whole numbers with min < max, got {scale!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 0:
        raise InputError(f"n_resamples must be a whole number >= 0, got {n_resamples!r}")
    a_of = {item: _score(value, (low, high), names[0], item) for item, value in scores_a.items()}
    b_of = {item: _score(value, (low, high), names[1], item) for item, value in scores_b.items()}
    items = list(dict.fromkeys([*a_of, *b_of]))  # the first mapping's order, then the second's new items
    both = [item for item in items if a_of.get(item) is not None and b_of.get(item) is not None]
    only_a = sum(1 for item in items if a_of.get(item) is not None and b_of.get(item) is None)
    only_b = sum(1 for item in items if a_of.get(item) is None and b_of.get(item) is not None)
    a = np.array([a_of[item] for item in both], dtype=int)
    b = np.array([b_of[item] for item in both], dtype=int)
    labels = list(range(low, high + 1))
    n = len(both)

    report: dict[str, Any] = {"names": list(names), "scale": {"min": low, "max": high, "labels": labels},
                              "n_items": n, "left_out": {"only_a": only_a, "only_b": only_b,
                                                          "neither": len(items) - n - only_a - only_b}}
    if n == 0:
        for name in METRICS:
            report[name] = _undefined("no item has a score in both runs", n=0)
    else:
        exact = exact_metrics(a.astype(float), b.astype(float))["exact"]
        report["exact"] = exact
        report["flip_rate"] = _defined(1.0 - exact["value"], n=n)
        report["mean_abs_diff"] = _defined(np.mean(np.abs(a - b)), n=n)
        report["weighted_kappa"] = weighted_kappa(a, b, labels)
    resampled = _resampled(a, b, low, len(labels), n_resamples, seed) if n and n_resamples else {}
    for name in METRICS:
        _add_ci(report[name], resampled.get(name), n_resamples)
    order = sorted((i for i in range(n) if a[i] != b[i]), key=lambda i: -abs(int(b[i]) - int(a[i])))  # stable
    report["changed"] = []
    for i in order:
        entry: dict[str, Any] = {"item_id": _plain(both[i])}
        if external_ids is not None:
            entry["external_id"] = external_ids.get(both[i])
        entry.update(score_a=int(a[i]), score_b=int(b[i]), diff=int(b[i]) - int(a[i]))
        report["changed"].append(entry)
    report["bootstrap"] = {"method": "percentile", "resampled": "items", "confidence": CONFIDENCE,
                           "n_resamples": n_resamples, "seed": seed, "note": BOOTSTRAP_NOTE}
    report["method"] = METHOD
    return report
