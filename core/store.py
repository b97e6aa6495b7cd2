"""The database behind GLIDER Studio through SQLAlchemy 2.x (SQLite file by default, any SQLAlchemy URL works).

One class, `Store`, owns the engine: every read and write opens, commits and closes its session in
`Store._session`, every write goes through `Store.write` (one transaction, retried while a SQLite file is
locked or when PostgreSQL cancels it as a deadlock's victim), and every database failure leaves it as a
`StorageError` with a message a user can act on (a SQLite file's problems, or a server's: unreachable, wrong
password, no such database).
The schema only ever changes through `core.migrations.MIGRATIONS` (re-exported here), an ordered list
of named steps that `Store` applies and records in the `schema_migrations` table; each step carries a
frozen copy of the DDL it needs, so appending a column to an ORM model later never changes what an old
migration does.

How the two tested databases differ, and where that is handled: SQLite has one writer (BEGIN IMMEDIATE here),
PostgreSQL locks rows (a read-then-write that must not race locks what it read: core.studies.queue); SQLite keeps
no time zone (UTCDateTime); SQLite does not enforce VARCHAR(n) (_check_lengths refuses first, on both); `=` on text
is case-sensitive on both (usernames compare by a stored key: core.accounts.username_key).

This module is infrastructure only: it imports no domain module. What is stored lives with its
feature (judgments in core.judgments, studies in core.studies, batch jobs in core.batch).
"""

from __future__ import annotations

import logging
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    create_engine,
    event,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapper, Session, sessionmaker
from sqlalchemy.pool import StaticPool

from core.errors import StorageError, ValueTooLongError
from core.migrations import MIGRATIONS, Migration, checked
from core.storage import sqlite_mode as choose_sqlite_mode

if TYPE_CHECKING:  # only for the compatibility methods at the end of Store; never imported at run time
    from core.grading import GradeResult
    from core.judgments import JudgmentSummary, StoredJudgment

# How long a writer waits for another writer's lock before SQLite gives up with "database is locked".
BUSY_TIMEOUT_MS = 5000
# How long opening a connection to a database server (PostgreSQL) may take before it counts as unreachable.
CONNECT_TIMEOUT_S = 10
# Any 64-bit key all GLIDER Studio processes agree on: on PostgreSQL, migrating takes this advisory lock, so two
# processes opening a new database at once queue up (SQLite's BEGIN IMMEDIATE does the same for a file).
MIGRATION_LOCK_KEY = 0x6C1DE5
# How often Store.write runs a transaction that found the database locked (or lost a unique-key race).
WRITE_ATTEMPTS = 6

T = TypeVar("T")
log = logging.getLogger(__name__)
# SQLite on a network/FUSE volume (a Space's bucket, core.storage): no WAL shared memory, no memory-mapped
# I/O, and one process owning the file; Store then keeps one connection behind one lock.
VOLUME_PRAGMAS = ("PRAGMA locking_mode = EXCLUSIVE", "PRAGMA journal_mode = DELETE", "PRAGMA mmap_size = 0")


# --------------------------------------------------------------------------------------------------
# Column types


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp written as UTC and always read back as an aware UTC datetime.

    SQLite and MySQL keep no time zone, so the value is stored there as naive UTC; naive values
    handed in are taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name in ("sqlite", "mysql", "mariadb"):
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --------------------------------------------------------------------------------------------------
# ORM base: each feature declares the *current* shape of its tables on it (core.judgments,
# core.studies, core.batch). core.migrations holds its own frozen copies.


class Base(DeclarativeBase):
    """Declarative base of every ORM model kept in this database."""


@event.listens_for(Base, "before_insert", propagate=True)
@event.listens_for(Base, "before_update", propagate=True)
def _check_lengths(mapper: Mapper[Any], _connection: Connection, row: Any) -> None:
    """ValueTooLongError for a text longer than its VARCHAR(n) column, before any database sees it: PostgreSQL
    enforces n, SQLite does not, and both must refuse the same way. A column's info["label"] names it for people."""
    for attribute in mapper.column_attrs:
        column = attribute.columns[0]
        limit = getattr(column.type, "length", None)
        value = getattr(row, attribute.key, None)
        if limit and isinstance(value, str) and len(value) > limit:
            what = column.info.get("label") or f"The {column.name} of this {mapper.class_.__name__}"
            raise ValueTooLongError(f"{what} is {len(value):,} characters long; at most {limit:,} can be stored.")


# --------------------------------------------------------------------------------------------------
# Migrations: the steps are core.migrations; the store records here which ones a database has run.


_migrations_metadata = MetaData()
_SCHEMA_MIGRATIONS = Table(
    "schema_migrations",
    _migrations_metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)


# --------------------------------------------------------------------------------------------------
# Engine and errors


def _sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names, or None for an in-memory database."""
    database = url.database or ""
    if database.startswith("file:"):  # a URI filename (`?uri=true`): file:path?mode=...
        database = database[len("file:"):].split("?", 1)[0]
        if url.query.get("mode") == "memory" or "mode=memory" in (url.database or ""):
            return None
    if database in ("", ":memory:"):
        return None
    return Path(database).expanduser()


def _configure_sqlite(engine: Engine, mode: str = "wal") -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # SQLAlchemy emits BEGIN itself (below): the sqlite3 module would otherwise run DDL outside
        # the transaction, and a half-applied migration could be left behind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if mode == "volume":
                for pragma in VOLUME_PRAGMAS:
                    cursor.execute(pragma)
            else:
                # WAL lets the UI read History while a grade is being written. In-memory stays "memory".
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front (waiting busy_timeout for it), so two processes
        # migrating one file at once queue up instead of failing half way.
        immediate = connection.get_execution_options().get("glider_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# PostgreSQL's SQLSTATEs of a transaction that lost a race and may simply run again: serialization_failure,
# deadlock_detected, lock_not_available.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def _sqlstate(error: BaseException | None) -> str | None:
    """The SQLSTATE of a PostgreSQL error (psycopg's `sqlstate`), None for other databases' errors."""
    found = getattr(getattr(error, "orig", None), "sqlstate", None)
    return found if isinstance(found, str) else None


def _retryable(error: StorageError, integrity_retries_left: bool) -> bool:
    """Whether Store.write should run a failed transaction again: SQLite's file stayed locked, PostgreSQL chose this
    transaction as a deadlock's or a serialization failure's victim, or (once) a unique-key race was lost."""
    cause = error.__cause__
    if _sqlstate(cause) in RETRYABLE_SQLSTATES:
        return True
    if isinstance(cause, OperationalError) and _sqlstate(cause) is None:
        text = str(cause).lower()
        return "locked" in text or "busy" in text
    # Another writer inserted the same unique key between our check and our insert (databases without
    # SQLite's up-front write lock): run the work again, which now sees that row.
    return isinstance(cause, IntegrityError) and integrity_retries_left


def _back_off(attempt: int) -> None:
    # Jittered, so writers that collided do not collide again in step.
    time.sleep(random.uniform(0.01, 0.05) * 2**attempt)


def _explain_server(reason: str, where: str, action: str) -> str:
    """An actionable sentence for a failure of a database server (PostgreSQL through psycopg)."""
    lowered = reason.lower()
    url = make_url(where)
    host = f"{url.host or 'localhost'}:{url.port or 5432}"
    hint = "Check GLIDER_DB (a SQLAlchemy URL, e.g. postgresql+psycopg://user:password@host:5432/glider)."
    first = reason.splitlines()[0] if reason else reason
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return (f"Could not {action} the database at {where}: the server at {host} refused the user "
                f"{url.username or '(none)'!r} (a wrong or missing password, or no such user). {hint}")
    if re.search(r"role \"[^\"]*\" does not exist", lowered):
        return f"Could not {action} the database at {where}: the server at {host} has no user {url.username!r}. {hint}"
    if re.search(r"database \"[^\"]*\" does not exist", lowered):
        return (f"Could not {action} the database at {where}: the server at {host} has no database "
                f"{url.database!r}; create it first (createdb {url.database}). {hint}")
    if ("connection refused" in lowered or "could not connect" in lowered or "connection failed" in lowered
            or "name or service not known" in lowered or "could not translate host" in lowered
            or "timeout expired" in lowered or "server closed the connection" in lowered):
        return (f"Could not {action} the database at {where}: no PostgreSQL server answers at {host} ({first}). "
                f"Is the server running, and are the host and port right? {hint}")
    if "read-only transaction" in lowered:
        return f"Could not {action} the database at {where}: the server only allows reading here ({first})."
    if "permission denied" in lowered:
        return (f"Could not {action} the database at {where}: the user {url.username!r} lacks a privilege "
                f"({first}). Grant it, or {hint[0].lower()}{hint[1:]}")
    return f"Could not {action} the database at {where}: {first}. {hint}"


def _explain(error: BaseException, where: str, action: str) -> str:
    """An actionable sentence for a database failure."""
    reason = str(getattr(error, "orig", None) or error).strip()
    if not where.startswith("sqlite"):
        return _explain_server(reason, where, action)
    lowered = reason.lower()
    hint = "Point GLIDER_DB (a SQLAlchemy URL) or GLIDER_DATA_DIR at a database you can write to."
    if "unable to open" in lowered or "cannot open" in lowered:
        return (f"Could not {action} the database at {where}: the file cannot be opened (its folder may "
                f"be missing or not writable). {hint}")
    if "not a database" in lowered or "malformed" in lowered or "encrypted" in lowered:
        return (f"Could not {action} the database at {where}: the file is not a GLIDER Studio (SQLite) "
                f"database or is damaged. Move it aside, or {hint[0].lower()}{hint[1:]}")
    if "readonly" in lowered or "read-only" in lowered:
        return (f"Could not {action} the database at {where}: it is read-only. Make the file and its "
                f"folder writable, or {hint[0].lower()}{hint[1:]}")
    if "locked" in lowered or "busy" in lowered:
        return (f"Could not {action} the database at {where}: another process kept it locked for more "
                f"than {BUSY_TIMEOUT_MS / 1000:g} s. Try again, or close the other program using it.")
    if "disk" in lowered and ("full" in lowered or "i/o" in lowered):
        return f"Could not {action} the database at {where}: the disk is full or failing ({reason})."
    return f"Could not {action} the database at {where}: {reason}. {hint}"


# --------------------------------------------------------------------------------------------------
# The store


class Store:
    """Owns the engine; every read and write opens and commits its session here."""

    def __init__(
        self,
        url: str | URL,
        *,
        migrations: Sequence[Migration | tuple[int, str, Callable[[Connection], None]]] | None = None,
        sqlite_mode: str | None = None,
    ) -> None:
        """Open (creating if needed) the database at `url` and apply pending migrations.

        `sqlite_mode` ("wal" or "volume"; None: chosen by core.storage.sqlite_mode) sets how a SQLite file runs.
        """
        steps = checked(MIGRATIONS if migrations is None else migrations)
        try:
            self._url = make_url(url)
        except (ArgumentError, ValueError) as error:  # ValueError: e.g. a port that is not a number
            shown = re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", str(url))  # never echo a password
            raise StorageError(f"{shown!r} is not a database URL (expected e.g. sqlite:///data/glider.db).") from error
        if self._url.drivername == "postgresql":  # no driver named: psycopg 3, the one requirements.txt pins
            self._url = self._url.set(drivername="postgresql+psycopg")
        self._sqlite_mode = sqlite_mode
        self._engine = self._create_engine()
        # An in-memory SQLite database (and a file on a volume) is one shared connection: serialize its transactions.
        self._lock: threading.RLock | nullcontext[None] = (
            threading.RLock() if isinstance(self._engine.pool, StaticPool) else nullcontext()
        )
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        try:
            self._migrate_with_retries(steps)
        except BaseException:
            self._engine.dispose()
            raise

    def _migrate_with_retries(self, steps: list[Migration], attempts: int = 5) -> None:
        # While several processes open a brand-new file, SQLite can answer "database is locked" at
        # once (switching to WAL needs an exclusive lock, and the busy timeout does not cover that).
        for attempt in range(attempts):
            try:
                self._migrate(steps)
                return
            except StorageError as error:
                locked = isinstance(error.__cause__, OperationalError) and "locked" in str(error.__cause__)
                if not locked or attempt == attempts - 1:
                    raise
                time.sleep(0.1 * 2**attempt)

    @classmethod
    def from_path(cls, path: str | Path, **options: Any) -> Store:
        """A Store on the SQLite file at `path` (any characters allowed in the path)."""
        return cls(URL.create("sqlite", database=str(path)), **options)

    @property
    def url(self) -> str:
        """The database URL with any password masked, for logs and the UI."""
        url = self._url
        if url.get_backend_name() == "sqlite":
            # render_as_string percent-escapes ':' in paths (":memory:", "file:..."); show them as typed.
            query = "&".join(f"{key}={value}" for key, value in url.query.items())
            path = f"/{url.database}" if url.database else ""
            return f"{url.drivername}://{path}" + (f"?{query}" if query else "")
        return url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Close every pooled connection; the Store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # ---- setup

    def _create_engine(self) -> Engine:
        url = self._url
        options: dict[str, Any] = {}
        is_sqlite = url.get_backend_name() == "sqlite"
        if is_sqlite:
            path = _sqlite_file(url)
            if path is None:
                # The default pool gives each thread its own, different in-memory database.
                options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            elif self._choose_mode(path) == "volume":
                # locking_mode=EXCLUSIVE keeps the file locked by the connection that used it: one connection only.
                options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            if path is not None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as error:
                    reason = error.strerror or str(error)
                    if isinstance(error, (FileExistsError, NotADirectoryError)):
                        reason = "a file is in the way where a folder should be"
                    raise StorageError(
                        f"Could not create the folder for the database at {path}: {reason}. "
                        "Point GLIDER_DB (a SQLAlchemy URL) or GLIDER_DATA_DIR at a folder you can write to."
                    ) from error
        elif url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
            # A server that does not answer (a wrong host, a firewall) fails in seconds, not never.
            options.update(connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
        try:
            engine = create_engine(url, **options)
        except (ArgumentError, NoSuchModuleError, ImportError) as error:
            raise StorageError(f"Cannot use the database URL {self.url}: {error}") from error
        if is_sqlite:
            _configure_sqlite(engine, self._sqlite_mode or "wal")
        return engine

    def _choose_mode(self, path: Path) -> str:
        """The SQLite settings for the file at `path` (given, or chosen from the environment), stated in the log."""
        if self._sqlite_mode is None:
            try:
                self._sqlite_mode, why = choose_sqlite_mode(path)
            except ValueError as error:
                raise StorageError(str(error)) from error
        else:
            why = "chosen by the caller"
        if self._sqlite_mode not in ("wal", "volume"):
            raise StorageError(f"Unknown SQLite mode {self._sqlite_mode!r} (expected 'wal' or 'volume').")
        if self._sqlite_mode == "volume":
            log.info("SQLite on a mounted volume (%s): journal_mode=DELETE, locking_mode=EXCLUSIVE, mmap_size=0, "
                     "one connection and one writer lock; no other process may open %s meanwhile", why, path)
        else:
            log.debug("SQLite in WAL mode (%s)", why)
        return self._sqlite_mode

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file this Store uses, or None (in-memory, or another database)."""
        return _sqlite_file(self._url) if self._url.get_backend_name() == "sqlite" else None

    @property
    def backend(self) -> str:
        """The database's kind as SQLAlchemy names it: "sqlite", "postgresql", ..."""
        return self._url.get_backend_name()

    @property
    def sqlite_mode(self) -> str | None:
        """How a SQLite file runs here ("wal" or "volume"), None for in-memory and other databases."""
        return self._sqlite_mode if self.sqlite_path is not None else None

    def _migrate(self, steps: list[Migration]) -> None:
        """Apply pending steps, one transaction each; an up-to-date database is only read, never locked."""
        known = steps[-1].version if steps else 0
        with self._storage_errors("open"), self._lock:
            applied = self._applied_versions(write=False)
            self._refuse_newer(applied, known)
            for step in steps:
                if step.version in applied:
                    continue
                with self._engine.connect() as connection:
                    connection.execution_options(glider_immediate=True)
                    with connection.begin():
                        if connection.dialect.name == "postgresql":
                            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                        # Re-read under the write lock: another process may have migrated meanwhile.
                        applied = self._applied_versions(write=True, connection=connection)
                        self._refuse_newer(applied, known)
                        if step.version in applied:
                            continue
                        step.apply(connection)
                        connection.execute(
                            insert(_SCHEMA_MIGRATIONS).values(
                                version=step.version, name=step.name, applied_at=datetime.now(UTC)
                            )
                        )

    def _applied_versions(self, *, write: bool, connection: Connection | None = None) -> set[int]:
        """Versions recorded in schema_migrations; with write=True the table is created when missing."""
        if connection is None:
            with self._engine.connect() as own:
                return self._applied_versions(write=write, connection=own)
        if not inspect(connection).has_table(_SCHEMA_MIGRATIONS.name):
            if not write:
                return set()
            _SCHEMA_MIGRATIONS.create(connection)
        return set(connection.scalars(select(_SCHEMA_MIGRATIONS.c.version)))

    def _refuse_newer(self, applied: set[int], known: int) -> None:
        newest = max(applied, default=0)
        if newest > known:
            raise StorageError(
                f"The database at {self.url} was created by a newer GLIDER Studio (schema version {newest}; "
                f"this version understands up to {known}). Upgrade GLIDER Studio, or point GLIDER_DB at "
                "another database."
            )

    @contextmanager
    def _storage_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except (SQLAlchemyError, sqlite3.Error) as error:
            raise StorageError(_explain(error, self.url, action)) from error

    @contextmanager
    def _session(self, action: str) -> Iterator[Session]:
        """The one place sessions are opened: committed on success, rolled back on error, closed."""
        with self._lock, self._storage_errors(action), self._sessions.begin() as session:
            yield session

    # ---- access for the modules that keep their tables in this database (core.judgments, core.studies, ...)

    @property
    def engine(self) -> Engine:
        """The engine this Store owns (do not dispose it; call close())."""
        return self._engine

    @contextmanager
    def session(self, action: str = "use", *, write: bool = False) -> Iterator[Session]:
        """A session committed on success and rolled back on error; failures become StorageError.

        `action` completes "Could not ... the database" in error messages ("read", "save a label to").
        With write=True a SQLite transaction takes the write lock up front (BEGIN IMMEDIATE), so a
        read-then-write transaction waits for other writers instead of failing with "database is locked".
        """
        with self._session(action) as session:
            if write and self._engine.dialect.name == "sqlite":
                session.connection(execution_options={"glider_immediate": True})
            yield session

    def write(self, action: str, work: Callable[[Session], T]) -> T:
        """Run `work(session)` in one short write transaction and return what it returns; THE write path.

        On SQLite the write lock is taken up front (BEGIN IMMEDIATE). When the database stays locked past
        the busy timeout, or PostgreSQL cancels the transaction to break a deadlock or a serialization conflict
        (RETRYABLE_SQLSTATES), the whole transaction runs again after a jittered back-off, up to WRITE_ATTEMPTS
        times; a unique-constraint race (IntegrityError) runs again once, so work that checks before it
        inserts sees the other writer's row then. `work` must therefore only change the database through
        `session`. Failures are StorageError ("Could not {action} the database ..."); other exceptions
        raised by `work` roll the transaction back and pass through unchanged, without a retry.
        """
        integrity_retries = 1
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with self.session(action, write=True) as session:
                    return work(session)
            except StorageError as error:
                if attempt == WRITE_ATTEMPTS - 1 or not _retryable(error, integrity_retries > 0):
                    raise
                if isinstance(error.__cause__, IntegrityError):
                    integrity_retries -= 1
                _back_off(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- queries

    def schema_version(self) -> int:
        """The highest migration version applied to this database (0 for none)."""
        with self._lock, self._storage_errors("read"):
            return max(self._applied_versions(write=False), default=0)

    def applied_migrations(self) -> list[tuple[int, str, datetime]]:
        """Every applied migration as (version, name, applied_at), oldest first."""
        with self._session("read") as session:
            rows = session.execute(select(_SCHEMA_MIGRATIONS).order_by(_SCHEMA_MIGRATIONS.c.version))
            return [(row.version, row.name, row.applied_at) for row in rows]

    # ---- judgments: compatibility for callers written before core.judgments existed. Each delegates to
    # core.judgments.Judgments (imported when called, so importing this module loads no domain module);
    # new code uses Judgments(store) directly.

    def save_grade(self, result: GradeResult) -> int:
        """Judgments(self).save_grade(result): store one finished grade; returns the new judgment id."""
        from core.judgments import Judgments

        return Judgments(self).save_grade(result)

    def get_judgment(self, judgment_id: int) -> StoredJudgment | None:
        """Judgments(self).get(judgment_id): the stored judgment with this id, or None."""
        from core.judgments import Judgments

        return Judgments(self).get(judgment_id)

    def list_judgments(self, limit: int = 100, offset: int = 0) -> list[JudgmentSummary]:
        """Judgments(self).summaries(limit, offset): summaries of stored judgments, newest first."""
        from core.judgments import Judgments

        return Judgments(self).summaries(limit, offset)

    def count_judgments(self) -> int:
        """Judgments(self).count(): how many judgments are stored."""
        from core.judgments import Judgments

        return Judgments(self).count()

    def delete_judgment(self, judgment_id: int) -> bool:
        """Judgments(self).delete(judgment_id): delete one judgment; False when there was none."""
        from core.judgments import Judgments

        return Judgments(self).delete(judgment_id)
