"""What the study tabs share: the page's study components (`StudyWidgets`), and `StudyPage`, the base of each
tab's handlers (who is asking, the study store, the study pickers every tab fills).

Who is asking comes only from the signed-in session (`gr.Request.username`, set by Gradio's login form),
never from an input (webapp.access.current_user). Every callback that reads or changes labels passes that
user to core.studies, which decides what they may see and change; the tabs a role does not need are hidden
as a convenience, not as the protection. Every event here is private: none is part of the HTTP API.

No `from __future__ import annotations` in the tab modules: Gradio reads the callbacks' `gr.Request` type
hints at runtime to inject them.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from core.errors import GliderError
from core.studies import Studies, Study, User
from core.studies.queue_order import RANDOM, UNCERTAINTY
from webapp import access
from webapp.components import Unavailable
from webapp.services import Services
from webapp.view_models import JudgmentView, failure_message

# The queue orders as the Studies and Manage tabs offer them (core.studies.queue_order).
QUEUE_ORDER_CHOICES = [("Random (unbiased agreement)", RANDOM), ("Least-confident judgment first", UNCERTAINTY)]

if TYPE_CHECKING:
    from webapp.studies.agreement_tab import AgreementTab
    from webapp.studies.label_tab import LabelTab
    from webapp.studies.studies_tab import AddToStudy, StudiesTab


@dataclass
class StudyWidgets:
    """Everything the studies feature adds to the page, and the components it needs from the rest of it."""

    user_line: gr.HTML
    logout: gr.Button
    studies: "StudiesTab"
    label: "LabelTab"
    agreement: "AgreementTab"
    add: "AddToStudy"
    grade_tags: list[gr.Textbox]
    grade_texts: list[gr.Textbox]
    graded: gr.State  # the Grade tab's last finished grade: its fields, criteria, rubric and judgment id

    @property
    def pickers(self) -> list[gr.Dropdown]:
        """Every study picker of the page (each tab's, and the Grade tab's "Add to study")."""
        return [self.label.study, self.agreement.study, self.studies.import_study, self.add.study]


def study_choices(studies: Sequence[Study]) -> list[tuple[str, int]]:
    return [(f"{s.name} (#{s.id})", s.id) for s in studies]


def stored_view(services: Services, judgment_id: int | None) -> JudgmentView | None:
    """The stored judgment of an item, ready to render (None: the item has none)."""
    if judgment_id is None:
        return None
    stored = services.store.get_judgment(judgment_id)
    return JudgmentView.from_stored(stored) if stored is not None else None


@dataclass
class StudyPage:
    """The base of the study tabs' handlers: each finds the signed-in user, calls core once or twice and
    returns updates."""

    services: Services
    ui: StudyWidgets

    @property
    def _studies(self) -> Studies:
        if self.services.studies is None:
            raise Unavailable(access.NO_STUDIES)
        return self.services.studies

    def actor(self, request: Any) -> User:
        """The signed-in user of this request; Unavailable or PermissionDenied when there is none."""
        return access.current_user(self.services, request)

    def _optional_actor(self, request: Any) -> tuple[User | None, str | None]:
        try:
            return self.actor(request), None
        except GliderError as error:
            return None, str(error)
        except Exception as error:  # the database could not be read, for example
            return None, failure_message(error)

    def _pickers(self, actor: User, select: Mapping[Any, int] | None = None) -> dict[Any, Any]:
        """Every study picker filled with the studies this user may see; `select` sets some pickers' value."""
        choices = study_choices(self._studies.list_studies(actor))
        updates: dict[Any, Any] = {}
        for picker in self.ui.pickers:
            updates[picker] = gr.update(choices=choices)
            if select and picker in select:
                updates[picker] = gr.update(choices=choices, value=select[picker])
        return updates
