"""The human-agreement tabs: Studies (admins), Label (annotators and admins), Agreement (admins).

Who is asking comes only from the signed-in session (`gr.Request.username`, set by Gradio's login
form), never from an input. Every callback that reads or changes labels passes that user to
core.studies, which decides what they may see and change; the tabs a role does not need are hidden
as a convenience, not as the protection. Every event here is private: none is part of the HTTP API.

No `from __future__ import annotations` here: Gradio reads the callbacks' `gr.Request` and
`gr.Progress` type hints at runtime to inject them.
"""

import logging
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from core.agreement import agreement_report
from core.errors import GliderError
from core.grading import FieldSpan
from core.presets import Preset
from core.prompt import DEFAULT_TAGS, rubric_levels
from core.studies import Annotation, Item, PermissionDenied, Studies, Study, StudySpec, User, write_exports
from core.study_grading import FAILED, UNGRADED, StudyGrading, Which, grade_study, summary_line
from webapp import charts, render
from webapp.report_html import report_to_html
from webapp.services import Services
from webapp.views import (
    JudgmentView,
    add_span,
    describe_scale,
    failure_message,
    format_time,
    guess_column,
    parse_tags,
    place_selection,
    progress_line,
    request_fields,
    scale_values,
)

log = logging.getLogger(__name__)

PRIVATE = "private"  # Gradio 6: hidden from the API page and not callable by gradio_client
JUDGE_CONCURRENCY_ID = "judge"
# Labelling events share one group that runs several at once: each is a few short database calls, and with
# Gradio's default of one at a time per event, 50 annotators waited ~4 s per submit (tests/test_load.py).
LABEL_CONCURRENCY_ID = "label"
LABEL_CONCURRENCY_LIMIT = 8
MAX_MAPPED_TAGS = 8  # mapping dropdowns built in advance; a study with more tags is imported via the CLI
NO_COLUMN = ""
STUDY_HEADERS = ["ID", "Name", "Scale", "Items", "Complete", "Overlap", "Blind", "Created by"]
DISAGREEMENT_HEADERS = ["Item", "Human (mean)", "Model", "|Human \u2212 Model|", "Labels", "Preview"]
MY_LABEL_HEADERS = ["Item", "External id", "Your score", "Labelled"]
SCORE_LABEL = "Your score (keys: type its number, Enter submits, S skips)"
LEVEL_SEPARATOR = " \u2014 "  # between a score and its level's text on the score buttons

NEEDS_SIGN_IN = (
    "Studies need sign-in. Create the first admin with `python -m core create-admin NAME`, then restart the "
    "app: it asks everyone to sign in as soon as a user exists (or start it with --auth)."
)
NO_STUDIES = "Studies are not available: this app was started without a study store."

# Keyboard for the Label tab, installed once per page (Blocks.launch(js=...)). The buttons work without it.
# Scores are typed as numbers: on a scale with 10 or more levels "1" then "0" within a second chooses 10 (the
# "1" alone chooses 1 meanwhile). Enter presses the highlighted (primary) button: Submit, Save changes, or on the
# reveal whichever of Keep / Change is primary. When a new item comes up and its text is not on the screen (a
# phone, or after scrolling down to the buttons), the item is scrolled to the top of the screen.
LABEL_KEYS_JS = """
() => {
  if (window.__glLabelKeys) { return; }
  window.__glLabelKeys = true;
  const usable = (el) => el && el.offsetParent !== null && !el.disabled;
  const click = (selector) => {
    const el = document.querySelector(selector);
    if (usable(el)) { el.click(); return true; }
    return false;
  };
  const choose = (value) => {
    const radio = document.querySelector('#gl-label-score input[type="radio"][value="' + value + '"]');
    // Focus the choice too, so that the next Enter reaches this handler instead of a focused button.
    if (radio && !radio.disabled) { radio.click(); radio.focus(); return true; }
    return false;
  };
  let typed = "", typedAt = 0;
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || event.isComposing) { return; }
    const work = document.getElementById("gl-label-work");
    if (!work || work.offsetParent === null) { return; }  // no item on screen (or another tab)
    const target = event.target;
    const tag = target && target.tagName ? target.tagName : "";
    const typing = target && (target.isContentEditable || tag === "TEXTAREA" || tag === "SELECT"
      || (tag === "INPUT" && target.type !== "radio"));
    if (typing) { return; }
    if (/^[0-9]$/.test(event.key)) {
      const now = Date.now();
      const longer = (now - typedAt < 1000 ? typed : "") + event.key;
      typedAt = now;
      if (longer !== event.key && choose(longer)) { typed = longer; event.preventDefault(); }
      else if (choose(event.key)) { typed = event.key; event.preventDefault(); }
      else { typed = ""; }
    } else if (event.key === "Enter") {
      if (tag === "BUTTON" || tag === "A") { return; }  // the focused button takes its own Enter
      if (click("#gl-label-submit") || click("#gl-label-reveal button.primary")) { event.preventDefault(); }
    } else if (event.key === "s" || event.key === "S") {
      if (click("#gl-label-skip")) { event.preventDefault(); }
    }
  });
  let shown = "";
  new MutationObserver(() => {
    for (const label of document.querySelectorAll("#gl-label-score label")) {  // the whole level on hover
      const text = label.textContent.trim();
      if (label.title !== text) { label.title = text; }
    }
    const header = document.getElementById("gl-label-item");
    const fields = document.getElementById("gl-label-fields");
    const work = document.getElementById("gl-label-work");
    if (!header || !fields || !work || work.offsetParent === null) { shown = ""; return; }
    const now = header.textContent;
    if (now === shown) { return; }
    shown = now;
    const top = header.getBoundingClientRect().top;
    if (top < 0 || fields.getBoundingClientRect().top + 96 > window.innerHeight) {
      header.scrollIntoView({block: "start"});
    }
  }).observe(document.body, {childList: true, subtree: true, characterData: true, attributes: true,
             attributeFilter: ["style", "class"]});
}
"""

# The Mark selection button's browser step: the selection as {"field", "start", "end", "text"}, offsets in
# code points of the field's text (JavaScript strings count UTF-16 units; Array.from counts code points).
MARK_SELECTION_JS = """
(previous) => {
  const fail = (message) => [JSON.stringify({error: message})];
  const selection = window.getSelection();
  if (!selection || selection.rangeCount === 0 || selection.isCollapsed) {
    return fail("Select some words in a field first, then press Mark selection.");
  }
  const range = selection.getRangeAt(0);
  const holder = (node) => {
    const element = node.nodeType === 1 ? node : node.parentElement;
    return element ? element.closest("#gl-label-fields .gl-field-text[data-field]") : null;
  };
  const box = holder(range.startContainer);
  if (!box || box !== holder(range.endContainer)) {
    return fail("Select text inside one field of the item (a selection may not cross two fields).");
  }
  const before = document.createRange();
  before.selectNodeContents(box);
  before.setEnd(range.startContainer, range.startOffset);
  const points = (text) => Array.from(text).length;
  const text = range.toString();
  const start = points(before.toString());
  if (document.activeElement) { document.activeElement.blur(); }  // Enter then submits, not marks again
  return [JSON.stringify({field: box.dataset.field, start: start, end: start + points(text), text: text})];
}
"""


def _html(markup: str) -> Any:
    """An HTML update that hides the component while it is empty."""
    return gr.update(value=markup, visible=bool(markup))


def _error(error: Exception | str) -> Any:
    text = error if isinstance(error, str) else failure_message(error)
    return _html(render.render_error(text))


def _notice(text: str) -> Any:
    return _html(render.render_notice(text))


class Unavailable(GliderError):
    """The study tabs cannot do this now: nobody is signed in, there is no study store, or no study is chosen."""


def _study_choices(studies: Sequence[Study]) -> list[tuple[str, int]]:
    return [(f"{s.name} (#{s.id})", s.id) for s in studies]


def _as_id(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _score_choices(study: Study) -> list[tuple[str, str]]:
    """The score buttons: each score with its rubric level's text (the page shortens a long one until it is
    hovered, focused or chosen; the full text stays in the button for screen readers)."""
    levels = dict(rubric_levels(study.rubric))
    return [(f"{value}{LEVEL_SEPARATOR}{levels[value]}" if levels.get(value) else str(value), str(value))
            for value in scale_values(study.scale)]


def _stored_view(services: Services, judgment_id: int | None) -> JudgmentView | None:
    if judgment_id is None:
        return None
    stored = services.store.get_judgment(judgment_id)
    return JudgmentView.from_stored(stored) if stored is not None else None


# --- layout ----------------------------------------------------------------------------------------


@dataclass
class StudiesTab:
    """Admins: create a study, list studies, import items from a file, grade them all with the judge."""

    tab: gr.Tab
    notice: gr.HTML
    body: gr.Column
    name: gr.Textbox
    description: gr.Textbox
    preset: gr.Dropdown
    pass_criteria: gr.Textbox
    rubric: gr.Textbox
    scale: gr.Textbox
    tags: gr.Textbox
    overlap: gr.Number
    blind: gr.Checkbox
    create: gr.Button
    create_message: gr.HTML
    refresh: gr.Button
    table: gr.Dataframe
    import_study: gr.Dropdown
    upload: gr.File
    preview: gr.Dataframe
    mapping: list[gr.Dropdown]
    id_column: gr.Dropdown
    import_button: gr.Button
    import_report: gr.HTML
    grade_all: gr.Button
    regrade: gr.Button
    cancel_grading: gr.Button
    grade_status: gr.HTML
    grade_message: gr.HTML

    @classmethod
    def create_in(cls, tab: gr.Tab, presets: list[Preset]) -> "StudiesTab":
        first = presets[0] if presets else None
        notice = gr.HTML(elem_id="gl-studies-notice", visible=False)
        with gr.Column(elem_id="gl-studies-body") as body, gr.Row():
            with gr.Column(scale=5, elem_classes="gl-inputs"):
                gr.HTML(render.render_subtitle("New study"))
                name = gr.Textbox(label="Name", max_lines=1, elem_id="gl-study-name")
                description = gr.Textbox(label="Description (shown to annotators)", lines=2, max_lines=6,
                                         elem_id="gl-study-description")
                preset = gr.Dropdown(choices=[(p.name, p.key) for p in presets], value=first.key if first else None,
                                     label="Rubric preset", elem_id="gl-study-preset")
                pass_criteria = gr.Textbox(label="Pass criteria", lines=2, max_lines=10,
                                           value=first.pass_criteria if first else "", elem_id="gl-study-criteria")
                rubric = gr.Textbox(label="Rubric", lines=3, max_lines=15, value=first.rubric if first else "",
                                    elem_id="gl-study-rubric")
                scale = gr.Textbox(label="Scale", value=describe_scale(first.rubric if first else ""),
                                   interactive=False, max_lines=3, elem_id="gl-study-scale")
                tags = gr.Textbox(label="Field tags (comma-separated, in display order)", max_lines=3,
                                  value=", ".join(DEFAULT_TAGS), elem_id="gl-study-tags")
                with gr.Row(equal_height=True):
                    overlap = gr.Number(label="Labels per item (overlap k)", value=3, precision=0, minimum=1,
                                        maximum=50, elem_id="gl-study-overlap")
                    blind = gr.Checkbox(label="Blind: hide the model's verdict until the annotator submits",
                                        value=True, elem_id="gl-study-blind")
                create = gr.Button("Create study", variant="primary", elem_id="gl-study-create")
                create_message = gr.HTML(visible=False, elem_id="gl-study-message")
            with gr.Column(scale=6):
                with gr.Row(equal_height=True):
                    gr.HTML(render.render_subtitle("Studies"))
                    refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id="gl-study-refresh")
                table = gr.Dataframe(headers=STUDY_HEADERS, datatype="str", interactive=False, wrap=True,
                                     max_height=260, elem_id="gl-study-list")
                gr.HTML(render.render_subtitle("Import items"))
                import_study = gr.Dropdown(choices=[], label="Study to import into and grade",
                                           elem_id="gl-import-study")
                upload = gr.File(label="CSV or JSONL file", file_types=[".csv", ".jsonl"], type="filepath",
                                 elem_id="gl-import-file")
                preview = gr.Dataframe(datatype="str", interactive=False, wrap=True, max_height=220,
                                       label="Preview (first rows)", visible=False, elem_id="gl-import-preview")
                with gr.Row():
                    mapping = [gr.Dropdown(choices=[], label=f"Field {i + 1}", visible=False, min_width=160,
                                           elem_id=f"gl-import-map-{i}")
                               for i in range(MAX_MAPPED_TAGS)]
                id_column = gr.Dropdown(choices=[], label="Item id column (optional)", visible=False,
                                        elem_id="gl-import-id")
                import_button = gr.Button("Import", variant="primary", elem_id="gl-import-run")
                import_report = gr.HTML(visible=False, elem_id="gl-import-report")
                gr.HTML(render.render_subtitle("Grade with the judge"))
                with gr.Row():
                    grade_all = gr.Button("Grade all items with the judge", variant="primary", elem_id="gl-grade-all")
                    regrade = gr.Button("Regrade failed", elem_id="gl-grade-failed")
                    cancel_grading = gr.Button("Cancel", variant="stop", elem_id="gl-grade-cancel")
                # The run's own progress line (not only Gradio's overlay): items done of the total, so far.
                grade_status = gr.HTML(visible=False, elem_id="gl-grade-all-status")
                grade_message = gr.HTML(visible=False, elem_id="gl-grade-all-message")
        return cls(tab, notice, body, name, description, preset, pass_criteria, rubric, scale, tags, overlap,
                   blind, create, create_message, refresh, table, import_study, upload, preview, mapping, id_column,
                   import_button, import_report, grade_all, regrade, cancel_grading, grade_status, grade_message)


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
                   reveal_text, keep, change, mine_box, mine, cursor, saved)

    @property
    def outputs(self) -> list[Any]:
        return [self.cursor, self.notice, self.summary, self.progress, self.message, self.work, self.item_header,
                self.fields, self.marking, self.evidence, self.model, self.score, self.comment, self.submit, self.skip,
                self.previous, self.resume, self.reveal, self.reveal_text, self.keep, self.change, self.mine]


@dataclass
class AgreementTab:
    """Admins: a study's agreement report, its charts, the largest disagreements and the exports."""

    tab: gr.Tab
    notice: gr.HTML
    body: gr.Column
    study: gr.Dropdown
    run: gr.Button
    message: gr.HTML
    metrics: gr.HTML
    notes: gr.HTML
    charts: list[gr.Plot]
    table: gr.Dataframe
    item: gr.HTML
    exports: list[gr.DownloadButton]
    shown: gr.State  # the study id of the report on screen

    CHART_IDS = ("gl-agree-heatmap", "gl-agree-scatter", "gl-agree-distributions", "gl-agree-annotators")
    EXPORTS = (("Annotations CSV", "csv"), ("Annotations JSONL", "jsonl"), ("Report JSON", "json"),
               ("Report HTML", "html"))

    @classmethod
    def create_in(cls, tab: gr.Tab) -> "AgreementTab":
        notice = gr.HTML(elem_id="gl-agree-notice", visible=False)
        with gr.Column(elem_id="gl-agree-body") as body:
            with gr.Row(equal_height=True):
                study = gr.Dropdown(choices=[], label="Study", scale=4, elem_id="gl-agree-study")
                run = gr.Button("Compute agreement", variant="primary", scale=1, elem_id="gl-agree-run")
            message = gr.HTML(visible=False, elem_id="gl-agree-message")
            with gr.Row(elem_classes="gl-exports"):
                exports = [gr.DownloadButton(label, visible=False, size="sm", elem_id=f"gl-export-{suffix}")
                           for label, suffix in cls.EXPORTS]
            metrics = gr.HTML(visible=False, elem_id="gl-agree-metrics")
            notes = gr.HTML(visible=False, elem_id="gl-agree-notes")
            with gr.Row():
                heatmap = gr.Plot(show_label=False, visible=False, elem_id=cls.CHART_IDS[0])
                scatter = gr.Plot(show_label=False, visible=False, elem_id=cls.CHART_IDS[1])
            with gr.Row():
                distributions = gr.Plot(show_label=False, visible=False, elem_id=cls.CHART_IDS[2])
                annotators = gr.Plot(show_label=False, visible=False, elem_id=cls.CHART_IDS[3])
            table = gr.Dataframe(headers=DISAGREEMENT_HEADERS, datatype="str", interactive=False, wrap=True,
                                 max_height=320, label="Disagreements (largest first; click a row to see the item)",
                                 column_widths=["7%", "11%", "8%", "13%", "8%", "53%"], visible=False,
                                 elem_id="gl-agree-disagreements")
            item = gr.HTML(visible=False, elem_id="gl-agree-item")
        shown = gr.State(None)
        return cls(tab, notice, body, study, run, message, metrics, notes,
                   [heatmap, scatter, distributions, annotators], table, item, exports, shown)

    @property
    def outputs(self) -> list[Any]:
        return [self.notice, self.message, self.metrics, self.notes, *self.charts, self.table, self.item,
                *self.exports, self.shown]


@dataclass
class AddToStudy:
    """On the Grade tab (admins): add the fields in the form, and the judgment just made, to a study."""

    column: gr.Column
    study: gr.Dropdown
    button: gr.Button
    message: gr.HTML

    @classmethod
    def create(cls) -> "AddToStudy":
        with gr.Column(visible=False, elem_id="gl-add-to-study", elem_classes="gl-add-to-study") as column:
            with gr.Row(equal_height=True):
                study = gr.Dropdown(choices=[], label="Study", scale=3, elem_id="gl-add-study")
                button = gr.Button("Add to study", scale=1, elem_id="gl-add-button")
            message = gr.HTML(visible=False, elem_id="gl-add-message")
        return cls(column, study, button, message)


@dataclass
class StudyTabs:
    """Everything the studies feature adds to the page, and the components it needs from the rest of it."""

    user_line: gr.HTML
    logout: gr.Button
    studies: StudiesTab
    label: LabelTab
    agreement: AgreementTab
    add: AddToStudy
    grade_tags: list[gr.Textbox]
    grade_texts: list[gr.Textbox]
    graded: gr.State  # the Grade tab's last finished grade: its fields, criteria, rubric and judgment id


# --- callbacks -------------------------------------------------------------------------------------


@dataclass
class StudyHandlers:
    """The studies callbacks. Each finds the signed-in user, calls core once or twice, returns updates."""

    services: Services
    ui: StudyTabs
    export_root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="glider-exports-")))
    _grading: dict[str | None, threading.Event] = field(default_factory=dict)  # session hash -> its run's stop flag
    _grading_guard: threading.Lock = field(default_factory=threading.Lock)

    # --- who is asking ------------------------------------------------------------------------------

    @property
    def _studies(self) -> Studies:
        if self.services.studies is None:
            raise Unavailable(NO_STUDIES)
        return self.services.studies

    def actor(self, request: gr.Request | None) -> User:
        """The signed-in user of this request; Unavailable or PermissionDenied when there is none."""
        studies = self._studies
        username = getattr(request, "username", None) if request is not None else None
        if not username:
            raise Unavailable(NEEDS_SIGN_IN)
        user = studies.get_user(str(username))
        if user is None:
            raise PermissionDenied(f"There is no account named {username!r} any more; sign out and in again.")
        return user

    def _optional_actor(self, request: gr.Request | None) -> tuple[User | None, str | None]:
        try:
            return self.actor(request), None
        except GliderError as error:
            return None, str(error)
        except Exception as error:  # the database could not be read, for example
            return None, failure_message(error)

    def _pickers(self, actor: User, select: Mapping[Any, int] | None = None) -> dict[Any, Any]:
        """Every study picker filled with the studies this user may see; `select` sets some pickers' value."""
        choices = _study_choices(self._studies.list_studies(actor))
        updates: dict[Any, Any] = {}
        for picker in (self.ui.label.study, self.ui.agreement.study, self.ui.studies.import_study,
                       self.ui.add.study):
            updates[picker] = gr.update(choices=choices)
            if select and picker in select:
                updates[picker] = gr.update(choices=choices, value=select[picker])
        return updates

    # --- session ------------------------------------------------------------------------------------

    def on_session(self, request: gr.Request) -> dict[Any, Any]:
        """On page load: who is signed in, what each study tab offers them, and the study pickers.

        The tabs a role cannot use are hidden from its tab bar by webapp.access (Gradio 6.31 ignores visibility
        updates of a gr.Tab); their content is also replaced by a notice, and core refuses the calls anyway.
        """
        ui = self.ui
        actor, problem = self._optional_actor(request)
        admin = actor is not None and actor.is_admin
        updates: dict[Any, Any] = {
            ui.user_line: _html(render.render_signed_in(actor.username, actor.role) if actor else ""),
            ui.logout: gr.update(visible=self.services.auth_enabled),
            ui.add.column: gr.update(visible=admin),
            ui.studies.body: gr.update(visible=admin),
            ui.agreement.body: gr.update(visible=admin),
        }
        for notice in (ui.studies.notice, ui.label.notice, ui.agreement.notice):
            updates[notice] = _error(problem) if problem else _html("")
        if actor is not None and not admin:
            updates[ui.studies.notice] = _notice("Studies are set up by admins. Label items in the Label tab.")
            updates[ui.agreement.notice] = _notice("Agreement reports are for admins: they show every annotator's "
                                                   "labels.")
        if actor is not None:
            try:
                updates.update(self._pickers(actor))
                if admin:
                    updates[ui.studies.table] = self._study_table(actor)
            except Exception as error:
                updates[ui.label.notice] = _error(error)
        return updates

    # --- Studies tab ----------------------------------------------------------------------------------

    def _study_table(self, actor: User) -> pd.DataFrame:
        """The Studies tab's list with each study's item counts (admins: annotators see studies only in pickers)."""
        if not actor.is_admin:
            raise PermissionDenied(f"Only an admin may manage studies; {actor.username!r} is an annotator.")
        rows = []
        for study in self._studies.list_studies(actor):
            progress = self._studies.progress(actor, study.id)
            rows.append([str(study.id), study.name, f"{study.scale[0]}\u2013{study.scale[1]}",
                         str(progress.total_items), str(progress.items_complete), str(study.overlap_target),
                         "yes" if study.blind else "no", study.created_by])
        return pd.DataFrame(rows, columns=STUDY_HEADERS)

    def on_study_preset(self, key: str | None) -> dict[Any, Any]:
        s = self.ui.studies
        chosen = next((p for p in self.services.presets if p.key == key), None)
        if chosen is None:
            return gr.skip()  # nothing to change ({} would be read as a value)
        return {s.pass_criteria: chosen.pass_criteria, s.rubric: chosen.rubric, s.scale: describe_scale(chosen.rubric)}

    def on_study_rubric(self, rubric: str) -> dict[Any, Any]:
        return {self.ui.studies.scale: describe_scale(rubric or "")}

    def on_create_study(self, name: str, description: str, pass_criteria: str, rubric: str, tags: str,
                        overlap: Any, blind: bool, request: gr.Request) -> dict[Any, Any]:
        s = self.ui.studies
        try:
            actor = self.actor(request)
            spec = StudySpec(name=(name or "").strip(), pass_criteria=pass_criteria or "", rubric=rubric or "",
                             tags=parse_tags(tags) or DEFAULT_TAGS, description=(description or "").strip(),
                             overlap_target=int(overlap) if overlap not in (None, "") else 3, blind=bool(blind))
            study = self._studies.create_study(actor, spec)
            return {s.create_message: _notice(f"Created the study \u201c{study.name}\u201d (#{study.id}). "
                                              "Import its items on the right."),
                    s.table: self._study_table(actor), **self._pickers(actor, {s.import_study: study.id})}
        except Exception as error:
            return {s.create_message: _error(error)}

    def on_refresh_studies(self, request: gr.Request) -> dict[Any, Any]:
        s = self.ui.studies
        try:
            actor = self.actor(request)
            return {s.table: self._study_table(actor), s.create_message: _html("")}
        except Exception as error:
            return {s.create_message: _error(error)}

    def on_preview(self, study_id: Any, path: str | None, request: gr.Request) -> dict[Any, Any]:
        """Show the first rows of the uploaded file and one column picker per field tag, guessed by name."""
        s = self.ui.studies
        hidden = {s.preview: gr.update(visible=False), s.id_column: gr.update(visible=False),
                  **{box: gr.update(visible=False) for box in s.mapping}}
        if not path:
            return {**hidden, s.import_report: _html("")}
        try:
            actor = self.actor(request)
            columns, rows = self._studies.preview_file(path)
            wanted = _as_id(study_id)
            tags = self._studies.get_study(actor, wanted).tags if wanted is not None else ()
        except Exception as error:
            return {**hidden, s.import_report: _error(error)}
        columns = [str(c) for c in columns]
        table = pd.DataFrame([[str(row.get(c, "")) for c in columns] for row in rows], columns=columns)
        choices = [("(not in the file)", NO_COLUMN), *[(c, c) for c in columns]]
        updates: dict[Any, Any] = {s.preview: gr.update(value=table, visible=True)}
        for i, box in enumerate(s.mapping):
            if i < len(tags):
                updates[box] = gr.update(choices=choices, value=guess_column(tags[i], columns) or NO_COLUMN,
                                         label=tags[i], visible=True)
            else:
                updates[box] = gr.update(choices=choices, visible=False, value=NO_COLUMN)  # a value needs its choice
        id_guess = next((c for c in columns if c.casefold() in ("id", "item_id", "external_id")), NO_COLUMN)
        updates[s.id_column] = gr.update(choices=choices, value=id_guess, visible=True)
        note = "" if tags else "Choose the study to import into; its field tags decide the columns to map."
        if len(tags) > MAX_MAPPED_TAGS:
            note = (f"This study has {len(tags)} field tags; only the first {MAX_MAPPED_TAGS} can be mapped here. "
                    "Import it with the command line instead.")
        updates[s.import_report] = _notice(note) if note else _html("")
        return updates

    # `request` comes first: Gradio injects a gr.Request only into a positional parameter, never after *columns.
    def on_import(self, request: gr.Request, study_id: Any, path: str | None, id_column: str | None,
                  *columns: str | None) -> dict[Any, Any]:
        s = self.ui.studies
        try:
            actor = self.actor(request)
            wanted = _as_id(study_id)
            if wanted is None:
                return {s.import_report: _error("Choose the study to import into.")}
            if not path:
                return {s.import_report: _error("Upload a CSV or JSONL file first.")}
            study = self._studies.get_study(actor, wanted)
            mapping = {tag: column for tag, column in zip(study.tags, columns, strict=False) if column}
            report = self._studies.import_items(actor, wanted, path, mapping, id_column=id_column or None)
        except Exception as error:
            return {s.import_report: _error(error)}
        rendered = render.render_import_report(report.added, [(e.row, e.message) for e in report.errors])
        return {s.import_report: _html(rendered), s.table: self._study_table(actor)}

    def on_grade_all(self, study_id: Any, request: gr.Request) -> Iterator[dict[Any, Any]]:
        """Grade every item of the study that has no judgment yet, in batches, showing progress as it goes."""
        yield from self._grade_study(study_id, request, UNGRADED)

    def on_regrade_failed(self, study_id: Any, request: gr.Request) -> Iterator[dict[Any, Any]]:
        """Grade again the items of the study whose judgment failed to parse."""
        yield from self._grade_study(study_id, request, FAILED)

    def on_grade_cancel(self, request: gr.Request) -> dict[Any, Any]:
        """Ask this page's study grading to stop after the batch in progress; what it graded is kept."""
        s = self.ui.studies
        with self._grading_guard:
            stop = self._grading.get(_session(request))
        if stop is None:
            return {s.grade_message: _notice("No grading is running in this page.")}
        stop.set()
        return {s.grade_message: _notice("Stopping after the batch in progress \u2026")}

    def _grade_study(self, study_id: Any, request: gr.Request, which: Which) -> Iterator[dict[Any, Any]]:
        """Run core.study_grading.grade_study in a worker thread; yield the progress line after every batch.

        grade_study blocks and reports through a callback, so it runs in its own thread and hands each
        batch's counts over a queue (as the Batch tab does). Closing this generator early (the page went
        away) stops the run after its batch.
        """
        s = self.ui.studies
        try:
            actor = self.actor(request)
            wanted = _as_id(study_id)
            if wanted is None:
                yield {s.grade_message: _error("Choose a study (in the Import items picker) first."),
                       s.grade_status: _html("")}
                return
            if not actor.is_admin:
                raise PermissionDenied(f"Only an admin may grade a study's items; {actor.username!r} is an annotator.")
            judge = self.services.judge
            if judge is None:
                reason = self.services.judge_loading and f"The judge ({self.services.judge_loading}) is still loading."
                yield {s.grade_message: _error(reason or "The judge model is not loaded, so nothing can be graded."),
                       s.grade_status: _html("")}
                return
            study = self._studies.get_study(actor, wanted)
        except Exception as error:
            yield {s.grade_message: _error(error), s.grade_status: _html("")}
            return
        session, stop = _session(request), threading.Event()
        with self._grading_guard:
            self._grading[session] = stop
        events: queue.Queue[tuple[str, Any]] = queue.Queue()

        def work() -> None:
            try:
                final = grade_study(self._studies, actor, study.id, judge, self.services.store, which=which,
                                    batch_size=self.services.api_batch_size, should_stop=stop.is_set,
                                    on_progress=lambda state: events.put(("batch", state)),
                                    gate=self.services.judge_gate)
                events.put(("end", final))
            except BaseException as error:  # handed to the page
                events.put(("error", error))

        worker = threading.Thread(target=work, name=f"study-grading-{study.id}", daemon=True)
        try:
            worker.start()
            starting = f"Choosing the items of \u201c{study.name}\u201d to grade \u2026"
            yield {s.grade_message: _html(""), s.grade_status: _notice(starting)}
            while True:
                kind, value = events.get()
                if kind == "batch":
                    yield {s.grade_status: _notice(_grading_progress(study, value))}
                    continue
                if kind == "end":
                    yield {s.grade_status: _html(""), s.grade_message: _grading_outcome(study, value),
                           s.table: self._study_table(actor)}
                else:
                    yield {s.grade_status: _html(""), s.grade_message: _error(value if isinstance(value, Exception)
                                                                              else f"Grading stopped ({value!r})."),
                           s.table: self._study_table(actor)}
                return
        except Exception as error:  # the store failed while listing studies: a message, never a traceback
            yield {s.grade_message: _error(error)}
        finally:
            if worker.is_alive():
                stop.set()  # the page went away or the event was cancelled: stop after this batch
            with self._grading_guard:
                if self._grading.get(session) is stop:
                    del self._grading[session]

    # --- Grade tab: add to study ------------------------------------------------------------------------

    def on_add_to_study(self, request: gr.Request, study_id: Any, graded: Mapping[str, Any] | None,
                        *values: str) -> dict[Any, Any]:
        """Add the form's fields as an item; attach the last judgment when it graded exactly these inputs."""
        a = self.ui.add
        half = len(values) // 2
        try:
            actor = self.actor(request)
            wanted = _as_id(study_id)
            if wanted is None:
                return {a.message: _error("Choose the study to add this item to.")}
            fields = {tag: text for tag, text in request_fields(values[:half], values[half:]).items()
                      if text and text.strip()}
            study = self._studies.get_study(actor, wanted)
            judgment_id = None
            note = ""
            if graded and graded.get("judgment_id") is not None:
                same = (dict(graded.get("fields", {})) == fields and graded.get("pass_criteria") == study.pass_criteria
                        and graded.get("rubric") == study.rubric)
                if same:
                    judgment_id = int(graded["judgment_id"])
                else:
                    note = (" The last judgment was not attached: it graded other fields, pass criteria or rubric "
                            "than this study's; grade the study's items from the Studies tab.")
            item = self._studies.add_item(actor, wanted, fields, judgment_id=judgment_id)
        except Exception as error:
            return {a.message: _error(error)}
        attached = f" with judgment #{judgment_id}" if judgment_id is not None else ""
        return {a.message: _notice(f"Added item #{item.id}{attached} to \u201c{study.name}\u201d.{note}")}

    # --- Label tab ----------------------------------------------------------------------------------

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
        return {
            lt.summary: _html(render.render_study_summary(study.name, study.description, study.pass_criteria,
                                                          study.scale, study.blind, rubric_levels(study.rubric))),
            lt.progress: _html(render.render_progress(progress_line(p.labelled_by_me, p.total_items,
                                                                    p.items_complete, p.overlap_target))),
            lt.notice: _html(""),
            lt.previous: gr.update(visible=True),
            lt.mine: self._my_label_table(actor, study),
        }

    def _my_label_table(self, actor: User, study: Study) -> pd.DataFrame:
        """The annotator's own labels in the study, newest first (a revised score also shows the first one)."""
        rows = []
        for annotation, external_id in reversed(self._studies.my_labels(actor, study.id)):
            score = str(annotation.score)
            if annotation.score != annotation.score_before_reveal:
                score += f" (first {annotation.score_before_reveal})"
            rows.append([str(annotation.item_id), external_id or "", score, format_time(annotation.created_at)])
        return pd.DataFrame(rows, columns=MY_LABEL_HEADERS)

    def _show(self, actor: User, study: Study, item: Item, cursor: Cursor, *, message: str = "",
              reveal_model: bool, annotation: Annotation | None = None) -> dict[Any, Any]:
        """Updates that put one item on screen in the cursor's mode."""
        lt = self.ui.label
        view = _stored_view(self.services, item.judgment_id) if reveal_model else None
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
            lt.score: gr.update(choices=choices, value=score_value, interactive=True,
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
            updates[lt.change] = gr.update(value="Change to \u2026", interactive=False, variant="secondary")
        return updates

    def _open_label(self, actor: User, study: Study, annotation: Annotation, cursor: Cursor,
                    message: str = "") -> dict[Any, Any]:
        """One of the annotator's own labels on screen: at its reveal while that is unanswered, else to edit."""
        item = self._studies.get_item(actor, annotation.item_id)
        spans = tuple(dict(s) for s in annotation.spans)
        if study.blind and annotation.score_after_reveal is None and item.judgment_id is not None:
            revealing = replace(cursor, study_id=study.id, item_id=item.id, mode="reveal", annotation_id=annotation.id,
                                submitted=annotation.score, spans=spans)
            note = "You have not yet kept or changed this score since the model's verdict was shown."
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
        return {lt.study: gr.update(choices=_study_choices(studies), value=wanted)}

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
        view = _stored_view(self.services, item.judgment_id)
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
        if confirmed.score_after_reveal == confirmed.score_before_reveal:
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

    # --- Agreement tab ----------------------------------------------------------------------------------

    def on_report(self, study_id: Any, request: gr.Request) -> dict[Any, Any]:
        """Compute the study's agreement report, draw its charts and prepare the export files."""
        ag = self.ui.agreement
        cleared: dict[Any, Any] = {
            ag.metrics: _html(""), ag.notes: _html(""), ag.item: _html(""), ag.table: gr.update(visible=False),
            **{plot: gr.update(value=None, visible=False) for plot in ag.charts},
            **{button: gr.update(visible=False) for button in ag.exports},
        }
        wanted = _as_id(study_id)
        try:
            actor = self.actor(request)
            if wanted is None:
                return {**cleared, ag.message: _error("Choose a study first.")}
            study = self._studies.get_study(actor, wanted)
            rows = self._studies.ratings(actor, wanted)
            if not rows:
                return {**cleared, ag.message: _notice("Nobody has labelled an item of this study yet."),
                        ag.shown: wanted}
            report = agreement_report(rows, study.scale, blind=study.blind)
            figures = charts.report_figures(report)
            exports = self._write_exports(actor, study, report, figures)
        except Exception as error:
            return {**cleared, ag.message: _error(error)}
        updates: dict[Any, Any] = {
            **cleared,
            ag.message: _html(""),
            ag.metrics: _html(render.render_agreement_metrics(report)),
            ag.notes: _html(render.render_report_notes(_report_notes(report), report.get("excluded"))),
            ag.table: gr.update(value=self._disagreement_table(actor, report.get("disagreements") or []),
                                visible=True),
            ag.shown: wanted,
        }
        for plot, figure in zip(ag.charts, figures.values(), strict=False):
            updates[plot] = gr.update(value=figure, visible=figure is not None)
        for button, path in zip(ag.exports, exports, strict=True):
            updates[button] = gr.update(value=str(path), visible=True)
        return updates

    def _disagreement_table(self, actor: User, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """The report's disagreements (largest |human mean - model| first) with a preview of each item."""
        table = []
        for row in rows:
            preview = ""
            try:
                item = self._studies.get_item(actor, int(row["item_id"]))
                preview = " \u00b7 ".join(text for text in item.fields.values() if text)[:160]
            except GliderError:
                pass
            if row.get("external_id") is not None:  # the user's own id first: it is how they know the item
                preview = f"[{row['external_id']}] {preview}"
            table.append([str(row["item_id"]), f"{row['human_mean']:.2f}", f"{row['model_score']:g}",
                          f"{abs(row['diff']):.2f}", str(row["n_annotators"]), preview])
        return pd.DataFrame(table, columns=DISAGREEMENT_HEADERS)

    def _write_exports(self, actor: User, study: Study, report: Mapping[str, Any],
                       figures: Mapping[str, Any]) -> list[Path]:
        """The four download files, in a fresh folder per report (Gradio serves them from its cache)."""
        folder = Path(tempfile.mkdtemp(prefix=f"study-{study.id}-", dir=self.export_root))
        paths = write_exports(self._studies, actor, study.id, report, folder)  # CSV, JSONL, report JSON
        paths.append(folder / f"study-{study.id}-report.html")  # the charts are the web layer's
        html = report_to_html(report, dict(figures), title=f"Agreement report: {study.name}")
        paths[3].write_text(html, encoding="utf-8")
        return paths

    def on_disagreement_select(self, shown: Any, event: gr.SelectData, request: gr.Request) -> dict[Any, Any]:
        """Show a disagreement's item with the model's highlights, its verdict and the human labels."""
        ag = self.ui.agreement
        row = event.row_value or []
        item_id = _as_id(row[0] if row else None)
        if item_id is None:
            return gr.skip()  # nothing to change ({} would be read as a value)
        try:
            actor = self.actor(request)
            item = self._studies.get_item(actor, item_id)
            labels = [(str(r["annotator"]), _shown_score(r), str(r.get("comment") or ""))
                      for r in self._studies.export_rows(actor, item.study_id) if int(r["item_id"]) == item_id]
        except Exception as error:
            return {ag.item: _error(error)}
        view = _stored_view(self.services, item.judgment_id)
        verdict = (render.render_score_card(view) + render.render_reasoning(view.reasoning) if view is not None
                   else render.render_hint("The model has not graded this item."))
        body = (render.render_item_header(item.id, item.external_id)
                + render.render_label_fields(item.fields, (), view.spans if view is not None else ())
                + render.render_human_labels(labels) + verdict)
        return {ag.item: _html(f'<div class="gl-agree-item">{body}</div>')}

    # --- wiring -----------------------------------------------------------------------------------------

    def wire(self, demo: gr.Blocks) -> None:
        """Attach every studies event: all private, the judge-using one in the judge's queue."""
        ui, s, lt, ag, a = self.ui, self.ui.studies, self.ui.label, self.ui.agreement, self.ui.add
        session_outputs = [ui.user_line, ui.logout, a.column, s.notice, lt.notice, ag.notice, s.body, ag.body,
                           s.table, lt.study, ag.study, s.import_study, a.study]
        demo.load(self.on_session, None, session_outputs, api_visibility=PRIVATE)

        def on(trigger: Any, fn: Callable[..., Any], inputs: Any, outputs: Any, **options: Any) -> None:
            trigger(fn, inputs, outputs, api_visibility=PRIVATE, **options)

        on(s.preset.change, self.on_study_preset, s.preset, [s.pass_criteria, s.rubric, s.scale])
        on(s.rubric.change, self.on_study_rubric, s.rubric, s.scale, queue=False)
        pickers = [lt.study, ag.study, s.import_study, a.study]
        on(s.create.click, self.on_create_study,
           [s.name, s.description, s.pass_criteria, s.rubric, s.tags, s.overlap, s.blind],
           [s.create_message, s.table, *pickers])
        gr.on([s.refresh.click, s.tab.select], self.on_refresh_studies, None, [s.table, s.create_message],
              api_visibility=PRIVATE)
        preview_outputs = [s.preview, s.id_column, s.import_report, *s.mapping]
        gr.on([s.upload.change, s.import_study.change], self.on_preview, [s.import_study, s.upload],
              preview_outputs, api_visibility=PRIVATE)
        on(s.import_button.click, self.on_import, [s.import_study, s.upload, s.id_column, *s.mapping],
           [s.import_report, s.table])
        # The run shows its own progress line (grade_status), so no overlay covers the tab's outputs.
        grading = {"concurrency_id": JUDGE_CONCURRENCY_ID, "concurrency_limit": 1, "show_progress": "hidden"}
        on(s.grade_all.click, self.on_grade_all, s.import_study, [s.grade_status, s.grade_message, s.table], **grading)
        on(s.regrade.click, self.on_regrade_failed, s.import_study, [s.grade_status, s.grade_message, s.table],
           **grading)
        # Not queued: Cancel must get through while the run holds the judge's queue.
        on(s.cancel_grading.click, self.on_grade_cancel, None, s.grade_message, queue=False)

        on(a.button.click, self.on_add_to_study, [a.study, ui.graded, *ui.grade_tags, *ui.grade_texts], a.message)

        label_outputs = lt.outputs
        labelling = {"concurrency_id": LABEL_CONCURRENCY_ID, "concurrency_limit": LABEL_CONCURRENCY_LIMIT}
        on(lt.study.change, self.on_label_study, [lt.study, lt.cursor], [*label_outputs, lt.saved], **labelling)
        demo.load(self.on_label_restore, lt.saved, lt.study, api_visibility=PRIVATE)
        on(lt.refresh.click, self.on_label_refresh, None, [*pickers, lt.notice])
        lt.mark.click(self.on_mark, [lt.selection, lt.cursor], [lt.cursor, lt.fields, lt.evidence, lt.message],
                      js=MARK_SELECTION_JS, api_visibility=PRIVATE)
        on(lt.clear.click, self.on_clear_marks, lt.cursor, [lt.cursor, lt.fields, lt.evidence, lt.message],
           **labelling)
        on(lt.submit.click, self.on_submit, [lt.score, lt.comment, lt.cursor], label_outputs, **labelling)
        on(lt.score.change, self.on_score_change, [lt.score, lt.cursor], [lt.change, lt.keep], queue=False,
           show_progress="hidden")
        on(lt.keep.click, self.on_keep, lt.cursor, label_outputs, **labelling)
        on(lt.change.click, self.on_change, [lt.score, lt.cursor], label_outputs, **labelling)
        on(lt.skip.click, self.on_skip, lt.cursor, label_outputs, **labelling)
        on(lt.previous.click, self.on_previous, lt.cursor, label_outputs, **labelling)
        on(lt.resume.click, self.on_resume, lt.cursor, label_outputs, **labelling)
        on(lt.mine_box.expand, self.on_my_labels, lt.cursor, [lt.mine, lt.message, lt.cursor], **labelling)
        on(lt.mine.select, self.on_my_label_select, lt.cursor, label_outputs, **labelling)

        on(ag.run.click, self.on_report, ag.study, ag.outputs)
        on(ag.table.select, self.on_disagreement_select, ag.shown, ag.item)


def _session(request: gr.Request | None) -> str | None:
    """The browser session a request comes from (None outside a served page, e.g. in tests)."""
    return getattr(request, "session_hash", None) if request is not None else None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _grading_progress(study: Study, state: StudyGrading) -> str:
    """The line shown while a study is graded: "Grading “Capitals”: 8 of 20 items · 7 graded, 1 failed to parse"."""
    line = f"Grading \u201c{study.name}\u201d: {state.done} of {_plural(state.total, 'item')}"
    if state.done:
        line += f" \u00b7 {summary_line(state)}"
    if state.items_per_second:
        line += f" \u00b7 {state.items_per_second:.2f} items/s"
    return line + ". Cancel stops after the batch in progress."


def _grading_outcome(study: Study, result: StudyGrading) -> Any:
    """The message after a run: what was graded, what failed (as a failure), and what is left to do."""
    if result.total == 0:
        if result.which == FAILED:
            return _notice(f"No item of \u201c{study.name}\u201d has a judgment that failed to parse.")
        return _notice("Every item of this study already has a judgment.")
    chosen = (f"{_plural(result.total, 'item')} without a judgment" if result.which == UNGRADED
              else f"{_plural(result.total, 'item')} whose judgment failed to parse")
    text = f"{summary_line(result)} ({result.done} of {chosen} in \u201c{study.name}\u201d)."
    again = "Grade all items" if result.which == UNGRADED else "Regrade failed"
    if result.cancelled:
        text = f"Cancelled: {text} {result.pending} left; press {again} to grade them."
    elif result.halted:
        text = f"The judge stopped working: {result.halted} {text} {result.pending} left; press {again} to try again."
    if result.failed_to_parse:
        text += (f" {_plural(result.failed_to_parse, 'answer')} failed to parse (no score; left out of agreement): "
                 "press Regrade failed to grade them again.")
    if result.errors:
        shown = "; ".join(f"{error.label}: {error.message}" for error in result.errors[:10])
        more = "; \u2026" if len(result.errors) > 10 else ""
        text += f" Not graded: {shown}{more}."
    failed = result.failed_to_parse or result.errors or result.halted
    return _error(text) if failed else _notice(text)


def _shown_score(row: Mapping[str, Any]) -> int | str:
    """A label's score for the disagreement view: in a blind study, also the score before the reveal (the
    one the report's headline uses) when it differs from the current one."""
    before, now = row.get("score_before_reveal"), row["score"]
    if row.get("blind") and before is not None and before != now:
        return f"{before} before the reveal, {now} now"
    return now


def _report_notes(report: Mapping[str, Any]) -> list[str]:
    """The report's own explanations of how ratings were pooled and what was left out (which scores the
    headline uses is said above the metrics, by render.render_agreement_metrics)."""
    notes = [str(report[key]) for key in ("pooling", "excluded_note") if isinstance(report.get(key), str)]
    spans = report.get("spans")
    if isinstance(spans, Mapping) and spans.get("n_without_evidence"):
        notes.append(str(spans["left_out_note"]))
    return notes

