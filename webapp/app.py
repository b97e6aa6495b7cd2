"""The Gradio app: `build_app(services)` lays out the tabs and wires each tab's handlers; launch settings.

Each tab has its module: Grade (webapp.grade_tab, with the `/grade` and `/status` API; its "Compare two
responses" mode and `/compare` in webapp.compare_panel), History
(webapp.history_tab), Batch (webapp.batch_ui, in its own queue) and the human-agreement tabs Studies,
Label and Agreement (webapp.studies). This module holds what is app-wide: the header, the judge banner,
which tabs a signed-in role sees, Gradio's queue, and the options for `Blocks.launch` (sign-in included).

No `from __future__ import annotations` here: Gradio reads the callbacks' type hints at runtime.
"""

import os
from pathlib import Path
from typing import Any

import gradio as gr

from core.storage import StorageStatus, storage_status
from webapp import access, hub_sign_in, render
from webapp.batch_ui import BatchHandlers, BatchTab
from webapp.compare_panel import CompareHandlers, ComparePanel
from webapp.components import PRIVATE
from webapp.grade_tab import GradeHandlers, GradeTab, ResultPanel, no_judge_message
from webapp.history_tab import HistoryHandlers, HistoryTab
from webapp.password_panel import PasswordHandlers, PasswordPanel
from webapp.people_tab import PeopleHandlers, PeopleTab
from webapp.services import Services
from webapp.studies import AgreementTab, LabelTab, StudiesTab, StudyHandlers, StudyWidgets
from webapp.studies.label_tab import LABEL_KEYS_JS
from webapp.studies.manage_tab import ManageHandlers, ManageTab
from webapp.studies.review_tab import ReviewHandlers, ReviewTab

__all__ = [
    "GradeHandlers", "GradeTab", "HistoryHandlers", "HistoryTab", "ResultPanel", "auth_options", "build_app",
    "enable_queue", "launch_options", "max_upload_bytes", "on_tabs",
]

CSS_PATH = Path(__file__).resolve().parent.parent / "assets" / "style.css"
# Gradio 6 looks for new events every millisecond while its queue is idle, which is also while a grade
# generates: about 6 % of a CPU core taken from the model on a CPU machine. Every 5 ms costs about 2 %
# and starts an event at most 5 ms later.
QUEUE_POLL_S = 0.005
# Gradio keeps the state of this many sessions (oldest dropped first). Every plain HTTP call of /grade is
# a session of its own, about 0.4 MB here (a copy of the whole page's configuration); Gradio's default of
# 10,000 would let API traffic hold about 4 GB.
STATE_SESSIONS = 1000
DEFAULT_MAX_UPLOAD_MB = 200
AUTH_MESSAGE = "Sign in to GLIDER Studio. An admin creates accounts with `python -m core create-user NAME`."


def enable_queue(demo: gr.Blocks) -> gr.Blocks:
    """Turn on Gradio's queue (one event at a time per group unless set) and make it poll every QUEUE_POLL_S."""
    demo.queue(default_concurrency_limit=1)
    queue = getattr(demo, "_queue", None)  # no public setting for the poll interval in Gradio 6.31
    if queue is not None and isinstance(getattr(queue, "sleep_when_free", None), float):
        queue.sleep_when_free = max(queue.sleep_when_free, QUEUE_POLL_S)
    return demo


def max_upload_bytes() -> int:
    """The largest file the server accepts (GLIDER_MAX_UPLOAD_MB, default 200): bigger uploads are refused
    before they reach the disk. Dataset files for the Batch tab are the largest thing users send."""
    text = os.environ.get("GLIDER_MAX_UPLOAD_MB", "").strip() or str(DEFAULT_MAX_UPLOAD_MB)
    try:
        megabytes = float(text)
    except ValueError:
        raise ValueError(f"GLIDER_MAX_UPLOAD_MB must be a number of megabytes (got {text!r}).") from None
    if megabytes <= 0:
        raise ValueError(f"GLIDER_MAX_UPLOAD_MB must be positive (got {text!r}).")
    return int(megabytes * 1024 * 1024)


def launch_options() -> dict[str, Any]:
    """Keyword arguments for `Blocks.launch`: since Gradio 6, CSS, theme and page JS are launch settings."""
    return {
        "max_file_size": max_upload_bytes(),
        "state_session_capacity": STATE_SESSIONS,
        "css": access.TAB_CSS,  # per-role tabs (webapp.access); style.css comes after it
        "css_paths": [CSS_PATH],
        "js": LABEL_KEYS_JS,
        "theme": gr.themes.Soft(primary_hue="indigo", neutral_hue="slate").set(
            button_primary_background_fill="*primary_600",
            button_primary_background_fill_hover="*primary_700",
            button_primary_text_color="white",
        ),
    }


def auth_options(services: Services) -> dict[str, Any]:
    """Keyword arguments for `Blocks.launch` that put the app behind Gradio's sign-in form, when enabled.

    Passwords are checked by core.studies; Gradio then gives every request the username
    (`gr.Request.username`), which is the only identity the study callbacks trust.
    """
    studies = services.studies
    if not services.auth_enabled or studies is None or services.hub is not None:  # hub: Hugging Face signs in
        return {}

    def check(username: str, password: str) -> bool:
        return studies.authenticate(username, password) is not None

    return {"auth": check, "auth_message": AUTH_MESSAGE}


def _banner(services: Services) -> str:
    info = services.judge.info if services.judge is not None else None
    return render.render_backend_banner(info, services.judge_error, services.judge_loading, services.judge_reason)


def storage_of(services: Services) -> StorageStatus:
    """Whether this app's database survives a restart (core.storage), for the banner and the Studies tab."""
    store = services.store
    return storage_status(getattr(store, "sqlite_path", None), getattr(store, "backend", "sqlite"))


def _tab_options(services: Services) -> dict[str, Any]:
    """gr.Tabs settings before the page knows who signed in: with sign-in on, only Label until on_tabs says more."""
    if not services.auth_enabled or services.studies is None:
        return {}
    # "wrap": tabs that do not fit go to a second row rather than into a menu whose buttons no CSS can pick.
    first = "grade" if services.hub is not None else "label"  # what a visitor who is not signed in may use
    return {"overflow_behavior": "wrap", "selected": first, "elem_classes": access.hidden_classes((first,))}


def on_tabs(services: Services, request: gr.Request | None) -> dict[str, Any]:
    """On page load: the tabs this user's role may use, and the one they land on (webapp.access)."""
    user = access.signed_in_user(services, request)
    shown = access.tabs_for(services, user)
    return {"elem_classes": access.hidden_classes(shown), "selected": access.first_tab(shown, user)}


def build_app(services: Services) -> gr.Blocks:
    """The whole GLIDER Studio interface, wired to `services`.

    Launch it with `**launch_options()` and, for sign-in, `**auth_options(services)`.
    """
    storage = render.render_storage_notice(storage_of(services))  # "" unless a Space loses its data at restart
    with gr.Blocks(title="GLIDER Studio", analytics_enabled=False) as demo:
        with gr.Row(equal_height=True, elem_classes="gl-top"):
            gr.HTML(render.render_header(), scale=6)
            with gr.Column(scale=1, min_width=180, elem_classes="gl-account"):
                user_line = gr.HTML(visible=False, elem_id="gl-user")
                # Relative link: Gradio's own /logout, also when the app is served under a root path.
                logout = gr.Button("Sign out", link="logout", size="sm", visible=False, elem_id="gl-logout")
                if services.hub is not None:  # Sign in with Hugging Face (webapp.hub_sign_in); it also signs out
                    hub_sign_in.login_button()
        banner = gr.HTML(_banner(services) + storage, elem_id="gl-banner")
        # While the judge loads in the background, refresh the banner until it is ready (or failed).
        poll = gr.Timer(3.0, active=services.judge_loading is not None)
        poll.tick(lambda: {banner: _banner(services) + storage,
                           poll: gr.Timer(active=services.judge_loading is not None)},
                  None, [banner, poll], api_visibility=PRIVATE, queue=False, show_progress="hidden")
        demo.load(lambda: _banner(services) + storage, None, banner, api_visibility=PRIVATE, queue=False)
        password = PasswordPanel.create()  # only for a user whose password an admin reset
        with gr.Tabs(elem_id="gl-tabs", **_tab_options(services)) as tabs:
            with gr.Tab("Grade", id="grade"):
                mode = ComparePanel.mode_picker()  # one response, or two compared (webapp.compare_panel)
                with gr.Column(elem_id="gl-single") as single:
                    grade_tab = GradeTab.create(services.presets)
                compare = ComparePanel.create(mode, single)
            with gr.Tab("History", id="history") as history:
                history_tab = HistoryTab.create(history)
            with gr.Tab("Batch", id="batch") as batch:
                batch_tab = BatchTab.create_in(batch, services.presets)
            with gr.Tab("Studies", id="studies") as studies_tab:
                gr.HTML(storage, visible=bool(storage), elem_id="gl-storage-studies")
                studies = StudiesTab.create_in(studies_tab, services.presets)
            with gr.Tab("Label", id="label") as label_tab:
                label = LabelTab.create_in(label_tab)
            with gr.Tab("Agreement", id="agreement") as agreement_tab:
                agreement = AgreementTab.create_in(agreement_tab)
            with gr.Tab("Review", id="review") as review_tab:
                review = ReviewTab.create_in(review_tab)
            with gr.Tab("Manage", id="manage") as manage_tab:
                manage = ManageTab.create_in(manage_tab)
            with gr.Tab("People", id="people"):
                people = PeopleTab.create()
        grade_handlers = GradeHandlers(services, grade_tab)
        grade_handlers.wire(demo)  # before History's: the events keep their order
        HistoryHandlers(services, tabs, history_tab, grade_tab).wire(demo)
        if services.auth_enabled:
            def show_tabs(request: gr.Request) -> Any:
                return gr.Tabs(**on_tabs(services, request))

            demo.load(show_tabs, None, tabs, api_visibility=PRIVATE, queue=False, show_progress="hidden")
        BatchHandlers(services, batch_tab, no_judge=no_judge_message).wire(demo)
        ui = StudyWidgets(user_line=user_line, logout=logout, studies=studies, label=label,
                       agreement=agreement, add=grade_tab.add, grade_tags=grade_tab.tags, grade_texts=grade_tab.texts,
                       graded=grade_tab.graded)
        StudyHandlers(services, ui).wire(demo)
        ManageHandlers(services, manage).wire(demo)
        PeopleHandlers(services, people).wire(demo)
        PasswordHandlers(services, password).wire(demo)
        ReviewHandlers(services, review).wire(demo)
        CompareHandlers(services, compare, grade_handlers.demo, no_judge_message).wire(demo)
    return demo
