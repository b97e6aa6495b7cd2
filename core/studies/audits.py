"""Robustness audits kept with their study (table `study_audits`, migration 9).

Each audit's runs are judge runs of the study (core.audit.judge_runs); its summary, the audit block of
core.audit.report.audit_report (per perturbation: flips, flip rate with its Clopper-Pearson interval, kappa vs the
unperturbed run with its bootstrap interval, the change in agreement with the people), is stored here, one row per
audit, never replaced. It is stored rather than recomputed from the judge runs because it cannot be recomputed
exactly: a perturbation that applied to no item has no run, the items it could not apply to (and why) are kept
nowhere else, the bootstrap's resamples and seed are the audit's, and the human consensus it compared with moves
as people keep labelling. The newest audit is the one the study's HTML report and its published dataset show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.accounts import User, UserRow, require_admin
from core.store import Base, Store, UTCDateTime
from core.studies.checks import check_json
from core.studies.rows import study_row


class StudyAuditRow(Base):
    """One robustness audit of a study (table `study_audits`, migration 9)."""

    __tablename__ = "study_audits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    runs: Mapped[dict[str, Any]] = mapped_column(JSON)
    item_ids: Mapped[list[int]] = mapped_column(JSON)
    seconds: Mapped[float | None] = mapped_column(Float)


@dataclass(frozen=True)
class StoredAudit:
    """A kept audit: when and by whom it ran, its summary block and the judge runs holding its verdicts."""

    id: int
    study_id: int
    label: str  # "<UTC start>[ (n)]", as its judge runs' names say it
    started_at: datetime
    created_by: str | None
    summary: dict[str, Any]
    runs: dict[str, int]  # run name -> judge run id
    item_ids: tuple[int, ...]
    seconds: float | None

    def block(self) -> dict[str, Any]:
        """The summary block with which audit it is ("stored": id, label, start, who, judge runs), JSON-ready; what
        the HTML report (webapp.report_audit), report.json, audit.json and the dataset card show."""
        return {**self.summary, "stored": {
            "audit_id": self.id, "label": self.label, "started_at": self.started_at.isoformat(),
            "by": self.created_by, "judge_runs": dict(self.runs), "item_ids": list(self.item_ids),
            "seconds": self.seconds}}


def which_audit(block: Mapping[str, Any]) -> str:
    """One sentence naming the audit of a summary block: when it ran, by whom, on which items, with which seed (the
    sample's and the bootstrap's) and the judge runs holding its verdicts; "" for a block that was never kept."""
    stored = block.get("stored")
    if not isinstance(stored, Mapping):
        return ""
    sample = block.get("sample") or {}
    boot = block.get("bootstrap") or {}
    who = f" by {stored['by']}" if stored.get("by") else ""
    items = sample.get("note") or f"{block.get('n_items', 0)} items"
    seed = sample.get("seed") if sample.get("seed") is not None else boot.get("seed")
    return (f"Audit #{stored.get('audit_id')}, started {stored.get('label')}{who}, on {items}; seed {seed}, "
            f"{boot.get('n_resamples', 0)} bootstrap resamples. Its verdicts are the study's judge runs named "
            f"\u201cAudit {stored.get('label')}: \u2026\u201d.")


def with_names(block: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """The block with who ran the audit named as in a dataset (`names`: username -> name shown, e.g. annotator-1 or
    owner, core.studies.dataset); someone the dataset does not name becomes "an admin"."""
    stored = block.get("stored")
    if not isinstance(stored, Mapping) or not stored.get("by"):
        return dict(block)
    return {**block, "stored": {**stored, "by": names.get(str(stored["by"]), "an admin")}}


def _to_audit(session: Session, row: StudyAuditRow) -> StoredAudit:
    creator = (session.scalar(select(UserRow.username).where(UserRow.id == row.created_by_id))
               if row.created_by_id is not None else None)
    started = row.started_at if row.started_at.tzinfo else row.started_at.replace(tzinfo=UTC)
    return StoredAudit(row.id, row.study_id, row.label, started, creator, dict(row.summary),
                       {str(name): int(run) for name, run in row.runs.items()}, tuple(int(i) for i in row.item_ids),
                       row.seconds)


def latest_in(session: Session, study_id: int) -> StoredAudit | None:
    """The study's newest kept audit, read in `session` (the caller has checked who asks); None if never audited."""
    row = session.scalar(select(StudyAuditRow).where(StudyAuditRow.study_id == study_id)
                         .order_by(StudyAuditRow.id.desc()).limit(1))
    return None if row is None else _to_audit(session, row)


def keep_audit(store: Store, actor: User, study_id: int, *, label: str, started_at: datetime,
               summary: Mapping[str, Any], runs: Mapping[str, int], item_ids: Sequence[int],
               seconds: float | None = None) -> StoredAudit:
    """Keep an audit's summary with its study (admins only; PermissionDenied otherwise), after the audits before it."""
    block = check_json(dict(summary), "audit summary")
    kept_runs = {str(name): int(run) for name, run in runs.items()}

    def work(session: Session) -> StoredAudit:
        me = require_admin(session, actor, "keep a study's audit")
        study = study_row(session, study_id)
        row = StudyAuditRow(study_id=study.id, label=str(label)[:200], started_at=started_at, created_by_id=me.id,
                            summary=block, runs=kept_runs, item_ids=[int(item) for item in item_ids],
                            seconds=seconds)
        session.add(row)
        session.flush()
        return _to_audit(session, row)

    return store.write("save an audit to", work)


def latest_audit(store: Store, actor: User, study_id: int) -> StoredAudit | None:
    """The study's newest kept audit (admins only); None when it was never audited (or before migration 9)."""
    with store.session("read") as session:
        require_admin(session, actor, "see a study's audits")
        study = study_row(session, study_id)
        return latest_in(session, study.id)
