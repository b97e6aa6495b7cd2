"""The History tab: the stored judgments in a table, one reopened below it, its inputs sent back to Grade.

With sign-in on, History needs the grade right (webapp.access) and hides the model's verdict on a
blind-study item the user has not labelled yet.

No `from __future__ import annotations` here: Gradio reads the callbacks' `gr.Request` type hints at runtime.
"""

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from core.studies import PermissionDenied
from webapp import access, render
from webapp.components import PRIVATE
from webapp.components import html_update as _html
from webapp.grade_tab import GradeTab, ResultPanel
from webapp.services import Services
from webapp.view_models import SLOTS, JudgmentView, failure_message, format_time

HISTORY_HEADERS = ["ID", "Time", "Score", "Status", "Model", "Preview"]
HISTORY_LIMIT = 200


@dataclass
class HistoryTab:
    """The History tab: stored judgments, one reopened below the table."""

    tab: gr.Tab
    refresh: gr.Button
    open_id: gr.Number
    open_button: gr.Button
    edit_button: gr.Button
    table: gr.Dataframe
    message: gr.HTML
    selected: gr.State  # the judgment id this user has open
    panel: ResultPanel

    @classmethod
    def create(cls, tab: gr.Tab) -> "HistoryTab":
        """Build the components inside the current Tab."""
        with gr.Row(equal_height=True):
            refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id="gl-refresh")
            open_id = gr.Number(label="Judgment id", precision=0, minimum=1, scale=1, elem_id="gl-open-id")
            open_button = gr.Button("Open", scale=0, min_width=100, elem_id="gl-open")
            edit_button = gr.Button("Edit in Grade tab", interactive=False, scale=0, min_width=180, elem_id="gl-edit")
        # datatype "str": cells are shown as text, so a preview holding markup stays inert.
        table = gr.Dataframe(headers=HISTORY_HEADERS, datatype="str", interactive=False, wrap=True, max_height=360,
                             column_widths=["6%", "16%", "7%", "9%", "20%", "42%"], elem_id="gl-history")
        message = gr.HTML(elem_id="gl-history-message", visible=False)
        selected = gr.State(None)
        panel = ResultPanel.create("gl-history-result")
        return cls(tab, refresh, open_id, open_button, edit_button, table, message, selected, panel)


class HistoryHandlers:
    """The History tab's callbacks; "Edit in Grade tab" fills the Grade tab's form and switches to it."""

    def __init__(self, services: Services, tabs: gr.Tabs, history: HistoryTab, grade: GradeTab) -> None:
        self.services = services
        self.tabs = tabs
        self.history = history
        self.grade = grade

    def _history_refused(self, request: gr.Request | None, judgment_id: int | None = None) -> str | None:
        """Why this user may not browse stored judgments (or open this one), or None when they may.

        With sign-in on, History needs the grade right (webapp.access), and never shows the model's verdict
        on an item of a blind study that the user has not labelled yet.
        """
        try:
            if judgment_id is not None and judgment_id not in access.visible_judgments(self.services, request,
                                                                                          [judgment_id]):
                return (f"Judgment #{judgment_id} is the verdict on an item of a blind study that you have not "
                        "labelled yet: it stays hidden until you have labelled the item in the Label tab.")
            access.grade_guard(self.services, request)
        except PermissionDenied as error:
            return str(error)
        return None

    def on_refresh(self, request: gr.Request | None = None) -> dict[Any, Any]:
        h = self.history
        try:
            refused = self._history_refused(request)
            if refused:
                return {h.message: _html(render.render_error(refused))}
            summaries = self.services.store.list_judgments(limit=HISTORY_LIMIT)
            shown = access.visible_judgments(self.services, request, [s.id for s in summaries])
            summaries = [s for s in summaries if s.id in shown]
        except Exception as error:
            return {h.message: _html(render.render_error(failure_message(error)))}
        rows = [
            [str(s.id), format_time(s.created_at), "\u2014" if s.score is None else str(s.score), s.status,
             s.model_id, s.preview]
            for s in summaries
        ]
        return {h.table: pd.DataFrame(rows, columns=HISTORY_HEADERS), h.message: _html("")}

    def on_open(self, judgment_id: Any, request: gr.Request | None = None) -> dict[Any, Any]:
        h = self.history
        try:
            wanted = int(judgment_id)
        except (TypeError, ValueError):
            return {h.message: _html(render.render_error("Enter a judgment id (a whole number)."))}
        try:
            refused = self._history_refused(request, wanted)
            if refused:
                return {h.message: _html(render.render_error(refused))}
            stored = self.services.store.get_judgment(wanted)
        except Exception as error:
            return {h.message: _html(render.render_error(failure_message(error)))}
        if stored is None:
            return {h.message: _html(render.render_error(f"There is no judgment #{wanted}.")),
                    h.selected: None, h.edit_button: gr.update(interactive=False), **h.panel.hide()}
        return {h.message: _html(""), h.selected: wanted, h.open_id: wanted,
                h.edit_button: gr.update(interactive=True), **h.panel.show(JudgmentView.from_stored(stored))}

    def on_select(self, event: gr.SelectData, request: gr.Request | None = None) -> dict[Any, Any]:
        row = event.row_value or []
        return self.on_open(row[0] if row else None, request)

    def on_edit(self, judgment_id: int | None, request: gr.Request | None = None) -> dict[Any, Any]:
        """Copy an opened judgment's inputs into the Grade form and switch to it."""
        g = self.grade
        try:
            wanted = int(judgment_id) if judgment_id is not None else None
            refused = self._history_refused(request, wanted)
            if refused:
                return {self.history.message: _html(render.render_error(refused))}
            stored = self.services.store.get_judgment(wanted) if wanted is not None else None
        except Exception as error:
            return {self.history.message: _html(render.render_error(failure_message(error)))}
        if stored is None:
            return {self.history.message: _html(render.render_error("Open a judgment first."))}
        note = f"Loaded the inputs of judgment #{stored.id}; edit them and press Grade."
        if len(stored.fields) > SLOTS:
            note += f" It had {len(stored.fields)} fields; only {SLOTS} fit in the form."
        return {**g.fill(dict(stored.fields), stored.pass_criteria, stored.rubric),
                self.tabs: gr.Tabs(selected="grade"), g.message: _html(render.render_notice(note)), **g.panel.hide()}

    def wire(self, demo: gr.Blocks) -> None:
        """Attach the History tab's events (all private)."""
        g, h = self.grade, self.history
        opened = [h.message, h.selected, h.open_id, h.edit_button, *h.panel.outputs]
        gr.on([h.refresh.click, h.tab.select, demo.load], self.on_refresh, None, [h.table, h.message],
              api_visibility=PRIVATE)
        h.open_button.click(self.on_open, h.open_id, opened, api_visibility=PRIVATE)
        h.open_id.submit(self.on_open, h.open_id, opened, api_visibility=PRIVATE)
        h.table.select(self.on_select, None, opened, api_visibility=PRIVATE)
        h.edit_button.click(self.on_edit, h.selected,
                            [self.tabs, g.message, h.message, g.form.pass_criteria, g.form.rubric, *g.tags, *g.texts,
                             *g.panel.outputs],
                            api_visibility=PRIVATE)
