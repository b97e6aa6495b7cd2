"""The `sampling` block of an agreement report as HTML: how items were drawn (random or least-confident first),
the counts of each kind, their item ids, and the note that agreement on least-confident items is biased."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from webapp.render import esc

SHOWN_IDS = 200  # per kind; the JSON report lists them all
KINDS = (("random", "Drawn at random"), ("uncertainty", "Least-confident judgment first"))
COUNTS = (("n_items", "Items"), ("n_labelled", "Labelled"), ("n_graded", "Graded"),
          ("n_labelled_and_graded", "Labelled and graded"))


def _ids(ids: Sequence[Any]) -> str:
    shown = ", ".join(str(value) for value in ids[:SHOWN_IDS])
    more = f" … and {len(ids) - SHOWN_IDS} more (all in the JSON report)" if len(ids) > SHOWN_IDS else ""
    return esc(shown + more) if ids else "—"


def render_sampling(block: Mapping[str, Any]) -> str:
    """The bias note, a table of counts per kind of draw and the item ids of each kind; every text escaped."""
    if not block.get("available"):
        return f'<p class="note">{esc(block.get("reason") or "Not computed.")}</p>'
    css = "basis" if block.get("biased") else "note"
    head = "".join(f"<th>{esc(label)}</th>" for _, label in COUNTS)
    rows = "".join(
        f'<tr><th scope="row">{esc(label)}</th>'
        + "".join(f'<td class="num">{esc((block.get(kind) or {}).get(key, 0))}</td>' for key, _ in COUNTS)
        + f'<td>{_ids((block.get(kind) or {}).get("item_ids") or [])}</td></tr>'
        for kind, label in KINDS
    )
    return (f'<p class="{css}">{esc(block.get("note", ""))}</p>'
            f"<table><thead><tr><th>How drawn</th>{head}<th>Item ids</th></tr></thead><tbody>{rows}</tbody></table>")
