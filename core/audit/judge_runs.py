"""Keep an audit with its study: each of its runs as a judge run (core.studies.runs), so the perturbed verdicts stay
beside the study's other runs (listed by `python -m core runs`, comparable in the Agreement tab's "Compare judge
runs" panel, pickable as the judge of a report), and its summary block in `study_audits` (core.studies.audits), so
the study's HTML report and its published dataset show it. The runner (core.audit.runner) calls `record_run` once
per graded run; `as_judge_runs` builds that callback, and `audit_study` runs an audit and keeps it whole (the CLI
and the Audit panel call it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.accounts import User
from core.audit.perturbations import Perturbation
from core.audit.runner import AuditResult, run_audit
from core.judge.base import JudgeBackend
from core.store import Store
from core.studies.audits import StoredAudit, keep_audit
from core.studies.service import Studies


def audit_run_name(stamp: str, run: str) -> str:
    """The judge run's name for one run of the audit started at `stamp`: unique within the study."""
    return f"Audit {stamp}: {run}"


@dataclass
class JudgeRunRecorder:
    """A record_run (core.audit.runner.RecordRun) that creates one judge run per audit run and attaches its
    judgments; `stamp` names the audit ("<UTC start>[ (n)]"), `run_ids` the runs made so far (run name -> id)."""

    studies: Studies
    actor: User
    study_id: int
    stamp: str
    started: datetime
    run_ids: dict[str, int] = field(default_factory=dict)

    def __call__(self, name: str, config: Mapping[str, Any], judgments: Mapping[int, int]) -> int:
        run = self.studies.runs.create(self.actor, self.study_id, audit_run_name(self.stamp, name),
                                       {**config, "audit_started": self.stamp})
        self.studies.runs.attach(self.actor, run.id, judgments.items())
        self.run_ids[name] = int(run.id)
        return int(run.id)


def as_judge_runs(studies: Studies, actor: User, study_id: int, *, started: datetime | None = None
                  ) -> JudgeRunRecorder:
    """A record_run that creates one judge run per audit run ("Audit <UTC start>: <run>") and attaches its
    judgments, item by item; admins only (the runs module checks, here already: it lists the study's runs)."""
    started = started or datetime.now(UTC)
    stamp = started.strftime("%Y-%m-%d %H:%M:%S UTC")
    # Two audits of a study started within the same second (a quick re-run) get " (2)", " (3)", ...
    names = {run.name for run in studies.runs.list_runs(actor, study_id)}
    base, again = stamp, 1
    while any(name.startswith(audit_run_name(stamp, "")) for name in names):
        again += 1
        stamp = f"{base} ({again})"
    return JudgeRunRecorder(studies, actor, study_id, stamp, started)


def keep(store: Store, actor: User, result: AuditResult, recorder: JudgeRunRecorder) -> StoredAudit:
    """Keep the audit's summary with its study (core.studies.audits), naming the judge runs that hold its verdicts."""
    return keep_audit(store, actor, result.study_id, label=recorder.stamp, started_at=recorder.started,
                      summary=result.block, runs=recorder.run_ids, item_ids=result.item_ids, seconds=result.seconds)


def audit_study(studies: Studies, actor: User, study_id: int, judge: JudgeBackend, store: Store,
                perturbations: Sequence[Perturbation], **options: Any) -> tuple[AuditResult, StoredAudit]:
    """core.audit.runner.run_audit (`options`: its keyword arguments but record_run), with every graded run kept as
    a judge run of the study and the summary kept with the study: (the result, the kept audit). Admins only."""
    recorder = as_judge_runs(studies, actor, study_id)
    result = run_audit(studies, actor, study_id, judge, store, perturbations, record_run=recorder, **options)
    return result, keep(store, actor, result, recorder)
