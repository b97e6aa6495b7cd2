"""The "Choose a new password" panel: shown above the tabs to a signed-in user whose password an admin reset.

Until they have chosen one, webapp.access hides the whole tab bar and core refuses them everything else
(core.accounts.signed_in), so the panel is the only thing that works for them. Once it is saved the page
reloads, and every tab loads as for any user of their role.

No `from __future__ import annotations` here: Gradio reads the callbacks' `gr.Request` type hints at runtime.
"""

from dataclasses import dataclass
from typing import Any

import gradio as gr

from core.accounts import MIN_PASSWORD_LENGTH
from webapp import access, render
from webapp.components import PRIVATE
from webapp.components import error_update as _error
from webapp.components import notice_update as _notice
from webapp.services import Services

# After a successful save: reload the page, so each tab loads for the user as they are now.
RELOAD_WHEN_DONE_JS = "(done) => { if (done) { window.location.reload(); } }"


@dataclass
class PasswordPanel:
    """The form: current (one-time) password, the new one twice, and a save button."""

    column: gr.Column
    current: gr.Textbox
    new: gr.Textbox
    again: gr.Textbox
    save: gr.Button
    message: gr.HTML
    done: gr.Checkbox  # set once the new password is saved; the page reloads on it

    @classmethod
    def create(cls) -> "PasswordPanel":
        with gr.Column(visible=False, elem_id="gl-password-panel", elem_classes="gl-inputs") as column:
            gr.HTML(render.render_subtitle("Choose a new password"))
            gr.HTML(render.render_hint(
                f"An admin reset your password. Choose your own (at least {MIN_PASSWORD_LENGTH} characters) before "
                "you go on; the one you signed in with then stops working."))
            current = gr.Textbox(label="The password you signed in with", type="password", max_lines=1,
                                 elem_id="gl-password-current")
            new = gr.Textbox(label="New password", type="password", max_lines=1, elem_id="gl-password-new")
            again = gr.Textbox(label="New password again", type="password", max_lines=1, elem_id="gl-password-again")
            save = gr.Button("Save my new password", variant="primary", elem_id="gl-password-save")
            message = gr.HTML(visible=False, elem_id="gl-password-message")
            done = gr.Checkbox(value=False, visible="hidden", elem_id="gl-password-done")
        return cls(column, current, new, again, save, message, done)


@dataclass
class PasswordHandlers:
    """Show the panel to a user who must choose a new password, and save the one they choose."""

    services: Services
    ui: PasswordPanel

    def on_password_load(self, request: gr.Request) -> dict[Any, Any]:
        """On page load: the panel, only for a signed-in user who must choose a new password."""
        user = access.signed_in_user(self.services, request)
        return {self.ui.column: gr.update(visible=user is not None and user.must_change_password)}

    def on_choose_password(self, current: Any, new: Any, again: Any, request: gr.Request) -> dict[Any, Any]:
        """Save the new password (core checks the current one); the page then reloads with the user's tabs."""
        ui = self.ui
        cleared = {ui.current: "", ui.new: "", ui.again: ""}
        try:
            user = access.current_user(self.services, request)
            if (new or "") != (again or ""):
                return {**cleared, ui.message: _error("The two new passwords differ; type the same one twice.")}
            assert self.services.studies is not None  # current_user found a user in it
            self.services.studies.accounts.change_password(user, str(current or ""), str(new or ""))
        except Exception as error:
            return {**cleared, ui.message: _error(error)}
        return {**cleared, ui.message: _notice("Your new password is saved. Loading your tabs\u2026"), ui.done: True}

    def wire(self, demo: gr.Blocks) -> None:
        """Attach the panel's events: all private."""
        ui = self.ui
        demo.load(self.on_password_load, None, ui.column, api_visibility=PRIVATE)
        ui.save.click(self.on_choose_password, [ui.current, ui.new, ui.again],
                      [ui.current, ui.new, ui.again, ui.message, ui.done], api_visibility=PRIVATE).then(
            None, ui.done, None, js=RELOAD_WHEN_DONE_JS, api_visibility=PRIVATE)
