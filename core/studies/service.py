"""Human-agreement studies: studies, items, blind annotations with edit history (the Studies service).

The value types (core.studies.types) and the public method signatures below are a contract the UI
codes against. Every method that reads or changes labels takes the signed-in `actor` and checks it
against the database (core.accounts.signed_in: a demoted or deleted user loses access at once):
annotators only ever see and change their own labels, admins see everything. Study tables live in the
same database as judgments; they are created by migration 2 in core.migrations, and every write is one short
transaction (BEGIN IMMEDIATE on SQLite, retried when the file stays locked). The labelling queue and its
claims are core.studies.queue; file import core.studies.imports; reports and exports core.studies.reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.accounts import (
    ADMIN,
    ANNOTATOR,
    DEFAULT_PASSWORD_COST,
    Accounts,
    Me,
    User,
    UserRow,
    require_admin,
    require_grade_right,
    signed_in,
)
from core.errors import PermissionDenied, RubricError, StudyInputError
from core.judgments import JudgmentRow
from core.people import People
from core.prompt import DEFAULT_TAGS, infer_scale
from core.store import Store
from core.studies import assignment, imports, pairs, queue, reports, runs
from core.studies.admin import StudyAdmin
from core.studies.checks import (
    DuplicateItemError,
    ItemKey,
    check_comment,
    check_id,
    check_int,
    check_json,
    check_score,
    check_seconds,
    check_spans,
    check_tags,
    describe_item,
    item_key,
)
from core.studies.queue import CLAIM_SECONDS, queue_key
from core.studies.queue_order import check_queue_order
from core.studies.rows import (
    STUDIES_WITH_CREATOR,
    AnnotationEditRow,
    AnnotationRow,
    ItemRow,
    StudyRow,
    to_annotation,
    to_edit,
    to_item,
    to_study,
)
from core.studies.types import (
    Annotation,
    AnnotationEdit,
    BlindGuard,
    ImportReport,
    Item,
    Progress,
    Study,
    StudySpec,
    fingerprint,
)
from core.tabular import RowError

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


def _label_scale(study: StudyRow) -> tuple[int, int]:
    """The scores a label may take: the rubric's scale, or a pairwise study's choice indexes (core.studies.pairs)."""
    if study.mode == pairs.PAIRWISE:
        return pairs.label_scale(bool(study.allow_tie))
    return (study.scale_min, study.scale_max)


class Studies:
    """Studies, items and annotations, stored in the same database as judgments (users: self.accounts)."""

    def __init__(self, store: Store, *, password_cost: int = DEFAULT_PASSWORD_COST,
                 claim_seconds: float = CLAIM_SECONDS) -> None:
        """Use the study tables of `store` (created by its migration 2).

        `password_cost` is scrypt's N for new password hashes (see core.accounts.Accounts); lower it only in
        tests. `claim_seconds`: how long an item handed out by next_item counts as taken by that annotator.
        """
        if not claim_seconds >= 0:
            raise ValueError("claim_seconds must not be negative.")
        self.accounts = Accounts(store, password_cost=password_cost)
        self.people = People(store, password_cost=password_cost)  # admins: roles, password resets, deactivation
        self.assignments = assignment.Assignments(store)  # admins: who may label a study, items split or not
        self._store = store
        self._claim_seconds = float(claim_seconds)
        self.admin = StudyAdmin(store)  # editing, archiving, deleting studies; the item browser; progress
        self.runs = runs.Runs(store)  # judge runs: several judge configurations grading the same items

    # -- sessions and permissions ----------------------------------------------------------------

    def _write(self, action: str, work: Callable[[Session], T]) -> T:
        """Run `work` in one short write transaction, retried when the database is locked (Store.write)."""
        return self._store.write(action, work)

    def _read(self) -> AbstractContextManager[Session]:
        return self._store.session("read")

    _actor = staticmethod(signed_in)
    _admin = staticmethod(require_admin)

    @staticmethod
    def _study_row(session: Session, study_id: int, *, lock: bool = False) -> StudyRow:
        # lock: a write that reads the study's items before adding some (duplicates) holds the study row (FOR NO KEY
        # UPDATE: labels being saved meanwhile do not wait), so two admins importing at once on PostgreSQL queue up
        # as SQLite's one writer makes them.
        row = (session.get(StudyRow, study_id, with_for_update={"key_share": True} if lock else None)
               if isinstance(study_id, int) else None)
        if row is None:
            raise StudyInputError(f"There is no study with id {study_id!r}.")
        return row

    @staticmethod
    def _item_row(session: Session, item_id: int) -> ItemRow:
        row = session.get(ItemRow, item_id) if isinstance(item_id, int) else None
        if row is None:
            raise StudyInputError(f"There is no item with id {item_id!r}.")
        return row

    @staticmethod
    def _username(session: Session, user_id: int) -> str:
        return session.scalar(select(UserRow.username).where(UserRow.id == user_id)) or ""

    @staticmethod
    def _annotation_row(session: Session, me: Me, annotation_id: int, doing: str,
                        *, admin_may: bool) -> AnnotationRow:
        """The annotation, if `me` may `doing` it: their own, or (admin_may) any for an admin."""
        row = session.get(AnnotationRow, annotation_id) if isinstance(annotation_id, int) else None
        if row is None:
            raise StudyInputError(f"There is no annotation with id {annotation_id!r}.")
        if row.annotator_id != me.id and not (admin_may and me.role == ADMIN):
            raise PermissionDenied(f"{me.username!r} may not {doing} another annotator's label.")
        return row

    # -- users: core.accounts, kept here so callers of Studies keep working -------------------------

    def create_user(self, username: str, password: str, role: str = ANNOTATOR) -> User:
        """Accounts.create_user."""
        return self.accounts.create_user(username, password, role)

    def authenticate(self, username: str, password: str) -> User | None:
        """Accounts.authenticate."""
        return self.accounts.authenticate(username, password)

    def get_user(self, username: str) -> User | None:
        """Accounts.get_user."""
        return self.accounts.get_user(username)

    def list_users(self, actor: User) -> list[User]:
        """Accounts.list_users."""
        return self.accounts.list_users(actor)

    def set_grading(self, actor: User | None, username: str, allowed: bool) -> User:
        """Accounts.set_grading."""
        return self.accounts.set_grading(actor, username, allowed)

    # -- what the grade right does not show: verdicts of blind items one has not labelled -----------

    def blind_guard(self, actor: User) -> BlindGuard:
        """What `actor` may not see of the judge's verdicts; PermissionDenied without the grade right.

        Admins see everything. Anyone else with the grade right may not see (nor ask the judge for) the
        verdict of an item of a blind study they have not labelled yet.
        """
        with self._read() as session:
            me = require_grade_right(session, actor)
            if me.role == ADMIN:
                return BlindGuard(me.username)
            mine = select(AnnotationRow.item_id).where(AnnotationRow.annotator_id == me.id)
            rows = session.execute(
                select(ItemRow.id, ItemRow.fields, ItemRow.judgment_id)
                .join(StudyRow, StudyRow.id == ItemRow.study_id)
                .where(StudyRow.blind.is_(True), ItemRow.id.not_in(mine))).all()
        hidden = frozenset(row.judgment_id for row in rows if row.judgment_id is not None)
        items = tuple((row.id, fingerprint(text for _, text in row.fields)) for row in rows)
        return BlindGuard(me.username, hidden, items)

    def visible_judgments(self, actor: User, judgment_ids: Iterable[int]) -> set[int]:
        """Which of these stored judgments `actor` may see (blind_guard's rule); PermissionDenied without the right."""
        guard = self.blind_guard(actor)
        wanted = [int(j) for j in judgment_ids]
        if not guard.items:
            return set(wanted)
        with self._read() as session:
            rows = session.execute(select(JudgmentRow.id, JudgmentRow.fields).where(JudgmentRow.id.in_(wanted)))
            return {row.id for row in rows if not guard.hides(row.id, row.fields)}

    # -- studies and items -----------------------------------------------------------------------

    def create_study(self, actor: User, spec: StudySpec) -> Study:
        """Create a study (admins only); the scale comes from the rubric (StudyInputError when it names none)."""
        name = spec.name.strip() if isinstance(spec.name, str) else ""
        if not name:
            raise StudyInputError("The study needs a name.")
        if len(name) > 200:
            raise StudyInputError("The study name is longer than 200 characters.")
        if not isinstance(spec.pass_criteria, str) or not spec.pass_criteria.strip():
            raise StudyInputError("The pass criteria are empty: say what a passing text must do.")
        if not isinstance(spec.rubric, str):
            raise StudyInputError("The rubric must be text.")
        mode = pairs.check_mode(spec.mode)
        rubric = spec.rubric
        if mode == pairs.PAIRWISE:
            # The default tags of a study are a single response's: a pairwise study's are PAIR_STUDY_TAGS.
            tags = check_tags(pairs.PAIR_STUDY_TAGS if tuple(spec.tags) == DEFAULT_TAGS else spec.tags)
            rubric = pairs.check_pair_study(spec.rubric, tags)
        else:
            tags = check_tags(spec.tags)
        try:
            scale = infer_scale(rubric)
        except RubricError as error:
            raise StudyInputError(str(error)) from error
        overlap = check_int(spec.overlap_target, "overlap target")
        if overlap < 1:
            raise StudyInputError("The overlap target (annotators per item) must be at least 1.")
        settings = check_json(dict(spec.judge_settings or {}), "judge settings")
        order, random_first = check_queue_order(spec.queue_order, spec.random_first)
        description = spec.description if isinstance(spec.description, str) else ""

        def work(session: Session) -> Study:
            me = self._admin(session, actor, "create a study")
            now = _now()
            row = StudyRow(
                name=name, description=description, pass_criteria=spec.pass_criteria, rubric=rubric,
                scale_min=scale[0], scale_max=scale[1], tags=tags, overlap_target=overlap, blind=bool(spec.blind),
                judge_settings=settings, created_by_id=me.id, created_at=now, updated_at=now,
                queue_order=order, random_first=random_first, mode=mode,
                allow_tie=bool(spec.allow_tie) and mode == pairs.PAIRWISE,
            )
            session.add(row)
            session.flush()
            return to_study(row, me.username)

        return self._write("save a study to", work)

    def list_studies(self, actor: User) -> list[Study]:
        """Every study, newest first (admins); anyone else: the studies open to them (core.studies.assignment),
        archived ones left out."""
        with self._read() as session:
            me = self._actor(session, actor)
            wanted = STUDIES_WITH_CREATOR
            if me.role != ADMIN:
                wanted = wanted.where(StudyRow.archived_at.is_(None), assignment.open_to(me.id))
            rows = session.execute(wanted.order_by(StudyRow.created_at.desc(), StudyRow.id.desc()))
            return [to_study(row, creator) for row, creator in rows]

    def get_study(self, actor: User, study_id: int) -> Study:
        """The study (any signed-in user it is open to); StudyInputError when there is none."""
        with self._read() as session:
            assignment.check_open_to(session, check_id(study_id, "study"), self._actor(session, actor))
            wanted = STUDIES_WITH_CREATOR.where(StudyRow.id == check_id(study_id, "study"))
            found = session.execute(wanted).one_or_none()
            if found is None:
                raise StudyInputError(f"There is no study with id {study_id!r}.")
            return to_study(*found)

    def add_item(
        self, actor: User, study_id: int, fields: Mapping[str, str], *, external_id: str | None = None,
        judgment_id: int | None = None,
    ) -> Item:
        """Add one item (admins only); fields must use the study's tags, and at least one must be non-blank.

        DuplicateItemError (a StudyInputError naming the existing item) when the study already has an item
        with the same fields (see item_key for what counts as the same).
        """

        def work(session: Session) -> Item:
            me = self._admin(session, actor, "add items")
            study = self._study_row(session, study_id, lock=True)
            item_fields = self._fields(study, fields)
            if judgment_id is not None:
                self._check_judgment(session, judgment_id)
            known = self._item_keys(session, study)
            row = self._new_item(session, study, item_fields, external_id, judgment_id, known)
            if judgment_id is not None:  # the item's judgment in the study's first run (core.studies.runs)
                runs.record_in_first_run(session, row, judgment_id, me.id)
            return to_item(row)

        return self._write("save an item to", work)

    @staticmethod
    def _fields(study: StudyRow, fields: Mapping[str, str]) -> list[list[str]]:
        if not isinstance(fields, Mapping):
            raise StudyInputError("Item fields must be a mapping of tag -> text.")
        unknown = [tag for tag in fields if tag not in study.tags]
        if unknown:
            raise StudyInputError(f"Unknown field tag(s) {', '.join(map(repr, unknown))}; this study's tags are "
                                  f"{', '.join(map(repr, study.tags))}.")
        for tag, text in fields.items():
            if text is not None and not isinstance(text, str):
                raise StudyInputError(f"The {tag} field must be text; got {type(text).__name__}.")
        found = [[tag, fields[tag]] for tag in study.tags if fields.get(tag) and fields[tag].strip()]
        if not found:
            raise StudyInputError("Every field of the item is empty.")
        if study.mode == pairs.PAIRWISE:
            pairs.check_pair_fields(fields)
        return found

    @staticmethod
    def _check_judgment(session: Session, judgment_id: int) -> None:
        if not isinstance(judgment_id, int) or session.get(JudgmentRow, judgment_id) is None:
            raise StudyInputError(f"There is no stored judgment with id {judgment_id!r}.")

    @staticmethod
    def _item_keys(session: Session, study: StudyRow) -> dict[ItemKey, tuple[int, str | None]]:
        """The study's items by item_key: (item id, external id) of the first item with those fields."""
        known: dict[ItemKey, tuple[int, str | None]] = {}
        for item_id, external_id, stored in session.execute(
            select(ItemRow.id, ItemRow.external_id, ItemRow.fields).where(ItemRow.study_id == study.id)
            .order_by(ItemRow.id)
        ):
            known.setdefault(item_key(stored), (item_id, external_id))
        return known

    @staticmethod
    def _new_item(session: Session, study: StudyRow, item_fields: list[list[str]], external_id: str | None,
                  judgment_id: int | None, known: dict[ItemKey, tuple[int, str | None]]) -> ItemRow:
        """Insert one item; DuplicateItemError when `known` (the study's items, kept up to date) has its fields."""
        if external_id is not None and not isinstance(external_id, str):
            raise StudyInputError("The external id must be text.")
        key = item_key(item_fields)
        if key in known:
            item_id, existing_id = known[key]
            raise DuplicateItemError(
                f"This study already has an item with these fields: {describe_item(item_id, existing_id)}. "
                "A copy would be labelled and counted twice, so nothing was added.",
                item_id=item_id, external_id=existing_id,
            )
        row = ItemRow(study_id=study.id, fields=item_fields, external_id=external_id, judgment_id=judgment_id,
                      order_key=0, created_at=_now())
        session.add(row)
        session.flush()  # the key is derived from the id, which the database assigns
        row.order_key = queue_key(study.id, row.id)
        known[key] = (row.id, external_id)
        return row

    def preview_file(self, path: str | Path, rows: int = 5) -> tuple[list[str], list[dict[str, Any]]]:
        """(column names, first rows) of a CSV or JSONL file, for the column-mapping step (imports.preview_file)."""
        return imports.preview_file(path, rows)

    def import_items(
        self, actor: User, study_id: int, path: str | Path, mapping: Mapping[str, str], *, id_column: str | None = None
    ) -> ImportReport:
        """Import CSV/JSONL rows; `mapping` is field tag -> column. Bad rows are reported, good rows kept.

        A RowError with row 0 is a note about the whole file (e.g. "read as Windows-1252"), not a bad row.
        Rows whose id (id_column) is already in the study, or repeats an earlier row, are reported, not added;
        so are rows whose fields equal an item already in the study or an earlier row (see item_key).
        """
        with self._read() as session:  # fail fast, before reading a large file
            self._admin(session, actor, "import items")
            tags = list(self._study_row(session, study_id).tags)
        read = imports.read_rows(path, tags, mapping, id_column)

        def work(session: Session) -> tuple[list[int], list[RowError]]:
            # Errors found here are returned, not appended outside: a retried transaction starts afresh.
            self._admin(session, actor, "import items")
            study = self._study_row(session, study_id, lock=True)
            taken = set(session.scalars(select(ItemRow.external_id).where(
                ItemRow.study_id == study.id, ItemRow.external_id.is_not(None))))
            first_row: dict[str, int] = {}
            known = self._item_keys(session, study)
            row_of_item: dict[int, int] = {}  # item id -> the row of this file that added it
            ids: list[int] = []
            repeated: list[RowError] = []
            for number, item_fields, external_id in read.good:
                if study.mode == pairs.PAIRWISE:
                    try:
                        pairs.check_pair_fields(dict(item_fields))
                    except StudyInputError as problem:
                        repeated.append(RowError(number, str(problem)))
                        continue
                if external_id is not None:
                    if external_id in taken:
                        repeated.append(RowError(number, f"An item with id {external_id!r} is already in the study."))
                        continue
                    if external_id in first_row:
                        repeated.append(RowError(number, f"Repeats the id {external_id!r} of row "
                                                         f"{first_row[external_id]}."))
                        continue
                try:
                    added = self._new_item(session, study, item_fields, external_id, None, known)
                except DuplicateItemError as duplicate:
                    earlier = row_of_item.get(duplicate.item_id)
                    repeated.append(RowError(number, (
                        f"Repeats the fields of row {earlier}." if earlier is not None else
                        f"Has the same fields as {describe_item(duplicate.item_id, duplicate.external_id)}, "
                        "already in the study.")))
                    continue
                if external_id is not None:
                    first_row[external_id] = number
                row_of_item[added.id] = number
                ids.append(added.id)
            return ids, repeated

        item_ids, repeated = self._write("save items to", work)
        notes = [RowError(0, note) for note in read.notes]
        return ImportReport(added=len(item_ids), item_ids=item_ids,
                            errors=notes + sorted(read.errors + repeated, key=lambda error: error.row))

    def list_items(self, actor: User, study_id: int) -> list[Item]:
        """Every item of the study in the order they were added (admins only)."""
        with self._read() as session:
            self._admin(session, actor, "list a study's items")
            self._study_row(session, study_id)
            rows = session.scalars(select(ItemRow).where(ItemRow.study_id == study_id).order_by(ItemRow.id))
            return [to_item(row) for row in rows]

    def get_item(self, actor: User, item_id: int) -> Item:
        """One item. In a blind study an annotator gets judgment_id None until they have labelled the item."""
        with self._read() as session:
            me = self._actor(session, actor)
            row = self._item_row(session, item_id)
            assignment.check_open_to(session, row.study_id, me)
            hide = False
            if me.role != ADMIN and session.scalar(select(StudyRow.blind).where(StudyRow.id == row.study_id)):
                hide = self._label_id(session, row.id, me.id) is None
            return to_item(row, hide_judgment=hide)

    def pair_judgments(self, actor: User, item_id: int) -> pairs.PairJudgments:
        """A pairwise item's two judgments in its study's first run (the (A, B) and (B, A) orders); in a blind
        study an annotator gets None for both until they have labelled the item (as get_item)."""
        with self._read() as session:
            me = self._actor(session, actor)
            row = self._item_row(session, item_id)
            assignment.check_open_to(session, row.study_id, me)
            if me.role != ADMIN and session.scalar(select(StudyRow.blind).where(StudyRow.id == row.study_id)):
                if self._label_id(session, row.id, me.id) is None:
                    return pairs.PairJudgments(row.id, None, None)
            first = runs.first_run_id(session, row.study_id)
            second = None if first is None else session.scalar(
                select(runs.RunSecondOrderRow.judgment_id).where(runs.RunSecondOrderRow.run_id == first,
                                                                 runs.RunSecondOrderRow.item_id == row.id))
            return pairs.PairJudgments(row.id, row.judgment_id, second)

    def attach_judgment(self, actor: User, item_id: int, judgment_id: int) -> None:
        """Link the item to the model's stored judgment (admins only), as its judgment in the study's first judge
        run (core.studies.runs; self.runs.attach attaches into another run)."""

        def work(session: Session) -> None:
            me = self._admin(session, actor, "attach judgments")
            row = self._item_row(session, item_id)
            self._check_judgment(session, judgment_id)
            row.judgment_id = judgment_id
            runs.record_in_first_run(session, row, judgment_id, me.id)

        self._write("save a judgment link to", work)

    # -- labelling -------------------------------------------------------------------------------

    @staticmethod
    def _label_id(session: Session, item_id: int, annotator_id: int) -> int | None:
        return session.scalar(select(AnnotationRow.id).where(AnnotationRow.item_id == item_id,
                                                             AnnotationRow.annotator_id == annotator_id))

    def next_item(self, actor: User, study_id: int, *, skip: Iterable[int] = ()) -> Item | None:
        """An item this annotator has not labelled that has < overlap_target labels, in stable random order.

        The item handed out is claimed for `claim_seconds`: an item whose free places are all claimed
        by other annotators is skipped while another is open, so people labelling at the same time do
        not all pile onto the same item. When only claimed items are left, one is offered anyway (its
        claim may be abandoned), so None always means there is nothing left for this annotator.
        Asking again without submitting returns the same item; `skip` leaves out items the annotator
        passed over (e.g. this session), and the claim moves to the item offered instead.
        In a blind study the item comes with judgment_id None; get_item gives it once the label is in.
        """
        skipped = sorted({check_id(item_id, "item") for item_id in skip})
        # Usually submit() has already claimed this annotator's next item: then this is only a read.
        with self._read() as session:
            me = self._actor(session, actor)
            sql = session.connection()
            study = queue.queue_study(sql, study_id)
            share = assignment.share_of(sql, study, me)  # None: every item
            now = _now()
            row = queue.pick(sql, me.id, study, now, self._claim_seconds, skipped, share)
            claim = queue.my_claim(sql, study.id, me.id)
            fresh = now - timedelta(seconds=self._claim_seconds / 2)
            if row is None and claim is None:
                return None
            if row is not None and claim is not None and claim.item_id == row.id and claim.claimed_at > fresh:
                return to_item(row, hide_judgment=bool(study.blind))

        def work(session: Session) -> Item | None:  # choose again under the write lock, and claim
            me = self._actor(session, actor)
            sql = session.connection()
            study = queue.queue_study(sql, study_id)
            queue.lock_queue(sql, study.id)
            share = assignment.share_of(sql, study, me)
            now = _now()
            row = queue.pick(sql, me.id, study, now, self._claim_seconds, skipped, share, lock=True)
            queue.claim(sql, study.id, me.id, row, now)
            return None if row is None else to_item(row, hide_judgment=bool(study.blind))

        return self._write("hand out an item from", work)

    def progress(self, actor: User, study_id: int) -> Progress:
        """Counts for the progress bar (any signed-in user; no one's labels are shown)."""
        with self._read() as session:
            me = self._actor(session, actor)
            study = self._study_row(session, study_id)
            live = select(ItemRow.id).where(ItemRow.study_id == study.id, ItemRow.removed_at.is_(None))  # not removed
            in_study = (AnnotationRow.study_id == study.id) & AnnotationRow.item_id.in_(live)
            mine = session.scalar(select(func.count()).where(in_study, AnnotationRow.annotator_id == me.id)) or 0
            total = session.scalar(select(func.count()).select_from(live.subquery())) or 0
            per_item = (select(AnnotationRow.item_id).where(in_study).group_by(AnnotationRow.item_id)
                        .having(func.count() >= study.overlap_target).subquery())
            complete = session.scalar(select(func.count()).select_from(per_item)) or 0
            people = session.scalar(select(func.count(func.distinct(AnnotationRow.annotator_id))).where(in_study)) or 0
            return Progress(labelled_by_me=mine, total_items=total, items_complete=complete,
                            overlap_target=study.overlap_target, annotators=people,
                            assigned_to_me=(assignment.assigned_count(session, study.id, me.id)
                                            if study.assignment == assignment.CHOSEN else None))

    def submit(
        self, actor: User, item_id: int, score: int, *, spans: Sequence[Mapping[str, Any]] = (), comment: str = "",
        seconds: float = 0.0,
    ) -> Annotation:
        """Store the annotator's (blind) label; committed before returning.

        One label per item and annotator: submitting the very same label again (score, spans, comment)
        returns the stored one (a double click or a retried request); a different one is refused with
        StudyInputError, pointing to edit(). A label for an item that reached its overlap target in the
        meantime is still kept: next_item is what stops offering full items. A pairwise study's items take
        submit_choice instead.
        """

        def label(item: Any, me: Any) -> tuple[int, dict[str, Any]]:
            if item.mode == pairs.PAIRWISE:
                raise StudyInputError(f"Item {item.id} is in a pairwise study: choose a response (submit_choice).")
            return check_score(score, (item.scale_min, item.scale_max)), {}

        return self._submit(actor, item_id, label, spans, comment, seconds)

    def submit_choice(
        self, actor: User, item_id: int, slot: str, *, spans: Sequence[Mapping[str, Any]] = (), comment: str = "",
        seconds: float = 0.0,
    ) -> Annotation:
        """Store the annotator's (blind) choice on a pairwise item: `slot` is what they clicked, "1" (the response
        shown first), "2", or "tie" where the study allows it. It is stored in the item's terms ("A", "B", "tie")
        with the order the responses were shown in (pair_order); otherwise as submit."""

        def label(item: Any, me: Any) -> tuple[int, dict[str, Any]]:
            if item.mode != pairs.PAIRWISE:
                raise StudyInputError(f"Item {item.id} is not in a pairwise study: give it a score (submit).")
            order = pairs.shown_order(item.study_id, item.id, me.id)
            choice = pairs.choice_of_slot(order, slot, allow_tie=bool(item.allow_tie))
            return pairs.score_of_choice(choice), {"choice": choice, "shown_order": order}

        return self._submit(actor, item_id, label, spans, comment, seconds)

    def pair_order(self, actor: User, item_id: int) -> str:
        """"AB" or "BA": the order the signed-in user is shown this pairwise item's responses in (A first: "AB")."""
        with self._read() as session:
            me = self._actor(session, actor)
            item = self._item_row(session, item_id)
            assignment.check_open_to(session, item.study_id, me)
            return pairs.shown_order(item.study_id, item.id, me.id)

    def _submit(self, actor: User, item_id: int, label: Callable[[Any, Any], tuple[int, dict[str, Any]]],
                spans: Sequence[Mapping[str, Any]], comment: str, seconds: float) -> Annotation:
        comment = check_comment(comment)
        seconds = check_seconds(seconds)

        def work(session: Session) -> Annotation:
            me = self._actor(session, actor)
            sql = session.connection()
            item = queue.item_for_label(sql, item_id)
            queue.lock_queue(sql, item.study_id)
            rule = SimpleNamespace(id=item.study_id, overlap_target=item.overlap_target, assignment=item.assignment,
                                   split_items=item.split_items)
            share = assignment.share_of(sql, rule, me)  # None: every item
            if share is not None and item.id not in share:
                raise PermissionDenied(f"Item {item.id} is not among the items dealt to {me.username!r} in this study.")
            value, extra = label(item, me)
            checked = check_spans(spans, {tag: text for tag, text in item.fields})
            existing = queue.my_label(sql, item.id, me.id)
            if existing is not None:
                if existing.score_before_reveal == value and existing.spans == checked and existing.comment == comment:
                    return to_annotation(existing, me.username)
                raise StudyInputError(
                    f"You already labelled item {item.id} (annotation {existing.id}); edit that label instead."
                )
            now = _now()
            values = {"study_id": item.study_id, "item_id": item.id, "annotator_id": me.id, "score": value,
                      "score_before_reveal": value, "score_after_reveal": None, "spans": checked,
                      "comment": comment, "seconds": seconds, "created_at": now, "updated_at": now, **extra}
            added = queue.add_label(sql, values)
            # The label now holds its place itself. Claim the annotator's next item in this same
            # transaction, so the next_item call that follows is a read, not a second commit.
            study = SimpleNamespace(id=item.study_id, overlap_target=item.overlap_target,
                                    queue_order=item.queue_order, random_first=item.random_first)
            following = queue.pick(sql, me.id, study, now, self._claim_seconds, only=share, lock=True)
            queue.claim(sql, item.study_id, me.id, following, now)
            return to_annotation(SimpleNamespace(id=added, **values), me.username)

        return self._write("save a label to", work)

    def confirm_after_reveal(self, actor: User, annotation_id: int, score: int) -> Annotation:
        """Record the score after the model's verdict was revealed (once); the first score is kept."""

        def work(session: Session) -> Annotation:
            me = self._actor(session, actor)
            row = self._annotation_row(session, me, annotation_id, "confirm", admin_may=False)
            study = self._study_row(session, row.study_id)
            value = check_score(score, _label_scale(study))
            if row.score_after_reveal is not None:
                raise StudyInputError(
                    f"Annotation {row.id} was already confirmed after the reveal; change it with edit instead."
                )
            row.score_after_reveal = value
            row.score = value
            if study.mode == pairs.PAIRWISE:
                row.choice = pairs.choice_of_score(value)
            row.updated_at = _now()
            return to_annotation(row, me.username)

        return self._write("save a label to", work)

    def edit(
        self, actor: User, annotation_id: int, *, score: int | None = None, comment: str | None = None,
        spans: Sequence[Mapping[str, Any]] | None = None,
    ) -> Annotation:
        """Change one's own label later; every change is kept in the edit history.

        Only the current score changes; score_before_reveal and score_after_reveal stay as recorded.
        An edit that changes nothing records nothing.
        """
        if comment is not None:
            comment = check_comment(comment)

        def work(session: Session) -> Annotation:
            me = self._actor(session, actor)
            row = self._annotation_row(session, me, annotation_id, "edit", admin_may=False)
            changes: dict[str, list[Any]] = {}
            if score is not None:
                study = self._study_row(session, row.study_id)
                value = check_score(score, _label_scale(study))
                if value != row.score:
                    changes["score"] = [row.score, value]
                    if study.mode == pairs.PAIRWISE:  # a pairwise score is the index of its choice
                        changes["choice"] = [row.choice, pairs.choice_of_score(value)]
            if spans is not None:
                item = self._item_row(session, row.item_id)
                checked = check_spans(spans, {tag: text for tag, text in item.fields})
                if checked != row.spans:
                    changes["spans"] = [row.spans, checked]
            if comment is not None and comment != row.comment:
                changes["comment"] = [row.comment, comment]
            if changes:
                now = _now()
                for name, (_old, new) in changes.items():
                    setattr(row, name, new)
                row.updated_at = now
                session.add(AnnotationEditRow(annotation_id=row.id, editor_id=me.id, at=now, changes=changes))
            return to_annotation(row, me.username)

        return self._write("save a label to", work)

    def my_annotations(self, actor: User, study_id: int) -> list[Annotation]:
        """The actor's own labels in the study, oldest first."""
        with self._read() as session:
            me = self._actor(session, actor)
            self._study_row(session, study_id)
            rows = session.scalars(
                select(AnnotationRow)
                .where(AnnotationRow.study_id == study_id, AnnotationRow.annotator_id == me.id)
                .order_by(AnnotationRow.created_at, AnnotationRow.id)
            )
            return [to_annotation(row, me.username) for row in rows]

    def my_labels(self, actor: User, study_id: int) -> list[tuple[Annotation, str | None]]:
        """The actor's own labels in the study, each with its item's external id (None if it has none), oldest first."""
        with self._read() as session:
            me = self._actor(session, actor)
            self._study_row(session, study_id)
            rows = session.execute(
                select(AnnotationRow, ItemRow.external_id)
                .join(ItemRow, ItemRow.id == AnnotationRow.item_id)
                .where(AnnotationRow.study_id == study_id, AnnotationRow.annotator_id == me.id)
                .order_by(AnnotationRow.created_at, AnnotationRow.id)
            )
            return [(to_annotation(row, me.username), external_id) for row, external_id in rows]

    def pending_reveal(self, actor: User, study_id: int) -> Annotation | None:
        """The actor's latest label in a blind study whose reveal is not answered yet, else None.

        That is a label whose item has the model's judgment now but that has no after-reveal score: the
        page was reloaded or closed on the reveal, or the item was graded only after it was labelled.
        """
        with self._read() as session:
            me = self._actor(session, actor)
            study = self._study_row(session, study_id)
            if not study.blind:
                return None
            row = session.scalars(
                select(AnnotationRow)
                .join(ItemRow, ItemRow.id == AnnotationRow.item_id)
                .where(AnnotationRow.study_id == study.id, AnnotationRow.annotator_id == me.id,
                       AnnotationRow.score_after_reveal.is_(None), ItemRow.judgment_id.is_not(None))
                .order_by(AnnotationRow.created_at.desc(), AnnotationRow.id.desc())
                .limit(1)
            ).first()
            return to_annotation(row, me.username) if row is not None else None

    def get_annotation(self, actor: User, annotation_id: int) -> Annotation:
        """One label: the annotator's own, or any for an admin."""
        with self._read() as session:
            me = self._actor(session, actor)
            row = self._annotation_row(session, me, annotation_id, "see", admin_may=True)
            return to_annotation(row, self._username(session, row.annotator_id))

    def history(self, actor: User, annotation_id: int) -> list[AnnotationEdit]:
        """The edits of one label, oldest first: the annotator's own, or any for an admin."""
        with self._read() as session:
            me = self._actor(session, actor)
            row = self._annotation_row(session, me, annotation_id, "see the history of", admin_may=True)
            edits = session.execute(
                select(AnnotationEditRow, UserRow.username)
                .join(UserRow, UserRow.id == AnnotationEditRow.editor_id)
                .where(AnnotationEditRow.annotation_id == row.id)
                .order_by(AnnotationEditRow.at, AnnotationEditRow.id)
            )
            return [to_edit(edit, editor) for edit, editor in edits]

    # -- reporting (admins): core.studies.reports ------------------------------------------------

    def ratings(self, actor: User, study_id: int, run: int | str | None = None) -> list[dict[str, Any]]:
        """One row per annotation, the input of core.agreement.agreement_report (see its docstring).

        `run` (a judge run's id or name, core.studies.runs) picks whose judgments are the model's; None: the
        first run's.

        Items nobody has labelled yet add one row each with annotator and human_score None, so a report
        can count them. model_score is None when the item has no judgment or the judgment failed to parse.
        `blind` (the study's mode) tells the report to use human_score_before_reveal as its headline.
        """
        with self._read() as session:
            self._admin(session, actor, "see a study's ratings")
            study = self._study_row(session, study_id)
            chosen = None if run is None else runs.run_row(session, study.id, run).id
            lines = [line for line in reports.report_lines(session, study, chosen) if line.item.removed_at is None]
            return reports.ratings(study, lines)  # removed items are left out of the report (kept in exports)

    def export_rows(self, actor: User, study_id: int, run: int | str | None = None) -> list[dict[str, Any]]:
        """One row per annotation with the item's fields and the model's outputs, for CSV/JSONL export.

        Every row has the same keys: each field tag is a column (prefixed "field " if it would clash with
        another column); spans, highlights and the distribution are JSON text, so a CSV keeps them whole.
        `python -m core agreement` reads the file as it is (`blind` picks the before-reveal headline).
        `run` (a judge run's id or name) picks whose judgments fill the model columns; None: the first run's.
        """
        with self._read() as session:
            self._admin(session, actor, "export a study")
            study = self._study_row(session, study_id)
            chosen = None if run is None else runs.run_row(session, study.id, run).id
            return reports.export_rows(study, reports.report_lines(session, study, chosen))
