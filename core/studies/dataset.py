"""A study as a dataset folder: one Parquet file per table, study.json, the agreement report and a card.

The folder is what `python -m core publish` uploads to a Hugging Face dataset repo, and what
core.studies.reopen reads back into a new study. Every file is rewritten whole from the database, so
publishing again replaces the files (a new commit on the Hub) and never appends rows twice.

Tables (Parquet, written with pyarrow so nullable integers stay integers):
  items.parquet          one row per item: its text (one column per field tag, and `fields` as JSON)
  labels.parquet         one row per label (annotation): scores before/after the reveal, spans, comment, timing
  label_edits.parquet    the labels' edit history: one row per later change (old -> new per attribute)
  judgments.parquet      the judge's stored judgments of the items, in every judge run: raw output, parsed parts,
                         spans, distribution and the full reproducibility record (repro)
  adjudications.parquet  reviewers' adjudicated labels, every decision (the newest per item counts); only if any
  judge_runs.parquet     the study's judge runs (core.studies.runs): position (1: the default run), name, config
  run_judgments.parquet  each run's judgment of each item (second_order: a pairwise item's (B, A) order); only if any
audit.json holds the study's newest robustness audit (its summary block), when it was audited.
JSON-valued columns (spans, highlights, distribution, repro, ...) are JSON text, as in the CSV export.
People are pseudonymised (annotator-1, annotator-2, ... in order of their first label; reviewer-1, ... for
those who adjudicated; owner for the study's creator) unless `real_names` is chosen.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts import UserRow
from core.judgments import JudgmentRow
from core.studies import reports
from core.studies.rows import AdjudicationRow, AnnotationEditRow, AnnotationRow, ItemRow, StudyRow
from core.studies.runs import JudgeRunRow, RunJudgmentRow, RunSecondOrderRow

FORMAT = "glider-study/1"  # study.json's "format": what core.studies.reopen knows how to read
ITEMS, LABELS, EDITS, JUDGMENTS, ADJUDICATIONS = "items", "labels", "label_edits", "judgments", "adjudications"
JUDGE_RUNS, RUN_JUDGMENTS = "judge_runs", "run_judgments"  # every judge run of the study (core.studies.runs)
STUDY_FILE, REPORT_FILE, REPORT_HTML_FILE, CARD_FILE = "study.json", "report.json", "report.html", "README.md"
AUDIT_FILE = "audit.json"  # the study's newest robustness audit, its summary block (core.studies.audits)

# Each table's columns and their Arrow type names ("json": JSON text; "time": UTC timestamp).
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    ITEMS: (("item_id", "int"), ("external_id", "str"), ("fields", "json"), ("judgment_id", "int"),
            ("created_at", "time"), ("removed_at", "time")),
    LABELS: (("annotation_id", "int"), ("item_id", "int"), ("annotator", "str"), ("score", "int"),
             ("score_before_reveal", "int"), ("score_after_reveal", "int"), ("spans", "json"), ("comment", "str"),
             ("seconds", "float"), ("created_at", "time"), ("updated_at", "time"), ("choice", "str"),
             ("shown_order", "str")),  # choice, shown_order: pairwise studies only (core.studies.pairs)
    EDITS: (("edit_id", "int"), ("annotation_id", "int"), ("editor", "str"), ("at", "time"), ("changes", "json")),
    JUDGMENTS: (("judgment_id", "int"), ("item_id", "int"), ("created_at", "time"), ("model_id", "str"),
                ("backend", "str"), ("prompt_sha256", "str"), ("fields", "json"), ("pass_criteria", "str"),
                ("rubric", "str"), ("scale_min", "int"), ("scale_max", "int"), ("raw_output", "str"),
                ("reasoning", "str"), ("highlights", "json"), ("score", "int"), ("status", "str"),
                ("problems", "json"), ("spans", "json"), ("ungrounded", "json"), ("distribution", "json"),
                ("distribution_mass", "float"), ("expected_score", "float"), ("confidence", "float"),
                ("prompt_tokens", "int"), ("completion_tokens", "int"), ("timings", "json"), ("warnings", "json"),
                ("repro", "json")),
    ADJUDICATIONS: (("adjudication_id", "int"), ("item_id", "int"), ("reviewer", "str"), ("score", "int"),
                    ("note", "str"), ("created_at", "time")),
    JUDGE_RUNS: (("run_id", "int"), ("position", "int"), ("name", "str"), ("config", "json"), ("created_at", "time"),
                 ("created_by", "str")),
    # second_order: the run's (B, A) order judgment of a pairwise item (run_second_orders); else its judgment.
    RUN_JUDGMENTS: (("run_id", "int"), ("item_id", "int"), ("judgment_id", "int"), ("second_order", "bool"),
                    ("attached_at", "time")),
}
OPTIONAL = (ADJUDICATIONS, JUDGE_RUNS, RUN_JUDGMENTS)  # written only when they have rows
# The judgment columns copied from JudgmentRow as they are (the others are renamed above).
_JUDGMENT_COPIED = tuple(name for name, _ in COLUMNS[JUDGMENTS] if name not in ("judgment_id", "item_id"))


@dataclass(frozen=True)
class StudyTables:
    """A study read from the database as plain rows (JSON columns still as values), ready to write."""

    study: dict[str, Any]  # study.json without the file list
    tables: dict[str, list[dict[str, Any]]]
    people: dict[str, str]  # username -> the name in the dataset (themselves with real_names)
    ratings: list[dict[str, Any]]  # core.agreement's input, names as in the dataset, removed items left out


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else (value if value.tzinfo else value.replace(tzinfo=UTC))


def _pseudonyms(session: Session, study: StudyRow, real_names: bool) -> dict[int, str]:
    """user id -> the name shown in the dataset: annotators in order of their first label, then everyone else."""
    names: dict[int, str] = {}
    annotators = session.execute(select(AnnotationRow.annotator_id).where(AnnotationRow.study_id == study.id)
                                 .order_by(AnnotationRow.id)).scalars()
    for user_id in annotators:
        names.setdefault(user_id, f"annotator-{len(names) + 1}")
    # Labels are only ever edited by their own annotator, so the other people are reviewers and the study's owner.
    reviewers = session.execute(select(AdjudicationRow.reviewer_id).where(AdjudicationRow.study_id == study.id)
                                .order_by(AdjudicationRow.id)).scalars()
    count = 0
    for user_id in reviewers:
        if user_id not in names:
            count += 1
            names[user_id] = f"reviewer-{count}"
    names.setdefault(study.created_by_id, "owner")
    editors = session.execute(select(AnnotationEditRow.editor_id).join(
        AnnotationRow, AnnotationRow.id == AnnotationEditRow.annotation_id)
        .where(AnnotationRow.study_id == study.id)).scalars()
    for user_id in editors:  # only if an older version let someone else edit a label
        names.setdefault(user_id, f"editor-{user_id}")
    graders = [user_id for user_id in session.execute(select(JudgeRunRow.created_by_id).where(
        JudgeRunRow.study_id == study.id).order_by(JudgeRunRow.position)).scalars() if user_id is not None]
    for user_id in graders:  # an admin who made a judge run without owning the study
        if user_id not in names:
            names[user_id] = f"grader-{sum(name.startswith('grader-') for name in names.values()) + 1}"
    if real_names:
        usernames = dict(session.execute(select(UserRow.id, UserRow.username).where(UserRow.id.in_(names))).all())
        names = {user_id: usernames.get(user_id, name) for user_id, name in names.items()}
    return names


def read_tables(session: Session, study: StudyRow, *, real_names: bool = False) -> StudyTables:
    """The study's tables as rows, read in `session` (the caller has checked that the actor is an admin)."""
    names = _pseudonyms(session, study, real_names)
    items = list(session.scalars(select(ItemRow).where(ItemRow.study_id == study.id).order_by(ItemRow.id)))
    item_rows = [{"item_id": item.id, "external_id": item.external_id, "fields": [list(p) for p in item.fields],
                  "judgment_id": item.judgment_id, "created_at": _utc(item.created_at),
                  "removed_at": _utc(item.removed_at)} for item in items]
    labels = [{"annotation_id": row.id, "item_id": row.item_id, "annotator": names[row.annotator_id],
               "score": row.score, "score_before_reveal": row.score_before_reveal,
               "score_after_reveal": row.score_after_reveal, "spans": row.spans, "comment": row.comment,
               "seconds": row.seconds, "created_at": _utc(row.created_at), "updated_at": _utc(row.updated_at),
               "choice": row.choice, "shown_order": row.shown_order}
              for row in session.scalars(select(AnnotationRow).where(AnnotationRow.study_id == study.id)
                                         .order_by(AnnotationRow.id))]
    edits = [{"edit_id": row.id, "annotation_id": row.annotation_id, "editor": names[row.editor_id],
              "at": _utc(row.at), "changes": row.changes}
             for row in session.scalars(select(AnnotationEditRow).join(
                 AnnotationRow, AnnotationRow.id == AnnotationEditRow.annotation_id)
                 .where(AnnotationRow.study_id == study.id).order_by(AnnotationEditRow.id))]
    runs = list(session.scalars(select(JudgeRunRow).where(JudgeRunRow.study_id == study.id)
                                .order_by(JudgeRunRow.position)))
    run_rows = [{"run_id": run.id, "position": run.position, "name": run.name, "config": dict(run.config),
                 "created_at": _utc(run.created_at),
                 "created_by": None if run.created_by_id is None else names[run.created_by_id]} for run in runs]
    linked: list[dict[str, Any]] = []
    for table, second in ((RunJudgmentRow, False), (RunSecondOrderRow, True)):
        found = session.execute(select(table.run_id, table.item_id, table.judgment_id, table.attached_at)
                                .where(table.run_id.in_([run.id for run in runs]))
                                .order_by(table.run_id, table.item_id)).all()
        linked += [{"run_id": run_id, "item_id": item_id, "judgment_id": judgment_id, "second_order": second,
                    "attached_at": _utc(attached_at)} for run_id, item_id, judgment_id, attached_at in found]
    judged = {item.judgment_id: item.id for item in items if item.judgment_id is not None}
    judged.update({row["judgment_id"]: row["item_id"] for row in linked})  # every run's, the first's included
    judgments = []
    for row in session.scalars(select(JudgmentRow).where(JudgmentRow.id.in_(judged)).order_by(JudgmentRow.id)):
        values = {name: getattr(row, name) for name in _JUDGMENT_COPIED}
        values["created_at"] = _utc(row.created_at)
        judgments.append({"judgment_id": row.id, "item_id": judged[row.id], **values})
    adjudications = [{"adjudication_id": row.id, "item_id": row.item_id, "reviewer": names[row.reviewer_id],
                      "score": row.score, "note": row.note, "created_at": _utc(row.created_at)}
                     for row in session.scalars(select(AdjudicationRow).where(AdjudicationRow.study_id == study.id)
                                                .order_by(AdjudicationRow.id))]
    renamed = {username: names[user_id] for user_id, username in session.execute(
        select(UserRow.id, UserRow.username).where(UserRow.id.in_(names))).all()}
    lines = [line for line in reports.report_lines(session, study) if line.item.removed_at is None]
    ratings = [{**row, "annotator": renamed.get(row["annotator"], row["annotator"])}
               for row in reports.ratings(study, lines)]
    meta = {
        "format": FORMAT, "study_id": study.id, "name": study.name, "description": study.description,
        "guidelines": study.guidelines or "", "pass_criteria": study.pass_criteria, "rubric": study.rubric,
        "scale": [study.scale_min, study.scale_max], "tags": list(study.tags), "overlap_target": study.overlap_target,
        "blind": bool(study.blind), "judge_settings": dict(study.judge_settings), "assignment": study.assignment,
        "split_items": bool(study.split_items), "created_by": names[study.created_by_id],
        "mode": study.mode or "single", "allow_tie": bool(study.allow_tie),
        "created_at": study.created_at.replace(tzinfo=study.created_at.tzinfo or UTC).isoformat(),
        "real_names": bool(real_names),
        "annotators": list(dict.fromkeys(label["annotator"] for label in labels)),  # in order of first label
    }
    tables: dict[str, list[dict[str, Any]]] = {ITEMS: item_rows, LABELS: labels, EDITS: edits,
                                               JUDGMENTS: judgments, ADJUDICATIONS: adjudications,
                                               JUDGE_RUNS: run_rows, RUN_JUDGMENTS: linked}
    return StudyTables(meta, tables, renamed, ratings)


def field_columns(tags: list[str]) -> dict[str, str]:
    """tag -> its column in items.parquet ("field TAG" when the tag is one of the table's own column names)."""
    own = {name for name, _ in COLUMNS[ITEMS]}
    return {tag: f"field {tag}" if tag in own else tag for tag in tags}


def _arrow_table(name: str, rows: list[dict[str, Any]], extra: Mapping[str, str] | None = None) -> Any:
    import pyarrow as pa  # heavy; only needed here

    types = {"int": pa.int64(), "str": pa.string(), "json": pa.string(), "float": pa.float64(),
             "time": pa.timestamp("us", tz="UTC"), "bool": pa.bool_()}
    columns = [*COLUMNS[name], *((column, "str") for column in (extra or {}).values())]
    data = {}
    for column, kind in columns:
        values = [row.get(column) for row in rows]
        if kind == "json":
            values = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
        data[column] = pa.array(values, type=types[kind])
    return pa.table(data)


def write_folder(tables: StudyTables, folder: str | Path, *, report: Mapping[str, Any] | None,
                 report_html: str | None, card: str, audit: Mapping[str, Any] | None = None) -> list[Path]:
    """Write the dataset folder (created if needed; the files are replaced whole); the paths written."""
    import pyarrow.parquet as pq  # heavy; only needed here

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    columns = field_columns(list(tables.study["tags"]))
    for name, rows in tables.tables.items():
        if name in OPTIONAL and not rows:
            continue  # "if any": most studies have no adjudications; an ungraded study has no judge run
        if name == ITEMS:
            rows = [{**row, **{columns[tag]: text for tag, text in row["fields"]}} for row in rows]
        path = folder / f"{name}.parquet"
        pq.write_table(_arrow_table(name, rows, columns if name == ITEMS else None), path)
        written.append(path)
    files = [path.name for path in written]
    if report is not None:
        (folder / REPORT_FILE).write_text(json.dumps(reports.jsonable(report), ensure_ascii=False, indent=2),
                                          encoding="utf-8")
        files.append(REPORT_FILE)
    if report_html is not None:
        (folder / REPORT_HTML_FILE).write_text(report_html, encoding="utf-8")
        files.append(REPORT_HTML_FILE)
    if audit is not None:
        (folder / AUDIT_FILE).write_text(json.dumps(reports.jsonable(audit), ensure_ascii=False, indent=2),
                                         encoding="utf-8")
        files.append(AUDIT_FILE)
    meta = {**tables.study, "field_columns": columns, "files": files}
    (folder / STUDY_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    (folder / CARD_FILE).write_text(card, encoding="utf-8")
    return [*(folder / name for name in files), folder / STUDY_FILE, folder / CARD_FILE]


def read_folder(folder: str | Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """(study.json, tables) of a dataset folder: rows as written (JSON columns parsed, times as UTC datetimes)."""
    import pyarrow.parquet as pq  # heavy; only needed here

    folder = Path(folder)
    meta = json.loads((folder / STUDY_FILE).read_text(encoding="utf-8"))
    tables: dict[str, list[dict[str, Any]]] = {}
    for name, columns in COLUMNS.items():
        path = folder / f"{name}.parquet"
        rows = pq.read_table(path).to_pylist() if path.exists() else []
        json_columns = [column for column, kind in columns if kind == "json"]
        tables[name] = [{column: (json.loads(row[column]) if column in json_columns and row[column] is not None
                                  else row[column]) for column, _ in columns} for row in rows]
    return meta, tables


ReportHtml = Callable[[Mapping[str, Any]], str]  # the web layer's HTML report (charts are webapp's), if any
