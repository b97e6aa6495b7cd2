"""Widgets and small helpers that several tabs share: the rubric form, the column mapping, update helpers.

A component here is a dataclass of Gradio components built inside the current Blocks context, with the
updates its callbacks need; the tabs keep their own handlers (tests look them up by name) and call these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from core.errors import GliderError
from core.presets import Preset
from webapp import render
from webapp.view_models import describe_scale, failure_message, guess_column

PRIVATE = "private"  # Gradio 6: hidden from the API page and not callable by gradio_client
# The single grade (Grade tab) and a study's grading queue here, one at a time.
JUDGE_CONCURRENCY_ID = "judge"
MAX_MAPPED_TAGS = 8  # mapping dropdowns built in advance; more tags are run or imported with the CLI
NO_COLUMN = ""  # a mapping dropdown's value for "(not in the file)"
ASSETS = Path(__file__).resolve().parent.parent / "assets"


class Unavailable(GliderError):
    """A tab cannot do this now: nobody is signed in, a store is missing, no judge, or nothing is chosen."""


def asset_text(name: str) -> str:
    """A file of assets/ (a page script, a stylesheet) as text."""
    return (ASSETS / name).read_text(encoding="utf-8")


def html_update(markup: str) -> Any:
    """An HTML update that hides the component while it is empty, so it takes no space in the layout."""
    return gr.update(value=markup, visible=bool(markup))


def error_update(error: Exception | str) -> Any:
    """An error box saying what went wrong (core's message, never a traceback)."""
    text = error if isinstance(error, str) else failure_message(error)
    return html_update(render.render_error(text))


def notice_update(text: str) -> Any:
    return html_update(render.render_notice(text))


def as_id(value: Any) -> int | None:
    """A picker's or number box's value as an id; None when it is empty or not a whole number."""
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def session_of(request: gr.Request | None) -> str | None:
    """The browser session a request comes from (None outside a served page, e.g. in tests)."""
    return getattr(request, "session_hash", None) if request is not None else None


@dataclass
class RubricForm:
    """A rubric preset picker, the pass criteria and rubric it fills, and the scale the rubric defines.

    The Grade, Batch and Studies tabs each build one. The picker is built on its own (`picker`), so a tab may
    place other widgets between it and the texts (`create` builds those where it is called).
    """

    presets: Mapping[str, Preset]
    preset: gr.Dropdown
    pass_criteria: gr.Textbox
    rubric: gr.Textbox
    scale: gr.Textbox

    @staticmethod
    def picker(presets: Sequence[Preset], elem_id: str, **layout: Any) -> gr.Dropdown:
        """The preset dropdown, the first preset (if any) chosen."""
        first = presets[0] if presets else None
        return gr.Dropdown(choices=[(p.name, p.key) for p in presets], value=first.key if first else None,
                           label="Rubric preset", elem_id=elem_id, **layout)

    @classmethod
    def create(cls, presets: Sequence[Preset], preset: gr.Dropdown, *, criteria_id: str, rubric_id: str,
               scale_id: str) -> RubricForm:
        """The pass criteria, rubric and scale boxes (filled from the first preset) for `preset`."""
        first = presets[0] if presets else None
        pass_criteria = gr.Textbox(label="Pass criteria", lines=2, max_lines=10,
                                   value=first.pass_criteria if first else "", elem_id=criteria_id)
        rubric = gr.Textbox(label="Rubric", lines=3, max_lines=15, value=first.rubric if first else "",
                            elem_id=rubric_id)
        scale = gr.Textbox(label="Scale", value=describe_scale(first.rubric if first else ""), interactive=False,
                           max_lines=3, elem_id=scale_id)
        return cls({p.key: p for p in presets}, preset, pass_criteria, rubric, scale)

    def chosen(self, key: str | None) -> Preset | None:
        """The preset a picker value names (None for none or an unknown key)."""
        return self.presets.get(key or "")

    def filled(self, preset: Preset) -> dict[Any, Any]:
        """Updates that put a preset's pass criteria and rubric into the form."""
        return {self.pass_criteria: preset.pass_criteria, self.rubric: preset.rubric}

    def scale_of(self, rubric: str | None) -> dict[Any, Any]:
        """The scale box for a rubric (its score range, or why the rubric names none)."""
        return {self.scale: describe_scale(rubric or "")}

    def wire(self, on_preset: Any, on_rubric: Any, *, also: Sequence[Any] = ()) -> None:
        """Choosing a preset calls `on_preset` (outputs: criteria, rubric and `also`); editing the rubric
        calls `on_rubric` (output: the scale), unqueued."""
        self.preset.change(on_preset, self.preset, [self.pass_criteria, self.rubric, *also], api_visibility=PRIVATE)
        self.rubric.change(on_rubric, self.rubric, self.scale, api_visibility=PRIVATE, queue=False)


@dataclass
class ColumnMapping:
    """One column picker per field tag of a data file (MAX_MAPPED_TAGS of them, hidden until a file is read),
    each guessed from its tag's name ("MODEL OUTPUT" -> model_output)."""

    boxes: list[gr.Dropdown]

    @classmethod
    def create(cls, id_prefix: str) -> ColumnMapping:
        """The pickers in a row, with elem_ids `{id_prefix}-0`, `{id_prefix}-1`, ..."""
        with gr.Row():
            boxes = [gr.Dropdown(choices=[], label=f"Field {i + 1}", visible=False, min_width=160,
                                 elem_id=f"{id_prefix}-{i}")
                     for i in range(MAX_MAPPED_TAGS)]
        return cls(boxes)

    @staticmethod
    def choices(columns: Sequence[str]) -> list[tuple[str, str]]:
        """A picker's choices: the file's columns, and "(not in the file)" first."""
        return [("(not in the file)", NO_COLUMN), *[(c, c) for c in columns]]

    def show(self, columns: Sequence[str], tags: Sequence[str]) -> dict[Any, Any]:
        """A picker per tag (labelled with it, its column guessed); the others hidden, left on no column."""
        choices = self.choices(columns)
        updates: dict[Any, Any] = {}
        for i, box in enumerate(self.boxes):
            if i < len(tags):
                updates[box] = gr.update(choices=choices, value=guess_column(tags[i], columns) or NO_COLUMN,
                                         label=tags[i], visible=True)
            else:
                updates[box] = gr.update(choices=choices, value=NO_COLUMN, visible=False)  # a value needs its choice
        return updates

    def hide(self) -> dict[Any, Any]:
        """Every picker hidden (no file), their choices left as they were."""
        return {box: gr.update(visible=False) for box in self.boxes}
