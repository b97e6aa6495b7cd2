"""The human-agreement tabs: Studies (admins), Label (annotators and admins), Agreement (admins).

One module per tab (studies_tab, label_tab, agreement_tab), each with its components and its handlers on
the shared base in layout (who is asking, the study pickers). `StudyHandlers` adds the page-load event that
says who is signed in, and wires the three tabs.
"""

from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from webapp import render
from webapp.components import PRIVATE, Unavailable
from webapp.components import error_update as _error
from webapp.components import html_update as _html
from webapp.components import notice_update as _notice
from webapp.studies.agreement_tab import DISAGREEMENT_HEADERS, AgreementHandlers, AgreementTab
from webapp.studies.label_tab import (
    LABEL_CONCURRENCY_ID,
    LABEL_CONCURRENCY_LIMIT,
    LABEL_KEYS_JS,
    MARK_SELECTION_JS,
    MY_LABEL_HEADERS,
    Cursor,
    LabelHandlers,
    LabelTab,
)
from webapp.studies.layout import StudyPage, StudyWidgets
from webapp.studies.studies_tab import STUDY_HEADERS, AddToStudy, StudiesHandlers, StudiesTab

__all__ = [
    "DISAGREEMENT_HEADERS", "LABEL_CONCURRENCY_ID", "LABEL_CONCURRENCY_LIMIT", "LABEL_KEYS_JS", "MARK_SELECTION_JS",
    "MY_LABEL_HEADERS", "STUDY_HEADERS", "AddToStudy", "AgreementHandlers", "AgreementTab", "Cursor", "LabelHandlers",
    "LabelTab", "StudiesHandlers", "StudiesTab", "StudyHandlers", "StudyWidgets", "Unavailable",
]


@dataclass
class StudyHandlers(StudyPage):
    """The page-load event of the study tabs, and the wiring of each tab's handlers."""

    studies_tab: StudiesHandlers = field(init=False)
    label_tab: LabelHandlers = field(init=False)
    agreement_tab: AgreementHandlers = field(init=False)

    def __post_init__(self) -> None:
        self.studies_tab = StudiesHandlers(self.services, self.ui)
        self.label_tab = LabelHandlers(self.services, self.ui)
        self.agreement_tab = AgreementHandlers(self.services, self.ui)

    def on_session(self, request: gr.Request) -> dict[Any, Any]:
        """On page load: who is signed in, what each study tab offers them, and the study pickers.

        The tabs a role cannot use are hidden from its tab bar by webapp.access (Gradio 6.31 ignores visibility
        updates of a gr.Tab); their content is also replaced by a notice, and core refuses the calls anyway.
        """
        ui = self.ui
        actor, problem = self._optional_actor(request)
        admin = actor is not None and actor.is_admin
        updates: dict[Any, Any] = {
            ui.user_line: _html(render.render_signed_in(actor.username, actor.role) if actor else ""),
            ui.logout: gr.update(visible=self.services.auth_enabled and self.services.hub is None),  # hub: gl-login
            ui.add.column: gr.update(visible=admin),
            ui.studies.body: gr.update(visible=admin),
            ui.agreement.body: gr.update(visible=admin),
        }
        for notice in (ui.studies.notice, ui.label.notice, ui.agreement.notice):
            updates[notice] = _error(problem) if problem else _html("")
        if actor is not None and not admin:
            updates[ui.studies.notice] = _notice("Studies are set up by admins. Label items in the Label tab.")
            updates[ui.agreement.notice] = _notice("Agreement reports are for admins: they show every annotator's "
                                                   "labels.")
        if actor is not None:
            try:
                updates.update(self._pickers(actor))
                if admin:
                    updates[ui.studies.table] = self.studies_tab.study_table(actor)
            except Exception as error:
                updates[ui.label.notice] = _error(error)
        return updates

    def wire(self, demo: gr.Blocks) -> None:
        """Attach every studies event: all private, the judge-using ones in the judge's queue."""
        ui, s, lt, ag, a = self.ui, self.ui.studies, self.ui.label, self.ui.agreement, self.ui.add
        session_outputs = [ui.user_line, ui.logout, a.column, s.notice, lt.notice, ag.notice, s.body, ag.body,
                           s.table, lt.study, ag.study, s.import_study, a.study]
        demo.load(self.on_session, None, session_outputs, api_visibility=PRIVATE)
        for handlers in (self.studies_tab, self.label_tab, self.agreement_tab):
            handlers.wire(demo)
