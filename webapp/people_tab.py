"""The People tab (admins): the users, what an admin changes about them (role, grade right, password, whether they
may sign in), and who may label each study (open to all, or chosen annotators, items split or not).

Each callback finds the signed-in user (webapp.access.current_user, never an input), calls core.people,
core.accounts or core.studies.assignment once, and returns updates; core checks that the user is an admin in
the same transaction. Every event is private.

No `from __future__ import annotations` here: Gradio reads the callbacks' `gr.Request` type hints at runtime.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from core.accounts import ANNOTATOR, ROLES, User
from core.studies import Studies
from core.studies.assignment import CHOSEN, OPEN
from webapp import access, render
from webapp.components import PRIVATE, Unavailable
from webapp.components import as_id as _as_id
from webapp.components import error_update as _error
from webapp.components import html_update as _html
from webapp.components import notice_update as _notice
from webapp.services import Services

PEOPLE_HEADERS = ["User", "Role", "Active", "Grade right", "Password", "Created", "Last active"]
ASSIGNMENT_CHOICES = [("Open to every annotator", OPEN), ("Only the chosen annotators", CHOSEN)]


@dataclass
class PeopleTab:
    """Admins: the users table, adding a user, the actions on one user, and a study's assignment."""

    notice: gr.HTML
    body: gr.Column
    refresh: gr.Button
    table: gr.Dataframe
    new_name: gr.Textbox
    new_role: gr.Dropdown
    new_password: gr.Textbox
    add: gr.Button
    user: gr.Dropdown
    role: gr.Dropdown
    set_role: gr.Button
    can_grade: gr.Checkbox
    set_grading: gr.Button
    password: gr.Textbox
    must_change: gr.Checkbox
    reset: gr.Button
    deactivate: gr.Button
    reactivate: gr.Button
    message: gr.HTML
    study: gr.Dropdown
    mode: gr.Radio
    annotators: gr.Dropdown
    split: gr.Checkbox
    save_assignment: gr.Button
    assignment_message: gr.HTML

    @classmethod
    def create(cls) -> "PeopleTab":
        notice = gr.HTML(elem_id="gl-people-notice", visible=False)
        with gr.Column(elem_id="gl-people-body") as body, gr.Row():
            with gr.Column(scale=6):
                with gr.Row(equal_height=True):
                    gr.HTML(render.render_subtitle("Users"))
                    refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id="gl-people-refresh")
                table = gr.Dataframe(headers=PEOPLE_HEADERS, datatype="str", interactive=False, wrap=True,
                                     max_height=360, column_widths=["14%", "13%", "11%", "11%", "19%", "14%", "18%"],
                                     elem_id="gl-people-table")
                gr.HTML(render.render_subtitle("Study assignment"))
                study = gr.Dropdown(choices=[], label="Study", elem_id="gl-assign-study")
                mode = gr.Radio(choices=ASSIGNMENT_CHOICES, value=OPEN, label="Who may label it",
                                elem_id="gl-assign-mode")
                annotators = gr.Dropdown(choices=[], multiselect=True, label="Chosen annotators",
                                         elem_id="gl-assign-annotators")
                split = gr.Checkbox(label="Split the items: each goes to the study's overlap k of the chosen "
                                          "annotators", value=False, elem_id="gl-assign-split")
                save_assignment = gr.Button("Save assignment", variant="primary", elem_id="gl-assign-save")
                assignment_message = gr.HTML(visible=False, elem_id="gl-assign-message")
            with gr.Column(scale=4, elem_classes="gl-inputs"):
                gr.HTML(render.render_subtitle("Add a user"))
                with gr.Row(equal_height=True):
                    new_name = gr.Textbox(label="Username", max_lines=1, scale=2, elem_id="gl-people-new-name")
                    new_role = gr.Dropdown(choices=list(ROLES), value=ANNOTATOR, label="Role", scale=1,
                                           elem_id="gl-people-new-role")
                new_password = gr.Textbox(label="Password (leave empty for a one-time password)", type="password",
                                          max_lines=1, elem_id="gl-people-new-password")
                add = gr.Button("Add user", elem_id="gl-people-add")
                gr.HTML(render.render_subtitle("Change a user"))
                user = gr.Dropdown(choices=[], label="User", elem_id="gl-people-user")
                with gr.Row(equal_height=True):
                    role = gr.Dropdown(choices=list(ROLES), value=None, label="Role", scale=3,
                                       elem_id="gl-people-role")
                    set_role = gr.Button("Set role", scale=1, elem_id="gl-people-set-role")
                with gr.Row(equal_height=True):
                    can_grade = gr.Checkbox(label="May grade (Grade tab, /grade, History, Batch)", scale=3,
                                            elem_id="gl-people-can-grade")
                    set_grading = gr.Button("Save grade right", scale=1, elem_id="gl-people-set-grading")
                password = gr.Textbox(label="New password (leave empty for a one-time password)", type="password",
                                      max_lines=1, elem_id="gl-people-password")
                must_change = gr.Checkbox(label="They must choose their own password at the next sign-in",
                                          value=True, elem_id="gl-people-must-change")
                reset = gr.Button("Reset password", elem_id="gl-people-reset")
                with gr.Row():
                    deactivate = gr.Button("Deactivate", variant="stop", elem_id="gl-people-deactivate")
                    reactivate = gr.Button("Reactivate", elem_id="gl-people-reactivate")
                message = gr.HTML(visible=False, elem_id="gl-people-message")
        return cls(notice, body, refresh, table, new_name, new_role, new_password, add, user, role, set_role,
                   can_grade, set_grading, password, must_change, reset, deactivate, reactivate, message, study, mode,
                   annotators, split, save_assignment, assignment_message)


@dataclass
class PeopleHandlers:
    """The People tab's callbacks (admins only; core refuses anyone else)."""

    services: Services
    ui: PeopleTab

    @property
    def _studies(self) -> Studies:
        if self.services.studies is None:
            raise Unavailable(access.NO_STUDIES)
        return self.services.studies

    def _admin(self, request: Any) -> User:
        return access.require_admin(access.current_user(self.services, request), "manage people")

    def _people(self, actor: User) -> dict[Any, Any]:
        """The users table and every user picker, as stored now."""
        people = self._studies.people.list_people(actor)
        rows = [[p.user.username, p.user.role, "yes" if p.user.active else "no", "yes" if p.user.can_grade else "no",
                 "must choose a new one" if p.user.must_change_password else "",
                 p.user.created_at.strftime("%Y-%m-%d"),
                 p.last_active.strftime("%Y-%m-%d %H:%M") if p.last_active else ""] for p in people]
        names = [p.user.username for p in people]
        labellers = [p.user.username for p in people if p.user.active]
        return {self.ui.table: pd.DataFrame(rows, columns=PEOPLE_HEADERS), self.ui.user: gr.update(choices=names),
                self.ui.annotators: gr.update(choices=labellers)}

    def on_people_load(self, request: gr.Request) -> dict[Any, Any]:
        """On page load (and Refresh): the users and the studies, for an admin; a notice for anyone else."""
        ui = self.ui
        hidden = {ui.body: gr.update(visible=False)}
        try:
            actor = access.current_user(self.services, request)
            if not actor.is_admin:
                return {**hidden, ui.notice: _notice("Users and study assignments are managed by admins.")}
            studies = self._studies.list_studies(actor)
            return {ui.notice: _html(""), ui.body: gr.update(visible=True), **self._people(actor),
                    ui.study: gr.update(choices=[(f"{s.name} (#{s.id})", s.id) for s in studies])}
        except Exception as error:
            return {**hidden, ui.notice: _error(error)}

    def on_user_pick(self, username: Any, request: gr.Request) -> dict[Any, Any]:
        """Show the chosen user's role and grade right in the form."""
        ui = self.ui
        try:
            actor = self._admin(request)
            found = next((p.user for p in self._studies.people.list_people(actor) if p.user.username == username),
                         None)
        except Exception as error:
            return {ui.message: _error(error)}
        if found is None:
            return {ui.message: _html("")}
        return {ui.role: found.role, ui.can_grade: found.can_grade, ui.message: _html("")}

    def _act(self, request: Any, username: Any, action: Callable[[User, str], Any]) -> dict[Any, Any]:
        """Run one action on the chosen user; its message, and the table as it is now."""
        ui = self.ui
        try:
            actor = self._admin(request)
            if not username:
                return {ui.message: _error("Choose a user first.")}
            shown = action(actor, str(username))
            return {ui.message: shown, **self._people(actor)}
        except Exception as error:
            return {ui.message: _error(error)}

    def on_add_user(self, username: Any, role: Any, password: Any, request: gr.Request) -> dict[Any, Any]:
        """Add a user with the typed password, or (empty) a one-time password shown this once."""
        ui = self.ui
        try:
            actor = self._admin(request)
            added = self._studies.people.add_user(actor, str(username or ""), str(role or ""),
                                                  str(password) if password else None)
        except Exception as error:
            return {ui.message: _error(error), ui.new_password: ""}
        shown = (_html(render.render_one_time_password(added.user.username, added.one_time_password))
                 if added.one_time_password is not None else
                 _notice(f"Added {added.user.role} {added.user.username}."))
        return {ui.message: shown, ui.new_name: "", ui.new_password: "", **self._people(actor)}

    def on_set_role(self, username: Any, role: Any, request: gr.Request) -> dict[Any, Any]:
        def work(actor: User, name: str) -> Any:
            user = self._studies.people.set_role(actor, name, str(role or ""))
            return _notice(f"{user.username} is now {'an' if user.role[0] in 'aeiou' else 'a'} {user.role}.")

        return self._act(request, username, work)

    def on_set_grading(self, username: Any, allowed: Any, request: gr.Request) -> dict[Any, Any]:
        def work(actor: User, name: str) -> Any:
            user = self._studies.set_grading(actor, name, bool(allowed))
            return _notice(f"{user.username} {'may now grade' if user.can_grade else 'may no longer grade'}.")

        return self._act(request, username, work)

    def on_reset_password(self, username: Any, password: Any, must_change: Any,
                          request: gr.Request) -> dict[Any, Any]:
        """Set the typed password, or (empty) make a one-time password and show it this once."""
        def work(actor: User, name: str) -> Any:
            reset = self._studies.people.reset_password(actor, name, str(password) if password else None,
                                                        must_change=bool(must_change))
            if reset.one_time_password is not None:
                return _html(render.render_one_time_password(reset.user.username, reset.one_time_password))
            then = " They must choose their own at the next sign-in." if reset.user.must_change_password else ""
            return _notice(f"The password of {reset.user.username} is set.{then}")

        return {**self._act(request, username, work), self.ui.password: ""}

    def on_deactivate(self, username: Any, request: gr.Request) -> dict[Any, Any]:
        def work(actor: User, name: str) -> Any:
            user = self._studies.people.set_active(actor, name, False)
            return _notice(f"{user.username} is deactivated: they cannot sign in; their labels stay.")

        return self._act(request, username, work)

    def on_reactivate(self, username: Any, request: gr.Request) -> dict[Any, Any]:
        def work(actor: User, name: str) -> Any:
            user = self._studies.people.set_active(actor, name, True)
            return _notice(f"{user.username} may sign in again.")

        return self._act(request, username, work)

    def on_assignment_pick(self, study_id: Any, request: gr.Request) -> dict[Any, Any]:
        """Show the chosen study's assignment in the form."""
        ui = self.ui
        wanted = _as_id(study_id)
        if wanted is None:
            return {ui.assignment_message: _html("")}
        try:
            actor = self._admin(request)
            current = self._studies.assignments.get(actor, wanted)
            summary = self._summary(actor, wanted)
        except Exception as error:
            return {ui.assignment_message: _error(error)}
        return {ui.mode: current.mode, ui.annotators: list(current.annotators), ui.split: current.split_items,
                ui.assignment_message: summary}

    def on_save_assignment(self, study_id: Any, mode: Any, annotators: Any, split: Any,
                           request: gr.Request) -> dict[Any, Any]:
        ui = self.ui
        wanted = _as_id(study_id)
        try:
            actor = self._admin(request)
            if wanted is None:
                return {ui.assignment_message: _error("Choose a study first.")}
            names = [str(name) for name in annotators or []] if isinstance(annotators, list) else []
            self._studies.assignments.set(actor, wanted, str(mode or ""), names, split=bool(split))
            return {ui.assignment_message: self._summary(actor, wanted)}
        except Exception as error:
            return {ui.assignment_message: _error(error)}

    def _summary(self, actor: User, study_id: int) -> Any:
        """One line: who may label the study, and how many items each is assigned."""
        current = self._studies.assignments.get(actor, study_id)
        if current.mode == OPEN:
            return _notice("Open to every annotator: each is offered every item until it has its k labels.")
        counts = self._studies.assignments.assigned(actor, study_id)
        shares = ", ".join(f"{name}: {count}" for name, count in counts.items())
        split = "items split" if current.split_items else "every item to each"
        return _notice(f"Only the chosen annotators ({split}); items assigned: {shares or 'nobody'}.")

    def wire(self, demo: gr.Blocks) -> None:
        """Attach the People tab's events: all private."""
        ui = self.ui
        loaded = [ui.notice, ui.body, ui.table, ui.user, ui.annotators, ui.study]
        people = [ui.message, ui.table, ui.user, ui.annotators]

        def on(trigger: Any, fn: Callable[..., Any], inputs: Any, outputs: Any) -> None:
            trigger(fn, inputs, outputs, api_visibility=PRIVATE)

        demo.load(self.on_people_load, None, loaded, api_visibility=PRIVATE)
        on(ui.refresh.click, self.on_people_load, None, loaded)
        on(ui.add.click, self.on_add_user, [ui.new_name, ui.new_role, ui.new_password],
           [*people, ui.new_name, ui.new_password])
        on(ui.user.change, self.on_user_pick, ui.user, [ui.role, ui.can_grade, ui.message])
        on(ui.set_role.click, self.on_set_role, [ui.user, ui.role], people)
        on(ui.set_grading.click, self.on_set_grading, [ui.user, ui.can_grade], people)
        on(ui.reset.click, self.on_reset_password, [ui.user, ui.password, ui.must_change], [*people, ui.password])
        on(ui.deactivate.click, self.on_deactivate, ui.user, people)
        on(ui.reactivate.click, self.on_reactivate, ui.user, people)
        on(ui.study.change, self.on_assignment_pick, ui.study,
           [ui.mode, ui.annotators, ui.split, ui.assignment_message])
        on(ui.save_assignment.click, self.on_save_assignment, [ui.study, ui.mode, ui.annotators, ui.split],
           ui.assignment_message)
