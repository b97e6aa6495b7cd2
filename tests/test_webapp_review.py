"""The Review tab's callbacks and the Agreement tab's adjudicated reference, called as Gradio calls them; who may
see the tab; every review renderer escapes what people and the model wrote."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import pytest

from core.studies import ADMIN, ANNOTATOR, REVIEWER
from core.studies.adjudications import Adjudication
from core.studies.review import ReviewLabel, Reviews
from tests.review_data import ADJUDICATED, BY_HUMANS, BY_JUDGE, CONFIDENCE, ReviewStudy, make_review_study
from tests.test_webapp_render import Markup
from tests.webapp_helpers import XSS_PAYLOADS, build, handler, make_study_services, signed_in, value
from webapp import Services, access
from webapp.studies.review_render import (
    render_adjudicated_metrics,
    render_adjudication_history,
    render_review_labels,
)
from webapp.studies.review_tab import NOT_FOR_YOU, REVIEW_HEADERS


def metric(value: object, **extra: object) -> dict[str, object]:
    return {"value": value, **extra}


USERS = {"ada": ADMIN, "rita": REVIEWER, "ann": ANNOTATOR, "bob": ANNOTATOR}

# Escaping cases for tests.test_webapp_studies_render (which finds every renderer of webapp by name).
RENDERERS: dict[str, Callable[[str], str]] = {
    "review labels (annotator, comment)": lambda p: render_review_labels(
        [ReviewLabel(1, p, 2, 2, None, 3, p)], True),
    "adjudication history (reviewer, note)": lambda p: render_adjudication_history(
        [Adjudication(1, 1, 1, p, 2, p, datetime(2026, 12, 5, tzinfo=UTC))]),
    "adjudicated metrics (annotator name, reason)": lambda p: render_adjudicated_metrics(
        {"n_items_adjudicated": 2, "n_items_total": 3, "headline_score": {"blind": False},
         "comparisons": [{"name": p, "kind": "annotator", "n_items": 2, "exact": metric(None, reason=p)}]}),
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[gr.Blocks, Services, ReviewStudy]]:
    services = make_study_services(tmp_path, users=USERS)
    studies = services.studies
    assert studies is not None
    people = {name: studies.get_user(name) for name in USERS}
    made = make_review_study(studies, services.store, people["ada"], people["ann"], people["bob"])  # type: ignore[arg-type]
    yield build(services), services, made
    services.store.close()


def plain(raw: Any) -> dict[str, Any]:
    return {block.elem_id: value(val) if not isinstance(val, dict) or "__type__" in val else val
            for block, val in raw.items() if getattr(block, "elem_id", None)}


def raw_by_id(raw: dict[Any, Any]) -> dict[str, Any]:
    return {block.elem_id: val for block, val in raw.items() if getattr(block, "elem_id", None)}


def text(markup: Any) -> str:
    return Markup(markup or "").all_text


def select(item_id: int) -> gr.SelectData:
    return gr.SelectData(None, {"index": [0, 0], "value": str(item_id), "row_value": [str(item_id)]})


def test_reviewers_see_label_and_review_and_annotators_neither(app: tuple[gr.Blocks, Services, ReviewStudy]) -> None:
    demo, services, made = app
    rita, ann = services.studies.get_user("rita"), services.studies.get_user("ann")  # type: ignore[union-attr]
    assert access.tabs_for(services, rita) == ("label", "review")
    assert "review" not in access.tabs_for(services, ann)
    assert "review" in access.tabs_for(services, services.studies.get_user("ada"))  # type: ignore[union-attr]
    shown = raw_by_id(handler(demo, "on_review_load")(signed_in("rita")))
    assert shown["gl-review-body"]["visible"] is True
    assert (f"Helpfulness (#{made.study_id})", made.study_id) in [tuple(c) for c in shown["gl-review-study"]["choices"]]
    refused = raw_by_id(handler(demo, "on_review_load")(signed_in("ann")))
    assert refused["gl-review-body"]["visible"] is False and "gl-review-study" not in refused
    assert NOT_FOR_YOU in text(value(refused["gl-review-notice"]))


def test_the_triage_table_sorts_both_ways(app: tuple[gr.Blocks, Services, ReviewStudy]) -> None:
    demo, _, made = app
    listed = raw_by_id(handler(demo, "on_review_list")(made.study_id, "judge", request=signed_in("rita")))
    table = value(listed["gl-review-table"])
    assert isinstance(table, pd.DataFrame) and list(table.columns) == REVIEW_HEADERS
    assert table["Item"].tolist() == [str(made.item_ids[n - 1]) for n in BY_JUDGE]
    first = table.iloc[0].to_dict()
    assert (first["Human scores"], first["Spread"], first["Consensus"], first["Judge"], first["|\u0394|"],
            first["Confidence"], first["Adjudicated"]) == ("3 3", "0", "3", "5", "2", f"{CONFIDENCE[2]:.2f}", "")
    assert first["Preview"].startswith("[h-3] Question 3?")
    humans = raw_by_id(handler(demo, "on_review_list")(made.study_id, "humans", request=signed_in("ada")))
    assert value(humans["gl-review-table"])["Item"].tolist() == [str(made.item_ids[n - 1]) for n in BY_HUMANS]
    empty = plain(handler(demo, "on_review_list")(None, "judge", request=signed_in("rita")))
    assert "Choose a study first" in text(empty["gl-review-message"])


def test_the_item_panel_and_adjudication_form(app: tuple[gr.Blocks, Services, ReviewStudy]) -> None:
    demo, services, made = app
    item_id = made.item_ids[1]
    opened = raw_by_id(handler(demo, "on_review_select")(select(item_id), request=signed_in("rita")))
    panel = text(value(opened["gl-review-item"]))
    for expected in (f"Item #{item_id} \u00b7 h-2", "Question 2?", "Answer 2.", "ann", f"ann on {item_id}", "bob",
                     "Judge: 2", f"confidence {CONFIDENCE[1]:.2f}", "human consensus (median): 3",
                     "Judged item 2.", "Not adjudicated yet."):
        assert expected in panel, expected
    assert [tuple(c) for c in opened["gl-review-score"]["choices"]] == [(str(n), str(n)) for n in range(1, 6)]
    assert opened["gl-review-form"]["visible"] is True
    shown = next(val for block, val in handler(demo, "on_review_select")(select(item_id), request=signed_in("rita"))
                 .items() if isinstance(block, gr.State))
    assert shown == item_id

    note = f"level 3 fits {XSS_PAYLOADS[1]}"
    saved = raw_by_id(handler(demo, "on_adjudicate")(item_id, "3", note, made.study_id, "judge",
                                                     request=signed_in("rita")))
    assert f"Recorded 3 as the adjudicated label of item #{item_id}" in text(value(saved["gl-review-saved"]))
    history = value(saved["gl-review-item"])
    assert XSS_PAYLOADS[1] not in history and "level 3 fits" in text(history) and "3 by rita" in text(history)
    row = value(saved["gl-review-table"]).set_index("Item").loc[str(item_id)]
    assert row["Adjudicated"] == "3 (rita)"
    assert saved["gl-review-score"]["value"] == "3"
    settled = Reviews(services.store).review_item(services.studies.get_user("rita"), item_id)  # type: ignore[arg-type, union-attr]
    assert settled.adjudication is not None and settled.adjudication.note == note

    for score, problem in ((None, "Choose the adjudicated score first"), ("9", "outside this study's scale")):
        refused = plain(handler(demo, "on_adjudicate")(item_id, score, "", made.study_id, "judge",
                                                      request=signed_in("rita")))
        assert problem in text(refused["gl-review-saved"])
    nothing = plain(handler(demo, "on_adjudicate")(None, "3", "", made.study_id, "judge", request=signed_in("rita")))
    assert "Click an item in the list first" in text(nothing["gl-review-saved"])


def test_an_annotator_is_refused_by_every_review_callback(app: tuple[gr.Blocks, Services, ReviewStudy]) -> None:
    demo, services, made = app
    bob, item_id = signed_in("bob"), made.item_ids[0]
    attempts = {
        "list": handler(demo, "on_review_list")(made.study_id, "judge", request=bob),
        "select": handler(demo, "on_review_select")(select(item_id), request=bob),
        "adjudicate": handler(demo, "on_adjudicate")(item_id, "1", "mine", made.study_id, "judge", request=bob),
        "report": handler(demo, "on_report")(made.study_id, "adjudicated", request=bob),
    }
    for name, raw in attempts.items():
        shown = " ".join(text(val) if isinstance(val, str) else str(val) for val in plain(raw).values())
        assert "Only a reviewer or an admin" in shown or "Only an admin" in shown, name
        assert f"ann on {item_id}" not in shown and "Judged item" not in shown, name
    ada = services.studies.get_user("ada")  # type: ignore[union-attr]
    assert Reviews(services.store).adjudication_history(ada, item_id) == []  # type: ignore[arg-type]


def test_the_agreement_tab_reports_against_the_adjudicated_labels(app: tuple[gr.Blocks, Services, ReviewStudy]) -> None:
    demo, services, made = app
    rita = services.studies.get_user("rita")  # type: ignore[union-attr]
    reviews = Reviews(services.store)
    before = plain(handler(demo, "on_report")(made.study_id, "adjudicated", request=signed_in("ada")))
    assert "Adjudicate items in the Review tab first" in text(before["gl-agree-metrics"])
    for item_id, score in zip(made.item_ids, ADJUDICATED, strict=False):
        reviews.adjudicate(rita, item_id, score, "")  # type: ignore[arg-type]
    report = raw_by_id(handler(demo, "on_report")(made.study_id, "adjudicated", request=signed_in("ada")))
    metrics = Markup(value(report["gl-agree-metrics"]))
    assert "Reference: adjudicated labels on 6 of 7 items." in metrics.all_text
    judge = metrics.all_text.split("Judge vs adjudicated")[1].split("Annotators")[0]
    assert "6 items" in judge and "Exactagreement0.500" in judge.replace(" ", "")
    assert report["gl-agree-heatmap"]["visible"] is False and report["gl-agree-disagreements"]["visible"] is False
    assert [report[f"gl-export-{kind}"]["visible"] for kind in ("csv", "jsonl", "json", "html")] == [
        True, True, True, False]
    exported = Path(report["gl-export-csv"]["value"]).read_text(encoding="utf-8")
    assert "adjudicated_score" in exported.splitlines()[0]
    usual = raw_by_id(handler(demo, "on_report")(made.study_id, "annotators", request=signed_in("ada")))
    assert "Human vs model" in text(value(usual["gl-agree-metrics"]))
    assert usual["gl-agree-heatmap"]["visible"] is True


def test_every_review_event_is_private(app: tuple[gr.Blocks, Services, ReviewStudy]) -> None:
    demo, _, _ = app
    names = {"on_review_load", "on_review_list", "on_review_select", "on_adjudicate"}
    found = {fn.name: fn for fn in demo.fns.values() if fn.name in names}
    assert set(found) == names and all(fn.api_visibility == "private" for fn in found.values())


def test_the_labels_table_says_which_score_the_triage_counts() -> None:
    labels = [ReviewLabel(1, "ann", 2, 2, 4, 4, "")]
    blind, seen = text(render_review_labels(labels, True)), text(render_review_labels(labels, False))
    assert "counts the score before the reveal" in blind and "Before the reveal" in blind
    assert "counts the current score" in seen and "First score" in seen and "Before the reveal" not in seen
