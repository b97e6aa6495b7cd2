"""A robustness audit kept with its study (core.studies.audits, migration 9; core.audit.judge_runs.audit_study) and
shown where the study is reported: the agreement report's context (core.studies.report_context), its HTML page
(webapp.report_html) and the published dataset (audit.json, the card). The audit runs the tiny real Phi-3 judge
through the real transformers back-end on a real SQLite study; the Hub is tests.fake_hub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from core.agreement import agreement_report
from core.audit.judge_runs import as_judge_runs, audit_study, keep
from core.audit.perturbations import resolve
from core.audit.runner import UNPERTURBED, run_audit
from core.errors import PermissionDenied
from core.store import MIGRATIONS, Store
from core.studies import ADMIN, Studies, User
from core.studies.audits import StudyAuditRow, keep_audit, latest_audit, which_audit
from core.studies.publish import export_study, publish_study
from core.studies.report_context import report_context
from tests.databases import column_names, raw
from tests.fake_hub import FakeHub
from tests.fakes import ScriptedJudge
from tests.test_audit_runner import PASSWORD, make_study
from tests.test_webapp_render import Markup
from webapp.report_html import report_to_html


def test_migration_9_adds_an_empty_audit_table_to_an_existing_database(db_url: str) -> None:
    """A schema-8 database with a graded, labelled study: opening it adds study_audits and changes nothing else."""
    # Schema 8, plus migration 10's column, which this code writes when it adds a user.
    with Store(db_url, migrations=[*MIGRATIONS[:8], MIGRATIONS[9]]) as old:
        studies = Studies(old, password_cost=16)
        boss = studies.create_user("boss", PASSWORD, role=ADMIN)
        study_id = make_study(studies, boss)
        run_audit(studies, boss, study_id, ScriptedJudge(), old, resolve(["whitespace"]), n_resamples=0,
                  record_run=as_judge_runs(studies, boss, study_id))  # its runs, kept as judge runs then
    tables = ("users", "studies", "items", "annotations", "judgments", "judge_runs", "run_judgments")
    with raw(db_url) as sql:
        before = {table: sql.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2")).fetchall()  # noqa: S608
                  for table in tables}
    with Store(db_url) as new:
        assert new.schema_version() == len(MIGRATIONS) and MIGRATIONS[8].name == "study_audits"
        studies = Studies(new, password_cost=16)
        boss = studies.get_user("boss")
        assert boss is not None and latest_audit(new, boss, study_id) is None
        assert len(studies.runs.list_runs(boss, study_id)) == 2  # the old audit's runs stay runs
    with raw(db_url) as sql:
        assert {table: sql.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2")).fetchall()  # noqa: S608
                for table in tables} == before
    columns = column_names(db_url, "study_audits")
    assert columns == [column.name for column in StudyAuditRow.__table__.columns]


def test_an_audit_of_the_tiny_judge_is_kept_and_shown_in_the_report_and_the_published_study(
        studies: Studies, store: Store, ada: User, trained_judge: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    study_id = make_study(studies, ada)
    result, kept = audit_study(studies, ada, study_id, trained_judge, store,
                               resolve(["whitespace", "reverse-rubric"]), sample=2, seed=3, batch_size=2,
                               n_resamples=100)
    # Kept: the block as computed, which items, and the judge runs that hold the verdicts.
    assert latest_audit(store, ada, study_id) == kept
    assert kept.summary == json.loads(json.dumps(result.block)) and kept.item_ids == result.item_ids
    runs = {run.id: run for run in studies.runs.list_runs(ada, study_id)}
    assert list(kept.runs) == [UNPERTURBED, "whitespace", "reverse-rubric"]
    for name, run_id in kept.runs.items():
        assert runs[run_id].name == f"Audit {kept.label}: {name}" and runs[run_id].graded == 2
    block = kept.block()
    assert block["stored"]["audit_id"] == kept.id and block["stored"]["by"] == "ada"
    which = which_audit(block)
    assert which.startswith(f"Audit #{kept.id}, started {kept.label} by ada, on a random sample of 2 of the "
                            "study's 3 items (seed 3); seed 3, 100 bootstrap resamples.")

    # The report: the first judge run, named; the audit's table and its flip-rate chart in the HTML page.
    context = report_context(store, ada, study_id)
    first = min(runs.values(), key=lambda run: run.position)
    assert context["judge_run"]["id"] == first.id and context["judge_run"]["first"] is True
    assert context["audit"] == block
    report = {**agreement_report(studies.ratings(ada, study_id), (0, 1), n_resamples=0), **context}
    page = report_to_html(report, [], title="Capitals")
    shown = Markup(page).all_text
    assert f"Judge run: \u201c{first.name}\u201d (#{first.id}) (the study's first run)" in shown
    assert "Robustness audit" in shown and which in shown
    for row in result.block["rows"]:
        assert row["perturbation"] in shown
    assert "Flip rate [95% CI]" in shown and "flip rate (95% CI)" in page  # the table, and the chart's axis

    # The published study: audit.json, the report (JSON and HTML) and the card's section.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # only 127.0.0.1 is reached
    hub = FakeHub().start()
    try:
        publish_study(store, ada, study_id, "team/capitals", token="hf_token", endpoint=hub.url,
                      report_html=lambda published: report_to_html(dict(published), [], title="Capitals"))
        files = hub.repos["team/capitals"].files
    finally:
        hub.stop()
    assert json.loads(files["audit.json"]) == {**block, "stored": {**block["stored"], "by": "owner"}}  # pseudonym
    block, which = json.loads(files["audit.json"]), which.replace("by ada", "by owner")
    assert json.loads(files["report.json"])["audit"] == block
    assert json.loads(files["report.json"])["judge_run"]["id"] == first.id
    assert which in Markup(files["report.html"].decode()).all_text
    card = files["README.md"].decode()
    assert "## Robustness audit" in card and which in card and "The whole summary is `audit.json`." in card
    for row in result.block["rows"]:  # (the tiny judge may give no score to a perturbed prompt: "—")
        rate = row["flip_rate"]["value"]
        assert f"| {row['perturbation']} | {row['n_items']} | {row['flips']} | " + (
            "—" if rate is None else f"{rate:.1%} [") in card
    assert "audit.json" in json.loads(files["study.json"])["files"]


def test_the_newest_audit_is_the_one_shown_and_a_study_never_audited_shows_none(
        studies: Studies, store: Store, ada: User, tmp_path: Path) -> None:
    study_id = make_study(studies, ada)
    assert "audit" not in report_context(store, ada, study_id)
    done = export_study(store, ada, study_id, tmp_path / "before", n_resamples=0)
    assert "audit.json" not in [path.name for path in done.files]
    assert "Robustness audit" not in (tmp_path / "before" / "README.md").read_text(encoding="utf-8")
    _, first = audit_study(studies, ada, study_id, ScriptedJudge(), store, resolve(["whitespace"]), n_resamples=0)
    _, second = audit_study(studies, ada, study_id, ScriptedJudge(), store, resolve(["reverse-rubric"]),
                            n_resamples=0)
    assert second.id > first.id and latest_audit(store, ada, study_id) == second
    assert [row["perturbation"] for row in report_context(store, ada, study_id)["audit"]["rows"]] == [
        "reverse-rubric"]
    assert second.label != first.label  # the same second: "... (2)"; their judge runs stay apart
    assert set(first.runs.values()).isdisjoint(second.runs.values())


def test_annotators_may_neither_keep_nor_read_an_audit(studies: Studies, store: Store, ada: User) -> None:
    study_id = make_study(studies, ada)
    ann = studies.get_user("ann")
    assert ann is not None
    result = run_audit(studies, ada, study_id, ScriptedJudge(), store, resolve(["whitespace"]), n_resamples=0)
    recorder = as_judge_runs(studies, ada, study_id)
    with pytest.raises(PermissionDenied, match="Only an admin"):
        keep(store, ann, result, recorder)
    with pytest.raises(PermissionDenied, match="Only an admin"):
        keep_audit(store, ann, study_id, label="x", started_at=recorder.started, summary={}, runs={}, item_ids=[])
    kept = keep(store, ada, result, recorder)
    with pytest.raises(PermissionDenied, match="Only an admin"):
        latest_audit(store, ann, study_id)
    with pytest.raises(PermissionDenied, match="Only an admin"):
        report_context(store, ann, study_id)
    assert latest_audit(store, ada, study_id) == kept
