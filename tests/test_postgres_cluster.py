"""The tests' throw-away PostgreSQL cluster (tests.postgres) works: a fresh database per test, migrated by Store to
the current schema through psycopg 3, and separate from the next one."""

from __future__ import annotations

import threading

from sqlalchemy import text

from core.store import MIGRATIONS, Store


def test_a_fresh_postgresql_database_migrates_to_the_current_schema(postgres_url: str) -> None:
    with Store(postgres_url) as store:
        assert store.schema_version() == MIGRATIONS[-1].version
        with store.session("read") as session:
            assert session.execute(text("SELECT current_setting('server_version_num')::int")).scalar_one() >= 150000
            assert session.bind is not None and session.bind.dialect.driver == "psycopg"


def test_each_test_gets_its_own_database(postgres_url: str, postgres_cluster) -> None:  # noqa: ANN001
    other = postgres_cluster.create_database()
    assert other != postgres_url
    with Store(other) as store:
        assert store.schema_version() == MIGRATIONS[-1].version


def test_processes_opening_a_new_database_at_once_migrate_it_once(postgres_url: str) -> None:
    """Several app processes starting together on an empty PostgreSQL database (threads here, each with its own
    engine and connections): each migration is applied once, and every opener ends at the current schema."""
    openers = 6
    start = threading.Barrier(openers)
    versions: list[int] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            start.wait()
            with Store(postgres_url) as store:
                versions.append(store.schema_version())
        except BaseException as error:  # noqa: BLE001 - reported below, with the others
            errors.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and versions == [MIGRATIONS[-1].version] * openers
    with Store(postgres_url) as store:
        assert [version for version, _, _ in store.applied_migrations()] == [m.version for m in MIGRATIONS]
