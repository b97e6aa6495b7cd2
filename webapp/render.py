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

import plotly.graph_objects as go

from core.grading import FieldSpan
from core.spans import Span, segments
from webapp.views import format_time

if TYPE_CHECKING:
    from core.judge.base import BackendInfo
    from core.presets import Preset
    from webapp.views import JudgmentView

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


def render_backend_banner(info: BackendInfo | None, error: str | None = None, loading: str | None = None) -> str:
    """What judge is loaded, which one is loading, or why none is and how to fix it."""
    if info is None and loading:
        return (
            '<div class="gl-banner gl-banner-loading" role="status">'
            f"<strong>Loading the judge: {esc(loading)} …</strong>"
            "<div>Grading starts working as soon as it is ready (quantizing GLIDER to 4 bits on a CPU takes "
            "several minutes). History works now.</div></div>"
        )
    if info is None:
        reason = error or "No judge back-end was configured."
        return (
            '<div class="gl-banner gl-banner-error" role="alert">'
            "<strong>The judge model is not loaded, so grading is unavailable.</strong>"
            f'<div class="gl-banner-reason">{esc(reason)}</div>'
            f"<div>To fix it, {esc(MODEL_HINT)}, then restart. History still works.</div></div>"
        )
    notes = "".join(f'<div class="gl-banner-note">{esc(note)}</div>' for note in info.notes)
    parts = [
        ("Model", info.model_id),
        ("Back-end", info.backend),
        ("Quantization", f"{info.quantization} ({info.dtype})"),
        ("Device", info.device),
    ]
    body = " ".join(f'<span class="gl-chip"><b>{esc(k)}</b> {esc(v)}</span>' for k, v in parts)
    return f'<div class="gl-banner gl-banner-ok">{body}{notes}</div>'


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


# --- chart ---------------------------------------------------------------------------------------


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
