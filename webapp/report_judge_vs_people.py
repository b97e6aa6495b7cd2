"""The judge-vs-people block of an agreement report as HTML: the reading, the table and the human ceiling.

Every text from the block (annotator names, reasons, the readings) goes through `webapp.render.esc`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.agreement_labels import METRIC_LABELS
from webapp.render import esc

METRICS = tuple((name, METRIC_LABELS[name]) for name in ("weighted_kappa", "exact"))
VERDICTS = {"better": "better", "worse": "worse", "same": "about the same", None: "—"}
HOW_TO_READ = (
    "Each row: annotator j's agreement with the other annotators' consensus, and the judge's agreement with the "
    "same consensus on the same items. A difference whose 95% CI lies wholly above 0 means the judge agrees with "
    "the others better than j does; wholly below 0, worse; across 0, about as well."
)


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"


def _cell(metric: Mapping[str, Any], signed: bool = False) -> str:
    """Value and 95% CI in one cell; 'undefined' with its reason as the title when there is no value."""
    value = metric.get("value")
    if value is None:
        return f'<td class="num note" title="{esc(metric.get("reason", ""))}">undefined</td>'
    shown = f"{value:+.3f}" if signed else _num(value)
    if metric.get("ci_low") is not None:
        low, high = metric["ci_low"], metric["ci_high"]
        shown += f" [{low:+.3f}, {high:+.3f}]" if signed else f" [{_num(low)}, {_num(high)}]"
    note = metric.get("ci_note") or metric.get("ci_reason") or ""
    title = f' title="{esc(note)}"' if note else ""
    return f'<td class="num"{title}>{esc(shown)}</td>'


def _row(row: Mapping[str, Any], reading_metric: str) -> str:
    cells = []
    for key, _ in METRICS:
        comparison = row[key]
        cells += [_cell(comparison["annotator"]), _cell(comparison["judge"]), _cell(comparison["difference"], True)]
    verdict = VERDICTS.get(row[reading_metric].get("judge_vs_annotator"), "—")
    items = f"{row['n_items']}" + (f" ({row['n_pairs']} pairs)" if "n_pairs" in row else "")
    return (
        f'<tr><th scope="row">{esc(row["annotator"])}</th><td class="num">{esc(items)}</td>{"".join(cells)}'
        f'<td>{esc(verdict)}</td><td class="note">{esc(row.get("note", ""))}</td></tr>'
    )


def render_judge_vs_people(block: Mapping[str, Any]) -> str:
    """The reading, then one row per annotator (and pooled): annotator, judge and judge - annotator with CIs."""
    if not block.get("available"):
        return f'<p class="note">{esc(block.get("reason", "Judge vs people is not available."))}</p>'
    metric = block.get("reading_metric", "weighted_kappa")
    groups = "".join(
        f"<th>{esc(label)}: annotator vs others</th><th>{esc(label)}: judge vs the same others</th>"
        f"<th>{esc(label)}: judge − annotator</th>"
        for _, label in METRICS
    )
    verdict_head = f"Judge ({dict(METRICS).get(metric, metric)})"
    rows = "".join(_row(row, metric) for row in [*block.get("rows", []), block["pooled"]])
    left_out = "".join(
        f'<p class="note">Left out: {esc(entry["annotator"])}: {esc(entry["reason"])}</p>'
        for entry in block.get("left_out", [])
    )
    return (
        f'<p class="reading">{esc(block.get("reading", ""))}</p>'
        f'<p class="reading">{esc(block.get("ceiling_reading", ""))}</p>'
        f'<table class="gl-table"><thead><tr><th>Annotator</th><th>Items</th>{groups}<th>{esc(verdict_head)}</th>'
        f"<th>Note</th></tr></thead><tbody>{rows}</tbody></table>{left_out}"
        f'<p class="note">{esc(HOW_TO_READ)} {esc(block.get("method", ""))}</p>'
    )
