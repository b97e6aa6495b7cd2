"""The alt-test block of an agreement report as HTML: the decision, the per-annotator table and the notes.

Every text from the block (annotator names, reasons, notes) goes through `webapp.render.esc`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webapp.render import esc

COLUMNS = ("Annotator", "Items", "Judge advantage ρᶠ", "Annotator advantage ρʰ", "t", "p", "Adjusted p (BY)", "Won?",
           "Note")


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


def _won(row: Mapping[str, Any]) -> str:
    if row.get("won") is None:
        return "left out"
    return "yes" if row["won"] else "no"


def _table(rows: list[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{esc(column)}</th>" for column in COLUMNS)
    body = "".join(
        f'<tr><th scope="row">{esc(row.get("annotator"))}</th><td class="num">{esc(row.get("n_items"))}</td>'
        f'<td class="num">{esc(_num(row.get("judge_advantage")))}</td>'
        f'<td class="num">{esc(_num(row.get("annotator_advantage")))}</td>'
        f'<td class="num">{esc(_num(row.get("t")))}</td><td class="num">{esc(_p(row.get("p")))}</td>'
        f'<td class="num">{esc(_p(row.get("p_adjusted")))}</td><td>{esc(_won(row))}</td>'
        f'<td class="note">{esc(row.get("excluded_reason") or row.get("note") or "")}</td></tr>'
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_alt_test(block: Mapping[str, Any]) -> str:
    """The alt-test (core.agreement.alt_test) as an HTML fragment: decision line, table, weak and epsilon notes."""
    if not block:
        return '<p class="note">The alt-test was not computed for this report.</p>'
    rows = list(block.get("annotators") or [])
    parts = [f'<p class="basis"><strong>Decision:</strong> {esc(block.get("decision", ""))}</p>']
    if block.get("available"):
        parts.append(
            f"<p>Winning rate ω = {esc(_num(block.get('winning_rate'), 2))} "
            f"({esc(block.get('n_annotators_won'))} of {esc(block.get('n_annotators_tested'))} annotators; "
            f"the judge passes at ω ≥ 0.5) · average advantage probability ρ = "
            f"{esc(_num(block.get('advantage_probability'), 2))} · ε = {esc(block.get('epsilon'))} · "
            f"q = {esc(block.get('q'))}</p>"
        )
    parts.extend(f'<p class="basis">{esc(warning)}</p>' for warning in block.get("warnings") or [])
    parts.append(_table(rows))
    scoring = block.get("scoring") or {}
    notes = [
        f"ε = {block.get('epsilon')} (default {block.get('epsilon_default')}). {block.get('epsilon_guidance', '')}",
        f"Alignment: {scoring.get('description', '')} ({scoring.get('why', '')}).",
        str(block.get("method", "")),
        f"Reference: {block.get('citation', '')}.",
    ]
    parts.extend(f'<p class="note">{esc(note)}</p>' for note in notes)
    return "".join(parts)
