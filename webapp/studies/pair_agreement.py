"""The Agreement tab's report for a pairwise study: core.studies.pair_reports, its sections, its chart and its
exports, in place of the numeric report (whose decision panel, calibration and disagreements table apply to scores,
not to choices)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from core.studies import Study, User, write_exports
from core.studies.pair_reports import pair_report
from webapp.components import html_update as _html
from webapp.components import notice_update as _notice
from webapp.render import esc
from webapp.report_html import report_to_html
from webapp.report_pairwise import position_figure, render_pairwise

if TYPE_CHECKING:
    from core.studies import Studies
    from webapp.studies.agreement_tab import AgreementTab

NOT_APPLICABLE = ("The alt-test, judge vs people, calibration and the disagreements table compare scores; a "
                  "pairwise study's labels are choices, so its report is the one above.")
NO_ADJUDICATED = ("A pairwise study's report compares the judge with the human majority: choose Annotators as the "
                  "reference.")


def pairwise_updates(ag: AgreementTab, studies: Studies, actor: User, study: Study, judge_run: int | None,
                     reference: Any, export_root: Path, note: str | None) -> dict[Any, Any]:
    """The Agreement tab's updates for a pairwise study: the pairwise report, its position chart and the four
    exports (CSV, JSONL, report JSON, report HTML); `note` says which judge run is the judge."""
    if reference == "adjudicated":
        return {ag.message: _notice(NO_ADJUDICATED)}
    report = pair_report(studies, actor, study.id, judge_run)
    figure = position_figure(report)
    folder = Path(tempfile.mkdtemp(prefix=f"study-{study.id}-", dir=export_root))
    paths = write_exports(studies, actor, study.id, report, folder)
    paths.append(folder / f"study-{study.id}-report.html")
    paths[3].write_text(report_to_html(report, [], title=f"Agreement report: {study.name}"), encoding="utf-8")
    updates: dict[Any, Any] = {
        ag.message: _notice(note) if note else _html(""),
        ag.metrics: _html(render_pairwise(report)),
        ag.decision: _html(f'<p class="note">{esc(NOT_APPLICABLE)}</p>'),
        ag.charts[0]: gr.update(value=figure, visible=figure is not None),
    }
    for button, path in zip(ag.exports, paths, strict=True):
        updates[button] = gr.update(value=str(path), visible=True)
    return updates
