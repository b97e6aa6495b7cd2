"""The one place where text becomes HTML.

Every slice of user or model text goes through `esc` before it is placed in markup; nothing else in
the web app builds HTML. Highlights are rendered from character offsets only (core.spans.segments),
never by searching and replacing inside HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from core.agreement_labels import METRIC_LABELS
from core.grading import FieldSpan
from core.spans import Span, segments
from webapp.view_models import format_time

if TYPE_CHECKING:
    from core.judge.base import BackendInfo
    from core.presets import Preset
    from core.storage import StorageStatus
    from webapp.view_models import JudgmentView

MODEL_HINT = "start the app with --model /path/to/local/model (a local copy of PatronusAI/glider)"

_STATUS_LABELS = {
    "ok": ("ok", "Answer parsed as GLIDER's format."),
    "repaired": ("repaired", "The answer was malformed; the parser repaired it."),
    "failed": ("failed", "No score could be read from the answer."),
}

_BULLET = re.compile(
    r"""
    ^\s*                  # indentation
    (?:[-*\u2022]|\d+[.)])  # a dash, star or bullet character, or "1." / "1)"
    \s+                   # then whitespace before the item text
    """,
    re.VERBOSE,
)


def esc(text: object) -> str:
    """Escape any value for use in HTML text or a double-quoted attribute."""
    return html.escape("" if text is None else str(text), quote=True)


def _list(items: Iterable[str], css_class: str) -> str:
    return f'<ul class="{css_class}">' + "".join(f"<li>{esc(item)}</li>" for item in items) + "</ul>"


# --- fields and highlights ---------------------------------------------------------------------


def render_marked_text(text: str, spans: Sequence[Span]) -> str:
    """The text with each highlighted piece wrapped in one <mark>; overlaps never nest."""
    pieces = []
    for seg in segments(text, list(spans)):
        piece = esc(text[seg.start : seg.end])
        if not seg.phrases:
            pieces.append(piece)
            continue
        depth = " gl-hl-multi" if len(seg.phrases) > 1 else ""
        title = esc("Highlighted: " + " | ".join(seg.phrases))
        pieces.append(f'<mark class="gl-hl{depth}" title="{title}">{piece}</mark>')
    return "".join(pieces)


def render_field(tag: str, text: str, spans: Sequence[FieldSpan]) -> str:
    """One input field, titled by its tag, with its highlights marked."""
    own = [Span(s.start, s.end, s.phrase) for s in spans if s.field == tag]
    count = len({s.phrase for s in own})
    note = f'<span class="gl-field-count">{count} highlight{"s" if count != 1 else ""}</span>'
    return (
        f'<section class="gl-field"><div class="gl-field-tag">{esc(tag)} {note}</div>'
        f'<div class="gl-field-text">{render_marked_text(text, own)}</div></section>'
    )


def render_fields(fields: Mapping[str, str], spans: Sequence[FieldSpan]) -> str:
    """Every field a highlight was found in, in the form's order; a note when none was found."""
    with_spans = {span.field for span in spans}
    shown = [render_field(tag, text, spans) for tag, text in fields.items() if tag in with_spans and text]
    heading = '<div class="gl-subtitle">Highlights in your text</div>'
    if not shown:
        return heading + '<div class="gl-fields gl-empty">No highlighted phrase was found in your text.</div>'
    return heading + '<div class="gl-fields">' + "".join(shown) + "</div>"


def render_ungrounded(phrases: Sequence[str], in_instructions: Iterable[str] = ()) -> str:
    """Highlighted phrases not found in any field, noting those that only occur in the instructions."""
    if not phrases:
        return ""
    quoted = set(in_instructions)
    items = []
    for phrase in phrases:
        note = (
            ' <span class="gl-note">(only in the pass criteria or rubric)</span>' if phrase in quoted else ""
        )
        items.append(f"<li><q>{esc(phrase)}</q>{note}</li>")
    return (
        '<div class="gl-ungrounded"><div class="gl-subtitle">Highlights not found in your text</div>'
        f'<ul>{"".join(items)}</ul></div>'
    )


# --- reasoning, score, banners, messages --------------------------------------------------------


def render_reasoning(reasoning: str | None) -> str:
    """The model's reasoning as plain text: bullet lines become a list, nothing is read as markup."""
    heading = '<div class="gl-subtitle">Reasoning</div>'
    if reasoning is None or not reasoning.strip():
        return heading + '<div class="gl-reasoning gl-empty">The answer contained no reasoning.</div>'
    paragraphs: list[str] = []
    bullets: list[str] = []
    for line in reasoning.splitlines():
        if not line.strip():
            continue
        match = _BULLET.match(line)
        if match:
            bullets.append(line[match.end() :].strip())
        elif bullets:  # a wrapped continuation of the previous bullet
            bullets[-1] += " " + line.strip()
        else:
            paragraphs.append(line.strip())
    body = "".join(f"<p>{esc(p)}</p>" for p in paragraphs)
    if bullets:
        body += _list(bullets, "gl-bullets")
    return f'{heading}<div class="gl-reasoning">{body}</div>'


def _scale_text(scale: Sequence[int]) -> str:
    low, high = scale
    return f"{low}\u2013{high}"


def render_score_card(view: JudgmentView) -> str:
    """The big score, its scale, the parse status with its problems, the expected score and confidence."""
    label, explanation = _STATUS_LABELS.get(view.status, (view.status, ""))
    score = "\u2014" if view.score is None else esc(view.score)
    stats = []
    if view.expected_score is not None:
        stats.append(("Expected score", f"{view.expected_score:.2f}"))
    if view.confidence is not None:
        stats.append(("Confidence", f"{view.confidence:.0%}"))
    if view.judgment_id is not None:
        stats.append(("Judgment", f"#{view.judgment_id}"))
    if view.created_at is not None:
        stats.append(("Graded", format_time(view.created_at)))
    stat_html = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in stats)
    problems = _list(view.problems, "gl-problems") if view.problems else ""
    model = f'<div class="gl-card-model">{esc(view.model)}</div>' if view.model else ""
    status_class = esc(view.status if view.status in _STATUS_LABELS else "unknown")
    return (
        f'<div class="gl-card gl-status-{status_class}">'
        f'<div class="gl-card-main"><span class="gl-score">{score}</span>'
        f'<span class="gl-scale">on a {esc(_scale_text(view.scale))} scale</span></div>'
        f'<div class="gl-card-status"><span class="gl-badge gl-badge-{status_class}" title="{esc(explanation)}">'
        f"{esc(label)}</span> <span class=\"gl-status-text\">{esc(explanation)}</span></div>"
        f"{problems}<dl class=\"gl-stats\">{stat_html}</dl>{model}</div>"
    )


def render_backend_banner(
    info: BackendInfo | None, error: str | None = None, loading: str | None = None, reason: str | None = None
) -> str:
    """What judge is loaded, which one is loading, or why none is and how to fix it; `reason` says why
    this back-end was chosen (e.g. by `--backend auto`) and is shown in every state."""
    why = f'<div class="gl-banner-note gl-banner-choice">Why this back-end: {esc(reason)}</div>' if reason else ""
    if info is None and loading:
        return (
            '<div class="gl-banner gl-banner-loading" role="status">'
            f"<strong>Loading the judge: {esc(loading)} …</strong>"
            "<div>Grading starts working as soon as it is ready (quantizing GLIDER to 4 bits on a CPU takes "
            f"several minutes). History works now.</div>{why}</div>"
        )
    if info is None:
        reason_text = error or "No judge back-end was configured."
        return (
            '<div class="gl-banner gl-banner-error" role="alert">'
            "<strong>The judge model is not loaded, so grading is unavailable.</strong>"
            f'<div class="gl-banner-reason">{esc(reason_text)}</div>'
            f"<div>To fix it, {esc(MODEL_HINT)}, then restart. History still works.</div>{why}</div>"
        )
    notes = "".join(f'<div class="gl-banner-note">{esc(note)}</div>' for note in info.notes)
    parts = [
        ("Model", info.model_id),
        ("Back-end", info.backend),
        ("Quantization", f"{info.quantization} ({info.dtype})"),
        ("Device", info.device),
        *([("Runs", info.kernel)] if info.kernel else []),
    ]
    body = " ".join(f'<span class="gl-chip"><b>{esc(k)}</b> {esc(v)}</span>' for k, v in parts)
    return f'<div class="gl-banner gl-banner-ok">{body}{why}{notes}</div>'


def render_storage_notice(status: StorageStatus | None) -> str:
    """One line saying the data is lost at the next restart and what to do (core.storage), or "" when it is kept."""
    if status is None or not status.warn:
        return ""
    return f'<div class="gl-banner-note gl-storage-warning" role="alert">{esc(status.advice)}</div>'


def render_error(message: str) -> str:
    """A message the user can act on, shown in the page instead of a traceback."""
    return f'<div class="gl-message gl-message-error" role="alert">{esc(message)}</div>'


def render_warnings(warnings: Sequence[str]) -> str:
    """Warnings about a finished grade (context length, truncation ...); empty when there are none."""
    if not warnings:
        return ""
    return '<div class="gl-message gl-message-warning">' + _list(warnings, "gl-warnings") + "</div>"


def render_preset(preset: Preset | None) -> str:
    """A preset's description under the picker."""
    if preset is None:
        return ""
    return f'<div class="gl-preset"><b>{esc(preset.name)}</b> \u2014 {esc(preset.description)}</div>'


def render_header() -> str:
    """The page title and a one-line description of what the app does."""
    return (
        '<div class="gl-header"><h1>GLIDER Studio</h1><p>Score text against your own pass criteria and rubric with '
        "Patronus AI's GLIDER judge: reasoning, the phrases that decided the score, and the score.</p></div>"
    )


def render_subtitle(text: str) -> str:
    """A small section heading."""
    return f'<div class="gl-subtitle">{esc(text)}</div>'


def render_hint(text: str) -> str:
    """A quiet line of guidance, e.g. what to do before the first grade."""
    return f'<div class="gl-hint">{esc(text)}</div>'


def render_notice(text: str) -> str:
    """A neutral, one-line confirmation (e.g. that inputs were copied)."""
    return f'<div class="gl-message gl-message-info">{esc(text)}</div>'


# --- studies: labelling, import, agreement -------------------------------------------------------

# The phrase under which a human's evidence span is merged with the model's highlights; it can never be
# a model phrase (phrases come from parsed text, which holds no NUL).
_HUMAN = "\x00human"

# Human vs model: keys of the report itself. Human vs human: keys of its "human_human" block.
MODEL_METRICS = {key: METRIC_LABELS[key]
                 for key in ("weighted_kappa", "pearson", "spearman", "kendall", "exact", "within_1")}
HUMAN_METRICS = {key: METRIC_LABELS[key] for key in ("krippendorff_alpha_ordinal", "krippendorff_alpha_interval",
                                                     "pairwise_exact", "mean_pairwise_weighted_kappa")}


def _number(value: object, digits: int = 3) -> str:
    if value is None:
        return "\u2014"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.{digits}f}"


def _p_value(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "\u2014"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def render_label_fields(
    fields: Mapping[str, str],
    human_spans: Sequence[Mapping[str, object]] = (),
    model_spans: Sequence[FieldSpan] = (),
) -> str:
    """An item's fields for labelling: the annotator's evidence and (once shown) the model's highlights marked.

    Each field's text sits alone in a `.gl-field-text` element carrying `data-field`, so the page can
    turn a selection into offsets relative to that text.
    """
    sections = []
    for tag, text in fields.items():
        if not text:
            continue
        spans: list[Span] = [Span(s.start, s.end, s.phrase) for s in model_spans if s.field == tag]
        spans += [Span(int(str(s["start"])), int(str(s["end"])), _HUMAN) for s in human_spans if s.get("field") == tag]
        pieces = []
        for seg in segments(text, spans):
            piece = esc(text[seg.start : seg.end])
            if not seg.phrases:
                pieces.append(piece)
                continue
            model = [p for p in seg.phrases if p != _HUMAN]
            classes = (["gl-hl"] if model else []) + (["gl-hl-human"] if _HUMAN in seg.phrases else [])
            titles = (["Your evidence"] if _HUMAN in seg.phrases else []) + [f"Model: {p}" for p in model]
            pieces.append(f'<mark class="{" ".join(classes)}" title="{esc(" | ".join(titles))}">{piece}</mark>')
        sections.append(
            f'<section class="gl-field"><div class="gl-field-tag">{esc(tag)}</div>'
            f'<div class="gl-field-text" data-field="{esc(tag)}">{"".join(pieces)}</div></section>'
        )
    if not sections:
        return '<div class="gl-fields gl-empty">This item has no text.</div>'
    return '<div class="gl-fields gl-label-fields">' + "".join(sections) + "</div>"


def render_evidence(fields: Mapping[str, str], spans: Sequence[Mapping[str, object]]) -> str:
    """The passages the annotator marked as evidence, quoted, or how to mark one."""
    if not spans:
        return render_hint("Evidence (optional): select words in a field and press Mark selection.")
    items = []
    for span in spans:
        tag = str(span.get("field", ""))
        start, end = int(str(span.get("start", 0))), int(str(span.get("end", 0)))
        items.append(f'<li><span class="gl-note">{esc(tag)}</span> <q>{esc(fields.get(tag, "")[start:end])}</q></li>')
    return f'<div class="gl-evidence"><div class="gl-subtitle">Your evidence</div><ul>{"".join(items)}</ul></div>'


def render_progress(line: str) -> str:
    """The labelling progress line."""
    return f'<div class="gl-progress" role="status">{esc(line)}</div>'


def render_study_summary(name: str, description: str, pass_criteria: str, scale: Sequence[int], blind: bool,
                         levels: Sequence[tuple[int, str]] = ()) -> str:
    """What the annotator is asked: the study's name, description, pass criteria, scale and what each score means.

    The rubric's levels fold away (a <details>), so that on a phone they do not push the item off the screen.
    """
    mode = ("Blind: the model's verdict is shown after you submit." if blind
            else "The model's verdict is shown alongside.")
    description_html = f"<p>{esc(description)}</p>" if description else ""
    rubric_html = ""
    if levels:
        rows = "".join(f'<li><span class="gl-level-score">{esc(score)}</span> {esc(text)}</li>'
                       for score, text in levels)
        rubric_html = (f'<details class="gl-rubric"><summary>What each score means</summary>'
                       f'<ul class="gl-levels">{rows}</ul></details>')
    return (
        f'<div class="gl-study"><div class="gl-study-name">{esc(name)}</div>{description_html}'
        f'<div class="gl-study-criteria"><b>Pass criteria</b> {esc(pass_criteria)}</div>'
        f'<div class="gl-note">Scale {esc(_scale_text(scale))} \u00b7 {esc(mode)}</div>{rubric_html}</div>'
    )


def render_item_header(item_id: int, external_id: str | None, note: str = "") -> str:
    """Which item is on screen (and, when revisiting, that it is a label already given)."""
    label = f"Item #{item_id}" + (f" \u00b7 {external_id}" if external_id else "")
    extra = f' <span class="gl-note">{esc(note)}</span>' if note else ""
    return f'<div class="gl-item-header"><b>{esc(label)}</b>{extra}</div>'


def render_reveal(my_score: int, model_score: int | None, blind: bool) -> str:
    """After a blind submission: the human's score next to the model's, and the choice to keep or change."""
    model = "could not be read" if model_score is None else esc(model_score)
    lead = "Saved." if not blind else "Saved. Now the model's verdict is shown."
    return (
        f'<div class="gl-reveal" role="status"><b>{esc(lead)}</b> You gave <span class="gl-reveal-score">'
        f'{esc(my_score)}</span>; the model gave <span class="gl-reveal-score">{model}</span>. '
        "Keep your score, or change it now that you have seen the model's reasoning (your first score is kept too)."
        "</div>"
    )


def render_import_report(added: int, errors: Sequence[tuple[int, str]], limit: int = 50) -> str:
    """The import's outcome: how many items were added and what was wrong with each refused row."""
    head = f"{added} item{'s' if added != 1 else ''} added"
    if not errors:
        return f'<div class="gl-message gl-message-info">{esc(head)}.</div>'
    shown = [f"row {row}: {message}" for row, message in errors[:limit]]
    if len(errors) > limit:
        shown.append(f"\u2026 and {len(errors) - limit} more refused rows")
    return (f'<div class="gl-message gl-message-warning">{esc(head)}; {len(errors)} row'
            f'{"s" if len(errors) != 1 else ""} refused:{_list(shown, "gl-row-errors")}</div>')


def render_signed_in(username: str | None, role: str | None) -> str:
    """Who is signed in, for the header; empty when sign-in is off."""
    if not username:
        return ""
    return (f'<div class="gl-user">Signed in as <b>{esc(username)}</b>'
            f'{f" ({esc(role)})" if role else ""}</div>')


def _metric_row(name: str, metric: Mapping[str, object]) -> str:
    value = metric.get("value")
    if value is None:
        ci, p = "", ""
        shown = f'<span class="gl-note">{esc(metric.get("reason") or "not defined")}</span>'
    else:
        shown = esc(_number(value))
        low, high = metric.get("ci_low"), metric.get("ci_high")
        ci = f"[{_number(low)}, {_number(high)}]" if low is not None and high is not None else "\u2014"
        p = _p_value(metric.get("p_value"))
    n = metric.get("n")
    return (f"<tr><th scope=\"row\">{esc(name)}</th><td>{shown}</td><td>{esc(ci)}</td><td>{esc(p)}</td>"
            f"<td>{esc('' if n is None else n)}</td></tr>")


def render_metric_table(metrics: Mapping[str, object], labels: Mapping[str, str], title: str, counts: str) -> str:
    """A block of agreement metrics: value, 95% CI and p-value per metric, or why one is undefined."""
    rows = [_metric_row(name, metric) for key, name in labels.items()
            if isinstance(metric := metrics.get(key), Mapping)]
    if not rows:
        return ""
    return (
        f'<div class="gl-metrics"><div class="gl-subtitle">{esc(title)} <span class="gl-note">{esc(counts)}</span>'
        '</div><table class="gl-table"><thead><tr><th>Metric</th><th>Value</th><th>95% CI</th><th>p</th>'
        f'<th>n</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def _blind(report: Mapping[str, object]) -> bool | None:
    headline = report.get("headline_score")
    return headline.get("blind") if isinstance(headline, Mapping) else None  # type: ignore[return-value]


def render_score_basis(report: Mapping[str, object]) -> str:
    """Which human score the report's headline uses: before the reveal (blind), or with the verdict visible."""
    blind = _blind(report)
    if blind:
        text = ("Blind study: every number here uses the score each annotator gave before the model's verdict "
                "was shown. The scores after the reveal are the second view below, next to how many moved.")
    elif blind is False:
        text = ("Not a blind study: the labels were given with the model's verdict visible, so the human scores "
                "may lean towards the model's and agreement may be overstated.")
    elif isinstance(report.get("headline_score"), Mapping):
        text = "The data does not say whether the labels were given blind: the scores are used as given."
    else:
        return ""
    return f'<p class="gl-score-basis">{esc(text)}</p>'


def render_anchoring(report: Mapping[str, object]) -> str:
    """The post-reveal second view (before vs after, per metric) and how many labels moved after the reveal."""
    post, anchoring = report.get("post_reveal"), report.get("anchoring")
    if not isinstance(post, Mapping) or not post.get("available"):
        return ""
    parts = []
    if isinstance(anchoring, Mapping) and anchoring.get("available"):
        moved = (f"Revised after the reveal: {anchoring['revised']} of {anchoring['n']} labels "
                 f"({anchoring['towards_model']} towards the model, {anchoring['away_from_model']} away; "
                 f"{anchoring['changed_at_reveal']} when confirming at the reveal, "
                 f"{anchoring['changed_by_later_edit']} by a later edit).")
        before, after = anchoring.get("before"), anchoring.get("after")
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            moved += (f" Exact agreement of single labels with the model: {_number(before['exact'].get('value'))} "
                      f"before, {_number(after['exact'].get('value'))} after.")
        parts.append(f'<p class="gl-anchoring-summary">{esc(moved)}</p>')
    human_before, human_after = report.get("human_human"), post.get("human_human")
    rows, same = [], True
    for source, after_source, labels in ((report, post, MODEL_METRICS), (human_before, human_after, HUMAN_METRICS)):
        if not isinstance(source, Mapping) or not isinstance(after_source, Mapping):
            continue
        for key, name in labels.items():
            first, second = source.get(key), after_source.get(key)
            if not isinstance(first, Mapping) or not isinstance(second, Mapping):
                continue
            a, b = first.get("value"), second.get("value")
            same = same and a == b
            change = (f"{b - a:+.3f}" if isinstance(a, int | float) and isinstance(b, int | float) else "\u2014")
            rows.append(f'<tr><th scope="row">{esc(name)}</th><td>{esc(_number(a))}</td><td>{esc(_number(b))}</td>'
                        f"<td>{esc(change)}</td></tr>")
    counts = f"{post.get('n_items', 0)} items \u00b7 {post.get('n_annotators', 0)} annotators"
    if rows and same:  # nothing moved: a second table of the very same numbers would only be noise
        table = '<p class="gl-note">Every number after the reveal equals the headline: no score changed.</p>'
    else:
        table = (
            '<table class="gl-table"><thead><tr><th>Metric</th><th>Before the reveal (headline)</th>'
            f'<th>After the reveal</th><th>Change</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            if rows else ""
        )
    return (
        '<div class="gl-metrics gl-post-reveal"><div class="gl-subtitle">After the reveal: second view '
        f'<span class="gl-note">{esc(counts)} \u00b7 scores may have moved towards the model</span></div>'
        f'{"".join(parts)}{table}</div>'
    )


def render_agreement_metrics(report: Mapping[str, object]) -> str:
    """The report's headline tables (human vs model pooled over items, human vs human), which scores they use,
    and for a blind study the post-reveal view with the anchoring summary."""
    items = f"{report.get('n_items', 0)} of {report.get('n_items_total', report.get('n_items', 0))} items"
    when = " \u2014 before the reveal" if _blind(report) else ""
    model = render_metric_table(report, MODEL_METRICS, f"Human vs model{when}",
                                f"{items} \u00b7 {report.get('n_annotators', 0)} annotators")
    block = report.get("human_human")
    human = ""
    if isinstance(block, Mapping):
        shared = f"{block.get('n_items_multiply_rated', 0)} items with 2+ labels"
        human = render_metric_table(block, HUMAN_METRICS, f"Human vs human{when}", shared)
    if not model and not human:
        return render_hint("The report holds no metrics.")
    return (f'{render_score_basis(report)}<div class="gl-metrics-grid">{model}{human}</div>'
            f"{render_anchoring(report)}")


def render_report_notes(notes: Sequence[str], excluded: Mapping[str, object] | None) -> str:
    """How the ratings were pooled and which were left out, and why."""
    parts = [f"<p>{esc(note)}</p>" for note in notes if note]
    if excluded:
        shown = [f"{reason}: {count}" for reason, count in excluded.items() if count]
        if shown:
            parts.append('<div class="gl-subtitle">Excluded</div>' + _list(shown, "gl-excluded"))
    if not parts:
        return ""
    return '<div class="gl-report-notes">' + "".join(parts) + "</div>"


def render_human_labels(labels: Sequence[tuple[str, int | str | None, str]]) -> str:
    """The human labels of one item (annotator, score, comment), for the disagreement view."""
    if not labels:
        return render_hint("No human label yet.")
    items = []
    for annotator, score, comment in labels:
        note = f" \u2014 <q>{esc(comment)}</q>" if comment else ""
        shown = "\u2014" if score is None else score
        items.append(f"<li><b>{esc(annotator)}</b>: {esc(shown)}{note}</li>")
    return f'<div class="gl-human-labels"><div class="gl-subtitle">Human labels</div><ul>{"".join(items)}</ul></div>'


# --- batch jobs ------------------------------------------------------------------------------------

_BATCH_STATES = ("ready", "running", "stopped", "failed", "done")


def render_batch_judge(backend: str | None, model: str | None, problem: str | None = None,
                       loading: bool = False) -> str:
    """Which judge a batch job grades with (back-end and model), or why there is none yet."""
    if problem:
        kind = "gl-message-warning" if loading else "gl-message-error"
        return f'<div class="gl-message {kind} gl-batch-judge" role="status">{esc(problem)}</div>'
    chips = [("Judge", model or "unknown"), ("Back-end", backend or "unknown")]
    body = " ".join(f'<span class="gl-chip"><b>{esc(k)}</b> {esc(v)}</span>' for k, v in chips)
    return f'<div class="gl-batch-judge">{body}</div>'


def render_batch_status(
    job_id: int,
    name: str,
    status: str,
    total: int,
    done: int,
    errors: int,
    *,
    rate: str = "",
    eta: str = "",
    message: str = "",
) -> str:
    """A job's progress: its state, a bar of rows finished, the counts (errors included), speed and ETA."""
    finished = done + errors
    share = 100.0 * finished / total if total else 100.0
    state = status if status in _BATCH_STATES else "unknown"
    counts = [f"{finished} of {total} rows", f"{done} graded", f"{errors} error{'s' if errors != 1 else ''}",
              f"{total - finished} pending"]
    if rate:
        counts.append(rate)
    if eta:
        counts.append(f"ETA {eta}")
    note = f'<div class="gl-batch-note">{esc(message)}</div>' if message else ""
    return (
        f'<div class="gl-batch-status gl-batch-{esc(state)}" role="status">'
        f'<div class="gl-batch-head"><b>Job {esc(job_id)}</b> <span class="gl-batch-name">{esc(name)}</span> '
        f'<span class="gl-badge gl-badge-batch-{esc(state)}">{esc(status)}</span></div>'
        f'<div class="gl-batch-bar" aria-hidden="true"><div style="width: {share:.1f}%"></div></div>'
        f'<div class="gl-batch-counts">{esc(" · ".join(counts))}</div>{note}</div>'
    )


def _markdown(text: str) -> str:
    """Markdown (an admin's study guidelines) as HTML, with no way to inject markup: raw HTML is shown as text
    (markdown-it's html option off), links with a javascript:/vbscript:/data: target stay text (its
    validateLink), and images are not rendered (no remote loads from an annotator's page)."""
    from markdown_it import MarkdownIt  # a dependency of gradio; imported on first use

    parser = MarkdownIt("js-default", {"html": False, "linkify": False}).disable("image")
    return parser.render(text or "")


def render_guidelines(markdown: str) -> str:
    """The study's annotator guidelines (Markdown, rendered safely) in a fold that starts open; "" without any."""
    if not markdown or not markdown.strip():
        return ""
    return (f'<details class="gl-guidelines" open><summary>Guidelines</summary>'
            f'<div class="gl-markdown">{_markdown(markdown)}</div></details>')


def render_item_labels(labels: Sequence[Mapping[str, object]]) -> str:
    """Every label of one item for an admin: the score before and after the reveal (and now, if edited later),
    the comment, the evidence quoted, the time spent and the edit history.

    Each label is a mapping with annotator, before, after, score, comment, evidence (a list of (field, text)),
    seconds, created_at and edits (a list of one-line descriptions); all of it is escaped here.
    """
    if not labels:
        return render_hint("No human label yet.")
    rows = []
    for label in labels:
        scores = f"{esc(label['before'])} before the reveal"
        if label.get("after") is not None:
            scores += f", {esc(label['after'])} after it"
        settled = label.get("after") if label.get("after") is not None else label.get("before")
        if label.get("score") != settled:  # edited later
            scores += f", {esc(label['score'])} now"
        evidence = "".join(f'<li><span class="gl-tag">{esc(field)}</span> <q>{esc(text)}</q></li>'
                           for field, text in label.get("evidence") or ())  # type: ignore[attr-defined]
        edits = "".join(f"<li>{esc(edit)}</li>" for edit in label.get("edits") or ())  # type: ignore[attr-defined]
        comment = f'<div class="gl-label-comment"><q>{esc(label["comment"])}</q></div>' if label.get("comment") else ""
        rows.append(
            f'<li class="gl-admin-label"><b>{esc(label["annotator"])}</b>: {scores}'
            f' <span class="gl-note">{esc(label.get("seconds"))} s \u00b7 {esc(label.get("created_at"))}</span>'
            f"{comment}"
            + (f'<div class="gl-note">Evidence</div><ul class="gl-evidence-list">{evidence}</ul>' if evidence else "")
            + (f'<div class="gl-note">Edits</div><ul class="gl-edit-list">{edits}</ul>' if edits else "")
            + "</li>")
    return f'<div class="gl-human-labels"><div class="gl-subtitle">Human labels</div><ul>{"".join(rows)}</ul></div>'


def render_one_time_password(username: str, password: str) -> str:
    """The one-time password of a reset, shown to the admin once (escaped like every other text)."""
    return (f'<div class="gl-message gl-message-info">One-time password for <b>{esc(username)}</b>: '
            f'<code class="gl-one-time-password">{esc(password)}</code><br>It is shown only now: give it to '
            "them. At their next sign-in they must choose their own password before anything else.</div>")
