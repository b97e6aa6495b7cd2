"""Raw SQL on a test database, on either back-end (a SQLite file or a PostgreSQL database): how tests look under
core, set up an old schema's rows, or check what a migration left behind."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, delete, event, insert, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import sqltypes


@contextmanager
def raw(url: str) -> Iterator[Connection]:
    """A connection to the database at `url`, in one transaction committed at the end (rolled back on an error);
    foreign keys are enforced on SQLite too, as core.store does."""
    engine = create_engine(url, poolclass=NullPool)
    if engine.dialect.name == "sqlite":
        def foreign_keys(connection: Any, _record: object) -> None:
            connection.execute("PRAGMA foreign_keys = ON")

        event.listen(engine, "connect", foreign_keys)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def column_names(url: str, table: str) -> list[str]:
    """The columns of `table` in the database at `url`, in table order."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        return [column["name"] for column in inspect(engine).get_columns(table)]
    finally:
        engine.dispose()


def copy_rows(source: Path, url: str) -> None:
    """Copy every row of the SQLite file `source` into the database at `url`, whose tables have the same columns
    (an empty database migrated to the same schema version): what moving a deployment from a SQLite file to a
    server does. Values are converted to the target's types (SQLite keeps JSON as text, booleans as 0/1 and
    timestamps as naive UTC text); a PostgreSQL id sequence then continues after the copied ids."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        target = MetaData()
        target.reflect(engine)
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as old, engine.begin() as sql:
            old.row_factory = sqlite3.Row
            for table in target.sorted_tables:
                sql.execute(delete(table))  # e.g. schema_migrations, which opening the target wrote
            for table in target.sorted_tables:
                found = [dict(row) for row in old.execute(f"SELECT * FROM {table.name}")]  # noqa: S608 (its tables)
                if found:
                    sql.execute(insert(table), [{name: _convert(value, table.c[name].type)
                                                 for name, value in row.items()} for row in found])
                if engine.dialect.name == "postgresql" and "id" in table.c and found:
                    sql.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                     f"(SELECT max(id) FROM {table.name}))"))  # noqa: S608 (its tables)
    finally:
        engine.dispose()


def _convert(value: Any, kind: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, sqltypes.JSON) and isinstance(value, str):
        return json.loads(value)
    if isinstance(kind, sqltypes.Boolean):
        return bool(value)
    if isinstance(kind, sqltypes.DateTime) and isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value
