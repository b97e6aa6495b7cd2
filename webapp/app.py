"""The Gradio interface: `build_app(services)` builds the Blocks; every callback is a thin adapter.

Callbacks turn widget values into a core call and return `{component: update}` dicts. HTML comes only
from webapp.render. The page takes no lock around generations: a back-end that must run one at a time
serialises them itself (core.judge.base.JudgeBackend's concurrency rule); the streamed Grade button (and a
study's grading) queue in the judge's concurrency group. Concurrent `/grade` API calls are batched into one
generation (webapp.grade_queue). The Batch tab (webapp.batch_ui) runs in its own queue. The
human-agreement tabs (Studies, Label, Agreement) live in webapp.studies.

No `from __future__ import annotations` here: Gradio reads the API function's type hints at runtime.
"""

import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from core.errors import GliderError, JudgeError
from core.grading import GradeRequest, GradeResult, grade_batch, grade_stream
from core.judge.base import DEFAULT_MAX_NEW_TOKENS
from core.presets import Preset
from core.prompt import CONTEXT, DEFAULT_TAGS, GOLD_ANSWER, MODEL_OUTPUT, USER_INPUT
from core.studies import PermissionDenied
from webapp import access, charts, render
from webapp.batch_ui import BatchHandlers, BatchTab
from webapp.components import JUDGE_CONCURRENCY_ID, PRIVATE, RubricForm
from webapp.components import html_update as _html
from webapp.grade_queue import GradeBatcher
from webapp.services import Services
from webapp.studies import AddToStudy, AgreementTab, LabelTab, StudiesTab, StudyHandlers, StudyTabs
from webapp.studies.label_tab import LABEL_KEYS_JS
from webapp.views import (
    SLOTS,
    JudgmentView,
    failure_message,
    fill_slots,
    format_time,
    request_fields,
)

log = logging.getLogger(__name__)

CSS_PATH = Path(__file__).resolve().parent.parent / "assets" / "style.css"
HISTORY_HEADERS = ["ID", "Time", "Score", "Status", "Model", "Preview"]
HISTORY_LIMIT = 200
# `/grade` calls queue in their own group so that several can wait in the batcher at once (see
# webapp.grade_queue); the back-end, not this group, keeps them apart from other generations.
API_CONCURRENCY_ID = "grade-api"
# The live reasoning box is redrawn at most this often: every redraw is a queue message the page renders,
# and a fast judge makes tokens much faster than anyone reads them.
STREAM_EVERY_S = 0.1
# Gradio 6 looks for new events every millisecond while its queue is idle, which is also while a grade
# generates: about 6 % of a CPU core taken from the model on a CPU machine. Every 5 ms costs about 2 %
# and starts an event at most 5 ms later.
QUEUE_POLL_S = 0.005
# Gradio keeps the state of this many sessions (oldest dropped first). Every plain HTTP call of /grade is
# a session of its own, about 0.4 MB here (a copy of the whole page's configuration); Gradio's default of
# 10,000 would let API traffic hold about 4 GB.
STATE_SESSIONS = 1000
DEFAULT_MAX_UPLOAD_MB = 200
WAITING = "Waiting for the judge (it grades one item at a time; another grade may be running) \u2026"
GRADE_LABEL = "Grade"
GRADING_LABEL = "Grading\u2026"
GRADING_NOTICE = ("Grading\u2026 The judge's reasoning appears below as it is written; the result follows "
                  "(on a CPU a grade can take minutes).")
ALREADY_GRADING = "A grade is already running in this page; its answer appears in the live box. Wait for it to finish."
# Browser side of the Grade button. The button sits at the bottom of a long form, the live box and the result
# at the top of the other column: hundreds of pixels above the viewport on a laptop screen. These bring
# them into view once Gradio has drawn them (it draws after the event's reply; a few frames at most), and
# only when they are not already in view, so a user who can see them is not scrolled about.
_SCROLL_JS = """
(selectors) => {
  const shown = (el) => el && el.offsetParent !== null && el.getBoundingClientRect().height > 0;
  let frames = 0;
  const step = () => {
    const target = selectors.map((s) => document.querySelector(s)).find(shown);
    if (!target) { if (frames++ < 120) { requestAnimationFrame(step); } return; }
    const box = target.getBoundingClientRect();
    if (box.top < 0 || box.top > window.innerHeight - 80) { target.scrollIntoView({block: "start"}); }
  };
  requestAnimationFrame(step);
}
"""
# At once on click, before any reply: the button goes busy (Gradio also disables it from on_grade_start).
GRADE_CLICK_JS = """
() => {
  const button = document.querySelector("#gl-grade");
  if (button) { button.disabled = true; button.setAttribute("aria-busy", "true"); }
}
"""
SHOW_LIVE_JS = f"() => ({_SCROLL_JS.strip()})(['#gl-message', '#gl-stream'])"
SHOW_RESULT_JS = f"""() => {{
  const button = document.querySelector("#gl-grade");
  if (button) {{ button.removeAttribute("aria-busy"); }}
  ({_SCROLL_JS.strip()})(['#gl-result', '#gl-message']);
}}"""
AUTH_MESSAGE = "Sign in to GLIDER Studio. An admin creates accounts with `python -m core create-user NAME`."

_PLACEHOLDERS = {
    CONTEXT: "Background the answer should rely on (retrieved passages, a document ...)",
    USER_INPUT: "The question or instruction the model was given",
    MODEL_OUTPUT: "The text to be judged",
    GOLD_ANSWER: "A reference answer, if you have one",
}


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
    if not services.auth_enabled or studies is None:
        return {}

    def check(username: str, password: str) -> bool:
        return studies.authenticate(username, password) is not None

    return {"auth": check, "auth_message": AUTH_MESSAGE}


def _no_judge_message(services: Services) -> str:
    if services.judge_loading:
        return f"The judge ({services.judge_loading}) is still loading; try again when the banner says it is ready."
    reason = services.judge_error or "No judge back-end was configured."
    # Load errors from core already say how to fix them (they name --model); add the hint only when not.
    fix = "" if "--model" in reason else f" To fix it, {render.MODEL_HINT}."
    return f"Grading is unavailable: the judge model is not loaded. {reason}{fix}"


@dataclass
class ResultPanel:
    """The components that show one judgment; used by the Grade tab and the History tab."""

    column: gr.Column
    card: gr.HTML
    plot: gr.Plot
    warnings: gr.HTML
    fields: gr.HTML
    ungrounded: gr.HTML
    reasoning: gr.HTML
    raw: gr.Textbox

    @classmethod
    def create(cls, prefix: str) -> "ResultPanel":
        """Build the (initially hidden) components inside the current Blocks context."""
        with gr.Column(visible=False, elem_id=prefix, elem_classes="gl-result") as column:
            with gr.Row(equal_height=True):
                card = gr.HTML(elem_id=f"{prefix}-card", elem_classes="gl-card-slot")
                plot = gr.Plot(show_label=False, container=False, visible=False, elem_id=f"{prefix}-plot")
            warnings = gr.HTML(elem_id=f"{prefix}-warnings")
            fields = gr.HTML(elem_id=f"{prefix}-fields")
            ungrounded = gr.HTML(elem_id=f"{prefix}-ungrounded")
            reasoning = gr.HTML(elem_id=f"{prefix}-reasoning")
            with gr.Accordion("Raw model output", open=False):
                raw = gr.Textbox(show_label=False, lines=8, max_lines=30, interactive=False, buttons=["copy"],
                                 elem_id=f"{prefix}-raw")
        return cls(column, card, plot, warnings, fields, ungrounded, reasoning, raw)

    @property
    def outputs(self) -> list[gr.components.Component | gr.Column]:
        return [self.column, self.card, self.plot, self.warnings, self.fields, self.ungrounded, self.reasoning,
                self.raw]

    def show(self, view: JudgmentView) -> dict[Any, Any]:
        figure = charts.distribution_figure(view.distribution, view.scale, view.score)
        return {
            self.column: gr.update(visible=True),
            self.card: render.render_score_card(view),
            self.plot: gr.update(value=figure, visible=figure is not None),
            self.warnings: _html(render.render_warnings(view.warnings)),
            self.fields: render.render_fields(view.fields, view.spans),
            self.ungrounded: _html(render.render_ungrounded(view.ungrounded, view.in_instructions)),
            self.reasoning: render.render_reasoning(view.reasoning),
            self.raw: view.raw_output,
        }

    def hide(self) -> dict[Any, Any]:
        return {self.column: gr.update(visible=False)}


@dataclass
class GradeTab:
    """The Grade tab: the form on the left, the live answer and its rendering on the right."""

    form: RubricForm  # preset, pass criteria, rubric, scale
    load_example: gr.Button
    preset_info: gr.HTML
    texts: list[gr.Textbox]
    tags: list[gr.Textbox]
    max_tokens: gr.Slider
    grade_button: gr.Button
    note: gr.HTML  # under the button: why a click did nothing (a grade is already running)
    message: gr.HTML
    stream: gr.Textbox
    panel: ResultPanel
    add: AddToStudy
    graded: gr.State  # the last finished grade's inputs and judgment id, for "Add to study"
    outcome: gr.State  # the running grade's GradeResult, or the message saying why there is none
    running: gr.State  # True from Grade until its result is shown: a second Grade meanwhile is refused

    @classmethod
    def create(cls, presets: list[Preset]) -> "GradeTab":
        """Build the components inside the current Tab; the first preset (if any) is pre-selected."""
        first = presets[0] if presets else None
        with gr.Row():
            with gr.Column(scale=5, elem_classes="gl-inputs"):
                with gr.Row(equal_height=True):
                    preset = RubricForm.picker(presets, "gl-preset", scale=3)
                    load_example = gr.Button("Load example", scale=1, elem_id="gl-load-example")
                preset_info = gr.HTML(render.render_preset(first))
                texts = [
                    gr.Textbox(label=tag, lines=3, max_lines=20, placeholder=_PLACEHOLDERS[tag],
                               elem_id=f"gl-field-{i}")
                    for i, tag in enumerate(DEFAULT_TAGS)
                ]
                with gr.Accordion("Field tags", open=False):
                    gr.HTML(render.render_hint(
                        "Each field is sent to GLIDER wrapped in its tag, e.g. <MODEL OUTPUT>...</MODEL OUTPUT>. "
                        "Rename a tag to suit your data; the pass criteria should refer to the tags by name."
                    ))
                    with gr.Row():
                        tags = [
                            gr.Textbox(value=tag, label=f"Field {i + 1} tag", max_lines=1, min_width=120,
                                       elem_id=f"gl-tag-{i}")
                            for i, tag in enumerate(DEFAULT_TAGS)
                        ]
                form = RubricForm.create(presets, preset, criteria_id="gl-pass-criteria", rubric_id="gl-rubric",
                                         scale_id="gl-scale")
                with gr.Accordion("Advanced", open=False):
                    max_tokens = gr.Slider(64, 4096, value=DEFAULT_MAX_NEW_TOKENS, step=64, label="Max new tokens")
                grade_button = gr.Button(GRADE_LABEL, variant="primary", elem_id="gl-grade")
                note = gr.HTML(visible=False, elem_id="gl-grade-note")
            with gr.Column(scale=6, elem_classes="gl-outputs"):
                message = gr.HTML(render.render_hint(
                    "Fill in the fields (or pick a preset and load its example) and press Grade."
                ), elem_id="gl-message")
                stream = gr.Textbox(label="Reasoning (streaming)", lines=10, max_lines=20, interactive=False,
                                    visible=False, autoscroll=True, placeholder=WAITING, elem_id="gl-stream")
                panel = ResultPanel.create("gl-result")
                add = AddToStudy.create()
        graded = gr.State(None)
        outcome = gr.State(None)
        running = gr.State(False)
        return cls(form, load_example, preset_info, texts, tags, max_tokens,
                   grade_button, note, message, stream, panel, add, graded, outcome, running)

    def busy(self, running: bool) -> dict[Any, Any]:
        """The Grade button's state: disabled and saying "Grading…" while a grade runs, else ready."""
        label = GRADING_LABEL if running else GRADE_LABEL
        return {self.grade_button: gr.update(value=label, interactive=not running), self.running: running}

    def fill(self, fields: dict[str, str], pass_criteria: str, rubric: str) -> dict[Any, Any]:
        """Updates that put a tag → text mapping, pass criteria and rubric into the form."""
        updates: dict[Any, Any] = {self.form.pass_criteria: pass_criteria, self.form.rubric: rubric}
        for (tag, text), tag_box, text_box in zip(fill_slots(fields), self.tags, self.texts, strict=True):
            updates[tag_box] = tag
            updates[text_box] = text
        return updates


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


class Handlers:
    """The callbacks. Each converts widget values, calls core once and returns {component: update}."""

    def __init__(self, services: Services, tabs: gr.Tabs, grade: GradeTab, history: HistoryTab) -> None:
        self.services = services
        self.tabs = tabs
        self.grade = grade
        self.history = history
        self.batcher: GradeBatcher[GradeResult] = GradeBatcher(
            self._grade_many, max_batch_size=services.api_batch_size
        )

    # --- Grade tab ------------------------------------------------------------------------------

    def on_preset(self, key: str | None) -> dict[Any, Any]:
        g = self.grade
        chosen = g.form.chosen(key)
        if chosen is None:
            return {g.preset_info: ""}
        return {**g.form.filled(chosen), g.preset_info: render.render_preset(chosen)}

    def on_load_example(self, key: str | None) -> dict[Any, Any]:
        g = self.grade
        chosen = g.form.chosen(key)
        if chosen is None:
            return {g.message: _html(render.render_error("Choose a rubric preset first, then load its example."))}
        return {**g.fill(dict(chosen.example), chosen.pass_criteria, chosen.rubric),
                g.preset_info: render.render_preset(chosen), g.message: _html("")}

    def on_tags(self, *names: str) -> dict[Any, Any]:
        return {box: gr.update(label=(name or "").strip() or "(untagged field)")
                for box, name in zip(self.grade.texts, names, strict=True)}

    def on_rubric(self, rubric: str) -> dict[Any, Any]:
        return self.grade.form.scale_of(rubric)

    # Grade is a chain of events: claim the page's one grade (on_grade_check), open the live box, stream the
    # answer in the judge's queue, render it (plus two browser-only steps that scroll them into view). The
    # streaming event has only the live box and a State as outputs because Gradio 6 rebuilds every other
    # output component of an event (gr.skip()) on each streamed update: with the whole result panel as
    # outputs, that cost more CPU per redraw than a small judge spends on a token.

    def on_grade_check(self, running: bool | None) -> dict[Any, Any]:
        """Claim this page's one grade, or refuse (an error, so the events chained on success never run)
        while its previous grade runs: a second click, however it got past the disabled button, queues nothing.

        Its only output is a State, so a refusal marks no visible component as failed; on_grade_refused says why.
        """
        if running:
            raise gr.Error(ALREADY_GRADING, print_exception=False)
        return {self.grade.running: True}

    def on_grade_refused(self) -> dict[Any, Any]:
        """Say under the button why the click did nothing (the running grade is left alone)."""
        return {self.grade.note: _html(render.render_error(ALREADY_GRADING))}

    def on_grade_start(self) -> dict[Any, Any]:
        """Hide the previous answer, open the live box and make the button busy (the grade itself waits in
        the judge's queue)."""
        g = self.grade
        return {g.message: _html(render.render_notice(GRADING_NOTICE)), g.stream: gr.update(value="", visible=True),
                **g.panel.hide(), g.outcome: None, g.note: _html(""), **g.busy(True)}

    def on_grade(self, *values: Any) -> Iterator[dict[Any, Any]]:
        """Stream the raw answer into the live box; the stored GradeResult (or why there is none) goes to `outcome`."""
        g = self.grade
        tags, texts = values[:SLOTS], values[SLOTS : 2 * SLOTS]
        pass_criteria, rubric, max_tokens = values[2 * SLOTS :]
        judge = self.services.judge
        if judge is None:
            yield {g.outcome: _no_judge_message(self.services)}
            return
        streamed = ""
        result: GradeResult | None = None
        try:
            request = GradeRequest(
                fields=request_fields(tags, texts),
                pass_criteria=pass_criteria or "",
                rubric=rubric or "",
                max_new_tokens=int(max_tokens or DEFAULT_MAX_NEW_TOKENS),
            )
            shown_at = 0.0
            for event in grade_stream(judge, request, self.services.store):
                if isinstance(event, str):
                    streamed += event
                    if time.monotonic() - shown_at >= STREAM_EVERY_S:  # the first piece shows at once
                        shown_at = time.monotonic()
                        yield {g.stream: streamed}
                else:
                    result = event
        except Exception as error:  # core's errors and anything else: a message, never a traceback
            yield {g.outcome: failure_message(error)}
            return
        yield {g.outcome: result if result is not None else "The judge returned no result."}

    def on_grade_done(self, outcome: GradeResult | str | None) -> dict[Any, Any]:
        """Replace the live box with the rendered, stored judgment, or with the message saying why there is
        none; the Grade button is ready again whatever happened."""
        g = self.grade
        cleared = {g.message: _html(""), g.stream: gr.update(value="", visible=False), **g.panel.hide(),
                   g.note: _html(""), **g.busy(False)}
        if not isinstance(outcome, GradeResult):
            message = outcome or "The grade was stopped before it finished."
            return {**cleared, g.message: _html(render.render_error(message))}
        try:
            shown = g.panel.show(JudgmentView.from_result(outcome))
        except Exception as error:  # never leave the button busy with nothing shown
            log.exception("Could not render judgment %s", outcome.judgment_id)
            return {**cleared, g.message: _html(render.render_error(failure_message(error)))}
        graded = {"judgment_id": outcome.judgment_id, "pass_criteria": outcome.request.pass_criteria,
                  "rubric": outcome.request.rubric,
                  "fields": {tag: text for tag, text in outcome.request.fields.items() if text and text.strip()}}
        return {g.graded: graded, **cleared, **shown}  # graded is the first State here, as before `running`

    def status_api(self) -> dict[str, Any]:
        """Whether the judge is ready: state is "loading", "ready" or "failed", with the judge or the reason."""
        services = self.services
        judge = services.judge
        if judge is not None:
            return {"state": "ready", "judge": asdict(judge.info), "error": None, "reason": services.judge_reason}
        if services.judge_loading:
            return {"state": "loading", "judge": None, "error": None, "loading": services.judge_loading,
                    "reason": services.judge_reason}
        return {"state": "failed", "judge": None, "error": _no_judge_message(services), "reason": services.judge_reason}

    def grade_api(
        self,
        context: str,
        user_input: str,
        model_output: str,
        gold_answer: str,
        pass_criteria: str,
        rubric: str,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        request: gr.Request | None = None,  # Gradio passes it (who is signed in); not an API parameter
    ) -> dict[str, Any]:
        """Grade one item with GLIDER under the default tags (empty fields are omitted).

        Returns score, status, problems, reasoning, highlights, spans (field/start/end/phrase, offsets
        in characters of that field), ungrounded, distribution and the stored judgment_id. With sign-in on,
        only admins and annotators allowed to grade may call it, never on an unlabelled blind-study item.
        """
        try:
            fields = {CONTEXT: context or "", USER_INPUT: user_input or "", MODEL_OUTPUT: model_output or "",
                      GOLD_ANSWER: gold_answer or ""}
            guard = access.grade_guard(self.services, request)
            if guard is not None:
                guard.check(fields)
        except Exception as error:  # refused before anything else, judge or not
            raise gr.Error(failure_message(error), print_exception=False) from error
        if self.services.judge is None:
            raise gr.Error(_no_judge_message(self.services), print_exception=False)
        try:
            request = GradeRequest(fields=fields, pass_criteria=pass_criteria or "", rubric=rubric or "",
                                   max_new_tokens=int(max_new_tokens or DEFAULT_MAX_NEW_TOKENS))
            # Graded together with the /grade calls that arrive meanwhile; this call's own error comes back here.
            return self.batcher.submit(request).to_dict()
        except Exception as error:  # gradio_client raises with this message
            raise gr.Error(failure_message(error), print_exception=False) from error

    def _grade_many(self, requests: Sequence[GradeRequest]) -> list[GradeResult | GliderError]:
        """One batch of /grade calls: one batched generation where the back-end has one (core.grading.grade_batch)."""
        judge = self.services.judge
        if judge is None:
            raise JudgeError(_no_judge_message(self.services))
        return grade_batch(judge, requests, self.services.store)

    # --- History tab ----------------------------------------------------------------------------

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

    # --- wiring ---------------------------------------------------------------------------------

    def _checked(self, on_grade: Callable[..., Iterator[dict[Any, Any]]]) -> Callable[..., Iterator[dict[Any, Any]]]:
        """`on_grade` behind the grade right (webapp.access): Gradio hands the wrapper the request first.

        The wrapper keeps on_grade's name and takes the form's values as they are; called without a
        gr.Request (a test, with sign-in off) it checks the same way, as a visitor who is not signed in.
        """
        g = self.grade

        @functools.wraps(on_grade)
        def checked(*args: Any) -> Iterator[dict[Any, Any]]:
            request = args[0] if args and isinstance(args[0], gr.Request) else None
            values = args[1:] if request is not None else args
            try:
                guard = access.grade_guard(self.services, request)
                if guard is not None:
                    guard.check(request_fields(values[:SLOTS], values[SLOTS : 2 * SLOTS]))
            except Exception as error:  # refused (or the fields cannot be read): the message, never a grade
                yield {g.outcome: failure_message(error)}
                return
            yield from on_grade(*values)

        # What Gradio reads to inject the request: a first positional parameter typed gr.Request.
        checked.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
            inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request),
            inspect.Parameter("values", inspect.Parameter.VAR_POSITIONAL)])
        checked.__annotations__ = {"request": gr.Request}
        del checked.__wrapped__  # Gradio must see this signature, not on_grade's
        return checked

    def wire(self, demo: gr.Blocks) -> None:
        """Attach every event. Only `grade` and `status` are API endpoints; see the module doc for the queues."""
        g, h = self.grade, self.history
        g.form.wire(self.on_preset, self.on_rubric, also=[g.preset_info])
        g.load_example.click(self.on_load_example, g.form.preset,
                             [g.form.pass_criteria, g.form.rubric, g.preset_info, g.message, *g.tags, *g.texts],
                             api_visibility=PRIVATE)
        gr.on([tag.change for tag in g.tags], self.on_tags, g.tags, g.texts, api_visibility=PRIVATE, queue=False)
        # Busy at once in the browser; on_grade_check refuses a second grade while one runs (trigger_mode
        # "once" covers only the click's own event, not the grade chained after it) and on_grade_start makes
        # the button busy in Gradio's state too; on_grade_done frees it whatever happened.
        g.grade_button.click(None, js=GRADE_CLICK_JS, queue=False, show_progress="hidden", api_visibility=PRIVATE)
        checked = g.grade_button.click(self.on_grade_check, g.running, g.running, api_visibility=PRIVATE,
                                       queue=False, show_progress="hidden", trigger_mode="once")
        checked.failure(self.on_grade_refused, None, g.note, api_visibility=PRIVATE, queue=False,
                        show_progress="hidden")
        started = checked.success(
            self.on_grade_start, None, [g.message, g.stream, g.panel.column, g.outcome, g.note, g.grade_button,
                                        g.running],
            api_visibility=PRIVATE, queue=False, show_progress="hidden",
        )
        started.then(None, js=SHOW_LIVE_JS, queue=False, show_progress="hidden", api_visibility=PRIVATE)
        started.then(
            self._checked(self.on_grade),
            [*g.tags, *g.texts, g.form.pass_criteria, g.form.rubric, g.max_tokens],
            [g.stream, g.outcome],
            api_visibility=PRIVATE,
            concurrency_id=JUDGE_CONCURRENCY_ID,
            concurrency_limit=1,
            # No progress timer: Gradio redraws it every animation frame, which took a quarter of the speed of
            # a judge on the same CPU as the browser. The live box says it is waiting, then shows the answer.
            show_progress="hidden",
        ).then(
            self.on_grade_done, g.outcome, [g.message, g.stream, *g.panel.outputs, g.graded, g.note, g.grade_button,
                                            g.running],
            api_visibility=PRIVATE, queue=False, show_progress="hidden",
        ).then(None, js=SHOW_RESULT_JS, queue=False, show_progress="hidden", api_visibility=PRIVATE)
        # Room for one batch waiting while another runs; more callers wait in Gradio's queue.
        gr.api(self.grade_api, api_name="grade", concurrency_id=API_CONCURRENCY_ID,
               concurrency_limit=2 * self.batcher.max_batch_size)
        gr.api(self.status_api, api_name="status", queue=False)

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


def _banner(services: Services) -> str:
    info = services.judge.info if services.judge is not None else None
    return render.render_backend_banner(info, services.judge_error, services.judge_loading, services.judge_reason)


def _tab_options(services: Services) -> dict[str, Any]:
    """gr.Tabs settings before the page knows who signed in: with sign-in on, only Label until on_tabs says more."""
    if not services.auth_enabled or services.studies is None:
        return {}
    # "wrap": tabs that do not fit go to a second row rather than into a menu whose buttons no CSS can pick.
    return {"overflow_behavior": "wrap", "selected": "label", "elem_classes": access.hidden_classes(("label",))}


def on_tabs(services: Services, request: gr.Request | None) -> dict[str, Any]:
    """On page load: the tabs this user's role may use, and the one they land on (webapp.access)."""
    user = access.signed_in_user(services, request)
    shown = access.tabs_for(services, user)
    return {"elem_classes": access.hidden_classes(shown), "selected": access.first_tab(shown, user)}


def build_app(services: Services) -> gr.Blocks:
    """The whole GLIDER Studio interface, wired to `services`.

    Launch it with `**launch_options()` and, for sign-in, `**auth_options(services)`.
    """
    with gr.Blocks(title="GLIDER Studio", analytics_enabled=False) as demo:
        with gr.Row(equal_height=True, elem_classes="gl-top"):
            gr.HTML(render.render_header(), scale=6)
            with gr.Column(scale=1, min_width=180, elem_classes="gl-account"):
                user_line = gr.HTML(visible=False, elem_id="gl-user")
                # Relative link: Gradio's own /logout, also when the app is served under a root path.
                logout = gr.Button("Sign out", link="logout", size="sm", visible=False, elem_id="gl-logout")
        banner = gr.HTML(_banner(services), elem_id="gl-banner")
        # While the judge loads in the background, refresh the banner until it is ready (or failed).
        poll = gr.Timer(3.0, active=services.judge_loading is not None)
        poll.tick(lambda: {banner: _banner(services), poll: gr.Timer(active=services.judge_loading is not None)},
                  None, [banner, poll], api_visibility=PRIVATE, queue=False, show_progress="hidden")
        demo.load(lambda: _banner(services), None, banner, api_visibility=PRIVATE, queue=False)
        with gr.Tabs(elem_id="gl-tabs", **_tab_options(services)) as tabs:
            with gr.Tab("Grade", id="grade"):
                grade_tab = GradeTab.create(services.presets)
            with gr.Tab("History", id="history") as history:
                history_tab = HistoryTab.create(history)
            with gr.Tab("Batch", id="batch") as batch:
                batch_tab = BatchTab.create_in(batch, services.presets)
            with gr.Tab("Studies", id="studies") as studies_tab:
                studies = StudiesTab.create_in(studies_tab, services.presets)
            with gr.Tab("Label", id="label") as label_tab:
                label = LabelTab.create_in(label_tab)
            with gr.Tab("Agreement", id="agreement") as agreement_tab:
                agreement = AgreementTab.create_in(agreement_tab)
        Handlers(services, tabs, grade_tab, history_tab).wire(demo)
        if services.auth_enabled:
            def show_tabs(request: gr.Request) -> Any:
                return gr.Tabs(**on_tabs(services, request))

            demo.load(show_tabs, None, tabs, api_visibility=PRIVATE, queue=False, show_progress="hidden")
        BatchHandlers(services, batch_tab, no_judge=_no_judge_message).wire(demo)
        ui = StudyTabs(user_line=user_line, logout=logout, studies=studies, label=label,
                       agreement=agreement, add=grade_tab.add, grade_tags=grade_tab.tags, grade_texts=grade_tab.texts,
                       graded=grade_tab.graded)
        StudyHandlers(services, ui).wire(demo)
    return demo
