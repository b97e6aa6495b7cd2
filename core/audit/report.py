"""The robustness audit's statistics: each perturbed run vs the unperturbed run on the same items (pure).

Per perturbation: the flip rate (items whose score changed) with an exact Clopper-Pearson interval, the
quadratic-weighted kappa vs the unperturbed run with a percentile-bootstrap interval (core.agreement's
bootstrap), the mean |difference|, the items that changed, and how agreement with the human consensus
changed: exact agreement and weighted kappa of each run vs the consensus, and their difference, with a
paired bootstrap (the same resampled items for both runs). Metric objects are shaped like the agreement
report's: `value` (None with a `reason`), `n`, `ci_low` / `ci_high`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from core.agreement.bootstrap import CONFIDENCE, _add_ci, _pooled_table, bootstrap_statistics
from core.agreement.inputs import BEFORE
from core.agreement.metrics import _undefined, exact_metrics, weighted_kappa
from core.errors import InputError

ItemId = Any  # an item's id as the caller keys it (a study's item number, a data file's id)

FLIP_METHOD = ("A flip is an item whose score under the perturbation differs from its unperturbed score (the "
               "swapped-responses score is first mapped back to the original order's meaning). Flip rate: flips / "
               "items scored by both runs, with an exact Clopper-Pearson 95% interval (scipy.stats.binomtest). "
               "Items whose answer failed to parse in either run are counted apart (n_unscored), not as flips.")
KAPPA_METHOD = ("Quadratic-weighted Cohen's kappa between the unperturbed and the perturbed scores over the whole "
                "scale (scikit-learn), with a 95% percentile bootstrap over items (core.agreement.bootstrap).")
HUMANS_METHOD = ("Human consensus per item: the mean of its annotators' scores (before the reveal in a blind study) "
                 "rounded to the nearest scale value, halves up, as the agreement report's headline. Each run's exact "
                 "agreement and weighted kappa with it are computed on the items that both runs scored and people "
                 "labelled; the difference (perturbed - unperturbed) has a paired 95% percentile bootstrap: each "
                 "resample draws the items once for both runs.")


@dataclass(frozen=True)
class RunScores:
    """One perturbed run: per item, its score in the original request's meaning (None: no score)."""

    name: str
    scores: Mapping[ItemId, int | None]
    description: str = ""
    kind: str = "text"
    judge: str = ""
    errors: Mapping[ItemId, str] = field(default_factory=dict)  # items it could not apply to or grade, and why
    not_applicable: str | None = None  # why it applied to no item at all


def human_consensus(rows: Iterable[Mapping[str, Any]], blind: bool) -> dict[ItemId, int]:
    """Per item: its annotators' mean score rounded half up (scores before the reveal when `blind`), as the
    agreement report's headline reads Studies.ratings rows; items nobody scored are absent."""
    sums: dict[ItemId, int] = defaultdict(int)
    counts: dict[ItemId, int] = defaultdict(int)
    for row in rows:
        if row.get("annotator") is None:
            continue
        score = row.get(BEFORE) if blind else row.get("human_score")
        if score is None:
            continue
        sums[row["item_id"]] += int(score)
        counts[row["item_id"]] += 1
    return {item: (2 * sums[item] + counts[item]) // (2 * counts[item]) for item in counts}


def pair_consensus(rows: Iterable[Mapping[str, Any]], blind: bool) -> dict[ItemId, int]:
    """Per item of a pairwise study: the response a strict majority of its annotators chose, as the (A, B) order's
    score means it (0: A, 1: B); items with a tie as majority, or none, are absent (a 0/1 judge cannot match them).
    A pairwise label's score is its choice's index in core.studies.pairs.CHOICES ("A", "B", "tie")."""
    votes: dict[ItemId, Counter[int]] = defaultdict(Counter)
    for row in rows:
        if row.get("annotator") is None:
            continue
        score = row.get(BEFORE) if blind else row.get("human_score")
        if score is not None:
            votes[row["item_id"]][int(score)] += 1
    consensus: dict[ItemId, int] = {}
    for item, counted in votes.items():
        choice, count = counted.most_common(1)[0]
        if 2 * count > sum(counted.values()) and choice in (0, 1):
            consensus[item] = choice
    return consensus


def flip_rate(flips: int, n: int) -> dict[str, Any]:
    """flips / n with its exact Clopper-Pearson 95% interval; undefined with a reason when n is 0."""
    if n == 0:
        return _undefined("no item was scored by both runs", n=0)
    interval = stats.binomtest(flips, n).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return {"value": flips / n, "n": n, "flips": flips, "ci_low": float(interval.low), "ci_high": float(interval.high),
            "ci_method": "Clopper-Pearson (exact)"}


def _weights(n: int, n_resamples: int, rng: np.random.Generator) -> Iterable[np.ndarray]:
    """(B, n) item counts of item resamples drawn with replacement, in chunks that bound memory."""
    chunk = max(1, 4_000_000 // max(1, n))
    for start in range(0, n_resamples, chunk):
        yield rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, n_resamples - start))


def resampled_agreement(weights: np.ndarray, a: np.ndarray, b: np.ndarray, low: int, n_labels: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(exact agreement, quadratic-weighted kappa) of a vs b for each row of item counts `weights` (B, n).

    With every count 1 these are exact_metrics' and scikit-learn's cohen_kappa_score(weights="quadratic",
    labels=the scale) (see the tests); NaN where kappa is 0/0.
    """
    n = weights.sum(axis=1).astype(float)
    positions = np.arange(n_labels)
    one_a = (a[:, None] - low == positions[None, :]).astype(float)
    one_b = (b[:, None] - low == positions[None, :]).astype(float)
    rows, cols = weights @ one_a, weights @ one_b
    penalty = (positions[:, None] - positions[None, :]) ** 2.0
    observed = weights @ ((a - b) ** 2.0)
    expected = np.einsum("bk,kl,bl->b", rows, penalty, cols) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(expected > 0, 1.0 - observed / expected, np.nan)
    return weights @ (a == b).astype(float) / n, kappa


def _vs_baseline(base: np.ndarray, perturbed: np.ndarray, labels: list[int], n_resamples: int, seed: int
                 ) -> dict[str, Any]:
    kappa = weighted_kappa(base, perturbed, labels)
    resampled = None
    if n_resamples and len(base) and kappa["value"] is not None:
        table = _pooled_table(base.astype(float), base.astype(int), perturbed, labels[0])
        resampled = bootstrap_statistics(table, len(labels), n_resamples, seed)["weighted_kappa"]
    _add_ci(kappa, resampled, n_resamples)
    return kappa


def _vs_humans(base: np.ndarray, perturbed: np.ndarray, humans: np.ndarray, labels: list[int], n_resamples: int,
               seed: int) -> dict[str, Any]:
    """Each run's exact agreement and kappa with the consensus, and the difference, with paired bootstrap CIs."""
    n = len(humans)
    if n == 0:
        return {"available": False, "reason": "no item scored by both runs has a human label", "n": 0}
    runs = {"baseline": base, "perturbed": perturbed}
    block: dict[str, Any] = {"available": True, "n": n}
    for name, scores in runs.items():
        block[name] = {"exact": exact_metrics(humans, scores)["exact"],
                       "weighted_kappa": weighted_kappa(humans, scores, labels)}
    draws: dict[str, list[np.ndarray]] = {f"{run}.{metric}": [] for run in runs for metric in ("exact", "kappa")}
    if n_resamples:
        for weights in _weights(n, n_resamples, np.random.default_rng(seed)):
            for run, scores in runs.items():
                exact, kappa = resampled_agreement(weights, humans, scores, labels[0], len(labels))
                draws[f"{run}.exact"].append(exact)
                draws[f"{run}.kappa"].append(kappa)
    resampled = {key: np.concatenate(parts) if parts else None for key, parts in draws.items()}
    block["difference"] = {}
    for metric, key in (("exact", "exact"), ("weighted_kappa", "kappa")):
        for run in runs:
            _add_ci(block[run][metric], resampled[f"{run}.{key}"], n_resamples)
        before, after = block["baseline"][metric]["value"], block["perturbed"][metric]["value"]
        if before is None or after is None:
            difference = _undefined("undefined for one of the runs", n=n)
        else:
            difference = {"value": after - before, "n": n}
        low_draws, high_draws = resampled[f"baseline.{key}"], resampled[f"perturbed.{key}"]
        _add_ci(difference, None if low_draws is None or high_draws is None else high_draws - low_draws,
                n_resamples)
        block["difference"][metric] = difference
    return block


def compare_run(
    baseline: Mapping[ItemId, int | None],
    run: RunScores,
    scale: tuple[int, int],
    humans: Mapping[ItemId, int] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """One row of the audit table: `run` vs the unperturbed `baseline` scores on the same items."""
    low, high = scale
    labels = list(range(low, high + 1))
    row: dict[str, Any] = {"perturbation": run.name, "description": run.description, "kind": run.kind,
                           "judge": run.judge, "not_applicable": run.not_applicable, "n_errors": len(run.errors),
                           "errors": [{"item_id": item, "message": message} for item, message in run.errors.items()]}
    scored = [item for item, score in baseline.items() if score is not None]
    both = [item for item in scored if run.scores.get(item) is not None]
    row["n_items"] = len(both)
    row["n_unscored"] = sum(1 for item in scored if item in run.scores and run.scores[item] is None)
    base = np.array([baseline[item] for item in both], dtype=int)
    perturbed = np.array([run.scores[item] for item in both], dtype=int)
    changed = base != perturbed
    row["flips"] = int(changed.sum())
    row["flip_rate"] = flip_rate(int(changed.sum()), len(both))
    row["weighted_kappa"] = _vs_baseline(base, perturbed, labels, n_resamples, seed)
    row["mean_abs_diff"] = float(np.abs(base - perturbed).mean()) if len(both) else None
    row["changed"] = [{"item_id": item, "baseline": int(b), "perturbed": int(p)}
                      for item, b, p, moved in zip(both, base, perturbed, changed, strict=True) if moved]
    if humans is None:
        row["humans"] = {"available": False, "reason": "no human labels given", "n": 0}
    else:
        labelled = [index for index, item in enumerate(both) if item in humans]
        reference = np.array([humans[both[index]] for index in labelled], dtype=int)
        row["humans"] = _vs_humans(base[labelled], perturbed[labelled], reference, labels, n_resamples, seed)
    return row


def audit_report(
    baseline: Mapping[ItemId, int | None],
    runs: Sequence[RunScores],
    scale: tuple[int, int],
    humans: Mapping[ItemId, int] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    sample: Mapping[str, Any] | None = None,
    baseline_judge: str = "",
) -> dict[str, Any]:
    """The audit block (JSON-ready): one row per perturbed run vs the unperturbed `baseline`, and the methods.

    `baseline` maps each audited item to its unperturbed score (None: no score); `humans` to its human
    consensus (human_consensus), None when there are no labels; `sample` says how the items were chosen.
    InputError for a bad scale or a negative n_resamples.
    """
    low, high = scale
    if low >= high:
        raise InputError(f"The scale must be (min, max) with min < max, got {scale!r}.")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 0:
        raise InputError(f"n_resamples must be a whole number >= 0, got {n_resamples!r}")
    return {
        "available": True,
        "scale": [low, high],
        "n_items": len(baseline),
        "n_baseline_scored": sum(1 for score in baseline.values() if score is not None),
        "baseline_judge": baseline_judge,
        "sample": dict(sample) if sample is not None else None,
        "rows": [compare_run(baseline, run, scale, humans, n_resamples=n_resamples, seed=seed) for run in runs],
        "bootstrap": {"n_resamples": n_resamples, "seed": seed, "confidence": CONFIDENCE},
        "method": {"flips": FLIP_METHOD, "kappa": KAPPA_METHOD, "humans": HUMANS_METHOD},
    }


def summary_table(block: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per perturbation (JSON-ready; the CLI prints it): flips, flip rate and kappa with CIs, and
    the change in agreement with people."""
    table = []
    for row in block.get("rows") or []:
        humans = row.get("humans") or {}
        difference = humans.get("difference") or {}
        flip, kappa = row.get("flip_rate") or {}, row.get("weighted_kappa") or {}
        table.append({
            "perturbation": row.get("perturbation"),
            "n_items": row.get("n_items"),
            "flips": row.get("flips"),
            "flip_rate": flip.get("value"), "flip_ci_low": flip.get("ci_low"), "flip_ci_high": flip.get("ci_high"),
            "kappa": kappa.get("value"), "kappa_ci_low": kappa.get("ci_low"), "kappa_ci_high": kappa.get("ci_high"),
            "human_exact_change": (difference.get("exact") or {}).get("value"),
            "human_kappa_change": (difference.get("weighted_kappa") or {}).get("value"),
            "n_unscored": row.get("n_unscored"),
            "note": row.get("not_applicable") or "",
        })
    return table
