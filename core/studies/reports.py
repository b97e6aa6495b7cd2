"""What a study's labels add up to: rows for the agreement report, rows for export, and the export files.

Every label comes with its item, its annotator's name and the model's judgment from ONE joined query:
no per-item reads, so a report on a large study costs one round trip.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from core.accounts import User, UserRow
from core.judgments import JudgmentRow
from core.parse import FAILED as PARSE_FAILED
from core.studies import adjudications
from core.studies.adjudications import Adjudication
from core.studies.queue_order import RANDOM
from core.studies.rows import AnnotationRow, ItemRow, StudyRow
from core.studies.runs import RunJudgmentRow

if TYPE_CHECKING:
    from core.studies.service import Studies

# An export's own columns; the study's field tags go after external_id ("field TAG" when a tag clashes).
EXPORT_COLUMNS = ("study", "study_id", "item_id", "external_id", "annotation_id", "annotator", "score",
                  "score_before_reveal", "score_after_reveal", "blind", "comment", "seconds", "spans", "created_at",
                  "updated_at", "judgment_id", "model_score", "model_status", "model_reasoning", "model_highlights",
                  "model_distribution", "model_expected_score", "model_confidence", "item_removed", "adjudicated_score",
                  "adjudication_note", "adjudicated_by", "adjudicated_at", "drawn_at_random")


@dataclass(frozen=True)
class ReportJudgment:
    """The parts of the model's stored judgment a report or an export shows."""

    id: int
    score: int | None
    status: str
    reasoning: str | None
    highlights: list[str]
    spans: list[dict[str, Any]]
    distribution: dict[int, float] | None
    expected_score: float | None
    confidence: float | None = None  # the probability the judge's distribution gave its own score


@dataclass(frozen=True)
class ReportLine:
    """One label with its item, annotator and judgment; an unlabelled item has label and annotator None."""

    item: ItemRow
    label: AnnotationRow | None
    annotator: str | None
    judgment: ReportJudgment | None
    adjudication: Adjudication | None = None  # the item's current adjudicated label (core.studies.review)


def _lines(run_id: int | None = None) -> Select[Any]:
    """The one joined query; each item's judgment is items.judgment_id (the first judge run's) or run `run_id`'s."""
    query = (
        select(ItemRow, AnnotationRow, UserRow.username, JudgmentRow.id, JudgmentRow.score, JudgmentRow.status,
               JudgmentRow.reasoning, JudgmentRow.highlights, JudgmentRow.spans, JudgmentRow.distribution,
               JudgmentRow.expected_score, JudgmentRow.confidence)
        .outerjoin(AnnotationRow, AnnotationRow.item_id == ItemRow.id)
        .outerjoin(UserRow, UserRow.id == AnnotationRow.annotator_id)
    )
    if run_id is None:
        query = query.outerjoin(JudgmentRow, JudgmentRow.id == ItemRow.judgment_id)
    else:  # core.studies.runs: the run's judgment of each item
        chosen = (select(RunJudgmentRow.item_id, RunJudgmentRow.judgment_id)
                  .where(RunJudgmentRow.run_id == run_id).subquery())
        query = (query.outerjoin(chosen, chosen.c.item_id == ItemRow.id)
                 .outerjoin(JudgmentRow, JudgmentRow.id == chosen.c.judgment_id))
    # Items in the order they were added; an item's labels by annotator name.
    return query.order_by(ItemRow.id, UserRow.username, AnnotationRow.id)


_LINES = _lines()


def report_lines(session: Session, study: StudyRow, run_id: int | None = None) -> list[ReportLine]:
    """(item, label, annotator, judgment, adjudication) per label plus (item, None, None, ...) per unlabelled item;
    the judgments of the study's first judge run, or of run `run_id` (core.studies.runs)."""
    settled = adjudications.current(session, study.id)  # one more query, not one per item
    lines: list[ReportLine] = []
    query = _LINES if run_id is None else _lines(run_id)
    for item, label, annotator, judgment_id, *judgment in session.execute(query.where(ItemRow.study_id == study.id)):
        score, status, reasoning, highlights, spans, distribution, expected, confidence = judgment
        stored = None if judgment_id is None else ReportJudgment(
            id=judgment_id, score=score, status=status, reasoning=reasoning, highlights=list(highlights),
            spans=[dict(span) for span in spans],
            # JSON object keys are always strings: restore the integer score values.
            distribution={int(k): float(v) for k, v in distribution.items()} if distribution else None,
            expected_score=expected, confidence=confidence,
        )
        lines.append(ReportLine(item, label, annotator, stored, settled.get(item.id)))
    return lines


def drawn_at_random(item: ItemRow) -> bool | None:
    """Whether the queue handed the item out at random (True) or least-confident first (False); None: it was
    never handed out (core.studies.queue_order)."""
    return None if item.drawn_by is None else item.drawn_by == RANDOM


def ratings(study: StudyRow, lines: list[ReportLine]) -> list[dict[str, Any]]:
    """One row per annotation (and one per unlabelled item), the input of core.agreement.agreement_report."""
    rows: list[dict[str, Any]] = []
    for line in lines:
        item, label, judgment = line.item, line.label, line.judgment
        rows.append({
            "item_id": item.id,
            "external_id": item.external_id,
            "annotation_id": label.id if label else None,
            "annotator": line.annotator,
            "human_score": label.score if label else None,
            "model_score": judgment.score if judgment is not None and judgment.status != PARSE_FAILED else None,
            "model_status": judgment.status if judgment is not None else None,
            # core.agreement's calibration: how sure the judge was of its score (None: not graded or no distribution).
            "model_confidence": (judgment.confidence if judgment is not None and judgment.status != PARSE_FAILED
                                 else None),
            "blind": bool(study.blind),
            "human_score_before_reveal": label.score_before_reveal if label else None,
            "human_score_after_reveal": label.score_after_reveal if label else None,
            "human_spans": [dict(span) for span in label.spans] if label else [],
            "model_spans": [dict(span) for span in judgment.spans] if judgment is not None else [],
            "fields": {tag: text for tag, text in item.fields},
            # The reference of core.agreement.adjudicated_report (None: not adjudicated).
            "adjudicated_score": line.adjudication.score if line.adjudication is not None else None,
            "drawn_at_random": drawn_at_random(item),
        })
    return rows


def export_rows(study: StudyRow, lines: list[ReportLine]) -> list[dict[str, Any]]:
    """One row per annotation with the item's fields and the model's outputs (see Studies.export_rows)."""
    columns = {tag: (f"field {tag}" if tag in EXPORT_COLUMNS else tag) for tag in study.tags}
    rows: list[dict[str, Any]] = []
    for line in lines:
        item, label, judgment = line.item, line.label, line.judgment
        if label is None:
            continue
        fields = {tag: text for tag, text in item.fields}
        distribution = judgment.distribution if judgment is not None else None
        row: dict[str, Any] = {"study": study.name, "study_id": study.id, "item_id": item.id,
                               "external_id": item.external_id}
        row.update({columns[tag]: fields.get(tag, "") for tag in study.tags})
        row.update({
            "annotation_id": label.id,
            "annotator": line.annotator,
            "score": label.score,
            "score_before_reveal": label.score_before_reveal,
            "score_after_reveal": label.score_after_reveal,
            "blind": bool(study.blind),  # True: score_before_reveal was given without seeing the verdict
            "comment": label.comment,
            "seconds": label.seconds,
            "spans": json.dumps(label.spans, ensure_ascii=False),
            "created_at": label.created_at.isoformat(),
            "updated_at": label.updated_at.isoformat(),
            "judgment_id": judgment.id if judgment is not None else None,
            "model_score": judgment.score if judgment is not None else None,
            "model_status": judgment.status if judgment is not None else None,
            "model_reasoning": judgment.reasoning if judgment is not None else None,
            "model_highlights": json.dumps(judgment.highlights, ensure_ascii=False) if judgment else None,
            "model_distribution": (json.dumps({str(k): v for k, v in distribution.items()})
                                   if distribution else None),
            "model_expected_score": judgment.expected_score if judgment is not None else None,
            "model_confidence": judgment.confidence if judgment is not None else None,
            "item_removed": item.removed_at is not None,  # removed by an admin: left out of the agreement report
        })
        settled = line.adjudication  # the item's current adjudicated label, on every row of the item
        row.update({
            "adjudicated_score": settled.score if settled is not None else None,
            "adjudication_note": settled.note if settled is not None else None,
            "adjudicated_by": settled.reviewer if settled is not None else None,
            "adjudicated_at": settled.at.isoformat() if settled is not None else None,
            "drawn_at_random": drawn_at_random(item),  # core.agreement.sampling
        })
        if study.mode == "pairwise":  # core.studies.pairs: the choice in the item's terms and the sides shown
            row.update({"choice": label.choice, "shown_order": label.shown_order})
        rows.append(row)
    return rows


def jsonable(value: Any) -> Any:
    """A value (datetimes, tuples, dataclasses' dicts ...) turned into what json.dumps accepts."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def write_exports(studies: Studies, actor: User, study_id: int, report: Mapping[str, Any],
                  folder: str | Path, run: int | str | None = None) -> list[Path]:
    """Write the study's labels and its agreement report into `folder`; the paths, in this order:

    study-N-annotations.csv and study-N-annotations.jsonl (Studies.export_rows: one row per label, read
    back as they are by `python -m core agreement`; the model columns are judge run `run`'s, None: the first
    run's), and study-N-report.json (`report`, from core.agreement.agreement_report). Admins only
    (PermissionDenied otherwise); the folder must exist.
    """
    import pandas as pd  # heavy; only needed here

    rows = [jsonable(row) for row in studies.export_rows(actor, study_id, run=run)]
    flat = [{key: json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
             for key, value in row.items()} for row in rows]
    folder, stem = Path(folder), f"study-{study_id}"
    paths = [folder / f"{stem}-annotations.csv", folder / f"{stem}-annotations.jsonl", folder / f"{stem}-report.json"]
    pd.DataFrame(flat).to_csv(paths[0], index=False)
    paths[1].write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    paths[2].write_text(json.dumps(jsonable(report), ensure_ascii=False, indent=2), encoding="utf-8")
    return paths
