"""The database infrastructure (core.store): files, migrations, errors, the one write path.

Tested on real databases (no mocks): what holds on every back-end runs on a SQLite file and on PostgreSQL
(conftest.db_url); what is about a SQLite file as such (its path, WAL, "database is locked", a read-only file)
stays SQLite-only and says so. Stored judgments are the data (their own tests: test_judgments.py).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

import core.store
from core.errors import StorageError
from core.judgments import Judgments
from core.settings import default_data_dir, default_db_url
from core.store import MIGRATIONS, Migration, Store
from tests.databases import column_names, raw
from tests.test_judgments import make_result


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "glider.db"


# ---- files, connections, migrations


def test_reopen_keeps_data_and_does_not_reapply_migrations(db_url: str) -> None:
    with Store(db_url) as first:
        judgment_id = first.save_grade(make_result())
        first_applied = first.applied_migrations()
    with Store(db_url) as second:
        assert second.get_judgment(judgment_id) is not None
        assert second.schema_version() == MIGRATIONS[-1].version
        assert second.applied_migrations() == first_applied
        assert all(at.tzinfo is UTC for _, _, at in first_applied)  # aware UTC on both back-ends
    with raw(db_url) as sql:
        rows = sql.execute(text("SELECT version, name FROM schema_migrations ORDER BY version")).fetchall()
    assert rows == [(m.version, m.name) for m in MIGRATIONS]


def test_migrations_live_in_their_own_frozen_module() -> None:
    """The steps are core.migrations (core.store re-exports them); their DDL reads no ORM model or other module."""
    import ast

    import core.migrations

    assert core.store.MIGRATIONS is core.migrations.MIGRATIONS and core.store.Migration is core.migrations.Migration
    assert [m.name for m in MIGRATIONS] == ["create_judgments", "create_studies", "create_batch_jobs",
                                            "add_users_can_grade", "study_administration", "queue_order",
                                            "judge_runs", "pairwise_studies", "study_audits", "username_keys"]
    tree = ast.parse(Path(core.migrations.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {name for name in imported if name == "core" or name.startswith("core.")}, imported

def test_wal_mode_is_on(db_path: Path) -> None:  # SQLite only: WAL is a SQLite file's journal
    Store.from_path(db_path).close()
    with sqlite3.connect(db_path) as raw:  # journal_mode=WAL is persistent, so a bare connection sees it
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _counting_migration(calls: list[str]) -> Migration:
    def add_notes(connection: Any) -> None:
        calls.append("ran")
        connection.execute(text("ALTER TABLE judgments ADD COLUMN notes TEXT"))

    return Migration(MIGRATIONS[-1].version + 1, "add_notes", add_notes)


def test_appended_migration_runs_once_on_existing_db(db_url: str) -> None:
    with Store(db_url) as old:
        judgment_id = old.save_grade(make_result())
    calls: list[str] = []
    extended = [*MIGRATIONS, _counting_migration(calls)]
    for _ in range(2):
        with Store(db_url, migrations=extended) as new:
            assert new.schema_version() == extended[-1].version
            assert new.get_judgment(judgment_id) is not None
    assert calls == ["ran"]
    assert "notes" in column_names(db_url, "judgments")
    with raw(db_url) as sql:
        assert sql.execute(text("SELECT count(*) FROM schema_migrations WHERE name = 'add_notes'")).scalar_one() == 1


# Rows written straight into an old schema: literals both SQLite and PostgreSQL read (TRUE, a timestamp as text).
OLD_ADMIN = ("INSERT INTO users (username, role, password_hash, created_at) "
             "VALUES ('ada', 'admin', 'scrypt$x', '2026-01-01 00:00:00')")
OLD_STUDY = ("INSERT INTO studies (name, description, pass_criteria, rubric, scale_min, scale_max, tags, "
             "overlap_target, blind, judge_settings, created_by_id, created_at, updated_at) VALUES ('s', '', "
             "'p', 'r', 0, 1, '[]', 3, TRUE, '{}', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')")


def test_migration_4_adds_the_grade_right_off_for_existing_users(db_url: str) -> None:
    with Store(db_url, migrations=MIGRATIONS[:3]) as old:
        assert old.schema_version() == 3
    with raw(db_url) as sql:
        sql.execute(text("INSERT INTO users (username, role, password_hash, created_at) "
                         "VALUES ('ann', 'annotator', 'scrypt$x', '2026-01-01 00:00:00')"))
    with Store(db_url, migrations=MIGRATIONS[:4]) as new:
        assert new.schema_version() == 4 and MIGRATIONS[3].name == "add_users_can_grade"
    with raw(db_url) as sql:
        assert sql.execute(text("SELECT username, can_grade FROM users")).fetchall() == [("ann", False)]
        sql.execute(text("INSERT INTO users (username, role, password_hash, created_at) "
                         "VALUES ('bob', 'annotator', 'scrypt$y', '2026-01-01 00:00:00')"))  # the default holds
        assert sql.execute(text("SELECT can_grade FROM users WHERE username = 'bob'")).scalar_one() == False  # noqa: E712


def test_migration_5_keeps_what_existing_studies_users_and_items_meant(db_url: str) -> None:
    with Store(db_url, migrations=MIGRATIONS[:4]):
        pass
    with raw(db_url) as sql:
        sql.execute(text(OLD_ADMIN))
        sql.execute(text(OLD_STUDY))
        sql.execute(text("INSERT INTO items (study_id, fields, order_key, created_at) "
                         "VALUES (1, '[]', 7, '2026-01-01 00:00:00')"))
    with Store(db_url, migrations=MIGRATIONS[:5]) as new:
        assert new.schema_version() == 5 and MIGRATIONS[4].name == "study_administration"
    with raw(db_url) as sql:
        assert sql.execute(text("SELECT active, must_change_password FROM users")).fetchall() == [(True, False)]
        assert sql.execute(text("SELECT guidelines, archived_at, assignment, split_items FROM studies")).fetchall() \
            == [("", None, "open", False)]
        assert sql.execute(text("SELECT removed_at FROM items")).fetchall() == [(None,)]
        sql.execute(text("INSERT INTO adjudications (study_id, item_id, reviewer_id, score, note, created_at) "
                         "VALUES (1, 1, 1, 1, 'settled', '2026-01-02 00:00:00')"))
        sql.execute(text("INSERT INTO study_annotators (study_id, user_id) VALUES (1, 1)"))
        sql.execute(text("DELETE FROM studies"))  # a deleted study takes its items, adjudications and assignments along
        assert [sql.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()  # noqa: S608 (fixed names)
                for t in ("items", "adjudications", "study_annotators")] == [0, 0, 0]


def test_migration_6_keeps_the_data_and_marks_items_already_handed_out_as_drawn_at_random(db_url: str) -> None:
    with Store(db_url, migrations=MIGRATIONS[:5]):
        pass
    with raw(db_url) as sql:
        sql.execute(text(OLD_ADMIN))
        sql.execute(text(OLD_STUDY))
        for key in (7, 8, 9):  # items 1 (labelled), 2 (claimed), 3 (never handed out)
            sql.execute(text("INSERT INTO items (study_id, fields, order_key, created_at) "
                             "VALUES (1, '[]', :key, '2026-01-01 00:00:00')"), {"key": key})
        sql.execute(text("INSERT INTO annotations (study_id, item_id, annotator_id, score, score_before_reveal, "
                         "spans, comment, seconds, created_at, updated_at) VALUES (1, 1, 1, 1, 1, '[]', 'kept', 2.5, "
                         "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        sql.execute(text("INSERT INTO item_claims (study_id, annotator_id, item_id, claimed_at) "
                         "VALUES (1, 1, 2, '2026-01-01 00:00:00')"))
        before = {t: sql.execute(text(f"SELECT * FROM {t} ORDER BY 1")).fetchall()  # noqa: S608 (fixed names)
                  for t in ("users", "studies", "items", "annotations", "item_claims")}
    with Store(db_url) as new:
        assert new.schema_version() == len(MIGRATIONS) and MIGRATIONS[5].name == "queue_order"
    with raw(db_url) as sql:
        for table, old_rows in before.items():  # every old column keeps its values; new ones come on the right
            width = len(old_rows[0])
            assert [row[:width] for row in sql.execute(text(f"SELECT * FROM {table} ORDER BY 1"))] == old_rows, table  # noqa: S608
        assert sql.execute(text("SELECT queue_order, random_first FROM studies")).fetchall() == [("random", 0)]
        assert sql.execute(text("SELECT id, drawn_by FROM items ORDER BY id")).fetchall() == [
            (1, "random"), (2, "random"), (3, None)]
        sql.execute(text("INSERT INTO study_setting_changes (study_id, editor_id, at, changes) "
                         "VALUES (1, 1, '2026-01-02 00:00:00', '{\"queue_order\": [\"random\", \"uncertainty\"]}')"))
        sql.execute(text("DELETE FROM item_claims"))
        sql.execute(text("DELETE FROM annotations"))
        sql.execute(text("DELETE FROM studies"))  # a deleted study takes its recorded setting changes along
        assert sql.execute(text("SELECT COUNT(*) FROM study_setting_changes")).scalar_one() == 0


def test_failed_migration_is_rolled_back(db_url: str) -> None:
    def half_done(connection: Any) -> None:
        connection.execute(text("CREATE TABLE half (x INTEGER)"))
        raise RuntimeError("migration bug")

    broken = [*MIGRATIONS, Migration(MIGRATIONS[-1].version + 1, "broken", half_done)]
    with pytest.raises(RuntimeError, match="migration bug"):
        Store(db_url, migrations=broken)
    with Store(db_url) as store:
        assert store.schema_version() == MIGRATIONS[-1].version
    with raw(db_url) as sql:  # the DDL was inside the transaction, so it is gone too
        assert "half" not in inspect(sql).get_table_names()


def test_database_from_a_newer_version_is_refused(db_url: str) -> None:
    Store(db_url, migrations=[*MIGRATIONS, _counting_migration([])]).close()
    with pytest.raises(StorageError, match="newer GLIDER Studio"):
        Store(db_url)


def test_migration_list_must_be_ascending(db_path: Path) -> None:
    with pytest.raises(ValueError, match="ascending"):
        Store.from_path(db_path, migrations=[*MIGRATIONS, *MIGRATIONS])


def test_two_stores_on_one_database_see_each_others_writes(db_url: str) -> None:
    with Store(db_url) as a, Store(db_url) as b:
        from_a = a.save_grade(make_result())
        assert b.get_judgment(from_a) is not None
        from_b = b.save_grade(make_result())
        assert {s.id for s in a.list_judgments()} == {from_a, from_b}
        assert a.delete_judgment(from_b)
        assert b.count_judgments() == 1


def test_concurrent_writers_from_threads(db_url: str) -> None:
    with Store(db_url) as store:
        errors: list[BaseException] = []

        def write() -> None:
            try:
                for _ in range(5):
                    store.save_grade(make_result())
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=write) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert store.count_judgments() == 20


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_database(url: str) -> None:
    with Store(url) as store:
        judgment_id = store.save_grade(make_result())
        seen: list[object] = []
        thread = threading.Thread(target=lambda: seen.append(store.get_judgment(judgment_id)))
        thread.start()
        thread.join()
        assert seen[0] is not None  # one shared database, not one per thread
        assert store.schema_version() == MIGRATIONS[-1].version


# ---- the one write path: Store.write (SQLite only below: another program's lock on the file; PostgreSQL's retries
# on a deadlock are in test_postgres_store.py)


class WriteLock:
    """Another program's write transaction on a SQLite file (BEGIN IMMEDIATE), held until released."""

    def __init__(self, path: Path) -> None:
        self._raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.held = False

    def take(self) -> None:
        self._raw.execute("BEGIN IMMEDIATE")
        self.held = True

    def release(self) -> None:
        if self.held:
            self._raw.execute("COMMIT")
            self.held = False

    def close(self) -> None:
        self.release()
        self._raw.close()


def release_on_back_off(monkeypatch: pytest.MonkeyPatch, lock: WriteLock | None) -> list[int]:
    """Make SQLite give up on a lock after 50 ms (for Stores opened afterwards) and Store.write's back-off
    release `lock` instead of sleeping; returns the attempts that backed off, in order."""
    backed_off: list[int] = []

    def back_off(attempt: int) -> None:
        backed_off.append(attempt)
        if lock is not None:
            lock.release()

    monkeypatch.setattr(core.store, "BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(core.store, "_back_off", back_off)
    return backed_off


@pytest.fixture
def notes(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, WriteLock, list[int]]]:
    """A Store with a `notes` table, another program's (not yet taken) write lock, and the back-offs seen."""
    db_path.parent.mkdir(parents=True)
    lock = WriteLock(db_path)
    backed_off = release_on_back_off(monkeypatch, lock)
    try:
        with Store.from_path(db_path) as store:
            create = text("CREATE TABLE notes (name TEXT UNIQUE NOT NULL)")
            store.write("create a table in", lambda session: session.execute(create))
            yield store, lock, backed_off
    finally:
        lock.close()


def _names(store: Store) -> list[str]:
    with store.session("read") as session:
        return list(session.scalars(text("SELECT name FROM notes ORDER BY name")))


def test_write_commits_and_returns_what_the_work_returns(notes: tuple[Store, WriteLock, list[int]]) -> None:
    store, _, backed_off = notes
    assert store.write("save a note to", lambda s: s.execute(text("INSERT INTO notes VALUES ('a')")).rowcount) == 1
    assert _names(store) == ["a"] and backed_off == []


def test_write_waits_out_a_locked_database(notes: tuple[Store, WriteLock, list[int]]) -> None:
    store, lock, backed_off = notes
    lock.take()  # another program is writing: our BEGIN IMMEDIATE times out with "database is locked"
    calls: list[int] = []

    def work(session: Any) -> str:
        calls.append(1)
        session.execute(text("INSERT INTO notes VALUES ('b')"))
        return "saved"

    assert store.write("save a note to", work) == "saved"
    assert backed_off == [0] and not lock.held  # one locked attempt, then the retry got the lock
    assert calls == [1] and _names(store) == ["b"]  # the work ran once: the lock was refused at BEGIN


def test_write_gives_up_after_write_attempts(notes: tuple[Store, WriteLock, list[int]],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    store, lock, backed_off = notes
    lock.take()
    monkeypatch.setattr(core.store, "_back_off", backed_off.append)  # the lock is never released
    with pytest.raises(StorageError, match="Could not save a note to the database .* locked") as caught:
        store.write("save a note to", lambda s: s.execute(text("INSERT INTO notes VALUES ('c')")))
    assert backed_off == list(range(core.store.WRITE_ATTEMPTS - 1))
    assert "Traceback" not in str(caught.value)
    lock.release()
    assert _names(store) == []


def test_write_reruns_a_lost_unique_key_race_once(notes: tuple[Store, WriteLock, list[int]]) -> None:
    store, _, backed_off = notes
    store.write("save a note to", lambda s: s.execute(text("INSERT INTO notes VALUES ('d')")))
    calls: list[int] = []

    def check_then_insert(session: Any) -> str:
        calls.append(1)
        # The first run "checked" before the other writer's row existed; the rerun sees it.
        if len(calls) > 1 and session.scalar(text("SELECT count(*) FROM notes WHERE name = 'd'")):
            return "already there"
        session.execute(text("INSERT INTO notes VALUES ('d')"))
        return "inserted"

    assert store.write("save a note to", check_then_insert) == "already there"
    assert len(calls) == 2 and backed_off == [0]

    calls.clear()
    always = lambda s: (calls.append(1), s.execute(text("INSERT INTO notes VALUES ('d')")))  # noqa: E731
    with pytest.raises(StorageError, match="UNIQUE"):
        store.write("save a note to", always)
    assert len(calls) == 2  # one rerun for a unique-key race, not WRITE_ATTEMPTS


def test_write_does_not_rerun_other_errors_and_rolls_back(notes: tuple[Store, WriteLock, list[int]]) -> None:
    store, _, backed_off = notes
    calls: list[int] = []

    def half_done(session: Any) -> None:
        calls.append(1)
        session.execute(text("INSERT INTO notes VALUES ('e')"))
        raise ValueError("bad input found half way")

    with pytest.raises(ValueError, match="half way"):
        store.write("save a note to", half_done)
    assert calls == [1] and backed_off == [] and _names(store) == []


def test_judgment_methods_of_store_delegate_to_the_repository(store: Store) -> None:
    judgments = Judgments(store)
    saved = store.save_grade(make_result())
    assert store.get_judgment(saved) == judgments.get(saved) is not None
    assert store.list_judgments() == judgments.summaries() and store.count_judgments() == judgments.count() == 1
    assert store.delete_judgment(saved) and judgments.count() == 0


# ---- errors a user can act on


def test_folder_blocked_by_a_file(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("not a folder")
    with pytest.raises(StorageError, match="GLIDER_DB"):
        Store.from_path(tmp_path / "blocker" / "glider.db")


def test_garbage_file_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "glider.db"
    path.write_bytes(b"this is not a SQLite database\n" * 200)
    with pytest.raises(StorageError, match="not a GLIDER Studio") as caught:
        Store.from_path(path)
    assert "Traceback" not in str(caught.value)
    assert path.read_bytes() == b"this is not a SQLite database\n" * 200  # left untouched


def test_read_only_database_refuses_writes_clearly(db_path: Path) -> None:
    Store.from_path(db_path).close()
    with Store(f"sqlite:///file:{db_path}?mode=ro&uri=true") as read_only:
        assert read_only.count_judgments() == 0  # reading still works
        with pytest.raises(StorageError, match="read-only"):
            read_only.save_grade(make_result())


def test_unwritable_folder(tmp_path: Path) -> None:
    # Root ignores permission bits (CI runs as root), but nobody can create folders inside /proc.
    as_root = os.name == "posix" and os.geteuid() == 0
    locked = Path("/proc/glider-studio-locked") if as_root else tmp_path / "locked"
    if not as_root:
        locked.mkdir(mode=0o500)
    try:
        with pytest.raises(StorageError, match="GLIDER_DB"):
            Store.from_path(locked / "glider.db")
    finally:
        if not as_root:
            locked.chmod(0o700)


@pytest.mark.parametrize("url", ["not a url", "nosuchdialect://x/y"])
def test_bad_url(url: str) -> None:
    with pytest.raises(StorageError):
        Store(url)


def test_password_is_masked() -> None:
    url = "sqlite:///file:glider.db?mode=memory&uri=true"
    with Store(url) as store:
        assert store.url == url
    # A server URL cannot be opened here (no driver, no server), but its password never leaks.
    with pytest.raises(StorageError) as caught:
        Store("postgresql+nosuchdriver://glider:s3cret@db.example/glider")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(StorageError) as caught:
        Store("postgresql://glider:s3cret@db.example:notaport/glider")
    assert "s3cret" not in str(caught.value)


def test_url_of_a_file_store(db_path: Path) -> None:
    store = Store.from_path(db_path)
    store.close()
    assert store.url == f"sqlite:///{db_path}"
    assert repr(store) == f"Store('sqlite:///{db_path}')"


# ---- settings that choose the database


def test_settings_env_overrides(tmp_path: Path) -> None:
    env = {"GLIDER_DATA_DIR": str(tmp_path / "d"), "SPACE_ID": "me/space"}
    assert default_data_dir(env, persistent_dir=tmp_path) == tmp_path / "d"
    assert default_db_url(env) == f"sqlite:///{tmp_path / 'd' / 'glider-studio.db'}"
    assert default_db_url({**env, "GLIDER_DB": "postgresql://x/y"}) == "postgresql://x/y"


def test_settings_spaces_persistent_storage(tmp_path: Path) -> None:
    assert default_data_dir({"SPACE_ID": "me/space"}, persistent_dir=tmp_path) == tmp_path / "glider-studio"
    assert default_data_dir({}, persistent_dir=tmp_path) == Path.cwd() / "data"
    missing = tmp_path / "missing"
    assert default_data_dir({"SPACE_ID": "me/space"}, persistent_dir=missing) == Path.cwd() / "data"


def test_default_db_url_opens(tmp_path: Path) -> None:
    odd = tmp_path / "odd ?#: name"
    with Store(default_db_url({"GLIDER_DATA_DIR": str(odd)})) as store:
        assert store.count_judgments() == 0
    assert (odd / "glider-studio.db").is_file()



def test_stores_opening_a_new_database_at_once_migrate_it_once(db_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_store() -> None:
        barrier.wait()
        try:
            Store(db_url).close()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with raw(db_url) as sql:
        assert sql.execute(text("SELECT count(*) FROM schema_migrations")).scalar_one() == len(MIGRATIONS)
