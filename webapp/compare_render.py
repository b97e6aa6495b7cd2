"""HTML of a pairwise comparison (core.pairwise): the verdict, each response with its highlights, each order.

Every piece of user or model text goes through webapp.render's `esc` (directly, or through its renderers);
highlights are drawn from offsets only (render.render_marked_text).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.grading import FieldSpan
from core.spans import Span
from webapp.render import esc, render_marked_text, render_reasoning

_VERDICTS = {
    "A": ("Response A is better", "Both orders prefer A."),
    "B": ("Response B is better", "Both orders prefer B."),
    "inconsistent": ("Inconsistent", "The two orders disagree: the judge preferred a slot, not a response."),
    "undecided": ("Undecided", "An order's answer had no readable score."),
}


def render_pair_verdict(verdict: str, reason: str, both_orders: bool) -> str:
    """The verdict in large type, the reason under it, and a note when only one order was run."""
    title, _ = _VERDICTS.get(verdict, (verdict, ""))
    kind = esc(verdict if verdict in _VERDICTS else "unknown")
    single = ("" if both_orders else
              '<div class="gl-note gl-pair-single">One order only: position consistency was not checked.</div>')
    return (f'<div class="gl-card gl-pair-verdict gl-pair-{kind}" role="status">'
            f'<div class="gl-card-main"><span class="gl-score">{esc(title)}</span></div>'
            f'<div class="gl-pair-reason">{esc(reason)}</div>{single}</div>')


def render_pair_response(name: str, text: str, spans: Sequence[FieldSpan]) -> str:
    """One response titled "Response {name}", marked with the spans (of every order) that fall on it."""
    own = [Span(s.start, s.end, s.phrase) for s in spans if s.field == name]
    count = len({s.phrase for s in own})
    note = f'<span class="gl-field-count">{count} highlight{"s" if count != 1 else ""}</span>'
    return (f'<section class="gl-field gl-pair-response"><div class="gl-field-tag">Response {esc(name)} {note}</div>'
            f'<div class="gl-field-text">{render_marked_text(text, own)}</div></section>')


def render_pair_order(label: str, preferred: str | None, score: int | None, status: str,
                      problems: Sequence[str], reasoning: str | None) -> str:
    """One order's grade: which response sat first, the score and the response it prefers, its reasoning."""
    first, _, second = label.partition(",")
    kind = status if status in ("ok", "repaired", "failed") else "unknown"
    choice = (f"preferred {esc(preferred)} (score {esc(score)})" if preferred is not None
              else "no readable score")
    problem_list = ('<ul class="gl-problems">' + "".join(f"<li>{esc(p)}</li>" for p in problems) + "</ul>"
                    if problems else "")
    return (f'<section class="gl-pair-order"><div class="gl-subtitle">Order {esc(label)}: {esc(first)} as '
            f"MODEL OUTPUT 1, {esc(second)} as MODEL OUTPUT 2 \u2014 {choice} "
            f'<span class="gl-badge gl-badge-{kind}">{esc(status)}</span></div>'
            f"{problem_list}{render_reasoning(reasoning)}</section>")
