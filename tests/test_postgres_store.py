"""What only a database server has (core.store on PostgreSQL): errors naming what is wrong with the server, the
user, the password or the database; a deadlock's victim run again by Store.write. What holds on every back-end
(several Stores migrating one new database at once, among others) is tested on both in tests/test_store.py and the
other tests built on conftest.db_url."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.errors import StorageError
from core.store import Store
from tests.net import free_port
from tests.postgres import PostgresCluster


def _other(url: str, **changes: Any) -> str:
    return make_url(url).set(**changes).render_as_string(hide_password=False)


def test_no_server_at_that_port_is_a_clear_error(postgres_url: str) -> None:
    wrong = _other(postgres_url, port=free_port())
    with pytest.raises(StorageError, match=r"no PostgreSQL server answers at 127\.0\.0\.1:\d+.*Is the server running")\
            as caught:
        Store(wrong)
    assert "GLIDER_DB" in str(caught.value) and "Traceback" not in str(caught.value)


def test_a_missing_database_and_an_unknown_user_are_named(postgres_url: str) -> None:
    with pytest.raises(StorageError, match="has no database 'nothing_here'; create it first"):
        Store(_other(postgres_url, database="nothing_here"))
    # A server that asks for passwords does not say whether the user exists; one that trusts it does.
    with pytest.raises(StorageError, match="refused the user 'nobody' .*or no such user"):
        Store(_other(postgres_url, username="nobody"))


def test_a_wrong_password_is_named_and_never_shown(postgres_cluster: PostgresCluster, postgres_url: str) -> None:
    with psycopg.connect(f"host=127.0.0.1 port={postgres_cluster.port} user=glider dbname=postgres",
                         autocommit=True) as admin:
        admin.execute("CREATE ROLE walter LOGIN PASSWORD 'right-one'")
    try:
        with pytest.raises(StorageError, match="refused the user 'walter' \\(a wrong or missing password") as caught:
            Store(_other(postgres_url, username="walter", password="s3cret-wrong"))
        assert "s3cret-wrong" not in str(caught.value)
    finally:
        with psycopg.connect(f"host=127.0.0.1 port={postgres_cluster.port} user=glider dbname=postgres",
                             autocommit=True) as admin:
            admin.execute("DROP ROLE walter")


def test_a_deadlock_victim_runs_again(postgres_url: str) -> None:
    """Two writers update the same two rows in opposite orders: PostgreSQL cancels one (deadlock detected, SQLSTATE
    40P01); Store.write runs that transaction again, and both writes land."""
    with Store(postgres_url) as store:
        store.write("create", lambda s: s.execute(text("CREATE TABLE pair (id INT PRIMARY KEY, n INT NOT NULL)")))
        store.write("fill", lambda s: s.execute(text("INSERT INTO pair VALUES (1, 0), (2, 0)")))
        both_hold_one = threading.Barrier(2)
        runs: list[int] = []
        errors: list[BaseException] = []

        def writer(first: int, second: int) -> None:
            def work(session: Any) -> None:
                runs.append(first)
                session.execute(text("UPDATE pair SET n = n + 1 WHERE id = :id"), {"id": first})
                if len(runs) <= 2:  # the first round: both hold one row and want the other's
                    both_hold_one.wait(timeout=10)
                session.execute(text("UPDATE pair SET n = n + 1 WHERE id = :id"), {"id": second})

            try:
                store.write("update", work)
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=writer, args=order) for order in ((1, 2), (2, 1))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == [] and len(runs) == 3  # one of the two ran twice
        with store.session("read") as session:
            assert session.execute(text("SELECT n FROM pair ORDER BY id")).scalars().all() == [2, 2]


def test_retries_are_for_races_only(postgres_url: str) -> None:
    """A failure that running again cannot fix (here: a missing table) is raised at once, with the server's words."""
    calls: list[int] = []
    with Store(postgres_url) as store:
        def work(session: Any) -> None:
            calls.append(1)
            session.execute(text("SELECT * FROM no_such_table"))

        with pytest.raises(StorageError, match='Could not save to the database .*relation "no_such_table" does not'):
            store.write("save to", work)
    assert calls == [1]



def test_a_url_without_a_driver_uses_psycopg(postgres_url: str) -> None:
    """postgresql://... (as people write it) opens with psycopg 3, the pinned driver, not SQLAlchemy's default
    psycopg2, which is not installed."""
    with Store(postgres_url.replace("postgresql+psycopg://", "postgresql://")) as store:
        assert store.engine.dialect.driver == "psycopg" and store.url.startswith("postgresql+psycopg://")
        assert store.count_judgments() == 0
