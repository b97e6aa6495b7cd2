"""core.agreement.judge_vs_judge: two judge runs compared as two annotators, checked against the report's own
human-vs-human and human-vs-model computations on the same numbers, and by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from core.agreement import agreement_report
from core.agreement.judge_vs_judge import METRICS, judge_vs_judge
from core.errors import InputError

# Two runs' scores on ten items of a 1-5 scale; item 10 failed to parse in run B, item 11 only run B graded.
RUN_A = {1: 5, 2: 4, 3: 4, 4: 3, 5: 2, 6: 1, 7: 5, 8: 3, 9: 2, 10: 4}
RUN_B = {1: 5, 2: 3, 3: 4, 4: 3, 5: 4, 6: 1, 7: 4, 8: 3, 9: 1, 10: None, 11: 2}
BOTH = [item for item in RUN_A if RUN_B.get(item) is not None]


def test_two_runs_give_what_the_report_gives_two_annotators_on_the_same_numbers() -> None:
    report = judge_vs_judge(RUN_A, RUN_B, (1, 5), names=("nf4", "bf16"), n_resamples=500, seed=3)
    rows = [{"item_id": item, "annotator": name, "human_score": scores[item], "model_score": None}
            for item in BOTH for name, scores in (("nf4", RUN_A), ("bf16", RUN_B))]
    people = agreement_report(rows, (1, 5), n_resamples=0)["human_human"]
    (pair,) = people["pairs"]
    assert pair["n_items"] == report["n_items"] == len(BOTH) == 9
    assert report["exact"]["value"] == pytest.approx(pair["exact"]["value"])
    assert report["exact"]["value"] == pytest.approx(people["pairwise_exact"]["value"])
    assert report["weighted_kappa"]["value"] == pytest.approx(pair["weighted_kappa"]["value"])
    assert report["flip_rate"]["value"] == pytest.approx(1 - pair["exact"]["value"])

    # Run A as the one annotator, run B as the model: the headline's intervals are the same bootstrap draws.
    as_model = [{"item_id": item, "annotator": "nf4", "human_score": RUN_A[item], "model_score": RUN_B[item]}
                for item in BOTH]
    headline = agreement_report(as_model, (1, 5), n_resamples=500, seed=3)
    for name in ("exact", "weighted_kappa"):
        assert report[name]["value"] == pytest.approx(headline[name]["value"])
        assert (report[name]["ci_low"], report[name]["ci_high"]) == pytest.approx(
            (headline[name]["ci_low"], headline[name]["ci_high"]))


def test_the_numbers_by_hand() -> None:
    report = judge_vs_judge(RUN_A, RUN_B, (1, 5), n_resamples=0)
    a = np.array([RUN_A[item] for item in BOTH])
    b = np.array([RUN_B[item] for item in BOTH])
    assert report["exact"]["value"] == pytest.approx(5 / 9)  # items 1, 3, 4, 6, 8
    assert report["flip_rate"]["value"] == pytest.approx(4 / 9)
    assert report["mean_abs_diff"]["value"] == pytest.approx((1 + 2 + 1 + 1) / 9)
    assert report["weighted_kappa"]["value"] == pytest.approx(
        cohen_kappa_score(a, b, labels=[1, 2, 3, 4, 5], weights="quadratic"))
    assert report["left_out"] == {"only_a": 1, "only_b": 1, "neither": 0}
    # The changed items, largest change first (ties in item order), with both scores.
    assert [(c["item_id"], c["score_a"], c["score_b"], c["diff"]) for c in report["changed"]] == [
        (5, 2, 4, 2), (2, 4, 3, -1), (7, 5, 4, -1), (9, 2, 1, -1)]
    assert all(report[name].get("ci_reason") == "bootstrap disabled (0 resamples)" for name in METRICS)


def test_intervals_hold_the_estimate_and_are_reproducible() -> None:
    one = judge_vs_judge(RUN_A, RUN_B, (1, 5), n_resamples=400, seed=7)
    two = judge_vs_judge(RUN_A, RUN_B, (1, 5), n_resamples=400, seed=7)
    for name in METRICS:
        metric = one[name]
        assert metric["ci_low"] <= metric["value"] <= metric["ci_high"], name
        assert (metric["ci_low"], metric["ci_high"]) == (two[name]["ci_low"], two[name]["ci_high"])
    # The flip rate's interval mirrors exact agreement's.
    assert one["flip_rate"]["ci_low"] == pytest.approx(1 - one["exact"]["ci_high"])


def test_identical_runs_and_runs_with_nothing_in_common() -> None:
    same = judge_vs_judge(RUN_A, RUN_A, (1, 5), n_resamples=100, external_ids={1: "q-1"})
    assert (same["exact"]["value"], same["flip_rate"]["value"], same["mean_abs_diff"]["value"]) == (1.0, 0.0, 0.0)
    assert same["weighted_kappa"]["value"] == pytest.approx(1.0) and same["changed"] == []
    apart = judge_vs_judge({1: 3}, {2: 3}, (1, 5))
    assert apart["n_items"] == 0 and all(apart[name]["value"] is None for name in METRICS)
    assert apart["exact"]["reason"] == "no item has a score in both runs"
    one_value = judge_vs_judge({1: 3, 2: 3}, {1: 3, 2: 3}, (1, 5), n_resamples=50)
    assert one_value["weighted_kappa"]["value"] is None and "0/0" in one_value["weighted_kappa"]["reason"]
    changed = judge_vs_judge({1: 1}, {1: 2}, (1, 5), external_ids={1: "q-1"}, n_resamples=0)["changed"]
    assert changed == [{"item_id": 1, "external_id": "q-1", "score_a": 1, "score_b": 2, "diff": 1}]


@pytest.mark.parametrize(("a", "scale", "message"), [
    ({1: 6}, (1, 5), "outside the scale"),
    ({1: 2.5}, (1, 5), "not a whole number"),
    ({1: "high"}, (1, 5), "not a whole number"),
    ({1: 1}, (5, 1), "min < max"),
    ({1: 1}, ("a", 2), "two whole numbers"),
])
def test_bad_input_is_refused_clearly(a: dict[int, object], scale: tuple[int, int], message: str) -> None:
    with pytest.raises(InputError, match=message):
        judge_vs_judge(a, {1: 1}, scale)
