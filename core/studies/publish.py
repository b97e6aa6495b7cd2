"""Publish a study to the Hugging Face Hub as a dataset, and reopen a published study as a new study.

export_study writes the dataset folder (core.studies.dataset: Parquet tables, study.json, report.json,
optionally report.html, audit.json (the newest robustness audit's summary, core.studies.audits), and the card
README.md) from ONE read transaction in which the actor is checked to
be an admin. publish_study exports into a fresh temporary folder and uploads it (core.hub_dataset); each
publish is one new commit replacing the files whole, so publishing again never duplicates rows.
reopen_study reads such a folder (or a repo snapshot) back into a new study with its items, judgments (every judge
run's), labels, edit history and adjudications; the people are matched by name, and names the database does not
know become deactivated accounts (they cannot sign in; an admin may reactivate them in People).
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core.accounts import ANNOTATOR, User, UserRow, check_username, find_user, hash_password, require_admin
from core.errors import StudyInputError
from core.hub_dataset import Published, download_dataset, upload_dataset_folder
from core.judgments import JudgmentRow
from core.store import Store
from core.studies import dataset, pairs, runs
from core.studies.audits import StudyAuditRow, with_names
from core.studies.card import dataset_card
from core.studies.checks import check_id
from core.studies.dataset import ReportHtml
from core.studies.pair_reports import pair_dataset_report
from core.studies.queue import queue_key
from core.studies.report_context import context_in
from core.studies.rows import AdjudicationRow, AnnotationEditRow, AnnotationRow, ItemRow, StudyRow, to_study
from core.studies.types import Study


@dataclass(frozen=True)
class Exported:
    """A written dataset folder: its files, the row count of each table, and the report (None: no labels)."""

    folder: Path
    files: list[Path]
    counts: dict[str, int]
    report: dict[str, Any] | None


def export_study(store: Store, actor: User, study_id: int, folder: str | Path, *, real_names: bool = False,
                 repo_id: str | None = None, report_html: ReportHtml | None = None,
                 n_resamples: int = 1000) -> Exported:
    """Write the study's dataset folder (admins only; PermissionDenied otherwise). `report_html(report)`, given
    by the web app, adds report.html; the report itself uses the names shown in the dataset."""
    from core.agreement import agreement_report  # scipy/sklearn: only here

    wanted = check_id(study_id, "study")
    with store.session("read") as session:
        require_admin(session, actor, "publish a study")
        study = session.get(StudyRow, wanted)
        if study is None:
            raise StudyInputError(f"There is no study with id {study_id!r}.")
        tables = dataset.read_tables(session, study, real_names=real_names)
        context = context_in(session, study.id)  # the first run (the tables' judgments) and the newest audit
    if "audit" in context:  # who ran it, named as the dataset names people
        context["audit"] = with_names(context["audit"], tables.people)
    audit = context.get("audit")
    labelled = [row for row in tables.ratings if row["annotator"] is not None]
    report: dict[str, Any] | None
    if tables.study.get("mode") == pairs.PAIRWISE:  # choices and verdicts, not scores (core.studies.pair_reports)
        found = pair_dataset_report(store, actor, tables.study, tables.tables, n_resamples=n_resamples)
        report = None if found is None else {**found, **context}
    else:
        report = ({**agreement_report(tables.ratings, tuple(tables.study["scale"]), blind=tables.study["blind"],
                                      n_resamples=n_resamples), **context} if labelled else None)
    html = report_html(report) if report is not None and report_html is not None else None
    counts = {name: len(rows) for name, rows in tables.tables.items()}
    names = [f"{name}.parquet" for name, rows in tables.tables.items() if rows or name not in dataset.OPTIONAL]
    names += [dataset.REPORT_FILE] * (report is not None) + [dataset.REPORT_HTML_FILE] * (html is not None)
    names += [dataset.AUDIT_FILE] * (audit is not None)
    card = dataset_card(tables.study, counts, report, repo_id=repo_id, files=names, audit=audit)
    files = dataset.write_folder(tables, folder, report=report, report_html=html, card=card, audit=audit)
    return Exported(Path(folder), files, counts, report)


def publish_study(store: Store, actor: User, study_id: int, repo_id: str, *, private: bool = False,
                  real_names: bool = False, token: str | None = None, report_html: ReportHtml | None = None,
                  endpoint: str | None = None) -> tuple[Published, Exported]:
    """Export the study and upload it to the dataset repo `repo_id` as one commit (admins only).

    `token`: the signed-in user's OAuth token on a Space; None uses HF_TOKEN (or a saved login).
    """
    from core.hub_dataset import check_repo_id

    repo_id = check_repo_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="glider-publish-") as folder:
        exported = export_study(store, actor, study_id, folder, real_names=real_names, repo_id=repo_id,
                                report_html=report_html)
        n = exported.counts
        message = (f"Publish study #{study_id} from GLIDER Studio: {n['items']} items, {n['labels']} labels, "
                   f"{n['judgments']} judgments")
        published = upload_dataset_folder(folder, repo_id, private=private, token=token, message=message,
                                          endpoint=endpoint)
    return published, exported


# --- reopening -------------------------------------------------------------------------------------


def _person(session: Session, name: str, known: dict[str, int]) -> int:
    """The id of the user named `name`, created deactivated (no usable password) when there is none."""
    if name not in known:
        person = find_user(session, name)
        found = None if person is None else person.id
        if found is None:
            row = UserRow(username=check_username(name), role=ANNOTATOR,
                          password_hash=hash_password(secrets.token_urlsafe(24), n=2**10),
                          created_at=datetime.now(UTC), can_grade=False, active=False, must_change_password=True)
            session.add(row)
            session.flush()
            found = row.id
        known[name] = found
    return known[name]


def _study_row(meta: Mapping[str, Any], me_id: int, name: str | None) -> StudyRow:
    now = datetime.now(UTC)
    return StudyRow(
        name=(name or f"{meta['name']} (reopened)")[:200], description=meta.get("description") or "",
        pass_criteria=meta["pass_criteria"], rubric=meta["rubric"], scale_min=int(meta["scale"][0]),
        scale_max=int(meta["scale"][1]), tags=list(meta["tags"]), overlap_target=int(meta["overlap_target"]),
        blind=bool(meta["blind"]), judge_settings=dict(meta.get("judge_settings") or {}), created_by_id=me_id,
        created_at=now, updated_at=now, guidelines=meta.get("guidelines") or "",
        assignment="open", split_items=False,  # the chosen annotators are this database's people: choose again
        mode=meta.get("mode") or "single", allow_tie=bool(meta.get("allow_tie", False)),  # older folders: single
    )


def _reopen_runs(session: Session, study_id: int, tables: Mapping[str, list[dict[str, Any]]], items: dict[int, int],
                 judgments: dict[int, int], people: dict[str, int]) -> dict[int, int]:
    """The published judge runs, in their order, with every run's judgments (a pairwise item's second order too)."""
    made: dict[int, int] = {}
    for row in sorted(tables[dataset.JUDGE_RUNS], key=lambda run: run["position"]):
        run = runs.JudgeRunRow(study_id=study_id, position=row["position"], name=row["name"],
                               config=runs.check_config(row["config"]), created_at=row["created_at"],
                               created_by_id=_person(session, row["created_by"], people) if row["created_by"]
                               else None)
        session.add(run)
        session.flush()
        made[row["run_id"]] = run.id
    for row in tables[dataset.RUN_JUDGMENTS]:
        kind = runs.RunSecondOrderRow if row["second_order"] else runs.RunJudgmentRow
        session.add(kind(run_id=made[row["run_id"]], item_id=items[row["item_id"]],
                         judgment_id=judgments[row["judgment_id"]], attached_at=row["attached_at"]))
    return made  # published run id -> the new run's id


def _reopen_audit(session: Session, study_id: int, audit: Mapping[str, Any], items: dict[int, int],
                  made: dict[int, int], people: dict[str, int]) -> None:
    """The published newest audit (audit.json) kept with the new study, its item and judge run ids renumbered."""
    stored = dict(audit.get("stored") or {})
    summary = {key: value for key, value in audit.items() if key != "stored"}
    summary["rows"] = [{**row, **{key: [{**entry, "item_id": items.get(entry.get("item_id"), entry.get("item_id"))}
                                        for entry in row.get(key) or []] for key in ("changed", "errors")}}
                       for row in summary.get("rows") or []]
    by = stored.get("by")
    session.add(StudyAuditRow(
        study_id=study_id, label=str(stored.get("label") or "reopened")[:200],
        started_at=datetime.fromisoformat(str(stored.get("started_at") or datetime.now(UTC).isoformat())),
        created_by_id=_person(session, str(by), people) if by else None, summary=summary,
        runs={name: made[run] for name, run in (stored.get("judge_runs") or {}).items() if run in made},
        item_ids=[items[item] for item in stored.get("item_ids") or [] if item in items],
        seconds=stored.get("seconds")))


def reopen_study(store: Store, actor: User, source: str | Path, *, name: str | None = None,
                 token: str | None = None, endpoint: str | None = None) -> Study:
    """A new study from a published one (admins only): `source` is a dataset folder, or a repo id (owner/name)
    downloaded from the Hub first. Items, judgments, labels with their edit history and adjudications all come
    back, under new ids; StudyInputError when the folder is not a published GLIDER study."""
    folder = Path(source)
    if not (folder / dataset.STUDY_FILE).exists():
        if isinstance(source, str) and "/" in source and not folder.exists():
            with store.session("read") as session:  # refuse before downloading anything
                require_admin(session, actor, "reopen a study")
            folder = download_dataset(source, token=token, endpoint=endpoint)
        if not (folder / dataset.STUDY_FILE).exists():
            raise StudyInputError(f"{source} is not a published GLIDER study (it has no {dataset.STUDY_FILE}).")
    try:
        meta, tables = dataset.read_folder(folder)
        audit_file = folder / dataset.AUDIT_FILE  # the newest audit, when the study had one
        audit = json.loads(audit_file.read_text(encoding="utf-8")) if audit_file.exists() else None
    except (OSError, ValueError, KeyError) as error:
        raise StudyInputError(f"Could not read the published study in {source}: {error}") from error
    if meta.get("format") != dataset.FORMAT:
        raise StudyInputError(f"{source} holds a study in format {meta.get('format')!r}; this version reads "
                              f"{dataset.FORMAT!r}.")

    def work(session: Session) -> Study:
        me = require_admin(session, actor, "reopen a study")
        study = _study_row(meta, me.id, name)
        session.add(study)
        session.flush()
        judgments: dict[int, int] = {}
        for row in tables[dataset.JUDGMENTS]:
            values = {key: value for key, value in row.items() if key not in ("judgment_id", "item_id")}
            fields = values["fields"]
            values["preview"] = next((text for tag, text in fields if tag == "MODEL OUTPUT"),
                                     next((text for _, text in fields if text), ""))[:80]
            judgment = JudgmentRow(**values)
            session.add(judgment)
            session.flush()
            judgments[row["judgment_id"]] = judgment.id
        items: dict[int, int] = {}
        for row in tables[dataset.ITEMS]:
            item = ItemRow(study_id=study.id, fields=row["fields"], external_id=row["external_id"],
                           judgment_id=judgments.get(row["judgment_id"]) if row["judgment_id"] else None,
                           order_key=0, created_at=row["created_at"], removed_at=row["removed_at"])
            session.add(item)
            session.flush()
            item.order_key = queue_key(study.id, item.id)  # the queue's order, as for items added by hand
            items[row["item_id"]] = item.id
        people: dict[str, int] = {}
        labels: dict[int, int] = {}
        for row in tables[dataset.LABELS]:
            label = AnnotationRow(study_id=study.id, item_id=items[row["item_id"]],
                                  annotator_id=_person(session, row["annotator"], people), score=row["score"],
                                  score_before_reveal=row["score_before_reveal"],
                                  score_after_reveal=row["score_after_reveal"], spans=row["spans"],
                                  comment=row["comment"], seconds=row["seconds"], created_at=row["created_at"],
                                  updated_at=row["updated_at"], choice=row.get("choice"),
                                  shown_order=row.get("shown_order"))
            session.add(label)
            session.flush()
            labels[row["annotation_id"]] = label.id
        for row in tables[dataset.EDITS]:
            session.add(AnnotationEditRow(annotation_id=labels[row["annotation_id"]],
                                          editor_id=_person(session, row["editor"], people), at=row["at"],
                                          changes=row["changes"]))
        for row in tables[dataset.ADJUDICATIONS]:
            session.add(AdjudicationRow(study_id=study.id, item_id=items[row["item_id"]],
                                        reviewer_id=_person(session, row["reviewer"], people), score=row["score"],
                                        note=row["note"], created_at=row["created_at"]))
        session.flush()
        if tables[dataset.JUDGE_RUNS]:  # every judge run, as published (core.studies.runs)
            # The published study's owner made its runs: the admin who reopens it owns the new study and them.
            owned = {**people, str(meta.get("created_by")): me.id}
            made = _reopen_runs(session, study.id, tables, items, judgments, owned)
            if audit is not None:
                _reopen_audit(session, study.id, audit, items, made, owned)
        else:  # a study published before judge runs were: the items' judgments are its first run
            runs.adopt_item_judgments(session, study.id, me.id)
        return to_study(study, me.username)

    try:
        return store.write("save a reopened study to", work)
    except KeyError as error:
        raise StudyInputError(f"The published study in {source} is inconsistent: no row with id {error}.") from error
