"""The Manage tab's callbacks (webapp.studies.manage_tab) on real services: settings and guidelines (rendered
safely on the Label tab), the lock once labels exist, archive, export then delete, the item browser, removing an
item, per-annotator progress; an annotator is refused by every one of them."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from core.studies import StudySpec
from tests.test_webapp_render import Markup
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    XSS_PAYLOADS,
    build,
    by_id,
    handler,
    make_study_services,
    signed_in,
    value,
)
from webapp import Services, render
from webapp.studies.label_tab import Cursor

GUIDE = "## Read first\n\nMark the **claim** that the CONTEXT does not support."


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[Services, gr.Blocks, int, list[int]]]:
    services = make_study_services(tmp_path)
    studies = services.studies
    assert studies is not None
    ada = studies.get_user("ada")
    assert ada is not None
    study = studies.create_study(ada, StudySpec(name="Capitals", description="Capitals of Europe.",
                                                pass_criteria=FAITHFULNESS_CRITERIA, rubric=FAITHFULNESS_RUBRIC,
                                                tags=("CONTEXT", "MODEL OUTPUT"), overlap_target=2, blind=False))
    ids = [studies.add_item(ada, study.id, {"CONTEXT": f"Context {n}.", "MODEL OUTPUT": f"Output {n}."},
                            external_id=f"cap-{n}").id for n in range(3)]
    yield services, build(services), study.id, ids
    services.store.close()


def call(demo: gr.Blocks, name: str, *args: Any, user: str = "ada") -> dict[str, Any]:
    return by_id(demo, handler(demo, name)(*args, request=signed_in(user)))


def form(study_id: int, **changes: Any) -> list[Any]:
    values = {"name": "Capitals", "description": "Capitals of Europe.", "guidelines": "",
              "criteria": FAITHFULNESS_CRITERIA, "rubric": FAITHFULNESS_RUBRIC, "blind": False, "overlap": 2}
    values.update(changes)
    return [study_id, *values.values()]


def label_summary(demo: gr.Blocks, study_id: int, user: str = "ann") -> str:
    opened = by_id(demo, handler(demo, "on_label_study")(study_id, Cursor(), request=signed_in(user)))
    return str(value(opened["gl-label-summary"]))


def test_guidelines_saved_in_manage_show_on_the_label_tab_as_safe_markdown(
        app: tuple[Services, gr.Blocks, int, list[int]]) -> None:
    _, demo, study_id, _ = app
    payload = "\n\n".join([GUIDE, *XSS_PAYLOADS])
    saved = call(demo, "on_manage_save", *form(study_id, guidelines=payload, name="Capitals v2"))
    assert "Saved the settings of" in value(saved["gl-manage-message"])
    assert value(saved["gl-manage-guidelines"]) == payload
    summary = label_summary(demo, study_id)
    assert "<h2>Read first</h2>" in summary and "<strong>claim</strong>" in summary
    lowered = summary.lower()
    for tag in ("<script", "<img", "<svg", "<iframe", "<object", "<video", "<input", "<body", "<math", "<details open "
                "ontoggle"):
        assert tag not in lowered, tag
    assert 'href="javascript' not in lowered
    assert html.escape(XSS_PAYLOADS[0]) in summary  # shown as text


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_rendered_guidelines_hold_no_markup_beyond_markdown(payload: str) -> None:
    fragment = render.render_guidelines(f"Intro\n\n{payload}\n\n- a **b**")
    allowed = {"details", "summary", "div", "p", "ul", "li", "strong", "em", "a", "code", "pre", "br", "blockquote"}
    for tag, attrs in Markup(fragment).tags:
        assert tag in allowed, f"unexpected <{tag}> in {fragment!r}"
        assert set(attrs) <= {"class", "open", "href"}, attrs
        assert not str(attrs.get("href", "")).lower().startswith(("javascript", "data", "vbscript"))
    assert "__xss" not in "".join(str(v) for _, attrs in Markup(fragment).tags for v in attrs.values())


def test_the_form_locks_rubric_criteria_and_blind_once_labels_exist(
        app: tuple[Services, gr.Blocks, int, list[int]]) -> None:
    services, demo, study_id, ids = app
    fresh = call(demo, "on_manage_pick", study_id)
    assert fresh["gl-manage-rubric"]["interactive"] is True and not value(fresh["gl-manage-locked"])
    changed = call(demo, "on_manage_save", *form(study_id, rubric="1: bad.\n2: so-so.\n3: good."))
    assert "Saved" in value(changed["gl-manage-message"])
    assert services.studies is not None
    ann = services.studies.get_user("ann")
    assert ann is not None
    services.studies.submit(ann, ids[0], 3)
    locked = call(demo, "on_manage_pick", study_id)
    assert locked["gl-manage-rubric"]["interactive"] is False and locked["gl-manage-blind"]["interactive"] is False
    assert "fixed" in value(locked["gl-manage-locked"])
    refused = call(demo, "on_manage_save", *form(study_id, rubric=FAITHFULNESS_RUBRIC))
    assert "Duplicate it as a new study" in html.unescape(value(refused["gl-manage-message"]))
    copy = call(demo, "on_manage_duplicate", study_id, "Capitals, 0-1")
    assert "Created" in html.unescape(value(copy["gl-manage-message"]))
    assert copy["gl-manage-rubric"]["interactive"] is True  # the copy has no labels yet
    assert [name for name, _ in copy["gl-manage-study"]["choices"]][0].startswith("Capitals, 0-1")


def test_archive_export_and_delete(app: tuple[Services, gr.Blocks, int, list[int]]) -> None:
    services, demo, study_id, ids = app
    assert services.studies is not None
    ann = services.studies.get_user("ann")
    assert ann is not None
    services.studies.submit(ann, ids[0], 1, comment="kept in the export")
    early = call(demo, "on_manage_delete", study_id, "Capitals")
    assert "not archived" in value(early["gl-manage-message"])
    archived = call(demo, "on_manage_archive", study_id)
    assert archived["gl-manage-unarchive"]["visible"] and not archived["gl-manage-archive"]["visible"]
    assert services.studies.list_studies(ann) == []
    exported = call(demo, "on_manage_export", study_id)
    csv = Path(value(exported["gl-manage-export-csv"]))
    assert "kept in the export" in csv.read_text(encoding="utf-8")
    wrong = call(demo, "on_manage_delete", study_id, "capitals")
    assert "type its name exactly" in value(wrong["gl-manage-message"])
    done = call(demo, "on_manage_delete", study_id, "Capitals")
    assert "Deleted" in html.unescape(value(done["gl-manage-message"])) and done["gl-manage-study"]["choices"] == []


def test_item_browser_opens_an_item_and_removes_it(app: tuple[Services, gr.Blocks, int, list[int]]) -> None:
    services, demo, study_id, ids = app
    assert services.studies is not None
    for user, score in (("ann", 1), ("bob", 0)):
        who = services.studies.get_user(user)
        assert who is not None
        services.studies.submit(who, ids[1], score, comment=f"{user} says <b>{score}</b>",
                                spans=[{"field": "MODEL OUTPUT", "start": 0, "end": 6}], seconds=8)
    disagree = call(demo, "on_manage_items", study_id, "", "humans disagree")
    assert value(disagree["gl-manage-items"])["Item"].tolist() == [str(ids[1])]
    found = call(demo, "on_manage_items", study_id, "cap-2", "all")
    assert value(found["gl-manage-items"])["Item"].tolist() == [str(ids[2])]
    row = [str(ids[1]), "cap-1", "2", "1, 0", "\u2014", "complete; humans disagree", "Context 1. \u00b7 Output 1."]
    event = gr.SelectData(None, {"index": [0, 0], "value": row[0], "row_value": row})
    opened = by_id(demo, handler(demo, "on_manage_item_select")(event, request=signed_in("ada")))
    detail = value(opened["gl-manage-item"])
    assert "ann says &lt;b&gt;1&lt;/b&gt;" in detail and "<q>Output</q>" in detail and "bob" in detail
    chosen = next(update for block, update in handler(demo, "on_manage_item_select")(
        event, request=signed_in("ada")).items() if isinstance(block, gr.State))
    assert chosen == ids[1]
    removed = call(demo, "on_manage_remove", ids[1], study_id, "", "all")
    assert "Removed item" in value(removed["gl-manage-message"])
    assert "removed" in value(removed["gl-manage-items"]).set_index("Item").loc[str(ids[1]), "State"]
    progress = value(removed["gl-manage-progress"]).set_index("Annotator")
    assert progress.loc["ann", "Labelled / assigned"] == "0 / 2"
    ada = services.studies.get_user("ada")
    assert ada is not None
    assert {row["item_id"] for row in services.studies.ratings(ada, study_id)} == {ids[0], ids[2]}
    restored = call(demo, "on_manage_restore", ids[1], study_id, "", "all")
    assert "back in the study" in value(restored["gl-manage-message"])


def test_the_tab_shows_admins_their_studies_and_annotators_a_notice(
        app: tuple[Services, gr.Blocks, int, list[int]]) -> None:
    _, demo, study_id, _ = app
    admin = by_id(demo, handler(demo, "on_manage_session")(request=signed_in("ada")))
    assert admin["gl-manage-body"]["visible"] is True
    assert [choice[1] for choice in admin["gl-manage-study"]["choices"]] == [study_id]
    annotator = by_id(demo, handler(demo, "on_manage_session")(request=signed_in("ann")))
    assert annotator["gl-manage-body"]["visible"] is False and "for admins" in value(annotator["gl-manage-notice"])
    assert "gl-manage-study" not in annotator


MANAGE_CALLS: dict[str, tuple[Any, ...]] = {
    "on_manage_refresh": ("study",),
    "on_manage_pick": ("study",),
    "on_manage_save": ("form",),
    "on_manage_duplicate": ("study", "Mine"),
    "on_manage_archive": ("study",),
    "on_manage_unarchive": ("study",),
    "on_manage_export": ("study",),
    "on_manage_delete": ("study", "Capitals"),
    "on_manage_items": ("study", "", "all"),
    "on_manage_remove": ("item", "study", "", "all"),
    "on_manage_restore": ("item", "study", "", "all"),
    "on_manage_queue_order": ("study", "uncertainty", 5),
}


@pytest.mark.parametrize("name", sorted(MANAGE_CALLS))
def test_an_annotator_is_refused_by_every_manage_action(app: tuple[Services, gr.Blocks, int, list[int]],
                                                        name: str) -> None:
    services, demo, study_id, ids = app
    assert services.studies is not None
    ada = services.studies.get_user("ada")
    assert ada is not None
    services.studies.admin.set_archived(ada, study_id, True)  # delete would go through for an admin now
    args: list[Any] = []
    for arg in MANAGE_CALLS[name]:
        args.extend(form(study_id, guidelines="mine") if arg == "form" else
                    [study_id] if arg == "study" else [ids[0]] if arg == "item" else [arg])
    updates = call(demo, name, *args, user="ann")
    shown = html.unescape(str(value(updates["gl-manage-message"])))
    assert "Only an admin" in shown, updates
    assert set(updates) <= {"gl-manage-message", "gl-manage-name", "gl-manage-description", "gl-manage-guidelines",
                            "gl-manage-criteria", "gl-manage-rubric", "gl-manage-blind", "gl-manage-overlap",
                            "gl-manage-locked", "gl-manage-status", "gl-manage-items", "gl-manage-item",
                            "gl-manage-remove", "gl-manage-restore", "gl-manage-progress", "gl-manage-copy-name",
                            "gl-manage-confirm", "gl-manage-export-csv", "gl-manage-export-jsonl",
                            "gl-manage-export-json", "gl-manage-search", "gl-manage-state", "gl-manage-queue-order",
                            "gl-manage-random-first"}
    study = services.studies.get_study(ada, study_id)
    assert (study.archived, study.guidelines, len(services.studies.list_studies(ada))) == (True, "", 1)
    assert all(item.removed_at is None for item in services.studies.list_items(ada, study_id))
    event = gr.SelectData(None, {"index": [0, 0], "value": str(ids[0]), "row_value": [str(ids[0])]})
    select = by_id(demo, handler(demo, "on_manage_item_select")(event, request=signed_in("ann")))
    assert "Only an admin" in html.unescape(value(select["gl-manage-item"]))


def test_an_admin_changes_the_queue_order_and_an_annotator_cannot(
        app: tuple[Services, gr.Blocks, int, list[int]]) -> None:
    services, demo, study_id, _ = app
    picked = call(demo, "on_manage_pick", study_id)
    assert value(picked["gl-manage-queue-order"]) == "random" and value(picked["gl-manage-random-first"]) == 0
    refused = call(demo, "on_manage_queue_order", study_id, "uncertainty", 5, user="ann")
    assert "Only an admin may" in Markup(value(refused["gl-manage-message"])).all_text
    saved = call(demo, "on_manage_queue_order", study_id, "uncertainty", 5.0)
    assert "Queue order of 'Capitals': uncertainty, the first 5 at random." in html.unescape(
        Markup(value(saved["gl-manage-message"])).all_text)
    assert value(saved["gl-manage-queue-order"]) == "uncertainty" and value(saved["gl-manage-random-first"]) == 5
    bad = call(demo, "on_manage_queue_order", study_id, "uncertainty", -1)
    assert "between 0 and" in Markup(value(bad["gl-manage-message"])).all_text
    studies = services.studies
    assert studies is not None
    ada = studies.get_user("ada")
    assert ada is not None
    (change,) = studies.admin.queue_order_history(ada, study_id)
    assert change.editor == "ada" and change.changes == {"queue_order": ("random", "uncertainty"),
                                                         "random_first": (0, 5)}
