"""Judge runs (core.studies.runs): migration 7 on older databases, runs that never overwrite each other (the real
tiny model through the real transformers back-end), the first run mirrored to items.judgment_id, the ratings of
a chosen run, access, and the `runs` / `compare-runs` / `grade-study --new-run` commands as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from core.grading import GradeRequest
from core.store import MIGRATIONS, Store
from core.studies import ADMIN, ANNOTATOR, PermissionDenied, Studies, StudyInputError, StudySpec, User
from core.studies.grading import FAILED, grade_study
from core.studies.runs import PUBLISHED, config_from_repro, create_run, run_config
from tests.conftest import TEACH_CRITERIA, TEACH_FIELDS, TEACH_RUBRIC
from tests.databases import column_names, raw
from tests.fakes import ScriptedJudge
from tests.test_grade_cli import cli_env
from tests.test_judgments import REPRO, make_result

PASSWORD = "correct horse battery"
REPO = Path(__file__).resolve().parents[1]
RUBRIC = "0: The MODEL OUTPUT is not faithful to the CONTEXT.\n1: The MODEL OUTPUT is faithful to the CONTEXT."
TABLES = ("users", "studies", "items", "annotations", "judgments", "item_claims")


@pytest.fixture
def ann(studies: Studies) -> User:
    return studies.create_user("ann", PASSWORD, role=ANNOTATOR)


def make_study(studies: Studies, admin: User, count: int, *, name: str = "Capitals", max_new_tokens: int = 64,
               criteria: str = "Is it faithful?", rubric: str = RUBRIC) -> int:
    study = studies.create_study(admin, StudySpec(name=name, pass_criteria=criteria, rubric=rubric,
                                                  tags=("CONTEXT", "MODEL OUTPUT"),
                                                  judge_settings={"max_new_tokens": max_new_tokens}))
    for number in range(1, count + 1):
        studies.add_item(admin, study.id, {"CONTEXT": "Paris is the capital of France.",
                                           "MODEL OUTPUT": f"Output {number}."}, external_id=f"c{number}")
    return study.id


def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with raw(url) as sql:
        return {table: [tuple(row) for row in sql.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))]  # noqa: S608
                for table in TABLES}


# --- migration 7 -----------------------------------------------------------------------------------------


def test_migration_7_makes_each_study_s_judgments_its_run_1_and_loses_nothing(db: Path) -> None:
    """A schema-6 database written by this code: the items' judgments become run 1, every old row stays as it was.

    SQLite only: that schema 6 carries migration 8's columns, and migration 8 also creates a table referring to
    migration 7's judge_runs, which PostgreSQL (unlike SQLite) refuses before judge_runs exists. Migration 7 runs on
    PostgreSQL on the previous release's data in test_the_previous_release_database_gets_its_run_1 and
    tests/test_upgrade.py.
    """
    url = f"sqlite:///{db}"
    other = {**REPRO, "quantization": "bf16", "dtype": "bfloat16"}
    # Schema 6, plus migration 8's and 10's columns, which this code writes whenever it adds a study, a label or a
    # user: migration 7 is what runs on opening below (and 9, which adds a table of its own).
    with Store(url, migrations=[*MIGRATIONS[:6], MIGRATIONS[7], MIGRATIONS[9]]) as old:
        studies = Studies(old, password_cost=16)
        boss = studies.create_user("boss", PASSWORD, role=ADMIN)
        ann = studies.create_user("ann", PASSWORD, role=ANNOTATOR)
        graded = make_study(studies, boss, 4, name="Graded")
        untouched = make_study(studies, boss, 2, name="Never graded")
        items = [item.id for item in studies.list_items(boss, graded)]
        # Two judgments by the nf4 judge, one by a bf16 one (regraded by hand once), item 4 never graded.
        judgments = [old.save_grade(make_result()), old.save_grade(replace(make_result(), repro=other)),
                     old.save_grade(make_result())]
        judgments.append(old.save_grade(make_result()))  # a History judgment attached to no item
        studies.submit(ann, items[0], 1, comment="kept")
    with raw(url) as sql:  # schema 6 had no judge runs: attach as that code did
        for item_id, judgment_id in zip(items[:3], judgments[:3], strict=True):
            sql.execute(text("UPDATE items SET judgment_id = :j WHERE id = :i"), {"j": judgment_id, "i": item_id})
    before = table_rows(url)

    with Store(url) as new:
        assert new.schema_version() == len(MIGRATIONS) and MIGRATIONS[6].name == "judge_runs"
        studies = Studies(new, password_cost=16)
        boss = studies.get_user("boss")
        assert boss is not None
        (run,) = studies.runs.list_runs(boss, graded)
        assert studies.runs.list_runs(boss, untouched) == []  # no judgment, no run until it is graded
        # The configuration most of the judgments record; made by the migration, by nobody known.
        assert run.config == config_from_repro(REPRO) and run.config["quantization"] == "nf4"
        assert (run.position, run.name, run.created_by, run.graded, run.is_default) == (1, "Run 1", None, 3, True)
        assert studies.runs.judgments(boss, graded, run.id) == dict(zip(items[:3], judgments[:3], strict=True))
        # Run 1's ratings are the study's ratings as before.
        assert studies.ratings(boss, graded, run=run.id) == studies.ratings(boss, graded) != []
    after = table_rows(url)
    for table, old_rows in before.items():  # every old column keeps its values (none was added to these)
        assert after[table] == old_rows, table
    with raw(url) as sql:
        assert sql.execute(text("SELECT run_id, item_id, judgment_id FROM run_judgments ORDER BY item_id")).fetchall() \
            == [(run.id, item_id, judgment_id) for item_id, judgment_id in zip(items[:3], judgments[:3], strict=True)]
        sql.execute(text("DELETE FROM judgments WHERE id = :j"), {"j": judgments[1]})  # deleted from History
        assert sql.execute(text("SELECT COUNT(*) FROM run_judgments")).scalar_one() == 2
        assert sql.execute(text("SELECT judgment_id FROM items WHERE id = :i"), {"i": items[1]}).scalar_one() is None


def test_the_previous_release_database_gets_its_run_1(db_url: str, db: Path) -> None:
    """tests/data/release-schema2.db (schema 2) through every migration: its one attached judgment is run 1."""
    from tests.test_upgrade import release_database

    with Store(release_database(db_url, db)) as store:
        studies = Studies(store)
        ada = studies.authenticate("ada", "release-2-admin-pw")
        assert ada is not None
        (study,) = studies.list_studies(ada)
        items = studies.list_items(ada, study.id)
        (run,) = studies.runs.list_runs(ada, study.id)
        assert studies.runs.judgments(ada, study.id, run.id) == {items[0].id: items[0].judgment_id}
        assert run.config == {"backend": "scripted", "model_id": "tests/scripted-judge", "revision": None,
                              "quantization": "none", "dtype": "n/a", "prompt_variant": PUBLISHED,
                              "decoding": {"strategy": "greedy", "temperature": 0.0, "max_new_tokens": 1024}}
        # The same scripted judge continues run 1: only the three ungraded items are graded, into run 1.
        result = grade_study(studies, ada, study.id, ScriptedJudge(), store)
        assert (result.total, result.run_created, result.run.id if result.run else None) == (3, False, run.id)
        assert len(studies.runs.judgments(ada, study.id, run.id)) == 4


@pytest.mark.parametrize("model", ["JudgeRunRow", "RunJudgmentRow"])
def test_orm_rows_match_the_migrated_schema(store: Store, db_url: str, model: str) -> None:
    from core.studies import runs

    row = getattr(runs, model)
    columns = column_names(db_url, row.__tablename__)
    assert columns == [column.name for column in row.__table__.columns]


# --- runs never overwrite each other ---------------------------------------------------------------------


def test_a_differently_configured_judge_starts_a_new_run_and_the_first_run_stays_the_items_judgment(
    studies: Studies, store: Store, ada: User
) -> None:
    study_id = make_study(studies, ada, 3)
    first = grade_study(studies, ada, study_id, ScriptedJudge(), store)
    assert first.run is not None and first.run_created and first.run.is_default and first.graded == 3
    items = {item.id: item.judgment_id for item in studies.list_items(ada, study_id)}
    assert studies.runs.judgments(ada, study_id, first.run.id) == items

    again = grade_study(studies, ada, study_id, ScriptedJudge(), store)  # the same judge: its run, nothing left
    assert (again.total, again.run_created, again.run.id if again.run else None) == (0, False, first.run.id)

    other = ScriptedJudge(answer=ScriptedJudge().answer.replace("<score>\n1\n", "<score>\n0\n"))
    other.info = replace(other.info, quantization="nf4")  # another quantization of the same model
    second = grade_study(studies, ada, study_id, other, store)
    assert second.run is not None and second.run_created and second.run.position == 2 and second.graded == 3
    assert second.run.name == "Run 2" and second.run.config["quantization"] == "nf4"
    # Run 1 is untouched, and still what items.judgment_id (the reveal, the exports) says.
    assert studies.runs.judgments(ada, study_id, first.run.id) == items
    assert {item.id: item.judgment_id for item in studies.list_items(ada, study_id)} == items
    run2 = studies.runs.judgments(ada, study_id, second.run.id)
    assert set(run2) == set(items) and not set(run2.values()) & set(items.values())
    # The ratings of each run carry that run's scores; the default is the first run.
    assert {row["model_score"] for row in studies.ratings(ada, study_id)} == {1}
    assert {row["model_score"] for row in studies.ratings(ada, study_id, run=second.run.id)} == {0}
    assert studies.ratings(ada, study_id, run="Run 2") == studies.ratings(ada, study_id, run=second.run.id)
    # Judge vs judge: every item flipped.
    compared = studies.runs.compare(ada, study_id, first.run.id, second.run.id, n_resamples=200)
    assert compared["n_items"] == 3 and compared["flip_rate"]["value"] == 1.0
    assert [entry["score_a"] - entry["score_b"] for entry in compared["changed"]] == [1, 1, 1]
    assert [run["name"] for run in compared["runs"]] == ["Run 1", "Run 2"]

    # Asked explicitly: a new run with the same judge, named; a taken name is refused before grading.
    named = grade_study(studies, ada, study_id, ScriptedJudge(), store, new_run="again")
    assert named.run is not None and (named.run.name, named.run.position, named.graded) == ("again", 3, 3)
    with pytest.raises(StudyInputError, match="already has a judge run named 'again'"):
        grade_study(studies, ada, study_id, ScriptedJudge(), store, new_run="again")
    assert [run.name for run in studies.runs.list_runs(ada, study_id)] == ["Run 1", "Run 2", "again"]
    # Regrade failed works within this judge's run; a judge no run has is told to grade as a new run.
    assert grade_study(studies, ada, study_id, ScriptedJudge(), store, which=FAILED).total == 0
    stranger = ScriptedJudge()
    stranger.info = replace(stranger.info, model_id="someone/else")
    with pytest.raises(StudyInputError, match="Grade all items to grade them as a new run"):
        grade_study(studies, ada, study_id, stranger, store, which=FAILED)


def test_the_audit_s_door_a_named_run_a_changed_request_and_a_sample(studies: Studies, store: Store,
                                                                       ada: User) -> None:
    """create_run + grade_study(run_id=..., prepare=..., item_ids=...): what the robustness audit uses."""
    study_id = make_study(studies, ada, 4)
    judge = ScriptedJudge()
    baseline = grade_study(studies, ada, study_id, judge, store)
    assert baseline.run is not None
    config = run_config(judge.info, 64, prompt_variant="rubric-reversed", perturbation="rubric lines reversed")
    run_id = create_run(studies, ada, study_id, "rubric reversed", config)
    assert create_run(store, ada, study_id, None, {"anything": "json"}) != run_id  # a Store works too: "Run 3"
    sample = [item.id for item in studies.list_items(ada, study_id)][:2]

    def reverse(item: Any, request: GradeRequest) -> GradeRequest:
        return replace(request, rubric="\n".join(reversed(request.rubric.splitlines())))

    before = len(judge.prompts)
    result = grade_study(studies, ada, study_id, judge, store, run_id=run_id, prepare=reverse, item_ids=sample)
    assert (result.total, result.graded, result.skipped, result.run_created) == (2, 2, 2, False)
    assert all(prompt.index("1: The MODEL") < prompt.index("0: The MODEL") for prompt in judge.prompts[before:])
    run = studies.runs.get(ada, study_id, run_id)
    assert (run.name, run.graded, run.config["perturbation"]) == ("rubric reversed", 2, "rubric lines reversed")
    assert "prompt: rubric-reversed" in run.label and "perturbation: rubric lines reversed" in run.label
    assert set(studies.runs.judgments(ada, study_id, run_id)) == set(sample)
    # Grade all with the plain judge continues the baseline, never the audit's run.
    assert grade_study(studies, ada, study_id, judge, store).run == studies.runs.get(ada, study_id, baseline.run.id)
    with pytest.raises(StudyInputError, match="no judge run 999"):
        grade_study(studies, ada, study_id, judge, store, run_id=999)
    with pytest.raises(StudyInputError, match="cannot be a number"):
        create_run(studies, ada, study_id, "42", {})
    with pytest.raises(StudyInputError, match="must be a JSON object"):
        create_run(studies, ada, study_id, "bad", ["not", "an", "object"])  # type: ignore[arg-type]


def test_attaching_outside_a_run_goes_to_the_first_run(studies: Studies, store: Store, ada: User) -> None:
    study_id = make_study(studies, ada, 2)
    first, second = (item.id for item in studies.list_items(ada, study_id))
    judgment = store.save_grade(make_result())
    studies.attach_judgment(ada, first, judgment)  # no run yet: run 1 from the judgment's own record
    (run,) = studies.runs.list_runs(ada, study_id)
    assert run.config == config_from_repro(REPRO) and run.created_by == "ada"
    added = studies.add_item(ada, study_id, {"CONTEXT": "c", "MODEL OUTPUT": "new"},
                             judgment_id=store.save_grade(make_result()))
    assert studies.runs.judgments(ada, study_id, run.id) == {first: judgment, added.id: added.judgment_id}
    # Into another run: the item's judgment_id (the first run's) does not move.
    other = studies.runs.create(ada, study_id, "by hand", {"note": "hand-made"})
    studies.runs.attach(ada, other.id, [(second, judgment)])
    assert studies.get_item(ada, second).judgment_id is None
    elsewhere = studies.list_items(ada, make_study(studies, ada, 1, name="Other"))[0].id
    with pytest.raises(StudyInputError, match="not in the study"):
        studies.runs.attach(ada, other.id, [(elsewhere, judgment)])


def test_annotators_may_not_see_or_make_runs(studies: Studies, store: Store, ada: User, ann: User) -> None:
    study_id = make_study(studies, ada, 2)
    run = grade_study(studies, ada, study_id, ScriptedJudge(), store).run
    assert run is not None
    item = studies.list_items(ada, study_id)[0].id
    attempts = {
        "list": lambda: studies.runs.list_runs(ann, study_id),
        "get": lambda: studies.runs.get(ann, study_id, run.id),
        "create": lambda: studies.runs.create(ann, study_id, "mine", {}),
        "create_run": lambda: create_run(studies, ann, study_id, "mine", {}),
        "for_grading": lambda: studies.runs.for_grading(ann, study_id, run.config, new_run=True),
        "judgments": lambda: studies.runs.judgments(ann, study_id, run.id),
        "attach": lambda: studies.runs.attach(ann, run.id, [(item, 1)]),
        "scores": lambda: studies.runs.scores(ann, study_id, run.id),
        "compare": lambda: studies.runs.compare(ann, study_id, run.id, run.id),
        "ratings of a run": lambda: studies.ratings(ann, study_id, run=run.id),
        "grade as a new run": lambda: grade_study(studies, ann, study_id, ScriptedJudge(), store, new_run=True),
    }
    for name, attempt in attempts.items():
        with pytest.raises(PermissionDenied, match="Only an admin"):
            attempt()
        assert [r.name for r in studies.runs.list_runs(ada, study_id)] == ["Run 1"], name


def test_a_blind_item_s_verdicts_in_every_run_stay_hidden_from_who_has_not_labelled_it(
    studies: Studies, store: Store, ada: User, ann: User
) -> None:
    study_id = make_study(studies, ada, 1)  # blind by default
    studies.set_grading(ada, "ann", True)
    grade_study(studies, ada, study_id, ScriptedJudge(), store)
    second = grade_study(studies, ada, study_id, ScriptedJudge(), store, new_run=True).run
    assert second is not None
    (judgment,) = studies.runs.judgments(ada, study_id, second.id).values()
    assert studies.visible_judgments(ann, [judgment]) == set()
    assert studies.visible_judgments(ada, [judgment]) == {judgment}


def test_deleting_a_study_deletes_its_runs(studies: Studies, store: Store, ada: User) -> None:
    study_id = make_study(studies, ada, 2)
    grade_study(studies, ada, study_id, ScriptedJudge(), store)
    grade_study(studies, ada, study_id, ScriptedJudge(), store, new_run=True)
    studies.admin.set_archived(ada, study_id, True)
    studies.admin.delete_study(ada, study_id, "Capitals")
    with store.session() as session:
        from sqlalchemy import func, select

        from core.studies.runs import JudgeRunRow, RunJudgmentRow

        assert session.scalar(select(func.count()).select_from(JudgeRunRow)) == 0
        assert session.scalar(select(func.count()).select_from(RunJudgmentRow)) == 0


# --- the real tiny model through the real transformers back-end ------------------------------------------


def test_two_runs_of_the_tiny_judge_with_different_max_tokens_do_not_overwrite_each_other(
    studies: Studies, store: Store, ada: User, trained_judge: Any
) -> None:
    study = studies.create_study(ada, StudySpec(name="Tiny", pass_criteria=TEACH_CRITERIA, rubric=TEACH_RUBRIC,
                                                tags=("CONTEXT", "MODEL OUTPUT"),
                                                judge_settings={"max_new_tokens": 100}))
    studies.add_item(ada, study.id, dict(TEACH_FIELDS), external_id="taught")
    studies.add_item(ada, study.id, {**TEACH_FIELDS, "CONTEXT": TEACH_FIELDS["CONTEXT"] + " It lies on the Seine."},
                     external_id="variant")
    full = grade_study(studies, ada, study.id, trained_judge, store, batch_size=2)
    assert full.run is not None and full.run.config == run_config(trained_judge.info, 100)
    assert full.run.config["backend"] == "transformers" and full.done == 2
    short_id = create_run(studies, ada, study.id, "12 tokens", run_config(trained_judge.info, 12))
    short = grade_study(studies, ada, study.id, trained_judge, store, batch_size=2, run_id=short_id,
                        prepare=lambda item, request: replace(request, max_new_tokens=12))
    assert short.done == 2 and short.run is not None and short.run.id == short_id

    by_run = {run.id: studies.runs.judgments(ada, study.id, run.id) for run in (full.run, short.run)}
    items = {item.external_id: item for item in studies.list_items(ada, study.id)}
    taught = items["taught"].id
    long_one = store.get_judgment(by_run[full.run.id][taught])
    short_one = store.get_judgment(by_run[short_id][taught])
    assert long_one is not None and short_one is not None and long_one.id != short_one.id
    # Each keeps its own reproducibility record; the first run's verdict is still the item's.
    assert (long_one.repro["max_new_tokens"], short_one.repro["max_new_tokens"]) == (100, 12)
    assert (long_one.status, long_one.score) == ("ok", 1) and short_one.completion_tokens == 12
    assert short_one.score is None  # cut off before the score: a failed answer in its own run only
    assert items["taught"].judgment_id == long_one.id
    compared = studies.runs.compare(ada, study.id, full.run.id, short_id, n_resamples=100)
    assert compared["left_out"]["only_a"] >= 1 and compared["runs"][1]["config"]["decoding"]["max_new_tokens"] == 12
    # The same judge again, as a new run: greedy decoding gives the same verdicts, nothing flips.
    again = grade_study(studies, ada, study.id, trained_judge, store, batch_size=2, new_run=True)
    assert again.run is not None and again.run.position == 3
    same = studies.runs.compare(ada, study.id, full.run.id, again.run.id, n_resamples=100)
    assert same["flip_rate"]["value"] == 0.0 and same["changed"] == []
    assert studies.runs.judgments(ada, study.id, full.run.id) == by_run[full.run.id]


# --- the command line ------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, env=cli_env(), capture_output=True,
                          text=True, timeout=300)


def test_runs_compare_runs_and_grade_study_new_run_as_processes(tmp_path: Path, trained_model_dir: Path) -> None:
    db = tmp_path / "app.db"
    with Store.from_path(db) as store:
        studies = Studies(store, password_cost=16)
        ada = studies.create_user("ada", PASSWORD, role=ADMIN)
        studies.create_user("ann", PASSWORD, role=ANNOTATOR)
        study_id = make_study(studies, ada, 2, max_new_tokens=40, criteria=TEACH_CRITERIA, rubric=TEACH_RUBRIC)
    url = f"sqlite:///{db}"
    judge = ["--db", url, "--backend", "transformers", "--model", str(trained_model_dir), "--quantization", "none",
             "--device", "cpu"]

    empty = run_cli("runs", str(study_id), "--as", "ada", "--db", url)
    assert empty.returncode == 0 and "no judge run yet" in empty.stdout
    first = run_cli("grade-study", str(study_id), "--as", "ada", *judge)
    assert first.returncode in (0, 3), first.stderr
    assert "new judge run Run 1" in first.stderr
    second = run_cli("grade-study", str(study_id), "--as", "ada", *judge, "--new-run", "second look")
    assert second.returncode in (0, 3) and "new judge run second look" in second.stderr, second.stderr

    listing = run_cli("runs", str(study_id), "--as", "ada", "--db", url)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split()[:3] == ["run", "name", "judge"] and len(lines) == 3
    assert "(first)" in lines[1] and "Run 1" in lines[1] and "second look" in lines[2] and "transformers" in lines[2]

    out = tmp_path / "compare.json"
    compared = run_cli("compare-runs", str(study_id), "1", "second look", "--as", "ada", "--db", url, "--out",
                       str(out), "--resamples", "50")
    assert compared.returncode == 0, compared.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert [run["name"] for run in report["runs"]] == ["Run 1", "second look"]
    assert report["bootstrap"]["n_resamples"] == 50 and "Flip rate" in compared.stdout
    assert report["changed"] == [] and "0 item(s) changed" in compared.stdout  # greedy: the same verdicts

    refused = run_cli("compare-runs", str(study_id), "1", "2", "--as", "ann", "--db", url)
    assert refused.returncode == 2 and "Only an admin" in refused.stderr
    unknown = run_cli("compare-runs", str(study_id), "1", "nope", "--as", "ada", "--db", url)
    assert unknown.returncode == 2 and "no judge run 'nope'" in unknown.stderr
    both = run_cli("grade-study", str(study_id), "--as", "ada", *judge, "--new-run", "x", "--failed")
    assert both.returncode == 2 and "--failed" in both.stderr
