"""The study tabs' callbacks with a real Store and Studies on a SQLite file, a scripted judge and fake sign-ins.

Who is asking comes from `gr.Request.username` (what Gradio's login sets), so each call below passes the
request of the user it acts for; the last tests launch the app behind sign-in and use it over HTTP.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pandas as pd
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from sklearn.metrics import cohen_kappa_score

from core.agreement import agreement_report, load_ratings
from core.errors import InputError
from core.hub_sign_in import sign_in_mode
from core.studies import Studies, User
from tests.fakes import ScriptedJudge
from tests.net import SLOW_MACHINE
from tests.test_study_grading import GARBLED, BatchingScriptedJudge
from tests.test_webapp_render import Markup
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    PASSWORD,
    answer,
    build,
    by_id,
    component,
    grade_in_form,
    handler,
    launched,
    make_services,
    make_study_services,
    signed_in,
    value,
    with_batch,
)
from webapp import Services
from webapp.main import parse_args, users_exist
from webapp.studies_ui import NEEDS_SIGN_IN, Cursor
from webapp.view_models import guess_column, parse_tags, place_selection, progress_line

# Gradio's queue analytics use pandas options that pandas 3 deprecates (raised in the server thread).
pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]

REASONING_MARK = "MODEL-REASONING-7f3a"  # appears only in the model's reasoning: a leak detector
MODEL_ANSWER = answer(f"- {REASONING_MARK}: the output states the capital as the context does.", ["capital"], 1)
ITEMS_CSV = (
    "id,context,model_output,notes\n"
    "c1,Paris is the capital of France.,The capital of France is Paris.,x\n"
    "c2,Rome is the capital of Italy.,The capital of Italy is Milan.,x\n"
    "c3,,,empty row\n"
    "c4,Madrid is the capital of Spain.,Spain's capital is Madrid.,x\n"
    "c5,Berlin is the capital of Germany.,Germany's capital is Bonn.,x\n"
    "c6,Vienna is the capital of Austria.,Austria's capital is Vienna.,x\n"
)
TAGS = "CONTEXT, MODEL OUTPUT"


# --- helpers -------------------------------------------------------------------------------------


def plain(raw: dict[Any, Any]) -> dict[str, Any]:
    """A callback's updates by elem_id (see `v` for their values); the Label tab's cursor under "cursor"."""
    view = {block.elem_id: val for block, val in raw.items() if getattr(block, "elem_id", None)}
    for key, val in raw.items():
        if isinstance(key, gr.State) and isinstance(val, Cursor):
            view["cursor"] = val
    return view


def text_of(view: dict[str, Any]) -> str:
    """Everything a user could read in these updates (markup included), for leak checks."""
    parts = []
    for val in view.values():
        if isinstance(val, str):
            parts.append(val)
        elif isinstance(val, dict):
            parts.extend(str(v) for v in val.values())
        elif isinstance(val, pd.DataFrame):
            parts.append(val.to_csv())
    return "\n".join(parts)


def v(view: dict[str, Any], key: str) -> Any:
    """The value an update in `view` sets."""
    return value(view.get(key))


def message(view: dict[str, Any], key: str) -> str:
    """The text of an HTML update."""
    return Markup(v(view, key) or "").all_text


class Labeller:
    """One signed-in browser session on the Label tab: keeps the cursor between clicks like gr.State does."""

    def __init__(self, demo: gr.Blocks, username: str) -> None:
        self.demo, self.request, self.cursor = demo, signed_in(username), Cursor()
        self.view: dict[str, Any] = {}

    def _run(self, name: str, *args: Any) -> dict[str, Any]:
        self.view = plain(handler(self.demo, name)(*args, request=self.request))
        self.cursor = self.view.get("cursor", self.cursor)
        return self.view

    def open(self, study_id: int) -> dict[str, Any]:
        return self._run("on_label_study", study_id, self.cursor)

    def mark(self, field: str, text: str, fields: dict[str, str]) -> dict[str, Any]:
        start = fields[field].index(text)
        selection = json.dumps({"field": field, "start": start, "end": start + len(text), "text": text})
        return self._run("on_mark", selection, self.cursor)

    def submit(self, score: int | None, comment: str = "") -> dict[str, Any]:
        return self._run("on_submit", None if score is None else str(score), comment, self.cursor)

    def keep(self) -> dict[str, Any]:
        return self._run("on_keep", self.cursor)

    def change(self, score: int) -> dict[str, Any]:
        return self._run("on_change", str(score), self.cursor)

    def skip(self) -> dict[str, Any]:
        return self._run("on_skip", self.cursor)

    def previous(self) -> dict[str, Any]:
        return self._run("on_previous", self.cursor)

    def resume(self) -> dict[str, Any]:
        return self._run("on_resume", self.cursor)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, gr.Blocks]]:
    """One built app for the module (building takes most of a second); each test gives it a fresh database."""
    services = make_study_services(tmp_path_factory.mktemp("studies-app"), users={})
    original = services.store
    yield services, build(services)
    original.close()


@pytest.fixture
def services(app: tuple[Services, gr.Blocks], tmp_path: Path) -> Iterator[Services]:
    """The app's services, switched to a new SQLite file with ada (admin), ann and bob (annotators)."""
    shared, _ = app
    fresh = make_study_services(tmp_path, judge=ScriptedJudge(MODEL_ANSWER, distribution={0: 0.2, 1: 0.8}))
    shared.store, shared.studies, shared.judge = fresh.store, fresh.studies, fresh.judge
    yield shared
    fresh.store.close()


@pytest.fixture
def demo(app: tuple[Services, gr.Blocks], services: Services) -> gr.Blocks:
    return app[1]


def user(services: Services, name: str) -> User:
    assert services.studies is not None
    found = services.studies.get_user(name)
    assert found is not None
    return found


def create_study(demo: gr.Blocks, *, blind: bool = True, overlap: int = 2, name: str = "Capitals") -> int:
    create = handler(demo, "on_create_study")
    view = plain(create(name, "Check the capitals.", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, TAGS, overlap,
                        blind, request=signed_in("ada")))
    created = message(view, "gl-study-message")
    assert created.startswith(f"Created the study \u201c{name}\u201d"), created
    return int(created.split("(#")[1].split(")")[0])


def import_items(demo: gr.Blocks, study_id: int, tmp_path: Path, text: str = ITEMS_CSV) -> dict[str, Any]:
    path = tmp_path / "items.csv"
    path.write_text(text, encoding="utf-8")
    preview = plain(handler(demo, "on_preview")(study_id, str(path), request=signed_in("ada")))
    mapping = [v(preview, f"gl-import-map-{i}") for i in range(8)]
    return plain(handler(demo, "on_import")(signed_in("ada"), study_id, str(path), v(preview, "gl-import-id"),
                                            *mapping))


def last(raw: Any) -> dict[Any, Any]:
    """A callback's updates; for a generator (a run that shows progress), the updates it ended with."""
    if inspect.isgenerator(raw):
        updates: dict[Any, Any] = {}
        for updates in raw:  # noqa: B007 - the last one is wanted
            pass
        return updates
    return raw


def grade_all(demo: gr.Blocks, study_id: int, name: str = "on_grade_all", username: str = "ada"
              ) -> list[dict[str, Any]]:
    """Every view a Grade all items (or Regrade failed) run yields, in order; the outcome is the last."""
    return [plain(raw) for raw in handler(demo, name)(study_id, request=signed_in(username))]


GRADED_ALL = "5 graded (5 of 5 items without a judgment in \u201cCapitals\u201d)."


def ready_study(demo: gr.Blocks, tmp_path: Path, *, blind: bool = True) -> int:
    study_id = create_study(demo, blind=blind)
    import_items(demo, study_id, tmp_path)
    graded = grade_all(demo, study_id)[-1]
    assert message(graded, "gl-grade-all-message") == GRADED_ALL
    return study_id


# --- Studies tab -------------------------------------------------------------------------------------


def test_admin_creates_a_study_previews_maps_imports_and_grades(demo: gr.Blocks, services: Services,
                                                                 tmp_path: Path) -> None:
    session = plain(handler(demo, "on_session")(signed_in("ada")))
    assert "ada" in message(session, "gl-user") and session["gl-studies-body"]["visible"] is True

    study_id = create_study(demo)
    path = tmp_path / "items.csv"
    path.write_text(ITEMS_CSV, encoding="utf-8")
    preview = plain(handler(demo, "on_preview")(study_id, str(path), request=signed_in("ada")))
    table = v(preview, "gl-import-preview")
    assert list(table.columns) == ["id", "context", "model_output", "notes"] and len(table) == 5
    # One picker per field tag, prefilled where a column is the tag in snake_case; the id column guessed.
    assert (v(preview, "gl-import-map-0"), v(preview, "gl-import-map-1")) == ("context", "model_output")
    assert preview["gl-import-map-0"]["label"] == "CONTEXT" and preview["gl-import-map-2"]["visible"] is False
    assert v(preview, "gl-import-id") == "id"

    report = message(import_items(demo, study_id, tmp_path), "gl-import-report")
    assert report.startswith("5 items added; 1 row refused:") and "row 3:" in report

    ada = user(services, "ada")
    assert services.studies is not None
    items = services.studies.list_items(ada, study_id)
    assert [i.external_id for i in items] == ["c1", "c2", "c4", "c5", "c6"]
    assert items[0].fields == {"CONTEXT": "Paris is the capital of France.",
                               "MODEL OUTPUT": "The capital of France is Paris."}

    graded = grade_all(demo, study_id)[-1]
    assert message(graded, "gl-grade-all-message") == GRADED_ALL
    assert all(i.judgment_id is not None for i in services.studies.list_items(ada, study_id))
    again = grade_all(demo, study_id)[-1]
    assert "already has a judgment" in message(again, "gl-grade-all-message")
    listed = graded["gl-study-list"]
    assert listed.iloc[0].tolist()[:5] == [str(study_id), "Capitals", "0\u20131", "5", "0"]


GARBLED_CSV = (
    "id,context,model_output\n"
    "c1,Paris is the capital of France.,The capital of France is Paris.\n"
    f"c2,Rome is the capital of Italy.,The capital of Italy is Milan {GARBLED}.\n"
    "c3,Madrid is the capital of Spain.,Spain's capital is Madrid.\n"
    f"c4,Berlin is the capital of Germany.,Germany's capital is Bonn {GARBLED}.\n"
    "c5,Vienna is the capital of Austria.,Austria's capital is Vienna.\n"
)


def test_grade_all_shows_progress_in_the_tab_reports_parse_failures_and_offers_to_regrade_them(
    demo: gr.Blocks, services: Services, tmp_path: Path
) -> None:
    judge = BatchingScriptedJudge()
    services.judge, services.api_batch_size = judge, 2
    study_id = create_study(demo)
    import_items(demo, study_id, tmp_path, GARBLED_CSV)

    views = grade_all(demo, study_id)
    assert judge.batches == [2, 2, 1]  # batched generation, as the Batch tab and the CLI do
    # The tab's own progress line, after every batch (the rate, which varies, left out here).
    lines = [re.sub(r" \u00b7 [\d.]+ items/s", "", message(view, "gl-grade-all-status")) for view in views[:-1]]
    assert lines == [
        "Choosing the items of \u201cCapitals\u201d to grade \u2026",
        *(f"Grading \u201cCapitals\u201d: {counts}. Cancel stops after the batch in progress." for counts in (
            "0 of 5 items",
            "2 of 5 items \u00b7 1 graded, 1 failed to parse",
            "4 of 5 items \u00b7 2 graded, 2 failed to parse",
            "5 of 5 items \u00b7 3 graded, 2 failed to parse",
        )),
    ]
    assert re.search(r"\u00b7 [\d.]+ items/s\.", message(views[2], "gl-grade-all-status"))
    outcome = views[-1]
    text = message(outcome, "gl-grade-all-message")
    assert text.startswith("3 graded, 2 failed to parse (5 of 5 items without a judgment in \u201cCapitals\u201d).")
    assert "press Regrade failed" in text and "gl-message-error" in v(outcome, "gl-grade-all-message")
    assert v(outcome, "gl-grade-all-status") == "" and outcome["gl-grade-all-status"]["visible"] is False

    judge.garble = False
    regraded = grade_all(demo, study_id, "on_regrade_failed")[-1]
    assert message(regraded, "gl-grade-all-message") == (
        "2 graded (2 of 2 items whose judgment failed to parse in \u201cCapitals\u201d).")
    assert "gl-message-info" in v(regraded, "gl-grade-all-message") and judge.batches == [2, 2, 1, 2]
    nothing = grade_all(demo, study_id, "on_regrade_failed")[-1]
    assert "No item of \u201cCapitals\u201d has a judgment that failed to parse" in message(nothing,
                                                                                           "gl-grade-all-message")


def test_grade_all_says_when_the_judge_stops_working_and_keeps_what_it_graded(
    demo: gr.Blocks, services: Services, tmp_path: Path
) -> None:
    judge = BatchingScriptedJudge()
    judge.fail_on_batch = 2
    services.judge, services.api_batch_size = judge, 2
    study_id = create_study(demo)
    import_items(demo, study_id, tmp_path)
    outcome = grade_all(demo, study_id)[-1]
    assert message(outcome, "gl-grade-all-message") == (
        "The judge stopped working: Could not reach the judge server (test). 2 graded (2 of 5 items without a "
        "judgment in \u201cCapitals\u201d). 3 left; press Grade all items to try again.")
    assert "gl-message-error" in v(outcome, "gl-grade-all-message")
    assert outcome["gl-study-list"].iloc[0].tolist()[3] == "5"


def test_grade_all_can_be_cancelled_between_batches_and_resumed(demo: gr.Blocks, services: Services,
                                                                tmp_path: Path) -> None:
    entered, release = threading.Event(), threading.Event()

    class HeldJudge(BatchingScriptedJudge):
        def generate_batch(self, prompts: Any, **options: Any) -> Any:
            entered.set()
            assert release.wait(30), "the test never released the judge"
            return super().generate_batch(prompts, **options)

    services.judge, services.api_batch_size = HeldJudge(), 2
    study_id = create_study(demo)
    import_items(demo, study_id, tmp_path)
    cancel = handler(demo, "on_grade_cancel")
    assert "No grading is running" in message(plain(cancel(request=signed_in("ada"))), "gl-grade-all-message")

    run = handler(demo, "on_grade_all")(study_id, request=signed_in("ada"))
    first = plain(next(run))
    assert "Choosing the items" in message(first, "gl-grade-all-status")
    assert entered.wait(30)  # the worker is inside the first batch
    stopping = plain(cancel(request=signed_in("ada")))
    assert message(stopping, "gl-grade-all-message") == "Stopping after the batch in progress \u2026"
    release.set()
    views = [plain(raw) for raw in run]
    outcome = message(views[-1], "gl-grade-all-message")
    assert outcome.startswith("Cancelled: 2 graded (2 of 5 items without a judgment in \u201cCapitals\u201d). 3 left")
    assert services.studies is not None
    ada = user(services, "ada")
    assert sum(item.judgment_id is not None for item in services.studies.list_items(ada, study_id)) == 2
    # The page forgets the finished run; grading again picks up the three that are left.
    assert "No grading is running" in message(plain(cancel(request=signed_in("ada"))), "gl-grade-all-message")
    resumed = message(grade_all(demo, study_id)[-1], "gl-grade-all-message")
    assert resumed == "3 graded (3 of 3 items without a judgment in \u201cCapitals\u201d)."


@pytest.mark.parametrize(
    ("name", "criteria", "rubric", "tags", "expected"),
    [
        ("", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, TAGS, "needs a name"),
        ("S", FAITHFULNESS_CRITERIA, "Be fair.", TAGS, "names no scores"),
        ("S", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, "A<B", "may not contain"),
    ],
)
def test_study_form_errors_are_messages(demo: gr.Blocks, name: str, criteria: str, rubric: str, tags: str,
                                        expected: str) -> None:
    view = plain(handler(demo, "on_create_study")(name, "", criteria, rubric, tags, 3, True, request=signed_in("ada")))
    assert expected in message(view, "gl-study-message") and "gl-message-error" in v(view, "gl-study-message")


def test_import_errors_are_messages(demo: gr.Blocks, tmp_path: Path) -> None:
    study_id = create_study(demo)
    binary = tmp_path / "items.csv"
    binary.write_bytes(b"PK\x03\x04 zip")
    preview = plain(handler(demo, "on_preview")(study_id, str(binary), request=signed_in("ada")))
    assert "gl-message-error" in v(preview, "gl-import-report")
    nothing = plain(handler(demo, "on_import")(signed_in("ada"), None, None, None, *[""] * 8))
    assert "Choose the study" in message(nothing, "gl-import-report")


def test_add_to_study_from_the_grade_tab_attaches_the_judgment_only_for_the_same_inputs(
    demo: gr.Blocks, services: Services
) -> None:
    study_id = create_study(demo)
    tags, texts = ["CONTEXT", "USER INPUT", "MODEL OUTPUT", "GOLD ANSWER"], ["Paris is in France.", "", "Paris.", ""]
    updates = grade_in_form(demo, *tags, *texts, FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, 512,
                            request=signed_in("ada"))
    graded = next(val for key, val in updates[-1].items() if isinstance(key, gr.State))
    assert graded["fields"] == {"CONTEXT": "Paris is in France.", "MODEL OUTPUT": "Paris."}

    add = handler(demo, "on_add_to_study")
    same = message(plain(add(signed_in("ada"), study_id, graded, *tags, *texts)), "gl-add-message")
    assert f"with judgment #{graded['judgment_id']}" in same
    edited = [texts[0], "", "Paris!", ""]
    other = message(plain(add(signed_in("ada"), study_id, graded, *tags, *edited)), "gl-add-message")
    assert "Added item" in other and "was not attached" in other
    ada = user(services, "ada")
    assert services.studies is not None
    items = services.studies.list_items(ada, study_id)
    assert [i.judgment_id for i in items] == [graded["judgment_id"], None]
    refused = message(plain(add(signed_in("ann"), study_id, graded, *tags, *texts)), "gl-add-message")
    assert "Only an admin" in refused and len(services.studies.list_items(ada, study_id)) == 2


def test_add_to_study_refuses_the_same_item_twice_and_names_the_one_already_there(
    demo: gr.Blocks, services: Services
) -> None:
    study_id = create_study(demo)
    tags, texts = ["CONTEXT", "USER INPUT", "MODEL OUTPUT", "GOLD ANSWER"], ["Paris is in France.", "", "Paris.", ""]
    add = handler(demo, "on_add_to_study")
    first = message(plain(add(signed_in("ada"), study_id, None, *tags, *texts)), "gl-add-message")
    item_id = int(first.split("item #")[1].split(" ")[0])
    # A second click, or the same texts pasted again with a trailing newline: refused, naming the item.
    for again in (texts, [texts[0] + "\n", " ", " Paris.", ""]):
        view = plain(add(signed_in("ada"), study_id, None, *tags, *again))
        refused = message(view, "gl-add-message")
        assert "gl-message-error" in v(view, "gl-add-message")
        assert f"already has an item with these fields: item #{item_id}." in refused and "Added" not in refused
    assert services.studies is not None
    assert len(services.studies.list_items(user(services, "ada"), study_id)) == 1


# --- Label tab ------------------------------------------------------------------------------------


def test_two_annotators_label_a_blind_study_and_the_admin_reads_the_report(
    demo: gr.Blocks, services: Services, tmp_path: Path
) -> None:
    study_id = ready_study(demo, tmp_path)
    assert services.studies is not None
    ann = Labeller(demo, "ann")

    view = ann.open(study_id)
    assert message(view, "gl-label-progress") == "0 / 5 labelled by you \u00b7 0 of 5 items have 2 of 2 labels"
    # Each score button carries its rubric level; the rubric's levels are in the summary too.
    assert view["gl-label-score"]["choices"] == [
        ("0 \u2014 The MODEL OUTPUT contains a claim the CONTEXT does not support.", "0"),
        ("1 \u2014 Every claim in the MODEL OUTPUT is supported by the CONTEXT.", "1")]
    assert "gl-score-levels" in view["gl-label-score"]["elem_classes"]
    summary = Markup(v(view, "gl-label-summary"))
    assert "What each score means" in summary.all_text
    assert "1 Every claim in the MODEL OUTPUT is supported by the CONTEXT." in summary.all_text
    # Blind: nothing of the model's verdict reaches the page before the human submits.
    before = text_of(view)
    assert REASONING_MARK not in before and "gl-card" not in before and "gl-hl" not in before
    first_item = ann.cursor.item_id
    fields = services.studies.get_item(user(services, "ann"), first_item).fields

    marked = ann.mark("MODEL OUTPUT", "capital", fields)
    assert [m for m, attrs in Markup(marked["gl-label-fields"]).marks] == ["capital"]
    assert "capital" in message(marked, "gl-label-evidence")
    assert REASONING_MARK not in text_of(marked)

    assert "Choose a score first" in message(ann.submit(None), "gl-label-message")
    revealed = ann.submit(0, comment="wrong capital?")
    assert ann.cursor.mode == "reveal"
    assert REASONING_MARK in text_of(revealed) and "gl-card" in v(revealed, "gl-label-model")
    reveal_text = message(revealed, "gl-label-reveal-text")
    assert "You gave 0; the model gave 1" in reveal_text
    # The model's highlight and the human's evidence are both drawn over the fields.
    marks = Markup(revealed["gl-label-fields"]).marks
    assert any("gl-hl-human" in (attrs["class"] or "") for _, attrs in marks)
    assert any("gl-hl" in (attrs["class"] or "").split() for _, attrs in marks)

    after_change = ann.change(1)
    assert "Changed your score" in message(after_change, "gl-label-message") and ann.cursor.item_id != first_item
    stored = services.studies.my_annotations(user(services, "ann"), study_id)
    assert [(a.score_before_reveal, a.score_after_reveal, a.score) for a in stored] == [(0, 1, 1)]
    assert stored[0].spans == [{"field": "MODEL OUTPUT", "start": fields["MODEL OUTPUT"].index("capital"),
                                "end": fields["MODEL OUTPUT"].index("capital") + len("capital")}]
    assert stored[0].comment == "wrong capital?"

    for _ in range(4):
        assert REASONING_MARK not in text_of(ann.view)
        ann.submit(1)
        ann.keep()
    done = ann.view
    assert "labelled every item" in message(done, "gl-label-message") and done["gl-label-work"]["visible"] is False
    assert message(done, "gl-label-progress") == "5 / 5 labelled by you \u00b7 0 of 5 items have 2 of 2 labels"

    # A reload resumes from the database: a fresh session of ann has nothing left, bob starts at item one.
    assert Labeller(demo, "ann").open(study_id)["gl-label-work"]["visible"] is False
    bob = Labeller(demo, "bob")
    bob.open(study_id)
    for score in (1, 0, 1, 1, 0):
        bob.submit(score)
        if bob.cursor.mode == "reveal":
            bob.keep()
    assert message(bob.view, "gl-label-progress") == "5 / 5 labelled by you \u00b7 5 of 5 items have 2 of 2 labels"

    # Previous: bob's own labels, newest first, editable; every change kept in the history.
    latest = bob.previous()
    assert bob.cursor.mode == "edit" and latest["gl-label-submit"]["value"] == "Save changes"
    assert latest["gl-label-score"]["value"] == "0" and REASONING_MARK in text_of(latest)
    older = bob.previous()
    assert older["gl-label-score"]["value"] == "1"
    edited_id = bob.cursor.annotation_id
    saved = bob.submit(0, comment="changed my mind")
    assert "Saved your changes" in message(saved, "gl-label-message")
    bob_user = user(services, "bob")
    assert services.studies.get_annotation(bob_user, edited_id).score == 0
    assert [e.changes["score"] for e in services.studies.history(bob_user, edited_id)] == [(1, 0)]
    assert bob.resume()["gl-label-work"]["visible"] is False

    # Agreement: metrics, the four charts, disagreements, and exports that parse back.
    report = plain(handler(demo, "on_report")(study_id, request=signed_in("ada")))
    metrics = message(report, "gl-agree-metrics")
    assert "Weighted \u03ba (quadratic)" in metrics and "Krippendorff \u03b1 (ordinal)" in metrics
    assert "5 of 5 items" in metrics and "2 annotators" in metrics
    assert "halves rounded UP" in message(report, "gl-agree-notes")
    for chart in ("gl-agree-heatmap", "gl-agree-scatter", "gl-agree-distributions", "gl-agree-annotators"):
        assert v(report, chart) is not None and report[chart]["visible"] is True, chart
    assert v(report, "gl-agree-heatmap").layout.title.text == "Human vs model scores (items)"
    table = v(report, "gl-agree-disagreements")
    assert list(table.columns)[:4] == ["Item", "Human (mean)", "Model", "|Human \u2212 Model|"]
    assert [float(g) for g in table.iloc[:, 3]] == sorted((float(g) for g in table.iloc[:, 3]), reverse=True)

    csv_path, jsonl_path, json_path, html_path = (Path(v(report, f"gl-export-{s}"))
                                                  for s in ("csv", "jsonl", "json", "html"))
    exported = pd.read_csv(csv_path)
    assert len(exported) == 10 and set(exported["annotator"]) == {"ann", "bob"}
    assert {"CONTEXT", "MODEL OUTPUT", "score_before_reveal", "model_reasoning"} <= set(exported.columns)
    lines = [json.loads(line) for line in jsonl_path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 10 and lines[0]["study_id"] == study_id
    assert json.loads(json_path.read_text(encoding="utf-8"))["n_annotators"] == 2
    assert html_path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    # The decision panel: the alt-test, judge vs people and calibration, as the report holds them; the chart.
    decision = message(report, "gl-agree-decision")
    for heading in ("How the items were drawn", "Can the judge replace an annotator? (alt-test)",
                    "Judge vs people, next to people vs people",
                    "Where the judge can be trusted (calibration)"):
        assert heading in decision
    saved = json.loads(json_path.read_text(encoding="utf-8"))
    assert saved["alt_test"]["decision"] in decision and saved["alt_test"]["epsilon"] == 0.2
    assert saved["judge_vs_people"]["reading"] in decision and saved["sampling"]["note"] in decision
    assert saved["calibration"]["available"] and saved["calibration"]["target"] == 0.9
    assert report["gl-agree-reliability"]["visible"] is True
    assert "Reliability" in v(report, "gl-agree-reliability").layout.title.text

    # The margin and the target come from the tab's boxes; a value out of range is the report's own message.
    chosen = plain(handler(demo, "on_report")(study_id, "annotators", 0.1, 0.6, request=signed_in("ada")))
    saved = json.loads(Path(v(chosen, "gl-export-json")).read_text(encoding="utf-8"))
    assert saved["alt_test"]["epsilon"] == 0.1 and saved["calibration"]["target"] == 0.6
    refused = plain(handler(demo, "on_report")(study_id, "annotators", 1.5, None, request=signed_in("ada")))
    assert "epsilon must be at least 0 and below 1" in message(refused, "gl-agree-message")
    assert refused["gl-agree-decision"]["visible"] is False

    # Blind: the headline is the scores from before the reveal, the post-reveal view and the anchoring beside it.
    # By hand from the stored labels: per item, the mean of its labels rounded half up, vs the model's score.
    stored = services.studies.export_rows(user(services, "ada"), study_id)
    by_item: dict[int, list[dict[str, Any]]] = {}
    for label in stored:
        by_item.setdefault(label["item_id"], []).append(label)

    def exact(column: str) -> float:
        hits = [int(sum(r[column] for r in rs) / len(rs) + 0.5) == rs[0]["model_score"] for rs in by_item.values()]
        return sum(hits) / len(hits)

    assert "every number here uses the score each annotator gave before the model's verdict" in metrics
    assert "Human vs model \u2014 before the reveal" in metrics
    def pair_kappa(column: str) -> float:  # ann vs bob on the items both labelled (all five)
        pairs = [sorted(rs, key=lambda r: r["annotator"]) for rs in by_item.values()]
        return cohen_kappa_score([a[column] for a, _ in pairs], [b[column] for _, b in pairs], labels=[0, 1],
                                 weights="quadratic")

    before, after = exact("score_before_reveal"), exact("score")
    assert f"Exact agreement{before:.3f}{after:.3f}{after - before:+.3f}" in metrics
    kappa_before, kappa_after = pair_kappa("score_before_reveal"), pair_kappa("score")
    assert kappa_before != kappa_after  # the two views differ here, so the row shows which is which
    assert (f"Mean pairwise weighted \u03ba{kappa_before:.3f}{kappa_after:.3f}"
            f"{kappa_after - kappa_before:+.3f}") in metrics
    # ann changed item one from 0 to 1 (the model's score) at the reveal; bob later edited a 1 to 0.
    assert ("Revised after the reveal: 2 of 10 labels (1 towards the model, 1 away; 1 when confirming at the "
            "reveal, 1 by a later edit).") in metrics
    saved = json.loads(json_path.read_text(encoding="utf-8"))
    assert saved["headline_score"]["score"] == "human_score_before_reveal"
    assert saved["exact"]["value"] == pytest.approx(before) and saved["post_reveal"]["exact"]["value"] == after
    # The annotation export goes back into the agreement statistics as it is, with the same headline.
    for path in (csv_path, jsonl_path):
        again = agreement_report(load_ratings(path), (0, 1), n_resamples=0)
        assert again["headline_score"]["score"] == "human_score_before_reveal", path
        for name in ("exact", "weighted_kappa", "krippendorff_alpha_ordinal"):
            assert again[name]["value"] == saved[name]["value"], (path, name)
        assert again["anchoring"] == saved["anchoring"], path
    # The HTML report names items by the user's own ids (the id column of the imported file).
    page = html_path.read_text(encoding="utf-8")
    assert all(f"<tr><td>c{n}</td>" in page for n in (1, 2, 4, 5, 6))
    assert not any(f"<tr><td>{item_id}</td>" in page for item_id in by_item)
    assert all(preview.startswith("[c") for preview in table.iloc[:, 5])

    # The item ann revised at the reveal shows both of her scores: the headline's and the current one.
    revised = next(r.tolist() for _, r in table.iterrows() if r.iloc[0] == str(first_item))
    shown = plain(handler(demo, "on_disagreement_select")(
        study_id, gr.SelectData(None, {"index": [0, 0], "value": revised[0], "row_value": revised}),
        request=signed_in("ada")))
    assert "ann: 0 before the reveal, 1 now" in Markup(v(shown, "gl-agree-item")).all_text

    row = table.iloc[0].tolist()
    picked = plain(handler(demo, "on_disagreement_select")(
        study_id, gr.SelectData(None, {"index": [0, 0], "value": row[0], "row_value": row}), request=signed_in("ada")))
    item_view = Markup(v(picked, "gl-agree-item"))
    assert f"Item #{row[0]}" in item_view.all_text and "Human labels" in item_view.all_text
    assert [m for m, _ in item_view.marks].count("capital") >= 1 and REASONING_MARK in item_view.all_text


def test_a_non_blind_study_shows_the_verdict_alongside_and_moves_on(demo: gr.Blocks, tmp_path: Path) -> None:
    study_id = ready_study(demo, tmp_path, blind=False)
    ann = Labeller(demo, "ann")
    view = ann.open(study_id)
    assert REASONING_MARK in text_of(view) and "gl-hl" in v(view, "gl-label-fields")
    first = ann.cursor.item_id
    after = ann.submit(1)
    assert ann.cursor.mode == "label" and ann.cursor.item_id != first
    assert f"Saved your score 1 for item #{first}." in message(after, "gl-label-message")
    ann.submit(0)
    report = plain(handler(demo, "on_report")(study_id, request=signed_in("ada")))
    metrics = message(report, "gl-agree-metrics")
    assert "Not a blind study: the labels were given with the model's verdict visible" in metrics
    assert "before the reveal" not in metrics and "After the reveal" not in metrics
    assert "marked no evidence" in message(report, "gl-agree-notes")  # ann marked none: left out of spans


def test_skip_passes_over_items_until_only_skipped_ones_are_left(demo: gr.Blocks, tmp_path: Path) -> None:
    study_id = ready_study(demo, tmp_path)
    ann = Labeller(demo, "ann")
    ann.open(study_id)
    seen = [ann.cursor.item_id]
    for _ in range(4):
        view = ann.skip()
        assert f"Skipped item #{seen[-1]}." in message(view, "gl-label-message")
        assert ann.cursor.item_id not in seen and REASONING_MARK not in text_of(view)
        seen.append(ann.cursor.item_id)
    again = ann.skip()
    assert "here they are again" in message(again, "gl-label-message")
    assert ann.cursor.item_id in seen and ann.cursor.skipped == ()
    ann.submit(1)
    ann.keep()
    assert message(ann.view, "gl-label-progress").startswith("1 / 5 labelled by you")


def test_a_selection_that_is_not_in_one_field_is_refused(demo: gr.Blocks, tmp_path: Path) -> None:
    study_id = ready_study(demo, tmp_path)
    ann = Labeller(demo, "ann")
    ann.open(study_id)
    for selection, expected in [
        (json.dumps({"error": "Select some words in a field first, then press Mark selection."}), "Select some words"),
        (json.dumps({"field": "NOPE", "start": 0, "end": 3, "text": "abc"}), "inside one field"),
        (json.dumps({"field": "CONTEXT", "start": 0, "end": 3, "text": "zzz"}), "was not found"),
        ("", "Select some text"),
    ]:
        view = ann._run("on_mark", selection, ann.cursor)
        assert expected in message(view, "gl-label-message"), selection
    assert ann.cursor.spans == ()


# --- who may do what ----------------------------------------------------------------------------------


def test_an_annotator_cannot_read_or_change_another_annotators_labels(
    demo: gr.Blocks, services: Services, tmp_path: Path
) -> None:
    study_id = ready_study(demo, tmp_path)
    ann = Labeller(demo, "ann")
    ann.open(study_id)
    item_id = ann.cursor.item_id
    ann.submit(0, comment="ann's private comment")
    annotation_id = ann.cursor.annotation_id
    assert annotation_id is not None
    assert services.studies is not None

    # bob replays ann's cursor (as if he could forge the server-side state) on every label handler.
    bob = signed_in("bob")
    stolen_edit = Cursor(study_id=study_id, item_id=item_id, mode="edit", annotation_id=annotation_id)
    stolen_reveal = Cursor(study_id=study_id, item_id=item_id, mode="reveal", annotation_id=annotation_id, submitted=0)
    attempts = {
        "edit": handler(demo, "on_submit")("1", "bob was here", stolen_edit, request=bob),
        "keep": handler(demo, "on_keep")(stolen_reveal, request=bob),
        "change": handler(demo, "on_change")("1", stolen_reveal, request=bob),
        "previous": handler(demo, "on_previous")(stolen_edit, request=bob),
    }
    for name, raw in attempts.items():
        view = plain(raw)
        text = text_of(view)
        assert "gl-message-error" in (v(view, "gl-label-message") or ""), name
        assert "ann's private comment" not in text and "wrong" not in text, name
    assert "may not edit another annotator's label" in message(plain(attempts["edit"]), "gl-label-message")
    assert "may not confirm another annotator's label" in message(plain(attempts["keep"]), "gl-label-message")
    stored = services.studies.get_annotation(user(services, "ada"), annotation_id)
    assert (stored.score, stored.score_after_reveal, stored.comment) == (0, None, "ann's private comment")

    # The admin-only tabs refuse an annotator and show no data.
    for name, args in [
        ("on_report", (study_id,)),
        ("on_disagreement_select", (study_id, gr.SelectData(None, {"index": [0, 0], "value": str(item_id),
                                                                     "row_value": [str(item_id)]}))),
        ("on_create_study", ("Mine", "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, TAGS, 1, True)),
        ("on_import", (bob, study_id, str(tmp_path / "items.csv"), "id", "context", "model_output", *[""] * 6)),
        ("on_grade_all", (study_id,)),
        ("on_regrade_failed", (study_id,)),
        ("on_refresh_studies", ()),
    ]:
        view = plain(last(handler(demo, name)(*args) if args and args[0] is bob
                          else handler(demo, name)(*args, request=bob)))
        text = text_of(view)
        assert "Only an admin may" in text or "Only admins" in text, name
        assert "ann's private comment" not in text and "ann" not in Markup(text).all_text.split(), name
    session = plain(handler(demo, "on_session")(bob))
    assert session["gl-studies-body"]["visible"] is False and session["gl-add-to-study"]["visible"] is False
    assert session["gl-agree-body"]["visible"] is False and "for admins" in message(session, "gl-agree-notice")


def test_without_a_signed_in_user_the_study_tabs_explain_how_to_create_an_admin(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    services.studies = Studies(services.store)  # no user yet, so main.py leaves sign-in off
    demo = build(services)
    session = plain(handler(demo, "on_session")(signed_in(None)))
    for notice in ("gl-studies-notice", "gl-label-notice", "gl-agree-notice"):
        assert "python -m core create-admin NAME" in message(session, notice)
    assert session["gl-logout"]["visible"] is False and session["gl-studies-body"]["visible"] is False
    assert NEEDS_SIGN_IN in message(plain(handler(demo, "on_label_study")(1, Cursor(), request=signed_in(None))),
                                    "gl-label-message")
    report = plain(handler(demo, "on_report")(1, request=signed_in(None)))
    assert "create-admin" in message(report, "gl-agree-message")
    # The Grade and History tabs work as before without sign-in.
    assert "gl-message-error" not in (value(by_id(demo, handler(demo, "on_refresh")())["gl-history-message"]) or "")


def test_history_is_for_admins_when_sign_in_is_on(demo: gr.Blocks) -> None:
    refused = by_id(demo, handler(demo, "on_refresh")(request=signed_in("ann")))
    assert "Grading is for admins" in Markup(value(refused["gl-history-message"])).all_text
    assert "gl-history" not in refused
    assert "gl-history" in by_id(demo, handler(demo, "on_refresh")(request=signed_in("ada")))
    opened = by_id(demo, handler(demo, "on_open")(1, request=signed_in("bob")))
    assert "Grading is for admins" in Markup(value(opened["gl-history-message"])).all_text


def test_every_study_event_is_private_and_grading_a_study_waits_for_the_judge(demo: gr.Blocks) -> None:
    fns = {fn.name: fn for fn in demo.fns.values()}
    public = sorted(fn.name for fn in demo.fns.values() if fn.api_visibility != "private")
    assert public == ["compare", "grade", "status"]
    for grading in ("on_grade_all", "on_regrade_failed"):
        assert fns[grading].concurrency_id == "judge" and fns[grading].concurrency_limit == 1
        assert fns[grading].show_progress == "hidden"  # the tab's own progress line shows the run instead
    assert fns["on_grade_cancel"].queue is False  # Cancel gets through while the run holds the judge's queue
    assert fns["on_mark"].js and "getSelection" in fns["on_mark"].js


def test_every_handler_that_asks_who_is_calling_gets_the_request_from_gradio(tmp_path: Path) -> None:
    # Gradio fills a gr.Request only into positional parameters; one declared after *args stays unfilled and the
    # event fails on a real server, although a direct call with request=... works.
    whole_app = build(with_batch(make_study_services(tmp_path)))
    asking = 0
    for block_fn in whole_app.fns.values():
        parameters = inspect.signature(block_fn.fn).parameters.values() if block_fn.fn else ()
        for parameter in parameters:
            if parameter.annotation in (gr.Request, "gr.Request", "gr.Request | None"):
                asking += 1
                assert parameter.kind is parameter.POSITIONAL_OR_KEYWORD, (block_fn.name, parameter.kind)
                assert all(p.kind is not p.VAR_POSITIONAL for p in parameters
                           if list(parameters).index(p) < list(parameters).index(parameter)), block_fn.name
    assert asking >= 10


# --- over HTTP, behind sign-in -----------------------------------------------------------------------


def call_event(http: httpx.Client, base: str, elem_id: str, trigger: str, data: list[Any],
               event_data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a page event directly through Gradio's queue, as a script holding a session cookie could."""
    config = http.get(f"{base}/config").json()
    elem_ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    dependency = next(d for d in config["dependencies"]
                      if any(elem_ids.get(target) == elem_id and kind == trigger for target, kind in d["targets"]))
    session = f"direct-{elem_id}"
    joined = http.post(f"{base}/gradio_api/queue/join", json={
        "data": data, "fn_index": dependency["id"], "session_hash": session, "event_data": event_data,
        "trigger_id": dependency["targets"][0][0]})
    assert joined.status_code == 200, joined.text
    with http.stream("GET", f"{base}/gradio_api/queue/data", params={"session_hash": session}) as events:
        for line in events.iter_lines():
            if line.startswith("data:") and (message := json.loads(line[5:])).get("msg") == "process_completed":
                return dict(message["output"])
    raise AssertionError("the event never completed")


def test_the_http_api_exposes_no_label_handler_and_refuses_anyone_not_signed_in(services: Services,
                                                                                demo: gr.Blocks,
                                                                                tmp_path: Path) -> None:
    study_id = ready_study(demo, tmp_path)  # the launched app shares this database
    with launched(services) as url:
        base = url.rstrip("/")
        with httpx.Client(timeout=60) as anonymous:
            assert anonymous.get(f"{base}/gradio_api/info").status_code == 401
            assert anonymous.get(f"{base}/config").status_code == 401
            call = anonymous.post(f"{base}/gradio_api/call/grade", json={"data": ["", "", "x", "", "c", "0: a\n1: b"]})
            assert call.status_code == 401
            wrong = anonymous.post(f"{base}/login", data={"username": "ann", "password": "guess"})
            assert wrong.status_code == 400
        client = Client(url, auth=("ann", PASSWORD), verbose=False, httpx_kwargs=SLOW_MACHINE)
        try:
            info = client.view_api(print_info=False, return_format="dict")
            assert sorted(info["named_endpoints"]) == ["/compare", "/grade", "/status"]
            assert info.get("unnamed_endpoints", {}) == {}
            assert client.predict(api_name="/status")["state"] == "ready"
            with pytest.raises(AppError, match="Grading is for admins"):  # an annotator without the grade right
                client.predict("Paris is the capital of France.", "", "Paris is the capital.", "",
                               FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, api_name="/grade")
        finally:
            client.close()
        admin = Client(url, auth=("ada", PASSWORD), verbose=False, httpx_kwargs=SLOW_MACHINE)
        try:
            result = admin.predict("Paris is the capital of France.", "", "Paris is the capital.", "",
                                   FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, api_name="/grade")
            assert result["score"] == 1
        finally:
            admin.close()

        # Private events are hidden from the API, not unreachable: a signed-in script can still post one to
        # the queue. Then the request's own username is what core checks, so an annotator gets no data.
        row = {"index": [0, 0], "value": "1", "row_value": ["1"]}
        for username, expected in (("bob", "Only an admin may export a study"), ("ada", "Item #1")):
            with httpx.Client(timeout=60) as http:
                assert http.post(f"{base}/login", data={"username": username, "password": PASSWORD}).is_success
                # Inputs: the study on screen and the judge run picker (empty: the first run).
                output = call_event(http, base, "gl-agree-disagreements", "select", [study_id, None], row)
            shown = Markup(output["data"][0]["value"]).all_text
            assert expected in shown, (username, shown)
            assert (REASONING_MARK in shown) is (username == "ada")


# --- pure helpers and the entry point ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "columns", "expected"),
    [
        ("MODEL OUTPUT", ["id", "model_output"], "model_output"),
        ("MODEL OUTPUT", ["Model Output"], "Model Output"),
        ("USER INPUT", ["user-input"], "user-input"),
        ("GOLD ANSWER", ["gold"], None),
    ],
)
def test_guess_column_matches_the_tag_in_snake_case(tag: str, columns: list[str], expected: str | None) -> None:
    assert guess_column(tag, columns) == expected


def test_parse_tags_and_progress_line() -> None:
    assert parse_tags("CONTEXT, MODEL OUTPUT\nMODEL OUTPUT, ,GOLD") == ("CONTEXT", "MODEL OUTPUT", "GOLD")
    assert progress_line(12, 100, 40, 3) == "12 / 100 labelled by you \u00b7 40 of 100 items have 3 of 3 labels"
    assert progress_line(12, 100, 40, 3, 40) == "12 / 40 labelled by you \u00b7 40 of 100 items have 3 of 3 labels"


@pytest.mark.parametrize(
    ("text", "selected", "start_hint", "expected"),
    [
        ("🚀🚀 Zürich ist großartig", "großartig", 14, (14, 23)),  # code points, as the page sends them
        ("line one\r\nline two", "one\nline", 5, (5, 14)),  # the page shows CRLF as LF
        ("a b a b", "a b", 4, (4, 7)),  # the wrong offset: the nearest occurrence wins
    ],
)
def test_place_selection_checks_the_offsets_against_the_text(
    text: str, selected: str, start_hint: int, expected: tuple[int, int]
) -> None:
    raw = json.dumps({"field": "F", "start": start_hint, "end": start_hint + len(selected), "text": selected})
    assert place_selection({"F": text}, raw) == {"field": "F", "start": expected[0], "end": expected[1]}


@pytest.mark.parametrize("raw", [None, "{", "[]", json.dumps({"field": "F", "text": " "})])
def test_place_selection_refuses_what_it_cannot_read(raw: str | None) -> None:
    with pytest.raises(InputError):
        place_selection({"F": "text"}, raw)


def test_sign_in_is_on_with_the_flag_the_environment_or_a_user(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIDER_AUTH", raising=False)
    assert parse_args([]).auth is None and parse_args(["--auth"]).auth == "password"
    assert sign_in_mode(parse_args(["--auth"]).auth, os.environ, users_exist=False) == "password"
    monkeypatch.setenv("GLIDER_AUTH", "1")
    assert sign_in_mode(parse_args([]).auth, os.environ, users_exist=False) == "password"
    services = make_services(tmp_path)
    assert users_exist(services.store) is False
    Studies(services.store).create_user("root", PASSWORD, role="admin")
    assert users_exist(services.store) is True
    services.store.close()


def test_the_create_form_sets_the_queue_order_and_explains_it(demo: gr.Blocks, services: Services) -> None:
    help_text = Markup(component(demo, "gl-study-queue-order-help").value).all_text
    assert "unbiased" in help_text and "biased toward hard items" in help_text and "First N at random" in help_text
    create = handler(demo, "on_create_study")
    args = ("Unsure first", "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, TAGS, 2, True)
    view = plain(create(*args, request=signed_in("ada"), queue_order="uncertainty", random_first=3.0))
    created = message(view, "gl-study-message")
    assert created.startswith("Created the study"), created
    study_id = int(created.split("(#")[1].split(")")[0])
    assert services.studies is not None
    study = services.studies.get_study(user(services, "ada"), study_id)
    assert (study.queue_order, study.random_first) == ("uncertainty", 3)
    default = create_study(demo, name="Plain")  # the form's defaults: random
    assert services.studies.get_study(user(services, "ada"), default).queue_order == "random"
    bad = plain(create(*args, request=signed_in("ada"), queue_order="uncertainty", random_first=-2))
    assert "between 0 and" in message(bad, "gl-study-message") and "gl-message-error" in v(bad, "gl-study-message")
    refused = plain(create(*args, request=signed_in("bob"), queue_order="uncertainty", random_first=0))
    assert "Only an admin may" in message(refused, "gl-study-message")
    assert [s.name for s in services.studies.list_studies(user(services, "ada"))] == ["Plain", "Unsure first"]
