"""Users and sign-in (core.accounts), on their own and as the Studies service uses them, on a SQLite file and on
PostgreSQL (conftest.db_url)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from core import errors
from core.accounts import ADMIN, ANNOTATOR, Accounts, User, require_admin, require_grade_right, signed_in
from core.errors import PermissionDenied, StudyInputError
from core.store import Store
from core.studies import Studies
from tests.databases import raw

PASSWORD = "correct horse battery"
FAST = 2**10  # scrypt's cost for tests; the default cost is tested in tests/test_studies.py


@pytest.fixture
def accounts(store: Store) -> Accounts:
    return Accounts(store, password_cost=FAST)


def test_any_users_says_whether_anyone_can_sign_in(accounts: Accounts, db_url: str) -> None:
    assert accounts.any_users() is False
    accounts.create_user("ann", PASSWORD)
    assert accounts.any_users() is True
    with raw(db_url) as sql:
        sql.execute(text("DELETE FROM users"))
    assert accounts.any_users() is False


def test_accounts_work_without_studies(accounts: Accounts) -> None:
    boss = accounts.create_user("boss", PASSWORD, role=ADMIN)
    ann = accounts.create_user("ann", PASSWORD)
    assert (boss.role, ann.role) == (ADMIN, ANNOTATOR)
    assert accounts.authenticate("ann", PASSWORD) == ann
    assert accounts.authenticate("ann", "wrong password") is None
    assert accounts.get_user(" boss ") == boss
    assert [user.username for user in accounts.list_users(boss)] == ["ann", "boss"]
    with pytest.raises(PermissionDenied, match="Only an admin may list users"):
        accounts.list_users(ann)
    assert accounts.set_grading(boss, "ann", True).can_grade
    with pytest.raises(StudyInputError, match="taken"):
        accounts.create_user("ann", PASSWORD)


def test_studies_and_accounts_share_one_users_table(store: Store, accounts: Accounts) -> None:
    studies = Studies(store, password_cost=FAST)
    made_by_studies = studies.create_user("ann", PASSWORD)
    assert accounts.authenticate("ann", PASSWORD) == made_by_studies
    granted = accounts.set_grading(None, "ann", True)
    assert studies.get_user("ann") == granted and studies.accounts.get_user("ann") == granted


def test_the_actor_is_checked_against_the_database(store: Store, accounts: Accounts) -> None:
    boss = accounts.create_user("boss", PASSWORD, role=ADMIN)
    ann = accounts.create_user("ann", PASSWORD)
    with store.session("read") as session:
        assert signed_in(session, boss) == (boss.id, "boss", ADMIN)
        assert require_admin(session, boss, "do this").username == "boss"
        assert require_grade_right(session, boss).username == "boss"
        with pytest.raises(PermissionDenied, match="Only an admin may do this; 'ann' is an annotator"):
            require_admin(session, ann, "do this")
        with pytest.raises(PermissionDenied, match="'ann' may not grade"):
            require_grade_right(session, ann)
        with pytest.raises(PermissionDenied, match="Sign in first"):
            signed_in(session, "boss")  # type: ignore[arg-type]
        forged = User(id=boss.id, username="mallory", role=ADMIN, created_at=boss.created_at)
        with pytest.raises(PermissionDenied, match="no user 'mallory'"):
            signed_in(session, forged)
    accounts.set_grading(boss, "ann", True)
    with store.session("read") as session:
        assert require_grade_right(session, ann).username == "ann"


def test_permission_denied_lives_in_core_errors() -> None:
    """core.studies re-exports the errors it used to define: catching either name catches the same error."""
    from core import studies

    assert studies.PermissionDenied is errors.PermissionDenied
    assert studies.StudyInputError is errors.StudyInputError
    assert issubclass(errors.PermissionDenied, errors.GliderError)
    assert issubclass(errors.StudyInputError, errors.InputError)


def test_usernames_are_one_whatever_their_case(store: Store, accounts: Accounts) -> None:
    """"Ada" and "ada" are one user on every database (SQLite's = and PostgreSQL's = both tell them apart)."""
    ada = accounts.create_user("Ada", PASSWORD, role=ADMIN)
    with pytest.raises(StudyInputError, match="'ada' is taken: 'Ada' differs only in case"):
        accounts.create_user("ada", PASSWORD)
    with pytest.raises(StudyInputError, match="taken"):
        Studies(store, password_cost=FAST).people.add_user(None, "ADA", ANNOTATOR, PASSWORD)
    assert accounts.authenticate("ada", PASSWORD) == accounts.authenticate("ADA", PASSWORD) == ada
    assert accounts.get_user("aDa") == ada and ada.username == "Ada"  # shown as typed when created
    assert [user.username for user in accounts.list_users(ada)] == ["Ada"]
    émile = accounts.create_user("Émile", PASSWORD)  # beyond ASCII too (SQL's lower() would not fold É on SQLite)
    assert accounts.get_user("émile") == émile and accounts.get_user("ÉMILE") == émile
    assert ada.created_at.utcoffset() == timedelta(0)  # aware UTC, read back from either database


def test_names_differing_only_in_case_from_before_migration_10_both_still_sign_in(db_url: str) -> None:
    from core.store import MIGRATIONS

    with Store(db_url, migrations=MIGRATIONS[:9]):
        pass
    with raw(db_url) as sql:
        for name in ("ada", "Ada"):
            sql.execute(text("INSERT INTO users (username, role, password_hash, created_at) VALUES "
                             "(:name, 'annotator', 'scrypt$x', '2026-01-01 00:00:00')"), {"name": name})
    with Store(db_url) as store:
        accounts = Accounts(store, password_cost=FAST)
        assert [getattr(accounts.get_user(name), "username", None) for name in ("ada", "Ada")] == ["ada", "Ada"]
        first = accounts.get_user("ADA")
        assert first is not None and first.username == "ada"  # the first one made
        with pytest.raises(StudyInputError, match="taken"):
            accounts.create_user("aDA", PASSWORD)
    with raw(db_url) as sql:
        keys = sql.execute(text("SELECT username, username_key FROM users ORDER BY id")).fetchall()
    assert keys == [("ada", "ada"), ("Ada", "ada#2")]
