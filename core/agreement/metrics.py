"""Pure statistics on score arrays, as JSON-ready metric objects: human vs model, human vs human, anchoring.

A metric object is a dict with `value` (None with a `reason` when the statistic is undefined) and, where
defined, `n` and `p_value`. Every point estimate comes from scipy / scikit-learn / krippendorff.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from typing import Any, Literal

import krippendorff
import numpy as np
from scipy import stats
from sklearn.metrics import cohen_kappa_score

HEADLINE = ("pearson", "spearman", "kendall", "exact", "within_1", "weighted_kappa")


def _undefined(reason: str, **extra: Any) -> dict[str, Any]:
    return {"value": None, "reason": reason, **extra}


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _defined(value: Any, **extra: Any) -> dict[str, Any]:
    number = _number(value)
    if number is None:  # a guard: the checks before each computation should make this unreachable
        return _undefined("the computation did not give a finite number", **extra)
    return {"value": number, **extra}


def _plain(value: Any) -> Any:
    """A JSON-ready scalar (numpy scalars become Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


def _constant_reason(values: np.ndarray, name: str) -> str | None:
    if values.size and np.all(values == values[0]):
        return f"{name} are all identical ({values[0]:g}), so the statistic is undefined"
    return None


def correlation_metrics(x: np.ndarray, y: np.ndarray, *, x_name: str, y_name: str) -> dict[str, dict[str, Any]]:
    """Pearson, Spearman and Kendall's tau-b (scipy) with p-values; undefined with a reason if n < 2 or constant."""
    n = int(len(x))
    reason = f"fewer than 2 items (n={n})" if n < 2 else _constant_reason(x, x_name) or _constant_reason(y, y_name)
    if reason:
        return {name: _undefined(reason, n=n) for name in ("pearson", "spearman", "kendall")}
    results = {
        "pearson": stats.pearsonr(x, y),
        "spearman": stats.spearmanr(x, y),
        "kendall": stats.kendalltau(x, y, variant="b"),
    }
    out = {}
    for name, result in results.items():
        metric = _defined(result.statistic, n=n, p_value=_number(result.pvalue))
        if metric.get("value") is not None and metric["p_value"] is None:
            metric["p_value_reason"] = "scipy gives no p-value for this sample size"
        out[name] = metric
    return out


def weighted_kappa(a: np.ndarray, b: np.ndarray, labels: Sequence[int]) -> dict[str, Any]:
    """Quadratic-weighted Cohen's kappa (sklearn) with `labels=` the whole scale; undefined with a reason."""
    n = int(len(a))
    if n < 2:
        return _undefined(f"fewer than 2 items (n={n})", n=n)
    used = np.union1d(a, b)
    if used.size == 1:
        # Both sides gave one and the same value: expected disagreement is 0, kappa is 0/0.
        return _undefined(f"every score is the same value ({used[0]:g}), so kappa is 0/0", n=n)
    value = cohen_kappa_score(a.astype(int), b.astype(int), labels=list(labels), weights="quadratic")
    return _defined(value, n=n)


def exact_metrics(a: np.ndarray, b: np.ndarray) -> dict[str, dict[str, Any]]:
    """Share of pairs that are equal, and within ±1 of each other."""
    n = int(len(a))
    if n == 0:
        return {name: _undefined("no items", n=0) for name in ("exact", "within_1")}
    diff = np.abs(a - b)
    return {"exact": _defined(np.mean(diff == 0), n=n), "within_1": _defined(np.mean(diff <= 1), n=n)}


# --- human vs human ----------------------------------------------------------------------------


def _alpha(
    value_counts: np.ndarray, labels: list[int], n_annotators: int, level: Literal["ordinal", "interval"]
) -> dict[str, Any]:
    pairable = value_counts[value_counts.sum(axis=1) >= 2]
    n = int(len(pairable))
    if n_annotators < 2:
        return _undefined("fewer than 2 annotators", n=n)
    if n == 0:
        return _undefined("no item was rated by 2 or more annotators", n=n)
    used = np.flatnonzero(pairable.sum(axis=0))
    if used.size < 2:
        return _undefined(
            f"every rating of a multiply-rated item is {labels[used[0]]}: expected disagreement is 0", n=n
        )
    value = krippendorff.alpha(value_counts=pairable, value_domain=labels, level_of_measurement=level)
    return _defined(value, n=n)


def _human_human(
    item: np.ndarray, person: np.ndarray, score: np.ndarray, names: np.ndarray, n_items: int, labels: list[int]
) -> dict[str, Any]:
    low = labels[0]
    value_counts = np.bincount(item * len(labels) + (score.astype(int) - low), minlength=n_items * len(labels))
    value_counts = value_counts.reshape(n_items, len(labels))
    n_annotators = int(len(np.unique(person)))
    block: dict[str, Any] = {
        "n_annotators": n_annotators,
        "n_items_multiply_rated": int(np.sum(value_counts.sum(axis=1) >= 2)),
        "krippendorff_alpha_ordinal": _alpha(value_counts, labels, n_annotators, "ordinal"),
        "krippendorff_alpha_interval": _alpha(value_counts, labels, n_annotators, "interval"),
    }
    # Pooled pairwise exact agreement: over every pair of ratings of the same item.
    per_item = value_counts.sum(axis=1)
    pairs_total = float(np.sum(per_item * (per_item - 1) / 2))
    pairs_equal = float(np.sum(value_counts * (value_counts - 1) / 2))
    block["pairwise_exact"] = (
        _defined(pairs_equal / pairs_total, n=int(pairs_total))
        if pairs_total
        else _undefined("no item was rated by 2 or more annotators", n=0)
    )

    order = np.lexsort((item, person))
    item, person, score = item[order], person[order], score[order]
    raters = np.unique(person)
    starts = np.searchsorted(person, raters)
    ends = np.searchsorted(person, raters, side="right")
    pairs, kappas = [], []
    too_few = 0
    for (a, b), (sa_, sb_) in zip(
        combinations(raters, 2), combinations(zip(starts, ends, strict=True), 2), strict=True
    ):
        _, ia, ib = np.intersect1d(item[slice(*sa_)], item[slice(*sb_)], assume_unique=True, return_indices=True)
        if len(ia) < 2:
            too_few += 1
            continue
        sa, sb = score[slice(*sa_)][ia], score[slice(*sb_)][ib]
        kappa = weighted_kappa(sa, sb, labels)
        if kappa["value"] is not None:
            kappas.append(kappa["value"])
        pairs.append(
            {
                "annotators": [_plain(names[a]), _plain(names[b])],
                "n_items": int(len(ia)),
                "weighted_kappa": kappa,
                "exact": _defined(np.mean(sa == sb), n=int(len(ia))),
            }
        )
    if kappas:
        block["mean_pairwise_weighted_kappa"] = _defined(
            np.mean(kappas), n_pairs=len(kappas), n_pairs_undefined=len(pairs) - len(kappas)
        )
    else:
        reason = (
            "fewer than 2 annotators"
            if n_annotators < 2
            else "no annotator pair shares 2 or more items"
            if not pairs
            else "kappa is undefined for every annotator pair"
        )
        block["mean_pairwise_weighted_kappa"] = _undefined(reason, n_pairs=0, n_pairs_undefined=len(pairs))
    block["pairs_with_fewer_than_2_shared_items"] = too_few
    block["pairs"] = pairs
    return block


# --- anchoring ---------------------------------------------------------------------------------


def _anchoring(
    before: np.ndarray, after: np.ndarray, confirmed: np.ndarray, model: np.ndarray, labels: list[int]
) -> dict[str, Any]:
    """How the scores moved from before the reveal to now; `confirmed` is the score confirmed at the reveal."""
    n = int(len(before))
    if n == 0:
        return {"available": False, "reason": "no annotation of a graded item has a score from before the reveal"}
    moved = {
        "revised": after != before,
        "up": after > before,
        "down": after < before,
        "towards_model": np.abs(after - model) < np.abs(before - model),
        "away_from_model": np.abs(after - model) > np.abs(before - model),
    }
    block: dict[str, Any] = {"available": True, "n": n}
    for name, mask in moved.items():
        block[name] = int(mask.sum())
        block[f"{name}_rate"] = float(mask.mean())
    at_reveal = ~np.isnan(confirmed)
    block["confirmed_at_reveal"] = int(at_reveal.sum())
    block["changed_at_reveal"] = int(np.sum(at_reveal & (confirmed != before)))
    block["changed_by_later_edit"] = int(np.sum(after != np.where(at_reveal, confirmed, before)))
    for name, human in (("before", before), ("after", after)):
        block[name] = {
            "exact": exact_metrics(human, model)["exact"],
            "weighted_kappa": weighted_kappa(human, model, labels),
        }
    block["method"] = (
        "Per annotation of a graded item: the score given before the model's verdict was shown vs the score now "
        "(after the reveal, including any later edit), each compared with the model's score; rates are over n. "
        "A revision that keeps the same distance to the model counts as neither towards nor away. "
        "changed_at_reveal: changed when confirming after the reveal; changed_by_later_edit: changed afterwards."
    )
    return block


def _no_anchoring(blind: bool | None) -> dict[str, Any]:
    if blind is False:
        reason = (
            "not a blind study: the labels were given with the model's verdict visible, so there is no score "
            "from before the reveal"
        )
    else:
        reason = "the input does not say that the labels were given blind (no blind column, no after-reveal scores)"
    return {"available": False, "reason": reason}
