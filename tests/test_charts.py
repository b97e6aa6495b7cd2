"""Charts of an agreement report and its self-contained HTML page (escaping included)."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import plotly.graph_objects as go
import pytest

from core.agreement import agreement_report
from webapp.charts import (
    UNDEFINED_LABEL,
    agreement_scatter,
    confusion_heatmap,
    distribution_figure,
    per_annotator_bars,
    report_figures,
    score_distributions,
)
from webapp.report_html import report_to_html

HOSTILE_ITEM = "<script>alert('item')</script>"
HOSTILE_NAME = '"><img src=x onerror=alert(1)>'
HOSTILE_TITLE = "</title><svg onload=alert(2)>"


def rows_for(scores: list[tuple[int, list[int]]], names: tuple[str, ...] = ("ann", "bob")) -> list[dict]:
    """(model score, [human scores by annotator]) per item."""
    return [
        {"item_id": f"q{i}", "annotator": names[a], "human_score": h, "model_score": model}
        for i, (model, humans) in enumerate(scores)
        for a, h in enumerate(humans)
    ]


SCORES = [(1, [1, 2]), (2, [2, 2]), (3, [4, 3]), (5, [4, 5]), (5, [5, 5]), (3, [2, 3]), (1, [2, 1])]


@pytest.fixture(scope="module")
def report() -> dict:
    return agreement_report(rows_for(SCORES), scale=(1, 5), n_resamples=200)


def test_confusion_heatmap_shows_every_count(report: dict) -> None:
    fig = confusion_heatmap(report)
    assert isinstance(fig, go.Figure)
    heat = fig.data[0]
    assert [list(row) for row in heat.z] == report["confusion"]["matrix"]
    assert list(heat.x) == list(heat.y) == ["1", "2", "3", "4", "5"]
    assert heat.texttemplate == "%{z}"
    assert sum(map(sum, heat.z)) == report["n_items"]


def test_scatter_has_one_jittered_point_per_item_and_an_identity_line(report: dict) -> None:
    fig = agreement_scatter(report, seed=3)
    identity, points = fig.data
    assert list(identity.x) == list(identity.y) == [0.5, 5.5]
    assert len(points.x) == report["n_items"]
    for x, y, d in zip(points.x, points.y, report["disagreements"], strict=True):
        assert abs(x - d["model_score"]) <= 0.15 and abs(y - d["human_mean"]) <= 0.15
    again = agreement_scatter(report, seed=3)
    assert list(again.data[1].x) == list(points.x)  # the jitter is seeded


def test_score_distributions_compare_shares_over_the_scale(report: dict) -> None:
    fig = score_distributions(report)
    human, model = fig.data
    assert list(human.x) == ["1", "2", "3", "4", "5"]
    assert sum(human.y) == pytest.approx(1.0) and sum(model.y) == pytest.approx(1.0)
    assert (
        list(human.customdata) == report["distributions"]["human"] == [2, 5, 2, 2, 3]
    )  # 1: q0,q6  2: q0,q1,q1,q5,q6  3: q2,q5  4: q2,q3  5: q3,q4,q4
    assert list(model.customdata) == [2, 1, 2, 0, 2]


def test_per_annotator_bars_leave_a_labelled_gap_for_undefined_values() -> None:
    # "solo" scores one item only: kappa needs 2 items, so it is undefined — drawn as a gap, not as 0.
    rows = rows_for(SCORES) + [{"item_id": "q0", "annotator": "solo", "human_score": 1, "model_score": 1}]
    fig = per_annotator_bars(agreement_report(rows, scale=(1, 5), n_resamples=0))
    kappa_bars = fig.data[0]
    assert list(kappa_bars.x) == ["ann", "bob", "solo"]
    assert kappa_bars.y[2] is None and kappa_bars.y[0] is not None
    gap = fig.data[1]
    assert gap.mode == "text" and list(gap.x) == ["solo"] and list(gap.text) == [UNDEFINED_LABEL]
    assert "fewer than 2 items" in gap.customdata[0]
    exact_bars = fig.data[2]
    assert exact_bars.y[2] == 1.0  # exact agreement is defined for one item


def test_empty_report_gives_notes_not_errors() -> None:
    empty = agreement_report([])
    for build in (confusion_heatmap, agreement_scatter, score_distributions, per_annotator_bars):
        fig = build(empty)
        assert isinstance(fig, go.Figure) and not fig.data
        assert fig.layout.annotations[0].text
    assert report_figures(empty) == dict.fromkeys(
        ("Confusion matrix", "Human mean vs model", "Score distributions", "Per annotator")
    )


def test_report_figures_are_all_drawn(report: dict) -> None:
    figures = report_figures(report)
    assert len(figures) == 4 and all(isinstance(f, go.Figure) for f in figures.values())


# --- HTML --------------------------------------------------------------------------------------


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def hostile_html() -> str:
    rows = rows_for(SCORES, names=(HOSTILE_NAME, "bob"))
    rows = [{**r, "item_id": HOSTILE_ITEM if r["item_id"] == "q2" else r["item_id"]} for r in rows]
    rows.append({"item_id": "q0", "annotator": "solo<b>", "human_score": 1, "model_score": 1})
    report = agreement_report(rows, scale=(1, 5), n_resamples=100)
    return report_to_html(report, report_figures(report), title=HOSTILE_TITLE)


def test_html_escapes_every_text(hostile_html: str) -> None:
    for payload in (HOSTILE_ITEM, HOSTILE_NAME, HOSTILE_TITLE, "solo<b>"):
        assert payload not in hostile_html
    parser = Tags()
    parser.feed(hostile_html)
    assert not [tag for tag, _ in parser.tags if tag in {"img", "svg", "b"}]
    assert not [(tag, a) for tag, attrs in parser.tags for a in attrs if a.lower().startswith("on")]
    # Only our own scripts: plotly's config and library, then one per figure, none with a src.
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert len(scripts) == 2 + 4 and not [s for s in scripts if "src" in s]
    text = "".join(parser.text)
    assert HOSTILE_TITLE in text  # shown as text, exactly
    assert HOSTILE_NAME in text and HOSTILE_ITEM in text


def test_html_escapes_text_inside_the_figures(hostile_html: str) -> None:
    # Plotly renders figure text as pseudo-HTML: item ids and names go in as entities, which it displays as text.
    assert "&lt;script&gt;alert(&#x27;item&#x27;)&lt;/script&gt;" in hostile_html
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in hostile_html


def test_html_is_self_contained_with_plotly_inlined_once(hostile_html: str) -> None:
    assert hostile_html.startswith("<!DOCTYPE html>")
    assert hostile_html.count("window.PlotlyConfig") == 1
    assert hostile_html.count("plotly.js v") == 1
    parser = Tags()
    parser.feed(hostile_html)
    fetched = [(tag, attrs) for tag, attrs in parser.tags if {"src", "href"} & set(attrs) or tag == "link"]
    assert fetched == []  # nothing is loaded from elsewhere: the page works offline
    for index in range(4):
        assert f'id="figure-{index}"' in hostile_html


def test_html_shows_the_metric_table_and_undefined_reasons() -> None:
    report = agreement_report(rows_for([(m, h[:1]) for m, h in SCORES]), scale=(1, 5), n_resamples=0)
    html = report_to_html(report, [])
    assert "Weighted κ (quadratic)" in html and "Krippendorff α (ordinal)" in html
    assert "fewer than 2 annotators" in html
    assert "<script" not in html  # no figures, no plotly.js
    json.dumps(report, allow_nan=False)


def test_html_skips_missing_figures_and_takes_a_list() -> None:
    report = agreement_report(rows_for(SCORES), scale=(1, 5), n_resamples=0)
    html = report_to_html(report, [None, confusion_heatmap(report)])
    assert html.count("window.PlotlyConfig") == 1 and 'id="figure-1"' in html


# --- blind studies: which scores, the second view, the user's item ids -------------------------------------


def blind_rows() -> list[dict]:
    """SCORES as the scores after the reveal; before it, bob gave 1 where he now agrees with the model on q1, q4."""
    rows = rows_for(SCORES)
    for row in rows:
        moved = row["annotator"] == "bob" and row["item_id"] in {"q1", "q4"}
        row.update(blind=True, human_score_before_reveal=1 if moved else row["human_score"],
                   human_score_after_reveal=row["human_score"],
                   external_id={"q0": "Q-zero", "q3": "<i>mine</i>"}.get(row["item_id"]))
    return rows


@pytest.fixture(scope="module")
def blind_report() -> dict:
    return agreement_report(blind_rows(), scale=(1, 5), n_resamples=50)


def test_html_of_a_blind_study_leads_with_the_scores_from_before_the_reveal(blind_report: dict) -> None:
    parser = Tags()
    parser.feed(report_to_html(blind_report, []))
    text = "".join(parser.text)
    assert "Scores used: Blind study: every headline number" in text
    assert "Human vs model (pooled) — before the reveal (headline)" in text
    assert text.index("before the reveal (headline)") < text.index("After the reveal: second view (may be anchored)")
    before, after = blind_report["exact"]["value"], blind_report["post_reveal"]["exact"]["value"]
    assert before < after  # bob's two revisions moved towards the model
    row = f"Exact agreement{before:.3f}{after:.3f}{after - before:+.3f}"
    assert row in text
    assert "Revised after the reveal2" in text and "Moved towards the model2" in text
    assert "Human vs model after the reveal (pooled)" in text


def test_html_disagreements_show_the_users_item_ids(blind_report: dict) -> None:
    html = report_to_html(blind_report, [])
    parser = Tags()
    parser.feed(html)
    cells = [data for data in parser.text]
    assert "Q-zero" in cells and "<i>mine</i>" in cells  # escaped, shown as text
    assert "<i>mine</i>" not in html
    assert "#q1" in cells and "q1" not in cells  # no id of the user's own: the internal one, marked
    assert "An item marked # had none" in "".join(parser.text)
    plain = report_to_html(agreement_report(rows_for(SCORES), scale=(1, 5), n_resamples=0), [])
    assert "#q" not in plain and "marked #" not in plain  # item_id is the user's id when there are no others


def test_html_of_a_non_blind_study_says_the_verdict_was_visible() -> None:
    rows = [{**r, "blind": False} for r in rows_for(SCORES)]
    html = report_to_html(agreement_report(rows, scale=(1, 5), n_resamples=0), [])
    assert "the labels were given with the model&#x27;s verdict visible" in html
    assert "before the reveal (headline)" not in html


def test_charts_of_a_blind_study_name_their_scores_and_the_users_ids(blind_report: dict) -> None:
    assert confusion_heatmap(blind_report).layout.yaxis.title.text.startswith("human score before the reveal")
    scatter = agreement_scatter(blind_report)
    assert scatter.layout.yaxis.title.text.startswith("human score before the reveal")
    shown = {row[0] for row in scatter.data[1].customdata}
    assert {"Q-zero", "&lt;i&gt;mine&lt;/i&gt;", "#q1"} <= shown
    assert score_distributions(blind_report).data[0].name.startswith("human before the reveal")
    assert confusion_heatmap(agreement_report(rows_for(SCORES), scale=(1, 5), n_resamples=0)).layout.yaxis.title.text \
        == "human score (mean, rounded half up)"


# --- a judgment's score distribution (the Grade and History tabs) ------------------------------------


def test_distribution_has_a_bar_for_every_score_and_marks_the_chosen_one() -> None:
    fig = distribution_figure({1: 0.1, 3: 0.7, 4: 0.2}, (1, 5), chosen=3)
    assert fig is not None
    bar = fig.data[0]
    assert list(bar.x) == ["1", "2", "3", "4", "5"]
    assert list(bar.y) == [0.1, 0.0, 0.7, 0.2, 0.0]
    colors = list(bar.marker.color)
    assert colors[2] != colors[0] and len(set(colors)) == 2


@pytest.mark.parametrize("distribution", [None, {}])
def test_no_distribution_gives_no_figure(distribution: dict[int, float] | None) -> None:
    assert distribution_figure(distribution, (0, 1), chosen=None) is None
