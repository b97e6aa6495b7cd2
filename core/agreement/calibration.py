"""Calibration: is the judge right as often as it is confident, and above which confidence can it be trusted?

The judge's confidence in an item is the probability its score distribution gave its own score (the stored
judgment's `confidence`, the input column `model_confidence`). An item is "agreed" when the judge's score
equals the human consensus, the item's mean human score rounded half up (as the headline's exact agreement:
core.agreement.report.POOLING). Everything here is a pure function of per-item arrays, so a caller can pass
any subset of items (e.g. only those drawn at random).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from core.errors import InputError

N_BINS = 10
TARGET = 0.9  # the default target agreement of the auto-accept threshold: 90%
ALPHA = 0.05  # one-sided: the bound is a 95% LOWER confidence bound
CONFIDENCE_NOTE = (
    "Confidence: the probability the judge's score distribution gave its own score. Agreed: the judge's score "
    "equals the human consensus (the item's mean human score rounded half up, as exact agreement)."
)
BINS_NOTE = (
    f"{N_BINS} equal-width bins over [0, 1]: [0, 0.1), [0.1, 0.2), ..., [0.9, 1]; the same bins for every study so "
    "charts compare, empty bins kept (count 0). A judge's confidence is at least 1 / (number of scale values), so "
    "the lowest bins are always empty. ECE = sum over bins of (bin count / labelled items) x |agreement - mean "
    "confidence|; with few items per bin it is mostly noise and biased upwards."
)
METHOD = (
    "Auto-accept threshold: the lowest observed confidence t such that, on the labelled items with confidence >= "
    "t, the one-sided 95% lower Clopper-Pearson bound of the agreement rate (exact binomial: the 5% quantile of "
    "Beta(k, n - k + 1)) is >= the target. One-sided, because the claim is one-sided: 'agreement is at least the "
    "target' (the lower end of a two-sided 90% interval). Choosing t by scanning every threshold is a selection "
    "the bound does not correct for: the bounds of nested item sets are strongly correlated, so the optimism is "
    "small, but it is there; check the threshold on a fresh random sample of items above it before relying on it. "
    "(A fixed-sequence test from the most confident item down would correct for it, but one disagreement among "
    "the first few dozen items would then rule out every threshold: too weak to be useful.) Coverage: the share "
    "of ALL graded items (labelled or not) whose confidence is >= t: what the judge could accept on its own. "
    "When no t qualifies, more labelled items needed: with fewer than min_labelled_items (the fewest that, all "
    "agreeing, can reach the target: 0.05^(1/n) >= target), the difference; otherwise a projection: if agreement "
    "at a threshold with at least that many items stays at its observed rate (above the target), how many more "
    "labelled items at or above it would bring the bound to the target (none when no such rate is above it)."
)


def check_target(target: Any) -> float:
    """The target agreement as a float strictly between 0 and 1; InputError otherwise."""
    if isinstance(target, bool) or not isinstance(target, int | float | np.integer | np.floating):
        raise InputError(f"target must be a number between 0 and 1 (e.g. 0.9 for 90%), got {target!r}")
    value = float(target)
    if not 0 < value < 1:
        raise InputError(f"target must be strictly between 0 and 1 (e.g. 0.9 for 90%), got {target!r}")
    return value


def item_consensus(items: np.ndarray, human: np.ndarray, n_items: int) -> np.ndarray:
    """Per item code: the mean of its human scores rounded half up (NaN where none), exact in integers."""
    has = ~np.isnan(human)
    sums = np.bincount(items[has], weights=human[has], minlength=n_items).round().astype(np.int64)
    counts = np.bincount(items[has], minlength=n_items)
    out = np.full(n_items, np.nan)
    rated = counts > 0
    out[rated] = (2 * sums[rated] + counts[rated]) // (2 * counts[rated])  # floor(mean + 1/2): halves round up
    return out


def item_values(items: np.ndarray, values: np.ndarray, n_items: int) -> np.ndarray:
    """Per item code: the value its rows give (consistent per item, checked on input), NaN where none."""
    out = np.full(n_items, np.nan)
    present = ~np.isnan(values)
    out[items[present]] = values[present]
    return out


def lower_bound(agreed: ArrayLike, n: ArrayLike, alpha: float = ALPHA) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson lower bound of k/n: Beta(k, n - k + 1)'s alpha quantile; 0 when k = 0."""
    k, n = np.asarray(agreed, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore"):
        bound = stats.beta.ppf(alpha, np.maximum(k, 1), n - k + 1)
    return np.where(k > 0, bound, 0.0)


def needed_all_agreeing(target: float, alpha: float = ALPHA) -> int:
    """The fewest items that, all agreeing, give a lower bound >= target: alpha^(1/n) >= target."""
    return math.ceil(math.log(alpha) / math.log(target) - 1e-12)


def _projected_more(agreed: np.ndarray, n: np.ndarray, target: float, minimum: int) -> tuple[int, int] | None:
    """If agreement stays at each threshold's observed rate p = k / n (> target), the fewest more labelled items
    at or above it that bring its bound to the target: min over thresholds of n* - n, where n* is the smallest
    count with bound(p n*, n*) >= target (Beta quantiles take a fractional k). Returns (more, threshold index),
    or None when no threshold's rate is above the target. Only thresholds with at least `minimum` items count: a
    rate from a handful of items says little. Doubling then bisection, every threshold at once.
    """
    rate = agreed / n
    # Only thresholds no other beats on both rate and size can be the best: down the list n grows, so those
    # whose rate is above every rate after them.
    after = np.r_[np.maximum.accumulate(rate[::-1])[::-1][1:], -np.inf]
    candidates = np.flatnonzero((n >= minimum) & (rate > target) & (rate > after))
    if not candidates.size:
        return None
    p, low = rate[candidates], n[candidates].astype(np.int64)  # bound(p * low, low) < target: none qualifies yet
    high = low * 2
    while True:
        short = lower_bound(p * high, high) < target
        if not short.any():
            break
        low, high = np.where(short, high, low), np.where(short, high * 2, high)
    while (high - low > 1).any():
        middle = (low + high) // 2
        reached = lower_bound(p * middle, middle) >= target
        high, low = np.where(reached, middle, high), np.where(reached, low, middle)
    more = high - n[candidates]
    best = int(np.argmin(more))
    return int(more[best]), int(candidates[best])


def _bins(confidence: np.ndarray, agreed: np.ndarray, n_bins: int) -> tuple[list[dict[str, Any]], float | None]:
    # A confidence on an edge goes to the bin above (k/10 * 10 can come out a hair below k in floating point).
    index = np.minimum(np.floor(confidence * n_bins + 1e-9), n_bins - 1).astype(np.int64)
    count = np.bincount(index, minlength=n_bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    agreed_sum = np.bincount(index, weights=agreed.astype(float), minlength=n_bins)
    bins = []
    for b in range(n_bins):
        n = int(count[b])
        bins.append({
            "low": b / n_bins,
            "high": (b + 1) / n_bins,
            "n": n,
            "n_agreed": int(round(agreed_sum[b])),
            "mean_confidence": float(conf_sum[b] / n) if n else None,
            "agreement": float(agreed_sum[b] / n) if n else None,
        })
    total = int(count.sum())
    if not total:
        return bins, None
    filled = count > 0
    gaps = np.abs(agreed_sum[filled] / count[filled] - conf_sum[filled] / count[filled])
    return bins, float(np.sum(count[filled] / total * gaps))


def judge_calibration(
    confidence: np.ndarray,
    model: np.ndarray,
    consensus: np.ndarray,
    *,
    target: float = TARGET,
    n_bins: int = N_BINS,
    population: np.ndarray | None = None,
) -> dict[str, Any]:
    """Reliability bins, ECE and the auto-accept threshold, as a JSON-ready dict; InputError for a bad target.

    Per item, for the items to use: `confidence` (NaN = none), the judge's score `model` (NaN = not graded)
    and the human `consensus` (NaN = not labelled). `population`: the confidences (NaN = none) of every graded
    item the threshold would be applied to, for its coverage, when that is more than the items used (e.g. the
    whole study when only the items drawn at random are used); by default the graded items given.
    """
    target = check_target(target)
    confidence = np.asarray(confidence, dtype=float)
    model = np.asarray(model, dtype=float)
    consensus = np.asarray(consensus, dtype=float)
    graded = ~np.isnan(model)
    has_conf = graded & ~np.isnan(confidence)
    if not has_conf.any():
        return {
            "available": False,
            "target": target,
            "reason": (
                "no graded item has a confidence (the input has no model_confidence column, or the judge's "
                "back-end gave no score distribution)"
            ),
        }
    labelled = has_conf & ~np.isnan(consensus)
    everyone = confidence[graded] if population is None else np.asarray(population, dtype=float)
    conf = confidence[labelled]
    agreed = model[labelled] == consensus[labelled]
    bins, ece = _bins(conf, agreed, n_bins)
    n_labelled = int(labelled.sum())
    block: dict[str, Any] = {
        "available": True,
        "target": target,
        "confidence_level": 1 - ALPHA,
        "sided": "one-sided (lower bound)",
        "n_graded": len(everyone),  # coverage's denominator
        "n_with_confidence": int(has_conf.sum()),
        "n_labelled": n_labelled,
        "n_agreed": int(agreed.sum()),
        "agreement": float(agreed.mean()) if n_labelled else None,
        "mean_confidence": float(conf.mean()) if n_labelled else None,
        "bins": bins,
        "ece": {"value": ece, "n": n_labelled} if ece is not None else {
            "value": None, "n": 0, "reason": "no labelled item has a confidence"},
        "threshold": _threshold(conf, agreed, np.sort(everyone[~np.isnan(everyone)]), len(everyone), target),
        "note": CONFIDENCE_NOTE,
        "bins_note": BINS_NOTE,
        "method": METHOD,
    }
    return block


def _threshold(conf: np.ndarray, agreed: np.ndarray, all_sorted: np.ndarray, n_graded: int,
               target: float) -> dict[str, Any]:
    """The lowest qualifying threshold, by cumulative counts over the labelled confidences, most confident first."""
    minimum = needed_all_agreeing(target)
    if not len(conf):
        return {"found": False, "value": None, "more_labelled_needed": minimum, "min_labelled_items": minimum,
                "reason": f"no labelled item has a confidence: at least {minimum} labelled items are needed"}
    order = np.argsort(-conf, kind="stable")
    sorted_conf, sorted_agreed = conf[order], agreed[order]
    cum_agreed = np.cumsum(sorted_agreed)
    last = np.flatnonzero(np.r_[sorted_conf[1:] != sorted_conf[:-1], True])  # end of each run of equal confidences
    thresholds, n, k = sorted_conf[last], last + 1, cum_agreed[last]
    bounds = lower_bound(k, n)
    passing = np.flatnonzero(bounds >= target)

    def entry(i: int) -> dict[str, Any]:
        t = float(thresholds[i])
        covered = int(len(all_sorted) - np.searchsorted(all_sorted, t, side="left"))
        return {"value": t, "n": int(n[i]), "agreed": int(k[i]), "agreement": float(k[i] / n[i]),
                "lower_bound": float(bounds[i]), "n_covered": covered, "coverage": covered / n_graded,
                "coverage_labelled": float(n[i] / len(conf))}

    if passing.size:
        return {"found": True, **entry(int(passing[-1])), "more_labelled_needed": None, "min_labelled_items": minimum}
    best = int(np.argmax(bounds))
    found = {"found": False, "value": None, "best": entry(best), "min_labelled_items": minimum}
    why = (f"no confidence threshold reaches a lower bound of {target:.0%}: the best is {bounds[best]:.3f} at "
           f"confidence >= {thresholds[best]:.3f} ({int(k[best])} of {int(n[best])} agreed)")
    if len(conf) < minimum:
        more = minimum - len(conf)
        return {**found, "more_labelled_needed": more, "more_needed_at": None, "reason": (
            f"{why}. At least {more} more labelled items are needed: with fewer than {minimum}, even if all agree "
            "with people, no threshold can reach the target")}
    projected = _projected_more(k, n, target, minimum)
    if projected is None:
        return {**found, "more_labelled_needed": None, "more_needed_at": None, "reason": (
            f"{why}. At every threshold with {minimum} or more labelled items the judge agrees with people at most "
            "as often as the target: more labels will not change that, unless they agree more often")}
    more, at = projected
    return {**found, "more_labelled_needed": more, "more_needed_at": float(thresholds[at]), "reason": (
        f"{why}. If agreement at confidence >= {thresholds[at]:.3f} stays at {k[at] / n[at]:.1%}, about {more} "
        "more labelled items at or above that confidence would bring the bound to the target")}
