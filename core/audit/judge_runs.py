"""Keep each run of an audit as a judge run of its study (core.studies.runs), so the perturbed verdicts stay
beside the study's other runs: listed by `python -m core runs`, comparable in the Agreement tab's "Compare judge
runs" panel and pickable as the judge of a report. The runner (core.audit.runner) calls `record_run` once per
graded run; this builds that callback."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.accounts import User
from core.audit.runner import RecordRun
from core.studies.service import Studies


def audit_run_name(stamp: str, run: str) -> str:
    """The judge run's name for one run of the audit started at `stamp`: unique within the study."""
    return f"Audit {stamp}: {run}"


def as_judge_runs(studies: Studies, actor: User, study_id: int, *, started: datetime | None = None) -> RecordRun:
    """A record_run that creates one judge run per audit run ("Audit <UTC start>: <run>") and attaches its
    judgments, item by item; admins only (the runs module checks, here already: it lists the study's runs)."""
    stamp = (started or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    # Two audits of a study started within the same second (a quick re-run) get " (2)", " (3)", ...
    names = {run.name for run in studies.runs.list_runs(actor, study_id)}
    base, again = stamp, 1
    while any(name.startswith(audit_run_name(stamp, "")) for name in names):
        again += 1
        stamp = f"{base} ({again})"

    def record(name: str, config: Mapping[str, Any], judgments: Mapping[int, int]) -> int:
        run = studies.runs.create(actor, study_id, audit_run_name(stamp, name), {**config, "audit_started": stamp})
        studies.runs.attach(actor, run.id, judgments.items())
        return int(run.id)

    return record
