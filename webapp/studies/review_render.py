"""HTML of the Review tab (an item's labels and adjudication history) and of the Agreement tab's report with
the adjudicated labels as the reference. Every piece of user or model text goes through render.esc."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.studies.adjudications import Adjudication
from core.studies.review import ReviewLabel
from webapp import render
from webapp.render import esc

DASH, DOT = "\u2014", " \u00b7 "


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if hasattr(value, "strftime") else str(value)


def render_review_labels(labels: Sequence[ReviewLabel], blind: bool) -> str:
    """Every human label of an item: the score before and after the reveal, the current one, the comment."""
    if not labels:
        return render.render_hint("No human label yet.")
    counted = "score before the reveal" if blind else "current score"
    first = "Before the reveal" if blind else "First score"  # not blind: the verdict was in sight throughout
    rows = []
    for label in labels:
        after = "\u2014" if label.score_after_reveal is None else str(label.score_after_reveal)
        rows.append(f'<tr><th scope="row">{esc(label.annotator)}</th><td>{esc(label.score_before_reveal)}</td>'
                    f"<td>{esc(after)}</td><td>{esc(label.current_score)}</td><td>{esc(label.comment)}</td></tr>")
    return (f'<div class="gl-review-labels"><div class="gl-subtitle">Human labels '
            f'<span class="gl-note">(the triage counts the {esc(counted)})</span></div>'
            f'<table class="gl-table"><thead><tr><th>Annotator</th><th>{esc(first)}</th><th>After the reveal</th>'
            f'<th>Now</th><th>Comment</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def judge_line(score: int | None, confidence: float | None, consensus: int | None) -> str:
    """One line: the judge's score, how sure it was of it, and the human consensus."""
    parts = ["Judge: " + (DASH if score is None else str(score)),
             "confidence " + (f"{DASH} (no score distribution)" if confidence is None else f"{confidence:.2f}"),
             "human consensus (median): " + (DASH if consensus is None else str(consensus))]
    return f'<p class="gl-review-judge">{esc(DOT.join(parts))}</p>'


def render_adjudication_history(history: Sequence[Adjudication]) -> str:
    """Who settled the item's label, when, at which score and why; the newest (the label that counts) first."""
    if not history:
        return render.render_hint("Not adjudicated yet.")
    items = []
    for number, entry in enumerate(reversed(history)):
        note = f" \u2014 <q>{esc(entry.note)}</q>" if entry.note else ""
        current = ' <span class="gl-note">(current)</span>' if number == 0 else ""
        items.append(f"<li><b>{esc(entry.score)}</b> by {esc(entry.reviewer)}, {esc(_time(entry.at))}"
                     f"{note}{current}</li>")
    return ('<div class="gl-review-history"><div class="gl-subtitle">Adjudication history</div>'
            f'<ul>{"".join(items)}</ul></div>')


def render_adjudicated_metrics(report: Mapping[str, Any]) -> str:
    """core.agreement.adjudicated_report: one metric table (value, 95% CI, p, n) per comparison."""
    comparisons = report.get("comparisons") or []
    head = (f"Reference: adjudicated labels on {report.get('n_items_adjudicated', 0)} of "
            f"{report.get('n_items_total', 0)} items.")
    if not report.get("n_items_adjudicated"):
        return render.render_hint(head + " Adjudicate items in the Review tab first.")
    tables = []
    for comparison in comparisons:
        kind, name = comparison.get("kind"), str(comparison.get("name"))
        title = ("Judge vs adjudicated" if kind == "judge" else
                 "Annotators (item mean) vs adjudicated" if kind == "annotators" else f"{name} vs adjudicated")
        tables.append(render.render_metric_table(comparison, render.MODEL_METRICS, title,
                                                 f"{comparison.get('n_items', 0)} items"))
    return (f'<p class="gl-score-basis">{esc(head)}</p>{render.render_score_basis(report)}'
            f'<div class="gl-metrics-grid gl-adjudicated">{"".join(tables)}</div>')
