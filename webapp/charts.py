"""Plotly charts: a judgment's score distribution, and an agreement report's (core.agreement.agreement_report).

Builders take results and never query storage.

Plotly draws text as a small subset of HTML, so every item id and annotator name placed in a figure
goes through `esc` first (plotly shows the entities as the original characters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.agreement_labels import METRIC_LABELS
from webapp.render import esc

HUMAN_COLOR, MODEL_COLOR, IDENTITY_COLOR = "#2563eb", "#f97316", "#6b7280"
UNDEFINED_LABEL = "undefined"
JITTER = 0.15  # half-width of the uniform jitter, in score units (scores are at least 1 apart)


def distribution_figure(
    distribution: Mapping[int, float] | None, scale: Sequence[int], chosen: int | None
) -> go.Figure | None:
    """A bar per score value of the scale (missing ones at 0), the chosen score drawn in the accent colour."""
    if not distribution:
        return None
    low, high = int(scale[0]), int(scale[1])
    values = list(range(low, high + 1))
    probs = [float(distribution.get(v, 0.0)) for v in values]
    colors = ["#4f46e5" if v == chosen else "#c7cbd6" for v in values]
    fig = go.Figure(
        go.Bar(
            x=[str(v) for v in values],
            y=probs,
            marker_color=colors,
            text=[f"{p:.0%}" for p in probs],
            textposition="outside",
            hovertemplate="score %{x}: %{y:.1%}<extra></extra>",
            cliponaxis=False,
        )
    )
    fig.update_layout(
        title={"text": "Score distribution", "x": 0, "font": {"size": 14}},
        height=240,
        margin={"l": 40, "r": 10, "t": 40, "b": 30},
        yaxis={"range": [0, 1.15], "tickformat": ".0%", "showgrid": True, "gridcolor": "rgba(128,128,128,0.2)"},
        xaxis={"title": {"text": "score"}, "type": "category"},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        showlegend=False,
    )
    return fig


def _labels(report: Mapping[str, Any]) -> list[int]:
    scale = report.get("scale")
    return list(scale["labels"]) if scale else []


def _human(report: Mapping[str, Any]) -> str:
    """How the charts name the human scores: a blind study's report is drawn from the scores before the reveal."""
    return "human score before the reveal" if (report.get("headline_score") or {}).get("blind") else "human score"


def item_label(entry: Mapping[str, Any]) -> str:
    """A disagreement's item as the user knows it: their own id; the internal id after # only if it has none."""
    if "external_id" not in entry:  # the input had no external ids: its item_id is the user's own id
        return str(entry["item_id"])
    return f"#{entry['item_id']}" if entry["external_id"] is None else str(entry["external_id"])


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title=title,
        xaxis={"visible": False},
        yaxis={"visible": False},
        annotations=[{"text": message, "showarrow": False, "font": {"size": 14}}],
        template="plotly_white",
    )
    return fig


def confusion_heatmap(report: Mapping[str, Any]) -> go.Figure:
    """Counts of items by human score (rounded mean) and model score, every cell annotated."""
    title = "Human vs model scores (items)"
    confusion = report.get("confusion") or {}
    labels = [str(v) for v in confusion.get("labels", [])]
    matrix = confusion.get("matrix") or []
    if not labels or not np.sum(matrix):
        return _empty(title, "No item has both a human and a model score.")
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=labels,
            y=labels,
            colorscale="Blues",
            texttemplate="%{z}",
            hovertemplate=f"{_human(report)} %{{y}}, model %{{x}}: %{{z}} items<extra></extra>",
            colorbar={"title": "items"},
        )
    )
    fig.update_layout(
        title=title,
        xaxis={"title": "model score", "type": "category"},
        yaxis={"title": f"{_human(report)} (mean, rounded half up)", "type": "category"},
        template="plotly_white",
    )
    return fig


def agreement_scatter(report: Mapping[str, Any], *, seed: int = 0) -> go.Figure:
    """One point per item, model score vs human mean, jittered (seeded) so equal pairs stay visible; y = x line."""
    title = "Human mean vs model score (jittered)"
    points = report.get("disagreements") or []
    labels = _labels(report)
    if not points or not labels:
        return _empty(title, "No item has both a human and a model score.")
    model = np.array([p["model_score"] for p in points], dtype=float)
    human = np.array([p["human_mean"] for p in points], dtype=float)
    rng = np.random.default_rng(seed)
    jitter_x = rng.uniform(-JITTER, JITTER, len(points))
    jitter_y = rng.uniform(-JITTER, JITTER, len(points))
    custom = [[esc(item_label(p)), f"{p['human_mean']:.2f}", p["model_score"], p["n_annotators"]] for p in points]
    low, high = labels[0] - 0.5, labels[-1] + 0.5
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[low, high],
            y=[low, high],
            mode="lines",
            name="perfect agreement",
            line={"color": IDENTITY_COLOR, "dash": "dash"},
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=model + jitter_x,
            y=human + jitter_y,
            mode="markers",
            name="items",
            marker={"color": HUMAN_COLOR, "opacity": 0.5, "size": 6},
            customdata=custom,
            hovertemplate=(
                "item %{customdata[0]}<br>human mean %{customdata[1]} (%{customdata[3]} labels)"
                "<br>model %{customdata[2]}<extra></extra>"
            ),
        )
    )
    axis = {"range": [low, high], "tickvals": labels, "zeroline": False}
    fig.update_layout(
        title=title,
        xaxis={**axis, "title": "model score"},
        yaxis={**axis, "title": f"{_human(report)} (mean of annotators)", "scaleanchor": "x"},
        template="plotly_white",
    )
    return fig


def score_distributions(report: Mapping[str, Any]) -> go.Figure:
    """Share of human scores and of model scores at each value of the scale, side by side."""
    title = "Score distributions"
    dist = report.get("distributions") or {}
    labels = [str(v) for v in dist.get("labels", [])]
    human, model = dist.get("human") or [], dist.get("model") or []
    if not labels or not (sum(human) and sum(model)):
        return _empty(title, "No item has both a human and a model score.")
    fig = go.Figure()
    human_name = _human(report).replace(" score", "", 1)  # "human", or "human before the reveal"
    for name, counts, color in ((human_name, human, HUMAN_COLOR), ("model", model, MODEL_COLOR)):
        total = sum(counts)
        fig.add_trace(
            go.Bar(
                x=labels,
                y=[c / total for c in counts],
                name=f"{name} ({total} scores)",
                marker_color=color,
                customdata=counts,
                hovertemplate=f"{name} %{{x}}: %{{customdata}} (%{{y:.1%}})<extra></extra>",
            )
        )
    fig.update_layout(
        title=title,
        barmode="group",
        xaxis={"title": "score", "type": "category"},
        yaxis={"title": "share of scores", "tickformat": ".0%"},
        template="plotly_white",
    )
    return fig


PER_ANNOTATOR_METRICS = tuple((key, METRIC_LABELS[key].lower()) for key in ("weighted_kappa", "exact"))


def per_annotator_bars(report: Mapping[str, Any]) -> go.Figure:
    """Each annotator's weighted κ and exact agreement with the model; an undefined value is a labelled gap."""
    title = "Agreement with the model, per annotator"
    entries: Sequence[Mapping[str, Any]] = report.get("per_annotator") or []
    if not entries:
        return _empty(title, "No annotator has scored a graded item.")
    names = [esc(e["annotator"]) for e in entries]
    fig = make_subplots(
        rows=len(PER_ANNOTATOR_METRICS),
        cols=1,
        shared_xaxes=True,
        subplot_titles=[label for _, label in PER_ANNOTATOR_METRICS],
        vertical_spacing=0.12,
    )
    for row, (key, label) in enumerate(PER_ANNOTATOR_METRICS, start=1):
        metrics = [e[key] for e in entries]
        values = [m["value"] for m in metrics]  # None stays None: plotly leaves a gap, never a bar at 0
        fig.add_trace(
            go.Bar(
                x=names,
                y=values,
                name=label,
                marker_color=HUMAN_COLOR if row == 1 else MODEL_COLOR,
                text=[f"{v:.2f}" if v is not None else "" for v in values],
                textposition="outside",
                customdata=[e["n_items"] for e in entries],
                hovertemplate=f"%{{x}}: {label} %{{y:.3f}} (%{{customdata}} items)<extra></extra>",
                showlegend=False,
            ),
            row=row,
            col=1,
        )
        gaps = [i for i, v in enumerate(values) if v is None]
        if gaps:
            fig.add_trace(
                go.Scatter(
                    x=[names[i] for i in gaps],
                    y=[0] * len(gaps),
                    mode="text",
                    text=[UNDEFINED_LABEL] * len(gaps),
                    textposition="top center",
                    customdata=[esc(metrics[i].get("reason", "")) for i in gaps],
                    hovertemplate=f"%{{x}}: {label} undefined<br>%{{customdata}}<extra></extra>",
                    showlegend=False,
                ),
                row=row,
                col=1,
            )
    fig.update_xaxes(type="category")
    fig.update_yaxes(range=[min(-0.05, _lowest(entries)), 1.15])
    fig.update_layout(title=title, template="plotly_white", height=520)
    return fig


def _lowest(entries: Sequence[Mapping[str, Any]]) -> float:
    values = [e[k]["value"] for e in entries for k, _ in PER_ANNOTATOR_METRICS if e[k]["value"] is not None]
    return min(values, default=0.0) - 0.1


def report_figures(report: Mapping[str, Any]) -> dict[str, go.Figure | None]:
    """The report's four charts by title, None where there is nothing to draw."""
    has_items = bool(report.get("n_items"))
    return {
        "Confusion matrix": confusion_heatmap(report) if has_items else None,
        "Human mean vs model": agreement_scatter(report) if has_items else None,
        "Score distributions": score_distributions(report) if has_items else None,
        "Per annotator": per_annotator_bars(report) if report.get("per_annotator") else None,
    }
