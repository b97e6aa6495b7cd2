"""Pairwise items on the Label tab (core.studies.pairs): the context, the two responses side by side as
"Response 1" and "Response 2" in the order core draws for this annotator (never named A or B: blind), one button
per answer, and after the label the judge's verdict in the annotator's own slots.

The flow is the single-response one (webapp.studies.label_tab): in a blind study a label on a graded item is
followed by the reveal, answered by "Keep my choice" or by clicking the other response (a change after the
reveal, kept beside the first choice as for scores); a label opened again is edited by clicking a button.

No `from __future__ import annotations`: Gradio reads the callbacks' `gr.Request` hints at runtime.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import gradio as gr

from core.pairwise import INCONSISTENT, A, B
from core.studies import Annotation, Item, Study, User, pairs
from core.studies.pairs import RESPONSE_A, RESPONSE_B, SLOT_1, SLOT_2, TIE
from webapp.components import html_update as _html
from webapp.render import esc, render_hint, render_reasoning, render_subtitle
from webapp.studies.layout import StudyPage, stored_view

SLOT_BUTTONS = {SLOT_1: "Response 1 is better", SLOT_2: "Response 2 is better", TIE: "Tie"}
_TAG_OF = {A: RESPONSE_A, B: RESPONSE_B}


def slot_text(slot: str) -> str:
    """How the page names a slot: "Response 1", "Response 2", or "a tie"."""
    return "a tie" if slot == TIE else f"Response {slot}"


def my_choice(annotation: Annotation, score: int | None = None) -> str:
    """A pairwise label (or another score of it) in the annotator's slots: "Response 1", "Response 2" or "Tie"."""
    if annotation.choice is None or annotation.shown_order not in pairs.ORDERS:  # a single-response label
        return str(annotation.score if score is None else score)
    choice = annotation.choice if score is None else pairs.choice_of_score(score)
    slot = pairs.slot_of_choice(annotation.shown_order, choice)
    return "Tie" if slot == TIE else slot_text(slot)


def verdict_line(score_ab: int | None, score_ba: int | None, order: str) -> str:
    """The judge's verdict on the pair (its two orders' scores) in the slots this annotator saw."""
    if score_ab is None and score_ba is None:
        return "The judge's answers had no readable score, so it has no verdict."
    verdict = pairs.verdict_of(score_ab, score_ba)
    if verdict in (A, B):
        return f"The judge preferred {slot_text(pairs.slot_of_choice(order, verdict))} (in both orders)."
    if verdict == INCONSISTENT:
        picked = pairs.slot_picked(score_ab, score_ba)
        return (f"The judge's verdict flips with the order (it picked slot {picked}, the response shown "
                f"{'first' if picked == 1 else 'second'}, both times).")
    return "The judge's answer in one of the two orders had no readable score, so it has no verdict."


def render_pair_item(fields: Mapping[str, str], order: str) -> str:
    """The item's context fields, then its two responses side by side: the one `order` puts first as
    "Response 1" ("AB": RESPONSE A), the other as "Response 2"."""
    context = "".join(_field(tag, text, "") for tag, text in fields.items() if tag not in (RESPONSE_A, RESPONSE_B))
    sides = "".join(_field(f"Response {number}", fields.get(_TAG_OF[letter], ""), " gl-pair-side")
                    for number, letter in ((1, order[0]), (2, order[1])))
    return f'{context}<div class="gl-pair-sides">{sides}</div>'


def _field(title: str, text: str, css_class: str) -> str:
    return (f'<section class="gl-field{css_class}"><div class="gl-field-tag">{esc(title)}</div>'
            f'<div class="gl-field-text">{esc(text)}</div></section>')


def render_pair_summary(name: str, description: str, pass_criteria: str, allow_tie: bool, blind: bool) -> str:
    """What the annotator is asked in a pairwise study: which of two responses better meets the criteria."""
    mode = ("Blind: the judge's verdict is shown after you answer." if blind
            else "The judge's verdict is shown alongside.")
    answers = "Response 1, Response 2 or a tie" if allow_tie else "Response 1 or Response 2"
    description_html = f"<p>{esc(description)}</p>" if description else ""
    return (
        f'<div class="gl-study"><div class="gl-study-name">{esc(name)}</div>{description_html}'
        f'<div class="gl-study-criteria"><b>Which response is better?</b> {esc(pass_criteria)}</div>'
        f'<div class="gl-note">Pairwise: choose {answers} \u00b7 {esc(mode)}</div></div>'
    )


def render_pair_reveal(mine: str, line: str, blind: bool) -> str:
    """After a blind answer: the annotator's choice next to the judge's verdict, and what they may do now."""
    lead = "Saved. Now the judge's verdict is shown." if blind else "Saved."
    return (f'<div class="gl-reveal" role="status"><b>{esc(lead)}</b> You chose '
            f'<span class="gl-reveal-score">{esc(mine)}</span>. {esc(line)} Keep your choice, or click another '
            "answer now that you have seen the judge's reasoning (your first choice is kept too).</div>")


def render_pair_judge(line: str, orders: Sequence[tuple[str, str, str | None]]) -> str:
    """The judge's verdict and, per order it ran, a title, what it preferred and its reasoning."""
    parts = [render_subtitle("The judge's verdict"), f'<div class="gl-pair-reason">{esc(line)}</div>']
    for title, preferred, reasoning in orders:
        parts.append(f'<section class="gl-pair-order"><div class="gl-subtitle">{esc(title)} \u2014 '
                     f"{esc(preferred)}</div>{render_reasoning(reasoning)}</section>")
    return "".join(parts)


def _order_titles(order: str) -> dict[str, str]:
    """Each order the judge ran ("AB": RESPONSE A as its MODEL OUTPUT 1), titled in the annotator's slots."""
    same = "The judge, with the responses in your order"
    swapped = "The judge, with the responses swapped (its MODEL OUTPUT 1 is your Response 2)"
    return {"AB": same if order == "AB" else swapped, "BA": same if order == "BA" else swapped}


class PairLabelHandlers(StudyPage):
    """The Label tab's pairwise part: what a pairwise item puts on screen, and the answer buttons."""

    if TYPE_CHECKING:  # the Label tab's own handlers (webapp.studies.label_tab.LabelHandlers)
        def _load(self, request: Any, cursor: Any) -> tuple[User, Study, Item]: ...
        def _label_error(self, error: Exception | str, cursor: Any = None) -> dict[Any, Any]: ...
        def _header(self, actor: User, study: Study) -> dict[Any, Any]: ...
        def _next(self, actor: User, study: Study, cursor: Any, message: str = "") -> dict[Any, Any]: ...
        def _show(self, actor: User, study: Study, item: Item, cursor: Any, *, message: str = "",
                  reveal_model: bool, annotation: Annotation | None = None) -> dict[Any, Any]: ...

    def _pair_judge(self, actor: User, item: Item, order: str) -> tuple[str, str]:
        """The judge's verdict line and its panel (each order's preference and reasoning) for this annotator."""
        judged = self._studies.pair_judgments(actor, item.id)
        views = {"AB": stored_view(self.services, judged.ab), "BA": stored_view(self.services, judged.ba)}
        if views["AB"] is None and views["BA"] is None:
            return "", render_hint("The judge has not compared these responses yet.")
        scores = {key: view.score if view is not None else None for key, view in views.items()}
        line = verdict_line(scores["AB"], scores["BA"], order)
        only = [key for key, view in views.items() if view is not None]
        if len(only) == 1 and scores[only[0]] is not None:  # one order run: no verdict on position consistency
            picked = pairs.slot_of_choice(order, only[0][int(scores[only[0]] or 0)])
            line = f"The judge compared them in one order only and preferred {slot_text(picked)}."
        titles = _order_titles(order)
        orders = []
        for key, view in views.items():
            if view is None:
                continue
            score = scores[key]
            preferred = ("no readable score" if score is None
                         else f"it preferred {slot_text(pairs.slot_of_choice(order, key[score]))}")
            orders.append((titles[key], preferred, view.reasoning))
        return line, render_pair_judge(line, orders)

    def _pair_show(self, actor: User, study: Study, item: Item, cursor: Any, annotation: Annotation | None,
                   reveal_model: bool) -> dict[Any, Any]:
        """The updates that make _show's item a pairwise one: the responses side by side, the answer buttons (the
        current answer highlighted), no score or evidence widgets, and the judge's verdict where it is shown."""
        lt = self.ui.label
        order = self._studies.pair_order(actor, item.id)
        line, judge_html = self._pair_judge(actor, item, order) if reveal_model else ("", "")
        current = cursor.submitted if cursor.mode == "reveal" else (
            annotation.score if cursor.mode == "edit" and annotation is not None else None)
        chosen = None if current is None else pairs.slot_of_choice(order, pairs.choice_of_score(int(current)))
        updates: dict[Any, Any] = {
            lt.fields: render_pair_item(item.fields, order),
            lt.evidence: "",
            lt.marking: gr.update(visible=False),
            lt.score: gr.update(visible=False, value=None, choices=[]),  # so no typed number picks a score
            lt.submit: gr.update(visible=False),
            lt.change: gr.update(visible=False),
            lt.model: _html(judge_html),
            lt.pair_row: gr.update(visible=True),
            **{button: gr.update(value=SLOT_BUTTONS[slot], variant="primary" if slot == chosen else "secondary",
                                 visible=slot != TIE or study.allow_tie)
               for slot, button in ((SLOT_1, lt.pick_1), (SLOT_2, lt.pick_2), (TIE, lt.pick_tie))},
        }
        if cursor.mode == "reveal" and chosen is not None:
            mine = "Tie" if chosen == TIE else slot_text(chosen)
            updates[lt.reveal_text] = _html(render_pair_reveal(mine, line, study.blind))
            updates[lt.keep] = gr.update(value=f"Keep my choice ({mine})", variant="primary")
        return updates

    def _pick(self, slot: str, comment: str | None, cursor: Any, request: gr.Request) -> dict[Any, Any]:
        """An answer button: a new label (core: submit_choice), a change after the reveal (confirm_after_reveal) or
        an edit of a label opened again (edit); the pairwise score is the choice's index in pairs.CHOICES."""
        try:
            actor, study, item = self._load(request, cursor)
            if not study.pairwise:
                return self._label_error("This study grades one response: choose a score.", cursor)
            if cursor.mode in ("reveal", "edit") and cursor.annotation_id is not None:
                order = self._studies.pair_order(actor, item.id)
                score = pairs.score_of_choice(pairs.choice_of_slot(order, slot, allow_tie=study.allow_tie))
                if cursor.mode == "reveal":
                    confirmed = self._studies.confirm_after_reveal(actor, cursor.annotation_id, score)
                    return self._next(actor, study, cursor, confirm_text(item.id, confirmed))
                saved = self._studies.edit(actor, cursor.annotation_id, score=score, comment=comment or "")
                return {**self._header(actor, study),
                        **self._show(actor, study, item, cursor, reveal_model=True, annotation=saved,
                                     message=f"Saved your changes to item #{item.id}: {my_choice(saved)}.")}
            if cursor.mode != "label":
                return self._label_error("This item is already submitted.", cursor)
            seconds = max(0.0, time.monotonic() - cursor.shown_at) if cursor.shown_at else 0.0
            annotation = self._studies.submit_choice(actor, item.id, slot, comment=comment or "",
                                                     seconds=round(seconds, 3))
            item = self._studies.get_item(actor, item.id)  # in a blind study its judgment is given only now
        except Exception as error:
            return self._label_error(error, cursor)
        if study.blind and item.judgment_id is not None:
            revealing = replace(cursor, mode="reveal", annotation_id=annotation.id, submitted=annotation.score)
            return {**self._header(actor, study),
                    **self._show(actor, study, item, revealing, reveal_model=True, annotation=annotation)}
        note = " The judge has not compared these responses yet." if study.blind else ""
        saved_text = f"Saved your choice ({my_choice(annotation)}) for item #{item.id}.{note}"
        return self._next(actor, study, cursor, saved_text)

    def on_pick_1(self, comment: str | None, cursor: Any, request: gr.Request) -> dict[Any, Any]:
        return self._pick(SLOT_1, comment, cursor, request)

    def on_pick_2(self, comment: str | None, cursor: Any, request: gr.Request) -> dict[Any, Any]:
        return self._pick(SLOT_2, comment, cursor, request)

    def on_pick_tie(self, comment: str | None, cursor: Any, request: gr.Request) -> dict[Any, Any]:
        return self._pick(TIE, comment, cursor, request)

    def wire_pairs(self, on: Callable[..., None], outputs: Sequence[Any], **options: Any) -> None:
        """The answer buttons: each with the comment and the cursor, updating what the Label tab's events do."""
        lt = self.ui.label
        for button, fn in ((lt.pick_1, self.on_pick_1), (lt.pick_2, self.on_pick_2), (lt.pick_tie, self.on_pick_tie)):
            on(button.click, fn, [lt.comment, lt.cursor], list(outputs), **options)


def confirm_text(item_id: int, confirmed: Annotation) -> str:
    """The message after a pairwise reveal was answered: the choice kept, or the change."""
    before = my_choice(confirmed, confirmed.score_before_reveal)
    if confirmed.score_after_reveal == confirmed.score_before_reveal:
        return f"Kept your choice ({before}) for item #{item_id}."
    return f"Changed your choice for item #{item_id} from {before} to {my_choice(confirmed)}."

