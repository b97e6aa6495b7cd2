"""Percentile-bootstrap confidence intervals over items, vectorised on (human mean, model score) count tables.

Only the bootstrap uses our own formulas (`table_statistics`); the tests check them against scipy,
scikit-learn and a literal item resampling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from core.agreement.metrics import HEADLINE

CONFIDENCE = 0.95
BOOTSTRAP_NOTE = (
    "Each resample draws n items with replacement. The statistics depend on a resample only through how many "
    "items fall in each (human mean, model score) cell, so these counts are drawn directly from the multinomial "
    "distribution over cells, which is exactly their distribution under item resampling."
)


def _weighted_pearson(counts: np.ndarray, x: np.ndarray, y: np.ndarray, n: float) -> np.ndarray:
    """Pearson's r per table; `x` is (Dx,) or (B, Dx) category values, `y` likewise; NaN if a side is constant."""
    rows, cols = counts.sum(axis=2), counts.sum(axis=1)
    x = np.broadcast_to(x, rows.shape)
    y = np.broadcast_to(y, cols.shape)
    dx = x - (np.sum(rows * x, axis=1) / n)[:, None]
    dy = y - (np.sum(cols * y, axis=1) / n)[:, None]
    cov = np.einsum("bi,bij,bj->b", dx, counts, dy)
    var = np.sum(rows * dx**2, axis=1) * np.sum(cols * dy**2, axis=1)
    constant = ((rows > 0).sum(axis=1) < 2) | ((cols > 0).sum(axis=1) < 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.clip(cov / np.sqrt(var), -1.0, 1.0)
    return np.where(constant, np.nan, r)


def _midranks(margin: np.ndarray) -> np.ndarray:
    """Average rank (1-based, ties share their mean rank) of each category, from its counts."""
    return np.cumsum(margin, axis=1) - (margin - 1) / 2


def _kendall_tau_b(counts: np.ndarray, n: float) -> np.ndarray:
    """Kendall's tau-b per contingency table (categories in increasing order on both axes)."""
    b, dx, dy = counts.shape
    # at_or_after[i, j] = sum of counts[i':, j':]; padded so that index i+1 / j+1 past the end reads 0.
    after = np.zeros((b, dx + 1, dy + 1))
    after[:, :dx, :dy] = counts[:, ::-1, ::-1].cumsum(axis=1).cumsum(axis=2)[:, ::-1, ::-1]
    concordant = np.sum(counts * after[:, 1:, 1:], axis=(1, 2))
    # below_left[i, j] = sum of counts[i':, :j+1]; shifted to read counts[i+1:, :j].
    below_left = np.zeros((b, dx + 1, dy + 1))
    below_left[:, :dx, 1:] = counts[:, ::-1, :].cumsum(axis=1)[:, ::-1, :].cumsum(axis=2)
    discordant = np.sum(counts * below_left[:, 1:, :dy], axis=(1, 2))
    pairs = n * (n - 1) / 2
    rows, cols = counts.sum(axis=2), counts.sum(axis=1)
    untied_x = pairs - np.sum(rows * (rows - 1) / 2, axis=1)
    untied_y = pairs - np.sum(cols * (cols - 1) / 2, axis=1)
    denominator = untied_x * untied_y
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = (concordant - discordant) / np.sqrt(denominator)
    return np.where(denominator > 0, np.clip(tau, -1.0, 1.0), np.nan)


def table_statistics(
    counts: np.ndarray,
    x_values: np.ndarray,
    y_values: np.ndarray,
    x_labels: np.ndarray,
    y_labels: np.ndarray,
    n_labels: int,
) -> dict[str, np.ndarray]:
    """The headline statistics of each (B, Dx, Dy) table of item counts, vectorised; NaN where undefined.

    Axis 1 holds the distinct human means `x_values` (increasing), axis 2 the distinct model scores
    `y_values`; `x_labels` / `y_labels` are their scale positions (the rounded mean / the model score
    minus the scale minimum). Equal to scipy's pearsonr / spearmanr / kendalltau(variant="b") and to
    sklearn's cohen_kappa_score(weights="quadratic", labels=scale) on the expanded data (see tests).
    """
    counts = np.asarray(counts, dtype=float)
    n = float(counts[0].sum()) if len(counts) else 0.0
    rows, cols = counts.sum(axis=2), counts.sum(axis=1)
    label_diff = x_labels[:, None] - y_labels[None, :]
    positions = np.arange(n_labels)
    weights = (positions[:, None] - positions[None, :]) ** 2.0
    cell_weights = weights[np.ix_(x_labels, y_labels)]
    observed = np.sum(counts * cell_weights, axis=(1, 2))
    expected = np.einsum("bi,ij,bj->b", rows, cell_weights, cols) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(expected > 0, 1.0 - observed / expected, np.nan)
    enough = n >= 2
    return {
        "pearson": _weighted_pearson(counts, x_values, y_values, n) if enough else np.full(len(counts), np.nan),
        "spearman": (
            _weighted_pearson(counts, _midranks(rows), _midranks(cols), n) if enough else np.full(len(counts), np.nan)
        ),
        "kendall": _kendall_tau_b(counts, n) if enough else np.full(len(counts), np.nan),
        "exact": np.sum(counts * (label_diff == 0), axis=(1, 2)) / n,
        "within_1": np.sum(counts * (np.abs(label_diff) <= 1), axis=(1, 2)) / n,
        "weighted_kappa": kappa if enough else np.full(len(counts), np.nan),
    }


def _pooled_table(mean: np.ndarray, rounded: np.ndarray, model: np.ndarray, low: int) -> dict[str, Any]:
    """The pooled items as cells: distinct human means × distinct model scores, with their counts."""
    x_values, x_index = np.unique(mean, return_inverse=True)
    y_values, y_index = np.unique(model, return_inverse=True)
    x_labels = np.empty(len(x_values), dtype=int)
    x_labels[x_index] = rounded - low  # one rounding per distinct mean (equal means round alike)
    cells = x_index * len(y_values) + y_index
    counts = np.bincount(cells, minlength=len(x_values) * len(y_values)).reshape(len(x_values), len(y_values))
    return {
        "x_values": x_values,
        "y_values": y_values,
        "x_labels": x_labels,
        "y_labels": (y_values - low).astype(int),
        "counts": counts,
    }


def bootstrap_statistics(table: Mapping[str, Any], n_labels: int, n_resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Each headline statistic on `n_resamples` item resamples (see BOOTSTRAP_NOTE), seeded."""
    counts = table["counts"]
    n = int(counts.sum())
    probabilities = counts.ravel() / n
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // max(1, probabilities.size))  # bounds memory for very fine tables
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        draws = rng.multinomial(n, probabilities, size=size).reshape(size, *counts.shape)
        parts.append(
            table_statistics(
                draws, table["x_values"], table["y_values"], table["x_labels"], table["y_labels"], n_labels
            )
        )
    return {name: np.concatenate([p[name] for p in parts]) for name in HEADLINE}


def _add_ci(metric: dict[str, Any], resampled: np.ndarray | None, n_resamples: int) -> None:
    if metric["value"] is None:
        return
    if resampled is None:
        metric.update(ci_low=None, ci_high=None, ci_reason="bootstrap disabled (0 resamples)")
        return
    finite = resampled[np.isfinite(resampled)]
    if finite.size < 2:
        metric.update(ci_low=None, ci_high=None, ci_reason="the statistic is undefined on almost every resample")
        return
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    metric.update(ci_low=float(low), ci_high=float(high))
    if finite.size < n_resamples:
        metric["ci_note"] = (
            f"{n_resamples - finite.size} of {n_resamples} resamples gave an undefined value and were left out"
        )
