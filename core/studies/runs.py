"""Judge runs: a study graded by several judge configurations, each run kept apart (migration 7).

A run is one judge configuration (`run_config`: back-end, model, revision, quantization, dtype, prompt variant,
decoding) that grades every item of its study once. Each judgment is stored with its reproducibility record
(core.judgments) and linked to its item in `run_judgments`, one per (run, item): grading in one run never
replaces another run's verdict (regrading a failed answer replaces it within its own run only).

The study's first run (position 1) is its default run. `items.judgment_id` mirrors the first run's judgment of
each item, kept in step by every write here and by Studies.attach_judgment / add_item, so what reads it (the Label
tab's reveal, the exports, the published study, the review, the queue's least-confident order) reads the first
run exactly as before runs existed. Every public method checks who asks (admins only) in its own transaction.

Public entry points for other features (the robustness audit, notebooks):
- `create_run(studies_or_store, actor, study_id, name, config) -> run id`, with `run_config(info, ...)`;
- `core.studies.grading.grade_study(..., run_id=...)` grades a study's items into that run;
- `Runs(store).compare(actor, study_id, run_a, run_b)`: core.agreement.judge_vs_judge on two runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.accounts import UserRow, require_admin
from core.errors import StudyInputError
from core.judgments import JudgmentRow
from core.parse import FAILED as PARSE_FAILED
from core.store import Base, Store, UTCDateTime
from core.studies.checks import check_id, check_json
from core.studies.rows import ItemRow, study_row

if TYPE_CHECKING:
    from core.accounts import User
    from core.judge.base import BackendInfo

PUBLISHED: Final = "published"  # the prompt variant of the published GLIDER template, unchanged
MAX_RUN_NAME: Final = 200


class JudgeRunRow(Base):
    """One judge run of a study (table `judge_runs`, migration 7)."""

    __tablename__ = "judge_runs"
    __table_args__ = (UniqueConstraint("study_id", "position", name="uq_judge_runs_study_position"),
                      UniqueConstraint("study_id", "name", name="uq_judge_runs_study_name"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 1, 2, ... in its study; 1 is the default run
    name: Mapped[str] = mapped_column(String(MAX_RUN_NAME))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: made by migration 7


class RunJudgmentRow(Base):
    """A run's judgment of one item (table `run_judgments`, migration 7): at most one per run and item."""

    __tablename__ = "run_judgments"

    run_id: Mapped[int] = mapped_column(ForeignKey("judge_runs.id", ondelete="CASCADE"), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, index=True)
    judgment_id: Mapped[int] = mapped_column(ForeignKey("judgments.id", ondelete="CASCADE"), index=True)
    attached_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RunSecondOrderRow(Base):
    """A run's (B, A) order judgment of a pairwise item (table `run_second_orders`, migration 8); the item's
    (A, B) order judgment is its RunJudgmentRow (core.studies.pairs)."""

    __tablename__ = "run_second_orders"

    run_id: Mapped[int] = mapped_column(ForeignKey("judge_runs.id", ondelete="CASCADE"), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, index=True)
    judgment_id: Mapped[int] = mapped_column(ForeignKey("judgments.id", ondelete="CASCADE"), index=True)
    attached_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class JudgeRun:
    """A study's judge run: its configuration, and how many of the study's items it has a judgment for."""

    id: int
    study_id: int
    position: int
    name: str
    config: dict[str, Any]
    created_at: datetime
    created_by: str | None  # None: made from the judgments graded before runs existed (migration 7)
    graded: int = 0  # items (not removed) with a judgment in this run, failed answers included

    @property
    def is_default(self) -> bool:
        """The study's first run: the judge of the Label tab's reveal, the exports and the default report."""
        return self.position == 1

    @property
    def label(self) -> str:
        """How pickers and listings name the run: "Run 2 (#7) · transformers · m · nf4 · 1024 tokens"."""
        first = " · first run" if self.is_default else ""
        return f"{self.name} (#{self.id}) · {describe_config(self.config)}{first}"


# --- configurations ---------------------------------------------------------------------------------


def run_config(info: BackendInfo, max_new_tokens: int, *, prompt_variant: str = PUBLISHED,
               **extra: Any) -> dict[str, Any]:
    """The configuration of a run graded by a back-end with this info: what makes two judges "the same".

    `prompt_variant` names the prompt (PUBLISHED: the GLIDER template as published); `extra` adds keys of the
    caller's (a perturbation's name and settings, say), which then take part in the comparison too. The device
    and the kernel are not part of it (each judgment's reproducibility record keeps them): the same judge on
    another machine continues its run.
    """
    config = {
        "backend": info.backend,
        "model_id": info.model_id,
        "revision": info.revision,
        "quantization": info.quantization,
        "dtype": info.dtype,
        "prompt_variant": prompt_variant,
        "decoding": {"strategy": "greedy", "temperature": 0.0, "max_new_tokens": int(max_new_tokens)},
    }
    return check_config({**config, **extra})


def config_from_repro(repro: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run configuration a stored judgment's reproducibility record describes (unknown keys: None).

    The same reading as migration 7's, for judgments attached after it (Studies.attach_judgment, a reopened study).
    """
    record = dict(repro or {})
    found = record.get("decoding")
    decoding: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    return check_config({
        "backend": record.get("backend"),
        "model_id": record.get("model_id"),
        "revision": record.get("revision"),
        "quantization": record.get("quantization"),
        "dtype": record.get("dtype"),
        "prompt_variant": PUBLISHED,
        "decoding": {"strategy": decoding.get("strategy", "greedy"), "temperature": decoding.get("temperature", 0.0),
                     "max_new_tokens": record.get("max_new_tokens")},
    })


def check_config(config: object) -> dict[str, Any]:
    """A run configuration as stored: a JSON object; StudyInputError otherwise."""
    if not isinstance(config, Mapping):
        raise StudyInputError("A judge run's configuration must be a JSON object (key -> value).")
    checked: dict[str, Any] = check_json(dict(config), "judge run configuration")
    return checked


def describe_config(config: Mapping[str, Any]) -> str:
    """One line: "transformers · PatronusAI/glider · nf4 · 1024 tokens", plus the prompt variant and any other key."""
    found = config.get("decoding")
    decoding: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    parts = [str(config.get(key)) for key in ("backend", "model_id", "quantization") if config.get(key) is not None]
    if decoding.get("max_new_tokens") is not None:
        parts.append(f"{decoding['max_new_tokens']} tokens")
    if config.get("prompt_variant") not in (None, PUBLISHED):
        parts.append(f"prompt: {config['prompt_variant']}")
    known = {"backend", "model_id", "revision", "quantization", "dtype", "prompt_variant", "decoding"}
    parts.extend(f"{key}: {value}" for key, value in config.items() if key not in known)
    return " · ".join(parts) or "unknown judge"


# --- inside a transaction: what Studies and the publisher call too -----------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _study_runs(session: Session, study_id: int) -> list[JudgeRunRow]:
    return list(session.scalars(select(JudgeRunRow).where(JudgeRunRow.study_id == study_id)
                                .order_by(JudgeRunRow.position)))


def _new_run(session: Session, study_id: int, name: str | None, config: Mapping[str, Any],
             creator_id: int | None) -> JudgeRunRow:
    """Add a run after the study's last one; `name` None: "Run N" (N its position, made unique)."""
    runs = _study_runs(session, study_id)
    position = (runs[-1].position if runs else 0) + 1
    taken = {run.name for run in runs}
    if name is None:
        name = f"Run {position}"
        suffix = 2
        while name in taken:
            name, suffix = f"Run {position} ({suffix})", suffix + 1
    elif name in taken:
        raise StudyInputError(f"This study already has a judge run named {name!r}; choose another name.")
    row = JudgeRunRow(study_id=study_id, position=position, name=name, config=dict(config), created_at=_now(),
                      created_by_id=creator_id)
    session.add(row)
    session.flush()
    return row


def _link(session: Session, run: JudgeRunRow, item: ItemRow, judgment_id: int, now: datetime) -> None:
    """The item's judgment in this run (replacing the run's earlier one); the first run's mirrors to the item."""
    if item.study_id != run.study_id:
        raise StudyInputError(f"Item {item.id} is not in the study of judge run {run.id}.")
    if session.get(JudgmentRow, judgment_id) is None:
        raise StudyInputError(f"There is no stored judgment with id {judgment_id!r}.")
    linked = session.get(RunJudgmentRow, (run.id, item.id))
    if linked is None:
        session.add(RunJudgmentRow(run_id=run.id, item_id=item.id, judgment_id=judgment_id, attached_at=now))
    else:
        linked.judgment_id, linked.attached_at = judgment_id, now
    if run.position == 1:
        item.judgment_id = judgment_id


def first_run_id(session: Session, study_id: int) -> int | None:
    """The id of the study's first run (its default), or None before it is graded."""
    found: int | None = session.scalar(select(JudgeRunRow.id).where(JudgeRunRow.study_id == study_id,
                                                                    JudgeRunRow.position == 1))
    return found


def record_in_first_run(session: Session, item: ItemRow, judgment_id: int, creator_id: int | None) -> None:
    """A judgment attached to the item outside a run (Studies.attach_judgment, add_item): the item's judgment in
    its study's first run, that run made from the judgment's reproducibility record when the study has none."""
    runs = _study_runs(session, item.study_id)
    if runs:
        first = runs[0]
    else:
        judgment = session.get(JudgmentRow, judgment_id)
        first = _new_run(session, item.study_id, None, config_from_repro(judgment.repro if judgment else None),
                         creator_id)
    _link(session, first, item, judgment_id, _now())


def adopt_item_judgments(session: Session, study_id: int, creator_id: int | None) -> None:
    """The judgments a study's items carry (items.judgment_id, e.g. of a reopened published study) as its first
    run; nothing when they have none."""
    items = session.scalars(select(ItemRow).where(ItemRow.study_id == study_id, ItemRow.judgment_id.is_not(None))
                            .order_by(ItemRow.id)).all()
    for item in items:
        if item.judgment_id is not None:
            record_in_first_run(session, item, item.judgment_id, creator_id)


def run_row(session: Session, study_id: int, run: int | str) -> JudgeRunRow:
    """The study's run `run` (its id, or its name); StudyInputError when the study has no such run."""
    if isinstance(run, str) and run.strip().lstrip("#").isdigit():
        run = int(run.strip().lstrip("#"))
    if isinstance(run, str):
        found = session.scalar(select(JudgeRunRow).where(JudgeRunRow.study_id == study_id,
                                                         JudgeRunRow.name == run.strip()))
    else:
        found = session.get(JudgeRunRow, check_id(run, "judge run"))
    if found is None or found.study_id != study_id:
        raise StudyInputError(f"Study {study_id} has no judge run {run!r}; `python -m core runs {study_id}` lists "
                              "its runs.")
    return found


def _to_run(session: Session, row: JudgeRunRow) -> JudgeRun:
    creator = (session.scalar(select(UserRow.username).where(UserRow.id == row.created_by_id))
               if row.created_by_id is not None else None)
    graded = session.scalar(
        select(func.count()).select_from(RunJudgmentRow).join(ItemRow, ItemRow.id == RunJudgmentRow.item_id)
        .where(RunJudgmentRow.run_id == row.id, ItemRow.removed_at.is_(None))) or 0
    return JudgeRun(id=row.id, study_id=row.study_id, position=row.position, name=row.name, config=dict(row.config),
                    created_at=row.created_at, created_by=creator, graded=int(graded))


def check_run_name(name: object) -> str | None:
    """A run's name as given (None or blank: "Run N"); StudyInputError when it is not text or too long."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise StudyInputError("A judge run's name must be text.")
    text = name.strip()
    if len(text) > MAX_RUN_NAME:
        raise StudyInputError(f"A judge run's name is longer than {MAX_RUN_NAME} characters.")
    if text.lstrip("#").isdigit():
        raise StudyInputError(f"A judge run's name cannot be a number ({text!r}): numbers name runs by id.")
    return text or None


# --- the service --------------------------------------------------------------------------------------


class Runs:
    """A study's judge runs (admins only): list, create, attach judgments, read a run's scores, compare two."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def list_runs(self, actor: User, study_id: int) -> list[JudgeRun]:
        """The study's runs, first run first."""
        with self._store.session("read") as session:
            require_admin(session, actor, "see a study's judge runs")
            study = study_row(session, study_id)
            return [_to_run(session, row) for row in _study_runs(session, study.id)]

    def get(self, actor: User, study_id: int, run: int | str) -> JudgeRun:
        """The study's run `run` (its id, or its name)."""
        with self._store.session("read") as session:
            require_admin(session, actor, "see a study's judge runs")
            return _to_run(session, run_row(session, study_row(session, study_id).id, run))

    def create(self, actor: User, study_id: int, name: str | None, config: Mapping[str, Any]) -> JudgeRun:
        """A new, empty run after the study's last one (name None or blank: "Run N"); grade into it with
        grade_study(..., run_id=run.id). StudyInputError for a taken name or a configuration that is not JSON."""
        chosen, checked = check_run_name(name), check_config(config)

        def work(session: Session) -> JudgeRun:
            me = require_admin(session, actor, "create a judge run")
            study = study_row(session, study_id)
            return _to_run(session, _new_run(session, study.id, chosen, checked, me.id))

        return self._store.write("save a judge run to", work)

    def for_grading(self, actor: User, study_id: int, config: Mapping[str, Any], *,
                    new_run: bool | str = False) -> tuple[JudgeRun, bool]:
        """(the run "Grade all" grades into, whether it was made now).

        The study's latest run with this very configuration, continued; a new run when none has it, or when
        `new_run` asks for one (True, or the new run's name).
        """
        checked = check_config(config)
        name = check_run_name(new_run) if isinstance(new_run, str) else None

        def work(session: Session) -> tuple[JudgeRun, bool]:
            me = require_admin(session, actor, "grade a study's items")
            study = study_row(session, study_id)
            if not new_run:
                same = [row for row in _study_runs(session, study.id) if row.config == checked]
                if same:
                    return _to_run(session, same[-1]), False
            return _to_run(session, _new_run(session, study.id, name, checked, me.id)), True

        return self._store.write("save a judge run to", work)

    def find(self, actor: User, study_id: int, config: Mapping[str, Any]) -> JudgeRun | None:
        """The study's latest run with this configuration, or None."""
        checked = check_config(config)
        same = [run for run in self.list_runs(actor, study_id) if run.config == checked]
        return same[-1] if same else None

    def judgments(self, actor: User, study_id: int, run: int | str) -> dict[int, int]:
        """The run's judgments: item id -> judgment id (items it has not graded are absent)."""
        with self._store.session("read") as session:
            require_admin(session, actor, "see a study's judge runs")
            found = run_row(session, study_row(session, study_id).id, run)
            rows = session.execute(select(RunJudgmentRow.item_id, RunJudgmentRow.judgment_id)
                                   .where(RunJudgmentRow.run_id == found.id))
            return {item_id: judgment_id for item_id, judgment_id in rows}

    def attach(self, actor: User, run_id: int, pairs: Iterable[tuple[int, int]]) -> None:
        """Attach judgments to items in the run, one transaction: (item id, judgment id) pairs; the run's earlier
        judgment of an item is replaced, other runs' never. The first run's also become the items' judgment_id."""
        wanted = [(check_id(item_id, "item"), check_id(judgment_id, "judgment")) for item_id, judgment_id in pairs]

        def work(session: Session) -> None:
            require_admin(session, actor, "attach judgments")
            run = session.get(JudgeRunRow, check_id(run_id, "judge run"))
            if run is None:
                raise StudyInputError(f"There is no judge run with id {run_id!r}.")
            now = _now()
            for item_id, judgment_id in wanted:
                item = session.get(ItemRow, item_id)
                if item is None:
                    raise StudyInputError(f"There is no item with id {item_id!r}.")
                _link(session, run, item, judgment_id, now)

        self._store.write("save a judgment link to", work)

    def scores(self, actor: User, study_id: int, run: int | str) -> tuple[JudgeRun, dict[int, int | None]]:
        """(the run, item id -> its score in the run) for every item of the study that is not removed; None where
        the run has no judgment of the item or its answer failed to parse."""
        with self._store.session("read") as session:
            require_admin(session, actor, "see a study's judge runs")
            study = study_row(session, study_id)
            found = run_row(session, study.id, run)
            chosen = (select(RunJudgmentRow.item_id, RunJudgmentRow.judgment_id)
                      .where(RunJudgmentRow.run_id == found.id).subquery())
            rows = session.execute(
                select(ItemRow.id, JudgmentRow.score, JudgmentRow.status)
                .outerjoin(chosen, chosen.c.item_id == ItemRow.id)
                .outerjoin(JudgmentRow, JudgmentRow.id == chosen.c.judgment_id)
                .where(ItemRow.study_id == study.id, ItemRow.removed_at.is_(None)).order_by(ItemRow.id))
            scores = {item_id: (score if status is not None and status != PARSE_FAILED else None)
                      for item_id, score, status in rows}
            return _to_run(session, found), scores

    def compare(self, actor: User, study_id: int, run_a: int | str, run_b: int | str, *, n_resamples: int = 1000,
                seed: int = 0) -> dict[str, Any]:
        """Judge vs judge on two runs of the study (core.agreement.judge_vs_judge), with both runs described and
        each changed item's external id."""
        from core.agreement.judge_vs_judge import judge_vs_judge

        first, scores_a = self.scores(actor, study_id, run_a)
        second, scores_b = self.scores(actor, study_id, run_b)
        with self._store.session("read") as session:
            study = study_row(session, study_id)
            external: dict[int, str | None] = {
                item_id: external_id for item_id, external_id in session.execute(
                    select(ItemRow.id, ItemRow.external_id).where(ItemRow.study_id == study.id))}
            scale = (study.scale_min, study.scale_max)
        report = judge_vs_judge(scores_a, scores_b, scale, names=(first.name, second.name), external_ids=external,
                                n_resamples=n_resamples, seed=seed)
        report["runs"] = [_describe(first), _describe(second)]
        return report


def _describe(run: JudgeRun) -> dict[str, Any]:
    return {"id": run.id, "name": run.name, "position": run.position, "config": run.config, "graded": run.graded,
            "label": run.label}


def create_run(studies: Any, actor: User, study_id: int, name: str | None, config: Mapping[str, Any]) -> int:
    """Create an empty judge run in the study and return its id (admins only); `studies` is a Studies or a Store.

    `config` is any JSON object, normally `run_config(backend.info, max_new_tokens, prompt_variant=..., **extra)`;
    grade the study's items into the run with core.studies.grading.grade_study(..., run_id=<this id>).
    """
    runs = Runs(studies) if isinstance(studies, Store) else studies.runs
    return int(runs.create(actor, study_id, name, config).id)
