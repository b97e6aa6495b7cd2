"""Judge vs people next to people vs people (core.agreement.judge_vs_people): hand-worked values, sklearn on the
same arrays, every reading, edge cases, properties, the report block, the CLI line and the HTML renderer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from core.agreement import agreement_report
from core.agreement.judge_vs_people import (
    FEW_ITEMS,
    POOLED,
    _distinct,
    _features,
    _resample,
    pair_statistics,
    reading,
)
from webapp.report_html import report_to_html
from webapp.report_judge_vs_people import render_judge_vs_people

ROOT = Path(__file__).resolve().parent.parent


def rows_from(scores: dict[str, list[int | None]], model: list[int | None], **extra: object) -> list[dict]:
    """Long rows from annotator -> scores per item (None = not labelled) and the judge's score per item."""
    rows = []
    for name, values in scores.items():
        for i, score in enumerate(values):
            if score is not None:
                judge = model[i]
                rows.append({"item_id": f"i{i}", "annotator": name, "human_score": int(score),
                             "model_score": None if judge is None else int(judge), **extra})
    return rows


def strict(block: dict) -> dict:
    return json.loads(json.dumps(block, allow_nan=False))


def by_name(block: dict) -> dict[str, dict]:
    return {row["annotator"]: row for row in [*block["rows"], block["pooled"]]}


# --- a hand-worked case ------------------------------------------------------------------------------------

# Scale 1-3, six items, three annotators and the judge (M):
#   A = 1 2 3 3 2 1    B = 1 2 3 2 2 1    C = 2 2 3 3 1 1    M = 1 2 3 3 2 2
# Leave-A-out consensus, mean of B and C rounded half up: 1.5->2, 2, 3, 2.5->3, 1.5->2, 1   = 2 2 3 3 2 1
# Leave-B-out (A, C): 1.5->2, 2, 3, 3, 1.5->2, 1 = 2 2 3 3 2 1;  leave-C-out (A, B): 1, 2, 3, 2.5->3, 2, 1 = 1 2 3 3 2 1
# Exact: A 5/6, judge on A's ground 4/6; B 4/6, judge 4/6; C 4/6, judge 5/6. Pooled: 13/18 both.
# Kappa, A row (x = A, c = consensus): observed sum (x-c)^2 = 1; expected = sum x^2 - 2 sum x sum c / n + sum c^2
#   = 28 - 2*12*13/6 + 31 = 7  ->  kappa = 1 - 1/7 = 6/7.
# Judge on A's ground: observed = 2 (items 0 and 5); expected = 31 - 2*13*13/6 + 31 = 17/3 -> kappa = 1 - 6/17 = 11/17.
HAND = {"A": [1, 2, 3, 3, 2, 1], "B": [1, 2, 3, 2, 2, 1], "C": [2, 2, 3, 3, 1, 1]}
HAND_MODEL = [1, 2, 3, 3, 2, 2]
CONSENSUS = {"A": [2, 2, 3, 3, 2, 1], "B": [2, 2, 3, 3, 2, 1], "C": [1, 2, 3, 3, 2, 1]}


@pytest.fixture(scope="module")
def hand() -> dict:
    return agreement_report(rows_from(HAND, HAND_MODEL), scale=(1, 3), n_resamples=300, seed=3)["judge_vs_people"]


def test_hand_worked_exact_agreement_and_kappa(hand: dict) -> None:
    rows = by_name(hand)
    assert hand["available"] and [r["annotator"] for r in hand["rows"]] == ["A", "B", "C"]
    for name, (mine, judge) in {"A": (5 / 6, 4 / 6), "B": (4 / 6, 4 / 6), "C": (4 / 6, 5 / 6)}.items():
        exact = rows[name]["exact"]
        assert rows[name]["n_items"] == 6
        assert exact["annotator"]["value"] == pytest.approx(mine) and exact["judge"]["value"] == pytest.approx(judge)
        assert exact["difference"]["value"] == pytest.approx(judge - mine)
    assert rows["A"]["weighted_kappa"]["annotator"]["value"] == pytest.approx(6 / 7)
    assert rows["A"]["weighted_kappa"]["judge"]["value"] == pytest.approx(11 / 17)
    pooled = rows[POOLED]
    assert (pooled["n_items"], pooled["n_pairs"]) == (6, 18)
    assert pooled["exact"]["annotator"]["value"] == pytest.approx(13 / 18) == pooled["exact"]["judge"]["value"]


def test_every_kappa_equals_sklearn_on_the_same_arrays(hand: dict) -> None:
    rows = by_name(hand)
    everyone_a, everyone_c, judge_all = [], [], []
    for name, scores in HAND.items():
        consensus = CONSENSUS[name]
        kappa = rows[name]["weighted_kappa"]
        expected_a = cohen_kappa_score(scores, consensus, weights="quadratic", labels=[1, 2, 3])
        expected_m = cohen_kappa_score(HAND_MODEL, consensus, weights="quadratic", labels=[1, 2, 3])
        assert kappa["annotator"]["value"] == pytest.approx(expected_a)
        assert kappa["judge"]["value"] == pytest.approx(expected_m)
        everyone_a += scores
        everyone_c += consensus
        judge_all += HAND_MODEL
    pooled = rows[POOLED]["weighted_kappa"]
    assert pooled["annotator"]["value"] == pytest.approx(
        cohen_kappa_score(everyone_a, everyone_c, weights="quadratic", labels=[1, 2, 3]))
    assert pooled["judge"]["value"] == pytest.approx(
        cohen_kappa_score(judge_all, everyone_c, weights="quadratic", labels=[1, 2, 3]))


def test_the_ceiling_is_the_reports_own_alpha(hand: dict) -> None:
    report = agreement_report(rows_from(HAND, HAND_MODEL), scale=(1, 3), n_resamples=300, seed=3)
    assert hand["ceiling"]["krippendorff_alpha_ordinal"] == report["human_human"]["krippendorff_alpha_ordinal"]
    alpha = report["human_human"]["krippendorff_alpha_ordinal"]["value"]
    assert f"Krippendorff's alpha (ordinal) among annotators = {alpha:.3f}" in hand["ceiling_reading"]


def test_the_moment_formulas_equal_sklearn_and_numpy() -> None:
    rng = np.random.default_rng(5)
    for _ in range(30):
        n = int(rng.integers(2, 60))
        a, c, m = (rng.integers(0, 5, n) for _ in range(3))
        sums = _features(a, c, m).sum(axis=0)[None, :]
        got = pair_statistics(sums)
        for index, x in enumerate((a, m)):
            if len(np.union1d(x, c)) > 1:
                sk = cohen_kappa_score(x, c, weights="quadratic", labels=list(range(5)))
                assert got["weighted_kappa"][index][0] == pytest.approx(sk, abs=1e-12)
            else:
                assert np.isnan(got["weighted_kappa"][index][0])
            assert got["exact"][index][0] == pytest.approx(np.mean(x == c))


def test_multinomial_unit_draws_match_resampling_item_indices() -> None:
    rng = np.random.default_rng(8)
    truth = rng.integers(0, 5, 200)
    a, c = np.clip(truth + rng.integers(-1, 2, 200), 0, 4), np.clip(truth + rng.integers(-1, 2, 200), 0, 4)
    m = np.clip(truth + rng.integers(-2, 3, 200), 0, 4)
    units = _features(a, c, m)
    ours = pair_statistics(_resample(units, 4000, np.random.default_rng(1)))
    literal = pair_statistics(units[np.random.default_rng(2).integers(0, 200, (4000, 200))].sum(axis=1))
    for name in ("weighted_kappa", "exact"):
        for side in (0, 1):
            for q in (2.5, 50, 97.5):
                assert np.percentile(ours[name][side], q) == pytest.approx(
                    np.percentile(literal[name][side], q), abs=0.015)


@pytest.mark.parametrize("high", [4, 2**40])  # numbered in mixed radix, or too big for it: np.unique(axis=0)
def test_distinct_units_are_np_unique_rows(high: int) -> None:
    units = np.random.default_rng(3).integers(0, 3, (500, 6)) * (high // 2)
    distinct, counts = _distinct(units)
    expected, expected_counts = np.unique(units, axis=0, return_counts=True)
    order = np.lexsort(distinct.T[::-1])
    assert np.array_equal(distinct[order], expected) and np.array_equal(counts[order], expected_counts)


def test_the_difference_ci_is_paired() -> None:
    # The judge scores exactly as A does: on A's row the two columns are the same on every resample, so the
    # difference is 0 with the CI [0, 0]; two independent intervals would give a wide difference interval.
    rng = np.random.default_rng(4)
    truth = rng.integers(1, 6, 80)
    scores = {name: list(np.clip(truth + rng.integers(-1, 2, 80), 1, 5)) for name in "ABC"}
    row = by_name(agreement_report(rows_from(scores, scores["A"]), scale=(1, 5), seed=1)["judge_vs_people"])["A"]
    for name in ("weighted_kappa", "exact"):
        difference = row[name]["difference"]
        assert (difference["value"], difference["ci_low"], difference["ci_high"]) == (0, 0, 0)
        assert row[name]["annotator"]["ci_low"] < row[name]["annotator"]["ci_high"]
        assert row[name]["judge_vs_annotator"] == "same"


# --- the reading ------------------------------------------------------------------------------------------

TALLIES = [
    ({"better": 0, "worse": 0, "same": 3, "no_ci": 0, "annotators": 3},
     "The judge agrees with people about as well as people agree with each other"),
    ({"better": 0, "worse": 3, "same": 0, "no_ci": 0, "annotators": 3}, "below every annotator"),
    ({"better": 2, "worse": 0, "same": 0, "no_ci": 0, "annotators": 2}, "above every annotator"),
    ({"better": 1, "worse": 2, "same": 1, "no_ci": 0, "annotators": 4},
     "The judge agrees with the others' consensus better than 1, worse than 2 and about as well as 1 of the 4 "
     "annotators (weighted kappa"),
    ({"better": 2, "worse": 0, "same": 1, "no_ci": 0, "annotators": 3},
     "better than 2 and about as well as 1 of the 3"),
    ({"better": 0, "worse": 1, "same": 1, "no_ci": 1, "annotators": 3},
     "consensus worse than 1 and about as well as 1 of the 2 annotators (weighted kappa; judge - annotator, 95% "
     "CIs); 1 annotator without a confidence interval."),
    ({"better": 0, "worse": 0, "same": 0, "no_ci": 2, "annotators": 2}, "No reading: no annotator's difference"),
]


@pytest.mark.parametrize(("tally", "expected"), TALLIES)
def test_each_reading(tally: dict, expected: str) -> None:
    assert expected in reading(tally, "weighted kappa")


def test_the_reading_says_when_rows_have_few_items(hand: dict) -> None:
    assert hand["reading"].endswith(f"; 3 annotators with fewer than {FEW_ITEMS} items, whose CIs are rough.")
    assert reading(TALLIES[0][0], "weighted kappa", few=1).endswith(f"; 1 annotator with fewer than {FEW_ITEMS} "
                                                                    "items, whose CIs are rough.")
    assert "rough" not in reading(TALLIES[0][0], "weighted kappa")


def test_no_reading_without_the_bootstrap() -> None:
    block = agreement_report(rows_from(HAND, HAND_MODEL), scale=(1, 3), n_resamples=0)["judge_vs_people"]
    assert block["reading"].startswith("No reading: the bootstrap is off")
    assert block["rows"][0]["exact"]["difference"]["ci_reason"] == "bootstrap disabled (0 resamples)"


def noisy(n: int, spread: dict[str, int], judge_spread: int | None, seed: int) -> list[dict]:
    """Annotators within ±spread of a 1-5 truth; the judge within ±judge_spread, or uniformly random when None."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, n)
    scores = {name: list(np.clip(truth + rng.integers(-s, s + 1, n), 1, 5)) for name, s in spread.items()}
    judge = rng.integers(1, 6, n) if judge_spread is None else np.clip(truth + rng.integers(-judge_spread,
                                                                                           judge_spread + 1, n), 1, 5)
    return rows_from(scores, list(judge))


@pytest.mark.parametrize(
    ("spread", "judge_spread", "expected", "tally"),
    [
        ({"A": 1, "B": 1, "C": 1}, 0, "above every annotator", (3, 0, 0)),
        ({"A": 0, "B": 0, "C": 0}, None, "below every annotator", (0, 3, 0)),
        ({"A": 1, "B": 1, "C": 1}, 1, "about as well as people agree with each other", (0, 0, 3)),
    ],
)
def test_the_reading_follows_the_numbers(spread: dict, judge_spread: int | None, expected: str, tally: tuple) -> None:
    block = agreement_report(noisy(400, spread, judge_spread, seed=2), scale=(1, 5), seed=0)["judge_vs_people"]
    assert expected in block["reading"]
    assert (block["tally"]["better"], block["tally"]["worse"], block["tally"]["same"]) == tally
    assert block["reading_metric"] == "weighted_kappa"


def test_a_mixed_reading_counts_each_side() -> None:
    # A is the truth itself and D is random: the judge (within ±1) is worse than A and better than D.
    block = agreement_report(noisy(400, {"A": 0, "B": 1, "C": 1, "D": 4}, 1, seed=6), scale=(1, 5),
                             seed=0)["judge_vs_people"]
    verdicts = {row["annotator"]: row["weighted_kappa"]["judge_vs_annotator"] for row in block["rows"]}
    assert verdicts["A"] == "worse" and verdicts["D"] == "better"
    tally = block["tally"]
    assert tally["better"] + tally["worse"] + tally["same"] == 4
    assert f"better than {tally['better']}, worse than {tally['worse']}" in block["reading"]
    assert ("about as well as" in block["reading"]) == bool(tally["same"]) and "of the 4 annotators" in block["reading"]


@pytest.mark.parametrize(
    ("judge", "expected"),
    [((0.5, 0.45, 0.55), "alpha is inside the judge's CI"), ((0.3, 0.2, 0.4), "the judge's whole CI is below alpha"),
     ((0.8, 0.7, 0.9), "the judge's whole CI is above alpha")],
)
def test_each_ceiling_reading(judge: tuple[float, float, float], expected: str) -> None:
    from core.agreement.judge_vs_people import ceiling_reading

    value, low, high = judge
    pooled = {"judge": {"value": value, "ci_low": low, "ci_high": high}, "annotator": {"value": 0.6}}
    text = ceiling_reading({"value": 0.5}, pooled)
    assert expected in text and "= 0.500" in text
    assert f"judge {value:.3f} [{low:.3f}, {high:.3f}], annotators 0.600" in text
    undefined = {"value": None, "reason": "fewer than 2 annotators"}
    assert "undefined (fewer than 2 annotators)" in ceiling_reading(undefined, pooled)
    no_ci = ceiling_reading({"value": 0.5}, {"judge": {"value": value}, "annotator": {"value": 0.6}})
    assert "the judge has no CI to set against alpha" in no_ci


# --- edge cases -------------------------------------------------------------------------------------------


def test_one_annotator_is_not_available() -> None:
    block = agreement_report(rows_from({"A": [1, 2, 3]}, [1, 2, 3]), scale=(1, 3))["judge_vs_people"]
    assert block == {**block, "available": False}
    assert "fewer than 2 annotators" in block["reason"]


@pytest.mark.parametrize(
    ("scores", "model"),
    [({"A": [1, 2, None, None], "B": [None, None, 3, 1]}, [1, 2, 3, 1]),  # nobody shares an item
     ({"A": [1, 2, 3, 1, None], "B": [2, 2, 3, None, 2]}, [None, None, None, 2, 3])],  # shared: not graded
)
def test_no_graded_item_with_two_labels(scores: dict, model: list) -> None:
    block = agreement_report(rows_from(scores, model), scale=(1, 3))["judge_vs_people"]
    assert not block["available"] and block["reason"] == "no graded item was labelled by 2 or more annotators"


def test_no_rows_at_all() -> None:
    block = agreement_report([], n_resamples=10)["judge_vs_people"]
    assert not block["available"] and block["reason"]


def test_a_constant_judge() -> None:
    # The judge always says 2. Against a consensus that varies, kappa is 0 (as sklearn and the headline say);
    # against a consensus that is 2 everywhere too, kappa is 0/0: undefined, with the reason, and so is the
    # difference; exact agreement is still defined.
    varied = agreement_report(rows_from(HAND, [2] * 6), scale=(1, 3), seed=1)["judge_vs_people"]
    assert varied["rows"][0]["weighted_kappa"]["judge"]["value"] == pytest.approx(0)
    flat = strict(agreement_report(rows_from({"A": [2] * 5, "B": [2] * 5}, [2] * 5), scale=(1, 3),
                                   seed=1)["judge_vs_people"])
    kappa = flat["rows"][0]["weighted_kappa"]
    assert kappa["judge"]["value"] is None and "0/0" in kappa["judge"]["reason"]
    assert kappa["difference"]["value"] is None
    assert kappa["difference"]["reason"].startswith("the annotator's weighted kappa (quadratic) is undefined")
    assert kappa["judge_vs_annotator"] is None
    assert flat["rows"][0]["exact"]["judge"]["value"] == 1.0
    assert flat["reading_metric"] == "exact"  # kappa has no CI anywhere: the reading falls back to exact agreement


def test_few_items_carry_a_note_and_enough_do_not() -> None:
    small = agreement_report(rows_from(HAND, HAND_MODEL), scale=(1, 3), n_resamples=50)["judge_vs_people"]
    assert all("only 6 items" in row["note"] for row in [*small["rows"], small["pooled"]])
    big = agreement_report(noisy(FEW_ITEMS, {"A": 1, "B": 1}, 1, seed=3), scale=(1, 5),
                           n_resamples=50)["judge_vs_people"]
    assert all("note" not in row for row in big["rows"])


def test_an_annotator_who_shares_no_item_is_listed_as_left_out() -> None:
    scores = {"A": [1, 2, 3, None], "B": [1, 3, 3, None], "C": [None, None, None, 2]}
    block = agreement_report(rows_from(scores, [1, 2, 3, 2]), scale=(1, 3), n_resamples=20)["judge_vs_people"]
    assert [row["annotator"] for row in block["rows"]] == ["A", "B"]
    assert [entry["annotator"] for entry in block["left_out"]] == ["C"]
    assert block["tally"]["annotators"] == 2


def test_a_blind_study_uses_the_scores_from_before_the_reveal() -> None:
    rows = rows_from(HAND, HAND_MODEL, blind=True)
    for row in rows:  # after the reveal everyone copied the judge; before it, they gave HAND
        row["human_score_before_reveal"] = row["human_score"]
        row["human_score"] = HAND_MODEL[int(row["item_id"][1:])]
    block = agreement_report(rows, scale=(1, 3), n_resamples=0)["judge_vs_people"]
    assert by_name(block)["A"]["exact"]["annotator"]["value"] == pytest.approx(5 / 6)


# --- properties -------------------------------------------------------------------------------------------


def test_values_stay_in_range_and_the_block_is_strict_json() -> None:
    rng = np.random.default_rng(12)
    for trial in range(25):
        low = int(rng.integers(-2, 2))
        high = low + int(rng.integers(1, 6))
        n_items, n_people = int(rng.integers(2, 40)), int(rng.integers(2, 5))
        rows = []
        for i in range(n_items):
            model = int(rng.integers(low, high + 1)) if rng.random() > 0.1 else None
            for p in range(n_people):
                if rng.random() < 0.7:
                    rows.append({"item_id": i, "annotator": f"p{p}", "human_score": int(rng.integers(low, high + 1)),
                                 "model_score": model})
        if not rows:
            continue
        block = strict(agreement_report(rows, scale=(low, high), n_resamples=60, seed=trial)["judge_vs_people"])
        if not block["available"]:
            continue
        for row in [*block["rows"], block["pooled"]]:
            for name, bound in (("weighted_kappa", 1.0), ("exact", 1.0)):
                floor = -1.0 if name == "weighted_kappa" else 0.0
                for side in ("annotator", "judge"):
                    metric = row[name][side]
                    for key in ("value", "ci_low", "ci_high"):
                        if metric.get(key) is not None:
                            assert floor - 1e-12 <= metric[key] <= bound + 1e-12, (trial, name, side, key)
                difference = row[name]["difference"]
                if difference.get("ci_low") is not None:
                    assert difference["ci_low"] <= difference["ci_high"]
                    assert -2 * bound <= difference["ci_low"] and difference["ci_high"] <= 2 * bound
                if difference["value"] is not None:
                    assert difference["value"] == pytest.approx(row[name]["judge"]["value"]
                                                                - row[name]["annotator"]["value"])
        assert block["tally"]["annotators"] == len(block["rows"])


def test_with_two_annotators_each_row_is_their_pairwise_agreement() -> None:
    # With two annotators the others' consensus is the other's own score: both rows' annotator column is the
    # report's pairwise kappa and exact agreement, the same from either side.
    rows = noisy(60, {"A": 1, "B": 1}, 1, seed=9)
    report = agreement_report(rows, scale=(1, 5), n_resamples=0)
    rows_by = by_name(report["judge_vs_people"])
    pair = report["human_human"]["pairs"][0]
    for name in ("A", "B"):
        assert rows_by[name]["weighted_kappa"]["annotator"]["value"] == pytest.approx(pair["weighted_kappa"]["value"])
        assert rows_by[name]["exact"]["annotator"]["value"] == pytest.approx(pair["exact"]["value"])


def test_swapping_the_judge_and_an_annotator_swaps_their_columns() -> None:
    rng = np.random.default_rng(13)
    truth = rng.integers(1, 6, 50)
    scores = {name: list(np.clip(truth + rng.integers(-1, 2, 50), 1, 5)) for name in "ABC"}
    judge = list(np.clip(truth + rng.integers(-2, 3, 50), 1, 5))
    first = by_name(agreement_report(rows_from(scores, judge), scale=(1, 5), n_resamples=0)["judge_vs_people"])
    swapped = by_name(agreement_report(rows_from({**scores, "A": judge}, scores["A"]), scale=(1, 5),
                                       n_resamples=0)["judge_vs_people"])
    for name in ("weighted_kappa", "exact"):
        one, two = first["A"][name], swapped["A"][name]
        assert one["annotator"]["value"] == pytest.approx(two["judge"]["value"])
        assert one["judge"]["value"] == pytest.approx(two["annotator"]["value"])
        assert one["difference"]["value"] == pytest.approx(-two["difference"]["value"])


# --- the report, the CLI and the HTML ---------------------------------------------------------------------


def test_the_block_is_in_every_report_and_reproducible() -> None:
    rows = noisy(100, {"A": 1, "B": 1, "C": 1}, 1, seed=1)
    first = agreement_report(rows, scale=(1, 5), seed=4)["judge_vs_people"]
    assert first == agreement_report(rows, scale=(1, 5), seed=4)["judge_vs_people"]
    assert first != agreement_report(rows, scale=(1, 5), seed=5)["judge_vs_people"]
    assert "leave-j-out" in first["method"] and first["confidence"] == 0.95


def test_the_cli_writes_the_block_and_prints_the_reading(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    lines = ["item_id,annotator,human_score,model_score\n"]
    lines += [f"{row['item_id']},{row['annotator']},{row['human_score']},{row['model_score']}\n"
              for row in rows_from(HAND, HAND_MODEL)]
    path.write_text("".join(lines), encoding="utf-8")
    out = tmp_path / "r.json"
    done = subprocess.run([sys.executable, "-m", "core", "agreement", str(path), "--out", str(out), "--resamples",
                           "200"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    block = json.loads(out.read_text(encoding="utf-8"))["judge_vs_people"]
    assert block["available"] and [row["n_items"] for row in block["rows"]] == [6, 6, 6]
    assert f"Judge vs people: {block['reading']}" in done.stdout.splitlines()


def test_the_renderer_escapes_names_and_shows_the_table() -> None:
    scores = {"<b>x</b>": HAND["A"], "B": HAND["B"], "C": HAND["C"]}
    report = agreement_report(rows_from(scores, HAND_MODEL), scale=(1, 3), n_resamples=100, seed=2)
    fragment = render_judge_vs_people(report["judge_vs_people"])
    assert "<b>x</b>" not in fragment and "&lt;b&gt;x&lt;/b&gt;" in fragment
    assert "<b>" not in fragment
    assert report["judge_vs_people"]["reading"].replace("'", "&#x27;") in fragment
    assert f"{5 / 6:.3f} [" in fragment and POOLED in fragment
    page = report_to_html(report, [])
    assert "Judge vs people, next to people vs people" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_the_renderer_says_why_when_not_available() -> None:
    block = agreement_report(rows_from({"<i>solo</i>": [1, 2]}, [1, 2]), scale=(1, 3))["judge_vs_people"]
    fragment = render_judge_vs_people(block)
    assert "fewer than 2 annotators" in fragment and "<table" not in fragment
