"""The Manage tab (admins): a study's settings and annotator guidelines, duplicate, archive and delete (after an
export), the item browser with one item's labels and verdict, removing items, and per-annotator progress.

Every callback takes the user from the signed-in session (webapp.access.current_user) and calls one action of
core.studies.admin (Studies.admin), which refuses anyone who is not an admin; all events are private.
"""

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from core.agreement import agreement_report
from core.studies import Studies, Study, User, write_exports
from core.studies.admin import StudyAdmin
from core.studies.items_browser import STATES, ItemDetail, ItemSummary
from core.studies.queue_order import EXPLANATION, UNCERTAINTY
from webapp import access, render
from webapp.components import PRIVATE, Unavailable
from webapp.components import as_id as _as_id
from webapp.components import error_update as _error
from webapp.components import html_update as _html
from webapp.components import notice_update as _notice
from webapp.services import Services
from webapp.studies.layout import QUEUE_ORDER_CHOICES, stored_view, study_choices
from webapp.view_models import format_time

ALL_STATES = "all"
ITEM_HEADERS = ["Item", "External id", "Labels", "Scores", "Judge", "State", "Preview"]
PROGRESS_HEADERS = ["Annotator", "Role", "Labelled / assigned", "Median s per label", "Last active",
                    "Changed at reveal", "Edited later"]
NOT_ADMIN = "Managing studies is for admins: it shows every annotator's labels."
LOCKED_NOTE = ("This study has labels, so its pass criteria, rubric and blind mode are fixed (the labels were "
               "given under them). To change them, duplicate the study and change the copy.")


@dataclass
class ManageTab:
    """Admins: settings, lifecycle, items and progress of one study."""

    notice: gr.HTML
    body: gr.Column
    study: gr.Dropdown
    refresh: gr.Button
    message: gr.HTML
    name: gr.Textbox
    description: gr.Textbox
    guidelines: gr.Textbox
    criteria: gr.Textbox
    rubric: gr.Textbox
    blind: gr.Checkbox
    overlap: gr.Number
    locked: gr.HTML
    save: gr.Button
    copy_name: gr.Textbox
    duplicate: gr.Button
    status: gr.HTML
    archive: gr.Button
    unarchive: gr.Button
    export: gr.Button
    exports: list[gr.DownloadButton]
    confirm: gr.Textbox
    delete: gr.Button
    search: gr.Textbox
    state: gr.Dropdown
    find: gr.Button
    items: gr.Dataframe
    item: gr.HTML
    remove: gr.Button
    restore: gr.Button
    progress: gr.Dataframe
    chosen: gr.State  # the item open in the detail panel
    queue_order: gr.Radio  # core.studies.queue_order: changed apart from the settings, every change recorded
    random_first: gr.Number
    queue_save: gr.Button

    EXPORTS = (("Annotations CSV", "csv"), ("Annotations JSONL", "jsonl"), ("Report JSON", "json"))

    @classmethod
    def create_in(cls, tab: gr.Tab) -> "ManageTab":
        notice = gr.HTML(elem_id="gl-manage-notice", visible=False)
        with gr.Column(elem_id="gl-manage-body") as body:
            with gr.Row(equal_height=True):
                study = gr.Dropdown(choices=[], label="Study (archived ones too)", scale=4, elem_id="gl-manage-study")
                refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id="gl-manage-refresh")
            message = gr.HTML(visible=False, elem_id="gl-manage-message")
            with gr.Accordion("Settings and guidelines", open=True, elem_id="gl-manage-settings"):
                name = gr.Textbox(label="Name", max_lines=1, elem_id="gl-manage-name")
                description = gr.Textbox(label="Description", lines=2, elem_id="gl-manage-description")
                guidelines = gr.Textbox(label="Guidelines for annotators (Markdown; shown on the Label tab)",
                                        lines=8, max_lines=30, elem_id="gl-manage-guidelines")
                locked = gr.HTML(visible=False, elem_id="gl-manage-locked")
                criteria = gr.Textbox(label="Pass criteria", lines=2, elem_id="gl-manage-criteria")
                rubric = gr.Textbox(label="Rubric", lines=4, elem_id="gl-manage-rubric")
                with gr.Row():
                    blind = gr.Checkbox(label="Blind (the model's verdict is shown after the label)",
                                        elem_id="gl-manage-blind")
                    overlap = gr.Number(label="Annotators per item", precision=0, minimum=1,
                                        elem_id="gl-manage-overlap")
                save = gr.Button("Save settings", variant="primary", elem_id="gl-manage-save")
                with gr.Row(equal_height=True):
                    queue_order = gr.Radio(choices=QUEUE_ORDER_CHOICES, label="Queue order", scale=3,
                                           elem_id="gl-manage-queue-order")
                    random_first = gr.Number(label="First N items at random", precision=0, minimum=0, scale=2,
                                             elem_id="gl-manage-random-first")
                    queue_save = gr.Button("Save queue order", scale=1, elem_id="gl-manage-queue-save")
                gr.HTML(render.render_hint("Items already handed out keep how they were drawn; the change applies "
                                           "to the next ones. " + EXPLANATION[UNCERTAINTY]),
                        elem_id="gl-manage-queue-help")
                with gr.Row(equal_height=True):
                    copy_name = gr.Textbox(label="Name of the copy (default: this name + \u201c(copy)\u201d)",
                                           max_lines=1, scale=4, elem_id="gl-manage-copy-name")
                    duplicate = gr.Button("Duplicate as a new study", scale=1, elem_id="gl-manage-duplicate")
            with gr.Accordion("Archive or delete", open=False, elem_id="gl-manage-lifecycle"):
                status = gr.HTML(elem_id="gl-manage-status")
                with gr.Row():
                    archive = gr.Button("Archive (hide from annotators)", elem_id="gl-manage-archive")
                    unarchive = gr.Button("Unarchive", visible=False, elem_id="gl-manage-unarchive")
                gr.HTML(render.render_hint("Deleting removes the study, its items and every label for good. "
                                           "Download its labels first; only an archived study can be deleted."))
                export = gr.Button("Prepare the export", size="sm", elem_id="gl-manage-export")
                with gr.Row(elem_classes="gl-exports"):
                    exports = [gr.DownloadButton(label, visible=False, size="sm", elem_id=f"gl-manage-export-{suffix}")
                               for label, suffix in cls.EXPORTS]
                with gr.Row(equal_height=True):
                    confirm = gr.Textbox(label="Type the study's name to delete it", max_lines=1, scale=4,
                                         elem_id="gl-manage-confirm")
                    delete = gr.Button("Delete study", variant="stop", scale=1, elem_id="gl-manage-delete")
            with gr.Accordion("Items", open=True, elem_id="gl-manage-items-box"):
                gr.HTML(render.render_hint("Add items in the Studies tab (Import items) or from the Grade tab."))
                with gr.Row(equal_height=True):
                    search = gr.Textbox(label="Search text, external id or #number", max_lines=1, scale=3,
                                        elem_id="gl-manage-search")
                    state = gr.Dropdown(choices=[ALL_STATES, *STATES], value=ALL_STATES, label="State", scale=2,
                                        elem_id="gl-manage-state")
                    find = gr.Button("Show items", scale=1, elem_id="gl-manage-find")
                items = gr.Dataframe(headers=ITEM_HEADERS, datatype="str", interactive=False, wrap=True,
                                     max_height=360, label="Items (click one to open it)", elem_id="gl-manage-items")
                item = gr.HTML(visible=False, elem_id="gl-manage-item")
                with gr.Row():
                    remove = gr.Button("Remove this item", size="sm", visible=False, elem_id="gl-manage-remove")
                    restore = gr.Button("Put this item back", size="sm", visible=False, elem_id="gl-manage-restore")
            progress = gr.Dataframe(headers=PROGRESS_HEADERS, datatype="str", interactive=False, wrap=True,
                                    label="Annotators", elem_id="gl-manage-progress")
        chosen = gr.State(None)
        return cls(notice, body, study, refresh, message, name, description, guidelines, criteria, rubric, blind,
                   overlap, locked, save, copy_name, duplicate, status, archive, unarchive, export, exports, confirm,
                   delete, search, state, find, items, item, remove, restore, progress, chosen, queue_order,
                   random_first, queue_save)

    @property
    def form(self) -> list[Any]:
        return [self.name, self.description, self.guidelines, self.criteria, self.rubric, self.blind, self.overlap]

    @property
    def outputs(self) -> list[Any]:
        return [self.notice, self.body, self.study, self.message, *self.form, self.queue_order, self.random_first,
                self.locked, self.copy_name,
                self.status, self.archive, self.unarchive, *self.exports, self.confirm, self.search, self.state,
                self.items, self.item,
                self.remove, self.restore, self.progress, self.chosen]


def item_table(found: list[ItemSummary]) -> pd.DataFrame:
    rows = []
    for item in found:
        judge = ("\u2014" if item.judge_status is None else
                 str(item.judge_score) if item.judge_score is not None else item.judge_status)
        rows.append([str(item.id), item.external_id or "", str(item.labels),
                     ", ".join(map(str, item.scores)), judge, "; ".join(s for s in STATES if s in item.states),
                     item.preview])
    return pd.DataFrame(rows, columns=ITEM_HEADERS)


def progress_table(admin: StudyAdmin, actor: User, study_id: int) -> pd.DataFrame:
    rows = []
    for row in admin.annotator_progress(actor, study_id):
        rows.append([row.username + ("" if row.active else " (deactivated)"), row.role,
                     f"{row.labelled} / {row.assigned}",
                     "\u2014" if row.median_seconds is None else f"{row.median_seconds:.1f}",
                     format_time(row.last_active) if row.last_active else "\u2014",
                     str(row.changed_at_reveal), str(row.edited)])
    return pd.DataFrame(rows, columns=PROGRESS_HEADERS)


def _labels_for_render(detail: ItemDetail) -> list[dict[str, object]]:
    fields = detail.item.fields
    shown = []
    for entry in detail.labels:
        a = entry.annotation
        evidence = [(span["field"], fields.get(span["field"], "")[span["start"]:span["end"]]) for span in a.spans]
        edits = [f"{format_time(edit.at)} by {edit.editor}: " + "; ".join(
            f"{name} {old!r} \u2192 {new!r}" for name, (old, new) in edit.changes.items() if name != "spans")
            + (" (evidence changed)" if "spans" in edit.changes else "") for edit in entry.edits]
        shown.append({"annotator": a.annotator, "before": a.score_before_reveal, "after": a.score_after_reveal,
                      "score": a.score, "comment": a.comment, "evidence": evidence, "seconds": f"{a.seconds:.0f}",
                      "created_at": format_time(a.created_at), "edits": edits})
    return shown


# --- callbacks -------------------------------------------------------------------------------------


@dataclass
class ManageHandlers:
    """The Manage tab's callbacks: each finds the signed-in user, calls core.studies.admin and returns updates."""

    services: Services
    ui: ManageTab
    export_root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="glider-manage-exports-")))

    @property
    def _studies(self) -> Studies:
        if self.services.studies is None:
            raise Unavailable(access.NO_STUDIES)
        return self.services.studies

    @property
    def _admin(self) -> StudyAdmin:
        return self._studies.admin

    def _actor(self, request: Any) -> User:
        return access.current_user(self.services, request)

    def _picker(self, actor: User, value: int | None) -> Any:
        choices = study_choices(self._studies.list_studies(actor))
        known = {study_id for _, study_id in choices}
        return gr.update(choices=choices, value=value if value in known else None)

    def _cleared(self) -> dict[Any, Any]:
        m = self.ui
        return {**{box: gr.update(value="") for box in (m.name, m.description, m.guidelines, m.criteria, m.rubric,
                                                          m.copy_name, m.confirm)},
                m.blind: gr.update(value=False), m.overlap: gr.update(value=None), m.locked: _html(""),
                m.queue_order: gr.update(value=None), m.random_first: gr.update(value=None),
                m.status: _html(""), m.items: gr.update(value=item_table([])), m.item: _html(""),
                m.remove: gr.update(visible=False), m.restore: gr.update(visible=False),
                m.progress: gr.update(value=pd.DataFrame([], columns=PROGRESS_HEADERS)), m.chosen: None,
                **{button: gr.update(visible=False) for button in m.exports}}

    def _view(self, actor: User, study: Study) -> dict[Any, Any]:
        """The study's settings, status, every item (the search and state filter reset) and progress on screen."""
        m = self.ui
        found = self._admin.browse_items(actor, study.id)
        labelled = any(item.labels for item in found)
        status = (f"Archived {format_time(study.archived_at)}: hidden from annotators; its labels are kept."
                  if study.archived_at else "Open: annotators see it in the Label tab.")
        return {
            **self._cleared(),
            m.name: gr.update(value=study.name), m.description: gr.update(value=study.description),
            m.guidelines: gr.update(value=study.guidelines),
            m.criteria: gr.update(value=study.pass_criteria, interactive=not labelled),
            m.rubric: gr.update(value=study.rubric, interactive=not labelled),
            m.blind: gr.update(value=study.blind, interactive=not labelled),
            m.overlap: gr.update(value=study.overlap_target),
            m.queue_order: gr.update(value=study.queue_order), m.random_first: gr.update(value=study.random_first),
            m.locked: _notice(LOCKED_NOTE) if labelled else _html(""),
            m.status: _html(render.render_hint(status)),
            m.archive: gr.update(visible=not study.archived), m.unarchive: gr.update(visible=study.archived),
            m.items: gr.update(value=item_table(found)), m.search: gr.update(value=""), m.state: ALL_STATES,
            m.progress: gr.update(value=progress_table(self._admin, actor, study.id)),
        }

    def on_manage_session(self, request: gr.Request) -> dict[Any, Any]:
        """On page load: the tab's body and study picker for admins, a notice for everyone else."""
        m = self.ui
        try:
            actor = self._actor(request)
            if not actor.is_admin:
                return {m.notice: _notice(NOT_ADMIN), m.body: gr.update(visible=False)}
            return {m.notice: _html(""), m.body: gr.update(visible=True), m.study: self._picker(actor, None)}
        except Exception as error:
            return {m.notice: _error(error), m.body: gr.update(visible=False)}

    def on_manage_refresh(self, study_id: Any, request: gr.Request) -> dict[Any, Any]:
        """Fill the picker again (studies made meanwhile) and show the chosen study afresh."""
        m = self.ui
        try:
            actor = self._actor(request)
            picker = self._picker(actor, _as_id(study_id))
            wanted = _as_id(study_id)
            if wanted is None:
                return {m.study: picker, m.message: _html("")}
            return {**self._view(actor, self._studies.get_study(actor, wanted)), m.study: picker, m.message: _html("")}
        except Exception as error:
            return {m.message: _error(error)}

    def on_manage_pick(self, study_id: Any, request: gr.Request) -> dict[Any, Any]:
        """Show the chosen study."""
        m = self.ui
        wanted = _as_id(study_id)
        if wanted is None:
            return {**self._cleared(), m.message: _html("")}
        try:
            actor = self._actor(request)
            return {**self._view(actor, self._studies.get_study(actor, wanted)), m.message: _html("")}
        except Exception as error:
            return {**self._cleared(), m.message: _error(error)}

    def on_manage_save(self, study_id: Any, name: Any, description: Any, guidelines: Any, criteria: Any,
                       rubric: Any, blind: Any, overlap: Any, request: gr.Request) -> dict[Any, Any]:
        """Save the settings form (the locked settings are refused by core once the study has labels)."""
        m = self.ui
        wanted = _as_id(study_id)
        try:
            actor = self._actor(request)
            if wanted is None:
                return {m.message: _error("Choose a study first.")}
            if overlap in (None, "") or float(overlap) != int(float(overlap)):
                return {m.message: _error("Annotators per item must be a whole number of at least 1.")}
            study = self._admin.update_study(
                actor, wanted, name=str(name or ""), description=str(description or ""),
                guidelines=str(guidelines or ""), pass_criteria=str(criteria or ""), rubric=str(rubric or ""),
                blind=bool(blind), overlap_target=int(float(overlap)))
            return {**self._view(actor, study), m.study: self._picker(actor, study.id),
                    m.message: _notice(f"Saved the settings of {study.name!r}.")}
        except Exception as error:
            return {m.message: _error(error)}

    def on_manage_queue_order(self, study_id: Any, order: Any, random_first: Any,
                              request: gr.Request) -> dict[Any, Any]:
        """Change the study's queue order (core records who changed what, and when)."""
        m = self.ui
        wanted = _as_id(study_id)
        try:
            actor = self._actor(request)
            if wanted is None:
                return {m.message: _error("Choose a study first.")}
            study = self._admin.set_queue_order(actor, wanted, str(order or ""),
                                                None if random_first in (None, "") else random_first)
            first = f", the first {study.random_first} at random" if study.queue_order == UNCERTAINTY else ""
            return {**self._view(actor, study),
                    m.message: _notice(f"Queue order of {study.name!r}: {study.queue_order}{first}.")}
        except Exception as error:
            return {m.message: _error(error)}

    def on_manage_duplicate(self, study_id: Any, copy_name: Any, request: gr.Request) -> dict[Any, Any]:
        """Copy the study's settings and items into a new study, and show the copy."""
        m = self.ui
        wanted = _as_id(study_id)
        try:
            actor = self._actor(request)
            if wanted is None:
                return {m.message: _error("Choose a study first.")}
            copy = self._admin.duplicate_study(actor, wanted, str(copy_name or "") or None)
            return {**self._view(actor, copy), m.study: self._picker(actor, copy.id),
                    m.message: _notice(f"Created {copy.name!r} (#{copy.id}): the same settings and items, no labels "
                                       "and no verdicts yet (grade it in the Studies tab).")}
        except Exception as error:
            return {m.message: _error(error)}

    def _archive(self, study_id: Any, request: gr.Request, archived: bool) -> dict[Any, Any]:
        m = self.ui
        wanted = _as_id(study_id)
        try:
            actor = self._actor(request)
            if wanted is None:
                return {m.message: _error("Choose a study first.")}
            study = self._admin.set_archived(actor, wanted, archived)
            text = ("Archived: annotators no longer see it; nothing was deleted." if archived
                    else "Unarchived: annotators can label it again.")
            return {**self._view(actor, study), m.message: _notice(text)}
        except Exception as error:
            return {m.message: _error(error)}

    def on_manage_archive(self, study_id: Any, request: gr.Request) -> dict[Any, Any]:
        """Archive the study."""
        return self._archive(study_id, request, True)

    def on_manage_unarchive(self, study_id: Any, request: gr.Request) -> dict[Any, Any]:
        """Unarchive the study."""
        return self._archive(study_id, request, False)

    def on_manage_export(self, study_id: Any, request: gr.Request) -> dict[Any, Any]:
        """Write the study's labels (CSV, JSONL) and its agreement report (JSON) for download."""
        m = self.ui
        wanted = _as_id(study_id)
        try:
            actor = self._actor(request)
            if wanted is None:
                return {m.message: _error("Choose a study first.")}
            study = self._studies.get_study(actor, wanted)
            rows = self._studies.ratings(actor, wanted)
            labelled = any(row["annotator"] is not None for row in rows)
            report = agreement_report(rows, study.scale, blind=study.blind) if labelled else {}
            folder = Path(tempfile.mkdtemp(prefix=f"study-{study.id}-", dir=self.export_root))
            paths = write_exports(self._studies, actor, study.id, report, folder)
        except Exception as error:
            return {m.message: _error(error)}
        return {m.message: _notice("The export is ready: download it before deleting."),
                **{button: gr.update(value=str(path), visible=True)
                   for button, path in zip(m.exports, paths, strict=True)}}

    def on_manage_delete(self, study_id: Any, confirm: Any, request: gr.Request) -> dict[Any, Any]:
        """Delete the (archived) study when the typed name matches it exactly."""
        m = self.ui
        wanted = _as_id(study_id)
        try:
            actor = self._actor(request)
            if wanted is None:
                return {m.message: _error("Choose a study first.")}
            gone = self._admin.delete_study(actor, wanted, str(confirm or ""))
            return {**self._cleared(), m.study: self._picker(actor, None),
                    m.message: _notice(f"Deleted {gone.name!r}: {gone.items} item(s) and {gone.labels} label(s).")}
        except Exception as error:
            return {m.message: _error(error)}

    def on_manage_items(self, study_id: Any, search: Any, state: Any, request: gr.Request) -> dict[Any, Any]:
        """The items that match the search and the state."""
        m = self.ui
        wanted = _as_id(study_id)
        try:
            actor = self._actor(request)
            if wanted is None:
                return {m.message: _error("Choose a study first.")}
            found = self._admin.browse_items(actor, wanted, state=str(state or ALL_STATES), search=str(search or ""))
            return {m.items: gr.update(value=item_table(found)), m.message: _html(""), m.item: _html(""),
                    m.remove: gr.update(visible=False), m.restore: gr.update(visible=False), m.chosen: None}
        except Exception as error:
            return {m.message: _error(error)}

    def _item_view(self, actor: User, item_id: int) -> dict[Any, Any]:
        m = self.ui
        detail = self._admin.item_detail(actor, item_id)
        item = detail.item
        view = stored_view(self.services, detail.judgment_id)
        verdict = (render.render_subtitle("The model's verdict") + render.render_score_card(view)
                   + render.render_reasoning(view.reasoning)) if view is not None else render.render_hint(
            "The model has not graded this item.")
        note = "; ".join(s for s in STATES if s in detail.states)
        if item.removed_at is not None:
            note += f" (removed {format_time(item.removed_at)})"
        body = (render.render_item_header(item.id, item.external_id, note)
                + render.render_label_fields(item.fields, (), view.spans if view is not None else ())
                + render.render_item_labels(_labels_for_render(detail)) + verdict)
        removed = item.removed_at is not None
        return {m.item: _html(f'<div class="gl-agree-item">{body}</div>'), m.chosen: item.id,
                m.remove: gr.update(visible=not removed), m.restore: gr.update(visible=removed)}

    def on_manage_item_select(self, event: gr.SelectData, request: gr.Request) -> dict[Any, Any]:
        """Open the clicked item: its fields, every label with its history, and the judge's verdict."""
        row = event.row_value or []
        item_id = _as_id(row[0] if row else None)
        if item_id is None:
            return gr.skip()  # nothing to change ({} would be read as a value)
        try:
            return self._item_view(self._actor(request), item_id)
        except Exception as error:
            return {self.ui.item: _error(error)}

    def _set_removed(self, chosen: Any, study_id: Any, search: Any, state: Any, request: gr.Request,
                     removed: bool) -> dict[Any, Any]:
        m = self.ui
        item_id, wanted = _as_id(chosen), _as_id(study_id)
        try:
            actor = self._actor(request)
            if item_id is None or wanted is None:
                return {m.message: _error("Open an item first.")}
            item = self._admin.set_item_removed(actor, item_id, removed)
            found = self._admin.browse_items(actor, wanted, state=str(state or ALL_STATES), search=str(search or ""))
            text = (f"Removed item #{item.id}: out of the labelling queue and the report; its labels stay in the "
                    "export." if removed else f"Item #{item.id} is back in the study.")
            return {**self._item_view(actor, item.id), m.items: gr.update(value=item_table(found)),
                    m.progress: gr.update(value=progress_table(self._admin, actor, wanted)),
                    m.message: _notice(text)}
        except Exception as error:
            return {m.message: _error(error)}

    def on_manage_remove(self, chosen: Any, study_id: Any, search: Any, state: Any,
                         request: gr.Request) -> dict[Any, Any]:
        """Remove the open item from the study (kept in exports)."""
        return self._set_removed(chosen, study_id, search, state, request, True)

    def on_manage_restore(self, chosen: Any, study_id: Any, search: Any, state: Any,
                          request: gr.Request) -> dict[Any, Any]:
        """Put the open item back."""
        return self._set_removed(chosen, study_id, search, state, request, False)

    # --- wiring -----------------------------------------------------------------------------------------

    def wire(self, demo: gr.Blocks) -> None:
        """Attach the Manage tab's events: all private."""
        m = self.ui
        out = m.outputs

        def on(trigger: Any, fn: Callable[..., Any], inputs: Any, **options: Any) -> None:
            trigger(fn, inputs, out, api_visibility=PRIVATE, **options)

        on(demo.load, self.on_manage_session, None)
        on(m.refresh.click, self.on_manage_refresh, m.study)
        on(m.study.input, self.on_manage_pick, m.study)
        on(m.save.click, self.on_manage_save, [m.study, *m.form])
        on(m.queue_save.click, self.on_manage_queue_order, [m.study, m.queue_order, m.random_first])
        on(m.duplicate.click, self.on_manage_duplicate, [m.study, m.copy_name])
        on(m.archive.click, self.on_manage_archive, m.study)
        on(m.unarchive.click, self.on_manage_unarchive, m.study)
        on(m.export.click, self.on_manage_export, m.study)
        on(m.delete.click, self.on_manage_delete, [m.study, m.confirm])
        on(m.find.click, self.on_manage_items, [m.study, m.search, m.state])
        on(m.search.submit, self.on_manage_items, [m.study, m.search, m.state])
        on(m.items.select, self.on_manage_item_select, None)
        on(m.remove.click, self.on_manage_remove, [m.chosen, m.study, m.search, m.state])
        on(m.restore.click, self.on_manage_restore, [m.chosen, m.study, m.search, m.state])
