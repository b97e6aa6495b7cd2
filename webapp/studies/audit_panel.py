"""The Agreement tab's Audit panel (admins): re-grade a study's items under perturbations (core.audit) and show
the summary table and the flip-rate chart. Its one event is private and runs in the judge's queue.
"""

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from core.audit.judge_runs import audit_study
from core.audit.perturbations import OTHER_JUDGE, PERTURBATIONS, TEXT_DEFAULTS, default_other_judge, resolve
from core.errors import InputError
from webapp.components import JUDGE_CONCURRENCY_ID, PRIVATE
from webapp.components import as_id as _as_id
from webapp.components import error_update as _error
from webapp.components import html_update as _html
from webapp.components import notice_update as _notice
from webapp.report_audit import audit_figure, render_audit
from webapp.studies.layout import StudyPage

N_RESAMPLES = 1000


@dataclass
class AuditPanel:
    """Perturbations to apply, the sample, Run, and the result: message, table, chart and a JSON download."""

    perturbations: list[gr.Checkbox]  # one per core.audit.perturbations.PERTURBATIONS entry, in its order
    sample: gr.Number
    seed: gr.Number
    button: gr.Button
    message: gr.HTML
    table: gr.HTML
    chart: gr.Plot
    download: gr.DownloadButton

    @classmethod
    def create(cls) -> "AuditPanel":
        with gr.Accordion("Robustness audit", open=False, elem_id="gl-audit"):
            gr.Markdown("Grade the study's items again, as they are and under changes that should not move the "
                        "verdict, and see how often the score flips. Every grade is saved; none replaces an item's "
                        "own judgment. It takes one full grading per perturbation, plus one unperturbed. Each run is "
                        "kept as a judge run of the study, and the newest audit's summary goes into the study's HTML "
                        "report and its published dataset.")
            # One checkbox each (a CheckboxGroup's preprocessing fails on a missing value with a bare TypeError).
            with gr.Column(elem_id="gl-audit-perturbations"):
                perturbations = [gr.Checkbox(value=name in TEXT_DEFAULTS, label=f"{name}: {p.description}",
                                             elem_id=f"gl-audit-{name}") for name, p in PERTURBATIONS.items()]
            with gr.Row(equal_height=True):
                sample = gr.Number(value=None, minimum=1, precision=0, label="Random sample of N items (empty: all)",
                                   elem_id="gl-audit-sample")
                seed = gr.Number(value=0, precision=0, label="Seed", elem_id="gl-audit-seed")
                button = gr.Button("Run the audit", variant="primary", elem_id="gl-audit-run")
            message = gr.HTML(visible=False, elem_id="gl-audit-message")
            table = gr.HTML(visible=False, elem_id="gl-audit-table")
            chart = gr.Plot(show_label=False, visible=False, elem_id="gl-audit-chart")
            download = gr.DownloadButton("Audit JSON", visible=False, size="sm", elem_id="gl-audit-json")
        return cls(perturbations, sample, seed, button, message, table, chart, download)


@dataclass
class AuditHandlers(StudyPage):
    """The Audit panel's callback."""

    def on_audit(self, request: gr.Request, study_id: Any, sample: Any, seed: Any, *checked: Any) -> dict[Any, Any]:
        """Run core.audit.runner.run_audit with the app's judge; show the table and the chart.

        `checked`: one flag per perturbation, in core.audit.perturbations.PERTURBATIONS' order (the request comes
        first: Gradio hands it in before the inputs, which end in a variable number of flags).
        """
        panel = self.ui.agreement.audit
        cleared: dict[Any, Any] = {panel.table: _html(""), panel.chart: gr.update(value=None, visible=False),
                                   panel.download: gr.update(visible=False)}
        wanted = _as_id(study_id)
        try:
            actor = self.actor(request)
            if wanted is None:
                return {**cleared, panel.message: _error("Choose a study first.")}
            chosen = [name for name, on in zip(PERTURBATIONS, checked, strict=False) if on]
            perturbations = resolve(chosen, self._other_judge() if OTHER_JUDGE in chosen else None)
            judge = self.services.judge
            if judge is None:
                reason = self.services.judge_error or "The judge is still loading; try again in a moment."
                return {**cleared, panel.message: _error(reason)}
            result, kept = audit_study(self._studies, actor, wanted, judge, self.services.store, perturbations,
                                       sample=None if sample in (None, "") else int(sample),
                                       seed=0 if seed in (None, "") else int(seed), n_resamples=N_RESAMPLES)
        except Exception as error:
            return {**cleared, panel.message: _error(error)}
        figure = audit_figure(result.block)
        path = Path(tempfile.mkdtemp(prefix=f"audit-{result.study_id}-")) / f"study-{result.study_id}-audit.json"
        path.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        return {
            panel.message: _notice(f"Audited {result.sample['note']} in {result.seconds:.1f} s."),
            panel.table: _html(render_audit(kept.block())),
            panel.chart: gr.update(value=figure, visible=figure is not None),
            panel.download: gr.update(value=str(path), visible=True),
        }

    def _other_judge(self) -> Any:
        """The other-judge perturbation's judge: the other quantization of the app's own transformers judge."""
        identity: Mapping[str, Any] | None = self.services.judge_identity
        if not identity:
            raise InputError("The other-judge check needs to know how the app's judge was built; run it with "
                             "`python -m core audit --perturb other-judge --other-...` instead.")
        options = {key: value for key, value in identity.items() if key != "backend"}
        return default_other_judge(str(identity["backend"]), options)

    def wire(self, demo: gr.Blocks) -> None:
        """The Run button: private, in the judge's queue (one judge-using event at a time)."""
        ag = self.ui.agreement
        panel = ag.audit
        panel.button.click(self.on_audit, [ag.study, panel.sample, panel.seed, *panel.perturbations],
                           [panel.message, panel.table, panel.chart, panel.download], api_visibility=PRIVATE,
                           concurrency_id=JUDGE_CONCURRENCY_ID, concurrency_limit=1)
