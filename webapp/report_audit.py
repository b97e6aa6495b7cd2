"""The robustness audit block (core.audit.report.audit_report) as HTML and as a flip-rate chart.

Every text from the block (perturbation names and descriptions, judges, reasons, notes) goes through
`webapp.render.esc`, in the table and in the chart's labels alike (plotly draws a subset of HTML).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

from core.audit.report import summary_table
from core.studies.audits import which_audit
from webapp.charts import MODEL_COLOR
from webapp.render import esc

TITLE = "Robustness audit: how often each perturbation flips the judge's score"
COLUMNS = ("Perturbation", "Items", "Flips", "Flip rate [95% CI]", "κ vs unperturbed [95% CI]",
           "Δ exact agreement with people", "Δ κ with people", "Note")


def _interval(value: Any, low: Any, high: Any, percent: bool = False) -> str:
    if value is None:
        return "—"
    if percent:
        text = f"{value:.1%}"
        return text if low is None or high is None else f"{text} [{low:.1%}, {high:.1%}]"
    return f"{value:.3f}" if low is None or high is None else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _change(value: Any) -> str:
    return "—" if value is None else f"{value:+.3f}"


def render_audit(block: Mapping[str, Any]) -> str:
    """The audit's summary table with its facts and methods; a note when there is no audit."""
    if not block or not block.get("available"):
        return '<p class="note">No robustness audit was run for this study.</p>'
    sample = block.get("sample") or {}
    facts = (f"Items: {sample.get('note') or block.get('n_items', 0)}. Unperturbed judge: "
             f"{block.get('baseline_judge') or 'unknown'}; {block.get('n_baseline_scored', 0)} items with a score.")
    which = which_audit(block)  # a kept audit (core.studies.audits): which one it is
    if which:
        facts = f"{which} {facts}"
    rows = []
    descriptions = {row.get("perturbation"): row for row in block.get("rows") or []}
    for row in summary_table(block):
        full = descriptions.get(row["perturbation"]) or {}
        note = row["note"] or (f"{row['n_unscored']} without a score" if row["n_unscored"] else "")
        if full.get("n_errors"):
            note = f"{note} {full['n_errors']} item(s) not audited".strip()
        title = f"{full.get('description', '')} {full.get('judge', '')}".strip()
        rows.append(
            f'<tr><th scope="row" title="{esc(title)}">{esc(row["perturbation"])}</th>'
            f'<td class="num">{esc(row["n_items"])}</td><td class="num">{esc(row["flips"])}</td>'
            f'<td class="num">{esc(_interval(row["flip_rate"], row["flip_ci_low"], row["flip_ci_high"], True))}</td>'
            f'<td class="num">{esc(_interval(row["kappa"], row["kappa_ci_low"], row["kappa_ci_high"]))}</td>'
            f'<td class="num">{esc(_change(row["human_exact_change"]))}</td>'
            f'<td class="num">{esc(_change(row["human_kappa_change"]))}</td><td class="note">{esc(note)}</td></tr>'
        )
    head = "".join(f"<th>{esc(column)}</th>" for column in COLUMNS)
    methods = block.get("method") or {}
    notes = "".join(f'<p class="note">{esc(text)}</p>' for text in methods.values())
    return (f"<p>{esc(facts)}</p><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"{notes}")


def _gap(high: float | None, low: float | None) -> float:
    return 0.0 if high is None or low is None else high - low


def audit_figure(block: Mapping[str, Any]) -> go.Figure | None:
    """Flip rate per perturbation with its 95% interval as error bars; None when there is no audit row."""
    table = [row for row in summary_table(block or {}) if row["flip_rate"] is not None]
    if not block or not block.get("available") or not table:
        return None
    names = [esc(row["perturbation"]) for row in table]
    rates = [row["flip_rate"] for row in table]
    fig = go.Figure(go.Bar(
        x=names,
        y=rates,
        marker_color=MODEL_COLOR,
        error_y={"type": "data", "symmetric": False,
                 "array": [_gap(row["flip_ci_high"], rate) for row, rate in zip(table, rates, strict=True)],
                 "arrayminus": [_gap(rate, row["flip_ci_low"]) for row, rate in zip(table, rates, strict=True)]},
        customdata=[[row["flips"], row["n_items"]] for row in table],
        hovertemplate="%{x}: %{y:.1%} (%{customdata[0]} of %{customdata[1]} items)<extra></extra>",
    ))
    fig.update_layout(title=TITLE, yaxis={"title": "flip rate (95% CI)", "tickformat": ".0%", "rangemode": "tozero"},
                      xaxis={"title": "perturbation"}, template="plotly_white")
    return fig
