"""The Grade tab's "Compare two responses" mode and the `/compare` API (core.pairwise).

`ComparePanel` is the layout (the mode picker above the Grade tab, then the pairwise form and its result),
`CompareHandlers` its callbacks: each converts widget values, calls core.pairwise.compare once, and returns a
`{component: update}` dict. The form's events are private; `/compare` is public, with /grade's guards: the
grade right (webapp.access.grade_tab_guard), the demo limits for anonymous visitors (the Grade tab's own
DemoGate, so /grade and /compare share a visitor's slots) and the judge-not-ready message.

No `from __future__ import annotations` here: Gradio reads the API function's type hints at runtime.
"""

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from core.errors import JudgeError
from core.judge.base import DEFAULT_MAX_NEW_TOKENS
from core.pairwise import OUTPUT_1, OUTPUT_2, A, B, PairRequest, PairResult, compare
from core.pairwise_presets import load_pairwise_presets
from core.presets import Preset
from core.prompt import CONTEXT, GOLD_ANSWER, USER_INPUT
from webapp import access, render
from webapp.compare_render import render_pair_order, render_pair_response, render_pair_verdict
from webapp.components import JUDGE_CONCURRENCY_ID, PRIVATE, RubricForm
from webapp.components import html_update as _html
from webapp.demo_limits import DemoGate, waiting_in_queue
from webapp.services import Services
from webapp.view_models import failure_message

SINGLE, PAIR = "One response", "Compare two responses"
COMPARE_LABEL = "Compare"


@dataclass
class ComparePanel:
    """The mode picker, the single-response form's column it hides, and the pairwise form with its result."""

    mode: gr.Radio
    single: gr.Column  # the Grade tab's own form, shown in the "One response" mode
    column: gr.Column
    form: RubricForm
    load_example: gr.Button
    preset_info: gr.HTML
    context: gr.Textbox
    user_input: gr.Textbox
    response_a: gr.Textbox
    response_b: gr.Textbox
    gold_answer: gr.Textbox
    both_orders: gr.Checkbox
    button: gr.Button
    message: gr.HTML
    verdict: gr.HTML
    shown_a: gr.HTML
    shown_b: gr.HTML
    orders: gr.HTML

    @staticmethod
    def mode_picker() -> gr.Radio:
        """The Grade tab's mode: one response (the form as it always was) or two compared."""
        return gr.Radio([SINGLE, PAIR], value=SINGLE, show_label=False, container=False, elem_id="gl-grade-mode")

    @classmethod
    def create(cls, mode: gr.Radio, single: gr.Column, presets: Sequence[Preset] | None = None) -> "ComparePanel":
        """Build the (hidden) pairwise form inside the current Tab; presets default to the shipped pairwise ones."""
        presets = list(load_pairwise_presets() if presets is None else presets)
        first = presets[0] if presets else None
        with gr.Column(visible=False, elem_id="gl-compare") as column, gr.Row():
            with gr.Column(scale=5, elem_classes="gl-inputs"):
                with gr.Row(equal_height=True):
                    preset = RubricForm.picker(presets, "gl-compare-preset", scale=3)
                    load_example = gr.Button("Load example", scale=1, elem_id="gl-compare-example")
                preset_info = gr.HTML(render.render_preset(first))
                context = gr.Textbox(label=CONTEXT, lines=2, max_lines=12, elem_id="gl-compare-context",
                                     placeholder="Background both responses should rely on (optional)")
                user_input = gr.Textbox(label=USER_INPUT, lines=2, max_lines=12, elem_id="gl-compare-input",
                                        placeholder="The question or instruction both were given (optional)")
                with gr.Row():
                    response_a = gr.Textbox(label="Response A", lines=5, max_lines=20, elem_id="gl-compare-a")
                    response_b = gr.Textbox(label="Response B", lines=5, max_lines=20, elem_id="gl-compare-b")
                gold_answer = gr.Textbox(label=GOLD_ANSWER, lines=1, max_lines=8, elem_id="gl-compare-gold",
                                         placeholder="A reference answer (optional)")
                form = RubricForm.create(presets, preset, criteria_id="gl-compare-criteria",
                                         rubric_id="gl-compare-rubric", scale_id="gl-compare-scale")
                gr.HTML(render.render_hint(
                    f"The responses reach GLIDER as <{OUTPUT_1}> and <{OUTPUT_2}>: the pass criteria should name "
                    "them so, and the rubric must be 0 (MODEL OUTPUT 1 is better) / 1 (MODEL OUTPUT 2 is better)."))
                both_orders = gr.Checkbox(value=True, label="Grade both orders (A,B and B,A) to catch position bias",
                                          elem_id="gl-compare-both")
                button = gr.Button(COMPARE_LABEL, variant="primary", elem_id="gl-compare-run")
            with gr.Column(scale=6, elem_classes="gl-outputs"):
                message = gr.HTML(render.render_hint("Paste two responses, pick criteria and press Compare."),
                                  elem_id="gl-compare-message")
                verdict = gr.HTML(visible=False, elem_id="gl-compare-verdict")
                with gr.Row():
                    shown_a = gr.HTML(visible=False, elem_id="gl-compare-shown-a")
                    shown_b = gr.HTML(visible=False, elem_id="gl-compare-shown-b")
                with gr.Accordion("Each order's reasoning", open=False, elem_id="gl-compare-orders-box"):
                    orders = gr.HTML(elem_id="gl-compare-orders")
        return cls(mode, single, column, form, load_example, preset_info, context, user_input, response_a,
                   response_b, gold_answer, both_orders, button, message, verdict, shown_a, shown_b, orders)

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [self.context, self.user_input, self.response_a, self.response_b, self.gold_answer,
                self.form.pass_criteria, self.form.rubric, self.both_orders]

    @property
    def outputs(self) -> list[Any]:
        return [self.message, self.verdict, self.shown_a, self.shown_b, self.orders]

    def show(self, result: PairResult) -> dict[Any, Any]:
        """The verdict, both responses with every order's highlights, and each order's reasoning."""
        spans = list(dict.fromkeys(span for order in result.orders for span in order.spans))  # once each
        texts = result.request.responses()
        orders = "".join(
            render_pair_order(order.label, order.preferred, order.result.judgment.score, order.result.judgment.status,
                              order.result.judgment.problems, order.result.judgment.reasoning)
            for order in result.orders)
        return {self.message: _html(""),
                self.verdict: _html(render_pair_verdict(result.verdict, result.reason, result.both_orders)),
                self.shown_a: _html(render_pair_response(A, texts[A], spans)),
                self.shown_b: _html(render_pair_response(B, texts[B], spans)),
                self.orders: orders}

    def refuse(self, message: str) -> dict[Any, Any]:
        return {self.message: _html(render.render_error(message)), self.verdict: _html(""),
                self.shown_a: _html(""), self.shown_b: _html(""), self.orders: ""}


class CompareHandlers:
    """The pairwise form's callbacks and the `/compare` API endpoint."""

    def __init__(self, services: Services, panel: ComparePanel, gate: DemoGate,
                 no_judge: Callable[[Services], str]) -> None:
        self.services = services
        self.panel = panel
        self.gate = gate  # the Grade tab's: a visitor's slots are shared by /grade, /compare and both forms
        self.no_judge = no_judge
        self._demo: gr.Blocks | None = None

    def on_mode(self, mode: str) -> dict[Any, Any]:
        pair = mode == PAIR
        return {self.panel.single: gr.update(visible=not pair), self.panel.column: gr.update(visible=pair)}

    def on_compare_preset(self, key: str | None) -> dict[Any, Any]:
        p = self.panel
        chosen = p.form.chosen(key)
        if chosen is None:
            return {p.preset_info: ""}
        return {**p.form.filled(chosen), p.preset_info: render.render_preset(chosen)}

    def on_compare_rubric(self, rubric: str) -> dict[Any, Any]:
        return self.panel.form.scale_of(rubric)

    def on_compare_example(self, key: str | None) -> dict[Any, Any]:
        p = self.panel
        chosen = p.form.chosen(key)
        if chosen is None:
            return {p.message: _html(render.render_error("Choose a preset first, then load its example."))}
        example = chosen.example
        return {**p.form.filled(chosen), p.preset_info: render.render_preset(chosen), p.message: _html(""),
                p.context: example.get(CONTEXT, ""), p.user_input: example.get(USER_INPUT, ""),
                p.response_a: example.get(OUTPUT_1, ""), p.response_b: example.get(OUTPUT_2, ""),
                p.gold_answer: example.get(GOLD_ANSWER, "")}

    def _run(self, request: gr.Request | None, fn_name: str, context: str, user_input: str, response_a: str,
             response_b: str, gold_answer: str, pass_criteria: str, rubric: str, both_orders: bool,
             max_new_tokens: int) -> PairResult:
        """The guards, then one comparison; raises what went wrong (the caller words it)."""
        texts = [context, user_input, response_a, response_b, gold_answer]
        guard = access.grade_tab_guard(self.services, request)
        if guard is not None:
            guard.check(dict(zip((CONTEXT, USER_INPUT, OUTPUT_1, OUTPUT_2, GOLD_ANSWER), texts, strict=True)))
        judge = self.services.judge
        if judge is None:
            raise JudgeError(self.no_judge(self.services))
        asked = PairRequest(response_a=response_a or "", response_b=response_b or "",
                            pass_criteria=pass_criteria or "", rubric=rubric or "", context=context or "",
                            user_input=user_input or "", gold_answer=gold_answer or "",
                            both_orders=bool(both_orders), max_new_tokens=int(max_new_tokens or DEFAULT_MAX_NEW_TOKENS))
        waiting = functools.partial(waiting_in_queue, self._demo, fn_name)
        with self.gate.admit(request, [str(t or "") for t in [*texts, asked.pass_criteria, asked.rubric]], waiting):
            return compare(judge, asked, self.services.store)

    def on_compare(self, context: str, user_input: str, response_a: str, response_b: str, gold_answer: str,
                   pass_criteria: str, rubric: str, both_orders: bool,
                   request: gr.Request | None = None) -> dict[Any, Any]:
        """Compare the two responses of the form; the verdict and both orders, or why there is none."""
        try:
            result = self._run(request, "on_compare", context, user_input, response_a, response_b, gold_answer,
                               pass_criteria, rubric, both_orders, DEFAULT_MAX_NEW_TOKENS)
        except Exception as error:  # core's errors and anything else: a message, never a traceback
            return self.panel.refuse(failure_message(error))
        return self.panel.show(result)

    def compare_api(
        self,
        context: str,
        user_input: str,
        response_a: str,
        response_b: str,
        gold_answer: str,
        pass_criteria: str,
        rubric: str,
        both_orders: bool = True,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        request: gr.Request | None = None,  # Gradio passes it (who is signed in); not an API parameter
    ) -> dict[str, Any]:
        """Compare two responses with GLIDER: which is better under the pass criteria (pairwise, 0/1 rubric).

        The responses are sent as MODEL OUTPUT 1 and MODEL OUTPUT 2, in both orders by default. Returns verdict
        ("A", "B", "inconsistent" when the orders disagree, "undecided" when an answer had no readable score),
        reason, both_orders, judgment_ids and, per order, its grade (as /grade returns it) with the order, the
        preferred response and spans whose field is "A" or "B" (offsets into that response).

        Args:
            context: background both responses should rely on (may be empty)
            user_input: the question or instruction both were given (may be empty)
            response_a: the first response
            response_b: the second response
            gold_answer: a reference answer (may be empty)
            pass_criteria: what makes one output better, naming MODEL OUTPUT 1 and MODEL OUTPUT 2
            rubric: "0: The MODEL OUTPUT 1 is better ..." / "1: The MODEL OUTPUT 2 is better ..." (empty: that one)
            both_orders: grade A,B and B,A (False: only A,B, twice as fast, position bias unchecked)
            max_new_tokens: the most tokens GLIDER may write per order
        """
        try:
            result = self._run(request, "compare", context, user_input, response_a, response_b, gold_answer,
                               pass_criteria, rubric, both_orders, max_new_tokens)
        except Exception as error:  # gradio_client raises with this message
            raise gr.Error(failure_message(error), print_exception=False) from error
        return result.to_dict()

    compare_api.__name__ = "compare"  # the endpoint's (and MCP tool's) name

    def wire(self, demo: gr.Blocks) -> None:
        """Attach the mode picker, the pairwise form's events and the public `/compare` endpoint."""
        p = self.panel
        self._demo = demo
        p.mode.change(self.on_mode, p.mode, [p.single, p.column], api_visibility=PRIVATE, queue=False,
                      show_progress="hidden")
        p.form.preset.change(self.on_compare_preset, p.form.preset, [p.form.pass_criteria, p.form.rubric,
                                                                      p.preset_info], api_visibility=PRIVATE)
        p.form.rubric.change(self.on_compare_rubric, p.form.rubric, p.form.scale, api_visibility=PRIVATE,
                             queue=False)
        p.load_example.click(self.on_compare_example, p.form.preset,
                             [p.form.pass_criteria, p.form.rubric, p.preset_info, p.message, p.context, p.user_input,
                              p.response_a, p.response_b, p.gold_answer], api_visibility=PRIVATE)
        p.button.click(self.on_compare, p.inputs, p.outputs, api_visibility=PRIVATE,
                       concurrency_id=JUDGE_CONCURRENCY_ID, concurrency_limit=1, trigger_mode="once")
        gr.api(self.compare_api, api_name="compare", concurrency_id=JUDGE_CONCURRENCY_ID, concurrency_limit=1)
