"""The Agreement tab (admins): a study's agreement report, its charts, the largest disagreements and the exports.
See webapp.studies.layout for who may do what.
"""

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from core.agreement import adjudicated_report, agreement_report
from core.agreement.alt_test import EPSILON
from core.agreement.calibration import TARGET
from core.errors import GliderError
from core.studies import Study, User, write_exports
from core.studies.publish import publish_study
from core.studies.report_context import report_context
from webapp import charts, render
from webapp.components import PRIVATE
from webapp.components import as_id as _as_id
from webapp.components import error_update as _error
from webapp.components import html_update as _html
from webapp.components import notice_update as _notice
from webapp.report_calibration import reliability_figure
from webapp.report_html import report_to_html
from webapp.studies.audit_panel import AuditHandlers, AuditPanel
from webapp.studies.decision_render import render_decision
from webapp.studies.layout import StudyPage, stored_view
from webapp.studies.pair_agreement import pairwise_updates
from webapp.studies.review_render import render_adjudicated_metrics
from webapp.studies.runs_panel import RunsHandlers, RunsPanel, judge_run_note, judgment_of

DISAGREEMENT_HEADERS = ["Item", "Human (mean)", "Model", "|Human \u2212 Model|", "Labels", "Preview"]
# What the report compares with: the annotators (humans vs the judge, as always), or the adjudicated labels.
REFERENCES = [("Annotators", "annotators"), ("Adjudicated labels", "adjudicated")]


@dataclass
class AgreementTab:
    """Admins: a study's agreement report, its charts, the largest disagreements and the exports."""

    tab: gr.Tab
    notice: gr.HTML
    body: gr.Column
    study: gr.Dropdown
    run: gr.Button
    message: gr.HTML
    metrics: gr.HTML
    notes: gr.HTML
    charts: list[gr.Plot]
    table: gr.Dataframe
    item: gr.HTML
    exports: list[gr.DownloadButton]
    shown: gr.State  # the study id of the report on screen
    reference: gr.Radio  # "annotators" or "adjudicated" (core.agreement.adjudicated_report)
    publish: "PublishPanel"
    epsilon: gr.Number  # the alt-test's cost-benefit margin
    target: gr.Number  # the agreement the auto-accept threshold aims at
    decision: gr.HTML  # alt-test, judge vs people, calibration (webapp.studies.decision_render)
    reliability: gr.Plot
    audit: AuditPanel  # the robustness audit (webapp.studies.audit_panel)
    runs: RunsPanel  # the "Judge run" picker and the "Compare judge runs" panel (webapp.studies.runs_panel)

    CHART_IDS = ("gl-agree-heatmap", "gl-agree-scatter", "gl-agree-distributions", "gl-agree-annotators")
    EXPORTS = (("Annotations CSV", "csv"), ("Annotations JSONL", "jsonl"), ("Report JSON", "json"),
               ("Report HTML", "html"))

    @classmethod
    def create_in(cls, tab: gr.Tab) -> "AgreementTab":
        notice = gr.HTML(elem_id="gl-agree-notice", visible=False)
        with gr.Column(elem_id="gl-agree-body") as body:
            with gr.Row(equal_height=True):
                study = gr.Dropdown(choices=[], label="Study", scale=4, elem_id="gl-agree-study")
                reference = gr.Radio(choices=REFERENCES, value="annotators", label="Reference", scale=2,
                                     elem_id="gl-agree-reference")
                judge_run = RunsPanel.judge_picker()
                run = gr.Button("Compute agreement", variant="primary", scale=1, elem_id="gl-agree-run")
            with gr.Row(equal_height=True):
                epsilon = gr.Number(value=EPSILON, minimum=0, maximum=0.99, step=0.05, label="Alt-test margin ε",
                                    info="how much less often the judge may be the better-aligned rater and still "
                                         "replace one: 0.2 expert annotators, 0.15 skilled, 0.1 crowd-workers",
                                    elem_id="gl-agree-epsilon")
                target = gr.Number(value=TARGET, minimum=0.01, maximum=0.99, step=0.01,
                                   label="Target agreement for auto-accept",
                                   info="a share (0.9 = 90%): the confidence above which the judge agrees with "
                                        "people at least this often, with 95% confidence",
                                   elem_id="gl-agree-target")
            message = gr.HTML(visible=False, elem_id="gl-agree-message")
            with gr.Row(elem_classes="gl-exports"):
                exports = [gr.DownloadButton(label, visible=False, size="sm", elem_id=f"gl-export-{suffix}")
                           for label, suffix in cls.EXPORTS]
            metrics = gr.HTML(visible=False, elem_id="gl-agree-metrics")
            decision = gr.HTML(visible=False, elem_id="gl-agree-decision")
            reliability = gr.Plot(show_label=False, visible=False, elem_id="gl-agree-reliability")
            notes = gr.HTML(visible=False, elem_id="gl-agree-notes")
            with gr.Row():
                heatmap = gr.Plot(show_label=False, visible=False, elem_id=cls.CHART_IDS[0])
                scatter = gr.Plot(show_label=False, visible=False, elem_id=cls.CHART_IDS[1])
            with gr.Row():
                distributions = gr.Plot(show_label=False, visible=False, elem_id=cls.CHART_IDS[2])
                annotators = gr.Plot(show_label=False, visible=False, elem_id=cls.CHART_IDS[3])
            table = gr.Dataframe(headers=DISAGREEMENT_HEADERS, datatype="str", interactive=False, wrap=True,
                                 max_height=320, label="Disagreements (largest first; click a row to see the item)",
                                 column_widths=["7%", "11%", "8%", "13%", "8%", "53%"], visible=False,
                                 elem_id="gl-agree-disagreements")
            item = gr.HTML(visible=False, elem_id="gl-agree-item")
            runs = RunsPanel.create(judge_run)
            publish = PublishPanel.create()
            audit = AuditPanel.create()
        shown = gr.State(None)
        return cls(tab, notice, body, study, run, message, metrics, notes,
                   [heatmap, scatter, distributions, annotators], table, item, exports, shown, reference, publish,
                   epsilon, target, decision, reliability, audit, runs)

    @property
    def outputs(self) -> list[Any]:
        return [self.notice, self.message, self.metrics, self.decision, self.reliability, self.notes, *self.charts,
                self.table, self.item, *self.exports, self.shown]


@dataclass
class PublishPanel:
    """Publish the chosen study to a Hugging Face dataset repo (core.studies.publish)."""

    repo: gr.Textbox
    private: gr.Checkbox
    real_names: gr.Checkbox
    button: gr.Button
    message: gr.HTML

    @classmethod
    def create(cls) -> "PublishPanel":
        with gr.Accordion("Publish to the Hub", open=False, elem_id="gl-publish"):
            gr.Markdown("Upload the study as a dataset repo: Parquet tables of items, labels (with their edits), "
                        "every judge run's judgments, adjudications, the agreement report, the newest robustness audit "
                        "and a dataset card. "
                        "Publishing again replaces the files in a new commit. Uses your Hugging Face sign-in on a "
                        "Space, `HF_TOKEN` elsewhere.")
            with gr.Row(equal_height=True):
                repo = gr.Textbox(label="Dataset repo", placeholder="owner/name", scale=3, elem_id="gl-publish-repo")
                private = gr.Checkbox(label="Private", value=True, scale=1, elem_id="gl-publish-private")
                real_names = gr.Checkbox(label="Real usernames (default: annotator-1, ...)", value=False, scale=2,
                                         elem_id="gl-publish-real-names")
                button = gr.Button("Publish", scale=1, elem_id="gl-publish-run")
            message = gr.HTML(visible=False, elem_id="gl-publish-message")
        return cls(repo, private, real_names, button, message)


# --- callbacks -------------------------------------------------------------------------------------


@dataclass
class AgreementHandlers(StudyPage):
    """The Agreement tab's callbacks."""

    export_root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="glider-exports-")))

    def on_report(self, study_id: Any, reference: Any = "annotators", epsilon: Any = None, target: Any = None,
                  request: gr.Request | None = None, judge_run: Any = None) -> dict[Any, Any]:
        """Compute the study's agreement report, draw its charts and prepare the export files.

        With reference "adjudicated": the judge and each annotator vs the adjudicated labels, as tables.
        `epsilon` (the alt-test's margin) and `target` (the auto-accept threshold's) are the report's: empty
        boxes mean their defaults; a value out of range is the report's own message. `judge_run`: whose verdicts
        are the model's (a judge run's id, core.studies.runs); empty: the study's first run.
        """
        ag = self.ui.agreement
        cleared: dict[Any, Any] = {
            ag.metrics: _html(""), ag.notes: _html(""), ag.item: _html(""), ag.table: gr.update(visible=False),
            ag.decision: _html(""), ag.reliability: gr.update(value=None, visible=False),
            **{plot: gr.update(value=None, visible=False) for plot in ag.charts},
            **{button: gr.update(visible=False) for button in ag.exports},
        }
        wanted = _as_id(study_id)
        try:
            actor = self.actor(request)
            if wanted is None:
                return {**cleared, ag.message: _error("Choose a study first.")}
            study = self._studies.get_study(actor, wanted)
            rows = self._studies.ratings(actor, wanted, run=_as_id(judge_run))
            note = judge_run_note(self._studies.runs.list_runs(actor, wanted), judge_run)
            if study.pairwise:  # choices, not scores: the pairwise report (webapp.studies.pair_agreement)
                return {**cleared, **pairwise_updates(ag, self._studies, actor, study, _as_id(judge_run), reference,
                                                      self.export_root, note), ag.shown: wanted}
            if not rows:
                return {**cleared, ag.message: _notice("Nobody has labelled an item of this study yet."),
                        ag.shown: wanted}
            if reference == "adjudicated":
                return {**cleared, **self._adjudicated(actor, study, rows, _as_id(judge_run)), ag.shown: wanted}
            report = agreement_report(rows, study.scale, blind=study.blind,
                                      epsilon=None if epsilon is None else float(epsilon),
                                      target=TARGET if target is None else float(target))
            # Which judge run is the model, and the study's newest audit: said in the JSON and HTML downloads.
            report = {**report, **report_context(self.services.store, actor, wanted, _as_id(judge_run))}
            figures = charts.report_figures(report)
            reliability = reliability_figure(report["calibration"])
            exports = self._write_exports(actor, study, report, figures, _as_id(judge_run))
        except Exception as error:
            return {**cleared, ag.message: _error(error)}
        updates: dict[Any, Any] = {
            **cleared,
            ag.message: _notice(note) if note else _html(""),
            ag.metrics: _html(render.render_agreement_metrics(report)),
            ag.decision: _html(render_decision(report)),
            ag.reliability: gr.update(value=reliability, visible=reliability is not None),
            ag.notes: _html(render.render_report_notes(_report_notes(report), report.get("excluded"))),
            ag.table: gr.update(value=self._disagreement_table(actor, report.get("disagreements") or []),
                                visible=True),
            ag.shown: wanted,
        }
        for plot, figure in zip(ag.charts, figures.values(), strict=False):
            updates[plot] = gr.update(value=figure, visible=figure is not None)
        for button, path in zip(ag.exports, exports, strict=True):
            updates[button] = gr.update(value=str(path), visible=True)
        return updates

    def _adjudicated(self, actor: User, study: Study, rows: list[dict[str, Any]],
                     judge_run: int | None = None) -> dict[Any, Any]:
        """The report with the adjudicated labels as the reference, and its CSV, JSONL and JSON exports."""
        ag = self.ui.agreement
        report = adjudicated_report(rows, study.scale, blind=study.blind)
        folder = Path(tempfile.mkdtemp(prefix=f"study-{study.id}-", dir=self.export_root))
        paths = write_exports(self._studies, actor, study.id, report, folder, run=judge_run)
        updates: dict[Any, Any] = {ag.message: _html(""), ag.metrics: _html(render_adjudicated_metrics(report)),
                                   ag.notes: _html(render.render_report_notes([report["note"]], None))}
        for button, path in zip(ag.exports, paths, strict=False):  # no HTML report (its charts are the others')
            updates[button] = gr.update(value=str(path), visible=True)
        return updates

    def _disagreement_table(self, actor: User, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """The report's disagreements (largest |human mean - model| first) with a preview of each item."""
        table = []
        for row in rows:
            preview = ""
            try:
                item = self._studies.get_item(actor, int(row["item_id"]))
                preview = " \u00b7 ".join(text for text in item.fields.values() if text)[:160]
            except GliderError:
                pass
            if row.get("external_id") is not None:  # the user's own id first: it is how they know the item
                preview = f"[{row['external_id']}] {preview}"
            table.append([str(row["item_id"]), f"{row['human_mean']:.2f}", f"{row['model_score']:g}",
                          f"{abs(row['diff']):.2f}", str(row["n_annotators"]), preview])
        return pd.DataFrame(table, columns=DISAGREEMENT_HEADERS)

    def _write_exports(self, actor: User, study: Study, report: Mapping[str, Any],
                       figures: Mapping[str, Any], judge_run: int | None = None) -> list[Path]:
        """The four download files, in a fresh folder per report (Gradio serves them from its cache); the model
        columns of the CSV / JSONL are judge run `judge_run`'s (None: the first run's)."""
        folder = Path(tempfile.mkdtemp(prefix=f"study-{study.id}-", dir=self.export_root))
        paths = write_exports(self._studies, actor, study.id, report, folder, run=judge_run)  # CSV, JSONL, JSON
        paths.append(folder / f"study-{study.id}-report.html")  # the charts are the web layer's
        html = report_to_html(report, dict(figures), title=f"Agreement report: {study.name}")
        paths[3].write_text(html, encoding="utf-8")
        return paths

    def on_publish(self, study_id: Any, repo: Any, private: Any, real_names: Any, request: gr.Request,
                   oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:
        """Publish the study to the dataset repo (admins); the token: the user's Hugging Face sign-in, else HF_TOKEN."""
        panel = self.ui.agreement.publish
        wanted = _as_id(study_id)
        try:
            actor = self.actor(request)
            if wanted is None:
                return {panel.message: _error("Choose a study first.")}
            study = self._studies.get_study(actor, wanted)

            def html(report: Mapping[str, Any]) -> str:  # the charts are the web layer's
                figures = charts.report_figures(dict(report))
                return report_to_html(dict(report), dict(figures), title=f"Agreement report: {study.name}")

            published, _ = publish_study(self.services.store, actor, wanted, str(repo or ""), private=bool(private),
                                         real_names=bool(real_names), report_html=html,
                                         token=oauth_token.token if oauth_token is not None else None)
        except Exception as error:
            return {panel.message: _error(error)}
        return {panel.message: _notice(f"Published to {published.url} (commit {published.commit_oid[:12]}).")}

    def on_disagreement_select(self, shown: Any, event: gr.SelectData, request: gr.Request,
                               judge_run: Any = None) -> dict[Any, Any]:
        """Show a disagreement's item with the model's highlights, its verdict (the chosen judge run's) and the
        human labels."""
        ag = self.ui.agreement
        row = event.row_value or []
        item_id = _as_id(row[0] if row else None)
        if item_id is None:
            return gr.skip()  # nothing to change ({} would be read as a value)
        try:
            actor = self.actor(request)
            item = self._studies.get_item(actor, item_id)
            labels = [(str(r["annotator"]), _shown_score(r), str(r.get("comment") or ""))
                      for r in self._studies.export_rows(actor, item.study_id) if int(r["item_id"]) == item_id]
            judgment_id = judgment_of(self._studies, actor, item, judge_run)
        except Exception as error:
            return {ag.item: _error(error)}
        view = stored_view(self.services, judgment_id)
        verdict = (render.render_score_card(view) + render.render_reasoning(view.reasoning) if view is not None
                   else render.render_hint("The model has not graded this item."))
        body = (render.render_item_header(item.id, item.external_id)
                + render.render_label_fields(item.fields, (), view.spans if view is not None else ())
                + render.render_human_labels(labels) + verdict)
        return {ag.item: _html(f'<div class="gl-agree-item">{body}</div>')}

    # --- wiring -----------------------------------------------------------------------------------------

    def wire(self, demo: gr.Blocks) -> None:
        """Attach the Agreement tab's events: all private."""
        ag = self.ui.agreement

        def on(trigger: Any, fn: Callable[..., Any], inputs: Any, outputs: Any, **options: Any) -> None:
            trigger(fn, inputs, outputs, api_visibility=PRIVATE, **options)

        on(ag.run.click, self.on_report, [ag.study, ag.reference, ag.epsilon, ag.target, ag.runs.judge], ag.outputs)
        on(ag.table.select, self.on_disagreement_select, [ag.shown, ag.runs.judge], ag.item)
        RunsHandlers(self.services, self.ui).wire(demo)
        panel = ag.publish
        on(panel.button.click, self.on_publish, [ag.study, panel.repo, panel.private, panel.real_names], panel.message)
        AuditHandlers(self.services, self.ui).wire(demo)


def _shown_score(row: Mapping[str, Any]) -> int | str:
    """A label's score for the disagreement view: in a blind study, also the score before the reveal (the
    one the report's headline uses) when it differs from the current one."""
    before, now = row.get("score_before_reveal"), row["score"]
    if row.get("blind") and before is not None and before != now:
        return f"{before} before the reveal, {now} now"
    return now


def _report_notes(report: Mapping[str, Any]) -> list[str]:
    """The report's own explanations of how ratings were pooled and what was left out (which scores the
    headline uses is said above the metrics, by render.render_agreement_metrics)."""
    notes = [str(report[key]) for key in ("pooling", "excluded_note") if isinstance(report.get(key), str)]
    spans = report.get("spans")
    if isinstance(spans, Mapping) and spans.get("n_without_evidence"):
        notes.append(str(spans["left_out_note"]))
    return notes

