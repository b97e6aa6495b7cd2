"""A self-contained HTML file for an agreement report: the metric tables and the charts, plotly.js inlined once.

Every piece of text from the report (item ids, annotator names, reasons) and the title goes through
`webapp.render.esc`; the figures are serialised by plotly, which escapes `<` and `/` in its JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from core.agreement_labels import METRIC_LABELS
from webapp.charts import item_label
from webapp.render import esc
from webapp.report_alt_test import render_alt_test
from webapp.report_audit import audit_figure, render_audit
from webapp.report_calibration import reliability_figure, render_calibration
from webapp.report_judge_run import render_judge_run
from webapp.report_judge_vs_people import render_judge_vs_people
from webapp.report_pairwise import position_figure, render_pairwise
from webapp.report_sampling import render_sampling

HEADLINE = tuple((key, METRIC_LABELS[key])
                 for key in ("pearson", "spearman", "kendall", "exact", "within_1", "weighted_kappa"))
HUMAN = tuple((key, METRIC_LABELS[key]) for key in ("krippendorff_alpha_ordinal", "krippendorff_alpha_interval",
                                                    "mean_pairwise_weighted_kappa", "pairwise_exact"))
PER_ANNOTATOR = (
    ("weighted_kappa", "κ"),
    ("exact", "exact"),
    ("within_1", "±1"),
    ("pearson", "r"),
    ("spearman", "ρ"),
    ("kendall", "τ-b"),
)
TOP_DISAGREEMENTS = 25
INTERNAL_ID_NOTE = (
    "Items are shown by your own ids (the id column of the imported file). An item marked # had none: "
    "the number after # is the app's internal item id."
)
HUMAN_N = (
    "n: for Krippendorff's α, the items rated by 2 or more annotators; for pairwise exact agreement, the pairs of "
    "ratings of one item. No bootstrap CI is computed for human vs human agreement."
)

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #111827; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #e5e7eb; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { padding: .25rem .75rem; border-bottom: 1px solid #e5e7eb; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #6b7280; font-size: .9em; }
.figure { margin: 1rem 0 2rem; }
.basis { background: #fef3c7; padding: .5rem .75rem; border-radius: 4px; }
"""


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:.{digits}f}"


def _p(value: Any) -> str:
    if value is None:
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _metric_cells(metric: Mapping[str, Any]) -> str:
    """Value, 95% CI, p and n cells, then a note (why undefined, or a remark on the CI)."""
    if metric.get("value") is None:
        reason = metric.get("reason") or "undefined"
        return (
            f'<td class="num">undefined</td><td></td><td></td><td class="num">{esc(_num(metric.get("n")))}</td>'
            f'<td class="note">{esc(reason)}</td>'
        )
    ci = "—"
    if metric.get("ci_low") is not None:
        ci = f"[{_num(metric['ci_low'])}, {_num(metric['ci_high'])}]"
    note = metric.get("ci_note") or metric.get("ci_reason") or metric.get("p_value_reason") or ""
    if metric.get("n_pairs") is not None:
        note = f"mean over {metric['n_pairs']} annotator pairs sharing 2 or more items"
    return (
        f'<td class="num">{esc(_num(metric["value"]))}</td><td class="num">{esc(ci)}</td>'
        f'<td class="num">{esc(_p(metric.get("p_value")))}</td><td class="num">{esc(_num(metric.get("n")))}</td>'
        f'<td class="note">{esc(note)}</td>'
    )


def _metric_table(block: Mapping[str, Any], rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(
        f'<tr><th scope="row">{esc(label)}</th>{_metric_cells(block[key])}</tr>'
        for key, label in rows
        if isinstance(block.get(key), Mapping)
    )
    return (
        "<table><thead><tr><th>Metric</th><th>Value</th><th>95% CI</th><th>p</th><th>n</th><th>Note</th></tr>"
        f"</thead><tbody>{body}</tbody></table>"
    )


def _per_annotator(entries: Sequence[Mapping[str, Any]]) -> str:
    if not entries:
        return '<p class="note">No annotator has scored a graded item.</p>'
    head = "".join(f"<th>{esc(label)}</th>" for _, label in PER_ANNOTATOR)
    rows = []
    for entry in entries:
        cells = []
        for key, _ in PER_ANNOTATOR:
            metric = entry[key]
            if metric.get("value") is None:
                cells.append(f'<td class="num note" title="{esc(metric.get("reason", ""))}">undefined</td>')
            else:
                cells.append(f'<td class="num">{esc(_num(metric["value"]))}</td>')
        rows.append(
            f'<tr><th scope="row">{esc(entry["annotator"])}</th><td class="num">{esc(entry["n_items"])}</td>'
            + "".join(cells)
            + "</tr>"
        )
    return (
        f"<table><thead><tr><th>Annotator</th><th>Items</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _spans(spans: Mapping[str, Any]) -> str:
    left_out = f'<p class="note">{esc(spans["left_out_note"])}</p>' if spans.get("n_without_evidence") else ""
    if not spans.get("n_annotations"):
        return f'<p class="note">{esc(spans.get("f1", {}).get("reason", "No span data."))}</p>{left_out}'
    counts = (
        f"{spans['n_annotations']} annotations, {spans['n_tokens']} tokens: "
        f"{spans['true_positive_tokens']} marked by both, {spans['false_positive_tokens']} by the model only, "
        f"{spans['false_negative_tokens']} by the annotators only; {spans['ignored_spans']} spans ignored."
    )
    table = _metric_table(spans, (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1")))
    return table + f'<p class="note">{esc(counts)} {esc(spans.get("method", ""))}</p>{left_out}'


def _anchoring(block: Mapping[str, Any]) -> str:
    if not block.get("available"):
        return f'<p class="note">{esc(block.get("reason", "No before/after reveal scores."))}</p>'
    rows = "".join(
        f'<tr><th scope="row">{esc(label)}</th><td class="num">{esc(block[key])}</td>'
        f'<td class="num">{esc(format(block[key + "_rate"], ".1%"))}</td></tr>'
        for key, label in (
            ("revised", "Revised after the reveal"),
            ("up", "Revised up"),
            ("down", "Revised down"),
            ("towards_model", "Moved towards the model"),
            ("away_from_model", "Moved away from the model"),
        )
    )
    agreement = "".join(
        f'<tr><th scope="row">{esc(when)}</th><td class="num">{esc(_num(block[when]["exact"]["value"]))}</td>'
        f'<td class="num">{esc(_num(block[when]["weighted_kappa"]["value"]))}</td></tr>'
        for when in ("before", "after")
    )
    return (
        f"<table><thead><tr><th>Of {esc(block['n'])} annotations</th><th>Count</th><th>Rate</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        "<table><thead><tr><th>Agreement with the model</th><th>Exact</th><th>Weighted κ</th></tr></thead>"
        f"<tbody>{agreement}</tbody></table>"
        f'<p class="note">{esc(_when_revised(block))} {esc(block.get("method", ""))}</p>'
    )


def _when_revised(block: Mapping[str, Any]) -> str:
    if "changed_at_reveal" not in block:
        return ""
    return (
        f"{block['confirmed_at_reveal']} of {block['n']} confirmed at the reveal; {block['changed_at_reveal']} "
        f"changed when confirming, {block['changed_by_later_edit']} by a later edit."
    )


def _blind(report: Mapping[str, Any]) -> bool | None:
    return (report.get("headline_score") or {}).get("blind")


def _post_reveal(report: Mapping[str, Any]) -> str:
    """The second view: every headline metric before vs after the reveal, then the post-reveal tables in full."""
    post = report.get("post_reveal") or {}
    if not post.get("available"):
        return f'<p class="note">{esc(post.get("reason", "No post-reveal view."))}</p>'
    rows = []
    for before, after, labels in (
        (report, post, HEADLINE + HUMAN[:2]),
        (report.get("human_human") or {}, post.get("human_human") or {}, HUMAN[2:]),
    ):
        for key, label in labels:
            a, b = (before.get(key) or {}).get("value"), (after.get(key) or {}).get("value")
            change = format(b - a, "+.3f") if a is not None and b is not None else "—"
            rows.append(
                f'<tr><th scope="row">{esc(label)}</th><td class="num">{esc(_num(a))}</td>'
                f'<td class="num">{esc(_num(b))}</td><td class="num">{esc(change)}</td></tr>'
            )
    comparison = (
        "<table><thead><tr><th>Metric</th><th>Before the reveal (headline)</th><th>After the reveal</th>"
        f"<th>Change</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return (
        f'<p class="note">{esc(post.get("note", ""))}</p>{comparison}'
        "<h3>Human vs model after the reveal (pooled)</h3>"
        + _metric_table(post, HEADLINE)
        + "<h3>Human vs human after the reveal</h3>"
        + _metric_table(post.get("human_human") or {}, HUMAN)
        + "<h3>Per annotator after the reveal</h3>"
        + _per_annotator(post.get("per_annotator") or [])
    )


def _excluded(report: Mapping[str, Any]) -> str:
    excluded = report.get("excluded") or {}
    rows = "".join(
        f'<tr><th scope="row">{esc(reason.replace("_", " "))}</th><td class="num">{esc(count)}</td></tr>'
        for reason, count in excluded.items()
    )
    return f'<table><tbody>{rows}</tbody></table><p class="note">{esc(report.get("excluded_note", ""))}</p>'


def _disagreements(report: Mapping[str, Any]) -> str:
    items = (report.get("disagreements") or [])[:TOP_DISAGREEMENTS]
    if not items:
        return '<p class="note">No item has both a human and a model score.</p>'
    rows = "".join(
        f'<tr><td>{esc(item_label(d))}</td><td class="num">{esc(_num(d["human_mean"], 2))}</td>'
        f'<td class="num">{esc(d["n_annotators"])}</td><td class="num">{esc(d["model_score"])}</td>'
        f'<td class="num">{esc(format(d["diff"], "+.2f"))}</td></tr>'
        for d in items
    )
    fallback = any("external_id" in d and d["external_id"] is None for d in items)
    note = f'<p class="note">{esc(INTERNAL_ID_NOTE)}</p>' if fallback else ""
    return (
        "<table><thead><tr><th>Item</th><th>Human mean</th><th>Labels</th><th>Model</th><th>Human − model</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>{note}"
    )



def _figures(figures: Mapping[str, go.Figure | None] | Sequence[go.Figure | None],
             extra: Sequence[tuple[str, go.Figure | None]] = ()) -> str:
    named: list[tuple[str, go.Figure | None]] = (
        list(figures.items()) if isinstance(figures, Mapping) else [("", f) for f in figures])
    named += extra  # the report's own sections' charts (e.g. calibration's), after the caller's
    parts = []
    first = True
    for index, (caption, figure) in enumerate(named):
        if figure is None:
            continue
        # plotly.js (a few MB) is inlined with the first figure only; the later ones reuse it.
        div = figure.to_html(full_html=False, include_plotlyjs=first, div_id=f"figure-{index}")
        first = False
        heading = f"<h3>{esc(caption)}</h3>" if caption else ""
        parts.append(f'<div class="figure">{heading}{div}</div>')
    return "".join(parts)


def report_to_html(
    report: Mapping[str, Any],
    figures: Mapping[str, go.Figure | None] | Sequence[go.Figure | None] = (),
    *,
    title: str = "Agreement report",
) -> str:
    """A complete, self-contained HTML page for the report; every text from the report or title is escaped."""
    if report.get("mode") == "pairwise":  # a pairwise study's report (core.agreement.pairwise_report)
        charts = _figures(figures, [("Position consistency and position bias", position_figure(report))])
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{esc(title)}</h1>\n"
            f"<h2>Pairwise agreement</h2>{render_pairwise(report)}"
            f"{'<h2>Charts</h2>' + charts if charts else ''}\n</body>\n</html>\n"
        )
    scale = report.get("scale")
    scale_text = f"{scale['min']}–{scale['max']}" if scale else "none"
    facts = (
        f"{report.get('n_items', 0)} of {report.get('n_items_total', 0)} items compared · "
        f"{report.get('n_annotators', 0)} annotators · {report.get('n_ratings', 0)} human ratings · "
        f"scale {scale_text}"
    )
    headline = report.get("headline_score") or {}
    basis = (
        f'<p class="basis"><strong>Scores used:</strong> {esc(headline["note"])}</p>\n' if headline.get("note") else ""
    )
    # Which judge run's verdicts are the model's (core.studies.report_context), when the caller says.
    basis += render_judge_run(report.get("judge_run"))
    boot = report.get("bootstrap") or {}
    boot_text = (
        f"95% confidence intervals: {boot.get('method', 'percentile')} bootstrap over items, "
        f"{boot.get('n_resamples', 0)} resamples, seed {boot.get('seed', 0)}. {boot.get('note', '')}"
    )
    human = report.get("human_human") or {}
    when = " — before the reveal (headline)" if _blind(report) else ""
    sections = [
        (f"Human vs model (pooled){when}", _metric_table(report, HEADLINE) + f'<p class="note">{esc(boot_text)}</p>'),
        ("How items were drawn (queue order)", render_sampling(report.get("sampling") or {})),
        (f"Human vs human{when}", _metric_table(human, HUMAN) + f'<p class="note">{esc(HUMAN_N)}</p>'),
        (f"Per annotator, vs the model{when}", _per_annotator(report.get("per_annotator") or [])),
        (f"Judge vs people, next to people vs people{when}", render_judge_vs_people(report.get("judge_vs_people", {}))),
        (f"Can the judge replace an annotator? (alt-test){when}", render_alt_test(report.get("alt_test") or {})),
        ("Anchoring (before / after the model's verdict was revealed)", _anchoring(report.get("anchoring") or {})),
        ("After the reveal: second view (may be anchored)", _post_reveal(report)),
        ("Highlight spans (token level)", _spans(report.get("spans") or {})),
        ("Excluded", _excluded(report)),
        (f"Largest disagreements (top {TOP_DISAGREEMENTS}){when}", _disagreements(report)),
        (f"Calibration: where the judge can be trusted{when}", render_calibration(report.get("calibration") or {})),
        *([("Robustness audit", render_audit(report["audit"]))] if report.get("audit") else []),
    ]
    body = "".join(f"<h2>{esc(heading)}</h2>{content}" for heading, content in sections)
    charts = _figures(figures, [("Reliability (calibration)", reliability_figure(report.get("calibration") or {})),
                                ("Robustness audit", audit_figure(report.get("audit") or {}))])
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f'<h1>{esc(title)}</h1>\n<p>{esc(facts)}</p>\n{basis}<p class="note">{esc(report.get("pooling", ""))}</p>\n'
        f"{body}{'<h2>Charts</h2>' + charts if charts else ''}\n</body>\n</html>\n"
    )
