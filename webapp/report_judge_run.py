"""Which judge run's verdicts an agreement report compares with (core.studies.report_context's "judge_run"), as one
line of the downloadable HTML report. The run's name and configuration are text people typed: escaped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webapp.render import esc


def render_judge_run(entry: Mapping[str, Any] | None) -> str:
    """'Judge run: <name> (#id) · <configuration>', saying whether it is the study's first run; "" without one."""
    if not entry:
        return ""
    first = " (the study's first run)" if entry.get("first") else ""
    return (f'<p class="basis"><strong>Judge run:</strong> \u201c{esc(entry.get("name"))}\u201d '
            f'(#{esc(entry.get("id"))}){esc(first)} \u00b7 {esc(entry.get("description"))}</p>\n')
