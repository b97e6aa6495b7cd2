"""The Label tab's callbacks beyond one pass through a study: what each score means, an unanswered reveal
after a reload, edits after the reveal, "My labels", the primary button on the reveal, the remembered study.

Uses the app, fresh database and helpers of tests/test_webapp_studies.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import pytest

from core.studies import StudySpec
from tests import test_webapp_studies as base
from tests.test_webapp_studies import (
    REASONING_MARK,
    Labeller,
    create_study,
    import_items,
    message,
    plain,
    ready_study,
    text_of,
    user,
    v,
)
from tests.webapp_helpers import handler, signed_in
from webapp import Services
from webapp.studies_ui import MY_LABEL_HEADERS, Cursor

app, services, demo = base.app, base.services, base.demo  # the fixtures: one built app, a fresh database each test

pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]


def stored(services: Services, name: str, study_id: int) -> list[tuple[int, int, int | None, int]]:
    """(item, score before the reveal, after it, current score) of each of `name`'s labels, oldest first."""
    assert services.studies is not None
    return [(a.item_id, a.score_before_reveal, a.score_after_reveal, a.score)
            for a in services.studies.my_annotations(user(services, name), study_id)]


def pick(labeller: Labeller, table: pd.DataFrame, row: int) -> dict[str, Any]:
    """Click a row of the My labels table."""
    values = table.iloc[row].tolist()
    event = gr.SelectData(None, {"index": [row, 0], "value": values[0], "row_value": values})
    return labeller._run("on_my_label_select", labeller.cursor, event)


def test_each_score_button_carries_its_rubric_level(demo: gr.Blocks, services: Services) -> None:
    assert services.studies is not None
    ada = user(services, "ada")
    long = "The output is correct and " + "complete " * 30
    study = services.studies.create_study(ada, StudySpec(
        name="Ten", pass_criteria="Is it right?", rubric=f"0: Wrong.\n5: Half right.\n10: {long}",
        tags=("MODEL OUTPUT",)))
    services.studies.add_item(ada, study.id, {"MODEL OUTPUT": "Paris."})
    view = Labeller(demo, "ann").open(study.id)
    choices = view["gl-label-score"]["choices"]
    # Every score of 0-10 is a button; the described ones carry their whole level text (the page folds it).
    assert [value for _, value in choices] == [str(n) for n in range(11)]
    assert choices[0] == ("0 \u2014 Wrong.", "0") and choices[5] == ("5 \u2014 Half right.", "5")
    assert choices[10] == (f"10 \u2014 {' '.join(long.split())}", "10") and choices[3] == ("3", "3")
    summary = message(view, "gl-label-summary")
    assert "0 Wrong.5 Half right.10 The output is correct" in summary


def test_a_reload_during_the_reveal_comes_back_to_the_reveal(demo: gr.Blocks, services: Services,
                                                             tmp_path: Path) -> None:
    study_id = ready_study(demo, tmp_path)
    ann = Labeller(demo, "ann")
    ann.open(study_id)
    first = ann.cursor.item_id
    ann.submit(0, comment="Milan?")
    assert ann.cursor.mode == "reveal"

    reloaded = Labeller(demo, "ann")  # a new page: a fresh cursor, only the database remembers
    view = reloaded.open(study_id)
    assert reloaded.cursor.mode == "reveal" and reloaded.cursor.item_id == first
    assert "You gave 0; the model gave 1" in message(view, "gl-label-reveal-text")
    assert "not yet kept or changed" in message(view, "gl-label-message")
    assert REASONING_MARK in text_of(view) and v(view, "gl-label-comment") == "Milan?"
    assert view["gl-label-reveal"]["visible"] is True and view["gl-label-submit"]["visible"] is False
    assert view["gl-label-resume"]["visible"] is False  # new items wait until the reveal is answered

    reloaded.change(1)
    assert stored(services, "ann", study_id) == [(first, 0, 1, 1)]
    assert reloaded.cursor.mode == "label" and reloaded.cursor.item_id != first
    later = Labeller(demo, "ann")
    later.open(study_id)
    assert later.cursor.mode == "label" and later.cursor.item_id == reloaded.cursor.item_id


def test_a_label_given_before_its_item_was_graded_gets_its_reveal_once_it_is(demo: gr.Blocks, services: Services,
                                                                              tmp_path: Path) -> None:
    study_id = create_study(demo)
    import_items(demo, study_id, tmp_path)
    ann = Labeller(demo, "ann")
    ann.open(study_id)
    first = ann.cursor.item_id
    assert "has not graded this item yet" in message(ann.submit(1), "gl-label-message")
    assert ann.cursor.mode == "label"  # nothing to reveal yet: on to the next item

    base.grade_all(demo, study_id)
    view = ann.skip()
    assert ann.cursor.mode == "reveal" and ann.cursor.item_id == first
    assert "You gave 1; the model gave 1" in message(view, "gl-label-reveal-text")
    ann.keep()
    assert stored(services, "ann", study_id) == [(first, 1, 1, 1)]


def test_an_edit_after_the_reveal_keeps_the_blind_score(demo: gr.Blocks, services: Services, tmp_path: Path) -> None:
    study_id = ready_study(demo, tmp_path)
    assert services.studies is not None
    ann = Labeller(demo, "ann")
    ann.open(study_id)
    first = ann.cursor.item_id
    ann.submit(0)
    ann.keep()
    ann.previous()  # "← Previous", after the reveal, to change the score to the model's
    assert ann.cursor.mode == "edit" and ann.cursor.item_id == first
    saved = ann.submit(1, comment="on second thought")
    assert "Saved your changes" in message(saved, "gl-label-message")

    assert stored(services, "ann", study_id) == [(first, 0, 0, 1)]  # the blind score stays 0
    ann_user = user(services, "ann")
    annotation = services.studies.my_annotations(ann_user, study_id)[0]
    assert [e.changes["score"] for e in services.studies.history(ann_user, annotation.id)] == [(0, 1)]
    row = next(r for r in services.studies.ratings(user(services, "ada"), study_id) if r["annotator"] == "ann")
    assert (row["human_score_before_reveal"], row["human_score"]) == (0, 1)
    mine = v(saved, "gl-label-mine")  # My labels shows the current score and the first one
    assert (mine.iloc[0]["Item"], mine.iloc[0]["Your score"]) == (str(first), "1 (first 0)")


def test_my_labels_lists_every_label_and_opens_any_in_one_step(demo: gr.Blocks, services: Services,
                                                               tmp_path: Path) -> None:
    study_id = ready_study(demo, tmp_path)
    assert services.studies is not None
    ann = Labeller(demo, "ann")
    ann.open(study_id)
    assert list(v(ann.view, "gl-label-mine").columns) == MY_LABEL_HEADERS and v(ann.view, "gl-label-mine").empty
    for score in (1, 0, 1, 1, 0):
        ann.submit(score)
        ann.keep()
    done = ann.view
    assert "labelled every item" in message(done, "gl-label-message") and done["gl-label-work"]["visible"] is False
    # Finished, the annotator still has both ways back: "← Previous" and My labels (outside the item).
    assert done["gl-label-previous"]["visible"] is True
    table = v(done, "gl-label-mine")
    mine = services.studies.my_labels(user(services, "ann"), study_id)
    assert table.values.tolist() == [[str(a.item_id), external or "", str(a.score), a.created_at.strftime(
        "%Y-%m-%d %H:%M:%S UTC")] for a, external in reversed(mine)]
    assert sorted(table["External id"]) == ["c1", "c2", "c4", "c5", "c6"]
    assert v(plain(handler(demo, "on_my_labels")(ann.cursor, request=signed_in("ann"))), "gl-label-mine").equals(table)

    oldest = pick(ann, table, 4)  # the first label, one click away however many there are
    assert ann.cursor.mode == "edit" and ann.cursor.item_id == mine[0][0].item_id
    assert oldest["gl-label-submit"]["value"] == "Save changes" and oldest["gl-label-work"]["visible"] is True
    assert oldest["gl-label-resume"]["visible"] is True
    assert oldest["gl-label-score"]["value"] == str(mine[0][0].score) and REASONING_MARK in text_of(oldest)
    ann.submit(1 - mine[0][0].score)
    assert stored(services, "ann", study_id)[0][3] == 1 - mine[0][0].score
    assert ann.resume()["gl-label-work"]["visible"] is False

    # bob has no label for ann's items: the same click shows an error and opens nothing of ann's.
    bob = Labeller(demo, "bob")
    bob.open(study_id)
    refused = pick(bob, table, 0)
    assert "You have no label for item" in message(refused, "gl-label-message")
    assert bob.cursor.mode == "label"


def test_previous_from_a_reveal_goes_one_label_back_and_new_items_wait_for_the_reveal(
    demo: gr.Blocks, services: Services, tmp_path: Path
) -> None:
    study_id = ready_study(demo, tmp_path)
    ann = Labeller(demo, "ann")
    ann.open(study_id)
    first = ann.cursor.item_id
    ann.submit(1)
    ann.keep()
    second = ann.cursor.item_id
    ann.submit(0)
    assert ann.cursor.mode == "reveal"
    ann.previous()
    assert (ann.cursor.mode, ann.cursor.item_id) == ("edit", first)
    view = ann.resume()  # the second label's reveal is still unanswered: it comes first
    assert (ann.cursor.mode, ann.cursor.item_id) == ("reveal", second)
    assert "You gave 0" in message(view, "gl-label-reveal-text")


def test_the_primary_button_on_the_reveal_is_the_one_enter_presses(demo: gr.Blocks) -> None:
    revealing = Cursor(study_id=1, item_id=1, mode="reveal", annotation_id=1, submitted=1)
    change = plain(handler(demo, "on_score_change")("3", revealing))
    assert change["gl-label-change"]["variant"] == "primary" and change["gl-label-keep"]["variant"] == "secondary"
    assert change["gl-label-change"]["value"] == "Change to 3" and change["gl-label-change"]["interactive"] is True
    back = plain(handler(demo, "on_score_change")("1", revealing))
    assert back["gl-label-keep"]["variant"] == "primary" and back["gl-label-change"]["variant"] == "secondary"
    assert back["gl-label-change"]["interactive"] is False
    assert handler(demo, "on_score_change")("3", Cursor(mode="label")) == gr.skip()


def test_the_study_choice_is_remembered_for_its_user(demo: gr.Blocks, services: Services, tmp_path: Path) -> None:
    one = ready_study(demo, tmp_path)
    restore = handler(demo, "on_label_restore")

    def restored(saved: Any, name: str) -> Any:
        return plain(restore(saved, request=signed_in(name))).get("gl-label-study", {}).get("value")

    opened = handler(demo, "on_label_study")(one, Cursor(), request=signed_in("ann"))
    saved = next(val for key, val in opened.items() if isinstance(key, gr.BrowserState))
    assert saved == {"user": "ann", "study": one}
    assert restored(saved, "ann") == one
    assert restored({}, "ann") == one  # an annotator with one study gets it
    assert restored({}, "ada") is None  # an admin chooses
    other = create_study(demo, name="Second")
    assert restored({}, "ann") is None  # two studies: the annotator chooses
    assert restored({"user": "ann", "study": other}, "ann") == other
    assert restored({"user": "bob", "study": other}, "ann") is None  # someone else's choice in this browser
    assert restored({"user": "ann", "study": 999}, "ann") is None
    assert restored(None, None) is None  # not signed in
