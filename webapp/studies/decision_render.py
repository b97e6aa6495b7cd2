"""The Agreement tab's decision panel: can the judge replace an annotator, how it compares with each person,
and where it can be trusted. One heading per block of the report, each drawn by the same renderer the HTML
report uses (so the tab and the downloaded report show the same object); every text is escaped there."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from webapp.render import esc
from webapp.report_alt_test import render_alt_test
from webapp.report_calibration import render_calibration
from webapp.report_judge_vs_people import render_judge_vs_people
from webapp.report_sampling import render_sampling

# (report key, heading, renderer), in the order a reader asks the questions.
SECTIONS: tuple[tuple[str, str, Callable[[Mapping[str, Any]], str]], ...] = (
    # First, right under the headline numbers: whether the queue biased them toward hard items.
    ("sampling", "How the items were drawn", render_sampling),
    ("alt_test", "Can the judge replace an annotator? (alt-test)", render_alt_test),
    ("judge_vs_people", "Judge vs people, next to people vs people", render_judge_vs_people),
    ("calibration", "Where the judge can be trusted (calibration)", render_calibration),
)


def render_decision(report: Mapping[str, Any]) -> str:
    """Every decision block of an agreement report under its heading, in one panel."""
    parts = [f'<section class="gl-decision-part gl-decision-{key.replace("_", "-")}"><h3>{esc(heading)}</h3>'
             f"{render(report.get(key) or {})}</section>" for key, heading, render in SECTIONS]
    return f'<div class="gl-decision">{"".join(parts)}</div>'
