"""The alternative-annotator test (alt-test): may the judge replace one of the annotators?

Calderon, Reichart & Dror, "The Alternative Annotator Test for LLM-as-a-Judge: How to Statistically Justify
Replacing Human Annotators with LLMs", ACL 2025 (arXiv:2501.10970); the authors' reference implementation is
github.com/nitaytech/AltTest. Leave one annotator j out at a time. On each item j labelled that has a judge
score and at least one other annotator's label, score how well the judge, and how well j, align with the
OTHER annotators' labels (the paper's alignment scoring function S). W^f = 1 where the judge is at least as
aligned as j, W^h = 1 where j is at least as aligned as the judge (both are 1 on a tie). rho^f_j and rho^h_j
are their means over j's items. One-sided paired t-test of H0: rho^f_j - rho^h_j <= -epsilon (epsilon: the
cost-benefit margin granted to the judge) on the per-item differences W^f - W^h; Benjamini-Yekutieli across
the tested annotators at q = 0.05. The judge "wins" against j where H0 is rejected; the winning rate omega
is the share of tested annotators it wins against, and the judge passes when omega >= 0.5. The average
advantage probability rho is the mean of rho^f_j, the measure the paper proposes to compare judges.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from scipy import stats

from core.agreement.metrics import _plain
from core.errors import InputError

EPSILON = 0.2  # the authors' implementation's default, the paper's value for expert annotators
EPSILON_GUIDANCE = (
    "epsilon is the cost-benefit margin: how much less often the judge may be the better-aligned one than a human "
    "annotator and still be preferred, because it is cheaper and faster. The paper's rule of thumb: 0.2 for expert "
    "annotators (reliable but expensive), 0.15 for skilled annotators (e.g. trained students or workers), 0.1 for "
    "crowd-workers; use a smaller epsilon when the annotators agree little among themselves."
)
Q = 0.05  # the false discovery rate the paper controls with Benjamini-Yekutieli
MIN_ITEMS = 30  # per annotator: the paper's minimum for the t-test's normality assumption
MIN_LABELS = 2  # per item: the left-out annotator and at least one other
MIN_ANNOTATORS = 3  # the paper recommends 3 or more: with 2 there is no consensus to represent
PASS_RATE = 0.5
CITATION = (
    "Calderon, Reichart & Dror, The Alternative Annotator Test for LLM-as-a-Judge: How to Statistically Justify "
    "Replacing Human Annotators with LLMs, ACL 2025 (arXiv:2501.10970)"
)
Scoring = Literal["accuracy", "neg_rmse"]
SCORINGS: dict[str, str] = {
    "accuracy": "accuracy: the share of the other annotators whose label equals the one being scored",
    "neg_rmse": "negative RMSE: minus the root mean squared difference from the other annotators' scores",
}
METHOD = (
    "Leave one annotator out at a time; on each item they labelled that also has a judge score and another "
    "annotator's label, compare how well the judge and how well the left-out annotator align with the other "
    "annotators (the alignment scoring function). Judge advantage = share of those items where the judge "
    "is at least as aligned; annotator advantage = share where the annotator is. One-sided paired t-test of "
    "H0: judge advantage - annotator advantage <= -epsilon; Benjamini-Yekutieli correction across the tested "
    "annotators at q = 0.05; the judge wins against an annotator where H0 is rejected."
)


def resolve_epsilon(epsilon: float | None) -> float:
    """The margin to use: the paper's default for None, else `epsilon` itself; InputError outside [0, 1)."""
    if epsilon is None:
        return EPSILON
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float | np.integer | np.floating):
        raise InputError(f"epsilon must be a number in [0, 1), got {epsilon!r}")
    value = float(epsilon)
    if not (math.isfinite(value) and 0 <= value < 1):
        raise InputError(
            f"epsilon must be at least 0 and below 1 (the judge's advantage and an annotator's are shares of "
            f"items, so their gap lies in [-1, 1]), got {epsilon!r}; the paper suggests 0.2 for expert "
            "annotators, 0.15 for skilled ones, 0.1 for crowd-workers"
        )
    return value


def default_scoring(labels: list[int]) -> tuple[Scoring, str]:
    """The paper's alignment function for a scale, and why: classes (two labels) accuracy, else negative RMSE."""
    if len(labels) <= 2:
        return "accuracy", (
            "a two-label scale is a classification, which the paper scores by accuracy; on two labels negative "
            "RMSE would rank every comparison the same way"
        )
    return "neg_rmse", (
        f"a {len(labels)}-point ordinal scale: the paper scores alignment on rating scales by negative RMSE, "
        "so a near miss counts as closer than a far one"
    )


def _indicators(items: np.ndarray, human: np.ndarray, judge: np.ndarray, scoring: Scoring) -> tuple[
        np.ndarray, np.ndarray]:
    """W^f, W^h per rating: is the judge / the rating's annotator at least as aligned with the item's OTHER labels.

    Everything is integer arithmetic on whole-number scores (exact in float64), so ties are exact ties.
    """
    n_items = int(items.max()) + 1 if len(items) else 0
    count = np.bincount(items, minlength=n_items)[items] - 1  # the other annotators' labels on the item
    f = judge[items]
    if scoring == "accuracy":
        # Others whose label equals the judge's / this annotator's: same denominator, so compare counts.
        same_as_judge = np.bincount(items, weights=(human == f), minlength=n_items)[items] - (human == f)
        _, label = np.unique(human, return_inverse=True)
        pair = items * (int(label.max()) + 1 if len(label) else 1) + label  # one code per (item, label)
        same_as_me = np.bincount(pair)[pair] - 1
        judge_score, my_score = same_as_judge, same_as_me.astype(float)
    else:
        # Sum of squared differences from the others (same denominator as the MSE, whose root is monotone):
        # sum_k (x - a_k)^2 = n x^2 - 2 x T1 + T2 with T1, T2 the others' sum and sum of squares.
        t1 = np.bincount(items, weights=human, minlength=n_items)[items] - human
        t2 = np.bincount(items, weights=human * human, minlength=n_items)[items] - human * human
        judge_score = -(count * f * f - 2 * f * t1 + t2)
        my_score = -(count * human * human - 2 * human * t1 + t2)
    return judge_score >= my_score, my_score >= judge_score


def _one_sided_t(diff: np.ndarray, epsilon: float) -> tuple[float | None, float, str | None]:
    """(t, p, note) of H0: mean(diff) <= -epsilon; scipy's t-test, or its limit when every diff is the same."""
    if np.all(diff == diff[0]):
        # Zero variance: the t statistic is ±inf (or 0/0); scipy would warn and return inf/NaN.
        mean = float(diff[0])
        gap = "above" if mean > -epsilon else "not above"
        p = 0.0 if mean > -epsilon else 1.0
        return None, p, (
            f"every item gave the same difference (judge minus annotator {mean:+g}), so the t-test has no "
            f"variance: the difference is {gap} -epsilon on every item and p is the test's limit, {p:g}"
        )
    result = stats.ttest_1samp(diff, -epsilon, alternative="greater")
    return float(result.statistic), float(result.pvalue), None


def alt_test(
    items: np.ndarray,
    people: np.ndarray,
    human: np.ndarray,
    judge: np.ndarray,
    names: np.ndarray,
    *,
    labels: list[int],
    epsilon: float | None = None,
    scoring: Scoring | None = None,
) -> dict[str, Any]:
    """The alt-test as a JSON-ready block; the rows to use are the arrays given (filter them to choose).

    items / people / human: one entry per rating (item code, annotator code, whole-number score, NaN = none);
    judge: the judge's score per item code (NaN = none); names: annotator name per code; labels: the scale.
    """
    eps = resolve_epsilon(epsilon)
    if scoring is None:
        scoring, why = default_scoring(labels)
    elif scoring in SCORINGS:
        why = "chosen by the caller"
    else:
        raise InputError(f"scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
    items, people = np.asarray(items, dtype=np.int64), np.asarray(people, dtype=np.int64)
    human, judge = np.asarray(human, dtype=float), np.asarray(judge, dtype=float)
    rated = ~np.isnan(human)
    with_judge = rated & ~np.isnan(judge[items])
    n_labels = np.bincount(items[with_judge], minlength=len(judge))
    use = with_judge & (n_labels[items] >= MIN_LABELS)
    w_f, w_h = _indicators(items[use], human[use], judge, scoring)
    who = people[use]

    base: dict[str, Any] = {
        "epsilon": eps,
        "epsilon_default": EPSILON,
        "epsilon_guidance": EPSILON_GUIDANCE,
        "q": Q,
        "scoring": {"function": scoring, "description": SCORINGS[scoring], "why": why},
        "min_items_per_annotator": MIN_ITEMS,
        "min_labels_per_item": MIN_LABELS,
        "n_items": int(np.count_nonzero(n_labels >= MIN_LABELS)),
        "method": METHOD,
        "citation": CITATION,
    }
    rows, tested, p_values = [], [], []
    for code in np.unique(people[rated]):
        mine = who == code
        n = int(np.count_nonzero(mine))
        row: dict[str, Any] = {"annotator": _plain(names[code]), "n_items": n, "judge_advantage": None,
                               "annotator_advantage": None, "t": None, "p": None, "p_adjusted": None, "won": None,
                               "excluded_reason": None, "note": None}
        if n:
            row["judge_advantage"] = float(np.mean(w_f[mine]))
            row["annotator_advantage"] = float(np.mean(w_h[mine]))
        if n < MIN_ITEMS:
            row["excluded_reason"] = (
                f"only {n} item(s) with a judge score and another annotator's label; the paper's t-test needs at "
                f"least {MIN_ITEMS} (left out of the winning rate)" if n else
                "no item they labelled has both a judge score and another annotator's label"
            )
        else:
            row["t"], p, row["note"] = _one_sided_t(w_f[mine].astype(float) - w_h[mine], eps)
            row["p"] = p
            tested.append(row)
            p_values.append(p)
        rows.append(row)

    base["annotators"] = rows
    base["n_annotators"] = len(rows)
    base["n_annotators_tested"] = len(tested)
    if not tested:
        reason = _unavailable_reason(rows, base["n_items"])
        return {"available": False, "reason": reason, "winning_rate": None, "advantage_probability": None,
                "passed": None, "n_annotators_won": None, "weak": None, "warnings": [],
                "decision": f"The alt-test cannot be run: {reason}.", **base}

    adjusted = stats.false_discovery_control(np.array(p_values), method="by")
    for row, p_adj in zip(tested, adjusted, strict=True):
        row["p_adjusted"] = float(p_adj)
        row["won"] = bool(p_adj <= Q)
    won = sum(row["won"] for row in tested)
    omega = won / len(tested)
    rho = float(np.mean([row["judge_advantage"] for row in tested]))
    warnings = []
    if len(tested) < MIN_ANNOTATORS:
        warnings.append(
            f"Weak result: only {len(tested)} annotator(s) could be tested; the paper recommends at least "
            f"{MIN_ANNOTATORS}. With fewer, each comparison is against one other person's labels, not a consensus."
        )
    if len(tested) < len(rows):
        warnings.append(f"{len(rows) - len(tested)} annotator(s) left out of the winning rate (see each row's reason).")
    passed = omega >= PASS_RATE
    return {
        "available": True,
        "reason": None,
        "winning_rate": omega,
        "advantage_probability": rho,
        "passed": passed,
        "n_annotators_won": won,
        "weak": len(tested) < MIN_ANNOTATORS,
        "warnings": warnings,
        "decision": _decision(passed, won, len(tested), omega, rho, eps, len(tested) < MIN_ANNOTATORS),
        **base,
    }


def _decision(passed: bool, won: int, tested: int, omega: float, rho: float, eps: float, weak: bool) -> str:
    verdict = (
        f"The judge passes the alt-test: it won against {won} of {tested} annotators (winning rate {omega:.2f} "
        f">= {PASS_RATE}) at epsilon = {eps:g}, so the data justify using it in place of an annotator"
        if passed else
        f"The judge fails the alt-test: it won against {won} of {tested} annotators (winning rate {omega:.2f} "
        f"< {PASS_RATE}) at epsilon = {eps:g}, so the data do not justify using it in place of an annotator"
    )
    advantage = (f"; on average it was at least as aligned with the other annotators as the left-out one on "
                 f"{rho:.0%} of items (advantage probability {rho:.2f})")
    caveat = f" Weak: only {tested} annotator(s) tested, the paper recommends {MIN_ANNOTATORS} or more." if weak else ""
    return verdict + advantage + "." + caveat


def _unavailable_reason(rows: list[dict[str, Any]], n_items: int) -> str:
    if not rows:
        return "no human labels"
    if n_items == 0:
        return ("no item has a judge score and labels from at least 2 annotators (the test compares the judge and "
                "one annotator with the others' labels)")
    return (f"no annotator has at least {MIN_ITEMS} items with a judge score and another annotator's label "
            "(the paper's minimum for its t-test; label more items with overlap)")
