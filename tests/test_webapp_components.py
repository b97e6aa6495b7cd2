"""The widgets the tabs share (webapp.components): one rubric form and one column mapping built by every tab that
needs them, the update helpers, the page scripts read from assets/, and the one signed-in-user helper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from core.errors import StorageError
from core.presets import load_presets
from core.studies import PermissionDenied
from tests.webapp_helpers import blocks, build, by_id, component, handler, make_study_services, signed_in, value
from webapp import access, components, launch_options
from webapp.components import ColumnMapping, RubricForm, Unavailable, as_id, error_update, html_update, notice_update
from webapp.studies.label_tab import LABEL_KEYS_JS, MARK_SELECTION_JS

ROOT = Path(__file__).resolve().parent.parent

# Each tab's rubric form: its handlers (looked up by name) and the elem_ids of preset, criteria, rubric, scale.
RUBRIC_FORMS = {
    "grade": ("on_preset", "on_rubric", ("gl-preset", "gl-pass-criteria", "gl-rubric", "gl-scale")),
    "batch": ("on_batch_preset", "on_batch_rubric",
              ("gl-batch-preset", "gl-batch-criteria", "gl-batch-rubric", "gl-batch-scale")),
    "studies": ("on_study_preset", "on_study_rubric",
                ("gl-study-preset", "gl-study-criteria", "gl-study-rubric", "gl-study-scale")),
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> gr.Blocks:
    return build(make_study_services(tmp_path_factory.mktemp("components")))


@pytest.mark.parametrize("tab", sorted(RUBRIC_FORMS))
def test_every_tab_builds_the_same_rubric_form(demo: gr.Blocks, tab: str) -> None:
    on_preset, on_rubric, (preset_id, criteria_id, rubric_id, scale_id) = RUBRIC_FORMS[tab]
    grade_preset = component(demo, "gl-preset")
    preset = component(demo, preset_id)
    assert preset.choices == grade_preset.choices and preset.value == grade_preset.value
    for box_id, grade_id in zip((criteria_id, rubric_id, scale_id), ("gl-pass-criteria", "gl-rubric", "gl-scale"),
                                strict=True):
        box, grade_box = component(demo, box_id), component(demo, grade_id)
        assert (box.value, box.lines, box.max_lines, box.interactive) == (
            grade_box.value, grade_box.lines, grade_box.max_lines, grade_box.interactive), box_id
    # Choosing another preset fills criteria and rubric (each tab adds its own extra output).
    key = preset.choices[-1][1]
    chosen = by_id(demo, handler(demo, on_preset)(key))
    reference = by_id(demo, handler(demo, "on_preset")(key))
    assert chosen[criteria_id] == reference["gl-pass-criteria"] and chosen[rubric_id] == reference["gl-rubric"]
    scale = by_id(demo, handler(demo, on_rubric)("1: bad\n2: so-so\n3: good"))
    assert set(scale) == {scale_id} and value(scale[scale_id]) == value(
        by_id(demo, handler(demo, "on_rubric")("1: bad\n2: so-so\n3: good"))["gl-scale"])
    # The preset change fills the form; the rubric's scale is redrawn without a queue round trip.
    events = {fn.name: fn for fn in demo.fns.values()}
    assert [block.elem_id for block in events[on_preset].outputs][:2] == [criteria_id, rubric_id]
    assert events[on_rubric].queue is False and events[on_rubric].api_visibility == "private"


def test_rubric_form_parts() -> None:
    presets = load_presets()
    with blocks():
        picker = RubricForm.picker(presets, "p", scale=3)
        form = RubricForm.create(presets, picker, criteria_id="c", rubric_id="r", scale_id="s")
    assert picker.value == presets[0].key and picker.scale == 3 and form.preset is picker
    assert form.pass_criteria.value == presets[0].pass_criteria and form.rubric.value == presets[0].rubric
    assert form.chosen(presets[1].key) is presets[1] and form.chosen(None) is None and form.chosen("nope") is None
    assert form.filled(presets[1]) == {form.pass_criteria: presets[1].pass_criteria,
                                       form.rubric: presets[1].rubric}
    assert "names no scores" in form.scale_of(None)[form.scale]
    with blocks():
        empty = RubricForm.create([], RubricForm.picker([], "p"), criteria_id="c", rubric_id="r", scale_id="s")
    assert empty.preset.value is None and empty.rubric.value == ""


def test_column_mapping_guesses_a_column_per_tag_and_hides_the_rest() -> None:
    with blocks():
        mapping = ColumnMapping.create("gl-test-map")
    assert len(mapping.boxes) == components.MAX_MAPPED_TAGS
    assert [box.elem_id for box in mapping.boxes[:2]] == ["gl-test-map-0", "gl-test-map-1"]
    assert not any(box.visible for box in mapping.boxes)
    columns = ["question", "model_output", "notes"]
    shown = mapping.show(columns, ["USER INPUT", "MODEL OUTPUT"])
    first, second, third = (shown[box] for box in mapping.boxes[:3])
    assert first["choices"] == [("(not in the file)", ""), *[(c, c) for c in columns]]
    assert (first["label"], first["value"], first["visible"]) == ("USER INPUT", "", True)  # no column by that name
    assert (second["label"], second["value"], second["visible"]) == ("MODEL OUTPUT", "model_output", True)
    assert third["visible"] is False and third["value"] == components.NO_COLUMN
    assert all(update == {"__type__": "update", "visible": False} for update in mapping.hide().values())


def test_update_helpers_hide_empty_boxes_and_escape_messages() -> None:
    assert html_update("") == {"__type__": "update", "value": "", "visible": False}
    assert html_update("<b>x</b>")["visible"] is True
    shown = error_update(StorageError("<img src=x onerror=alert(1)> is read-only"))
    assert "<img" not in shown["value"] and "is read-only" in shown["value"] and shown["visible"]
    assert "&lt;script&gt;" in notice_update("<script>")["value"]
    assert [as_id(v) for v in ("7", 7, None, "", "x", 2.0)] == [7, 7, None, None, None, 2]


def test_page_scripts_are_read_from_assets(demo: gr.Blocks) -> None:
    keys = (ROOT / "assets" / "label-keys.js").read_text(encoding="utf-8")
    mark = (ROOT / "assets" / "mark-selection.js").read_text(encoding="utf-8")
    assert LABEL_KEYS_JS == keys and "__glLabelKeys" in keys and keys.lstrip().startswith("() =>")
    assert MARK_SELECTION_JS == mark and "getSelection" in mark and mark.lstrip().startswith("(previous) =>")
    assert launch_options()["js"] == keys
    assert next(fn for fn in demo.fns.values() if fn.name == "on_mark").js == mark


def test_one_helper_says_who_is_signed_in(tmp_path: Path) -> None:
    services = make_study_services(tmp_path)
    assert access.current_user(services, signed_in("ada")).is_admin
    ann = access.current_user(services, signed_in("ann"))
    assert ann.username == "ann" and not ann.is_admin
    with pytest.raises(Unavailable, match="Studies need sign-in"):
        access.current_user(services, signed_in(None))
    with pytest.raises(PermissionDenied, match="no account named 'zed'"):
        access.current_user(services, signed_in("zed"))
    assert access.require_admin(access.current_user(services, signed_in("ada")), "manage studies").username == "ada"
    with pytest.raises(PermissionDenied, match="Only an admin may manage studies; 'ann' is an annotator"):
        access.require_admin(ann, "manage studies")
    services.studies = None
    with pytest.raises(Unavailable, match="without a study store"):
        access.current_user(services, signed_in("ada"))


def _all_unavailable_classes() -> list[Any]:
    import webapp.batch_ui
    import webapp.studies
    import webapp.studies_ui

    return [webapp.batch_ui.Unavailable, webapp.studies.Unavailable, webapp.studies_ui.Unavailable]


def test_there_is_one_unavailable_and_the_old_import_path_still_works() -> None:
    assert all(cls is Unavailable for cls in _all_unavailable_classes())
    from webapp.studies_ui import NEEDS_SIGN_IN, Cursor, StudyHandlers

    assert NEEDS_SIGN_IN == access.NEEDS_SIGN_IN and Cursor().mode == "none" and StudyHandlers.__module__ == (
        "webapp.studies")
