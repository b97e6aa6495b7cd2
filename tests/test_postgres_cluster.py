"""The tests' throw-away PostgreSQL cluster (tests.postgres) works: a fresh database per test, migrated by Store to
the current schema through psycopg 3, and separate from the next one."""

from __future__ import annotations

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
