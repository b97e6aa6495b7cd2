"""A pairwise study's agreement report (core.agreement.pairwise_report) as HTML and a position-bias chart.

Every text from the report (the study's and the run's names, annotator names, reasons, the ties rule) goes
through `webapp.render.esc`, in the tables and in the chart's labels alike (plotly draws a subset of HTML).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

from webapp.charts import HUMAN_COLOR, MODEL_COLOR
from webapp.render import esc

POSITION_HEADING = "Position consistency and position bias"


def _cell(metric: Mapping[str, Any], percent: bool = True) -> str:
    """Value (k of n where counted) and 95% CI in one cell; 'undefined' with its reason as the title."""
    value = metric.get("value")
    if value is None:
        return f'<td class="num note" title="{esc(metric.get("reason", ""))}">undefined</td>'

    def show(number: float) -> str:
        return f"{number:.1%}" if percent else f"{number:.3f}"

    text = show(value)
    if metric.get("ci_low") is not None:
        text += f" [{show(metric['ci_low'])}, {show(metric['ci_high'])}]"
    note = metric.get("ci_note") or metric.get("ci_reason") or ""
    title = f' title="{esc(note)}"' if note else ""
    return f'<td class="num"{title}>{esc(text)}</td>'


def _count(metric: Mapping[str, Any]) -> str:
    if "k" in metric:
        return f"{metric['k']} of {metric['n']}"
    return str(metric.get("n", "—"))


def _table(rows: list[tuple[str, Mapping[str, Any], bool, str]]) -> str:
    body = "".join(
        f'<tr><th scope="row">{esc(label)}</th>{_cell(metric, percent)}<td class="num">{esc(_count(metric))}</td>'
        f'<td class="note">{esc(note)}</td></tr>' for label, metric, percent, note in rows)
    return ('<table class="gl-table"><thead><tr><th>Statistic</th><th>Value [95% CI]</th><th>n</th><th>Reading</th>'
            f"</tr></thead><tbody>{body}</tbody></table>")


def _humans(block: Mapping[str, Any]) -> str:
    if block.get("statistic") == "fleiss_kappa":
        kappa = block.get("fleiss_kappa") or {}
        left = block.get("items_left_out") or 0
        note = f"{kappa.get('raters_per_item', '?')} annotators per item" + (
            f"; {left} item(s) with another count left out" if left else "")
        return _table([("Fleiss' κ (3 or more annotators per item)", kappa, False, note)])
    rows = [("Cohen's κ, mean over annotator pairs", block.get("mean_pairwise_cohen_kappa") or {}, False,
             "2 annotators per item: κ per pair on their shared items")]
    rows += [(f"{pair['annotators'][0]} vs {pair['annotators'][1]}", pair["cohen_kappa"], False,
              f"{pair['n_items']} shared items") for pair in block.get("pairs") or []]
    return _table(rows)


def _verdicts(report: Mapping[str, Any]) -> str:
    judge = report.get("judge") or {}
    cells = "".join(f'<td class="num">{esc(judge.get(key, 0))}</td>'
                    for key in ("A", "B", "inconsistent", "undecided", "ungraded"))
    confusion = report.get("confusion") or {}
    head = "".join(f"<th>judge {esc(column)}</th>" for column in confusion.get("columns") or [])
    rows = "".join(
        f'<tr><th scope="row">people {esc(row)}</th>'
        + "".join(f'<td class="num">{esc(count)}</td>' for count in counts) + "</tr>"
        for row, counts in zip(confusion.get("rows") or [], confusion.get("counts") or [], strict=False))
    return ('<table class="gl-table"><thead><tr><th>A</th><th>B</th><th>inconsistent</th><th>undecided</th>'
            f"<th>not graded</th></tr></thead><tbody><tr>{cells}</tr></tbody></table>"
            '<p class="note">The human majority (rows) against the judge\'s verdict as compared (columns):</p>'
            f'<table class="gl-table"><thead><tr><th></th>{head}</tr></thead><tbody>{rows}</tbody></table>')


def render_pairwise(report: Mapping[str, Any]) -> str:
    """The pairwise report's sections: facts, judge vs the human majority, people among themselves, position
    consistency (with position bias and the humans' slot-1 rate), the verdicts, and how ties were counted."""
    run = report.get("run") or {}
    tie = "allowed" if report.get("allow_tie") else "not allowed"
    facts = (f"{report.get('n_items', 0)} items, {report.get('n_items_labelled', 0)} labelled; "
             f"{report.get('n_labels', 0)} choices by {report.get('n_annotators', 0)} annotators; ties {tie}. "
             f"Judge: {run.get('label') or 'no judge run yet'}. Choices used: "
             f"{report.get('choices_headline') or 'as given'}.")
    majority = (f"{report.get('n_items_majority', 0)} items have a strict human majority, "
                f"{report.get('n_items_no_majority', 0)} have none (left out); "
                f"{report.get('n_items_compared', 0)} of them have a verdict to compare.")
    inconsistent = "counts as a tie" if report.get("allow_tie") else "is a miss"
    boot = report.get("bootstrap") or {}
    return (
        f'<section class="gl-pairwise"><p class="reading">{esc(facts)}</p>'
        "<h3>Judge vs the human majority</h3>"
        f'<p class="note">{esc(majority)}</p>'
        + _table([
            ("Accuracy vs the human majority", report.get("accuracy") or {}, True,
             f"an inconsistent verdict {inconsistent}"),
            ("Accuracy on consistent verdicts only", report.get("accuracy_consistent") or {}, True,
             "items whose two orders agree"),
            ("Cohen's κ, judge vs majority", report.get("judge_vs_majority_kappa") or {}, False, "unweighted"),
        ])
        + "<h3>Human vs human</h3>" + _humans(report.get("human_human") or {})
        + f"<h3>{esc(POSITION_HEADING)}</h3>"
        + _table([
            ("Position consistency (both orders agree)", report.get("position_consistency") or {}, True,
             "share of graded items"),
            ("Position bias (slot 1 when inconsistent)", report.get("position_bias") or {}, True,
             "0.5: no preference for a slot"),
            ("Humans' own slot-1 rate", report.get("human_slot_1_rate") or {}, True,
             "the check: sides were randomised per annotator"),
        ])
        + "<h3>The judge's verdicts</h3>" + _verdicts(report)
        + f'<p class="note">{esc(report.get("ties_rule", ""))}</p>'
        + f'<p class="note">{esc(boot.get("method", "percentile"))} bootstrap, {esc(boot.get("n_resamples", 0))} '
          f'resamples, seed {esc(boot.get("seed", 0))}. {esc(boot.get("note", ""))}</p></section>'
    )


def position_figure(report: Mapping[str, Any]) -> go.Figure | None:
    """Bars: the judge's position consistency, its position bias and the humans' slot-1 rate, with 95% CIs and
    a line at 0.5 (no slot preferred); None when none of them has a value."""
    bars = [("Judge: consistent", report.get("position_consistency") or {}, MODEL_COLOR),
            ("Judge: slot 1 when inconsistent", report.get("position_bias") or {}, MODEL_COLOR),
            ("People: slot 1", report.get("human_slot_1_rate") or {}, HUMAN_COLOR)]
    shown = [(name, metric, color) for name, metric, color in bars if metric.get("value") is not None]
    if not shown:
        return None
    values = [metric["value"] for _, metric, _ in shown]
    figure = go.Figure(go.Bar(
        x=[esc(name) for name, _, _ in shown], y=values, marker_color=[color for _, _, color in shown],
        error_y={"type": "data", "symmetric": False,
                 "array": [(m.get("ci_high") if m.get("ci_high") is not None else m["value"]) - m["value"]
                           for _, m, _ in shown],
                 "arrayminus": [m["value"] - (m.get("ci_low") if m.get("ci_low") is not None else m["value"])
                                for _, m, _ in shown]},
        hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    figure.add_hline(y=0.5, line_dash="dot", annotation_text="0.5")
    figure.update_layout(title="Position consistency and position bias", yaxis={"range": [0, 1],
                         "tickformat": ".0%"}, height=360, margin={"t": 50, "b": 40, "l": 50, "r": 20})
    return figure
