"""Pairwise studies in the web app's callbacks: the Studies tab's mode choice, "Allow ties" and import; the Label
tab's two responses side by side in the annotator's order, the answer buttons, the blind reveal of the judge's two
orders in the annotator's slots, and edits. A scripted judge writes the judgments (UI flow only).

Uses the app, fresh database and helpers of tests/test_webapp_studies.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from core.pairwise import DEFAULT_PAIR_RUBRIC
from core.presets import get_preset
from core.prompt import DEFAULT_TAGS
from core.studies import pairs, runs
from core.studies.pairs import PAIR_STUDY_TAGS, RESPONSE_A, RESPONSE_B
from core.studies.types import Annotation
from tests import test_webapp_studies as base
from tests.pair_study_helpers import PAIR_CRITERIA, judge_pair, judge_pair_study, pair_study
from tests.test_webapp_studies import Labeller, message, plain, text_of, user, v
from tests.webapp_helpers import handler, signed_in
from webapp import Services
from webapp.studies.pair_form import mode_defaults
from webapp.studies.pair_label import my_choice, verdict_line

app, services, demo = base.app, base.services, base.demo  # the fixtures: one built app, a fresh database each test

pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]


class PairLabeller(Labeller):
    """A Labeller that also clicks the pairwise answer buttons."""

    def pick(self, slot: str, comment: str = "") -> dict[str, Any]:
        name = {"1": "on_pick_1", "2": "on_pick_2", "tie": "on_pick_tie"}[slot]
        return self._run(name, comment, self.cursor)


def annotations(services: Services, name: str, study_id: int) -> list[Any]:
    assert services.studies is not None
    return services.studies.my_annotations(user(services, name), study_id)


# --- Studies tab -------------------------------------------------------------------------------------


def test_the_mode_switch_fills_the_pair_tags_and_rubric_and_back(demo: gr.Blocks) -> None:
    single_tags = ", ".join(DEFAULT_TAGS)
    switch = handler(demo, "on_study_mode")
    faithful = get_preset("faithfulness")
    to_pairs = plain(switch("pairwise", single_tags, faithful.pass_criteria, faithful.rubric, faithful.key))
    assert v(to_pairs, "gl-study-tags") == ", ".join(PAIR_STUDY_TAGS)
    assert v(to_pairs, "gl-study-rubric") == DEFAULT_PAIR_RUBRIC and v(to_pairs, "gl-study-criteria") == ""
    assert to_pairs["gl-study-allow-tie"]["visible"] is True
    # The pairwise presets are offered (none chosen, so nothing typed is overwritten); choosing one fills the form.
    offered = to_pairs["gl-study-preset"]["choices"]
    assert ("More helpful answer (A vs B)", "pair-helpfulness") in offered
    assert to_pairs["gl-study-preset"]["value"] is None
    filled = plain(handler(demo, "on_study_preset")("pair-helpfulness"))
    assert v(filled, "gl-study-criteria").startswith("Which output answers the USER INPUT more helpfully?")
    back = plain(switch("single", ", ".join(PAIR_STUDY_TAGS), "Which is kinder?", DEFAULT_PAIR_RUBRIC, None))
    assert v(back, "gl-study-tags") == single_tags and back["gl-study-allow-tie"]["visible"] is False
    assert v(back, "gl-study-criteria") == "Which is kinder?"  # typed by the admin: kept
    assert ("More helpful answer (A vs B)", "pair-helpfulness") not in back["gl-study-preset"]["choices"]
    # What the admin typed is kept.
    assert mode_defaults("pairwise", "QUESTION, RESPONSE A, RESPONSE B", "0: A\n1: B", "x") == (
        "QUESTION, RESPONSE A, RESPONSE B", DEFAULT_PAIR_RUBRIC)
    assert mode_defaults("single", "QUESTION", "my rubric", "preset") == ("QUESTION", "my rubric")


def test_an_admin_creates_a_pairwise_study_imports_pairs_and_sees_its_mode(demo: gr.Blocks, services: Services,
                                                                           tmp_path: Path) -> None:
    create = handler(demo, "on_create_study")
    view = plain(create("Kinder", "Pick the kinder reply.", PAIR_CRITERIA, DEFAULT_PAIR_RUBRIC,
                        ", ".join(PAIR_STUDY_TAGS), 2, True, request=signed_in("ada"), mode="pairwise",
                        allow_tie=True))
    created = message(view, "gl-study-message")
    assert created.startswith("Created the study \u201cKinder\u201d (#") and "(pairwise, ties allowed)" in created
    study_id = int(created.split("(#")[1].split(")")[0])
    assert services.studies is not None
    study = services.studies.get_study(user(services, "ada"), study_id)
    assert study.pairwise and study.allow_tie and study.tags == PAIR_STUDY_TAGS and study.rubric == DEFAULT_PAIR_RUBRIC
    assert view["gl-study-list"].iloc[0].tolist()[:3] == [str(study_id), "Kinder", "pairwise, ties allowed"]

    path = tmp_path / "pairs.csv"
    path.write_text("id,user_input,response_a,response_b\nq1,Hi?,Hello there!,What.\nq2,Tea?,Sure.,\n",
                    encoding="utf-8")
    preview = plain(handler(demo, "on_preview")(study_id, str(path), request=signed_in("ada")))
    labels = [preview[f"gl-import-map-{i}"].get("label") for i in range(5)]
    assert labels == list(PAIR_STUDY_TAGS)  # RESPONSE A and RESPONSE B offered, their columns guessed
    mapping = [v(preview, f"gl-import-map-{i}") for i in range(8)]
    assert mapping[1:4] == ["user_input", "response_a", "response_b"]
    report = message(plain(handler(demo, "on_import")(signed_in("ada"), study_id, str(path),
                                                     v(preview, "gl-import-id"), *mapping)), "gl-import-report")
    assert report.startswith("1 item added; 1 row refused:") and "RESPONSE B is empty" in report
    items = services.studies.list_items(user(services, "ada"), study_id)
    assert [(i.external_id, i.fields[RESPONSE_A], i.fields[RESPONSE_B]) for i in items] == [
        ("q1", "Hello there!", "What.")]


@pytest.mark.parametrize(("rubric", "tags", "expected"), [
    ("1: worse\n2: same\n3: better", ", ".join(PAIR_STUDY_TAGS), "0/1 scale"),
    ("", "USER INPUT, RESPONSE A", "RESPONSE B"),
])
def test_a_pairwise_study_that_cannot_compare_is_a_message(demo: gr.Blocks, rubric: str, tags: str,
                                                           expected: str) -> None:
    view = plain(handler(demo, "on_create_study")("Bad", "", PAIR_CRITERIA, rubric, tags, 2, True,
                                                  request=signed_in("ada"), mode="pairwise"))
    assert expected in message(view, "gl-study-message") and "gl-message-error" in v(view, "gl-study-message")
    assert "Traceback" not in message(view, "gl-study-message")


# --- Label tab ---------------------------------------------------------------------------------------


def shown_responses(view: dict[str, Any]) -> tuple[str, str]:
    """The texts shown as Response 1 and Response 2."""
    text = message(view, "gl-label-fields")
    first = text.split("Response 1", 1)[1].split("Response 2", 1)[0]
    return first, text.split("Response 2", 1)[1]


def test_an_annotator_picks_blind_and_sees_the_judge_in_their_own_slots(demo: gr.Blocks, services: Services) -> None:
    assert services.studies is not None
    ada = user(services, "ada")
    study_id = pair_study(services.studies, ada, items=3)
    judge_pair_study(services.studies, services.store, ada, study_id)  # item 3: the judge picks slot 1 twice
    ann = PairLabeller(demo, "ann")
    view = ann.open(study_id)
    item_id = ann.cursor.item_id
    order = services.studies.pair_order(user(services, "ann"), item_id)
    item = services.studies.get_item(ada, item_id)
    tag = {"A": RESPONSE_A, "B": RESPONSE_B}
    assert shown_responses(view) == (item.fields[tag[order[0]]], item.fields[tag[order[1]]])
    assert "RESPONSE A" not in text_of(view) and "RESPONSE B" not in text_of(view)  # blind to A and B
    assert "kinder" not in message(view, "gl-label-model")  # nothing of the judge before the answer
    assert view["gl-label-pair"]["visible"] is True and view["gl-label-pick-tie"]["visible"] is False
    assert view["gl-label-score"]["visible"] is False and view["gl-label-submit"]["visible"] is False
    assert "Pairwise: choose Response 1 or Response 2" in message(view, "gl-label-summary")

    revealed = ann.pick("1", comment="warmer")
    assert ann.cursor.mode == "reveal"
    stored = annotations(services, "ann", study_id)
    assert [(a.item_id, a.choice, a.shown_order, a.comment) for a in stored] == [(item_id, order[0], order, "warmer")]
    judge_slot = pairs.slot_of_choice(order, "A")  # the judge prefers A in both orders on this item
    reveal = message(revealed, "gl-label-reveal-text")
    assert f"You chose Response 1. The judge preferred Response {judge_slot} (in both orders)." in reveal
    assert v(revealed, "gl-label-keep") == "Keep my choice (Response 1)"
    model = message(revealed, "gl-label-model")
    assert "with the responses in your order" in model and "with the responses swapped" in model
    assert "The reply is kinder." in model and f"it preferred Response {judge_slot}" in model

    reloaded = PairLabeller(demo, "ann")  # a reload on the reveal comes back to it
    again = reloaded.open(study_id)
    assert reloaded.cursor.mode == "reveal" and reloaded.cursor.item_id == item_id
    assert v(again, "gl-label-keep") == "Keep my choice (Response 1)" and "not yet kept" in message(
        again, "gl-label-message")
    after = ann.keep()
    assert message(after, "gl-label-message").startswith(f"Kept your choice (Response 1) for item #{item_id}.")
    assert ann.cursor.mode == "label"

    # The second item: answered, then changed after the reveal by clicking the other response.
    second = ann.cursor.item_id
    second_order = services.studies.pair_order(user(services, "ann"), second)
    ann.pick("2")
    changed = ann.pick("1")
    assert f"Changed your choice for item #{second} from Response 2 to Response 1." in message(changed,
                                                                                                 "gl-label-message")
    label = annotations(services, "ann", study_id)[-1]
    assert (label.choice, label.score_before_reveal, label.score_after_reveal) == (
        second_order[0], pairs.CHOICES.index(second_order[1]), pairs.CHOICES.index(second_order[0]))


@pytest.mark.parametrize(("ab", "ba", "order", "expected"), [
    (0, 1, "AB", "The judge preferred Response 1 (in both orders)."),
    (0, 1, "BA", "The judge preferred Response 2 (in both orders)."),
    (1, 0, "BA", "The judge preferred Response 1 (in both orders)."),
    (0, 0, "BA", "The judge's verdict flips with the order (it picked slot 1, the response shown first, both times)."),
    (1, 1, "AB", "The judge's verdict flips with the order (it picked slot 2, the response shown second, both times)."),
    (None, 1, "AB", "The judge's answer in one of the two orders had no readable score, so it has no verdict."),
])
def test_the_verdict_in_the_annotators_slots(ab: int | None, ba: int | None, order: str, expected: str) -> None:
    assert verdict_line(ab, ba, order) == expected


def test_an_inconsistent_judge_is_revealed_as_such(demo: gr.Blocks, services: Services) -> None:
    assert services.studies is not None
    ada = user(services, "ada")
    study_id = pair_study(services.studies, ada, items=1)
    item_id = services.studies.list_items(ada, study_id)[0].id
    judge_pair(services.studies, services.store, ada, item_id, 1, 1)
    ann = PairLabeller(demo, "ann")
    ann.open(study_id)
    revealed = ann.pick("2")
    assert "flips with the order (it picked slot 2, the response shown second, both times)" in message(
        revealed, "gl-label-reveal-text")


def test_a_judge_run_in_one_order_only_says_so(demo: gr.Blocks, services: Services) -> None:
    assert services.studies is not None
    ada = user(services, "ada")
    study_id = pair_study(services.studies, ada, items=1)
    item_id = services.studies.list_items(ada, study_id)[0].id
    judge_pair(services.studies, services.store, ada, item_id, 1, 1)
    with services.store.session(write=True) as session:  # forget the (B, A) order
        session.query(runs.RunSecondOrderRow).delete()
    ann = PairLabeller(demo, "ann")
    ann.open(study_id)
    order = services.studies.pair_order(user(services, "ann"), item_id)
    revealed = ann.pick("1")
    assert (f"The judge compared them in one order only and preferred Response {pairs.slot_of_choice(order, 'B')}."
            in message(revealed, "gl-label-reveal-text"))
    model = message(revealed, "gl-label-model")  # only the (A, B) order, titled in this annotator's terms
    assert ("with the responses in your order" in model) == (order == "AB")
    assert ("with the responses swapped" in model) == (order == "BA")


def test_ties_only_where_allowed_and_an_ungraded_item_goes_on(demo: gr.Blocks, services: Services) -> None:
    assert services.studies is not None
    ada = user(services, "ada")
    loose = pair_study(services.studies, ada, items=2, allow_tie=True, name="With ties")
    ann = PairLabeller(demo, "ann")
    view = ann.open(loose)
    assert view["gl-label-pick-tie"]["visible"] is True
    assert "Response 1, Response 2 or a tie" in message(view, "gl-label-summary")
    first = ann.cursor.item_id
    after = ann.pick("tie")
    assert message(after, "gl-label-message") == (
        f"Saved your choice (Tie) for item #{first}. The judge has not compared these responses yet.")
    assert ann.cursor.mode == "label" and ann.cursor.item_id != first
    assert [(a.choice, a.score) for a in annotations(services, "ann", loose)] == [("tie", 2)]

    strict = pair_study(services.studies, ada, items=1, name="No ties")
    bob = PairLabeller(demo, "bob")
    bob.open(strict)
    refused = bob.pick("tie")  # the button is hidden; a forged click is refused by core with its message
    assert "does not allow a tie" in message(refused, "gl-label-message")
    assert "gl-message-error" in v(refused, "gl-label-message") and annotations(services, "bob", strict) == []


def test_a_pairwise_label_is_edited_by_clicking_and_listed_in_slots(demo: gr.Blocks, services: Services) -> None:
    assert services.studies is not None
    ada = user(services, "ada")
    study_id = pair_study(services.studies, ada, items=2, blind=False)
    ann = PairLabeller(demo, "ann")
    ann.open(study_id)
    first = ann.cursor.item_id
    order = services.studies.pair_order(user(services, "ann"), first)
    ann.pick("1")
    opened = ann.previous()
    assert ann.cursor.mode == "edit" and ann.cursor.item_id == first
    assert opened["gl-label-pick-1"]["variant"] == "primary" and opened["gl-label-pick-2"]["variant"] == "secondary"
    saved = ann.pick("2", comment="second thoughts")
    assert f"Saved your changes to item #{first}: Response 2." in message(saved, "gl-label-message")
    label = annotations(services, "ann", study_id)[0]
    assert (label.choice, label.shown_order, label.comment) == (order[1], order, "second thoughts")
    table = saved["gl-label-mine"]
    assert table.iloc[0].tolist()[2] == "Response 2 (first Response 1)"  # in the annotator's slots, never A or B


def test_pair_items_on_the_label_tab_escape_their_text(demo: gr.Blocks, services: Services) -> None:
    assert services.studies is not None
    ada = user(services, "ada")
    payload = "<img src=x onerror=window.__xss=1>"
    study = pair_study(services.studies, ada, items=0, name=payload)
    services.studies.add_item(ada, study, {"USER INPUT": payload, RESPONSE_A: payload + "a", RESPONSE_B: payload})
    view = PairLabeller(demo, "ann").open(study)
    assert "<img" not in v(view, "gl-label-fields") and payload in message(view, "gl-label-fields")
    assert "<img" not in v(view, "gl-label-summary")


def test_my_labels_name_pairwise_choices_by_slot_and_other_labels_by_score() -> None:
    """"My labels" shows a pairwise label in the annotator's slots and a revised single-response score as numbers
    (a score of 10 is not a choice index: the single-response path never reads it as one)."""
    now = datetime.now(UTC)
    base_label = Annotation(id=1, study_id=1, item_id=1, annotator="ann", score=3, score_before_reveal=10,
                            score_after_reveal=3, spans=[], comment="", seconds=1.0, created_at=now, updated_at=now)
    assert (my_choice(base_label), my_choice(base_label, base_label.score_before_reveal)) == ("3", "10")
    pair_label = replace(base_label, score=1, score_before_reveal=2, choice="B", shown_order="BA")
    assert (my_choice(pair_label), my_choice(pair_label, 2), my_choice(pair_label, 0)) == (
        "Response 1", "Tie", "Response 2")
