"""The audit's statistics (core.audit.report) on hand-worked arrays, and its renderers (webapp.report_audit)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from core.agreement import agreement_report
from core.audit.report import RunScores, audit_report, compare_run, flip_rate, human_consensus, resampled_agreement
from core.errors import InputError

BASELINE = {1: 1, 2: 1, 3: 0, 4: 0, 5: 1, 6: None}
PERTURBED = RunScores("reverse-rubric", {1: 1, 2: 0, 3: 0, 4: 1, 5: 1, 6: 1}, "reversed")
HUMANS = {1: 1, 2: 1, 3: 0, 4: 0, 5: 0}


def test_flip_rate_with_its_exact_interval() -> None:
    metric = flip_rate(2, 5)
    assert (metric["value"], metric["n"], metric["flips"]) == (0.4, 5, 2)
    # Clopper-Pearson 95% for 2 of 5 (textbook: 0.0527 to 0.8534).
    assert metric["ci_low"] == pytest.approx(0.05274, abs=1e-4)
    assert metric["ci_high"] == pytest.approx(0.85336, abs=1e-4)
    assert flip_rate(0, 10)["ci_low"] == 0.0 and flip_rate(0, 10)["ci_high"] == pytest.approx(1 - 0.025 ** 0.1)
    assert flip_rate(0, 0)["value"] is None


def test_one_row_by_hand() -> None:
    row = compare_run(BASELINE, PERTURBED, (0, 1), HUMANS, n_resamples=400, seed=1)
    # Item 6 has no unperturbed score: it is left out; items 2 and 4 flipped.
    assert (row["n_items"], row["flips"], row["n_unscored"], row["mean_abs_diff"]) == (5, 2, 0, 0.4)
    assert row["changed"] == [{"item_id": 2, "baseline": 1, "perturbed": 0}, {"item_id": 4, "baseline": 0,
                                                                             "perturbed": 1}]
    # Binary scale: quadratic kappa is Cohen's; p_o = 0.6, p_e = 0.6*0.6 + 0.4*0.4 = 0.52 -> 0.08 / 0.48 = 1/6.
    kappa = row["weighted_kappa"]
    assert kappa["value"] == pytest.approx(1 / 6) and kappa["ci_low"] <= kappa["value"] <= kappa["ci_high"]
    humans = row["humans"]
    assert humans["n"] == 5
    assert humans["baseline"]["exact"]["value"] == pytest.approx(0.8)
    assert humans["perturbed"]["exact"]["value"] == pytest.approx(0.4)
    # p_e = 0.4*0.6 + 0.6*0.4 = 0.48 for both runs: (0.8 - 0.48) / 0.52 = 8/13 and (0.4 - 0.48) / 0.52 = -2/13.
    assert humans["baseline"]["weighted_kappa"]["value"] == pytest.approx(8 / 13)
    assert humans["perturbed"]["weighted_kappa"]["value"] == pytest.approx(-2 / 13)
    assert humans["difference"]["exact"]["value"] == pytest.approx(-0.4)
    assert humans["difference"]["weighted_kappa"]["value"] == pytest.approx(-10 / 13)
    low, high = humans["difference"]["exact"]["ci_low"], humans["difference"]["exact"]["ci_high"]
    assert low <= -0.4 <= high and high <= 0.0  # paired: the perturbed run never agrees more on a resample


def test_unscored_items_are_counted_apart_and_nothing_flips_without_change() -> None:
    same = RunScores("whitespace", {1: 1, 2: 1, 3: None, 4: 0, 5: 1})
    row = compare_run(BASELINE, same, (0, 1), None, n_resamples=0)
    assert (row["n_items"], row["flips"], row["n_unscored"], row["flip_rate"]["value"]) == (4, 0, 1, 0.0)
    assert row["weighted_kappa"]["value"] == pytest.approx(1.0)
    assert row["weighted_kappa"]["ci_reason"] == "bootstrap disabled (0 resamples)"
    assert row["humans"] == {"available": False, "reason": "no human labels given", "n": 0}


def test_vs_humans_equals_the_agreement_reports_numbers() -> None:
    rng = np.random.default_rng(3)
    run = {item: int(rng.integers(1, 6)) for item in range(30)}
    rows = [{"item_id": item, "annotator": name, "human_score": int(np.clip(run[item] + rng.integers(-1, 2), 1, 5)),
             "model_score": run[item]} for item in range(30) for name in ("ann", "bob", "cy")]
    report = agreement_report(rows, scale=(1, 5), n_resamples=0)
    humans = human_consensus(rows, blind=False)
    row = compare_run(dict(run), RunScores("x", run), (1, 5), humans, n_resamples=0)
    assert row["humans"]["perturbed"]["exact"]["value"] == pytest.approx(report["exact"]["value"])
    assert row["humans"]["perturbed"]["weighted_kappa"]["value"] == pytest.approx(report["weighted_kappa"]["value"])


def test_human_consensus_rounds_halves_up_and_uses_the_blind_score() -> None:
    rows = [
        {"item_id": "a", "annotator": "x", "human_score": 2, "human_score_before_reveal": 1},
        {"item_id": "a", "annotator": "y", "human_score": 3, "human_score_before_reveal": 2},
        {"item_id": "b", "annotator": "x", "human_score": 4, "human_score_before_reveal": 4},
        {"item_id": "c", "annotator": None, "human_score": None},
    ]
    assert human_consensus(rows, blind=False) == {"a": 3, "b": 4}  # 2.5 rounds up
    assert human_consensus(rows, blind=True) == {"a": 2, "b": 4}  # 1.5 rounds up


def test_resampled_agreement_is_sklearns_kappa_on_the_resampled_items() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(1, 6, 40), rng.integers(1, 6, 40)
    exact, kappa = resampled_agreement(np.ones((1, 40), dtype=int), a, b, 1, 5)
    assert exact[0] == pytest.approx(np.mean(a == b))
    assert kappa[0] == pytest.approx(cohen_kappa_score(a, b, labels=[1, 2, 3, 4, 5], weights="quadratic"))
    index = rng.integers(0, 40, 40)
    weights = np.bincount(index, minlength=40)[None, :]
    _, kappa = resampled_agreement(weights, a, b, 1, 5)
    assert kappa[0] == pytest.approx(cohen_kappa_score(a[index], b[index], labels=[1, 2, 3, 4, 5],
                                                       weights="quadratic"))


def test_audit_block_has_a_row_per_run_and_refuses_a_bad_scale() -> None:
    broken = RunScores("swap-responses", {}, not_applicable="Cannot swap the two responses")
    block = audit_report(BASELINE, [PERTURBED, broken], (0, 1), HUMANS, n_resamples=50, sample={"note": "all 6"})
    assert [row["perturbation"] for row in block["rows"]] == ["reverse-rubric", "swap-responses"]
    assert (block["n_items"], block["n_baseline_scored"], block["sample"]) == (6, 5, {"note": "all 6"})
    assert block["rows"][1]["not_applicable"] == "Cannot swap the two responses"
    assert block["rows"][1]["flip_rate"]["value"] is None
    with pytest.raises(InputError):
        audit_report(BASELINE, [], (1, 1))
    with pytest.raises(InputError):
        audit_report(BASELINE, [], (0, 1), n_resamples=-1)


def test_the_renderers_show_the_table_and_the_chart() -> None:
    from webapp.report_audit import audit_figure, render_audit
    from webapp.report_html import report_to_html

    block = audit_report(BASELINE, [PERTURBED], (0, 1), HUMANS, n_resamples=50)
    html = render_audit(block)
    assert "reverse-rubric" in html and "40.0% [5.3%, 85.3%]" in html and "-0.400" in html
    figure = audit_figure(block)
    assert figure is not None and list(figure.data[0].y) == [0.4]
    assert render_audit({}) == '<p class="note">No robustness audit was run for this study.</p>'
    assert audit_figure({}) is None
    rows = [{"item_id": i, "annotator": "ann", "human_score": HUMANS[i], "model_score": BASELINE[i]} for i in HUMANS]
    report = agreement_report(rows, scale=(0, 1), n_resamples=0)
    page = report_to_html({**report, "audit": block}, [], title="t")
    assert "<h2>Robustness audit</h2>" in page and "reverse-rubric" in page
    assert "<h2>Robustness audit</h2>" not in report_to_html(report, [], title="t")


def test_the_chart_escapes_perturbation_names() -> None:
    from webapp.report_audit import audit_figure

    block = audit_report(BASELINE, [RunScores("<img src=x onerror=alert(1)>", PERTURBED.scores)], (0, 1),
                         n_resamples=0)
    figure = audit_figure(block)
    assert figure is not None and list(figure.data[0].x) == ["&lt;img src=x onerror=alert(1)&gt;"]
    assert list(figure.data[0].error_y.array) == pytest.approx([0.85336 - 0.4], abs=1e-4)
