"""HTML of the Agreement tab's "Compare runs" panel: judge vs judge on two runs, and one changed item with both
runs' verdicts. Every piece of user or model text goes through render.esc (or a renderer of webapp.render)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.agreement_labels import METRIC_LABELS
from webapp import render
from webapp.render import esc
from webapp.view_models import JudgmentView

RUN_METRIC_LABELS = {"exact": METRIC_LABELS["exact"], "flip_rate": "Flip rate (score changed)",
                     "mean_abs_diff": "Mean |score A \u2212 score B|",
                     "weighted_kappa": METRIC_LABELS["weighted_kappa"]}


def render_run_comparison(report: Mapping[str, Any]) -> str:
    """The two runs, the judge-vs-judge metrics with their 95% intervals, and what was left out."""
    runs = list(report.get("runs") or [])
    names = [str(run.get("label", run.get("name", ""))) for run in runs[:2]] if runs else list(report.get("names", []))
    heads = "".join(f"<li><b>{esc(letter)}</b>: {esc(name)}</li>" for letter, name in zip("AB", names, strict=False))
    left = report.get("left_out") or {}
    counts = (f"{report.get('n_items', 0)} item(s) scored by both runs; left out: {left.get('only_a', 0)} scored "
              f"only by A, {left.get('only_b', 0)} only by B, {left.get('neither', 0)} by neither")
    table = render.render_metric_table(report, RUN_METRIC_LABELS, "Judge vs judge (A vs B)", counts)
    changed = report.get("changed") or []
    summary = (f"{len(changed)} item(s) changed: click one below to see both verdicts." if changed
               else "No item changed its score.")
    method = f'<p class="gl-note">{esc(report.get("method", ""))}</p>' if report.get("method") else ""
    return (f'<div class="gl-run-comparison"><ul class="gl-run-names">{heads}</ul>{table or render.render_hint(counts)}'
            f"{render.render_hint(summary)}{method}</div>")


def render_two_verdicts(item_id: int, external_id: str | None, fields: Mapping[str, str],
                        labels: Sequence[tuple[str, int | str | None, str]],
                        verdicts: Sequence[tuple[str, JudgmentView | None]]) -> str:
    """An item (fields, the human labels) with each run's verdict: its score card and reasoning, or why none."""
    parts = [render.render_item_header(item_id, external_id), render.render_label_fields(fields),
             render.render_human_labels(labels)]
    for name, view in verdicts:
        parts.append(render.render_subtitle(name))
        parts.append(render.render_score_card(view) + render.render_reasoning(view.reasoning) if view is not None
                     else render.render_hint("This run has no judgment of this item."))
    return f'<div class="gl-agree-item gl-run-item">{"".join(parts)}</div>'
