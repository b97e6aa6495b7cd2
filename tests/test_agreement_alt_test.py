"""core.agreement.alt_test: the alt-test of Calderon, Reichart & Dror (ACL 2025) against hand-worked cases,
the authors' implementation's numbers, a per-item reference, edge cases, properties, the report, CLI and HTML."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from core.agreement import agreement_report
from core.agreement.alt_test import EPSILON, MIN_ITEMS, alt_test, resolve_epsilon
from core.agreement_cli import ALT_TEST_EPSILON
from core.cli import main
from core.errors import InputError
from webapp.report_alt_test import render_alt_test
from webapp.report_html import report_to_html


def rows_from(labels: dict[str, dict[Any, int]], judge: dict[Any, int | None]) -> list[dict[str, Any]]:
    """Long-format rows from {annotator: {item: score}} and {item: judge score}."""
    return [{"item_id": item, "annotator": name, "human_score": score, "model_score": judge.get(item)}
            for name, scores in labels.items() for item, score in scores.items()]


def block(labels: dict[str, dict[Any, int]], judge: dict[Any, int | None], scale: tuple[int, int],
          **kwargs: Any) -> dict[str, Any]:
    return agreement_report(rows_from(labels, judge), scale=scale, n_resamples=0, **kwargs)["alt_test"]


def pure(labels: dict[str, dict[int, int]], judge: dict[int, int], scale: tuple[int, int],
         **kwargs: Any) -> dict[str, Any]:
    """The pure function on arrays, as the report calls it (without the rest of the report, for speed)."""
    names = list(labels)
    pairs = [(item, code, score) for code, name in enumerate(names) for item, score in labels[name].items()]
    n_items = max([item for item, _, _ in pairs] + list(judge) + [-1]) + 1
    items, people, human = (np.array([pair[k] for pair in pairs], dtype=float if k == 2 else np.int64)
                            for k in range(3))
    judged = np.array([judge.get(i, np.nan) for i in range(n_items)], dtype=float)
    return alt_test(items, people, human, judged, np.array(names, dtype=object),
                    labels=list(range(scale[0], scale[1] + 1)), **kwargs)


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["annotator"]: row for row in result["annotators"]}


# --- a hand-worked case ----------------------------------------------------------------------------------------
# 0-1 scale (so accuracy), annotators A, B, C on 30 items, judge J. Four kinds of item (a, b, c | j):
#   18 x (1, 1, 1 | 1): every comparison ties (the judge and the left-out annotator both match the others).
#    6 x (1, 1, 0 | 1): left out C, the others say (1, 1): J matches both, C neither -> judge better (+1);
#                       left out A (others 1, 0) or B: J and the annotator both match one of two -> tie.
#    3 x (0, 1, 1 | 1): left out A -> judge better (+1); B, C tie.
#    3 x (1, 1, 1 | 0): the judge misses a unanimous label: annotator better (-1) for A, B and C.
# Differences d = W^f - W^h per annotator: A: 3 x +1, 3 x -1, 24 x 0; B: 3 x -1; C: 6 x +1, 3 x -1.
# rho^f (d >= 0): A 27/30, B 27/30, C 27/30; rho^h (d <= 0): A 27/30, B 30/30, C 24/30.
# One-sided t of H0: mean(d) <= -0.2, t = (mean + 0.2) / (s / sqrt(30)), s^2 = (sum d^2 - 30 mean^2) / 29:
#   A: mean 0,    s^2 = 6/29,              t = 0.2 / sqrt(6/29/30)   = 0.2 sqrt(145)
#   B: mean -0.1, s^2 = (3 - 0.3)/29,      t = 0.1 / sqrt(2.7/29/30) = 0.1 sqrt(870/2.7)
#   C: mean 0.1,  s^2 = (9 - 0.3)/29 = .3, t = 0.3 / sqrt(0.3/30)    = 3
# Benjamini-Yekutieli, m = 3, c(m) = 1 + 1/2 + 1/3 = 11/6: sorted p_C < p_A < p_B, adjusted p_(i) =
# min over k >= i of p_(k) m c(m) / k: C: 5.5 p_C, A: 2.75 p_A, B: (5.5/3) p_B (each below the next, checked).
HAND = {
    "labels": {
        "A": {i: (0 if 24 <= i < 27 else 1) for i in range(30)},
        "B": {i: 1 for i in range(30)},
        "C": {i: (0 if 18 <= i < 24 else 1) for i in range(30)},
    },
    "judge": {i: (0 if i >= 27 else 1) for i in range(30)},
}


def test_hand_worked_case() -> None:
    result = block(HAND["labels"], HAND["judge"], (0, 1))
    rows = by_name(result)
    t = {"A": 0.2 * math.sqrt(145), "B": 0.1 * math.sqrt(870 / 2.7), "C": 3.0}
    p = {name: stats.t.sf(value, 29) for name, value in t.items()}  # the t distribution's tail, df = n - 1
    adjusted = {"C": p["C"] * 5.5, "A": p["A"] * 2.75, "B": p["B"] * 5.5 / 3}
    assert adjusted["C"] < adjusted["A"] < adjusted["B"]  # so no later minimum replaces them
    assert adjusted["C"] < 0.05 and adjusted["A"] < 0.05 < adjusted["B"]
    for name, (rho_f, rho_h) in {"A": (0.9, 0.9), "B": (0.9, 1.0), "C": (0.9, 0.8)}.items():
        row = rows[name]
        assert row["n_items"] == 30
        assert row["judge_advantage"] == pytest.approx(rho_f) and row["annotator_advantage"] == pytest.approx(rho_h)
        assert row["t"] == pytest.approx(t[name]) and row["p"] == pytest.approx(p[name])
        assert row["p_adjusted"] == pytest.approx(adjusted[name])
        assert row["excluded_reason"] is None
    assert [rows[name]["won"] for name in "ABC"] == [True, False, True]
    assert result["available"] and result["winning_rate"] == pytest.approx(2 / 3) and result["passed"] is True
    assert result["advantage_probability"] == pytest.approx(0.9)
    assert result["n_annotators_won"] == 2 and result["n_annotators_tested"] == 3 and result["weak"] is False
    assert result["epsilon"] == EPSILON == 0.2 and result["q"] == 0.05
    assert result["scoring"]["function"] == "accuracy"
    assert "passes" in result["decision"] and "2 of 3" in result["decision"] and "0.67" in result["decision"]
    assert "0.2 for expert" in result["epsilon_guidance"] and "0.1 for crowd-workers" in result["epsilon_guidance"]


def test_a_smaller_epsilon_can_fail_the_same_judge() -> None:
    # epsilon 0: C's t = 0.1 / 0.1 = 1 (p = t.sf(1, 29) ~ 0.16); A's t = 0; B's mean is below 0. No win.
    result = block(HAND["labels"], HAND["judge"], (0, 1), epsilon=0.0)
    assert result["winning_rate"] == 0 and result["passed"] is False and "fails" in result["decision"]
    assert by_name(result)["C"]["t"] == pytest.approx(1.0)
    assert by_name(result)["C"]["p"] == pytest.approx(stats.t.sf(1.0, 29))


# --- the scoring function -----------------------------------------------------------------------------------------
# 1-5 scale, annotators A, B, C: 20 items (3, 3, 4 | judge 5) and 10 items (3, 3, 4 | judge 4).
# Left out C, the others are (3, 3): judge 5 -> squared errors 8, C's 4 -> 2: C better under -RMSE (d = -1), but
# neither matches, a tie under accuracy. Judge 4 -> 2 vs 2: a tie under both. Left out A (others 3, 4): judge 5 ->
# 4 + 1 = 5 vs A's 3 -> 0 + 1 = 1: A better under both (accuracy 0 vs 1/2); judge 4 -> 1 vs 1, and 1/2 vs 1/2: ties.
SCALE_CASE = {
    "labels": {"A": {i: 3 for i in range(30)}, "B": {i: 3 for i in range(30)}, "C": {i: 4 for i in range(30)}},
    "judge": {i: (5 if i < 20 else 4) for i in range(30)},
}


def test_rating_scale_uses_negative_rmse_and_accuracy_on_request() -> None:
    rmse = block(SCALE_CASE["labels"], SCALE_CASE["judge"], (1, 5))
    assert rmse["scoring"]["function"] == "neg_rmse"
    assert by_name(rmse)["C"]["judge_advantage"] == pytest.approx(10 / 30)
    assert by_name(rmse)["A"]["judge_advantage"] == pytest.approx(10 / 30)
    frame = agreement_report(rows_from(SCALE_CASE["labels"], SCALE_CASE["judge"]), scale=(1, 5), n_resamples=0)
    assert frame["alt_test"] == rmse
    items, people = np.repeat(np.arange(30), 3), np.tile(np.arange(3), 30)
    human = np.array([[3, 3, 4]] * 30, dtype=float).ravel()
    judge = np.array([5.0] * 20 + [4.0] * 10)
    accuracy = alt_test(items, people, human, judge, np.array(["A", "B", "C"], dtype=object), labels=[1, 2, 3, 4, 5],
                        scoring="accuracy")
    assert accuracy["scoring"] == {"function": "accuracy", "description": accuracy["scoring"]["description"],
                                   "why": "chosen by the caller"}
    assert by_name(accuracy)["C"]["judge_advantage"] == 1.0  # every comparison with C ties under accuracy
    assert by_name(accuracy)["A"]["judge_advantage"] == pytest.approx(10 / 30)
    with pytest.raises(InputError, match="scoring must be one of"):
        alt_test(items, people, human, judge, np.array(["A", "B", "C"], dtype=object), labels=[1, 2],
                 scoring="kappa")  # type: ignore[arg-type]


# --- the authors' implementation ---------------------------------------------------------------------------------


def authors_example(binary: bool) -> tuple[dict[str, dict[int, int]], dict[int, int]]:
    """A seeded example: 4 annotators, 85 items, ratings 1-5 (or 0/1 for `binary`), a noisy judge.

    ann and bob label items 0-79, cy 0-59, dee 0-24 (24 with a judge score, too few: left out), ann alone
    80-84 (one label: dropped); the judge has no score on items 3 and 50.
    """
    rs = np.random.RandomState(17)  # the legacy generator: its stream is frozen across numpy versions
    truth = rs.randint(1, 6, 85)
    spans = {"ann": range(85), "bob": range(80), "cy": range(60), "dee": range(25)}
    labels = {}
    for name, span in spans.items():
        noise = rs.randint(-1, 2, 85)
        labels[name] = {i: int(np.clip(truth[i] + noise[i], 1, 5)) for i in span}
    judge_noise = rs.choice([-1, 0, 0, 0, 1], 85)
    judge = {i: int(np.clip(truth[i] + judge_noise[i], 1, 5)) for i in range(85) if i not in (3, 50)}
    if binary:
        labels = {name: {i: int(v >= 3) for i, v in scores.items()} for name, scores in labels.items()}
        judge = {i: int(v >= 3) for i, v in judge.items()}
    return labels, judge


# Printed by the authors' `alt_test` (github.com/nitaytech/AltTest, alt_test_example.ipynb at commit 18428b1, run
# unchanged outside this repository; it printed "Dropped 7 instances with less than 2 annotators" and "Skipping
# annotator dee with only 24 instances < 30") on authors_example: (scoring, binary, epsilon) -> (winning_rate,
# advantage_prob). Each scale is pinned on both sides of the epsilon where the judge starts to win.
AUTHORS = {
    ("neg_rmse", False, 0.05): (0.0, 0.7942823460064838),
    ("neg_rmse", False, 0.1): (1.0, 0.7942823460064838),
    ("neg_rmse", False, 0.2): (1.0, 0.7942823460064838),
    ("accuracy", True, 0.1): (0.0, 0.9114353079870322),
    ("accuracy", True, 0.15): (1.0, 0.9114353079870322),
    ("accuracy", True, 0.2): (1.0, 0.9114353079870322),
}


@pytest.mark.parametrize(("scoring", "binary", "epsilon"), sorted(AUTHORS))
def test_reproduces_the_authors_implementation(scoring: str, binary: bool, epsilon: float) -> None:
    """The numbers of the authors' own alt_test (github.com/nitaytech/AltTest at 18428b1) on authors_example."""
    labels, judge = authors_example(binary)
    result = block(labels, judge, (0, 1) if binary else (1, 5), epsilon=epsilon)
    assert result["scoring"]["function"] == scoring
    winning_rate, advantage = AUTHORS[(scoring, binary, epsilon)]
    assert result["winning_rate"] == pytest.approx(winning_rate, abs=1e-12)
    assert result["advantage_probability"] == pytest.approx(advantage, abs=1e-12)
    rows = by_name(result)
    assert rows["dee"]["won"] is None and "only 24 item(s)" in rows["dee"]["excluded_reason"]
    assert result["n_annotators_tested"] == 3 and result["n_items"] == 78  # 80 items with 2+ labels, less 3 and 50


# --- a per-item reference: the paper's definitions written out, one item at a time ---------------------------------


def reference(labels: dict[str, dict[int, int]], judge: dict[int, int], scoring: str) -> dict[str, tuple[float, float]]:
    """(rho^f_j, rho^h_j) per annotator from a plain loop over items (slow; only for checking)."""
    def align(x: float, others: list[int]) -> float:
        if scoring == "accuracy":
            return sum(x == a for a in others) / len(others)
        return -math.sqrt(sum((x - a) ** 2 for a in others) / len(others))

    out = {}
    for name, mine in labels.items():
        w_f, w_h = [], []
        for item, score in mine.items():
            others = [scores[item] for other, scores in labels.items() if other != name and item in scores]
            if not others or judge.get(item) is None:
                continue
            s_f, s_h = align(judge[item], others), align(score, others)
            w_f.append(s_f >= s_h)
            w_h.append(s_h >= s_f)
        if w_f:
            out[name] = (sum(w_f) / len(w_f), sum(w_h) / len(w_h))
    return out


STUDIES = st.fixed_dictionaries({
    "n_items": st.integers(1, 70),
    "n_people": st.integers(1, 4),
    "low": st.sampled_from([0, 1]),
    "high": st.sampled_from([1, 3, 5]),
    "seed": st.integers(0, 2**31 - 1),
    "coverage": st.floats(0.3, 1.0),
}).filter(lambda s: s["low"] < s["high"])


def random_study(spec: dict[str, Any]) -> tuple[dict[str, dict[int, int]], dict[int, int]]:
    rs = np.random.RandomState(spec["seed"])
    labels = {}
    for p in range(spec["n_people"]):
        chosen = rs.random_sample(spec["n_items"]) < spec["coverage"]
        labels[f"p{p}"] = {i: int(rs.randint(spec["low"], spec["high"] + 1)) for i in np.flatnonzero(chosen)}
    judge = {i: int(rs.randint(spec["low"], spec["high"] + 1)) for i in range(spec["n_items"]) if rs.rand() < 0.9}
    return {name: scores for name, scores in labels.items() if scores}, judge


@given(STUDIES)
def test_vectorised_indicators_match_the_per_item_definition(spec: dict[str, Any]) -> None:
    labels, judge = random_study(spec)
    if not labels:
        return
    result = pure(labels, judge, (spec["low"], spec["high"]))
    expected = reference(labels, judge, result["scoring"]["function"])
    for row in result["annotators"]:
        if row["annotator"] in expected:
            rho_f, rho_h = expected[row["annotator"]]
            assert row["judge_advantage"] == pytest.approx(rho_f) and row["annotator_advantage"] == pytest.approx(rho_h)
        else:
            assert row["n_items"] == 0 and row["judge_advantage"] is None


@given(STUDIES, st.floats(0, 0.95), st.floats(0, 0.95))
def test_omega_is_a_share_and_never_falls_as_epsilon_rises(spec: dict[str, Any], e1: float, e2: float) -> None:
    labels, judge = random_study({**spec, "n_items": spec["n_items"] + 30, "coverage": max(spec["coverage"], 0.8)})
    if not labels:
        return
    low, high = sorted((e1, e2))
    first = pure(labels, judge, (spec["low"], spec["high"]), epsilon=low)
    second = pure(labels, judge, (spec["low"], spec["high"]), epsilon=high)
    json.dumps(first, allow_nan=False)
    if not first["available"]:
        assert first["winning_rate"] is None and first["reason"]
        return
    assert 0 <= first["winning_rate"] <= 1 and 0 <= first["advantage_probability"] <= 1
    assert second["winning_rate"] >= first["winning_rate"]
    won_first = {row["annotator"] for row in first["annotators"] if row["won"]}
    assert won_first <= {row["annotator"] for row in second["annotators"] if row["won"]}


# --- edge cases -------------------------------------------------------------------------------------------------


def test_one_annotator_cannot_be_tested() -> None:
    result = block({"A": {i: 1 for i in range(40)}}, {i: 1 for i in range(40)}, (1, 5))
    assert result["available"] is False and result["winning_rate"] is None and result["passed"] is None
    assert "at least 2 annotators" in result["reason"] and result["decision"].startswith("The alt-test cannot be run")
    assert by_name(result)["A"]["excluded_reason"].startswith("no item they labelled")
    json.dumps(result, allow_nan=False)


def test_no_labels_and_no_judge() -> None:
    empty = agreement_report([], n_resamples=0)["alt_test"]
    assert empty["available"] is False and empty["reason"] == "no human labels" and empty["annotators"] == []
    ungraded = block({"A": {i: 1 for i in range(40)}, "B": {i: 2 for i in range(40)}}, {}, (1, 5))
    assert ungraded["available"] is False and ungraded["n_items"] == 0


def test_annotators_under_30_items_are_left_out_and_listed() -> None:
    labels = {"A": {i: i % 5 + 1 for i in range(40)}, "B": {i: i % 5 + 1 for i in range(40)},
              "C": {i: 3 for i in range(MIN_ITEMS - 1)}}
    result = block(labels, {i: i % 5 + 1 for i in range(40)}, (1, 5))
    rows = by_name(result)
    assert rows["C"]["n_items"] == 29 and rows["C"]["won"] is None and rows["C"]["p"] is None
    assert "only 29 item(s)" in rows["C"]["excluded_reason"] and "at least 30" in rows["C"]["excluded_reason"]
    assert rows["C"]["judge_advantage"] is not None  # shown, but not in omega or rho
    assert result["n_annotators_tested"] == 2 and result["weak"] is True
    assert any("left out of the winning rate" in w for w in result["warnings"])
    assert any("recommends at least 3" in w for w in result["warnings"]) and "Weak" in result["decision"]
    assert result["advantage_probability"] == pytest.approx(1.0)  # A and B only: the judge ties them everywhere


def test_items_with_one_label_do_not_count() -> None:
    labels = {"A": {i: 1 for i in range(40)}, "B": {i: 1 for i in range(35)}}  # items 35-39: A alone
    result = block(labels, {i: 1 for i in range(40)}, (1, 5))
    assert result["n_items"] == 35 and {row["n_items"] for row in result["annotators"]} == {35}


def test_perfect_agreement_has_no_variance_and_is_decided_by_the_limit() -> None:
    labels = {name: {i: i % 3 + 1 for i in range(30)} for name in "ABC"}
    judge = {i: i % 3 + 1 for i in range(30)}
    won = block(labels, judge, (1, 5))  # every difference 0 > -0.2: p = 0, the judge wins everywhere
    assert won["winning_rate"] == 1 and all(row["p"] == 0 and row["t"] is None for row in won["annotators"])
    assert "no variance" in won["annotators"][0]["note"]
    tie = block(labels, judge, (1, 5), epsilon=0.0)  # every difference 0, not above -0: p = 1
    assert tie["winning_rate"] == 0 and all(row["p"] == 1 for row in tie["annotators"])
    json.dumps(tie, allow_nan=False)


def test_a_constant_judge() -> None:
    labels = {name: {i: (i + k) % 5 + 1 for i in range(40)} for k, name in enumerate("ABC")}
    result = block(labels, {i: 3 for i in range(40)}, (1, 5))
    assert result["available"] and result["scoring"]["function"] == "neg_rmse"
    assert all(row["p"] is not None and 0 <= row["p"] <= 1 for row in result["annotators"])
    json.dumps(result, allow_nan=False)


def test_blind_study_uses_scores_before_the_reveal() -> None:
    rows = rows_from(HAND["labels"], HAND["judge"])
    for row in rows:  # after the reveal everyone copied the judge
        row["human_score_before_reveal"] = row["human_score"]
        row["human_score"] = HAND["judge"][row["item_id"]]
    report = agreement_report(rows, scale=(0, 1), n_resamples=0, blind=True)
    assert report["alt_test"]["winning_rate"] == pytest.approx(2 / 3)
    after = agreement_report(rows, scale=(0, 1), n_resamples=0, blind=False)["alt_test"]
    assert after["winning_rate"] == 1  # sanity: on the copied labels the judge ties everyone everywhere


@pytest.mark.parametrize("bad", [-0.1, 1, 1.5, float("nan"), float("inf"), "0.2", True])
def test_epsilon_out_of_range_is_an_input_error(bad: Any) -> None:
    with pytest.raises(InputError, match="epsilon must be"):
        resolve_epsilon(bad)
    with pytest.raises(InputError, match="epsilon must be"):
        agreement_report(rows_from(HAND["labels"], HAND["judge"]), n_resamples=0, epsilon=bad)


# --- CLI ----------------------------------------------------------------------------------------------------------


def hand_csv(path: Path) -> Path:
    lines = ["item_id,annotator,human_score,model_score\n"]
    lines += [f"{row['item_id']},{row['annotator']},{row['human_score']},{row['model_score']}\n"
              for row in rows_from(HAND["labels"], HAND["judge"])]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def run_main(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    try:
        code = main(["agreement", *map(str, args)])
    except SystemExit as exc:  # argparse usage errors and --help
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_epsilon_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = hand_csv(tmp_path / "hand.csv")
    code, out, err = run_main(capsys, path, "--resamples", "0", "--scale", "0-1")
    assert code == 0, err
    assert "Alt-test (epsilon = 0.2): winning rate omega = 0.67 (2 of 3 annotators), advantage probability rho = 0.90" \
        in out and "The judge passes the alt-test" in out
    code, out, err = run_main(capsys, path, "--resamples", "0", "--epsilon", "0", "--out", "-")
    assert code == 0, err
    assert json.loads(out)["alt_test"]["epsilon"] == 0 and "The judge fails the alt-test" in err
    for bad in ("1", "-0.1", "nan", "x"):
        code, _, err = run_main(capsys, path, "--epsilon", bad)
        assert code == 2 and "usage:" in err, bad
    for flag, value in (("--epsilon", "0.1"), ("--target", "0.8")):  # both compare with the annotators
        code, _, err = run_main(capsys, path, flag, value, "--reference", "adjudicated")
        assert code == 2 and "--epsilon and --target set the alt-test and the auto-accept threshold" in err, flag


def test_cli_help_states_the_papers_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert ALT_TEST_EPSILON == EPSILON
    code, out, _ = run_main(capsys, "--help")
    assert code == 0 and f"default {EPSILON}" in " ".join(out.split())


# --- HTML ---------------------------------------------------------------------------------------------------------


def test_renders_escaped_with_the_decision_and_notes() -> None:
    labels = {"<b>x</b>": HAND["labels"]["A"], "B": HAND["labels"]["B"], "C": HAND["labels"]["C"]}
    result = block(labels, HAND["judge"], (0, 1))
    html = render_alt_test(result)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "The judge passes the alt-test" in html and "ω = 0.67" in html and "ρ = 0.90" in html
    assert "0.1 for crowd-workers" in html and "arXiv:2501.10970" in html
    weak = render_alt_test(block({"A": labels["<b>x</b>"], "B": labels["B"]}, HAND["judge"], (0, 1)))
    assert "Weak result" in weak
    page = report_to_html(agreement_report(rows_from(labels, HAND["judge"]), scale=(0, 1), n_resamples=0))
    assert "Can the judge replace an annotator? (alt-test)" in page and "<b>x</b>" not in page
    assert "not computed" in render_alt_test({})
