"""core.agreement.pairwise_report against hand-worked examples: accuracy vs the human majority (MT-Bench's rule for
inconsistent verdicts, with and without ties), Cohen's and Fleiss' kappa (Fleiss' against the published worked
example), position consistency and position bias with seeded bootstrap intervals, the humans' slot-1 rate."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.agreement.pairwise_report import fleiss_kappa, pairwise_report, share
from core.errors import InputError


def labels(table: dict[int, list[str]], orders: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One label per (item, annotator index); annotator k saw orders[k] (None when not given)."""
    return [{"item_id": item, "annotator": f"p{k}", "choice": choice, "shown_order": orders[k] if orders else None}
            for item, row in table.items() for k, choice in enumerate(row)]


NO_TIE = {1: ["A", "A"], 2: ["B", "B"], 3: ["A", "A"], 4: ["A", "B"], 5: ["B", "B"], 6: ["A", "A"]}
NO_TIE_VERDICTS = {1: "A", 2: "A", 3: "inconsistent", 4: "B", 5: "B", 6: "undecided", 7: "inconsistent"}
NO_TIE_SLOTS = {3: 1, 7: 2}


def test_without_ties_an_inconsistent_verdict_is_a_miss() -> None:
    report = pairwise_report(labels(NO_TIE, ("AB", "BA")), NO_TIE_VERDICTS, NO_TIE_SLOTS, allow_tie=False)
    # Majorities: 1 A, 2 B, 3 A, 5 B, 6 A; item 4 has none (1 vs 1). Item 6 is undecided: left out.
    assert (report["n_items_majority"], report["n_items_no_majority"], report["n_items_compared"]) == (5, 1, 4)
    assert report["judge"] == {"n_graded": 6, "A": 2, "B": 2, "inconsistent": 2, "undecided": 1, "ungraded": 0}
    assert report["accuracy"]["value"] == pytest.approx(2 / 4)  # hits on 1 and 5; 2 wrong, 3 inconsistent
    assert report["accuracy_consistent"]["value"] == pytest.approx(2 / 3)  # items 1, 2, 5
    # Judge [A, A, inc, B] vs majority [A, B, A, B]: po = 1/2, pe = (2*2 + 1*2 + 1*0) / 16 = 3/8 -> 0.2.
    assert report["judge_vs_majority_kappa"]["value"] == pytest.approx(0.2)
    # p0 [A B A A B A] vs p1 [A B A B B A]: po = 5/6, pe = (4*3 + 2*3) / 36 = 1/2 -> kappa 2/3.
    human = report["human_human"]
    assert human["statistic"] == "cohen_kappa" and human["pairs"][0]["n_items"] == 6
    assert human["mean_pairwise_cohen_kappa"]["value"] == pytest.approx(2 / 3)
    assert report["position_consistency"]["value"] == pytest.approx(4 / 6)  # graded 1-5 and 7; 3 and 7 flip
    assert report["position_bias"]["value"] == pytest.approx(1 / 2)  # item 3 picked slot 1, item 7 slot 2
    # p0 saw A first: slot 1 whenever it chose A (4 of 6); p1 saw B first: slot 1 when it chose B (3 of 6).
    assert report["human_slot_1_rate"]["value"] == pytest.approx(7 / 12)
    assert report["confusion"]["counts"][0] == [1, 0, 0, 1]  # majority A: judge A once, inconsistent once


def test_with_ties_an_inconsistent_verdict_counts_as_a_tie_and_three_people_give_fleiss() -> None:
    table = {1: ["A", "A", "tie"], 2: ["tie", "tie", "A"], 3: ["A", "B", "tie"], 4: ["B", "B", "B"]}
    verdicts = {1: "inconsistent", 2: "inconsistent", 3: "A", 4: "B"}
    report = pairwise_report(labels(table), verdicts, {1: 2, 2: 2}, allow_tie=True)
    assert report["accuracy"]["value"] == pytest.approx(2 / 3)  # 1: tie vs A miss; 2: tie vs tie hit; 4 hit
    assert report["accuracy_consistent"]["value"] == pytest.approx(1.0)
    assert report["n_items_no_majority"] == 1  # item 3: one vote each
    # Counts [A, B, tie]: [2,0,1] [1,0,2] [1,1,1] [0,3,0]. P_i = 1/3, 1/3, 0, 1 -> P = 5/12; p_j = 1/3 each -> Pe
    # = 1/3; kappa = (5/12 - 4/12) / (8/12) = 1/8.
    fleiss = report["human_human"]["fleiss_kappa"]
    assert report["human_human"]["statistic"] == "fleiss_kappa" and fleiss["value"] == pytest.approx(1 / 8)
    assert report["position_bias"]["value"] == 0.0 and report["human_slot_1_rate"]["value"] is None


def test_fleiss_kappa_matches_the_published_worked_example() -> None:
    """Fleiss (1971) as worked in Wikipedia's "Fleiss' kappa": 10 subjects, 14 raters, 5 categories, kappa 0.210."""
    table = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                      [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    kappa = fleiss_kappa(table)
    assert kappa["observed"] == pytest.approx(0.378, abs=5e-4) and kappa["expected"] == pytest.approx(0.213, abs=5e-4)
    assert kappa["value"] == pytest.approx(0.210, abs=5e-4) and kappa["raters_per_item"] == 14
    with pytest.raises(InputError, match="same number"):
        fleiss_kappa(np.array([[1, 1], [3, 0]]))


def test_the_intervals_are_seeded_percentile_bootstraps() -> None:
    values = np.array([True] * 30 + [False] * 10)
    first, again = share(values, n_resamples=2000, seed=7), share(values, n_resamples=2000, seed=7)
    assert first == again and first["value"] == 0.75 and first["k"] == 30
    assert first["ci_low"] < 0.75 < first["ci_high"]
    # The binomial shortcut equals resampling the items: the same interval within Monte Carlo error.
    rng = np.random.default_rng(1)
    literal = values[rng.integers(0, 40, size=(4000, 40))].mean(axis=1)
    assert np.percentile(literal, 2.5) == pytest.approx(first["ci_low"], abs=0.03)
    assert np.percentile(literal, 97.5) == pytest.approx(first["ci_high"], abs=0.03)
    assert share(values, n_resamples=0, seed=0)["ci_reason"] == "bootstrap disabled (0 resamples)"
    report = pairwise_report(labels(NO_TIE, ("AB", "BA")), NO_TIE_VERDICTS, NO_TIE_SLOTS, allow_tie=False)
    for key in ("accuracy", "position_consistency", "position_bias", "human_slot_1_rate"):
        assert report[key]["ci_low"] <= report[key]["value"] <= report[key]["ci_high"]
    assert report == pairwise_report(labels(NO_TIE, ("AB", "BA")), NO_TIE_VERDICTS, NO_TIE_SLOTS, allow_tie=False)


def test_nothing_graded_or_labelled_gives_undefined_values_with_reasons() -> None:
    report = pairwise_report([], {1: None, 2: None}, allow_tie=False)
    assert report["judge"]["ungraded"] == 2 and report["accuracy"]["reason"] == "no items"
    assert "no inconsistent verdict" in report["position_bias"]["reason"]
    assert report["human_human"]["mean_pairwise_cohen_kappa"]["reason"] == "fewer than 2 annotators"


@pytest.mark.parametrize(("row", "message"), [
    ({"item_id": 1, "annotator": "x", "choice": "C"}, "'A', 'B' or 'tie'"),
    ({"item_id": 1, "annotator": "x", "choice": "A", "shown_order": "BB"}, "'AB' or 'BA'"),
])
def test_bad_labels_are_refused(row: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        pairwise_report([row], {}, allow_tie=False)
    with pytest.raises(InputError, match="a verdict is one of"):
        pairwise_report([], {1: "maybe"}, allow_tie=False)


def test_the_kappa_interval_equals_resampling_items() -> None:
    from sklearn.metrics import cohen_kappa_score

    from core.agreement.pairwise_report import cohen_kappa, kappa_ci

    a = ["A"] * 12 + ["B"] * 10 + ["A"] * 3 + ["B"] * 5
    b = ["A"] * 12 + ["B"] * 10 + ["B"] * 3 + ["A"] * 5
    metric = kappa_ci(cohen_kappa(a, b), a, b, n_resamples=3000, seed=0)
    assert metric["value"] == pytest.approx(cohen_kappa_score(a, b))
    rng = np.random.default_rng(2)
    left, right = np.array(a), np.array(b)
    literal = []
    for _ in range(600):
        pick = rng.integers(0, len(a), len(a))
        literal.append(cohen_kappa_score(left[pick], right[pick]))
    assert np.percentile(literal, 2.5) == pytest.approx(metric["ci_low"], abs=0.06)
    assert np.percentile(literal, 97.5) == pytest.approx(metric["ci_high"], abs=0.06)
