"""The admins' item browser: a study's items with their labelling state, found by text, id and state; one item
opened with every label, its edit history and the judge's verdict.

Reached through Studies.admin (core.studies.admin), which checks that the caller is an admin. The list comes
from the same single joined query as the reports (core.studies.reports.report_lines).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts import UserRow
from core.errors import StudyInputError
from core.judgments import JudgmentRow
from core.parse import FAILED as PARSE_FAILED
from core.studies.reports import ReportLine, report_lines
from core.studies.rows import AnnotationEditRow, AnnotationRow, ItemRow, StudyRow, to_annotation, to_edit, to_item
from core.studies.types import Annotation, AnnotationEdit, Item

UNLABELLED, PARTLY, COMPLETE = "unlabelled", "partly labelled", "complete"
JUDGE_FAILED, HUMANS_DISAGREE, JUDGE_DISAGREES, REMOVED = (
    "judge failed to parse", "humans disagree", "human and judge disagree", "removed")
# The states an item can be filtered by, in the order the UI offers them.
STATES = (UNLABELLED, PARTLY, COMPLETE, JUDGE_FAILED, HUMANS_DISAGREE, JUDGE_DISAGREES, REMOVED)
PREVIEW_CHARS = 160


@dataclass(frozen=True)
class ItemSummary:
    """One row of the item browser."""

    id: int
    external_id: str | None
    preview: str  # the item's texts, joined and cut to PREVIEW_CHARS
    labels: int
    scores: tuple[int, ...]  # the human scores the report uses (before the reveal in a blind study)
    human_median: float | None
    judge_score: int | None  # None: not graded, or the answer failed to parse
    judge_status: str | None  # ok | repaired | failed; None: not graded
    removed: bool
    states: frozenset[str]


@dataclass(frozen=True)
class LabelDetail:
    annotation: Annotation
    edits: tuple[AnnotationEdit, ...]  # oldest first


@dataclass(frozen=True)
class ItemDetail:
    """One item as an admin opens it."""

    item: Item
    overlap_target: int
    blind: bool
    labels: tuple[LabelDetail, ...]  # by annotator name
    judgment_id: int | None
    judge_score: int | None
    judge_status: str | None
    judge_reasoning: str | None
    states: frozenset[str]


def check_state(state: str | None) -> str | None:
    """The state to filter by (None or "" or "all": every item); StudyInputError naming the known ones."""
    if state in (None, "", "all"):
        return None
    if state not in STATES:
        raise StudyInputError(f"Unknown item state {state!r}; use one of: {', '.join(STATES)}.")
    return state


def _states(n_labels: int, overlap: int, scores: Sequence[int], judge_score: int | None,
            judge_status: str | None, removed: bool) -> frozenset[str]:
    states = {UNLABELLED if n_labels == 0 else COMPLETE if n_labels >= overlap else PARTLY}
    if judge_status == PARSE_FAILED:
        states.add(JUDGE_FAILED)
    if len(set(scores)) > 1:
        states.add(HUMANS_DISAGREE)
    if scores and judge_score is not None and judge_status != PARSE_FAILED and statistics.median(scores) != judge_score:
        states.add(JUDGE_DISAGREES)
    if removed:
        states.add(REMOVED)
    return frozenset(states)


def _headline(label: AnnotationRow, blind: bool) -> int:
    """The score the report uses: in a blind study the one given before the verdict was shown."""
    return label.score_before_reveal if blind else label.score


def _matches(item: ItemRow, needle: str) -> bool:
    if not needle:
        return True
    bare = needle.lstrip("#")
    if bare.isdigit() and int(bare) == item.id:
        return True
    texts = [text for _, text in item.fields] + ([item.external_id] if item.external_id else [])
    return any(needle in text.casefold() for text in texts)


def browse(session: Session, study: StudyRow, *, state: str | None = None, search: str = "") -> list[ItemSummary]:
    """The study's items in the order they were added, with their states; `state` and `search` narrow them.

    `search` matches (case-insensitively) any field text or the external id, or "#12" / "12" the item id.
    Filtering by a state other than "removed" shows only items still in the study.
    """
    wanted = check_state(state)
    if not isinstance(search, str):
        raise StudyInputError("The search must be text.")
    needle = search.strip().casefold()
    grouped: dict[int, list[ReportLine]] = {}
    for line in report_lines(session, study):
        grouped.setdefault(line.item.id, []).append(line)
    found: list[ItemSummary] = []
    for lines in grouped.values():
        item, judgment = lines[0].item, lines[0].judgment
        if not _matches(item, needle):
            continue
        scores = tuple(_headline(line.label, bool(study.blind)) for line in lines if line.label is not None)
        judge_status = judgment.status if judgment is not None else None
        judge_score = judgment.score if judgment is not None and judge_status != PARSE_FAILED else None
        removed = item.removed_at is not None
        states = _states(len(scores), study.overlap_target, scores, judge_score, judge_status, removed)
        if wanted is not None and (wanted not in states or (removed and wanted != REMOVED)):
            continue
        preview = " \u00b7 ".join(text for _, text in item.fields if text)
        found.append(ItemSummary(
            id=item.id, external_id=item.external_id, preview=preview[:PREVIEW_CHARS], labels=len(scores),
            scores=scores, human_median=float(statistics.median(scores)) if scores else None,
            judge_score=judge_score, judge_status=judge_status, removed=removed, states=states))
    return found


def detail(session: Session, item_id: int) -> ItemDetail:
    """One item with its labels (by annotator name), each label's edits, and the judge's stored verdict."""
    item = session.get(ItemRow, item_id)
    if item is None:
        raise StudyInputError(f"There is no item with id {item_id!r}.")
    study = session.get(StudyRow, item.study_id)
    assert study is not None  # items belong to a study (foreign key)
    found = session.execute(select(AnnotationRow, UserRow.username)
                            .join(UserRow, UserRow.id == AnnotationRow.annotator_id)
                            .where(AnnotationRow.item_id == item.id)
                            .order_by(UserRow.username, AnnotationRow.id)).all()
    edits: dict[int, list[AnnotationEdit]] = {}
    for edit, editor in session.execute(
            select(AnnotationEditRow, UserRow.username).join(UserRow, UserRow.id == AnnotationEditRow.editor_id)
            .where(AnnotationEditRow.annotation_id.in_([label.id for label, _ in found]))
            .order_by(AnnotationEditRow.at, AnnotationEditRow.id)):
        edits.setdefault(edit.annotation_id, []).append(to_edit(edit, editor))
    labels = tuple(LabelDetail(to_annotation(label, name), tuple(edits.get(label.id, ()))) for label, name in found)
    judgment = session.get(JudgmentRow, item.judgment_id) if item.judgment_id is not None else None
    status = judgment.status if judgment is not None else None
    score = judgment.score if judgment is not None and status != PARSE_FAILED else None
    scores = [_headline(label, bool(study.blind)) for label, _ in found]
    return ItemDetail(
        item=to_item(item), overlap_target=study.overlap_target, blind=bool(study.blind), labels=labels,
        judgment_id=judgment.id if judgment is not None else None, judge_score=score, judge_status=status,
        judge_reasoning=judgment.reasoning if judgment is not None else None,
        states=_states(len(scores), study.overlap_target, scores, score, status, item.removed_at is not None))
