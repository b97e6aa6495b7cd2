"""What a study's agreement report says about where its numbers come from, besides the numbers: which judge run's
verdicts are the model's (core.studies.runs) and the study's newest robustness audit (core.studies.audits).

The Agreement tab's report (and its JSON / HTML downloads) and the published study add these to the report of
core.agreement.agreement_report under the keys "judge_run" and "audit".
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.accounts import User, require_admin
from core.store import Store
from core.studies import runs
from core.studies.audits import latest_in
from core.studies.rows import study_row


def judge_run_entry(session: Session, study_id: int, run: int | str | None = None) -> dict[str, Any] | None:
    """The judge run whose verdicts a report compares with (`run`: its id or name; None: the study's first run),
    JSON-ready: id, name, position, first, config and its one-line description; None before the study is graded."""
    if run is None:
        first = runs.first_run_id(session, study_id)
        if first is None:
            return None
        run = first
    row = runs.run_row(session, study_id, run)
    return {"id": row.id, "name": row.name, "position": row.position, "first": row.position == 1,
            "config": dict(row.config), "description": runs.describe_config(row.config)}


def context_in(session: Session, study_id: int, run: int | str | None = None) -> dict[str, Any]:
    """{"judge_run": judge_run_entry, "audit": the newest kept audit's block}, each left out when there is none."""
    found: dict[str, Any] = {}
    entry = judge_run_entry(session, study_id, run)
    if entry is not None:
        found["judge_run"] = entry
    audit = latest_in(session, study_id)
    if audit is not None:
        found["audit"] = audit.block()
    return found


def report_context(store: Store, actor: User, study_id: int, run: int | str | None = None) -> dict[str, Any]:
    """context_in, for an admin (PermissionDenied otherwise): what to add to the study's agreement report."""
    with store.session("read") as session:
        require_admin(session, actor, "see a study's report")
        return context_in(session, study_row(session, study_id).id, run)
