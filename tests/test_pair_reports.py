"""A pairwise study's report from the database (core.studies.pair_reports): the people's choices and a run's
verdicts through core.agreement.pairwise_report, the blind headline, the exports' choice and shown_order columns,
access, and `python -m core agreement STUDY --as ADMIN` as a real process."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.agreement.pairwise_report import pairwise_report
from core.store import Store
from core.studies import ADMIN, ANNOTATOR, PermissionDenied, Studies, StudyInputError, StudySpec, User
from core.studies.grading import grade_study
from core.studies.pair_reports import pair_choices, pair_report
from core.studies.pair_runs import pair_verdicts
from core.studies.reports import write_exports
from tests.pair_fakes import PairJudge, always_slot, answer
from tests.test_grade_cli import cli_env

PASSWORD = "correct horse battery"
REPO = Path(__file__).resolve().parents[1]


def kind_first_or_slot_1(first: str, second: str) -> str:
    """Items 0 and 1: prefer the kind answer; the others: always slot 1 (inconsistent)."""
    number = int(first.rsplit(" ", 1)[1])
    score = (0 if first.startswith("Kind") else 1) if number < 2 else 0
    return answer("- Kindness.", [first], score)


def seed_study(studies: Studies, admin: User, *, allow_tie: bool = False, blind: bool = True) -> tuple[int, list[User]]:
    """Four pairs, graded; two annotators who choose the kind answer except ann on the last item."""
    study = studies.create_study(admin, StudySpec(name="Kindness <b>", pass_criteria="Which reply is kinder?",
                                                  rubric="", mode="pairwise", allow_tie=allow_tie, blind=blind))
    for number in range(4):
        studies.add_item(admin, study.id, {"USER INPUT": f"Question {number}", "RESPONSE A": f"Kind answer {number}",
                                           "RESPONSE B": f"Curt answer {number}"}, external_id=f"p{number}")
    people = [studies.create_user(name, PASSWORD, role=ANNOTATOR) for name in ("ann", "bob")]
    for person in people:
        for item in studies.list_items(admin, study.id):
            order = studies.pair_order(person, item.id)
            wanted = "B" if person.username == "ann" and item.external_id == "p3" else "A"
            studies.submit_choice(person, item.id, str(order.index(wanted) + 1))
    return study.id, people


def test_the_study_report_is_the_pure_report_of_its_choices_and_verdicts(studies: Studies, ada: User,
                                                                          store: Store) -> None:
    study_id, _ = seed_study(studies, ada)
    grade_study(studies, ada, study_id, PairJudge(kind_first_or_slot_1), store)
    report = pair_report(studies, ada, study_id, n_resamples=200, seed=3)
    verdicts = pair_verdicts(studies, ada, study_id)
    expected = pairwise_report(pair_choices(studies, ada, study_id), {i: v.verdict for i, v in verdicts.items()},
                               {i: v.slot for i, v in verdicts.items()}, allow_tie=False, n_resamples=200, seed=3)
    assert {key: report[key] for key in expected} == expected
    # Majorities: A on p0-p2 (p3: ann B, bob A: none). Judge: A, A, inconsistent (slot 1), inconsistent.
    assert (report["n_items_majority"], report["n_items_no_majority"]) == (3, 1)
    assert report["accuracy"]["value"] == pytest.approx(2 / 3) and report["accuracy_consistent"]["value"] == 1.0
    assert report["position_consistency"]["value"] == 0.5 and report["position_bias"]["value"] == 1.0
    assert report["run"]["name"] == "Run 1" and report["study"]["name"] == "Kindness <b>"
    other = grade_study(studies, ada, study_id, PairJudge(always_slot(2)), store, new_run="Slot two")
    assert other.run is not None
    assert pair_report(studies, ada, study_id, "Slot two", n_resamples=0)["position_bias"]["value"] == 0.0


def test_a_blind_study_s_headline_is_the_choice_before_the_reveal(studies: Studies, ada: User, store: Store) -> None:
    study_id, (ann, _) = seed_study(studies, ada)
    grade_study(studies, ada, study_id, PairJudge(kind_first_or_slot_1), store)
    item = studies.list_items(ada, study_id)[0]
    label = next(a for a in studies.my_annotations(ann, study_id) if a.item_id == item.id)
    studies.edit(ann, label.id, score=1)  # ann changes her mind to B after the reveal
    row = next(r for r in pair_choices(studies, ada, study_id) if r["item_id"] == item.id and r["annotator"] == "ann")
    assert (row["choice"], row["choice_now"]) == ("A", "B")


def test_exports_carry_the_choice_and_the_order_shown(studies: Studies, ada: User, tmp_path: Path) -> None:
    study_id, _ = seed_study(studies, ada)
    rows = studies.export_rows(ada, study_id)
    assert {row["choice"] for row in rows} == {"A", "B"} and {row["shown_order"] for row in rows} <= {"AB", "BA"}
    report = pair_report(studies, ada, study_id, n_resamples=0)
    csv_path, jsonl_path, _ = write_exports(studies, ada, study_id, report, tmp_path)
    with csv_path.open(encoding="utf-8") as handle:
        assert {"choice", "shown_order"} <= set(next(csv.DictReader(handle)))
    assert json.loads(jsonl_path.read_text(encoding="utf-8").splitlines()[0])["choice"] in ("A", "B")
    single = studies.create_study(ada, StudySpec(name="s", pass_criteria="p", rubric="0: no\n1: yes"))
    item = studies.add_item(ada, single.id, {"MODEL OUTPUT": "text"})
    studies.submit(studies.create_user("cy", PASSWORD, role=ANNOTATOR), item.id, 1)
    assert "choice" not in studies.export_rows(ada, single.id)[0]  # single-response exports are unchanged


def test_the_report_is_for_admins_and_pairwise_studies(studies: Studies, ada: User) -> None:
    study_id, (ann, _) = seed_study(studies, ada)
    for action in (pair_report, pair_choices, pair_verdicts):
        with pytest.raises(PermissionDenied):
            action(studies, ann, study_id)
    single = studies.create_study(ada, StudySpec(name="s", pass_criteria="p", rubric="0: no\n1: yes"))
    with pytest.raises(StudyInputError, match="not a pairwise study"):
        pair_report(studies, ada, single.id)
    assert pair_report(studies, ada, study_id, n_resamples=0)["judge"]["ungraded"] == 4  # no run yet


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, env=cli_env(), capture_output=True,
                          text=True, timeout=300)


def test_agreement_study_as_admin_prints_the_pairwise_report(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with Store.from_path(db) as store:
        studies = Studies(store, password_cost=16)
        ada = studies.create_user("ada", PASSWORD, role=ADMIN)
        study_id, _ = seed_study(studies, ada)
        grade_study(studies, ada, study_id, PairJudge(kind_first_or_slot_1), store)
        single = studies.create_study(ada, StudySpec(name="s", pass_criteria="p", rubric="0: no\n1: yes"))
        for number in range(3):
            item = studies.add_item(ada, single.id, {"MODEL OUTPUT": f"text {number}"})
            studies.submit(studies.get_user("ann"), item.id, number % 2)  # type: ignore[arg-type]
    url, out = f"sqlite:///{db}", tmp_path / "report.json"
    done = run_cli("agreement", str(study_id), "--as", "ada", "--db", url, "--resamples", "100", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "Position consistency" in done.stdout and "Accuracy vs the human majority: 66.7% (2 of 3)" in done.stdout
    assert "Position bias (inconsistent verdicts picking slot 1): 100.0% (2 of 2)" in done.stdout
    assert json.loads(out.read_text(encoding="utf-8"))["position_consistency"]["value"] == 0.5
    refused = run_cli("agreement", str(study_id), "--as", "ann", "--db", url)
    assert refused.returncode == 2 and "error:" in refused.stderr and "Traceback" not in refused.stderr
    unknown = run_cli("agreement", str(study_id), "--as", "ada", "--db", url, "--run", "nope")
    assert unknown.returncode == 2 and "no judge run" in unknown.stderr
    numeric = run_cli("agreement", str(single.id), "--as", "ada", "--db", url, "--resamples", "0")
    assert numeric.returncode == 0, numeric.stderr
    assert "Human vs model" in numeric.stdout and "Position consistency" not in numeric.stdout
