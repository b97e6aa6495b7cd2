"""The Studies tab (admins): create a study, list studies, import items from a file, grade them all with the
judge; and "Add to study" on the Grade tab. See webapp.studies.layout for who may do what.
"""

import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import pandas as pd

from core.presets import Preset
from core.prompt import DEFAULT_TAGS
from core.studies import Study, StudySpec, User
from core.studies.pairs import PAIRWISE, SINGLE
from core.studies.queue_order import EXPLANATION, RANDOM
from core.studies.runs import describe_config
from core.study_grading import FAILED, UNGRADED, StudyGrading, Which, grade_study, summary_line
from webapp import access, render
from webapp.components import (
    JUDGE_CONCURRENCY_ID,
    MAX_MAPPED_TAGS,
    NO_COLUMN,
    PRIVATE,
    ColumnMapping,
    RubricForm,
)
from webapp.components import as_id as _as_id
from webapp.components import error_update as _error
from webapp.components import html_update as _html
from webapp.components import notice_update as _notice
from webapp.components import session_of as _session
from webapp.studies.layout import QUEUE_ORDER_CHOICES, StudyPage
from webapp.studies.pair_form import (
    MODE_CHOICES,
    mode_criteria,
    mode_defaults,
    pair_preset,
    pair_presets,
    scale_column,
)
from webapp.view_models import parse_tags, request_fields

STUDY_HEADERS = ["ID", "Name", "Scale", "Items", "Complete", "Overlap", "Blind", "Created by"]


@dataclass
class StudiesTab:
    """Admins: create a study, list studies, import items from a file, grade them all with the judge."""

    tab: gr.Tab
    notice: gr.HTML
    body: gr.Column
    name: gr.Textbox
    description: gr.Textbox
    form: RubricForm  # preset, pass criteria, rubric, scale
    tags: gr.Textbox
    overlap: gr.Number
    blind: gr.Checkbox
    queue_order: gr.Radio  # core.studies.queue_order
    random_first: gr.Number
    create: gr.Button
    create_message: gr.HTML
    refresh: gr.Button
    table: gr.Dataframe
    import_study: gr.Dropdown
    upload: gr.File
    preview: gr.Dataframe
    mapping: ColumnMapping
    id_column: gr.Dropdown
    import_button: gr.Button
    import_report: gr.HTML
    grade_all: gr.Button
    regrade: gr.Button
    cancel_grading: gr.Button
    grade_status: gr.HTML
    grade_message: gr.HTML
    new_run: gr.Checkbox  # grade every item again as a new judge run (core.studies.runs)
    mode: gr.Radio  # one response graded, or two compared (core.studies.pairs)
    allow_tie: gr.Checkbox  # pairwise only: annotators may answer "tie"

    @classmethod
    def create_in(cls, tab: gr.Tab, presets: list[Preset]) -> "StudiesTab":
        notice = gr.HTML(elem_id="gl-studies-notice", visible=False)
        with gr.Column(elem_id="gl-studies-body") as body, gr.Row():
            with gr.Column(scale=5, elem_classes="gl-inputs"):
                gr.HTML(render.render_subtitle("New study"))
                name = gr.Textbox(label="Name", max_lines=1, elem_id="gl-study-name")
                with gr.Row(equal_height=True):
                    mode = gr.Radio(choices=MODE_CHOICES, value=SINGLE, label="What annotators do", scale=3,
                                    elem_id="gl-study-mode")
                    allow_tie = gr.Checkbox(label="Allow ties", value=False, visible=False, scale=1,
                                            elem_id="gl-study-allow-tie")
                description = gr.Textbox(label="Description (shown to annotators)", lines=2, max_lines=6,
                                         elem_id="gl-study-description")
                form = RubricForm.create(presets, RubricForm.picker(presets, "gl-study-preset"),
                                         criteria_id="gl-study-criteria", rubric_id="gl-study-rubric",
                                         scale_id="gl-study-scale")
                tags = gr.Textbox(label="Field tags (comma-separated, in display order)", max_lines=3,
                                  value=", ".join(DEFAULT_TAGS), elem_id="gl-study-tags")
                with gr.Row(equal_height=True):
                    overlap = gr.Number(label="Labels per item (overlap k)", value=3, precision=0, minimum=1,
                                        maximum=50, elem_id="gl-study-overlap")
                    blind = gr.Checkbox(label="Blind: hide the model's verdict until the annotator submits",
                                        value=True, elem_id="gl-study-blind")
                with gr.Row(equal_height=True):
                    queue_order = gr.Radio(choices=QUEUE_ORDER_CHOICES, value=RANDOM, label="Queue order",
                                           elem_id="gl-study-queue-order")
                    random_first = gr.Number(label="First N items at random (with least-confident first)", value=0,
                                             precision=0, minimum=0, elem_id="gl-study-random-first")
                gr.HTML(render.render_hint(" ".join(f"{text[0].upper()}{text[1:]}" for text in EXPLANATION.values())),
                        elem_id="gl-study-queue-order-help")
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
                mapping = ColumnMapping.create("gl-import-map")
                id_column = gr.Dropdown(choices=[], label="Item id column (optional)", visible=False,
                                        elem_id="gl-import-id")
                import_button = gr.Button("Import", variant="primary", elem_id="gl-import-run")
                import_report = gr.HTML(visible=False, elem_id="gl-import-report")
                gr.HTML(render.render_subtitle("Grade with the judge"))
                with gr.Row():
                    grade_all = gr.Button("Grade all items with the judge", variant="primary", elem_id="gl-grade-all")
                    regrade = gr.Button("Regrade failed", elem_id="gl-grade-failed")
                    cancel_grading = gr.Button("Cancel", variant="stop", elem_id="gl-grade-cancel")
                new_run = gr.Checkbox(label="Grade as a new run", value=False, elem_id="gl-grade-new-run",
                                      info="grade every item again, kept beside the study's other judge runs (a judge "
                                           "configured differently always starts a new run)")
                # The run's own progress line (not only Gradio's overlay): items done of the total, so far.
                grade_status = gr.HTML(visible=False, elem_id="gl-grade-all-status")
                grade_message = gr.HTML(visible=False, elem_id="gl-grade-all-message")
        return cls(tab, notice, body, name, description, form, tags, overlap, blind, queue_order, random_first, create,
                   create_message, refresh,
                   table, import_study, upload, preview, mapping, id_column, import_button, import_report, grade_all,
                   regrade, cancel_grading, grade_status, grade_message, new_run, mode, allow_tie)


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


# --- callbacks -------------------------------------------------------------------------------------


@dataclass
class StudiesHandlers(StudyPage):
    """The Studies tab's callbacks, and "Add to study" on the Grade tab."""

    _grading: dict[str | None, threading.Event] = field(default_factory=dict)  # session hash -> its run's stop flag
    _grading_guard: threading.Lock = field(default_factory=threading.Lock)

    def study_table(self, actor: User) -> pd.DataFrame:
        """The Studies tab's list with each study's item counts (admins: annotators see studies only in pickers)."""
        access.require_admin(actor, "manage studies")
        rows = []
        for study in self._studies.list_studies(actor):
            progress = self._studies.progress(actor, study.id)
            rows.append([str(study.id), study.name, scale_column(study),
                         str(progress.total_items), str(progress.items_complete), str(study.overlap_target),
                         "yes" if study.blind else "no", study.created_by])
        return pd.DataFrame(rows, columns=STUDY_HEADERS)

    def on_study_preset(self, key: str | None) -> dict[Any, Any]:
        form = self.ui.studies.form
        chosen = form.chosen(key) or pair_preset(key)
        if chosen is None:
            return gr.skip()  # nothing to change ({} would be read as a value)
        return {**form.filled(chosen), **form.scale_of(chosen.rubric)}

    def on_study_rubric(self, rubric: str) -> dict[Any, Any]:
        return self.ui.studies.form.scale_of(rubric)

    def on_study_mode(self, mode: str, tags: str, criteria: str, rubric: str, preset: str | None
                      ) -> dict[Any, Any]:
        """Pairwise: the pair tags and the 0/1 pairwise rubric (where the boxes hold the other mode's defaults),
        the pairwise presets, and "Allow ties"; back to one response: its defaults and presets again. No preset is
        chosen after a switch, so the criteria the admin typed stay (a preset's own criteria are cleared)."""
        s = self.ui.studies
        chosen = s.form.chosen(preset)
        new_tags, new_rubric = mode_defaults(mode, tags or "", rubric or "", chosen.rubric if chosen else "")
        offered = pair_presets() if mode == PAIRWISE else tuple(s.form.presets.values())
        return {s.tags: new_tags, s.form.rubric: new_rubric, **s.form.scale_of(new_rubric),
                s.form.pass_criteria: mode_criteria(criteria or "", chosen or pair_preset(preset)),
                s.form.preset: gr.update(choices=[(p.name, p.key) for p in offered], value=None),
                s.allow_tie: gr.update(visible=mode == PAIRWISE)}

    def on_create_study(self, name: str, description: str, pass_criteria: str, rubric: str, tags: str,
                        overlap: Any, blind: bool, request: gr.Request, queue_order: str = RANDOM,
                        random_first: Any = 0, mode: str = SINGLE, allow_tie: bool = False) -> dict[Any, Any]:
        s = self.ui.studies
        try:
            actor = self.actor(request)
            spec = StudySpec(name=(name or "").strip(), pass_criteria=pass_criteria or "", rubric=rubric or "",
                             tags=parse_tags(tags) or DEFAULT_TAGS, description=(description or "").strip(),
                             overlap_target=int(overlap) if overlap not in (None, "") else 3, blind=bool(blind),
                             queue_order=queue_order or RANDOM,
                             random_first=random_first if random_first not in (None, "") else 0,
                             mode=mode or SINGLE, allow_tie=bool(allow_tie))
            study = self._studies.create_study(actor, spec)
            kind = f" ({scale_column(study)})" if study.pairwise else ""
            return {s.create_message: _notice(f"Created the study \u201c{study.name}\u201d (#{study.id}){kind}. "
                                              "Import its items on the right."),
                    s.table: self.study_table(actor), **self._pickers(actor, {s.import_study: study.id})}
        except Exception as error:
            return {s.create_message: _error(error)}

    def on_refresh_studies(self, request: gr.Request) -> dict[Any, Any]:
        s = self.ui.studies
        try:
            actor = self.actor(request)
            return {s.table: self.study_table(actor), s.create_message: _html("")}
        except Exception as error:
            return {s.create_message: _error(error)}

    def on_preview(self, study_id: Any, path: str | None, request: gr.Request) -> dict[Any, Any]:
        """Show the first rows of the uploaded file and one column picker per field tag, guessed by name."""
        s = self.ui.studies
        hidden = {s.preview: gr.update(visible=False), s.id_column: gr.update(visible=False), **s.mapping.hide()}
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
        choices = ColumnMapping.choices(columns)
        updates: dict[Any, Any] = {s.preview: gr.update(value=table, visible=True), **s.mapping.show(columns, tags)}
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
        return {s.import_report: _html(rendered), s.table: self.study_table(actor)}

    def on_grade_all(self, study_id: Any, request: gr.Request, new_run: Any = False) -> Iterator[dict[Any, Any]]:
        """Grade every item of the study that has no judgment yet in this judge's run (or, `new_run`, every item as
        a new judge run), in batches, showing progress as it goes."""
        yield from self._grade_study(study_id, request, UNGRADED, bool(new_run))

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

    def _grade_study(self, study_id: Any, request: gr.Request, which: Which,
                     new_run: bool = False) -> Iterator[dict[Any, Any]]:
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
            access.require_admin(actor, "grade a study's items")
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
                                    batch_size=self.services.api_batch_size, should_stop=stop.is_set, new_run=new_run,
                                    on_progress=lambda state: events.put(("batch", state)))
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
                           s.table: self.study_table(actor)}
                else:
                    yield {s.grade_status: _html(""), s.grade_message: _error(value if isinstance(value, Exception)
                                                                              else f"Grading stopped ({value!r})."),
                           s.table: self.study_table(actor)}
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

    # --- wiring -----------------------------------------------------------------------------------------

    def wire(self, demo: gr.Blocks) -> None:
        """Attach the Studies tab's events and "Add to study": all private, grading in the judge's queue."""
        ui, s, a = self.ui, self.ui.studies, self.ui.add

        def on(trigger: Any, fn: Callable[..., Any], inputs: Any, outputs: Any, **options: Any) -> None:
            trigger(fn, inputs, outputs, api_visibility=PRIVATE, **options)

        s.form.wire(self.on_study_preset, self.on_study_rubric, also=[s.form.scale])
        on(s.create.click, self.on_create_study,
           [s.name, s.description, s.form.pass_criteria, s.form.rubric, s.tags, s.overlap, s.blind, s.queue_order,
            s.random_first, s.mode, s.allow_tie],
           [s.create_message, s.table, *ui.pickers])
        on(s.mode.change, self.on_study_mode, [s.mode, s.tags, s.form.pass_criteria, s.form.rubric, s.form.preset],
           [s.tags, s.form.pass_criteria, s.form.rubric, s.form.scale, s.form.preset, s.allow_tie], queue=False)
        gr.on([s.refresh.click, s.tab.select], self.on_refresh_studies, None, [s.table, s.create_message],
              api_visibility=PRIVATE)
        preview_outputs = [s.preview, s.id_column, s.import_report, *s.mapping.boxes]
        gr.on([s.upload.change, s.import_study.change], self.on_preview, [s.import_study, s.upload],
              preview_outputs, api_visibility=PRIVATE)
        on(s.import_button.click, self.on_import, [s.import_study, s.upload, s.id_column, *s.mapping.boxes],
           [s.import_report, s.table])
        # The run shows its own progress line (grade_status), so no overlay covers the tab's outputs.
        grading = {"concurrency_id": JUDGE_CONCURRENCY_ID, "concurrency_limit": 1, "show_progress": "hidden"}
        on(s.grade_all.click, self.on_grade_all, [s.import_study, s.new_run],
           [s.grade_status, s.grade_message, s.table], **grading)
        on(s.regrade.click, self.on_regrade_failed, s.import_study, [s.grade_status, s.grade_message, s.table],
           **grading)
        # Not queued: Cancel must get through while the run holds the judge's queue.
        on(s.cancel_grading.click, self.on_grade_cancel, None, s.grade_message, queue=False)

        on(a.button.click, self.on_add_to_study, [a.study, ui.graded, *ui.grade_tags, *ui.grade_texts], a.message)


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
    run = result.run
    # The first run is the study's judge as before runs existed: only other runs are named (core.studies.runs).
    where = "" if run is None or run.is_default else (
        f"{'New judge run' if result.run_created else 'Judge run'} \u201c{run.name}\u201d (#{run.id}, "
        f"{describe_config(run.config)}): ")
    if result.total == 0:
        if result.which == FAILED:
            return _notice(f"{where}No item of \u201c{study.name}\u201d has a judgment that failed to parse.")
        return _notice(f"{where}Every item of this study already has a judgment.")
    chosen = (f"{_plural(result.total, 'item')} without a judgment" if result.which == UNGRADED
              else f"{_plural(result.total, 'item')} whose judgment failed to parse")
    text = f"{where}{summary_line(result)} ({result.done} of {chosen} in \u201c{study.name}\u201d)."
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


