"""Review and adjudication: triage a study's disagreements and settle an item's label (reviewers and admins).

The triage list ranks a study's labelled items by how much the annotators disagree among themselves (the
spread of their scores) or by how far the human consensus is from the judge (|consensus - judge|, the
judge's confidence in its own score breaking ties: confident-and-wrong first). A reviewer then records an
adjudicated label with a note; each decision is a new row (core.studies.adjudications), so the history keeps
who decided what and when, and no annotator's own label ever changes.

Which human score counts: the one the agreement report's headline uses (core.agreement), i.e. in a blind
study the score given BEFORE the judge's verdict was shown, otherwise the current score.

Blindness holds for reviewers too: a reviewer (not an admin) also labels, so in a blind study the review shows
them only items they have labelled already or that have all their k labels (the queue offers them no more);
an item they may still label stays out of their view, its verdict with it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

from sqlalchemy.orm import Session

from core.accounts import ADMIN, REVIEWER, Me, User, signed_in
from core.errors import PermissionDenied, StudyInputError
from core.parse import FAILED as PARSE_FAILED
from core.store import Store
from core.studies import adjudications, reports
from core.studies.adjudications import Adjudication
from core.studies.checks import check_score
from core.studies.rows import AdjudicationRow, StudyRow, item_row, study_row

T = TypeVar("T")
Sort = Literal["humans", "judge"]
SORTS: tuple[Sort, ...] = ("judge", "humans")
MAX_NOTE_LENGTH = 10_000


@dataclass(frozen=True)
class ReviewLabel:
    """One annotator's label as the reviewer sees it."""

    annotation_id: int
    annotator: str
    score: int  # the score that counts (before the reveal in a blind study, else the current one)
    score_before_reveal: int
    score_after_reveal: int | None
    current_score: int  # after the reveal and later edits
    comment: str


@dataclass(frozen=True)
class ReviewItem:
    """One labelled item of the triage list, with what makes it worth (or not worth) a reviewer's time."""

    item_id: int
    study_id: int
    external_id: str | None
    fields: dict[str, str]
    labels: tuple[ReviewLabel, ...]
    spread: int  # highest minus lowest human score
    distinct: int  # how many different human scores
    # The median human score (None without labels); of an even count, the two middle ones averaged, halves up.
    consensus: int | None
    judgment_id: int | None
    judge_score: int | None  # None: not graded, or the judge's answer failed to parse
    judge_status: str | None
    judge_confidence: float | None  # the probability the judge gave its own score (None without a distribution)
    delta: int | None  # |consensus - judge_score|
    adjudication: Adjudication | None  # the current adjudicated label, if any


def require_reviewer(session: Session, actor: User, doing: str) -> Me:
    """The actor, if they may review now (reviewers and admins); PermissionDenied otherwise."""
    me = signed_in(session, actor)
    if me.role not in (ADMIN, REVIEWER):
        raise PermissionDenied(f"Only a reviewer or an admin may {doing}; {me.username!r} is an {me.role}.")
    return me


def consensus(scores: list[int]) -> int:
    """The median of the scores; for an even count the mean of the two middle ones, a half rounded UP (2.5 -> 3),
    as the agreement report rounds an item's mean."""
    ordered = sorted(scores)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle] + 1) // 2  # floor(mean + 1/2)


def _sort_key(sort: Sort) -> Callable[[ReviewItem], tuple[float, ...]]:
    inf = float("inf")
    if sort == "humans":
        return lambda r: (-r.spread, -r.distinct, -(r.delta if r.delta is not None else -inf), r.item_id)
    return lambda r: (-(r.delta if r.delta is not None else -inf),
                      -(r.judge_confidence if r.judge_confidence is not None else -inf), -r.spread, r.item_id)


def _may_see(me: Me, study: StudyRow, item: ReviewItem) -> bool:
    """Whether the judge's verdict on this item may reach `me` (see the module's note on blind studies)."""
    if me.role == ADMIN or not study.blind:
        return True
    return any(label.annotator == me.username for label in item.labels) or len(item.labels) >= study.overlap_target


def _check_may_see(me: Me, study: StudyRow, item: ReviewItem) -> None:
    if not _may_see(me, study, item):
        raise PermissionDenied(
            f"Item #{item.item_id} of the blind study {study.name!r} still has a place you may label: label it "
            "first (Label tab), or wait until it has its labels, before reviewing it.")


def _now() -> datetime:
    return datetime.now(UTC)


class Reviews:
    """The review list and adjudicated labels of studies, in the same database as the studies (core.studies)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _read(self) -> AbstractContextManager[Session]:
        return self._store.session("read")

    def _write(self, action: str, work: Callable[[Session], T]) -> T:
        return self._store.write(action, work)

    def review_list(self, actor: User, study_id: int, sort: Sort = "judge") -> list[ReviewItem]:
        """The study's labelled items, most disputed first (reviewers and admins; PermissionDenied otherwise).

        sort="humans": by the spread of the human scores (then the number of distinct scores); sort="judge":
        by |consensus - judge| (items the judge did not score last), then by the judge's confidence in its
        score, so a confident and wrong judge comes first. Items nobody has labelled, and removed items, are
        left out; an adjudicated item carries its current adjudication.
        """
        if sort not in SORTS:
            raise StudyInputError(f"Sort by 'judge' or 'humans', not {sort!r}.")
        with self._read() as session:
            me = require_reviewer(session, actor, "review a study")
            study = study_row(session, study_id)
            items = self._items(session, study)
        return sorted((item for item in items.values() if _may_see(me, study, item)), key=_sort_key(sort))

    def review_item(self, actor: User, item_id: int) -> ReviewItem:
        """One item as the review list shows it, labelled or not (reviewers and admins)."""
        with self._read() as session:
            me = require_reviewer(session, actor, "review an item")
            item = item_row(session, item_id)
            study = study_row(session, item.study_id)
            found = self._items(session, study, keep_unlabelled=True)
        if item.id not in found:
            raise StudyInputError(f"Item {item.id} was removed from its study.")
        _check_may_see(me, study, found[item.id])
        return found[item.id]

    def adjudicate(self, actor: User, item_id: int, score: int, note: str = "") -> Adjudication:
        """Record the item's adjudicated label (reviewers and admins): a new row, the older ones stay as history.

        The score must be on the study's scale; the note may be empty. Nobody's own label changes.
        """
        if not isinstance(note, str):
            raise StudyInputError("The note must be text.")
        note = note.strip()
        if len(note) > MAX_NOTE_LENGTH:
            raise StudyInputError(f"The note is longer than {MAX_NOTE_LENGTH:,} characters.")

        def work(session: Session) -> Adjudication:
            me = require_reviewer(session, actor, "adjudicate a label")
            item = item_row(session, item_id)
            if item.removed_at is not None:
                raise StudyInputError(f"Item {item.id} was removed from its study; it cannot be adjudicated.")
            study = study_row(session, item.study_id)
            if study.blind and me.role != ADMIN:
                _check_may_see(me, study, self._items(session, study, keep_unlabelled=True)[item.id])
            value = check_score(score, (study.scale_min, study.scale_max))
            row = AdjudicationRow(study_id=study.id, item_id=item.id, reviewer_id=me.id, score=value, note=note,
                                  created_at=_now())
            session.add(row)
            session.flush()
            return Adjudication(id=row.id, study_id=row.study_id, item_id=row.item_id, reviewer=me.username,
                                score=row.score, note=row.note, at=row.created_at)

        return self._write("save an adjudicated label to", work)

    def adjudication_history(self, actor: User, item_id: int) -> list[Adjudication]:
        """Every adjudication of the item, oldest first: who, when, which score and why (reviewers and admins)."""
        with self._read() as session:
            require_reviewer(session, actor, "see adjudications")
            item = item_row(session, item_id)
            return adjudications.history(session, item.id)

    # -- reading ---------------------------------------------------------------------------------



    @staticmethod
    def _items(session: Session, study: StudyRow, *, keep_unlabelled: bool = False) -> dict[int, ReviewItem]:
        """The study's items (labelled ones, or all) as ReviewItems, from the reports' one joined query."""
        settled = adjudications.current(session, study.id)
        lines = reports.report_lines(session, study)
        labels: dict[int, list[ReviewLabel]] = {}
        firsts: dict[int, reports.ReportLine] = {}
        for line in lines:
            if line.item.removed_at is not None:
                continue
            firsts.setdefault(line.item.id, line)
            mine = labels.setdefault(line.item.id, [])
            label = line.label
            if label is not None:
                counted = label.score_before_reveal if study.blind else label.score
                mine.append(ReviewLabel(label.id, line.annotator or "", counted, label.score_before_reveal,
                                        label.score_after_reveal, label.score, label.comment))
        found: dict[int, ReviewItem] = {}
        for item_id, line in firsts.items():
            mine = labels[item_id]
            if not mine and not keep_unlabelled:
                continue
            scores = [label.score for label in mine]
            judgment = line.judgment
            judge = judgment.score if judgment is not None and judgment.status != PARSE_FAILED else None
            distribution = judgment.distribution if judgment is not None else None
            agreed = consensus(scores) if scores else None
            found[item_id] = ReviewItem(
                item_id=item_id, study_id=study.id, external_id=line.item.external_id,
                fields={tag: text for tag, text in line.item.fields}, labels=tuple(mine),
                spread=max(scores) - min(scores) if scores else 0, distinct=len(set(scores)),
                consensus=agreed,
                judgment_id=judgment.id if judgment is not None else None, judge_score=judge,
                judge_status=judgment.status if judgment is not None else None,
                judge_confidence=distribution.get(judge) if distribution and judge is not None else None,
                delta=abs(agreed - judge) if agreed is not None and judge is not None else None,
                adjudication=settled.get(item_id),
            )
        return found
