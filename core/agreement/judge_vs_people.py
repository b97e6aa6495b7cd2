"""Judge vs people next to people vs people: each annotator's agreement with the others' consensus beside the
judge's agreement with that same consensus on the same items, with paired bootstrap CIs and a reading.

For annotator j the ground is: the graded items j labelled that at least one other annotator labelled too.
On each of them "the others' consensus" is the mean of the OTHER annotators' scores, rounded half up (as the
report's headline rounds its item means, see report.POOLING); j's score and the judge's score are each compared
with it, so a row compares the judge and annotator j on identical items against an identical reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score

from core.agreement.bootstrap import CONFIDENCE, _add_ci
from core.agreement.metrics import _defined, _plain, _undefined, exact_metrics, weighted_kappa
from core.agreement_labels import ascii_label

METRICS = ("weighted_kappa", "exact")
# In readings, lower case and ASCII (the CLI prints them): "weighted kappa (quadratic)", "exact agreement".
NAMES = {name: ascii_label(name).lower() for name in METRICS}
FEW_ITEMS = 30  # below this many items a row's percentile-bootstrap CI is rough (and the reading with it)
POOLED = "all annotators (pooled)"
METHOD = (
    "For annotator j: the graded items j labelled that at least one other annotator labelled too. On each, the "
    "others' consensus is the mean of the other annotators' scores, rounded to the nearest scale value with "
    "halves rounded up (as the headline rounds item means). The annotator column compares j's scores with that "
    "consensus; the judge column compares the judge's scores with the SAME leave-j-out consensus on the SAME "
    "items, so each row puts the judge and annotator j on identical ground. Metrics: quadratic-weighted Cohen's "
    "kappa over the whole scale (as the headline) and exact agreement. Difference = judge - annotator. 95% CIs: "
    "percentile bootstrap over items; the judge, the annotator and their difference come from the same "
    "resamples, so the difference's CI is paired. Pooled row: every (annotator, item) pair of the rows above "
    "taken together (an item counts once per annotator who labelled it); its bootstrap resamples whole items, "
    "all of an item's pairs together. Reading: a row is 'better' when the difference's CI lies above 0, 'worse' "
    "below 0, 'about the same' when it contains 0. Human ceiling: the report's Krippendorff's alpha (ordinal) "
    "among annotators (human_human: every item with 2+ labels, graded or not)."
)
# Per pair, the sums every statistic needs (scores as scale positions: score - scale minimum).
_COLUMNS = ("pairs", "a", "aa", "c", "cc", "ac", "m", "mm", "mc", "a_eq", "m_eq")
_COL = {name: index for index, name in enumerate(_COLUMNS)}


def judge_vs_people(
    items: np.ndarray,
    people: np.ndarray,
    human: np.ndarray,
    model: np.ndarray,
    graded: np.ndarray,
    names: np.ndarray,
    labels: Sequence[int],
    ceiling: Mapping[str, Any] | None,
    *,
    n_resamples: int,
    seed: int,
) -> dict[str, Any]:
    """The judge-vs-people table as a JSON-ready block; `available` False with a `reason` when not computable.

    items / people / human: one entry per rating row (item code, annotator code, score; NaN = no score);
    model / graded: per item code; names: annotator name per code; ceiling: the report's Krippendorff's
    alpha (ordinal) metric object, reused as it is.
    """
    labels = list(labels)
    use = ~np.isnan(human) & graded[items] if len(items) else np.zeros(0, dtype=bool)
    if not labels or not use.any():
        return {"available": False, "reason": "no human score on a graded item", "method": METHOD}
    low = labels[0]
    item, person = items[use], people[use]
    score = np.rint(human[use]).astype(np.int64) - low  # scores are whole numbers (checked on input)
    n_items_total = len(graded)
    sums = np.bincount(item, weights=score, minlength=n_items_total).round().astype(np.int64)
    counts = np.bincount(item, minlength=n_items_total)
    others_n = counts[item] - 1
    keep = others_n >= 1
    n_annotators = int(len(np.unique(person)))
    if n_annotators < 2:
        return {"available": False, "method": METHOD,
                "reason": "fewer than 2 annotators scored a graded item: there are no others to compare with"}
    if not keep.any():
        return {"available": False, "method": METHOD,
                "reason": "no graded item was labelled by 2 or more annotators"}
    item, person, a, others_n = item[keep], person[keep], score[keep], others_n[keep]
    others_sum = sums[item] - a
    c = (2 * others_sum + others_n) // (2 * others_n)  # floor(mean + 1/2): halves round up, in integers
    m = np.rint(model[item]).astype(np.int64) - low
    features = _features(a, c, m)
    rng = np.random.default_rng(seed)

    rows, left_out = [], []
    for code in np.unique(people[use]):
        mine = person == code
        name = _plain(names[code])
        if not mine.any():
            left_out.append({"annotator": name, "reason": "no item this annotator labelled (and the judge graded) "
                                                          "was labelled by another annotator"})
            continue
        row: dict[str, Any] = {"annotator": name, "n_items": int(mine.sum())}
        row.update(_compare(a[mine], c[mine], m[mine], features[mine], labels, n_resamples, rng))
        rows.append(row)
    # Pooled: all pairs; one bootstrap unit per item (its pairs' sums added up).
    unit, unit_index = np.unique(item, return_inverse=True)
    per_item = np.stack([np.bincount(unit_index, weights=column, minlength=len(unit)) for column in features.T],
                        axis=1).round().astype(np.int64)
    pooled: dict[str, Any] = {"annotator": POOLED, "n_items": int(len(unit)), "n_pairs": int(len(a))}
    pooled.update(_compare(a, c, m, per_item, labels, n_resamples, rng))
    for row in [*rows, pooled]:
        _few_items_note(row)

    metric = next((name for name in METRICS if any(_verdict(r[name]) for r in rows)), METRICS[0])
    tally = _tally(rows, metric)
    ceiling = dict(ceiling) if ceiling is not None else _undefined("not computed")
    return {
        "available": True,
        "method": METHOD,
        "metrics": list(METRICS),
        "confidence": CONFIDENCE,
        "n_annotators": n_annotators,
        "rows": rows,
        "pooled": pooled,
        "left_out": left_out,
        "reading_metric": metric,
        "tally": tally,
        "reading": reading(tally, NAMES[metric], n_resamples, sum(row["n_items"] < FEW_ITEMS for row in rows)),
        "ceiling": {"krippendorff_alpha_ordinal": ceiling},
        "ceiling_reading": ceiling_reading(ceiling, pooled["weighted_kappa"]),
    }


def _features(a: np.ndarray, c: np.ndarray, m: np.ndarray) -> np.ndarray:
    """One row of sums per pair (see _COLUMNS): enough to compute kappa and exact agreement of any resample."""
    return np.stack([np.ones_like(a), a, a * a, c, c * c, a * c, m, m * m, m * c, a == c, m == c], axis=1).astype(
        np.int64
    )


def _compare(
    a: np.ndarray, c: np.ndarray, m: np.ndarray, units: np.ndarray, labels: list[int], n_resamples: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Annotator vs consensus, judge vs consensus and judge - annotator, each metric with its bootstrap CI."""
    point = {
        "weighted_kappa": (_kappa(a, c, labels), _kappa(m, c, labels)),
        "exact": (exact_metrics(a, c)["exact"], exact_metrics(m, c)["exact"]),
    }
    boots: dict[str, tuple[Any, Any]] = pair_statistics(_resample(units, n_resamples, rng)) if n_resamples else {}
    out: dict[str, Any] = {}
    for name, (annotator, judge) in point.items():
        boot = boots.get(name, (None, None))
        if annotator["value"] is not None and judge["value"] is not None:
            difference = {"value": judge["value"] - annotator["value"], "n": annotator["n"]}
        else:
            side, undefined = ("annotator's", annotator) if annotator["value"] is None else ("judge's", judge)
            difference = _undefined(f"the {side} {NAMES[name]} is undefined: {undefined['reason']}",
                                    n=annotator["n"])
        diff_boot = boot[1] - boot[0] if boot[0] is not None and boot[1] is not None else None
        for metric, values in ((annotator, boot[0]), (judge, boot[1]), (difference, diff_boot)):
            _add_ci(metric, values, n_resamples)
        out[name] = {"annotator": annotator, "judge": judge, "difference": difference}
        out[name]["judge_vs_annotator"] = _verdict(out[name])
    return out


def _kappa(x: np.ndarray, c: np.ndarray, labels: list[int]) -> dict[str, Any]:
    """metrics.weighted_kappa of x vs c (scale positions), with sklearn fed each distinct pair once, weighted by
    its count: the same value, without sklearn's per-sample Python loops (~25 ms per 10,000 pairs)."""
    low = labels[0]
    if len(x) < 2 or np.union1d(x, c).size == 1:
        return weighted_kappa(x + low, c + low, labels)  # undefined, with its reason
    size = len(labels)
    pairs, counts = np.unique(x * size + c, return_counts=True)
    value = cohen_kappa_score(pairs // size + low, pairs % size + low, labels=labels, weights="quadratic",
                              sample_weight=counts)
    return _defined(value, n=int(len(x)))


def _distinct(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a non-negative integer matrix and how often each occurs.

    Rows are numbered in mixed radix (one digit per column) so that a 1-D unique does the work: np.unique with
    axis=0 sorts rows as bytes, several times slower. Falls back to it when the numbers would not fit.
    """
    bases = units.max(axis=0) + 1
    if np.sum(np.log2(bases.astype(float))) < 62:
        places = np.concatenate([[1], np.cumprod(bases[:0:-1])])[::-1]
        _, first, counts = np.unique(units @ places, return_index=True, return_counts=True)
        return units[first], counts
    return np.unique(units, axis=0, return_counts=True)


def _resample(units: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Column sums of `n_resamples` resamples of the units (rows), drawn with replacement: (B, columns).

    The sums depend on a resample only through how often each distinct unit is drawn, so those counts are drawn
    from the multinomial distribution over distinct units, as core.agreement.bootstrap does over cells.
    """
    distinct, counts = _distinct(units)
    n = int(counts.sum())
    probabilities = counts / n
    chunk = max(1, 4_000_000 // len(distinct))  # bounds memory when almost every unit is different
    parts = [
        # In floats for BLAS; whole numbers stay exact far beyond any study's size.
        rng.multinomial(n, probabilities, size=min(chunk, n_resamples - start)).astype(float) @ distinct.astype(float)
        for start in range(0, n_resamples, chunk)
    ]
    return np.concatenate(parts)


def pair_statistics(sums: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(annotator, judge) kappa and exact agreement for each row of column sums (see _COLUMNS); NaN if undefined.

    Quadratic-weighted kappa from moments: observed = sum (x - c)^2, expected (under independent margins)
    = sum x^2 - 2 (sum x)(sum c) / n + sum c^2, kappa = 1 - observed / expected; equal to sklearn's
    cohen_kappa_score(weights="quadratic", labels=whole scale) (see tests).
    """
    sums = np.asarray(sums, dtype=float)
    col = {name: sums[:, index] for name, index in _COL.items()}
    n = col["pairs"]
    out = {}
    kappas = []
    for x, xx, xc in (("a", "aa", "ac"), ("m", "mm", "mc")):
        # Both multiplied by n, so that they stay whole numbers (exact in float64 far beyond any study's size).
        observed = n * (col[xx] - 2 * col[xc] + col["cc"])
        expected = n * col[xx] - 2 * col[x] * col["c"] + n * col["cc"]
        with np.errstate(divide="ignore", invalid="ignore"):
            kappa = np.where((expected > 0.5) & (n >= 2), 1 - observed / expected, np.nan)
        kappas.append(kappa)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["exact"] = (col["a_eq"] / n, col["m_eq"] / n)
    out["weighted_kappa"] = (kappas[0], kappas[1])
    return out


def _verdict(comparison: Mapping[str, Any]) -> str | None:
    """'better' / 'worse' / 'same' for the judge against this annotator, from the difference's CI; None without."""
    difference = comparison["difference"]
    low, high = difference.get("ci_low"), difference.get("ci_high")
    if difference.get("value") is None or low is None or high is None:
        return None
    return "better" if low > 0 else "worse" if high < 0 else "same"


def _few_items_note(row: dict[str, Any]) -> None:
    if row["n_items"] < FEW_ITEMS:
        row["note"] = (f"only {row['n_items']} items: with fewer than {FEW_ITEMS} the bootstrap CIs are rough, "
                       "read this row with care")


def _tally(rows: list[dict[str, Any]], metric: str) -> dict[str, int]:
    verdicts = [row[metric]["judge_vs_annotator"] for row in rows]
    return {"better": verdicts.count("better"), "worse": verdicts.count("worse"), "same": verdicts.count("same"),
            "no_ci": verdicts.count(None), "annotators": len(verdicts)}


def _annotators(count: int) -> str:
    return f"{count} annotator" if count == 1 else f"{count} annotators"


def reading(tally: Mapping[str, int], metric: str, n_resamples: int = 1, few: int = 0) -> str:
    """One line from the per-annotator verdicts: about as well / below every / above every / N better, K worse."""
    total, better, worse, same, no_ci = (tally[k] for k in ("annotators", "better", "worse", "same", "no_ci"))
    if not n_resamples:
        return "No reading: the bootstrap is off (0 resamples), so no difference has a confidence interval."
    if no_ci == total:
        return (f"No reading: no annotator's difference in {metric} with the judge has a confidence interval "
                "(see each row's reason).")
    basis = f" ({metric}; judge - annotator, {CONFIDENCE:.0%} CIs)"
    rest = f"; {_annotators(no_ci)} without a confidence interval" if no_ci else ""
    if few:  # wide intervals contain 0 easily: "about as well" on few items is weak evidence
        rest += f"; {_annotators(few)} with fewer than {FEW_ITEMS} items, whose CIs are rough"
    compared = total - no_ci
    if same == compared:
        return "The judge agrees with people about as well as people agree with each other" + basis + rest + "."
    if worse == compared:
        return ("The judge agrees with the others' consensus less well than every annotator does: below every "
                "annotator" + basis + rest + ".")
    if better == compared:
        return ("The judge agrees with the others' consensus better than every annotator does: above every "
                "annotator" + basis + rest + ".")
    clauses = [f"{words} {count}" for words, count in (("better than", better), ("worse than", worse),
                                                        ("about as well as", same)) if count]
    joined = ", ".join(clauses[:-1]) + " and " + clauses[-1]
    return f"The judge agrees with the others' consensus {joined} of the {compared} annotators" + basis + rest + "."


def _with_ci(metric: Mapping[str, Any]) -> str:
    if metric.get("value") is None:
        return f"undefined ({metric.get('reason', 'no reason given')})"
    if metric.get("ci_low") is None:
        return f"{metric['value']:.3f}"
    return f"{metric['value']:.3f} [{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]"


def ceiling_reading(alpha: Mapping[str, Any], pooled: Mapping[str, Any]) -> str:
    """The human ceiling (Krippendorff's alpha) beside the pooled weighted kappas (pooled["weighted_kappa"])."""
    if alpha.get("value") is None:
        return f"Human ceiling: Krippendorff's alpha (ordinal) is undefined ({alpha.get('reason', 'no reason given')})."
    ceiling = alpha["value"]
    judge, annotators = pooled["judge"], pooled["annotator"]
    text = (f"Human ceiling: Krippendorff's alpha (ordinal) among annotators = {ceiling:.3f}. Pooled weighted kappa "
            f"with the others' consensus: judge {_with_ci(judge)}, annotators {_with_ci(annotators)}")
    low, high = judge.get("ci_low"), judge.get("ci_high")
    if judge.get("value") is None:
        where = ""
    elif low is None or high is None:
        where = "; the judge has no CI to set against alpha"
    elif high < ceiling:
        where = "; the judge's whole CI is below alpha"
    elif low > ceiling:
        where = "; the judge's whole CI is above alpha"
    else:
        where = "; alpha is inside the judge's CI"
    return (f"{text}{where}. A consensus is steadier than one rater, so kappa against it tends to exceed alpha: "
            "the like-for-like comparison is the judge with the annotators' pooled kappa, alpha is a guide.")
