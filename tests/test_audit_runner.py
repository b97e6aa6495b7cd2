"""The robustness audit end to end (core.audit.runner, `python -m core audit`): the tiny real Phi-3 judge through
the real transformers back-end (bf16, and nf4 as the other judge) on a real SQLite study."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.audit.judge_runs import as_judge_runs
from core.audit.perturbations import OTHER_JUDGE, JudgeConfig, default_other_judge, resolve
from core.audit.report import pair_consensus
from core.audit.runner import UNPERTURBED, choose_items, run_audit
from core.errors import InputError, PermissionDenied
from core.store import Store
from core.studies import ANNOTATOR, Studies, StudySpec, User
from core.studies.audits import latest_audit
from tests import tiny_gguf
from tests.conftest import TEACH_CRITERIA, TEACH_FIELDS, TEACH_RUBRIC
from tests.fakes import ScriptedJudge
from tests.test_judge_llamacpp import needs_llama_cpp

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"
OUTPUTS = (TEACH_FIELDS["MODEL OUTPUT"], "Lyon is the capital of France.", "Paris.")


def make_study(studies: Studies, admin: User) -> int:
    """Three items (the first is the prompt the tiny judge was taught), labelled by two annotators."""
    study = studies.create_study(admin, StudySpec(
        name="Capitals", pass_criteria=TEACH_CRITERIA, rubric=TEACH_RUBRIC, tags=("CONTEXT", "MODEL OUTPUT"),
        blind=False, judge_settings={"max_new_tokens": 120}))
    items = [studies.add_item(admin, study.id, {**TEACH_FIELDS, "MODEL OUTPUT": output}, external_id=f"c{n}")
             for n, output in enumerate(OUTPUTS, 1)]
    for name, scores in (("ann", (1, 0, 1)), ("bob", (1, 0, 0))):
        person = studies.create_user(name, PASSWORD, role=ANNOTATOR)
        for item, score in zip(items, scores, strict=True):
            studies.submit(person, item.id, score)
    return study.id


def test_an_audit_with_the_real_tiny_judge(studies: Studies, store: Store, ada: User, trained_judge: Any,
                                           trained_model_dir: Path) -> None:
    study_id = make_study(studies, ada)
    before = {item.id: item.judgment_id for item in studies.list_items(ada, study_id)}
    other = default_other_judge("transformers", {"model": str(trained_model_dir), "quantization": "none"})
    perturbations = resolve(["reverse-rubric", "rename-tags", "whitespace", "swap-responses", OTHER_JUDGE], other)
    recorded: list[tuple[str, dict[str, Any], dict[int, int]]] = []
    result = run_audit(studies, ada, study_id, trained_judge, store, perturbations, batch_size=2, n_resamples=200,
                       record_run=lambda name, config, ids: recorded.append((name, dict(config), dict(ids))))

    items = list(result.item_ids)
    assert len(items) == 3 and result.sample["random"] is False
    # The unperturbed run: the taught item gets the taught answer's score.
    assert result.baseline.name == UNPERTURBED and result.baseline.scores[items[0]] == 1
    names = [run.name for run in result.runs]
    assert names == ["reverse-rubric", "rename-tags", "whitespace", "swap-responses", OTHER_JUDGE]
    runs = {run.name: run for run in result.runs}
    # Not a pairwise study: the swap applies to no item and grades nothing.
    assert runs["swap-responses"].not_applicable and "MODEL OUTPUT 1" in runs["swap-responses"].not_applicable
    assert runs["swap-responses"].judgment_ids == {}
    # The other judge is the same model in nf4, loaded through create_backend: the taught item keeps its score.
    assert "nf4" in runs[OTHER_JUDGE].judge and runs[OTHER_JUDGE].config["judge"]["quantization"] == "nf4"
    assert runs[OTHER_JUDGE].scores[items[0]] == 1
    # Every graded run saved one judgment per item, none attached to the items (the study's stay as they were).
    assert [name for name, _, _ in recorded] == [UNPERTURBED, "reverse-rubric", "rename-tags", "whitespace",
                                                 OTHER_JUDGE]
    for name, config, ids in recorded:
        assert sorted(ids) == sorted(items) and config["perturbation"] == name
        for judgment_id in ids.values():
            assert store.get_judgment(judgment_id) is not None
    assert {item.id: item.judgment_id for item in studies.list_items(ada, study_id)} == before
    # Each judgment records what its run asked: renamed tags, a reversed rubric, the nf4 judge.
    renamed = store.get_judgment(recorded[2][2][items[0]])
    reversed_ = store.get_judgment(recorded[1][2][items[0]])
    drifted = store.get_judgment(recorded[4][2][items[0]])
    assert renamed is not None and list(renamed.fields) == ["DOCUMENT", "RESPONSE"]
    assert "RESPONSE faithful to the DOCUMENT" in renamed.pass_criteria
    assert reversed_ is not None and reversed_.rubric.startswith("1: ")
    assert drifted is not None and drifted.repro["quantization"] == "nf4"
    # The report: a row per perturbation, with human agreement from the two annotators' consensus.
    block = result.block
    assert [row["perturbation"] for row in block["rows"]] == names
    for row in block["rows"]:
        if row["not_applicable"] is None:
            assert row["flip_rate"]["n"] == row["n_items"] and row["humans"]["n"] <= 3
    assert json.loads(json.dumps(result.to_dict()))["audit"]["study_id"] == study_id


def test_a_seeded_sample_is_stated_and_repeatable(studies: Studies, store: Store, ada: User,
                                                  trained_judge: Any) -> None:
    study_id = make_study(studies, ada)
    first = run_audit(studies, ada, study_id, trained_judge, store, resolve(["whitespace"]), sample=2, seed=7,
                      n_resamples=0)
    assert len(first.item_ids) == 2 and first.sample == {
        "random": True, "n": 2, "of": 3, "seed": 7,
        "note": "a random sample of 2 of the study's 3 items (seed 7)"}
    assert first.block["sample"] == first.sample
    assert choose_items([1, 2, 3, 4, 5], 2, 7) == choose_items([1, 2, 3, 4, 5], 2, 7)
    assert choose_items([1, 2, 3], 10, 0)[0] == [1, 2, 3]
    with pytest.raises(InputError):
        choose_items([1, 2], 0, 0)


def test_swapped_responses_expose_a_judge_that_always_picks_the_second(studies: Studies, store: Store,
                                                                      ada: User) -> None:
    """A judge with a pure position bias (its answer is always 1: "MODEL OUTPUT 2 is better") flips every item."""
    study = studies.create_study(ada, StudySpec(
        name="Pairs", pass_criteria="Which of MODEL OUTPUT 1 and MODEL OUTPUT 2 is faithful to the CONTEXT?",
        rubric="0: The MODEL OUTPUT 1 is better than MODEL OUTPUT 2.\n1: The MODEL OUTPUT 2 is better than "
               "MODEL OUTPUT 1.", tags=("CONTEXT", "MODEL OUTPUT 1", "MODEL OUTPUT 2")))
    for n in range(4):
        studies.add_item(ada, study.id, {"CONTEXT": "Paris is the capital of France.",
                                         "MODEL OUTPUT 1": f"Paris {n}.", "MODEL OUTPUT 2": f"Lyon {n}."})
    result = run_audit(studies, ada, study.id, ScriptedJudge(), store, resolve(["swap-responses"]), n_resamples=0)
    [swap] = result.runs
    assert set(result.baseline.scores.values()) == {1} and set(swap.scores.values()) == {0}  # mapped back
    assert result.block["rows"][0]["flip_rate"]["value"] == 1.0


def test_a_pairwise_study_is_audited_in_its_a_b_order_against_the_human_majority(studies: Studies, store: Store,
                                                                                    ada: User) -> None:
    """A pairwise study (RESPONSE A / RESPONSE B): the unperturbed run is the (A, B) order, swap-responses its (B, A)
    order mapped back, so a judge that always answers 1 ("MODEL OUTPUT 2 is better") flips every item; the humans'
    majority choice (ties and split items left out) is what agreement is measured against."""
    study = studies.create_study(ada, StudySpec(name="Pairs", pass_criteria="Which response is faithful?", rubric="",
                                                mode="pairwise", allow_tie=True, blind=False))
    items = [studies.add_item(ada, study.id, {"CONTEXT": "Paris is the capital of France.",
                                              "RESPONSE A": f"Paris {n}.", "RESPONSE B": f"Lyon {n}."})
             for n in range(4)]
    people = [studies.create_user(name, PASSWORD, role=ANNOTATOR) for name in ("ann", "bob", "cy")]
    wanted = {0: ("A", "A", "B"), 1: ("B", "B", "tie"), 2: ("tie", "tie", "A"), 3: ("A", "B", "tie")}
    for index, choices in wanted.items():
        for person, choice in zip(people, choices, strict=True):
            order = studies.pair_order(person, items[index].id)
            studies.submit_choice(person, items[index].id, "tie" if choice == "tie" else str(order.index(choice) + 1))
    judge = ScriptedJudge()
    result = run_audit(studies, ada, study.id, judge, store, resolve(["swap-responses"]), n_resamples=0)
    assert "<MODEL OUTPUT 1>\nParis 0." in judge.prompts[0]  # the (A, B) order: A in slot 1
    [swap] = result.runs
    assert set(result.baseline.scores.values()) == {1} and set(swap.scores.values()) == {0}
    assert result.block["rows"][0]["flip_rate"]["value"] == 1.0
    # Majorities: item 0 A (0), item 1 B (1); item 2's majority is a tie and item 3 has none: both left out.
    assert pair_consensus(studies.ratings(ada, study.id), blind=False) == {items[0].id: 0, items[1].id: 1}


def test_annotators_may_not_run_an_audit(studies: Studies, store: Store, ada: User) -> None:
    study_id = make_study(studies, ada)
    judge = ScriptedJudge()
    ann = studies.get_user("ann")
    assert ann is not None
    with pytest.raises(PermissionDenied, match="Only an admin"):
        run_audit(studies, ann, study_id, judge, store, resolve(["whitespace"]))
    assert judge.prompts == []  # refused before any grading


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GLIDER_")}
    return subprocess.run([sys.executable, "-m", "core", "audit", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_cli_prints_the_table_and_writes_the_json(studies: Studies, ada: User, db_url: str, tmp_path: Path,
                                                      trained_model_dir: Path) -> None:
    study_id = make_study(studies, ada)
    out = tmp_path / "audit.json"
    judge = ["--backend", "transformers", "--model", str(trained_model_dir), "--quantization", "none",
             "--device", "cpu"]
    done = _cli(str(study_id), "--as", "ada", "--db", db_url, "--perturb", "whitespace,other-judge",
                "--sample", "2", "--seed", "1", "--resamples", "100", "--out", str(out), *judge)
    assert done.returncode == 0, done.stderr
    assert "a random sample of 2 of the study's 3 items (seed 1)" in done.stdout
    lines = done.stdout.splitlines()
    assert lines[1].startswith("perturbation") and lines[2].startswith("whitespace")
    assert lines[3].startswith(OTHER_JUDGE)
    written = json.loads(out.read_text(encoding="utf-8"))
    assert [run["name"] for run in written["runs"]] == [UNPERTURBED, "whitespace", OTHER_JUDGE]
    assert "transformers · nf4" in written["audit"]["rows"][1]["judge"] and len(written["item_ids"]) == 2
    with Store(db_url) as opened:
        kept = [run.name.split(": ", 1)[1] for run in Studies(opened).runs.list_runs(ada, study_id)]
    assert kept == [UNPERTURBED, "whitespace", OTHER_JUDGE]  # each run of the audit is a judge run of the study
    assert "Kept with the study as audit #1" in lines[0]  # and its summary, for the report and the published study
    with Store(db_url) as opened:
        summary = latest_audit(opened, ada, study_id)
    assert summary is not None and summary.summary == written["audit"] and list(summary.runs) == kept

    refused = _cli(str(study_id), "--as", "ann", "--db", db_url, *judge)
    assert refused.returncode == 2 and "Only an admin" in refused.stderr
    unknown = _cli(str(study_id), "--as", "ada", "--db", db_url, "--perturb", "shuffle", *judge)
    assert unknown.returncode == 2 and "Unknown perturbation 'shuffle'" in unknown.stderr


def test_each_run_of_the_audit_is_kept_as_a_judge_run_of_the_study(studies: Studies, store: Store,
                                                                    ada: User) -> None:
    """As the CLI and the Audit panel run it: the unperturbed and each perturbed run become judge runs (never the
    study's own judgments), listed and compared like any other run."""
    study_id = make_study(studies, ada)
    started = datetime(2026, 12, 5, 23, 0, tzinfo=UTC)
    result = run_audit(studies, ada, study_id, ScriptedJudge(), store, resolve(["whitespace", "reverse-rubric"]),
                       n_resamples=0, record_run=as_judge_runs(studies, ada, study_id, started=started))
    runs = studies.runs.list_runs(ada, study_id)
    assert [run.name for run in runs] == [f"Audit 2026-12-05 23:00:00 UTC: {name}"
                                         for name in (UNPERTURBED, "whitespace", "reverse-rubric")]
    for run, audited in zip(runs, [result.baseline, *result.runs], strict=True):
        assert studies.runs.judgments(ada, study_id, run.id) == audited.judgment_ids and run.graded == 3
        assert run.config["audit_started"] == "2026-12-05 23:00:00 UTC"
    assert studies.runs.compare(ada, study_id, runs[0].id, runs[1].id, n_resamples=0) is not None
    run_audit(studies, ada, study_id, ScriptedJudge(), store, resolve(["whitespace"]), n_resamples=0,
              record_run=as_judge_runs(studies, ada, study_id, started=started))  # again, in the same second
    assert [run.name for run in studies.runs.list_runs(ada, study_id)][3:] == [
        f"Audit 2026-12-05 23:00:00 UTC (2): {name}" for name in (UNPERTURBED, "whitespace")]
    with pytest.raises(PermissionDenied):  # an annotator's audit keeps nothing either
        as_judge_runs(studies, studies.get_user("ann"), study_id)  # type: ignore[arg-type]


def test_the_unperturbed_run_can_be_given_as_stored_judgments(studies: Studies, store: Store, ada: User) -> None:
    """The lead's adapter can pass an existing judge run as the unperturbed one: read, not graded again."""
    study_id = make_study(studies, ada)
    judge = ScriptedJudge()
    first = run_audit(studies, ada, study_id, judge, store, resolve(["whitespace"]), n_resamples=0)
    prompts = len(judge.prompts)
    again = run_audit(studies, ada, study_id, judge, store, resolve(["whitespace"]), n_resamples=0,
                      baseline_judgments=first.baseline.judgment_ids)
    assert len(judge.prompts) == prompts + 3  # only the whitespace run was graded
    assert again.baseline.judgment_ids == first.baseline.judgment_ids
    assert again.baseline.scores == first.baseline.scores and "tests/scripted-judge" in again.baseline.judge


class TestOtherBackEnd:
    """llama.cpp as the other judge: skipped only outside CI, for the reasons test_judge_llamacpp gives."""

    pytestmark = needs_llama_cpp

    def test_the_other_judge_can_be_another_back_end(self, studies: Studies, store: Store, ada: User,
                                                    trained_judge: Any, trained_model_dir: Path,
                                                    tmp_path: Path) -> None:
        """The same tiny judge as a GGUF file through llama.cpp: the back-end-drift check."""
        study_id = make_study(studies, ada)
        gguf = tiny_gguf.convert(trained_model_dir, tmp_path / "glider-tiny-F32.gguf")
        other = JudgeConfig("llamacpp", {"model": str(gguf), "device": "cpu", "measure_settings": False})
        result = run_audit(studies, ada, study_id, trained_judge, store, resolve([OTHER_JUDGE], other), n_resamples=0)
        [run] = result.runs
        assert run.not_applicable is None and "llamacpp" in run.judge and run.config["judge"]["backend"] == "llamacpp"
        first = result.item_ids[0]
        assert result.baseline.scores[first] == run.scores[first] == 1
