"""The Review tab (reviewers and admins): a study's disagreements, most disputed first, an item's labels and
the judge's verdict, and the form that records the adjudicated label (core.studies.review).

Who is asking comes only from the signed-in session (webapp.access.current_user); core checks the role in
the same transaction as each read or write. Every event is private.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import pandas as pd

from core.studies.review import ReviewItem, Reviews
from webapp import access, render
from webapp.components import PRIVATE, Unavailable
from webapp.components import as_id as _as_id
from webapp.components import error_update as _error
from webapp.components import html_update as _html
from webapp.components import notice_update as _notice
from webapp.services import Services
from webapp.studies.layout import stored_view, study_choices
from webapp.studies.review_render import (
    judge_line,
    render_adjudication_history,
    render_review_labels,
)

REVIEW_HEADERS = ["Item", "Human scores", "Spread", "Consensus", "Judge", "|\u0394|", "Confidence", "Adjudicated",
                  "Preview"]
SORT_CHOICES = [("Human vs judge: |\u0394|, then the judge's confidence (confident and wrong first)", "judge"),
                ("Between annotators: spread of their scores", "humans")]
NOT_FOR_YOU = "The Review tab is for reviewers and admins: it shows every annotator's labels and the judge's verdicts."
DASH = "\u2014"


@dataclass
class ReviewTab:
    """Reviewers and admins: triage a study's disagreements and record adjudicated labels."""

    notice: gr.HTML
    body: gr.Column
    study: gr.Dropdown
    sort: gr.Radio
    run: gr.Button
    message: gr.HTML
    table: gr.Dataframe
    item: gr.HTML
    form: gr.Column
    score: gr.Radio
    note: gr.Textbox
    save: gr.Button
    saved: gr.HTML
    shown: gr.State  # the item id in the panel

    @classmethod
    def create_in(cls, tab: gr.Tab) -> "ReviewTab":
        notice = gr.HTML(elem_id="gl-review-notice", visible=False)
        with gr.Column(elem_id="gl-review-body", visible=False) as body:
            with gr.Row(equal_height=True):
                study = gr.Dropdown(choices=[], label="Study", scale=3, elem_id="gl-review-study")
                sort = gr.Radio(choices=SORT_CHOICES, value="judge", label="Sort by disagreement", scale=3,
                                elem_id="gl-review-sort")
                run = gr.Button("Show disagreements", variant="primary", scale=1, elem_id="gl-review-run")
            message = gr.HTML(visible=False, elem_id="gl-review-message")
            table = gr.Dataframe(headers=REVIEW_HEADERS, datatype="str", interactive=False, wrap=True, max_height=360,
                                 label="Labelled items, most disputed first (click a row to review the item)",
                                 visible=False, elem_id="gl-review-table")
            with gr.Row():
                with gr.Column(scale=6):
                    item = gr.HTML(visible=False, elem_id="gl-review-item")
                with gr.Column(scale=3, visible=False, elem_id="gl-review-form") as form:
                    score = gr.Radio(choices=[], label="Adjudicated score", elem_id="gl-review-score",
                                     elem_classes="gl-score-buttons")
                    note = gr.Textbox(label="Note (why this score; kept with the label)", lines=3, max_lines=10,
                                      elem_id="gl-review-note")
                    save = gr.Button("Record adjudicated label", variant="primary", elem_id="gl-review-save")
                    saved = gr.HTML(visible=False, elem_id="gl-review-saved")
        shown = gr.State(None)
        return cls(notice, body, study, sort, run, message, table, item, form, score, note, save, saved, shown)


def review_table(items: Sequence[ReviewItem]) -> pd.DataFrame:
    """The triage list as the tab's table, one row per item."""
    rows = []
    for item in items:
        preview = " \u00b7 ".join(text for text in item.fields.values() if text)[:160]
        if item.external_id:
            preview = f"[{item.external_id}] {preview}"
        settled = item.adjudication
        rows.append([
            str(item.item_id), " ".join(str(label.score) for label in item.labels), str(item.spread),
            DASH if item.consensus is None else str(item.consensus),
            DASH if item.judge_score is None else str(item.judge_score),
            DASH if item.delta is None else str(item.delta),
            DASH if item.judge_confidence is None else f"{item.judge_confidence:.2f}",
            "" if settled is None else f"{settled.score} ({settled.reviewer})", preview,
        ])
    return pd.DataFrame(rows, columns=REVIEW_HEADERS)


@dataclass
class ReviewHandlers:
    """The Review tab's callbacks: each finds the signed-in user, calls core once or twice, returns updates."""

    services: Services
    tab: ReviewTab
    _reviews: Reviews | None = field(default=None, init=False)

    @property
    def reviews(self) -> Reviews:
        if self.services.studies is None:
            raise Unavailable(access.NO_STUDIES)
        if self._reviews is None:
            self._reviews = Reviews(self.services.store)  # the studies' own database
        return self._reviews

    def on_review_load(self, request: gr.Request) -> dict[Any, Any]:
        """On page load: the tab's body and study picker for reviewers and admins, a notice for anyone else."""
        t = self.tab
        try:
            actor = access.current_user(self.services, request)
            if not actor.may_review:
                return {t.notice: _notice(NOT_FOR_YOU), t.body: gr.update(visible=False)}
            assert self.services.studies is not None  # current_user found a user store
            choices = study_choices(self.services.studies.list_studies(actor))
        except Exception as error:
            return {t.notice: _error(error), t.body: gr.update(visible=False)}
        return {t.notice: _html(""), t.body: gr.update(visible=True), t.study: gr.update(choices=choices)}

    def _list(self, request: Any, study_id: Any, sort: Any) -> dict[Any, Any]:
        t = self.tab
        wanted = _as_id(study_id)
        if wanted is None:
            return {t.message: _error("Choose a study first."), t.table: gr.update(visible=False)}
        actor = access.current_user(self.services, request)
        items = self.reviews.review_list(actor, wanted, "humans" if sort == "humans" else "judge")
        if not items:
            return {t.message: _notice("Nobody has labelled an item of this study yet."),
                    t.table: gr.update(visible=False)}
        return {t.message: _html(""), t.table: gr.update(value=review_table(items), visible=True)}

    def on_review_list(self, study_id: Any, sort: Any, request: gr.Request) -> dict[Any, Any]:
        """The study's labelled items, sorted as chosen; the item panel is cleared."""
        t = self.tab
        cleared = {t.item: _html(""), t.form: gr.update(visible=False), t.saved: _html(""), t.shown: None}
        try:
            return {**cleared, **self._list(request, study_id, sort)}
        except Exception as error:
            return {**cleared, t.message: _error(error), t.table: gr.update(visible=False)}

    def _panel(self, request: Any, item_id: int) -> dict[Any, Any]:
        t = self.tab
        actor = access.current_user(self.services, request)
        item = self.reviews.review_item(actor, item_id)
        history = self.reviews.adjudication_history(actor, item_id)
        assert self.services.studies is not None
        study = self.services.studies.get_study(actor, item.study_id)
        view = stored_view(self.services, item.judgment_id)
        verdict = (render.render_subtitle("The judge's verdict") + render.render_score_card(view)
                   + render.render_reasoning(view.reasoning)) if view is not None else render.render_hint(
            "The judge has not graded this item.")
        body = (render.render_item_header(item.item_id, item.external_id)
                + render.render_label_fields(item.fields, (), view.spans if view is not None else ())
                + render_review_labels(item.labels, study.blind)
                + judge_line(item.judge_score, item.judge_confidence, item.consensus)
                + verdict + render_adjudication_history(history))
        low, high = study.scale
        current = item.adjudication.score if item.adjudication is not None else None
        return {
            t.item: _html(f'<div class="gl-review-panel">{body}</div>'),
            t.form: gr.update(visible=True),
            t.score: gr.update(choices=[(str(v), str(v)) for v in range(low, high + 1)],
                               value=None if current is None else str(current)),
            t.note: gr.update(value=""),
            t.shown: item.item_id,
        }

    def on_review_select(self, event: gr.SelectData, request: gr.Request) -> dict[Any, Any]:
        """Open the clicked item: its fields, every human label, the judge's verdict and the history."""
        t = self.tab
        row = event.row_value or []
        item_id = _as_id(row[0] if row else None)
        if item_id is None:
            return gr.skip()  # nothing to change ({} would be read as a value)
        try:
            return {**self._panel(request, item_id), t.saved: _html("")}
        except Exception as error:
            return {t.item: _error(error), t.form: gr.update(visible=False), t.shown: None}

    def on_adjudicate(self, item_id: Any, score: Any, note: Any, study_id: Any, sort: Any,
                      request: gr.Request) -> dict[Any, Any]:
        """Record the adjudicated label of the item in the panel, then refresh the panel and the list."""
        t = self.tab
        wanted = _as_id(item_id)
        value = _as_id(score)
        if wanted is None:
            return {t.saved: _error("Click an item in the list first.")}
        if value is None:
            return {t.saved: _error("Choose the adjudicated score first.")}
        try:
            actor = access.current_user(self.services, request)
            settled = self.reviews.adjudicate(actor, wanted, value, note if isinstance(note, str) else "")
            updates = self._panel(request, wanted)
            updates.update(self._list(request, study_id, sort))
        except Exception as error:
            return {t.saved: _error(error)}
        updates[t.saved] = _notice(f"Recorded {settled.score} as the adjudicated label of item #{settled.item_id}.")
        return updates

    def wire(self, demo: gr.Blocks) -> None:
        """Attach the Review tab's events: all private."""
        t = self.tab

        def on(trigger: Any, fn: Callable[..., Any], inputs: Any, outputs: Any) -> None:
            trigger(fn, inputs, outputs, api_visibility=PRIVATE)

        panel = [t.item, t.form, t.score, t.note, t.shown, t.saved]
        listing = [t.message, t.table]
        on(demo.load, self.on_review_load, None, [t.notice, t.body, t.study])
        on(t.run.click, self.on_review_list, [t.study, t.sort], [*listing, *panel])
        on(t.sort.change, self.on_review_list, [t.study, t.sort], [*listing, *panel])
        on(t.table.select, self.on_review_select, None, panel)
        on(t.save.click, self.on_adjudicate, [t.shown, t.score, t.note, t.study, t.sort], [*listing, *panel])
