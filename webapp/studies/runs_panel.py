"""The Agreement tab's judge runs (admins): the "Judge run" picker (whose verdicts are the model's in the
human-vs-model numbers; default the study's first run) and the "Compare judge runs" panel: judge vs judge on
two runs (core.studies.runs.Runs.compare), the items whose score changed, and a changed item with both verdicts
one click away. Every event here is private; who asks comes from the signed-in session (webapp.studies.layout).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from core.errors import GliderError
from core.studies import Item, Studies, User
from core.studies.runs import JudgeRun
from webapp.components import PRIVATE
from webapp.components import as_id as _as_id
from webapp.components import error_update as _error
from webapp.components import html_update as _html
from webapp.components import notice_update as _notice
from webapp.studies.layout import StudyPage, stored_view
from webapp.studies.runs_render import render_run_comparison, render_two_verdicts

CHANGED_HEADERS = ["Item", "Run A", "Run B", "Change", "Preview"]


@dataclass
class RunsPanel:
    """The judge-run picker of the Agreement tab and its "Compare judge runs" panel."""

    judge: gr.Dropdown  # the run whose verdicts the report compares the people with
    run_a: gr.Dropdown
    run_b: gr.Dropdown
    compare: gr.Button
    message: gr.HTML
    metrics: gr.HTML
    changed: gr.Dataframe
    item: gr.HTML
    shown: gr.State  # (study id, run A id, run B id) of the comparison on screen

    @staticmethod
    def judge_picker() -> gr.Dropdown:
        """The "Judge run" picker, placed by the Agreement tab beside its study picker."""
        return gr.Dropdown(choices=[], label="Judge run", scale=3, elem_id="gl-agree-judge-run",
                           info="whose verdicts are the model's in the numbers below (default: the first run)")

    @classmethod
    def create(cls, judge: gr.Dropdown) -> "RunsPanel":
        with gr.Accordion("Compare judge runs", open=False, elem_id="gl-runs"):
            gr.Markdown("Each judge run is one judge configuration (back-end, model, quantization, prompt, decoding) "
                        "that grades every item once. Compare two runs as two annotators: how often the score "
                        "flipped, by how much, and Cohen's kappa, with 95% intervals over items.")
            with gr.Row(equal_height=True):
                run_a = gr.Dropdown(choices=[], label="Run A", scale=3, elem_id="gl-runs-a")
                run_b = gr.Dropdown(choices=[], label="Run B", scale=3, elem_id="gl-runs-b")
                compare = gr.Button("Compare runs", scale=1, elem_id="gl-runs-compare")
            message = gr.HTML(visible=False, elem_id="gl-runs-message")
            metrics = gr.HTML(visible=False, elem_id="gl-runs-metrics")
            changed = gr.Dataframe(headers=CHANGED_HEADERS, datatype="str", interactive=False, wrap=True,
                                   max_height=320, visible=False, elem_id="gl-runs-changed",
                                   label="Changed items (largest change first; click a row to see both verdicts)",
                                   column_widths=["8%", "10%", "10%", "10%", "62%"])
            item = gr.HTML(visible=False, elem_id="gl-runs-item")
        return cls(judge, run_a, run_b, compare, message, metrics, changed, item, gr.State(None))


def run_choices(runs: Sequence[JudgeRun]) -> list[tuple[str, int]]:
    return [(run.label, run.id) for run in runs]


def judge_run_note(runs: Sequence[JudgeRun], judge_run: Any) -> str:
    """A line saying which run is the judge of a report (and of its exports' model columns), when it is not the
    first; empty otherwise."""
    chosen = next((run for run in runs if run.id == _as_id(judge_run)), None)
    if chosen is None or chosen.is_default:
        return ""
    return (f"The model's scores here, and in the downloads' model columns, are judge run \u201c{chosen.name}\u201d's "
            f"(#{chosen.id}).")


def judgment_of(studies: Studies, actor: User, item: Item, judge_run: Any) -> int | None:
    """The item's judgment in the chosen judge run (None: the first run's, items.judgment_id)."""
    chosen = _as_id(judge_run)
    if chosen is None:
        return item.judgment_id
    return studies.runs.judgments(actor, item.study_id, chosen).get(item.id)


@dataclass
class RunsHandlers(StudyPage):
    """The judge-run picker's and the Compare panel's callbacks."""

    @property
    def panel(self) -> RunsPanel:
        return self.ui.agreement.runs

    def on_runs_study(self, study_id: Any, judge: Any, run_a: Any, run_b: Any,
                      request: gr.Request) -> dict[Any, Any]:
        """Fill the run pickers with the study's runs, keeping the chosen ones that are still there (the judge:
        the first run; A: the first; B: the last), and clear the comparison on screen."""
        panel = self.panel
        cleared: dict[Any, Any] = {panel.message: _html(""), panel.metrics: _html(""), panel.item: _html(""),
                                   panel.changed: gr.update(visible=False), panel.shown: None}
        empty = {picker: gr.update(choices=[], value=None) for picker in (panel.judge, panel.run_a, panel.run_b)}
        wanted = _as_id(study_id)
        if wanted is None:
            return {**cleared, **empty}
        try:
            runs = self._studies.runs.list_runs(self.actor(request), wanted)
        except Exception as error:
            return {**cleared, **empty, panel.message: _error(error)}
        ids = [run.id for run in runs]

        def keep(value: Any, default: int | None) -> int | None:
            return value if _as_id(value) in ids else default

        choices = run_choices(runs)
        first, last = (ids[0], ids[-1]) if ids else (None, None)
        return {**cleared,
                panel.judge: gr.update(choices=choices, value=keep(_as_id(judge), first)),
                panel.run_a: gr.update(choices=choices, value=keep(_as_id(run_a), first)),
                panel.run_b: gr.update(choices=choices, value=keep(_as_id(run_b), last))}

    def on_compare_runs(self, study_id: Any, run_a: Any, run_b: Any, request: gr.Request) -> dict[Any, Any]:
        """Judge vs judge on the two chosen runs: the metrics with their intervals and the changed items."""
        panel = self.panel
        cleared: dict[Any, Any] = {panel.metrics: _html(""), panel.item: _html(""),
                                   panel.changed: gr.update(visible=False), panel.shown: None}
        wanted, first, second = _as_id(study_id), _as_id(run_a), _as_id(run_b)
        if wanted is None:
            return {**cleared, panel.message: _error("Choose a study first.")}
        if first is None or second is None:
            return {**cleared, panel.message: _error("Choose two judge runs to compare (grade the study with the "
                                                     "judge to make a run).")}
        try:
            actor = self.actor(request)
            report = self._studies.runs.compare(actor, wanted, first, second)
            table = self._changed_table(actor, report.get("changed") or [])
        except Exception as error:
            return {**cleared, panel.message: _error(error)}
        same = _notice("Run A and run B are the same run.") if first == second else _html("")
        return {**cleared, panel.message: same, panel.metrics: _html(render_run_comparison(report)),
                panel.changed: gr.update(value=table, visible=bool(len(table))), panel.shown: [wanted, first, second]}

    def _changed_table(self, actor: User, changed: Sequence[dict[str, Any]]) -> pd.DataFrame:
        """The changed items, largest change first, each with a preview of its fields."""
        rows = []
        for entry in changed:
            preview = ""
            try:
                item = self._studies.get_item(actor, int(entry["item_id"]))
                preview = " \u00b7 ".join(text for text in item.fields.values() if text)[:160]
            except GliderError:
                pass
            if entry.get("external_id") is not None:
                preview = f"[{entry['external_id']}] {preview}"
            rows.append([str(entry["item_id"]), str(entry["score_a"]), str(entry["score_b"]), f"{entry['diff']:+d}",
                         preview])
        return pd.DataFrame(rows, columns=CHANGED_HEADERS)

    def on_changed_run_item(self, shown: Any, event: gr.SelectData, request: gr.Request) -> dict[Any, Any]:
        """Show a changed item with both runs' verdicts and the human labels."""
        panel = self.panel
        row = event.row_value or []
        item_id = _as_id(row[0] if row else None)
        try:
            study_id, run_a, run_b = (int(value) for value in shown)
        except (TypeError, ValueError):  # no comparison on screen
            return gr.skip()
        if item_id is None:
            return gr.skip()  # nothing to change ({} would be read as a value)
        try:
            actor = self.actor(request)
            item = self._studies.get_item(actor, item_id)
            if item.study_id != study_id:
                raise GliderError(f"Item {item_id} is not in this study.")
            labels = [(str(r["annotator"]), r["score"], str(r.get("comment") or ""))
                      for r in self._studies.export_rows(actor, study_id) if int(r["item_id"]) == item_id]
            verdicts = []
            for letter, run_id in (("A", run_a), ("B", run_b)):
                run = self._studies.runs.get(actor, study_id, run_id)
                judgment = self._studies.runs.judgments(actor, study_id, run_id).get(item_id)
                verdicts.append((f"Run {letter}: {run.label}", stored_view(self.services, judgment)))
        except Exception as error:
            return {panel.item: _error(error)}
        return {panel.item: _html(render_two_verdicts(item.id, item.external_id, item.fields, labels, verdicts))}

    def wire(self, demo: gr.Blocks) -> None:
        """Attach the run pickers' and the Compare panel's events: all private."""
        ag, panel = self.ui.agreement, self.panel

        def on(trigger: Any, fn: Callable[..., Any], inputs: Any, outputs: Any, **options: Any) -> None:
            trigger(fn, inputs, outputs, api_visibility=PRIVATE, **options)

        gr.on([ag.study.change, ag.tab.select], self.on_runs_study,
              [ag.study, panel.judge, panel.run_a, panel.run_b],
              [panel.judge, panel.run_a, panel.run_b, panel.message, panel.metrics, panel.changed, panel.item,
               panel.shown], api_visibility=PRIVATE)
        on(panel.compare.click, self.on_compare_runs, [ag.study, panel.run_a, panel.run_b],
           [panel.message, panel.metrics, panel.changed, panel.item, panel.shown])
        on(panel.changed.select, self.on_changed_run_item, panel.shown, panel.item)
