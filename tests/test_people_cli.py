"""`python -m core users / set-role / reset-password / deactivate / reactivate / assign`, run as a user would."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main
from core.store import Store
from core.studies import ADMIN, Studies, StudySpec

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "s3cret horse staple"
RUBRIC = "0: The MODEL OUTPUT is not faithful.\n1: The MODEL OUTPUT is faithful."


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database with admin boss, annotators ann and bob, and a four-item study (k = 1)."""
    monkeypatch.delenv("GLIDER_USER_PASSWORD", raising=False)
    db = f"sqlite:///{tmp_path / 'people-cli.db'}"
    with Store(db) as store:
        studies = Studies(store, password_cost=2**10)
        boss = studies.create_user("boss", PASSWORD, role=ADMIN)
        studies.create_user("ann", PASSWORD)
        studies.create_user("bob", PASSWORD)
        study = studies.create_study(boss, StudySpec(name="Faithfulness", pass_criteria="Faithful?", rubric=RUBRIC,
                                                     tags=("CONTEXT", "MODEL OUTPUT"), overlap_target=1))
        for n in range(4):
            studies.add_item(boss, study.id, {"CONTEXT": f"Context {n}.", "MODEL OUTPUT": f"Output {n}."})
    return db


def _studies_at(url: str) -> tuple[Store, Studies]:
    store = Store(url)
    return store, Studies(store)


def test_users_lists_everyone_in_a_subprocess(url: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GLIDER_")}
    done = subprocess.run([sys.executable, "-m", "core", "users", "--db", url], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["USER", "ROLE", "ACTIVE", "GRADES", "CREATED", "LAST", "ACTIVE"]
    assert [line.split()[:4] for line in lines[1:]] == [["ann", "annotator", "yes", "no"],
                                                        ["bob", "annotator", "yes", "no"],
                                                        ["boss", "admin", "yes", "yes"]]


def test_set_role_and_the_last_admin(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["set-role", "ann", "reviewer", "--db", url]) == 0
    assert "'ann' is now a reviewer." in capsys.readouterr().out
    assert main(["set-role", "boss", "annotator", "--db", url]) == 1
    assert "'boss' is the last active admin" in capsys.readouterr().err
    assert main(["set-role", "nobody", "admin", "--db", url]) == 1
    assert "There is no user 'nobody'" in capsys.readouterr().err
    store, studies = _studies_at(url)
    with store:
        assert [(u.username, u.role) for u in (studies.get_user("ann"), studies.get_user("boss")) if u] == [
            ("ann", "reviewer"), ("boss", "admin")]


def test_reset_password_one_time_and_from_stdin(url: str, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["reset-password", "ann", "--one-time", "--db", url]) == 0
    shown = re.search(r"One-time password for 'ann' .*: (\S+)$", capsys.readouterr().out.strip())
    assert shown is not None
    store, studies = _studies_at(url)
    with store:
        ann = studies.authenticate("ann", shown.group(1))
        assert ann is not None and ann.must_change_password
    monkeypatch.setattr(sys, "stdin", io.StringIO("typed by the owner\n"))
    assert main(["reset-password", "bob", "--password-stdin", "--db", url]) == 0
    out = capsys.readouterr()
    assert "Password of 'bob' set." in out.out and "typed by the owner" not in out.out + out.err
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["reset-password", "bob", "--password-stdin", "--db", url]) == 1
    assert "at least 8 characters" in capsys.readouterr().err
    store, studies = _studies_at(url)
    with store:
        bob = studies.authenticate("bob", "typed by the owner")
        assert bob is not None and not bob.must_change_password


def test_deactivate_and_reactivate(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deactivate", "bob", "--db", url]) == 0
    assert "'bob' is deactivated" in capsys.readouterr().out
    store, studies = _studies_at(url)
    with store:
        assert studies.authenticate("bob", PASSWORD) is None
    assert main(["deactivate", "boss", "--db", url]) == 1
    assert "last active admin" in capsys.readouterr().err
    assert main(["reactivate", "bob", "--db", url]) == 0
    assert "'bob' may sign in again." in capsys.readouterr().out
    store, studies = _studies_at(url)
    with store:
        assert studies.authenticate("bob", PASSWORD) is not None


def test_assign_chosen_split_and_open(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assign", "1", "--annotators", "ann,bob", "--split", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "Study #1 is for ann, bob (items split among them)." in out
    assert "ann: 2 items assigned" in out and "bob: 2 items assigned" in out
    store, studies = _studies_at(url)
    with store:
        boss = studies.get_user("boss")
        assert boss is not None and studies.assignments.get(boss, 1).annotators == ("ann", "bob")
    assert main(["assign", "1", "--annotators", "ann,zed", "--db", url]) == 1
    assert "There is no user 'zed'" in capsys.readouterr().err
    assert main(["assign", "1", "--open", "--db", url]) == 0
    assert "Study #1 is open to every annotator." in capsys.readouterr().out
    with pytest.raises(SystemExit):  # --open and --annotators exclude each other
        main(["assign", "1", "--open", "--annotators", "ann", "--db", url])
