"""Agreement statistics against hand-computed and textbook values, and against scipy / scikit-learn."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from core.agreement import (
    _pooled_table,
    agreement_report,
    bootstrap_statistics,
    load_ratings,
    table_statistics,
)
from core.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
nan = math.nan


def one_rater_rows(human: list[int], model: list[int], **extra) -> list[dict]:
    return [
        {"item_id": i, "annotator": "ann", "human_score": h, "model_score": m, **extra}
        for i, (h, m) in enumerate(zip(human, model, strict=True))
    ]


def matrix_rows(matrix: list[list[float]], model: list[int] | None = None) -> list[dict]:
    """Long rows from an annotators × items matrix (NaN = not rated); the model score defaults to 3."""
    rows = []
    for a, scores in enumerate(matrix):
        for i, score in enumerate(scores):
            if not math.isnan(score):
                m = 3 if model is None else model[i]
                rows.append({"item_id": f"u{i}", "annotator": f"obs{a}", "human_score": int(score), "model_score": m})
    return rows


def synthetic(n_items: int, n_annotators: int = 3, seed: int = 1, scale: tuple[int, int] = (1, 5)) -> list[dict]:
    rng = np.random.default_rng(seed)
    low, high = scale
    truth = rng.integers(low, high + 1, n_items)
    rows = []
    for i in range(n_items):
        model = int(np.clip(truth[i] + rng.integers(-1, 2), low, high))
        for a in range(n_annotators):
            human = int(np.clip(truth[i] + rng.integers(-1, 2), low, high))
            rows.append({"item_id": f"it{i}", "annotator": f"a{a}", "human_score": human, "model_score": model})
    return rows


def strict_json(report: dict) -> dict:
    return json.loads(json.dumps(report, allow_nan=False))


# --- quadratic-weighted kappa, by hand ---------------------------------------------------------

# Hand example, scale 1-3, two raters (human A, model B), six items:
#   A = 1 1 2 2 3 3     B = 1 2 2 3 3 3
# Quadratic weights w(i, j) = (i - j)^2 (the (L-1)^2 normalisation cancels in the ratio).
# Observed mean weighted disagreement: items 2 and 4 differ by 1 -> (1 + 1) / 6 = 1/3.
# Marginals: A = (2, 2, 2)/6, B = (1, 2, 3)/6. Expected = sum_ij pA_i pB_j (i - j)^2
#   i=1: (2/6·1 + 3/6·4) / 3 = 14/18;  i=2: (1/6·1 + 3/6·1) / 3 = 4/18;  i=3: (1/6·4 + 2/6·1) / 3 = 6/18
#   -> 24/18 = 4/3.  kappa = 1 - (1/3) / (4/3) = 0.75.
HAND_A, HAND_B = [1, 1, 2, 2, 3, 3], [1, 2, 2, 3, 3, 3]

# The same ratings with level 3 renamed 4 on a 1-4 scale, so level 3 is unused:
#   A = 1 1 2 2 4 4     B = 1 2 2 4 4 4
# Observed: item 2 differs by 1 (w=1), item 4 by 2 (w=4) -> 5/6 = 15/18.
# Expected: i=1: (2/6·1 + 3/6·9) / 3 = 29/18;  i=2: (1/6·1 + 3/6·4) / 3 = 13/18;  i=4: (1/6·9 + 2/6·4) / 3 = 17/18
#   -> 59/18.  kappa = 1 - 15/59 = 44/59 ≈ 0.7458.
# sklearn's default labels are the values seen, [1, 2, 4], weighted by POSITION (0, 1, 2): it treats 2 -> 4 as one
# step and returns 0.75 again. Passing labels = the whole scale gives the hand value.
GAP_A, GAP_B = [1, 1, 2, 2, 4, 4], [1, 2, 2, 4, 4, 4]


def test_weighted_kappa_matches_the_hand_computed_value() -> None:
    assert cohen_kappa_score(HAND_A, HAND_B, weights="quadratic") == pytest.approx(0.75)
    report = agreement_report(one_rater_rows(HAND_A, HAND_B), scale=(1, 3), n_resamples=0)
    assert report["weighted_kappa"]["value"] == pytest.approx(0.75, abs=1e-12)


@pytest.mark.parametrize("scale", [(1, 4), None])  # given, or inferred as the full integer range 1..4
def test_an_unused_scale_level_is_kept_in_the_kappa_weights(scale: tuple[int, int] | None) -> None:
    report = agreement_report(one_rater_rows(GAP_A, GAP_B), scale=scale, n_resamples=0)
    assert report["scale"]["labels"] == [1, 2, 3, 4]
    assert report["weighted_kappa"]["value"] == pytest.approx(44 / 59, abs=1e-12)
    sklearn_default = cohen_kappa_score(GAP_A, GAP_B, weights="quadratic")
    assert sklearn_default == pytest.approx(0.75)
    assert abs(report["weighted_kappa"]["value"] - sklearn_default) > 1e-3


# --- Krippendorff's alpha: the textbook reliability data ---------------------------------------

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers × 12 units, values 1-5.
KRIPPENDORFF = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
]


def test_the_krippendorff_package_reproduces_the_published_values() -> None:
    # Published: nominal .743, ordinal .815, interval .849.
    alpha = {
        level: krippendorff.alpha(reliability_data=KRIPPENDORFF, level_of_measurement=level, value_domain=range(1, 6))
        for level in ("nominal", "ordinal", "interval")
    }
    assert alpha["nominal"] == pytest.approx(0.743, abs=5e-4)
    assert alpha["ordinal"] == pytest.approx(0.815, abs=5e-4)
    assert alpha["interval"] == pytest.approx(0.849, abs=5e-4)


def test_report_alpha_matches_the_published_values() -> None:
    report = agreement_report(matrix_rows(KRIPPENDORFF), scale=(1, 5), n_resamples=0)
    assert report["krippendorff_alpha_interval"]["value"] == pytest.approx(0.849, abs=5e-4)
    assert report["krippendorff_alpha_ordinal"]["value"] == pytest.approx(0.815, abs=5e-4)
    assert report["krippendorff_alpha_interval"] == report["human_human"]["krippendorff_alpha_interval"]
    assert report["n_annotators"] == 4
    # Unit 12 has one rating (unpairable); the other 11 count.
    assert report["krippendorff_alpha_ordinal"]["n"] == 11


def test_alpha_uses_the_whole_scale_as_value_domain() -> None:
    # Ordinal distances depend on the values in between: a domain from the data alone would still be 1..5 here,
    # so use a wider scale and check the package is called with it (unused levels have no mass: same alpha).
    wide = agreement_report(matrix_rows(KRIPPENDORFF), scale=(0, 7), n_resamples=0)
    expected = krippendorff.alpha(
        reliability_data=KRIPPENDORFF, level_of_measurement="ordinal", value_domain=list(range(0, 8))
    )
    assert wide["krippendorff_alpha_ordinal"]["value"] == pytest.approx(expected, abs=1e-12)


# --- correlations and pooling ------------------------------------------------------------------


def pooled_arrays(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    by_item: dict = {}
    for row in rows:
        by_item.setdefault(row["item_id"], ([], row["model_score"]))[0].append(row["human_score"])
    means = np.array([np.mean(h) for h, _ in by_item.values()])
    model = np.array([m for _, m in by_item.values()], dtype=float)
    return means, model


def test_correlations_equal_scipy_on_item_means() -> None:
    rows = synthetic(80, seed=3)
    report = agreement_report(rows, n_resamples=0)
    means, model = pooled_arrays(rows)
    for name, result in (
        ("pearson", stats.pearsonr(means, model)),
        ("spearman", stats.spearmanr(means, model)),
        ("kendall", stats.kendalltau(means, model, variant="b")),
    ):
        assert report[name]["value"] == pytest.approx(result.statistic, abs=1e-12), name
        assert report[name]["p_value"] == pytest.approx(result.pvalue, rel=1e-9), name
        assert report[name]["n"] == 80


def test_exact_within_and_kappa_use_the_mean_rounded_half_up() -> None:
    # Two annotators: item a mean 2.5 -> 3, item b mean 1.5 -> 2, item c mean 3.0 -> 3, item d mean 1.0 -> 1.
    rows = [
        {"item_id": "a", "annotator": "x", "human_score": 2, "model_score": 3},
        {"item_id": "a", "annotator": "y", "human_score": 3, "model_score": 3},
        {"item_id": "b", "annotator": "x", "human_score": 1, "model_score": 1},
        {"item_id": "b", "annotator": "y", "human_score": 2, "model_score": 1},
        {"item_id": "c", "annotator": "x", "human_score": 3, "model_score": 1},
        {"item_id": "c", "annotator": "y", "human_score": 3, "model_score": 1},
        {"item_id": "d", "annotator": "x", "human_score": 1, "model_score": 1},
        {"item_id": "d", "annotator": "y", "human_score": 1, "model_score": 1},
    ]
    report = agreement_report(rows, scale=(1, 3), n_resamples=0)
    rounded, model = [3, 2, 3, 1], [3, 1, 1, 1]
    assert report["exact"]["value"] == pytest.approx(0.5)  # a and d
    assert report["within_1"]["value"] == pytest.approx(0.75)  # all but c (3 vs 1)
    expected = cohen_kappa_score(rounded, model, labels=[1, 2, 3], weights="quadratic")
    assert report["weighted_kappa"]["value"] == pytest.approx(expected, abs=1e-12)
    assert report["confusion"]["labels"] == [1, 2, 3]
    assert report["confusion"]["matrix"] == [[1, 0, 0], [1, 0, 0], [1, 0, 1]]  # rows human, columns model
    assert report["pearson"]["value"] == pytest.approx(stats.pearsonr([2.5, 1.5, 3, 1], model).statistic)
    assert "MEAN" in report["pooling"] and "halves rounded UP" in report["pooling"]


def test_round_half_up_also_below_zero() -> None:
    rows = [
        {"item_id": 1, "annotator": "x", "human_score": -2, "model_score": -1},
        {"item_id": 1, "annotator": "y", "human_score": -1, "model_score": -1},  # mean -1.5 -> -1
        {"item_id": 2, "annotator": "x", "human_score": 1, "model_score": 1},
    ]
    report = agreement_report(rows, scale=(-2, 2), n_resamples=0)
    assert report["exact"]["value"] == 1.0


def test_per_annotator_metrics_use_their_own_items() -> None:
    rows = synthetic(40, n_annotators=3, seed=5)
    rows = [r for r in rows if not (r["annotator"] == "a2" and int(r["item_id"][2:]) % 2)]  # a2 labels half
    report = agreement_report(rows, scale=(1, 5), n_resamples=0)
    entry = next(e for e in report["per_annotator"] if e["annotator"] == "a2")
    mine = [r for r in rows if r["annotator"] == "a2"]
    h = np.array([r["human_score"] for r in mine])
    m = np.array([r["model_score"] for r in mine])
    assert entry["n_items"] == 20
    assert entry["pearson"]["value"] == pytest.approx(stats.pearsonr(h, m).statistic)
    assert entry["kendall"]["p_value"] == pytest.approx(stats.kendalltau(h, m, variant="b").pvalue)
    assert entry["exact"]["value"] == pytest.approx(np.mean(h == m))
    kappa = cohen_kappa_score(h, m, labels=[1, 2, 3, 4, 5], weights="quadratic")
    assert entry["weighted_kappa"]["value"] == pytest.approx(kappa)
    assert [e["annotator"] for e in report["per_annotator"]] == ["a0", "a1", "a2"]


def test_human_human_pairs() -> None:
    rows = synthetic(30, n_annotators=3, seed=8)
    report = agreement_report(rows, scale=(1, 5), n_resamples=0)
    block = report["human_human"]
    scores = {(r["annotator"], r["item_id"]): r["human_score"] for r in rows}
    kappas, equal, total = [], 0, 0
    for a, b in combinations(["a0", "a1", "a2"], 2):
        sa = [scores[(a, f"it{i}")] for i in range(30)]
        sb = [scores[(b, f"it{i}")] for i in range(30)]
        kappas.append(cohen_kappa_score(sa, sb, labels=[1, 2, 3, 4, 5], weights="quadratic"))
        equal += sum(x == y for x, y in zip(sa, sb, strict=True))
        total += 30
    assert block["mean_pairwise_weighted_kappa"]["value"] == pytest.approx(np.mean(kappas))
    assert block["mean_pairwise_weighted_kappa"]["n_pairs"] == 3
    assert block["pairwise_exact"]["value"] == pytest.approx(equal / total)
    assert [p["annotators"] for p in block["pairs"]] == [["a0", "a1"], ["a0", "a2"], ["a1", "a2"]]


def test_pairs_sharing_fewer_than_two_items_are_left_out() -> None:
    rows = [
        {"item_id": 1, "annotator": "x", "human_score": 1, "model_score": 1},
        {"item_id": 1, "annotator": "y", "human_score": 2, "model_score": 1},
        {"item_id": 2, "annotator": "x", "human_score": 3, "model_score": 2},
        {"item_id": 2, "annotator": "z", "human_score": 3, "model_score": 2},
        {"item_id": 3, "annotator": "x", "human_score": 2, "model_score": 2},
        {"item_id": 3, "annotator": "z", "human_score": 1, "model_score": 2},
    ]
    block = agreement_report(rows, scale=(1, 3), n_resamples=0)["human_human"]
    assert [p["annotators"] for p in block["pairs"]] == [["x", "z"]]
    assert block["pairs_with_fewer_than_2_shared_items"] == 2  # x-y share 1 item, y-z none
    assert block["mean_pairwise_weighted_kappa"]["value"] == pytest.approx(
        cohen_kappa_score([3, 2], [3, 1], labels=[1, 2, 3], weights="quadratic")
    )


# --- the vectorised bootstrap ------------------------------------------------------------------


def _tables(rows: list[dict], low: int) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    by_item: dict = {}
    for row in rows:
        by_item.setdefault(row["item_id"], ([], row["model_score"]))[0].append(row["human_score"])
    sums = np.array([sum(h) for h, _ in by_item.values()])
    counts = np.array([len(h) for h, _ in by_item.values()])
    model = np.array([m for _, m in by_item.values()], dtype=float)
    mean, rounded = sums / counts, (2 * sums + counts) // (2 * counts)
    return _pooled_table(mean, rounded, model, low), mean, rounded, model


@pytest.mark.parametrize(("seed", "n_items", "n_annotators"), [(0, 50, 3), (1, 200, 2), (2, 15, 1), (3, 120, 4)])
def test_table_statistics_equal_scipy_and_sklearn(seed: int, n_items: int, n_annotators: int) -> None:
    rows = synthetic(n_items, n_annotators, seed=seed)
    table, mean, rounded, model = _tables(rows, low=1)
    got = {k: v[0] for k, v in table_statistics(table["counts"][None], **_axes(table), n_labels=5).items()}
    assert got["pearson"] == pytest.approx(stats.pearsonr(mean, model).statistic, abs=1e-12)
    assert got["spearman"] == pytest.approx(stats.spearmanr(mean, model).statistic, abs=1e-12)
    assert got["kendall"] == pytest.approx(stats.kendalltau(mean, model, variant="b").statistic, abs=1e-12)
    assert got["exact"] == pytest.approx(np.mean(rounded == model), abs=1e-12)
    assert got["within_1"] == pytest.approx(np.mean(np.abs(rounded - model) <= 1), abs=1e-12)
    kappa = cohen_kappa_score(rounded, model.astype(int), labels=[1, 2, 3, 4, 5], weights="quadratic")
    assert got["weighted_kappa"] == pytest.approx(kappa, abs=1e-12)


def _axes(table: dict) -> dict:
    return {k: table[k] for k in ("x_values", "y_values", "x_labels", "y_labels")}


def test_table_statistics_match_the_unused_level_hand_value() -> None:
    table, *_ = _tables(one_rater_rows(GAP_A, GAP_B), low=1)
    got = table_statistics(table["counts"][None], **_axes(table), n_labels=4)
    assert got["weighted_kappa"][0] == pytest.approx(44 / 59, abs=1e-12)


def test_table_statistics_are_nan_where_undefined() -> None:
    table, *_ = _tables(one_rater_rows([2, 2, 2], [2, 2, 2]), low=1)
    got = table_statistics(table["counts"][None], **_axes(table), n_labels=3)
    assert all(math.isnan(got[k][0]) for k in ("pearson", "spearman", "kendall", "weighted_kappa"))
    assert got["exact"][0] == 1.0


def test_bootstrap_ci_contains_the_estimate_and_is_reproducible() -> None:
    rows = synthetic(300, seed=11)
    first = agreement_report(rows, scale=(1, 5), seed=7)
    again = agreement_report(rows, scale=(1, 5), seed=7)
    other = agreement_report(rows, scale=(1, 5), seed=8)
    for name in ("pearson", "spearman", "kendall", "exact", "within_1", "weighted_kappa"):
        metric = first[name]
        assert metric["ci_low"] <= metric["value"] <= metric["ci_high"], name
        assert metric["ci_low"] < metric["ci_high"], name
        assert (metric["ci_low"], metric["ci_high"]) == (again[name]["ci_low"], again[name]["ci_high"]), name
        assert (metric["ci_low"], metric["ci_high"]) != (other[name]["ci_low"], other[name]["ci_high"]), name
    assert first["bootstrap"] == {**first["bootstrap"], "n_resamples": 1000, "seed": 7, "method": "percentile"}


def test_multinomial_cell_draws_match_resampling_item_indices() -> None:
    # The bootstrap draws cell counts from a multinomial instead of item indices; both give the same distribution.
    rows = synthetic(150, seed=21)
    table, *_ = _tables(rows, low=1)
    ours = bootstrap_statistics(table, n_labels=5, n_resamples=4000, seed=1)
    rng = np.random.default_rng(2)
    cells = np.repeat(np.arange(table["counts"].size), table["counts"].ravel())
    picked = cells[rng.integers(0, cells.size, size=(4000, cells.size))]
    literal_counts = np.stack([np.bincount(p, minlength=table["counts"].size) for p in picked])
    literal = table_statistics(literal_counts.reshape(4000, *table["counts"].shape), **_axes(table), n_labels=5)
    for name in ("pearson", "kendall", "exact", "weighted_kappa"):
        for q in (2.5, 50, 97.5):
            assert np.percentile(ours[name], q) == pytest.approx(np.percentile(literal[name], q), abs=0.015), name


def test_bootstrap_can_be_turned_off() -> None:
    report = agreement_report(synthetic(20), n_resamples=0)
    assert report["pearson"]["ci_low"] is None and "disabled" in report["pearson"]["ci_reason"]


@pytest.mark.timing
def test_bootstrap_of_10000_items_is_quick() -> None:
    import time

    rows = synthetic(10_000, seed=2)
    start = time.perf_counter()
    report = agreement_report(rows)
    elapsed = time.perf_counter() - start
    assert report["n_items"] == 10_000
    assert elapsed < 5.0  # the bench (bench/agreement_bench.py) measures the real figure; this catches blow-ups


# --- undefined values, exclusions --------------------------------------------------------------


def test_single_annotator_makes_human_human_undefined() -> None:
    report = strict_json(agreement_report(one_rater_rows(HAND_A, HAND_B), scale=(1, 3)))
    for key in ("krippendorff_alpha_ordinal", "krippendorff_alpha_interval"):
        assert report[key] == {"value": None, "reason": "fewer than 2 annotators", "n": 0}
    assert report["human_human"]["mean_pairwise_weighted_kappa"]["value"] is None
    assert report["human_human"]["pairwise_exact"]["value"] is None
    assert report["pearson"]["value"] is not None


def test_all_identical_scores_are_undefined_not_zero() -> None:
    rows = [{"item_id": i, "annotator": a, "human_score": 3, "model_score": 3} for i in range(5) for a in "xy"]
    report = strict_json(agreement_report(rows, scale=(1, 5)))
    assert report["weighted_kappa"]["value"] is None
    assert "same value (3)" in report["weighted_kappa"]["reason"]
    for name in ("pearson", "spearman", "kendall"):
        assert report[name]["value"] is None and "all identical" in report[name]["reason"]
        assert "ci_low" not in report[name]
    assert report["exact"]["value"] == 1.0 and report["exact"]["ci_low"] == 1.0
    assert report["krippendorff_alpha_ordinal"]["value"] is None
    assert report["human_human"]["pairs"][0]["weighted_kappa"]["value"] is None
    assert (
        report["human_human"]["mean_pairwise_weighted_kappa"]["reason"] == "kappa is undefined for every annotator pair"
    )


def test_constant_model_scores_make_correlations_undefined_but_kappa_defined() -> None:
    report = strict_json(agreement_report(one_rater_rows([1, 2, 3, 3], [2, 2, 2, 2]), scale=(1, 3)))
    assert "model scores are all identical" in report["pearson"]["reason"]
    assert report["weighted_kappa"]["value"] == pytest.approx(
        cohen_kappa_score([1, 2, 3, 3], [2, 2, 2, 2], labels=[1, 2, 3], weights="quadratic")
    )


def test_fewer_than_two_items() -> None:
    report = strict_json(agreement_report(one_rater_rows([2], [3]), scale=(1, 3)))
    assert report["pearson"]["reason"] == "fewer than 2 items (n=1)"
    assert report["weighted_kappa"]["reason"] == "fewer than 2 items (n=1)"
    assert report["exact"]["value"] == 0.0


def test_no_rows_at_all() -> None:
    report = strict_json(agreement_report([]))
    assert report["n_items"] == 0 and report["scale"] is None
    assert report["pearson"]["value"] is None and report["exact"]["value"] is None
    assert report["confusion"]["matrix"] == [] and report["disagreements"] == []


def test_exclusions_are_counted_never_silently_dropped() -> None:
    rows = [
        # a fine item with one missing human score
        {"item_id": "ok", "annotator": "x", "human_score": 2, "model_score": 2, "model_status": "ok"},
        {"item_id": "ok", "annotator": "y", "human_score": None, "model_score": 2, "model_status": "ok"},
        {"item_id": "ok2", "annotator": "x", "human_score": 3, "model_score": 1, "model_status": "repaired"},
        {"item_id": "ok2", "annotator": "y", "human_score": 3, "model_score": 1, "model_status": "repaired"},
        # the model's answer failed to parse: excluded from human vs model, kept for human vs human
        {"item_id": "bad", "annotator": "x", "human_score": 1, "model_score": None, "model_status": "failed"},
        {"item_id": "bad", "annotator": "y", "human_score": 1, "model_score": None, "model_status": "failed"},
        # never graded
        {"item_id": "new", "annotator": "x", "human_score": 2, "model_score": None, "model_status": None},
        # graded, but nobody gave a score
        {"item_id": "lonely", "annotator": "x", "human_score": float("nan"), "model_score": 3, "model_status": "ok"},
    ]
    report = strict_json(agreement_report(rows, scale=(1, 3), n_resamples=50))
    assert report["excluded"] == {"missing_human_score": 2, "parse_failed": 1, "not_graded": 1, "no_human_label": 1}
    assert report["n_items"] == 2 and report["n_items_total"] == 5
    assert report["n_ratings"] == 6
    assert {d["item_id"] for d in report["disagreements"]} == {"ok", "ok2"}
    # human vs human still sees "bad" (two equal ratings) and "ok2"
    assert report["human_human"]["n_items_multiply_rated"] == 2
    assert report["human_human"]["pairwise_exact"]["value"] == 1.0


def test_a_failed_status_wins_over_a_stray_score() -> None:
    rows = one_rater_rows([1, 2, 3], [1, 2, 3])
    rows[2]["model_status"] = "failed"
    report = agreement_report(rows, scale=(1, 3), n_resamples=0)
    assert report["excluded"]["parse_failed"] == 1 and report["n_items"] == 2


def test_disagreements_are_sorted_by_absolute_difference() -> None:
    rows = one_rater_rows([1, 3, 2, 5], [1, 1, 4, 4])
    report = agreement_report(rows, scale=(1, 5), n_resamples=0)
    assert [(d["item_id"], d["diff"]) for d in report["disagreements"]] == [(1, 2.0), (2, -2.0), (3, 1.0), (0, 0.0)]
    assert report["disagreements"][0] == {
        "item_id": 1,
        "human_mean": 3.0,
        "n_annotators": 1,
        "model_score": 1,
        "diff": 2.0,
    }
    assert report["distributions"]["human"] == [1, 1, 1, 0, 1]
    assert report["distributions"]["model"] == [2, 0, 0, 2, 0]


@pytest.mark.parametrize(
    "rows",
    [
        synthetic(25, seed=4),
        one_rater_rows([3, 3], [3, 3]),
        one_rater_rows([1], [1]),
        one_rater_rows([1, 2], [2, 1]),
        matrix_rows(KRIPPENDORFF),
        [{"item_id": 1, "annotator": "x", "human_score": None, "model_score": None}],
    ],
)
def test_reports_are_strict_json(rows: list[dict]) -> None:
    report = agreement_report(rows)
    text = json.dumps(report, allow_nan=False)
    assert "NaN" not in text and "Infinity" not in text
    for key in (
        "n_items",
        "n_annotators",
        "pearson",
        "spearman",
        "kendall",
        "exact",
        "within_1",
        "weighted_kappa",
        "krippendorff_alpha_ordinal",
        "krippendorff_alpha_interval",
        "excluded",
        "per_annotator",
        "human_human",
        "spans",
        "anchoring",
        "pooling",
        "scale",
        "confusion",
        "disagreements",
    ):
        assert key in report, key


def test_spearman_p_value_missing_for_two_items_is_explained() -> None:
    report = strict_json(agreement_report(one_rater_rows([1, 2], [1, 3]), scale=(1, 3), n_resamples=0))
    assert report["spearman"]["value"] == pytest.approx(1.0)
    assert report["spearman"]["p_value"] is None and "p_value_reason" in report["spearman"]


# --- input validation --------------------------------------------------------------------------


def test_conflicting_model_scores_name_the_item() -> None:
    rows = [
        {"item_id": "q7", "annotator": "x", "human_score": 2, "model_score": 2},
        {"item_id": "q7", "annotator": "y", "human_score": 2, "model_score": 4},
    ]
    with pytest.raises(InputError, match=r"item 'q7' has conflicting model scores \[2, 4\] \(row 1, row 2\)"):
        agreement_report(rows)


def test_a_model_score_given_on_one_row_only_is_fine() -> None:
    rows = [
        {"item_id": "q", "annotator": "x", "human_score": 2, "model_score": 2},
        {"item_id": "q", "annotator": "y", "human_score": 3, "model_score": None},
    ]
    assert agreement_report(rows, n_resamples=0)["n_items"] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"human_score": "abc"}, r"row 2: human_score is not a number \(e\.g\. 'abc'\)"),
        ({"human_score": 2.5}, r"row 2: human_score must be a whole number \(e\.g\. 2\.5\)"),
        ({"human_score": 9}, r"row 2: human_score 9 is outside the scale 1-5"),
        ({"model_score": 0}, r"model_score 0 is outside the scale 1-5"),
        ({"item_id": ""}, r"row 2: item_id is empty"),
        ({"annotator": None}, r"row 2: annotator is empty"),
        ({"model_status": "great"}, r"row 2: model_status must be one of ok, repaired, failed"),
        ({"annotator": "a0", "item_id": "it0"}, r"annotator 'a0' rated item 'it0' more than once"),
    ],
)
def test_bad_rows_raise_input_errors(change: dict, message: str) -> None:
    rows = synthetic(3, n_annotators=2)
    if "model_score" in change:
        rows = [{**r, "model_score": 0} if r["item_id"] == "it0" else r for r in rows]
    rows[1] = {**rows[1], **change}
    with pytest.raises(InputError, match=message):
        agreement_report(rows, scale=(1, 5))


def test_missing_columns_and_bad_arguments() -> None:
    with pytest.raises(InputError, match="missing column"):
        agreement_report([{"item_id": 1, "annotator": "x", "human_score": 1}])
    with pytest.raises(InputError, match="min < max"):
        agreement_report(one_rater_rows([1], [1]), scale=(3, 3))
    with pytest.raises(InputError, match="n_resamples"):
        agreement_report(one_rater_rows([1], [1]), n_resamples=-1)


# --- spans -------------------------------------------------------------------------------------

TEXT = "the cat sat on the mat"  # tokens: the(0-3) cat(4-7) sat(8-11) on(12-14) the(15-18) mat(19-22)


def span_row(human_spans: list, model_spans: list, **extra) -> dict:
    return {
        "item_id": extra.pop("item_id", 1),
        "annotator": extra.pop("annotator", "x"),
        "human_score": 1,
        "model_score": 1,
        "fields": {"MODEL OUTPUT": TEXT},
        "human_spans": human_spans,
        "model_spans": model_spans,
        **extra,
    }


def test_span_agreement_by_hand() -> None:
    # Human marks "cat sat" (4-11); the model marks "t sat o" (6-13), overlapping cat, sat and on.
    # Tokens marked: human {cat, sat}; model {cat, sat, on} -> TP 2, FP 1, FN 0.
    rows = [
        span_row([{"field": "MODEL OUTPUT", "start": 4, "end": 11}], [{"field": "MODEL OUTPUT", "start": 6, "end": 13}])
    ]
    # A second annotation: the human marks "mat", the model nothing -> FN 1.
    rows.append(span_row([{"field": "MODEL OUTPUT", "start": 19, "end": 22}], [], annotator="y"))
    spans = agreement_report(rows, n_resamples=0)["spans"]
    assert (spans["true_positive_tokens"], spans["false_positive_tokens"], spans["false_negative_tokens"]) == (2, 1, 1)
    assert spans["precision"]["value"] == pytest.approx(2 / 3)
    assert spans["recall"]["value"] == pytest.approx(2 / 3)
    assert spans["f1"]["value"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert spans["n_annotations"] == 2 and spans["n_tokens"] == 12


def test_annotations_without_evidence_are_left_out_of_span_agreement_and_counted() -> None:
    # The model marks "cat" (4-7) on both items. Annotator x marked "cat" too; y marked nothing at all, which
    # says nothing about the model's highlight: y's annotation is left out, not read as 1 false positive.
    model = [{"field": "MODEL OUTPUT", "start": 4, "end": 7}]
    rows = [
        span_row([{"field": "MODEL OUTPUT", "start": 4, "end": 7}], model),
        span_row([], model, annotator="y"),
        span_row([], model, annotator="z", item_id=2),
    ]
    spans = strict_json(agreement_report(rows, n_resamples=0))["spans"]
    assert spans["precision"]["value"] == 1.0 and spans["false_positive_tokens"] == 0
    assert spans["n_annotations"] == 1 and spans["n_tokens"] == 6
    assert spans["n_without_evidence"] == 2 and "2 annotation(s)" in spans["left_out_note"]
    nobody = strict_json(agreement_report(rows[1:], n_resamples=0))["spans"]
    assert nobody["f1"] == {"value": None, "reason": "no annotation of a graded item marked evidence"}
    assert nobody["n_annotations"] == 0 and nobody["n_without_evidence"] == 2


def test_span_agreement_undefined_and_ignored_spans() -> None:
    rows = [span_row([{"field": "MODEL OUTPUT", "start": 0, "end": 3}, {"field": "NOPE", "start": 0, "end": 1}], [])]
    spans = strict_json(agreement_report(rows, n_resamples=0))["spans"]
    assert spans["precision"] == {"value": None, "reason": "the model marked no token"}
    assert spans["recall"]["value"] == 0.0
    assert spans["ignored_spans"] == 1
    no_fields = agreement_report(one_rater_rows([1, 2], [1, 2]), n_resamples=0)["spans"]
    assert no_fields["f1"]["value"] is None and no_fields["n_annotations"] == 0


# --- anchoring ---------------------------------------------------------------------------------


def test_anchoring_counts_revisions_towards_and_away_from_the_model() -> None:
    # model 3 everywhere. before -> after: 1->2 (up, towards), 5->5 (kept), 4->5 (up, away), 2->4 (up, same distance),
    # 5->3 (down, towards).
    before, after = [1, 5, 4, 2, 5], [2, 5, 5, 4, 3]
    rows = [
        {
            "item_id": i,
            "annotator": "x",
            "human_score": a,
            "model_score": 3,
            "human_score_before_reveal": b,
            "human_score_after_reveal": a,
        }
        for i, (b, a) in enumerate(zip(before, after, strict=True))
    ]
    block = strict_json(agreement_report(rows, scale=(1, 5), n_resamples=0))["anchoring"]
    assert block["available"] and block["n"] == 5
    assert (block["revised"], block["up"], block["down"]) == (4, 3, 1)
    assert (block["towards_model"], block["away_from_model"]) == (2, 1)
    assert block["revised_rate"] == pytest.approx(0.8)
    assert block["before"]["exact"]["value"] == 0.0 and block["after"]["exact"]["value"] == pytest.approx(0.2)
    assert block["after"]["weighted_kappa"]["value"] == pytest.approx(
        cohen_kappa_score(after, [3] * 5, labels=[1, 2, 3, 4, 5], weights="quadratic")
    )


def test_anchoring_unavailable_without_reveal_scores() -> None:
    report = agreement_report(one_rater_rows([1, 2], [1, 2]), n_resamples=0)
    assert report["anchoring"]["available"] is False and report["anchoring"]["reason"]
    assert report["headline_score"] == {
        "score": "human_score", "blind": None, "decided_by": "nothing in the input",
        "note": report["headline_score"]["note"],
    }
    assert "does not say whether" in report["headline_score"]["note"]
    assert report["post_reveal"]["available"] is False


# --- which score the headline uses ---------------------------------------------------------------

# Two annotators, four items, model 1 2 3 3 (scale 1-3). Before the reveal: x 1 1 3 2, y 2 2 3 3.
# After it, x moved items 1 and 3 to the model's score: x 1 2 3 3.
REVEAL_MODEL, X_BEFORE, X_AFTER, Y_SCORES = [1, 2, 3, 3], [1, 1, 3, 2], [1, 2, 3, 3], [2, 2, 3, 3]


def reveal_rows(**extra: object) -> list[dict]:
    rows = []
    for name, before, after in (("x", X_BEFORE, X_AFTER), ("y", Y_SCORES, Y_SCORES)):
        for i, (b, a, m) in enumerate(zip(before, after, REVEAL_MODEL, strict=True)):
            rows.append({"item_id": f"i{i}", "annotator": name, "human_score": a, "model_score": m,
                         "human_score_before_reveal": b, "human_score_after_reveal": a, **extra})
    return rows


def test_a_blind_headline_uses_the_scores_from_before_the_reveal() -> None:
    report = strict_json(agreement_report(reveal_rows(blind=True), (1, 3), n_resamples=0))
    # By hand. Before: item means 1.5 1.5 3 2.5 -> rounded half up 2 2 3 3 vs model 1 2 3 3: exact 3/4.
    # After: means 1.5 2 3 3 -> 2 2 3 3: exact 3/4 too, but Pearson rises.
    before_means, after_means = [1.5, 1.5, 3, 2.5], [1.5, 2, 3, 3]
    assert report["headline_score"]["score"] == "human_score_before_reveal"
    assert report["headline_score"]["decided_by"] == "the input's blind column"
    assert report["pearson"]["value"] == pytest.approx(stats.pearsonr(before_means, REVEAL_MODEL).statistic)
    assert report["post_reveal"]["pearson"]["value"] == pytest.approx(
        stats.pearsonr(after_means, REVEAL_MODEL).statistic)
    assert report["exact"]["value"] == report["post_reveal"]["exact"]["value"] == 0.75
    alpha = krippendorff.alpha(reliability_data=[X_BEFORE, Y_SCORES], value_domain=[1, 2, 3],
                               level_of_measurement="interval")
    assert report["krippendorff_alpha_interval"]["value"] == pytest.approx(alpha)
    assert report["human_human"]["pairs"][0]["exact"]["value"] == 0.25  # x and y agree on item 2 only
    assert report["post_reveal"]["human_human"]["pairs"][0]["exact"]["value"] == 0.75
    x = report["per_annotator"][0]
    assert x["annotator"] == "x" and x["exact"]["value"] == 0.5  # 1 1 3 2 vs 1 2 3 3
    assert report["post_reveal"]["per_annotator"][0]["exact"]["value"] == 1.0
    assert report["distributions"]["human"] == [2, 3, 3]  # x 1 1 3 2 and y 2 2 3 3
    assert [d["item_id"] for d in report["disagreements"][:2]] == ["i0", "i1"]


@pytest.mark.parametrize(
    ("extra", "blind", "headline"),
    [
        ({}, None, "human_score_before_reveal"),  # after-reveal scores exist only in blind studies
        ({"blind": "false"}, None, "human_score"),
        ({"blind": "yes"}, None, "human_score_before_reveal"),
        ({"blind": 0}, True, "human_score_before_reveal"),  # the argument wins over the column
        ({}, False, "human_score"),
    ],
)
def test_the_headline_score_follows_the_argument_the_column_or_the_scores(extra: dict, blind: bool | None,
                                                                          headline: str) -> None:
    report = agreement_report(reveal_rows(**extra), (1, 3), n_resamples=0, blind=blind)
    assert report["headline_score"]["score"] == headline
    assert report["anchoring"]["available"] is (headline != "human_score")


def test_blind_data_needs_its_scores_from_before_the_reveal() -> None:
    rows = reveal_rows(blind=True)
    rows[2] = {**rows[2], "human_score_before_reveal": None}
    with pytest.raises(InputError, match=r"row 3: human_score_before_reveal is missing"):
        agreement_report(rows, (1, 3))
    assert agreement_report(rows, (1, 3), n_resamples=0, blind=False)["n_ratings"] == 8
    mixed = reveal_rows(blind=True)
    mixed[0] = {**mixed[0], "blind": False}
    with pytest.raises(InputError, match="blind column says true on some rows and false on others"):
        agreement_report(mixed)
    with pytest.raises(InputError, match=r"row 1: blind must be true or false \(got 'maybe'\)"):
        agreement_report(reveal_rows(blind="maybe"))


def test_disagreements_carry_the_users_item_ids_when_given() -> None:
    rows = [{**r, "external_id": {"i0": "Q-7", "i1": "NA", "i2": "", "i3": None}[r["item_id"]]}
            for r in reveal_rows()]
    ids = {d["item_id"]: d["external_id"] for d in agreement_report(rows, n_resamples=0)["disagreements"]}
    assert ids == {"i0": "Q-7", "i1": "NA", "i2": None, "i3": None}
    assert "external_id" not in agreement_report(reveal_rows(), n_resamples=0)["disagreements"][0]


# --- files -------------------------------------------------------------------------------------


def test_load_ratings_csv(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "item_id,annotator,human_score,model_score,model_status,fields,human_spans,model_spans\n"
        '007,ann,3,3,ok,"{""A"": ""a b""}","[{""field"": ""A"", ""start"": 0, ""end"": 1}]",[]\n'
        "007,bob,,3,ok,,,\n"
        "008,ann,2,,,,,\n",
        encoding="utf-8",
    )
    rows = load_ratings(path)
    assert list(rows["item_id"]) == ["007", "007", "008"]  # ids stay text: leading zeros kept
    assert rows["human_score"].isna().tolist() == [False, True, False]
    assert rows["fields"][0] == {"A": "a b"}
    report = agreement_report(rows, n_resamples=0)
    assert report["excluded"] == {"missing_human_score": 1, "parse_failed": 0, "not_graded": 1, "no_human_label": 0}
    assert report["spans"]["false_negative_tokens"] == 1


def test_load_ratings_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    lines = [json.dumps(r) for r in synthetic(4)]
    path.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n", encoding="utf-8")
    rows = load_ratings(path)
    assert len(rows) == 12 and rows["source_row"].tolist()[3] == 5  # line numbers, blank line skipped
    assert agreement_report(rows, n_resamples=0)["n_items"] == 4


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("e.csv", "", "is empty"),
        ("c.csv", "item_id,annotator,human_score\n1,a,2\n", "missing column"),
        (
            "s.csv",
            "item_id,annotator,human_score,model_score\n1,a,2,3\n2,a,two,3\n",
            r"row 2: human_score is not a number",
        ),
        ("m.csv", "item_id,annotator,human_score,model_score\n1,a,2,3\n1,b,2,4\n", r"item '1' has conflicting model"),
        ("j.jsonl", '{"item_id": 1}\nnot json\n', r"line 2: Not valid JSON"),
        ("k.jsonl", "[1, 2]\n", r"row 1: Expected a JSON object"),  # no row readable: core.tabular' own message
        ("o.jsonl", '{"item_id": 1}\n[1, 2]\n', r"line 2: Expected a JSON object"),
        ("l.jsonl", '{"item_id": 1, "annotator": "a", "human_score": 1, "model_score": "x"}\n', r"line 1: model_score"),
        ("q.csv", 'item_id,annotator,human_score,model_score\n1,a,2,3,"x\n', r"row 1: A quote opened"),
        ("w.csv", "item_id,annotator,human_score,model_score\n1,a,2,3\n2,a,2,3,4\n", r"row 2: Has 5 values"),
        ("x.xlsx", b"PK\x03\x04 a zip", "looks like a spreadsheet"),
        (
            "f.csv",
            'item_id,annotator,human_score,model_score,fields\n1,a,2,3,"{oops"\n',
            r"row 1: fields is not valid JSON",
        ),
    ],
)
def test_load_ratings_rejects_bad_files(tmp_path: Path, name: str, content: str | bytes, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_ratings(path)


def test_load_ratings_reads_a_byte_order_mark_and_json_arrays(tmp_path: Path) -> None:
    bom = tmp_path / "excel.csv"
    bom.write_bytes("item_id,annotator,human_score,model_score\r\n1,a,2,2\r\n".encode("utf-8-sig"))
    assert load_ratings(bom)["item_id"].tolist() == ["1"]
    array = tmp_path / "r.json"
    array.write_text(json.dumps(synthetic(2)), encoding="utf-8")
    assert len(load_ratings(array)) == 6
    array.write_text(json.dumps([synthetic(1)[0], {**synthetic(1)[1], "human_score": "x"}]), encoding="utf-8")
    with pytest.raises(InputError, match="element 2: human_score is not a number"):
        load_ratings(array)


def test_load_ratings_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rows = [{**r, "fields": {"A": "one\u2028two"}} for r in synthetic(2)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert load_ratings(path)["fields"][0] == {"A": "one\u2028two"}


def test_load_ratings_reads_the_apps_export_as_it_is(tmp_path: Path) -> None:
    """The Agreement tab's CSV names the current score `score` (and so on); it is read without renaming."""
    path = tmp_path / "study-1-annotations.csv"
    path.write_text(
        "study,study_id,item_id,external_id,annotator,score,score_before_reveal,score_after_reveal,blind,spans,"
        "model_score,model_status\n"
        'S,1,1,q1,ann,3,2,3,True,"[]",3,ok\n'
        'S,1,2,q2,ann,1,1,,True,"[]",2,ok\n'
        'S,1,3,q3,ann,2,2,2,True,"[]",2,ok\n',
        encoding="utf-8",
    )
    report = agreement_report(load_ratings(path), n_resamples=0)
    assert report["headline_score"]["score"] == "human_score_before_reveal" and report["n_ratings"] == 3
    assert report["exact"]["value"] == pytest.approx(1 / 3)  # 2 1 2 vs 3 2 2
    assert report["post_reveal"]["exact"]["value"] == pytest.approx(2 / 3)  # 3 1 2 vs 3 2 2
    assert report["disagreements"][0]["external_id"] == "q1"


def test_load_ratings_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="There is no file at"):
        load_ratings(tmp_path / "nope.csv")


def test_load_ratings_reads_files_as_batch_and_import_do(tmp_path: Path) -> None:
    """Through core.tabular: ';' and tab separators, Windows-1252 with a note, numbered rows."""
    header, row = ["item_id", "annotator", "human_score", "model_score"], ["q1", "Jos\u00e9", "2", "2"]
    semicolon = tmp_path / "excel-fr.csv"
    semicolon.write_bytes((";".join(header) + "\r\n" + ";".join(row) + "\r\n").encode("cp1252"))
    rows = load_ratings(semicolon)
    assert rows["annotator"].tolist() == ["Jos\u00e9"]
    assert any("read as Windows-1252" in note for note in rows.attrs["notes"])
    tab = tmp_path / "r.tsv"
    tab.write_text("\t".join(header) + "\n" + "\t".join(row) + "\n", encoding="utf-16")
    assert load_ratings(tab)["item_id"].tolist() == ["q1"] and load_ratings(tab).attrs["notes"] == []


def test_core_agreement_needs_no_ui_libraries() -> None:
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'gradio', 'plotly', 'torch', 'transformers'}:\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import core.agreement, core.agreement_cli\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_package_re_exports_what_core_agreement_exported() -> None:
    """core.agreement became a package of named parts; every name it exported still comes from core.agreement."""
    import importlib

    import core.agreement as package

    parts = {name: importlib.import_module(f"core.agreement.{name}")
             for name in ("inputs", "metrics", "bootstrap", "spans", "report", "adjudicated")}
    for name in package.__all__:
        owners = [part for part, module in parts.items() if getattr(module, name, None) is getattr(package, name)]
        assert owners, f"core.agreement.{name} is not one of its parts' names"
    assert {"agreement_report", "load_ratings", "table_statistics", "bootstrap_statistics", "weighted_kappa",
            "correlation_metrics", "exact_metrics", "REQUIRED_COLUMNS", "HEADLINE"} <= set(package.__all__)
    assert package._pooled_table is parts["bootstrap"]._pooled_table  # tests above use it through the package
    assert package.agreement_report.__module__ == "core.agreement.report"
