"""The Grade tab: one item graded with its answer streamed live, then rendered; and the `/grade` API.

`GradeTab` is the layout, `GradeHandlers` its callbacks (each converts widget values, calls core once and
returns `{component: update}`), and the `*_JS` strings the browser-side steps of the Grade button. The
page takes no lock around generations: a back-end that must run one at a time serialises them itself
(core.judge.base.JudgeBackend's concurrency rule); the streamed Grade button queues in the judge's
concurrency group. Concurrent `/grade` API calls are batched into one generation (webapp.grade_queue).

No `from __future__ import annotations` here: Gradio reads the API function's type hints at runtime.
"""

import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import gradio as gr

from core.errors import GliderError, JudgeError
from core.grading import GradeRequest, GradeResult, grade_batch, grade_stream
from core.judge.base import DEFAULT_MAX_NEW_TOKENS
from core.presets import Preset
from core.prompt import CONTEXT, DEFAULT_TAGS, GOLD_ANSWER, MODEL_OUTPUT, USER_INPUT
from webapp import access, charts, render
from webapp.components import JUDGE_CONCURRENCY_ID, PRIVATE, RubricForm
from webapp.components import html_update as _html
from webapp.demo_limits import DemoGate, DemoLimits, waiting_in_queue
from webapp.grade_queue import GradeBatcher
from webapp.services import Services
from webapp.studies import AddToStudy
from webapp.view_models import SLOTS, JudgmentView, failure_message, fill_slots, request_fields

log = logging.getLogger(__name__)

# `/grade` calls queue in their own group so that several can wait in the batcher at once (see
# webapp.grade_queue); the back-end, not this group, keeps them apart from other generations.
API_CONCURRENCY_ID = "grade-api"
# The live reasoning box is redrawn at most this often: every redraw is a queue message the page renders,
# and a fast judge makes tokens much faster than anyone reads them.
STREAM_EVERY_S = 0.1
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

_PLACEHOLDERS = {
    CONTEXT: "Background the answer should rely on (retrieved passages, a document ...)",
    USER_INPUT: "The question or instruction the model was given",
    MODEL_OUTPUT: "The text to be judged",
    GOLD_ANSWER: "A reference answer, if you have one",
}


def no_judge_message(services: Services) -> str:
    """Why grading is unavailable: the judge is still loading, or failed to load (and how to fix it)."""
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


class GradeHandlers:
    """The Grade tab's callbacks and the `grade` / `status` API endpoints."""

    def __init__(self, services: Services, grade: GradeTab) -> None:
        self.services = services
        self.grade = grade
        self.batcher: GradeBatcher[GradeResult] = GradeBatcher(
            self._grade_many, max_batch_size=services.api_batch_size
        )
        # Anonymous visitors of a public demo: grades in flight and input size (webapp.demo_limits).
        self.demo = DemoGate(services.demo_limits or DemoLimits())
        self._demo: gr.Blocks | None = None  # set by wire(): its queue says which grades wait


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
            yield {g.outcome: no_judge_message(self.services)}
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
        return {"state": "failed", "judge": None, "error": no_judge_message(services), "reason": services.judge_reason}

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

        Args:
            context: background the answer should rely on (may be empty)
            user_input: the question or instruction the model was given (may be empty)
            model_output: the text to be judged
            gold_answer: a reference answer (may be empty)
            pass_criteria: what a good answer does, referring to the fields by their tags
            rubric: one line per score, e.g. "0: fails the criteria" and "1: meets them"
            max_new_tokens: the most tokens GLIDER may write
        """
        try:
            fields = {CONTEXT: context or "", USER_INPUT: user_input or "", MODEL_OUTPUT: model_output or "",
                      GOLD_ANSWER: gold_answer or ""}
            guard = access.grade_tab_guard(self.services, request)
            if guard is not None:
                guard.check(fields)
        except Exception as error:  # refused before anything else, judge or not
            raise gr.Error(failure_message(error), print_exception=False) from error
        if self.services.judge is None:
            raise gr.Error(no_judge_message(self.services), print_exception=False)
        try:
            asked = GradeRequest(fields=fields, pass_criteria=pass_criteria or "", rubric=rubric or "",
                                 max_new_tokens=int(max_new_tokens or DEFAULT_MAX_NEW_TOKENS))
            # An anonymous visitor of a public demo holds one of their slots while the grade waits and runs.
            waiting = functools.partial(waiting_in_queue, self._demo, "grade")
            with self.demo.admit(request, [*fields.values(), asked.pass_criteria, asked.rubric], waiting):
                # Graded together with the /grade calls that arrive meanwhile; this call's own error comes back here.
                return self.batcher.submit(asked).to_dict()
        except Exception as error:  # gradio_client raises with this message
            raise gr.Error(failure_message(error), print_exception=False) from error

    # Gradio names each MCP tool (and each event) after its function: agents see the tools `grade` and `status`.
    grade_api.__name__ = "grade"
    status_api.__name__ = "status"

    def _grade_many(self, requests: Sequence[GradeRequest]) -> list[GradeResult | GliderError]:
        """One batch of /grade calls: one batched generation where the back-end has one (core.grading.grade_batch)."""
        judge = self.services.judge
        if judge is None:
            raise JudgeError(no_judge_message(self.services))
        return grade_batch(judge, requests, self.services.store)

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
                guard = access.grade_tab_guard(self.services, request)
                if guard is not None:
                    guard.check(request_fields(values[:SLOTS], values[SLOTS : 2 * SLOTS]))
            except Exception as error:  # refused (or the fields cannot be read): the message, never a grade
                yield {g.outcome: failure_message(error)}
                return
            texts = [*values[SLOTS : 2 * SLOTS], *values[2 * SLOTS : 2 * SLOTS + 2]]  # fields, criteria, rubric
            try:
                waiting = functools.partial(waiting_in_queue, self._demo, on_grade.__name__)
                slot = self.demo.acquire(request, [str(text or "") for text in texts], waiting)
            except Exception as error:  # an anonymous visitor past a demo limit (webapp.demo_limits)
                yield {g.outcome: failure_message(error)}
                return
            try:
                yield from on_grade(*values)
            finally:  # also when the page closes mid-grade (Gradio closes the generator)
                self.demo.release(slot)

        # What Gradio reads to inject the request: a first positional parameter typed gr.Request.
        checked.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
            inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request),
            inspect.Parameter("values", inspect.Parameter.VAR_POSITIONAL)])
        checked.__annotations__ = {"request": gr.Request}
        del checked.__wrapped__  # Gradio must see this signature, not on_grade's
        return checked

    def wire(self, demo: gr.Blocks) -> None:
        """Attach the Grade tab's events and the `grade` and `status` API endpoints (the only ones)."""
        g = self.grade
        self._demo = demo
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
