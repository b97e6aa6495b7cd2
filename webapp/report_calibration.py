"""The agreement report's calibration block (core.agreement.calibration) as HTML and as a reliability chart.

Every text from the block goes through `webapp.render.esc`; the chart's labels are numbers and fixed words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

from webapp.charts import HUMAN_COLOR, IDENTITY_COLOR, MODEL_COLOR
from webapp.render import esc

TITLE = "Reliability: the judge's confidence vs agreement with people"


def _num(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def threshold_sentence(block: Mapping[str, Any]) -> str:
    """One plain sentence: where the judge can be trusted for the target agreement, or why nowhere yet."""
    threshold, target = block.get("threshold") or {}, block.get("target", 0.9)
    if not threshold.get("found"):
        return f"No auto-accept threshold for a target agreement of {target:.0%}: {threshold.get('reason', '')}."
    return (
        f"For a target agreement of {target:.0%}: accept the judge's score without a person when its confidence is "
        f"at least {threshold['value']:.3f}. On the {threshold['n']} labelled items at or above it, "
        f"{threshold['agreed']} agreed with the human consensus ({threshold['agreement']:.1%}; one-sided 95% lower "
        f"bound {threshold['lower_bound']:.3f}). That covers {threshold['n_covered']} of {block['n_graded']} graded "
        f"items ({threshold['coverage']:.0%}) and {threshold['coverage_labelled']:.0%} of the labelled ones."
    )


def render_calibration(block: Mapping[str, Any]) -> str:
    """The threshold sentence, the ECE and the bin table; a note with the reason when not available."""
    if not block.get("available"):
        return f'<p class="note">{esc(block.get("reason", "No calibration."))}</p>'
    ece = block.get("ece") or {}
    ece_text = (f"Expected calibration error (ECE): {_num(ece.get('value'))} on {block.get('n_labelled', 0)} "
                "labelled items with a confidence (0 = the judge is right exactly as often as it is confident).")
    if ece.get("value") is None:
        ece_text = f"Expected calibration error: undefined ({ece.get('reason', '')})."
    rows = "".join(
        f'<tr><td>{esc(format(b["low"], ".1f"))}–{esc(format(b["high"], ".1f"))}</td>'
        f'<td class="num">{esc(b["n"])}</td><td class="num">{esc(_num(b["mean_confidence"]))}</td>'
        f'<td class="num">{esc(_num(b["agreement"]))}</td></tr>'
        for b in block.get("bins") or []
    )
    table = (
        "<table><thead><tr><th>Confidence</th><th>Labelled items</th><th>Mean confidence</th>"
        f"<th>Agreement with people</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return (
        f"<p><strong>{esc(threshold_sentence(block))}</strong></p><p>{esc(ece_text)}</p>{table}"
        f'<p class="note">{esc(block.get("note", ""))} {esc(block.get("bins_note", ""))}</p>'
        f'<p class="note">{esc(block.get("method", ""))}</p>'
    )


def reliability_figure(block: Mapping[str, Any]) -> go.Figure | None:
    """Agreement rate vs mean confidence per bin (markers sized by count, counts as bars), with the diagonal."""
    if not block.get("available") or not block.get("n_labelled"):
        return None
    filled = [b for b in block["bins"] if b["n"]]
    fig = go.Figure()
    fig.add_trace(go.Bar(
        x=[(b["low"] + b["high"]) / 2 for b in block["bins"]],
        y=[b["n"] for b in block["bins"]],
        width=[(b["high"] - b["low"]) * 0.9 for b in block["bins"]],
        name="labelled items per bin",
        marker_color="rgba(107,114,128,0.25)",
        yaxis="y2",
        hovertemplate="confidence %{x:.2f} ± 0.05: %{y} items<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
        line={"color": IDENTITY_COLOR, "dash": "dash"}, hoverinfo="skip",
    ))
    fig.add_trace(go.Scatter(
        x=[b["mean_confidence"] for b in filled],
        y=[b["agreement"] for b in filled],
        mode="lines+markers+text",
        name="judge",
        text=[str(b["n"]) for b in filled],
        textposition="top center",
        marker={"color": HUMAN_COLOR, "size": 9},
        customdata=[[b["n"], b["n_agreed"]] for b in filled],
        hovertemplate=("mean confidence %{x:.3f}<br>agreement %{y:.1%} "
                       "(%{customdata[1]} of %{customdata[0]})<extra></extra>"),
    ))
    threshold = block.get("threshold") or {}
    if threshold.get("found"):
        fig.add_vline(x=threshold["value"], line={"color": MODEL_COLOR, "dash": "dot"},
                      annotation_text=f"auto-accept ≥ {threshold['value']:.2f}", annotation_position="top left")
    fig.add_hline(y=block["target"], line={"color": MODEL_COLOR, "width": 1},
                  annotation_text=f"target {block['target']:.0%}", annotation_position="bottom right")
    fig.update_layout(
        title=TITLE,
        xaxis={"title": "judge's confidence (probability of its own score)", "range": [0, 1]},
        yaxis={"title": "agreement with the human consensus", "range": [0, 1.05], "tickformat": ".0%"},
        yaxis2={"title": "labelled items", "overlaying": "y", "side": "right", "showgrid": False,
                "rangemode": "tozero"},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
