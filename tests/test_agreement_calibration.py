"""Calibration (core.agreement.calibration): reliability bins, ECE and the auto-accept threshold, worked by hand,
at the edges, as properties, from a real SQLite study and its export, on the command line and in the HTML report.

The hand-worked case is the review study of tests.review_data (1-5 scale, two annotators, a judge with a score
distribution per item):

    item  consensus  judge  confidence  agreed
    1     1          1      0.90        yes
    2     3          2      0.50        no
    3     3          5      0.95        no
    4     5 (4.5 up) 4      0.60        no
    5     5          5      0.80        yes
    6     3 (2.5 up) 4      0.70        no
    7     2          2      0.85        yes

Bins of width 0.1: [0.5, 0.6) 1 item, conf 0.5, agreement 0; [0.6, 0.7) 1, 0.6, 0; [0.7, 0.8) 1, 0.7, 0;
[0.8, 0.9) 2 items (0.80, 0.85), mean 0.825, agreement 1; [0.9, 1] 2 items (0.90, 0.95), mean 0.925, agreement 0.5.
ECE = (0.5 + 0.6 + 0.7 + 2 x 0.175 + 2 x 0.425) / 7 = 3 / 7.

Most confident first, cumulative (agreed of n) at each threshold: 0.95: 0/1, 0.90: 1/2, 0.85: 2/3, 0.80: 3/4,
0.70: 3/5, 0.60: 3/6, 0.50: 3/7. One-sided 95% Clopper-Pearson lower bound = the 5% quantile of
Beta(k, n - k + 1); for 3 of 4, Beta(3, 2) has CDF 4x^3 - 3x^4, which is 0.05 at x = 0.2486; for 3 of 5,
Beta(3, 3), 0.1893; 3 of 6, Beta(3, 4), 0.1532; 3 of 7, Beta(3, 5), 0.1288; 2 of 3, Beta(2, 2) (CDF 3x^2 - 2x^3),
0.1354. So for a target of 0.2 only confidence >= 0.80 qualifies (4 of 7 items covered); for 0.15, >= 0.60
(6 of 7); for 0.1 every item (threshold 0.50, coverage 1).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import optimize, stats

from core.agreement import MODEL_CONFIDENCE, agreement_report, load_ratings
from core.agreement.calibration import judge_calibration, lower_bound, needed_all_agreeing
from core.agreement_cli import calibration_lines
from core.errors import InputError
from core.store import Store
from core.studies import ADMIN, Studies, User, write_exports
from tests.review_data import CONFIDENCE, JUDGE, make_review_study
from webapp.report_calibration import reliability_figure, render_calibration, threshold_sentence
from webapp.report_html import report_to_html

ROOT = Path(__file__).resolve().parent.parent
CONSENSUS = [1, 3, 3, 5, 5, 3, 2]
ANN = [1, 2, 3, 4, 5, 2, 2]
BOB = [1, 4, 3, 5, 5, 3, 2]


def hand(target: float = 0.9) -> dict:
    return judge_calibration(np.array(CONFIDENCE), np.array(JUDGE, float), np.array(CONSENSUS, float), target=target)


def hand_rows(confidence: list[float | None] = CONFIDENCE) -> list[dict]:  # type: ignore[assignment]
    return [{"item_id": f"h{i}", "annotator": name, "human_score": score, "model_score": JUDGE[i],
             MODEL_CONFIDENCE: confidence[i]}
            for i in range(7) for name, score in (("ann", ANN[i]), ("bob", BOB[i]))]


def beta_cdf_root(cdf, level: float = 0.05) -> float:
    return optimize.brentq(lambda x: cdf(x) - level, 1e-9, 1 - 1e-9)


# --- hand-worked ---------------------------------------------------------------------------------


def test_bins_and_ece_match_the_hand_computed_values() -> None:
    block = hand()
    assert block["available"] and block["n_labelled"] == 7 and block["n_agreed"] == 3
    filled = [(b["low"], b["n"], b["mean_confidence"], b["agreement"]) for b in block["bins"] if b["n"]]
    expected = [(0.5, 1, 0.5, 0.0), (0.6, 1, 0.6, 0.0), (0.7, 1, 0.7, 0.0), (0.8, 2, 0.825, 1.0), (0.9, 2, 0.925, 0.5)]
    assert [(low, n) for low, n, _, _ in filled] == [(low, n) for low, n, _, _ in expected]
    for (_, _, conf, agree), (_, _, want_conf, want_agree) in zip(filled, expected, strict=True):
        assert conf == pytest.approx(want_conf) and agree == pytest.approx(want_agree)
    assert len(block["bins"]) == 10
    empty = [b for b in block["bins"] if not b["n"]]  # kept, with no rates
    assert len(empty) == 5 and all(b["mean_confidence"] is None and b["agreement"] is None for b in empty)
    assert block["ece"]["value"] == pytest.approx(3 / 7)


def test_the_bound_is_the_beta_quantile_written_out() -> None:
    # 3 of 4: Beta(3, 2), CDF 4x^3 - 3x^4; 2 of 3: Beta(2, 2), CDF 3x^2 - 2x^3; n of n: x^n = 0.05.
    assert lower_bound(3, 4) == pytest.approx(beta_cdf_root(lambda x: 4 * x**3 - 3 * x**4), abs=1e-9)
    assert lower_bound(2, 3) == pytest.approx(beta_cdf_root(lambda x: 3 * x**2 - 2 * x**3), abs=1e-9)
    assert lower_bound(3, 4) == pytest.approx(0.2486, abs=1e-4)
    for n in (1, 5, 29):
        assert lower_bound(n, n) == pytest.approx(0.05 ** (1 / n))
    assert lower_bound(0, 5) == 0.0
    # The same as scipy's exact binomial interval at 90% two-sided (whose lower end is the one-sided 95% bound).
    for k, n in ((3, 4), (7, 10), (95, 100)):
        assert lower_bound(k, n) == pytest.approx(stats.binomtest(k, n).proportion_ci(0.90, method="exact").low)
    # 29 agreeing items are the fewest that reach 0.9: 0.05^(1/28) < 0.9 <= 0.05^(1/29).
    assert needed_all_agreeing(0.9) == 29 and 0.05 ** (1 / 28) < 0.9 <= 0.05 ** (1 / 29)


@pytest.mark.parametrize(("target", "value", "n", "agreed", "covered"), [
    (0.2, 0.80, 4, 3, 4),
    (0.15, 0.60, 6, 3, 6),
    (0.1, 0.50, 7, 3, 7),  # every item is at or above the threshold
])
def test_the_threshold_matches_the_hand_computed_scan(target: float, value: float, n: int, agreed: int,
                                                      covered: int) -> None:
    threshold = hand(target)["threshold"]
    assert threshold["found"] and threshold["value"] == value
    assert (threshold["n"], threshold["agreed"], threshold["n_covered"]) == (n, agreed, covered)
    assert threshold["coverage"] == pytest.approx(covered / 7)
    assert threshold["coverage_labelled"] == pytest.approx(n / 7)
    assert threshold["lower_bound"] == pytest.approx(lower_bound(agreed, n)) and threshold["lower_bound"] >= target


def test_with_too_few_labelled_items_the_report_says_how_many_more_at_least() -> None:
    threshold = hand(0.9)["threshold"]
    assert not threshold["found"] and threshold["value"] is None
    # 29 items all agreeing are the least that can reach 0.9; there are 7.
    assert (threshold["min_labelled_items"], threshold["more_labelled_needed"]) == (29, 22)
    assert threshold["best"]["value"] == 0.80 and threshold["best"]["lower_bound"] == pytest.approx(0.2486, abs=1e-4)
    assert "22 more labelled items" in threshold["reason"]


def test_more_labelled_items_are_projected_at_the_observed_agreement() -> None:
    # 100 items at confidence 0.9, 95 agreeing: bound(95, 100) < 0.9, but 95% stays above it with more items.
    model = np.ones(100)
    block = judge_calibration(np.full(100, 0.9), model, np.r_[np.ones(95), np.full(5, 2.0)], target=0.9)
    threshold = block["threshold"]
    assert lower_bound(95, 100) < 0.9 and not threshold["found"]
    more, total = threshold["more_labelled_needed"], 100 + threshold["more_labelled_needed"]
    assert lower_bound(0.95 * total, total) >= 0.9 > lower_bound(0.95 * (total - 1), total - 1)
    assert threshold["more_needed_at"] == 0.9 and f"about {more} more" in threshold["reason"]
    # 80% agreement is below a 90% target: more labels at that rate never get there.
    block = judge_calibration(np.full(100, 0.9), model, np.r_[np.ones(80), np.full(20, 2.0)], target=0.9)
    assert block["threshold"]["more_labelled_needed"] is None and "will not change" in block["threshold"]["reason"]


# --- edges -----------------------------------------------------------------------------------------


def test_no_confidence_makes_the_block_unavailable_with_a_reason() -> None:
    block = judge_calibration(np.full(3, np.nan), np.array([1.0, 2, 3]), np.array([1.0, 2, 3]))
    assert block == {"available": False, "target": 0.9, "reason": block["reason"]}
    assert "model_confidence" in block["reason"]
    report = agreement_report([{k: v for k, v in r.items() if k != MODEL_CONFIDENCE} for r in hand_rows()],
                              n_resamples=0)
    assert report["calibration"]["available"] is False


def test_confidences_without_labels_ask_for_the_minimum() -> None:
    block = judge_calibration(np.array([0.7, 0.9]), np.array([1.0, 2]), np.array([np.nan, np.nan]))
    assert block["available"] and block["n_labelled"] == 0 and block["ece"]["value"] is None
    assert all(b["n"] == 0 for b in block["bins"])
    assert block["threshold"]["more_labelled_needed"] == 29 and not block["threshold"]["found"]


def test_all_confidences_equal_give_one_bin_and_one_threshold() -> None:
    n = 40
    block = judge_calibration(np.full(n, 0.8), np.ones(n), np.ones(n), target=0.9)
    assert [b["n"] for b in block["bins"]] == [0] * 8 + [n, 0]
    assert block["ece"]["value"] == pytest.approx(0.2)
    threshold = block["threshold"]
    assert threshold["found"] and threshold["value"] == 0.8 and threshold["coverage"] == 1.0
    assert threshold["lower_bound"] == pytest.approx(0.05 ** (1 / n))


def test_a_constant_judge_is_calibrated_against_what_people_say() -> None:
    # The judge always says 3 with confidence 0.6; people say 3 on 3 items of 5.
    block = judge_calibration(np.full(5, 0.6), np.full(5, 3.0), np.array([3.0, 3, 3, 2, 4]))
    assert block["bins"][6]["agreement"] == pytest.approx(0.6) and block["ece"]["value"] == pytest.approx(0.0)
    assert not block["threshold"]["found"]


def test_edge_confidences_fall_in_the_bin_above_and_one_in_the_last() -> None:
    edges = np.arange(11) / 10
    block = judge_calibration(edges, np.ones(11), np.ones(11))
    assert [b["n"] for b in block["bins"]] == [1] * 9 + [2]


def test_items_not_graded_or_unlabelled_count_only_where_they_should() -> None:
    confidence = np.array([0.95] * 30 + [0.9, 0.9, np.nan])
    model = np.array([2.0] * 30 + [2.0, np.nan, 2.0])
    consensus = np.array([2.0] * 30 + [np.nan, 2.0, 2.0])
    block = judge_calibration(confidence, model, consensus)
    assert (block["n_graded"], block["n_with_confidence"], block["n_labelled"]) == (32, 31, 30)
    threshold = block["threshold"]
    assert threshold["found"] and threshold["value"] == 0.95
    # Coverage counts every graded item, labelled or not (the unlabelled 0.9 is below the threshold).
    assert threshold["n_covered"] == 30 and threshold["coverage"] == pytest.approx(30 / 32)


def test_coverage_can_count_a_wider_population_than_the_items_used() -> None:
    # E.g. the threshold from the items drawn at random, applied to the whole study (an item without a confidence
    # is never covered).
    population = np.r_[np.full(30, 0.95), np.full(29, 0.5), np.nan]
    block = judge_calibration(np.full(30, 0.95), np.ones(30), np.ones(30), population=population)
    assert block["n_graded"] == 60 and block["threshold"]["n_covered"] == 30
    assert block["threshold"]["coverage"] == 0.5 and block["threshold"]["coverage_labelled"] == 1.0


@pytest.mark.parametrize("target", [0, 1, 1.5, -0.1, 90, True, "0.9", math.nan])
def test_a_target_outside_zero_one_is_refused(target: object) -> None:
    with pytest.raises(InputError, match="target"):
        agreement_report(hand_rows(), n_resamples=0, target=target)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "message"), [
    ("high", "not a number"), (1.5, "between 0 and 1"), (-0.1, "between 0 and 1"), ("inf", "between 0 and 1")])
def test_bad_confidences_are_refused(value: object, message: str) -> None:
    rows = hand_rows()
    rows[0][MODEL_CONFIDENCE] = value
    with pytest.raises(InputError, match=message):
        agreement_report(rows, n_resamples=0)


def test_confidence_must_be_the_same_on_every_row_of_an_item_and_may_be_missing() -> None:
    rows = hand_rows()
    rows[1][MODEL_CONFIDENCE] = 0.3
    with pytest.raises(InputError, match="conflicting model_confidence"):
        agreement_report(rows, n_resamples=0)
    rows = hand_rows()
    rows[1][MODEL_CONFIDENCE] = None  # given on one row of the item only: fine
    rows[3][MODEL_CONFIDENCE] = "NA"
    assert agreement_report(rows, n_resamples=0)["calibration"]["ece"]["value"] == pytest.approx(3 / 7)


# --- properties ----------------------------------------------------------------------------------

items = st.integers(min_value=1, max_value=60).flatmap(lambda n: st.tuples(
    st.lists(st.sampled_from([0.2, 0.35, 0.5, 0.6, 0.75, 0.8, 0.9, 0.95, 0.99, 1.0]), min_size=n, max_size=n),
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.lists(st.booleans(), min_size=n, max_size=n)))


@given(items)
def test_threshold_rises_and_coverage_falls_with_the_target(data: tuple[list[float], list[bool], list[bool]]) -> None:
    confidence, agreed, labelled = (np.array(x) for x in data)
    consensus = np.where(labelled, np.where(agreed, 1.0, 2.0), np.nan)
    previous_value, previous_coverage = -1.0, 2.0
    for target in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99):
        block = judge_calibration(confidence, np.ones(len(confidence)), consensus, target=target)
        threshold = block["threshold"]
        value = threshold["value"] if threshold["found"] else math.inf
        coverage = threshold["coverage"] if threshold["found"] else 0.0
        assert value >= previous_value and coverage <= previous_coverage
        previous_value, previous_coverage = value, coverage
        ece = block["ece"]["value"]
        assert ece is None or 0 <= ece <= 1
        assert threshold["found"] or threshold["more_labelled_needed"] is None \
            or threshold["more_labelled_needed"] >= 1


# --- a real study, its export, the command line ------------------------------------------------------


@pytest.fixture
def study(tmp_path: Path) -> Iterator[tuple[Studies, User, int]]:
    with Store.from_path(tmp_path / "calibration.db") as store:
        studies = Studies(store, password_cost=16)
        admin = studies.create_user("ada", "correct horse battery", role=ADMIN)
        ann, bob = (studies.create_user(name, "correct horse battery") for name in ("ann", "bob"))
        made = make_review_study(studies, store, admin, ann, bob)
        yield studies, admin, made.study_id


def test_a_study_s_ratings_and_export_carry_the_judge_s_confidence(study: tuple[Studies, User, int],
                                                                   tmp_path: Path) -> None:
    studies, admin, study_id = study
    rows = studies.ratings(admin, study_id)
    by_item: dict[int, float | None] = {}
    for row in rows:
        by_item.setdefault(row["item_id"], row[MODEL_CONFIDENCE])
    assert list(by_item.values()) == pytest.approx(CONFIDENCE)
    exported = studies.export_rows(admin, study_id)
    assert sorted({row[MODEL_CONFIDENCE] for row in exported}) == pytest.approx(sorted(CONFIDENCE))
    report = agreement_report(rows, (1, 5), n_resamples=0, target=0.2)
    block = report["calibration"]
    assert block["ece"]["value"] == pytest.approx(3 / 7)
    assert block["threshold"]["value"] == pytest.approx(0.8) and block["threshold"]["n_covered"] == 4
    paths = write_exports(studies, admin, study_id, report, tmp_path)
    for path in paths[:2]:  # the CSV and the JSONL read back as they are give the same block
        again = agreement_report(load_ratings(path), (1, 5), n_resamples=0, target=0.2)
        assert again["calibration"] == block, path.name


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", "agreement", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_cli_takes_a_target_and_prints_the_threshold(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    lines = ["item_id,annotator,human_score,model_score,model_confidence"]
    lines += [f"{r['item_id']},{r['annotator']},{r['human_score']},{r['model_score']},{r[MODEL_CONFIDENCE]}"
              for r in hand_rows()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "report.json"
    done = run_cli(path, "--target", "0.2", "--resamples", "0", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "Calibration: ECE 0.429 on 7 labelled items" in done.stdout
    assert "Auto-accept at confidence >= 0.800: 3 of 4 labelled items agreed" in done.stdout
    assert json.loads(out.read_text(encoding="utf-8"))["calibration"]["target"] == 0.2
    default = run_cli(path, "--resamples", "0")
    assert "No auto-accept threshold for 90%" in default.stdout
    assert "a share between 0 and 1 (default 0.9, i.e. 90%)" in " ".join(run_cli("--help").stdout.split())
    refused = run_cli(path, "--target", "90")
    assert refused.returncode == 2 and "expected a share between 0 and 1, e.g. 0.9 for 90%" in refused.stderr


def test_the_summary_says_when_calibration_is_not_available() -> None:
    assert calibration_lines({"available": False, "reason": "no confidences"}) == [
        "Calibration: not available (no confidences)"]


# --- rendering --------------------------------------------------------------------------------------------

HOSTILE = "<script>alert('cal')</script>"


def test_the_html_shows_the_threshold_the_ece_and_the_bins_escaped() -> None:
    block = {**hand(0.2), "method": HOSTILE}
    html = render_calibration(block)
    assert HOSTILE not in html and "&lt;script&gt;" in html
    assert "confidence is at least 0.800" in html and "0.429" in html and html.count("<tr>") == 11
    assert render_calibration({"available": False, "reason": HOSTILE}) == (
        '<p class="note">&lt;script&gt;alert(&#x27;cal&#x27;)&lt;/script&gt;</p>')
    assert "No auto-accept threshold for a target agreement of 90%" in threshold_sentence(hand(0.9))


def test_the_reliability_figure_has_the_diagonal_the_bins_and_the_counts() -> None:
    figure = reliability_figure(hand(0.2))
    assert figure is not None
    counts, diagonal, judge = figure.data
    assert list(diagonal.x) == [0, 1] and list(diagonal.y) == [0, 1]
    assert list(judge.y) == pytest.approx([0, 0, 0, 1, 0.5]) and list(judge.text) == ["1", "1", "1", "2", "2"]
    assert list(counts.y) == [0, 0, 0, 0, 0, 1, 1, 1, 2, 2]
    assert reliability_figure({"available": False}) is None
    assert reliability_figure(hand(0.2) | {"n_labelled": 0}) is None


def test_the_html_report_has_the_calibration_section_and_chart() -> None:
    report = agreement_report(hand_rows(), (1, 5), n_resamples=0, target=0.2)
    html = report_to_html(report, [])
    assert "Calibration: where the judge can be trusted" in html and "Reliability (calibration)" in html
    assert "confidence is at least 0.800" in html and html.count("plotly.js v") == 1
    plain = report_to_html(agreement_report(
        [{k: v for k, v in r.items() if k != MODEL_CONFIDENCE} for r in hand_rows()], n_resamples=0), [])
    assert "Calibration: where the judge can be trusted" in plain and "<script" not in plain
