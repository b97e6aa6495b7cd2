"""The Label tab (annotators and admins): one item at a time, a score per button, evidence spans, the blind
reveal, and the annotator's own labels to correct. See webapp.studies.layout for who may do what.

Its keyboard (assets/label-keys.js, installed once per page by Blocks.launch(js=...)) and the Mark selection
button's browser step (assets/mark-selection.js) are scripts in assets/.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr
import pandas as pd

from core.grading import FieldSpan
from core.prompt import rubric_levels
from core.studies import Annotation, Item, Study, User
from webapp import render
from webapp.components import PRIVATE, Unavailable, asset_text
from webapp.components import as_id as _as_id
from webapp.components import error_update as _error
from webapp.components import html_update as _html
from webapp.components import notice_update as _notice
from webapp.studies.layout import stored_view, study_choices
from webapp.studies.pair_label import SLOT_BUTTONS, PairLabelHandlers, confirm_text, my_choice, render_pair_summary
from webapp.view_models import add_span, failure_message, format_time, place_selection, progress_line, scale_values

# Labelling events share one group that runs several at once: each is a few short database calls, and with
# Gradio's default of one at a time per event, 50 annotators waited ~4 s per submit (tests/test_load.py).
LABEL_CONCURRENCY_ID = "label"
LABEL_CONCURRENCY_LIMIT = 8
MY_LABEL_HEADERS = ["Item", "External id", "Your score", "Labelled"]
SCORE_LABEL = "Your score (keys: type its number, Enter submits, S skips)"
LEVEL_SEPARATOR = " \u2014 "  # between a score and its level's text on the score buttons

# The keyboard: scores typed as numbers, Enter presses the primary button, S skips (Blocks.launch(js=...)).
LABEL_KEYS_JS = asset_text("label-keys.js")
# Mark selection's browser step: the selection as {"field", "start", "end", "text"} in code points.
MARK_SELECTION_JS = asset_text("mark-selection.js")


def _score_choices(study: Study) -> list[tuple[str, str]]:
    """The score buttons: each score with its rubric level's text (the page shortens a long one until it is
    hovered, focused or chosen; the full text stays in the button for screen readers)."""
    levels = dict(rubric_levels(study.rubric))
    return [(f"{value}{LEVEL_SEPARATOR}{levels[value]}" if levels.get(value) else str(value), str(value))
            for value in scale_values(study.scale)]


@dataclass(frozen=True)
class Cursor:
    """Where one annotator's Label tab is (kept in gr.State, so on the server, per browser session)."""

    study_id: int | None = None
    item_id: int | None = None
    mode: str = "none"  # "label" (a new item), "reveal" (just submitted, blind), "edit" (a previous label)
    annotation_id: int | None = None
    submitted: int | None = None  # the score just submitted, while revealing
    shown_at: float = 0.0
    spans: tuple[dict[str, Any], ...] = ()
    skipped: tuple[int, ...] = ()


@dataclass
class LabelTab:
    """Annotators: one item at a time, a score per button (with its rubric level), evidence spans, blind reveal,
    and their own labels (one back, or the whole list) to correct."""

    tab: gr.Tab
    notice: gr.HTML
    study: gr.Dropdown
    refresh: gr.Button
    summary: gr.HTML
    progress: gr.HTML
    message: gr.HTML
    work: gr.Column
    item_header: gr.HTML
    fields: gr.HTML
    marking: gr.Row
    mark: gr.Button
    clear: gr.Button
    selection: gr.Textbox
    evidence: gr.HTML
    model: gr.HTML
    score: gr.Radio
    comment: gr.Textbox
    submit: gr.Button
    skip: gr.Button
    previous: gr.Button
    resume: gr.Button
    reveal: gr.Row
    reveal_text: gr.HTML
    keep: gr.Button
    change: gr.Button
    mine_box: gr.Accordion
    mine: gr.Dataframe
    cursor: gr.State
    saved: gr.BrowserState
    pair_row: gr.Row  # a pairwise item's answers (webapp.studies.pair_label)
    pick_1: gr.Button
    pick_2: gr.Button
    pick_tie: gr.Button

    @classmethod
    def create_in(cls, tab: gr.Tab) -> "LabelTab":
        notice = gr.HTML(elem_id="gl-label-notice", visible=False)
        with gr.Row(equal_height=True):
            study = gr.Dropdown(choices=[], label="Study", scale=4, elem_id="gl-label-study")
            refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id="gl-label-refresh")
        summary = gr.HTML(visible=False, elem_id="gl-label-summary")
        # Outside the item, so that an annotator who has labelled everything can still go back to a label.
        with gr.Row(elem_id="gl-label-nav", elem_classes="gl-label-nav"):
            progress = gr.HTML(visible=False, scale=1, min_width=240, elem_id="gl-label-progress")
            previous = gr.Button("\u2190 Previous", size="sm", scale=0, min_width=110, visible=False,
                                 elem_id="gl-label-previous")
            resume = gr.Button("Back to new items", size="sm", scale=0, min_width=150, visible=False,
                               elem_id="gl-label-resume")
        message = gr.HTML(visible=False, elem_id="gl-label-message")
        with gr.Row(visible=False, elem_id="gl-label-work") as work:
            with gr.Column(scale=6):
                item_header = gr.HTML(elem_id="gl-label-item")
                fields = gr.HTML(elem_id="gl-label-fields")
                with gr.Row() as marking:
                    mark = gr.Button("Mark selection as evidence", size="sm", elem_id="gl-label-mark")
                    clear = gr.Button("Clear evidence", size="sm", elem_id="gl-label-clear")
                selection = gr.Textbox(visible=False, elem_id="gl-label-selection")
                evidence = gr.HTML(elem_id="gl-label-evidence")
            with gr.Column(scale=4, elem_classes="gl-label-side"):
                model = gr.HTML(visible=False, elem_id="gl-label-model")
                reveal_text = gr.HTML(visible=False, elem_id="gl-label-reveal-text")
                score = gr.Radio(choices=[], label=SCORE_LABEL, elem_id="gl-label-score",
                                 elem_classes="gl-score-buttons")
                comment = gr.Textbox(label="Comment (optional)", lines=2, max_lines=8, elem_id="gl-label-comment")
                with gr.Row(visible=False, elem_id="gl-label-pair") as pair_row:
                    pick_1 = gr.Button(SLOT_BUTTONS["1"], elem_id="gl-label-pick-1")
                    pick_2 = gr.Button(SLOT_BUTTONS["2"], elem_id="gl-label-pick-2")
                    pick_tie = gr.Button(SLOT_BUTTONS["tie"], elem_id="gl-label-pick-tie")
                with gr.Row():
                    submit = gr.Button("Submit", variant="primary", elem_id="gl-label-submit")
                    skip = gr.Button("Skip", elem_id="gl-label-skip")
                with gr.Row(visible=False, elem_id="gl-label-reveal") as reveal:
                    keep = gr.Button("Keep my score", variant="primary", elem_id="gl-label-keep")
                    change = gr.Button("Change to \u2026", interactive=False, elem_id="gl-label-change")
        # Never updated from the server: an update of an Accordion's props can swallow the next click on it.
        with gr.Accordion("My labels (newest first; click one to open it)", open=False,
                          elem_id="gl-label-mine-box") as mine_box:
            mine = gr.Dataframe(headers=MY_LABEL_HEADERS, datatype="str", interactive=False, wrap=True,
                                max_height=360, show_search="search", show_label=False, elem_id="gl-label-mine",
                                label="My labels")
        cursor = gr.State(Cursor())
        # The study chosen last in this browser, and by whom: a reload opens it again (see on_label_restore).
        saved = gr.BrowserState({}, storage_key="glider-label-study")
        return cls(tab, notice, study, refresh, summary, progress, message, work, item_header, fields, marking, mark,
                   clear, selection, evidence, model, score, comment, submit, skip, previous, resume, reveal,
                   reveal_text, keep, change, mine_box, mine, cursor, saved, pair_row, pick_1, pick_2, pick_tie)

    @property
    def outputs(self) -> list[Any]:
        return [self.cursor, self.notice, self.summary, self.progress, self.message, self.work, self.item_header,
                self.fields, self.marking, self.evidence, self.model, self.score, self.comment, self.submit, self.skip,
                self.previous, self.resume, self.reveal, self.reveal_text, self.keep, self.change, self.mine,
                self.pair_row, self.pick_1, self.pick_2, self.pick_tie]


# --- callbacks -------------------------------------------------------------------------------------


@dataclass
class LabelHandlers(PairLabelHandlers):
    """The Label tab's callbacks."""

    def _label_error(self, error: Exception | str, cursor: Cursor | None = None) -> dict[Any, Any]:
        updates: dict[Any, Any] = {self.ui.label.message: _error(error)}
        if cursor is not None:
            updates[self.ui.label.cursor] = cursor
        return updates

    def _label_empty(self, cursor: Cursor, text: str, *, error: bool = False) -> dict[Any, Any]:
        lt = self.ui.label
        return {lt.cursor: cursor, lt.work: gr.update(visible=False), lt.resume: gr.update(visible=False),
                lt.message: _error(text) if error else _notice(text) if text else _html("")}

    def _header(self, actor: User, study: Study) -> dict[Any, Any]:
        """The study's summary (with what each score means), the progress line and the annotator's own labels."""
        lt = self.ui.label
        p = self._studies.progress(actor, study.id)
        summary = (render_pair_summary(study.name, study.description, study.pass_criteria, study.allow_tie,
                                       study.blind) if study.pairwise else
                   render.render_study_summary(study.name, study.description, study.pass_criteria, study.scale,
                                               study.blind, rubric_levels(study.rubric)))
        return {
            lt.summary: _html(summary + render.render_guidelines(study.guidelines)),
            lt.progress: _html(render.render_progress(progress_line(p.labelled_by_me, p.total_items,
                                                                    p.items_complete, p.overlap_target,
                                                                    p.assigned_to_me))),
            lt.notice: _html(""),
            lt.previous: gr.update(visible=True),
            lt.mine: self._my_label_table(actor, study),
        }

    def _my_label_table(self, actor: User, study: Study) -> pd.DataFrame:
        """The annotator's own labels in the study, newest first (a revised score also shows the first one)."""
        rows = []
        for annotation, external_id in reversed(self._studies.my_labels(actor, study.id)):
            score = my_choice(annotation)  # a pairwise label in the annotator's slots, else the score
            if annotation.score != annotation.score_before_reveal:
                score += f" (first {my_choice(annotation, annotation.score_before_reveal)})"
            rows.append([str(annotation.item_id), external_id or "", score, format_time(annotation.created_at)])
        return pd.DataFrame(rows, columns=MY_LABEL_HEADERS)

    def _show(self, actor: User, study: Study, item: Item, cursor: Cursor, *, message: str = "",
              reveal_model: bool, annotation: Annotation | None = None) -> dict[Any, Any]:
        """Updates that put one item on screen in the cursor's mode."""
        lt = self.ui.label
        view = stored_view(self.services, item.judgment_id) if reveal_model else None
        model_spans: Sequence[FieldSpan] = view.spans if view is not None else ()
        model_html = ""
        if reveal_model:
            model_html = (render.render_subtitle("The model's verdict") + render.render_score_card(view)
                          + render.render_reasoning(view.reasoning)) if view is not None else render.render_hint(
                "The model has not graded this item yet.")
        choices = _score_choices(study)
        described = any(label != value for label, value in choices)
        revealing, editing = cursor.mode == "reveal", cursor.mode == "edit"
        score_value = (str(cursor.submitted) if revealing else
                       str(annotation.score) if editing and annotation is not None else None)
        note = ""
        if editing and annotation is not None:
            note = f"Your label from {format_time(annotation.created_at)}; change it and press Save changes."
        updates: dict[Any, Any] = {
            lt.cursor: cursor,
            lt.work: gr.update(visible=True),
            lt.item_header: render.render_item_header(item.id, item.external_id, note),
            lt.fields: render.render_label_fields(item.fields, cursor.spans, model_spans),
            lt.evidence: render.render_evidence(item.fields, cursor.spans),
            lt.model: _html(model_html),
            lt.score: gr.update(choices=choices, value=score_value, interactive=True, visible=True,
                                elem_classes=["gl-score-buttons", *(["gl-score-levels"] if described else [])]),
            lt.submit: gr.update(value="Save changes" if editing else "Submit", visible=not revealing),
            lt.skip: gr.update(visible=cursor.mode == "label"),
            lt.resume: gr.update(visible=editing),  # a reveal is answered first: new items wait for it
            lt.previous: gr.update(visible=True),
            lt.reveal: gr.update(visible=revealing),
            lt.marking: gr.update(visible=not revealing),
            lt.message: _notice(message) if message else _html(""),
            lt.reveal_text: _html(""),
        }
        if revealing:  # the comment was saved with the score; confirming changes only the score
            updates[lt.comment] = (gr.update(interactive=False) if annotation is None
                                   else gr.update(value=annotation.comment, interactive=False))
        else:
            updates[lt.comment] = gr.update(value=annotation.comment if editing and annotation is not None else "",
                                            interactive=True)
        if revealing:
            model_score = view.score if view is not None else None
            updates[lt.reveal_text] = _html(render.render_reveal(int(cursor.submitted or 0), model_score,
                                                                 study.blind))
            updates[lt.keep] = gr.update(value=f"Keep my score ({cursor.submitted})", variant="primary")
            updates[lt.change] = gr.update(value="Change to \u2026", interactive=False, variant="secondary",
                                           visible=True)
        if study.pairwise:  # the responses side by side and answer buttons instead of scores and spans
            updates.update(self._pair_show(actor, study, item, cursor, annotation, reveal_model))
        else:
            updates[lt.pair_row] = gr.update(visible=False)
        return updates

    def _open_label(self, actor: User, study: Study, annotation: Annotation, cursor: Cursor,
                    message: str = "") -> dict[Any, Any]:
        """One of the annotator's own labels on screen: at its reveal while that is unanswered, else to edit."""
        item = self._studies.get_item(actor, annotation.item_id)
        spans = tuple(dict(s) for s in annotation.spans)
        if study.blind and annotation.score_after_reveal is None and item.judgment_id is not None:
            revealing = replace(cursor, study_id=study.id, item_id=item.id, mode="reveal", annotation_id=annotation.id,
                                submitted=annotation.score, spans=spans)
            note = (f"You have not yet kept or changed this {'choice' if study.pairwise else 'score'} since the "
                    f"{'judge' if study.pairwise else 'model'}'s verdict was shown.")
            return {**self._header(actor, study),
                    **self._show(actor, study, item, revealing, reveal_model=True, annotation=annotation,
                                 message=" ".join(m for m in (message, note) if m))}
        editing = replace(cursor, study_id=study.id, item_id=item.id, mode="edit", annotation_id=annotation.id,
                          submitted=None, spans=spans)
        return {**self._header(actor, study),
                **self._show(actor, study, item, editing, reveal_model=True, annotation=annotation, message=message)}

    def _next(self, actor: User, study: Study, cursor: Cursor, message: str = "") -> dict[Any, Any]:
        """The next item to label (from the database, so a reload resumes at the right place).

        A blind label whose reveal was left unanswered (the page was reloaded on it) comes back first.
        """
        studies = self._studies
        skipped = cursor.skipped if cursor.study_id == study.id else ()
        pending = studies.pending_reveal(actor, study.id)
        if pending is not None:
            return self._open_label(actor, study, pending, Cursor(study_id=study.id, skipped=skipped), message)
        item = studies.next_item(actor, study.id, skip=skipped)
        if item is None and skipped:  # only skipped items are left: they come round again
            skipped = ()
            item = studies.next_item(actor, study.id)
            if item is not None:
                message = " ".join(m for m in (message, "Only the items you skipped are left; here they are again.")
                                   if m)
        fresh = Cursor(study_id=study.id, skipped=skipped)
        header = self._header(actor, study)
        if item is None:
            done = ("You have labelled every item of this study that needs you. Thank you! Your labels are under "
                    "My labels below, to look at or correct.")
            return {**header, **self._label_empty(fresh, " ".join(m for m in (message, done) if m))}
        cursor = replace(fresh, item_id=item.id, mode="label", shown_at=time.monotonic())
        return {**header, **self._show(actor, study, item, cursor, message=message, reveal_model=not study.blind)}

    def _load(self, request: gr.Request, cursor: Cursor) -> tuple[User, Study, Item]:
        actor = self.actor(request)
        if cursor.study_id is None or cursor.item_id is None:
            raise Unavailable("Choose a study first.")
        return actor, self._studies.get_study(actor, cursor.study_id), self._studies.get_item(actor, cursor.item_id)

    def on_label_study(self, study_id: Any, cursor: Cursor, request: gr.Request) -> dict[Any, Any]:
        """Open a study: its next item (or an unanswered reveal); remember the choice in this browser."""
        lt = self.ui.label
        wanted = _as_id(study_id)
        closed = {lt.summary: _html(""), lt.progress: _html(""), lt.previous: gr.update(visible=False),
                  lt.mine: pd.DataFrame([], columns=MY_LABEL_HEADERS)}
        if wanted is None:
            return {**self._label_empty(Cursor(), ""), **closed, lt.saved: {}}
        try:
            actor = self.actor(request)
            study = self._studies.get_study(actor, wanted)
            return {**self._next(actor, study, cursor if cursor.study_id == wanted else Cursor()),
                    lt.saved: {"user": actor.username, "study": study.id}}
        except Exception as error:
            return {**self._label_empty(Cursor(), failure_message(error), error=True), **closed}

    def on_label_restore(self, saved: Any, request: gr.Request) -> dict[Any, Any]:
        """On page load: choose the study this user had open in this browser (or their only study, for an
        annotator); choosing it opens it, so a reload comes back to the same study and item."""
        lt = self.ui.label
        actor, _problem = self._optional_actor(request)
        if actor is None:
            return gr.skip()  # on_session says why
        try:
            studies = self._studies.list_studies(actor)
        except Exception:  # on_session reports it
            return gr.skip()
        ids = [study.id for study in studies]
        wanted = _as_id(saved.get("study")) if isinstance(saved, Mapping) and saved.get("user") == actor.username \
            else None
        if wanted not in ids:
            wanted = ids[0] if len(ids) == 1 and not actor.is_admin else None
        if wanted is None:
            return gr.skip()
        return {lt.study: gr.update(choices=study_choices(studies), value=wanted)}

    def on_label_refresh(self, request: gr.Request) -> dict[Any, Any]:
        """Refresh every study picker (the item on screen stays)."""
        lt = self.ui.label
        try:
            return {**self._pickers(self.actor(request)), lt.notice: _html("")}
        except Exception as error:
            return {lt.notice: _error(error)}

    def on_mark(self, selection: str | None, cursor: Cursor, request: gr.Request) -> dict[Any, Any]:
        lt = self.ui.label
        try:
            actor, study, item = self._load(request, cursor)
            if cursor.mode == "reveal":
                return self._label_error("Your label is submitted; keep or change the score first.", cursor)
            span = place_selection(item.fields, selection)
        except Exception as error:
            return self._label_error(error, cursor)
        cursor = replace(cursor, spans=tuple(add_span(cursor.spans, span)))
        shown = cursor.mode == "edit" or not study.blind
        model_spans = self._model_spans(item) if shown else ()
        return {lt.cursor: cursor, lt.fields: render.render_label_fields(item.fields, cursor.spans, model_spans),
                lt.evidence: render.render_evidence(item.fields, cursor.spans), lt.message: _html("")}

    def on_clear_marks(self, cursor: Cursor, request: gr.Request) -> dict[Any, Any]:
        lt = self.ui.label
        try:
            actor, study, item = self._load(request, cursor)
        except Exception as error:
            return self._label_error(error, cursor)
        if cursor.mode == "reveal":
            return self._label_error("Your label is submitted; keep or change the score first.", cursor)
        cursor = replace(cursor, spans=())
        shown = cursor.mode == "edit" or not study.blind
        return {lt.cursor: cursor,
                lt.fields: render.render_label_fields(item.fields, (), self._model_spans(item) if shown else ()),
                lt.evidence: render.render_evidence(item.fields, ()), lt.message: _html("")}

    def _model_spans(self, item: Item) -> Sequence[FieldSpan]:
        view = stored_view(self.services, item.judgment_id)
        return view.spans if view is not None else ()

    def on_submit(self, score: Any, comment: str | None, cursor: Cursor, request: gr.Request) -> dict[Any, Any]:
        """Store the label (committed at once); in a blind study, then reveal the model's verdict.

        An edit (a label opened again) changes the current score only: the score given before the
        reveal stays as it was (core.studies.Studies.edit), so a later change counts as a revision.
        """
        try:
            actor, study, item = self._load(request, cursor)
            if score in (None, ""):
                return self._label_error("Choose a score first (click it, or type its number).", cursor)
            value = int(score)
            if cursor.mode == "edit" and cursor.annotation_id is not None:
                saved = self._studies.edit(actor, cursor.annotation_id, score=value, comment=comment or "",
                                           spans=list(cursor.spans))
                return {**self._header(actor, study),
                        **self._show(actor, study, item, cursor, reveal_model=True, annotation=saved,
                                     message=f"Saved your changes to item #{item.id}: score {saved.score}.")}
            if cursor.mode != "label":
                return self._label_error("This item is already submitted.", cursor)
            seconds = max(0.0, time.monotonic() - cursor.shown_at) if cursor.shown_at else 0.0
            annotation = self._studies.submit(actor, item.id, value, spans=list(cursor.spans),
                                              comment=comment or "", seconds=round(seconds, 3))
            # Read the item again: in a blind study core gives an annotator its judgment only now.
            item = self._studies.get_item(actor, item.id)
        except Exception as error:
            return self._label_error(error, cursor)
        if study.blind and item.judgment_id is not None:
            revealing = replace(cursor, mode="reveal", annotation_id=annotation.id, submitted=annotation.score)
            return {**self._header(actor, study), **self._show(actor, study, item, revealing, reveal_model=True)}
        note = " The model has not graded this item yet." if study.blind else ""
        return self._next(actor, study, cursor, f"Saved your score {annotation.score} for item #{item.id}.{note}")

    def on_score_change(self, score: Any, cursor: Cursor) -> dict[Any, Any]:
        """While revealing, the score buttons choose what "Change to …" changes the label to; the button that
        Enter presses (the primary one) is "Change to …" once another score is chosen, else "Keep my score"."""
        lt = self.ui.label
        if cursor.mode != "reveal" or score in (None, ""):
            return gr.skip()  # nothing to change ({} would be read as a value)
        changed = str(score) != str(cursor.submitted)
        return {lt.change: gr.update(value=f"Change to {score}" if changed else "Change to \u2026",
                                     interactive=changed, variant="primary" if changed else "secondary"),
                lt.keep: gr.update(variant="secondary" if changed else "primary")}

    def _confirm(self, score: Any, cursor: Cursor, request: gr.Request) -> dict[Any, Any]:
        try:
            actor, study, item = self._load(request, cursor)
            if cursor.mode != "reveal" or cursor.annotation_id is None:
                return self._label_error("There is no submitted score to confirm.", cursor)
            confirmed = self._studies.confirm_after_reveal(actor, cursor.annotation_id, int(score))
        except Exception as error:
            return self._label_error(error, cursor)
        if study.pairwise:
            text = confirm_text(item.id, confirmed)
        elif confirmed.score_after_reveal == confirmed.score_before_reveal:
            text = f"Kept your score {confirmed.score_before_reveal} for item #{item.id}."
        else:
            text = (f"Changed your score for item #{item.id} from {confirmed.score_before_reveal} to "
                    f"{confirmed.score_after_reveal}.")
        return self._next(actor, study, cursor, text)

    def on_keep(self, cursor: Cursor, request: gr.Request) -> dict[Any, Any]:
        return self._confirm(cursor.submitted, cursor, request)

    def on_change(self, score: Any, cursor: Cursor, request: gr.Request) -> dict[Any, Any]:
        if score in (None, ""):
            return self._label_error("Choose the score to change to.", cursor)
        return self._confirm(score, cursor, request)

    def on_skip(self, cursor: Cursor, request: gr.Request) -> dict[Any, Any]:
        try:
            actor, study, item = self._load(request, cursor)
        except Exception as error:
            return self._label_error(error, cursor)
        skipped = tuple(dict.fromkeys((*cursor.skipped, item.id)))
        return self._next(actor, study, replace(cursor, skipped=skipped), f"Skipped item #{item.id}.")

    def on_previous(self, cursor: Cursor, request: gr.Request) -> dict[Any, Any]:
        """Open one's own previous label (the latest first, then older ones) to look at or edit."""
        try:
            actor = self.actor(request)
            if cursor.study_id is None:
                return self._label_error("Choose a study first.", cursor)
            study = self._studies.get_study(actor, cursor.study_id)
            mine = sorted(self._studies.my_annotations(actor, study.id), key=lambda a: (a.created_at, a.id))
            if not mine:
                return self._label_error("You have not labelled anything in this study yet.", cursor)
            ids = [a.id for a in mine]
            if cursor.mode in ("edit", "reveal") and cursor.annotation_id in ids:
                position = ids.index(cursor.annotation_id)
                if position == 0:
                    return {self.ui.label.message: _notice("This is your first label in this study.")}
                chosen = mine[position - 1]
            else:
                chosen = mine[-1]
            return self._open_label(actor, study, chosen, cursor)
        except Exception as error:
            return self._label_error(error, cursor)

    def on_my_labels(self, cursor: Cursor, request: gr.Request) -> dict[Any, Any]:
        """Opening "My labels": the list as it is now."""
        lt = self.ui.label
        try:
            actor = self.actor(request)
            if cursor.study_id is None:
                return self._label_error("Choose a study first.", cursor)
            return {lt.mine: self._my_label_table(actor, self._studies.get_study(actor, cursor.study_id))}
        except Exception as error:
            return self._label_error(error, cursor)

    def on_my_label_select(self, cursor: Cursor, event: gr.SelectData, request: gr.Request) -> dict[Any, Any]:
        """A row of "My labels" clicked: open that label (the page then scrolls the item into view)."""
        row = event.row_value or []
        item_id = _as_id(row[0] if row else None)
        if item_id is None:
            return gr.skip()  # nothing to change ({} would be read as a value)
        try:
            actor = self.actor(request)
            if cursor.study_id is None:
                return self._label_error("Choose a study first.", cursor)
            study = self._studies.get_study(actor, cursor.study_id)
            chosen = next((a for a, _ in self._studies.my_labels(actor, study.id) if a.item_id == item_id), None)
            if chosen is None:
                return self._label_error(f"You have no label for item #{item_id} in this study.", cursor)
            return self._open_label(actor, study, chosen, cursor)
        except Exception as error:
            return self._label_error(error, cursor)

    def on_resume(self, cursor: Cursor, request: gr.Request) -> dict[Any, Any]:
        try:
            actor = self.actor(request)
            if cursor.study_id is None:
                return self._label_error("Choose a study first.", cursor)
            study = self._studies.get_study(actor, cursor.study_id)
        except Exception as error:
            return self._label_error(error, cursor)
        return self._next(actor, study, cursor)

    # --- wiring -----------------------------------------------------------------------------------------

    def wire(self, demo: gr.Blocks) -> None:
        """Attach the Label tab's events: all private; labelling runs several at once in its own group."""
        ui, lt = self.ui, self.ui.label

        def on(trigger: Any, fn: Callable[..., Any], inputs: Any, outputs: Any, **options: Any) -> None:
            trigger(fn, inputs, outputs, api_visibility=PRIVATE, **options)

        label_outputs = lt.outputs
        labelling = {"concurrency_id": LABEL_CONCURRENCY_ID, "concurrency_limit": LABEL_CONCURRENCY_LIMIT}
        on(lt.study.change, self.on_label_study, [lt.study, lt.cursor], [*label_outputs, lt.saved], **labelling)
        demo.load(self.on_label_restore, lt.saved, lt.study, api_visibility=PRIVATE)
        on(lt.refresh.click, self.on_label_refresh, None, [*ui.pickers, lt.notice])
        lt.mark.click(self.on_mark, [lt.selection, lt.cursor], [lt.cursor, lt.fields, lt.evidence, lt.message],
                      js=MARK_SELECTION_JS, api_visibility=PRIVATE)
        on(lt.clear.click, self.on_clear_marks, lt.cursor, [lt.cursor, lt.fields, lt.evidence, lt.message],
           **labelling)
        on(lt.submit.click, self.on_submit, [lt.score, lt.comment, lt.cursor], label_outputs, **labelling)
        self.wire_pairs(on, label_outputs, **labelling)
        on(lt.score.change, self.on_score_change, [lt.score, lt.cursor], [lt.change, lt.keep], queue=False,
           show_progress="hidden")
        on(lt.keep.click, self.on_keep, lt.cursor, label_outputs, **labelling)
        on(lt.change.click, self.on_change, [lt.score, lt.cursor], label_outputs, **labelling)
        on(lt.skip.click, self.on_skip, lt.cursor, label_outputs, **labelling)
        on(lt.previous.click, self.on_previous, lt.cursor, label_outputs, **labelling)
        on(lt.resume.click, self.on_resume, lt.cursor, label_outputs, **labelling)
        on(lt.mine_box.expand, self.on_my_labels, lt.cursor, [lt.mine, lt.message, lt.cursor], **labelling)
        on(lt.mine.select, self.on_my_label_select, lt.cursor, label_outputs, **labelling)
