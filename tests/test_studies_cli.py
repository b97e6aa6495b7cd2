"""`python -m core create-admin` / `create-user`: the password never shows, the user can sign in."""

from __future__ import annotations

import getpass
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main
from core.store import Store
from core.studies import ADMIN, ANNOTATOR, Studies

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "s3cret horse staple"


def _db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def _user(url: str, username: str, password: str = PASSWORD) -> tuple[str, str] | None:
    with Store(url) as store:
        user = Studies(store).authenticate(username, password)
        return None if user is None else (user.username, user.role)


@pytest.fixture(autouse=True)
def _no_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIDER_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("GLIDER_USER_PASSWORD", raising=False)


def test_create_admin_from_stdin_in_a_subprocess(tmp_path: Path) -> None:
    url = _db(tmp_path)
    env = {key: value for key, value in os.environ.items() if not key.startswith("GLIDER_")}
    done = subprocess.run(
        [sys.executable, "-m", "core", "create-admin", "boss", "--db", url, "--password-stdin"],
        input=PASSWORD + "\n", cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Created admin 'boss'" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    assert _user(url, "boss") == ("boss", ADMIN)
    assert _user(url, "boss", PASSWORD + "x") is None


def test_create_user_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    url = _db(tmp_path)
    monkeypatch.setenv("GLIDER_USER_PASSWORD", PASSWORD)
    assert main(["create-user", "ann", "--db", url]) == 0
    assert main(["create-user", "lead", "--role", "admin", "--db", url]) == 0
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err
    assert _user(url, "ann") == ("ann", ANNOTATOR)
    assert _user(url, "lead") == ("lead", ADMIN)


def test_create_admin_from_its_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _db(tmp_path)
    monkeypatch.setenv("GLIDER_ADMIN_PASSWORD", PASSWORD)
    assert main(["create-admin", "boss", "--db", url]) == 0
    assert _user(url, "boss") == ("boss", ADMIN)


def test_password_typed_at_a_hidden_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    url = _db(tmp_path)
    monkeypatch.setattr(sys, "stdin", _Terminal())
    answers = iter([PASSWORD, PASSWORD + "typo", PASSWORD, PASSWORD])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    assert main(["create-admin", "boss", "--db", url]) == 2  # the two entries differ
    assert "differ" in capsys.readouterr().err
    assert _user(url, "boss") is None
    assert main(["create-admin", "boss", "--db", url]) == 0
    assert _user(url, "boss") == ("boss", ADMIN)


def test_no_password_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal, nothing piped
    assert main(["create-admin", "boss", "--db", _db(tmp_path)]) == 2
    assert "--password-stdin" in capsys.readouterr().err
    assert main(["create-admin", "boss", "--db", _db(tmp_path), "--password-stdin"]) == 2
    assert "held no password" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["create-admin", "boss"], "short\n", "at least 8"),
        (["create-admin", "two words"], PASSWORD + "\n", "not allowed"),
    ],
)
def test_refusals_exit_1_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str], argv: list[str], stdin: str,
                                         message: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert main([*argv, "--db", _db(tmp_path), "--password-stdin"]) == 1
    err = capsys.readouterr().err
    assert message in err and stdin.strip() not in err


def test_a_taken_name_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    url = _db(tmp_path)
    monkeypatch.setenv("GLIDER_ADMIN_PASSWORD", PASSWORD)
    assert main(["create-admin", "boss", "--db", url]) == 0
    assert main(["create-admin", "boss", "--db", url]) == 1
    assert "taken" in capsys.readouterr().err


def test_windows_line_ending_is_not_part_of_the_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _db(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\r\n"))
    assert main(["create-user", "ann", "--db", url, "--password-stdin"]) == 0
    assert _user(url, "ann") == ("ann", ANNOTATOR)


def _can_grade(url: str, username: str) -> bool:
    with Store(url) as store:
        user = Studies(store).get_user(username)
        assert user is not None
        return user.can_grade


def test_grant_and_revoke_grading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    url = _db(tmp_path)
    monkeypatch.setenv("GLIDER_USER_PASSWORD", PASSWORD)
    assert main(["create-user", "ann", "--db", url]) == 0
    assert main(["create-user", "bob", "--can-grade", "--db", url]) == 0
    assert main(["create-user", "lead", "--role", "admin", "--db", url]) == 0
    assert "Created annotator 'bob' who may grade" in capsys.readouterr().out
    assert (_can_grade(url, "ann"), _can_grade(url, "bob"), _can_grade(url, "lead")) == (False, True, True)
    assert main(["grant-grading", "ann", "--db", url]) == 0
    assert "Annotator 'ann' may now grade" in capsys.readouterr().out and _can_grade(url, "ann")
    assert main(["revoke-grading", "ann", "--db", url]) == 0
    assert "'ann' may no longer grade" in capsys.readouterr().out and not _can_grade(url, "ann")
    assert main(["revoke-grading", "lead", "--db", url]) == 1
    assert "admins may always grade" in capsys.readouterr().err and _can_grade(url, "lead")
    assert main(["grant-grading", "nobody", "--db", url]) == 1
    assert "no user 'nobody'" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True
