"""Every judge run of a study travels with it: the published dataset and the backup carry the runs
(judge_runs.parquet), each run's judgments (run_judgments.parquet, a pairwise item's second order included) and the
newest audit (audit.json), and reopening gives the runs back, in order, with the same verdicts."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from core.audit.judge_runs import audit_study
from core.audit.perturbations import resolve
from core.store import Store
from core.studies import ANNOTATOR, Studies, StudySpec, User
from core.studies.audits import latest_audit
from core.studies.grading import grade_study
from core.studies.publish import export_study, reopen_study
from core.studies.runs import RunSecondOrderRow
from tests.fake_hub import FakeHub
from tests.fakes import ScriptedJudge
from tests.test_judgments import make_result

PASSWORD = "correct horse battery"
RUBRIC = "0: The MODEL OUTPUT is not faithful to the CONTEXT.\n1: The MODEL OUTPUT is faithful to the CONTEXT."


def graded_study(studies: Studies, store: Store, ada: User) -> int:
    """Three labelled items; run 1, a second run ("again"), an audit's two runs, and a second-order judgment."""
    study = studies.create_study(ada, StudySpec(name="Capitals", pass_criteria="Faithful?", rubric=RUBRIC,
                                                tags=("CONTEXT", "MODEL OUTPUT"), blind=False))
    ann = studies.create_user("ann", PASSWORD, role=ANNOTATOR)
    for number in range(3):
        item = studies.add_item(ada, study.id, {"CONTEXT": "Paris is the capital of France.",
                                                "MODEL OUTPUT": f"Paris, answer {number}."}, external_id=f"q{number}")
        studies.submit(ann, item.id, number % 2)
    grade_study(studies, ada, study.id, ScriptedJudge(), store)
    grade_study(studies, ada, study.id, ScriptedJudge(), store, new_run="again")
    audit_study(studies, ada, study.id, ScriptedJudge(), store, resolve(["whitespace"]), n_resamples=0)
    # A run's (B, A) order judgment of an item (core.studies.pairs), stored as the pairwise grading stores it.
    second = store.save_grade(make_result())
    runs = studies.runs.list_runs(ada, study.id)
    first_item = studies.list_items(ada, study.id)[0].id
    with store.session("save", write=True) as session:
        session.add(RunSecondOrderRow(run_id=runs[1].id, item_id=first_item, judgment_id=second,
                                      attached_at=datetime(2026, 12, 6, tzinfo=UTC)))
    return study.id


def run_view(studies: Studies, store: Store, admin: User, study_id: int) -> list[tuple[object, ...]]:
    """Each run as (position, name, config, graded, {external id: (score, status, raw output)})."""
    items = {item.id: item.external_id for item in studies.list_items(admin, study_id)}
    view = []
    for run in studies.runs.list_runs(admin, study_id):
        verdicts = {}
        for item_id, judgment_id in studies.runs.judgments(admin, study_id, run.id).items():
            stored = store.get_judgment(judgment_id)
            assert stored is not None
            verdicts[items[item_id]] = (stored.score, stored.status, stored.raw_output)
        view.append((run.position, run.name, run.config, run.graded, verdicts))
    return view


def second_orders(store: Store, study_id: int) -> list[tuple[str, str]]:
    """(run name, item external id) of each second-order judgment of the study."""
    from sqlalchemy import select

    from core.studies.rows import ItemRow
    from core.studies.runs import JudgeRunRow

    with store.session() as session:
        return [tuple(row) for row in session.execute(
            select(JudgeRunRow.name, ItemRow.external_id).join(RunSecondOrderRow, RunSecondOrderRow.run_id ==
                                                               JudgeRunRow.id)
            .join(ItemRow, ItemRow.id == RunSecondOrderRow.item_id).where(ItemRow.study_id == study_id))]


def test_every_judge_run_is_published_and_comes_back_on_reopening(studies: Studies, store: Store, ada: User,
                                                                   tmp_path: Path) -> None:
    study_id = graded_study(studies, store, ada)
    before = run_view(studies, store, ada, study_id)
    assert [name for _, name, *_ in before][:2] == ["Run 1", "again"] and len(before) == 4
    done = export_study(store, ada, study_id, tmp_path / "out", n_resamples=0)
    assert done.counts["judge_runs"] == 4 and done.counts["run_judgments"] == 4 * 3 + 1
    assert done.counts["judgments"] == 4 * 3 + 1  # every run's judgments, not only the first's
    linked = pd.read_parquet(tmp_path / "out" / "run_judgments.parquet")
    assert linked["second_order"].sum() == 1
    assert "audit.json" in [path.name for path in done.files]

    reopened = reopen_study(store, ada, tmp_path / "out")
    assert run_view(studies, store, ada, reopened.id) == before
    # The newest audit comes back too, naming the new study's runs and items.
    original, again = latest_audit(store, ada, study_id), latest_audit(store, ada, reopened.id)
    assert original is not None and again is not None and again.study_id == reopened.id
    assert (again.label, again.started_at, again.created_by) == (original.label, original.started_at, "ada")
    names = {run.id: run.name for run in studies.runs.list_runs(ada, reopened.id)}
    assert {name: names[run] for name, run in again.runs.items()} == {
        name: f"Audit {original.label}: {name}" for name in ("unperturbed", "whitespace")}
    externals = {item.id: item.external_id for item in studies.list_items(ada, reopened.id)}
    assert [externals[item] for item in again.item_ids] == ["q0", "q1", "q2"]
    assert again.summary["rows"][0]["flip_rate"] == original.summary["rows"][0]["flip_rate"]
    assert second_orders(store, reopened.id) == [("again", "q0")] == second_orders(store, study_id)
    # The first run is still the items' judgment (the reveal, the exports), and its ratings are the same.
    assert [row["model_score"] for row in studies.ratings(ada, reopened.id)] == [
        row["model_score"] for row in studies.ratings(ada, study_id)]


def test_the_backup_carries_every_run_and_the_audit(studies: Studies, store: Store, ada: User, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    from core.studies.backup import start_backup

    study_id = graded_study(studies, store, ada)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # only 127.0.0.1 is reached
    hub = FakeHub().start()
    scheduler = start_backup(store, "space/backup", every=60, token="hf_space_token", folder=tmp_path / "backup",
                             endpoint=hub.url)
    try:
        for _ in range(300):  # its first push starts at once, on its own thread
            if hub.repos.get("space/backup") and hub.repos["space/backup"].commits:
                break
            time.sleep(0.1)
        files = hub.repos["space/backup"].files
    finally:
        scheduler.stop()
        hub.stop()
    runs = pd.read_parquet(io.BytesIO(files[f"study-{study_id}/judge_runs.parquet"]))
    assert runs["name"].tolist()[:2] == ["Run 1", "again"] and set(runs["created_by"]) == {"ada"}  # real names
    audit = json.loads(files[f"study-{study_id}/audit.json"])
    assert [row["perturbation"] for row in audit["rows"]] == ["whitespace"]
    assert "## Robustness audit" in files[f"study-{study_id}/README.md"].decode()
    # The backup folder reopens with its runs.
    reopened = reopen_study(store, ada, tmp_path / "backup" / f"study-{study_id}")
    assert run_view(studies, store, ada, reopened.id) == run_view(studies, store, ada, study_id)
