"""`python -m core review`, `adjudicate` and `agreement --reference adjudicated`, run against a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.agreement import adjudicated_report
from core.cli import main
from core.store import Store
from core.studies import ADMIN, REVIEWER, Studies, write_exports
from core.studies.review import Reviews
from tests.review_data import ADJUDICATED, BY_HUMANS, BY_JUDGE, ReviewStudy, make_review_study

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[str, ReviewStudy]]:
    url = f"sqlite:///{tmp_path / 'review-cli.db'}"
    with Store(url) as store:
        studies = Studies(store, password_cost=16)
        ada = studies.create_user("ada", PASSWORD, role=ADMIN)
        studies.create_user("rita", PASSWORD, role=REVIEWER)
        ann, bob = studies.create_user("ann", PASSWORD), studies.create_user("bob", PASSWORD)
        made = make_review_study(studies, store, ada, ann, bob)
    yield url, made


def _listed(out: str) -> list[int]:
    return [int(line.split()[0]) for line in out.splitlines()[1:]]


def test_review_prints_the_table_in_either_order(db: tuple[str, ReviewStudy],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url, made = db
    assert main(["review", str(made.study_id), "--as", "rita", "--db", url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["item", "external", "id"]
    assert _listed(out) == [made.item_ids[n - 1] for n in BY_JUDGE]
    third = next(line for line in out.splitlines()[1:] if int(line.split()[0]) == made.item_ids[2])
    assert third.split()[1:] == ["h-3", "3", "3", "0", "3", "5", "2", "0.95"]
    assert main(["review", str(made.study_id), "--sort", "humans", "--as", "ada", "--db", url]) == 0
    assert _listed(capsys.readouterr().out) == [made.item_ids[n - 1] for n in BY_HUMANS]


def test_adjudicate_records_the_label_and_review_shows_it(db: tuple[str, ReviewStudy],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    url, made = db
    item = made.item_ids[1]
    assert main(["adjudicate", str(made.study_id), str(item), "3", "--note", "level 3 fits", "--as", "rita",
                 "--db", url]) == 0
    assert f"Item {item} of study {made.study_id}: adjudicated score 3 by 'rita'" in capsys.readouterr().out
    assert main(["review", str(made.study_id), "--as", "rita", "--db", url]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(f"{item} "))
    assert line.rstrip().endswith("3 by rita")
    with Store(url) as store:
        rita = Studies(store).get_user("rita")
        assert rita is not None
        history = Reviews(store).adjudication_history(rita, item)
    assert [(h.score, h.note, h.reviewer) for h in history] == [(3, "level 3 fits", "rita")]


@pytest.mark.parametrize(("argv", "message"), [
    (["--as", "ann"], "Only a reviewer or an admin may"),
    (["--as", "nobody"], "There is no user 'nobody'"),
    (["--as", "rita", "SCORE=9"], "outside this study's scale 1-5"),
    (["--as", "rita", "STUDY=99"], "belongs to study"),
])
def test_adjudicate_refuses_clearly(db: tuple[str, ReviewStudy], capsys: pytest.CaptureFixture[str],
                                    argv: list[str], message: str) -> None:
    url, made = db
    study, score = str(made.study_id), "3"
    options = [arg for arg in argv if "=" not in arg]
    for arg in argv:
        if arg.startswith("SCORE="):
            score = arg.split("=")[1]
        if arg.startswith("STUDY="):
            study = arg.split("=")[1]
    assert main(["adjudicate", study, str(made.item_ids[0]), score, *options, "--db", url]) == 2
    assert message in capsys.readouterr().err
    assert main(["review", str(made.study_id), "--as", "ann", "--db", url]) == 2  # nor may an annotator list
    assert "Only a reviewer or an admin may review" in capsys.readouterr().err


def test_agreement_with_the_adjudicated_reference_reads_the_export(db: tuple[str, ReviewStudy], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    url, made = db
    for item_id, score in zip(made.item_ids, ADJUDICATED, strict=False):
        assert main(["adjudicate", str(made.study_id), str(item_id), str(score), "--as", "rita", "--db", url]) == 0
    with Store(url) as store:
        studies = Studies(store)
        ada = studies.get_user("ada")
        assert ada is not None
        report = adjudicated_report(studies.ratings(ada, made.study_id), (1, 5), n_resamples=0)
        csv = write_exports(studies, ada, made.study_id, report, tmp_path)[0]
    capsys.readouterr()
    assert main(["agreement", str(csv), "--reference", "adjudicated", "--scale", "1-5", "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert "Reference: adjudicated labels on 6 of 7 items" in out
    judge = out.split("Judge vs adjudicated (n=6):")[1].split("Annotators")[0]
    assert "Exact agreement" in judge and "0.500  95% CI [" in judge  # 3 of 6, by hand (tests.review_data)
    ann = out.split("Annotator ann vs adjudicated (n=6):")[1].split("Annotator bob")[0]
    assert "0.833  95% CI [" in ann  # 5 of 6
    # Without the option the same file gives the usual report.
    assert main(["agreement", str(csv), "--scale", "1-5", "--resamples", "0"]) == 0
    assert "Human vs model (pooled)" in capsys.readouterr().out


def test_adjudicate_runs_as_a_process(db: tuple[str, ReviewStudy]) -> None:
    url, made = db
    env = {key: value for key, value in os.environ.items() if not key.startswith("GLIDER_")}
    done = subprocess.run(
        [sys.executable, "-m", "core", "adjudicate", str(made.study_id), str(made.item_ids[0]), "2", "--note",
         "by the CLI", "--as", "ada", "--db", url],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "adjudicated score 2 by 'ada'" in done.stdout
