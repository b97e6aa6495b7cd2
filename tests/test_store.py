"""The judgment store, tested on real SQLite files (no mocks)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from core.errors import StorageError
from core.grading import FieldSpan, GradeRequest, GradeResult
from core.judge.base import Generation
from core.parse import parse_output
from core.settings import default_data_dir, default_db_url
from core.store import MIGRATIONS, JudgmentRow, Migration, Store
from tests.fakes import WELL_FORMED

ANSWER = WELL_FORMED

REPRO = {
    "backend": "transformers",
    "model_id": "PatronusAI/glider",
    "revision": "abc123",
    "quantization": "nf4",
    "dtype": "bfloat16",
    "device": "cuda:0",
    "decoding": {"strategy": "greedy", "temperature": 0.0},
    "max_new_tokens": 1024,
    "prompt_sha256": "0" * 64,
    "app_version": "0.1.0",
}

CREATED = datetime(2025, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)


def make_result(
    fields: dict[str, str] | None = None,
    raw: str = ANSWER,
    created_at: datetime = CREATED,
    distribution: dict[int, float] | None = None,
    pass_criteria: str = "Is the response faithful to the context?",
    rubric: str = "0: The response is not faithful.\n1: The response is faithful.",
) -> GradeResult:
    """A complete GradeResult built from the real value types and a really parsed answer."""
    fields = fields if fields is not None else {
        "CONTEXT": "France's capital is Paris.",
        "USER INPUT": "What is the capital of France?",
        "MODEL OUTPUT": "Paris is the capital of France.",
    }
    distribution = distribution if distribution is not None else {0: 0.125, 1: 0.875}
    generation = Generation(text=raw, prompt_tokens=412, completion_tokens=57, finish_reason="stop",
                            distribution=distribution, distribution_mass=0.97, seconds=1.25,
                            first_token_seconds=0.5, settings={"top_k": None})
    return GradeResult(
        request=GradeRequest(fields=fields, pass_criteria=pass_criteria, rubric=rubric),
        prompt="<the rendered GLIDER prompt>",
        scale=(0, 1),
        judgment=parse_output(raw, (0, 1)),
        spans=[FieldSpan("MODEL OUTPUT", 0, 30, "Paris is the capital of France"),
               FieldSpan("CONTEXT", 10, 17, "capital")],
        ungrounded=["not in any field"],
        generation=generation,
        backend=dict(REPRO),
        created_at=created_at,
        timings={"total_s": 1.5, "generation_s": 1.25, "first_token_s": 0.5},
        warnings=("The prompt is long.",),
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "glider.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store.from_path(db_path) as opened:
        yield opened


# ---- round trip


def test_full_grade_round_trips(store: Store) -> None:
    result = make_result()
    judgment_id = store.save_grade(result)
    stored = store.get_judgment(judgment_id)

    assert stored is not None
    assert stored.id == judgment_id
    assert stored.created_at == CREATED
    assert stored.fields == dict(result.request.fields)
    assert stored.pass_criteria == result.request.pass_criteria
    assert stored.rubric == result.request.rubric
    assert stored.scale == (0, 1)
    assert stored.raw_output == ANSWER
    assert stored.reasoning == result.judgment.reasoning
    assert stored.highlights == ["Paris is the capital of France", "capital"]
    assert stored.score == 1
    assert stored.status == "ok"
    assert stored.problems == []
    assert stored.spans == [
        {"field": "MODEL OUTPUT", "start": 0, "end": 30, "phrase": "Paris is the capital of France"},
        {"field": "CONTEXT", "start": 10, "end": 17, "phrase": "capital"},
    ]
    assert stored.ungrounded == ["not in any field"]
    assert stored.distribution == {0: 0.125, 1: 0.875}
    assert stored.distribution_mass == 0.97
    assert stored.expected_score == pytest.approx(0.875)
    assert stored.confidence == 0.875
    assert stored.prompt_tokens == 412
    assert stored.completion_tokens == 57
    assert stored.timings == {"total_s": 1.5, "generation_s": 1.25, "first_token_s": 0.5}
    assert stored.repro == REPRO
    assert stored.warnings == ["The prompt is long."]


def test_repro_is_also_in_indexed_columns(store: Store, db_path: Path) -> None:
    store.save_grade(make_result())
    with sqlite3.connect(db_path) as raw:
        row = raw.execute("SELECT model_id, backend, prompt_sha256 FROM judgments").fetchone()
        indexes = {r[1] for r in raw.execute("PRAGMA index_list(judgments)")}
    assert row == ("PatronusAI/glider", "transformers", "0" * 64)
    assert {"ix_judgments_model_id", "ix_judgments_backend", "ix_judgments_prompt_sha256",
            "ix_judgments_created_at"} <= indexes


def test_missing_distribution_and_score_are_none(store: Store) -> None:
    result = make_result(raw="no tags at all", distribution={})
    stored = store.get_judgment(store.save_grade(result))
    assert stored is not None
    assert stored.distribution is None
    assert stored.expected_score is None and stored.confidence is None
    assert stored.raw_output == "no tags at all"
    assert (stored.score, stored.status, stored.reasoning, stored.highlights) == (None, "failed", None, [])
    assert stored.problems == result.judgment.problems and stored.problems


PAYLOADS = [
    "<script>alert('x')</script>",
    '<img src=x onerror="alert(1)">',
    "Ünïcödé — “quotes” ‘single’ … 中文 العربية עברית",
    "emoji 🧪👩🏽‍🔬 and combining e\u0301 vs \u00e9",
    "line\r\nbreaks\rand\ttabs\n\n  trailing spaces  ",
    "json-ish {\"a\": [1, 2]} and back\\slashes \\u0000",
    "nul \x00 inside",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_text_survives_byte_exact(store: Store, payload: str) -> None:
    fields = {f"TAG {payload[:3]}": payload, "MODEL OUTPUT": payload}
    result = make_result(fields=fields, raw=payload + ANSWER, pass_criteria=payload, rubric="0: " + payload)
    stored = store.get_judgment(store.save_grade(result))
    assert stored is not None
    assert stored.fields == fields
    assert stored.raw_output == payload + ANSWER
    assert stored.pass_criteria == payload
    assert stored.rubric == "0: " + payload
    assert all(a.encode() == b.encode() for a, b in zip(stored.fields.values(), fields.values(), strict=True))


def test_field_order_is_preserved(store: Store) -> None:
    fields = {"Zeta": "z", "MODEL OUTPUT": "out", "Alpha": "a", "10": "ten", "2": "two"}
    stored = store.get_judgment(store.save_grade(make_result(fields=fields)))
    assert stored is not None
    assert list(stored.fields.items()) == list(fields.items())


def test_distribution_keys_are_ints(store: Store) -> None:
    result = make_result(distribution={1: 0.1, 2: 0.2, 3: 0.3, 4: 0.25, 5: 0.15})
    stored = store.get_judgment(store.save_grade(result))
    assert stored is not None and stored.distribution is not None
    assert stored.distribution == {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.25, 5: 0.15}
    assert all(type(key) is int for key in stored.distribution)


def test_datetimes_are_aware_utc(store: Store) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    local = datetime(2025, 3, 1, 18, 0, 45, 123456, tzinfo=india)
    stored = store.get_judgment(store.save_grade(make_result(created_at=local)))
    assert stored is not None
    assert stored.created_at.tzinfo is UTC
    assert stored.created_at == local == CREATED
    summary = store.list_judgments()[0]
    assert summary.created_at.tzinfo is UTC and summary.created_at == CREATED
    assert all(applied_at.tzinfo is UTC for _, _, applied_at in store.applied_migrations())


def test_naive_created_at_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.save_grade(make_result(created_at=datetime(2025, 3, 1, 12, 0)))
    assert store.count_judgments() == 0


# ---- listing, counting, deleting


def test_list_is_newest_first_with_paging(store: Store) -> None:
    days = [3, 1, 4, 2]
    ids = {day: store.save_grade(make_result(fields={"MODEL OUTPUT": f"answer of day {day}"},
                                             created_at=CREATED + timedelta(days=day))) for day in days}
    listed = store.list_judgments()
    assert [s.id for s in listed] == [ids[4], ids[3], ids[2], ids[1]]
    assert [s.preview for s in listed] == [f"answer of day {d}" for d in (4, 3, 2, 1)]
    assert [s.id for s in store.list_judgments(limit=2, offset=1)] == [ids[3], ids[2]]
    assert store.list_judgments(limit=10, offset=10) == []
    assert store.count_judgments() == 4
    first = listed[0]
    assert (first.score, first.status, first.model_id) == (1, "ok", "PatronusAI/glider")


def test_same_timestamp_breaks_ties_by_id(store: Store) -> None:
    ids = [store.save_grade(make_result()) for _ in range(3)]
    assert [s.id for s in store.list_judgments()] == ids[::-1]


@pytest.mark.parametrize(
    ("fields", "preview"),
    [
        ({"CONTEXT": "ctx", "MODEL OUTPUT": "the  output\n text"}, "the output text"),
        ({"CONTEXT": "  ", "USER INPUT": "first non-blank", "GOLD ANSWER": "x"}, "first non-blank"),
        ({"MODEL OUTPUT": "   ", "CONTEXT": "fallback"}, "fallback"),
        ({"MODEL OUTPUT": "word " * 40}, ("word " * 16).strip() + "…"),
    ],
)
def test_preview(store: Store, fields: dict[str, str], preview: str) -> None:
    store.save_grade(make_result(fields=fields))
    got = store.list_judgments()[0].preview
    assert got == preview
    assert len(got) <= 80


def test_delete(store: Store) -> None:
    keep, gone = store.save_grade(make_result()), store.save_grade(make_result())
    assert store.delete_judgment(gone) is True
    assert store.delete_judgment(gone) is False
    assert store.get_judgment(gone) is None
    assert store.get_judgment(keep) is not None
    assert store.count_judgments() == 1


def test_missing_id_is_none(store: Store) -> None:
    assert store.get_judgment(12345) is None


def test_negative_paging_is_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        store.list_judgments(limit=-1)


# ---- files, connections, migrations


def test_reopen_keeps_data_and_does_not_reapply_migrations(db_path: Path) -> None:
    with Store.from_path(db_path) as first:
        judgment_id = first.save_grade(make_result())
        first_applied = first.applied_migrations()
    with Store.from_path(db_path) as second:
        assert second.get_judgment(judgment_id) is not None
        assert second.schema_version() == MIGRATIONS[-1].version
        assert second.applied_migrations() == first_applied
    with sqlite3.connect(db_path) as raw:
        rows = raw.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [(m.version, m.name) for m in MIGRATIONS]


def test_wal_mode_is_on(store: Store, db_path: Path) -> None:
    with sqlite3.connect(db_path) as raw:  # journal_mode=WAL is persistent, so a bare connection sees it
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_orm_model_matches_migrated_schema(store: Store, db_path: Path) -> None:
    with sqlite3.connect(db_path) as raw:
        columns = [row[1] for row in raw.execute("PRAGMA table_info(judgments)")]
    assert columns == [column.name for column in JudgmentRow.__table__.columns]


def _counting_migration(calls: list[str]) -> Migration:
    def add_notes(connection: Any) -> None:
        calls.append("ran")
        connection.execute(text("ALTER TABLE judgments ADD COLUMN notes TEXT"))

    return Migration(MIGRATIONS[-1].version + 1, "add_notes", add_notes)


def test_appended_migration_runs_once_on_existing_db(db_path: Path) -> None:
    with Store.from_path(db_path) as old:
        judgment_id = old.save_grade(make_result())
    calls: list[str] = []
    extended = [*MIGRATIONS, _counting_migration(calls)]
    for _ in range(2):
        with Store.from_path(db_path, migrations=extended) as new:
            assert new.schema_version() == extended[-1].version
            assert new.get_judgment(judgment_id) is not None
    assert calls == ["ran"]
    with sqlite3.connect(db_path) as raw:
        assert "notes" in [row[1] for row in raw.execute("PRAGMA table_info(judgments)")]
        assert raw.execute("SELECT count(*) FROM schema_migrations WHERE name = 'add_notes'").fetchone() == (1,)


def test_migration_4_adds_the_grade_right_off_for_existing_users(db_path: Path) -> None:
    with Store.from_path(db_path, migrations=MIGRATIONS[:3]) as old:
        assert old.schema_version() == 3
    with sqlite3.connect(db_path) as raw:
        raw.execute("INSERT INTO users (username, role, password_hash, created_at) "
                    "VALUES ('ann', 'annotator', 'scrypt$x', '2026-01-01 00:00:00')")
    with Store.from_path(db_path) as new:
        assert new.schema_version() == 4 and MIGRATIONS[3].name == "add_users_can_grade"
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("SELECT username, can_grade FROM users").fetchall() == [("ann", 0)]
        raw.execute("INSERT INTO users (username, role, password_hash, created_at) "
                    "VALUES ('bob', 'annotator', 'scrypt$y', '2026-01-01 00:00:00')")  # the default holds
        assert raw.execute("SELECT can_grade FROM users WHERE username = 'bob'").fetchone() == (0,)


def test_failed_migration_is_rolled_back(db_path: Path) -> None:
    def half_done(connection: Any) -> None:
        connection.execute(text("CREATE TABLE half (x INTEGER)"))
        raise RuntimeError("migration bug")

    broken = [*MIGRATIONS, Migration(MIGRATIONS[-1].version + 1, "broken", half_done)]
    with pytest.raises(RuntimeError, match="migration bug"):
        Store.from_path(db_path, migrations=broken)
    with Store.from_path(db_path) as store:
        assert store.schema_version() == MIGRATIONS[-1].version
    with sqlite3.connect(db_path) as raw:  # the DDL was inside the transaction, so it is gone too
        assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchone() is None


def test_database_from_a_newer_version_is_refused(db_path: Path) -> None:
    Store.from_path(db_path, migrations=[*MIGRATIONS, _counting_migration([])]).close()
    with pytest.raises(StorageError, match="newer GLIDER Studio"):
        Store.from_path(db_path)


def test_migration_list_must_be_ascending(db_path: Path) -> None:
    with pytest.raises(ValueError, match="ascending"):
        Store.from_path(db_path, migrations=[*MIGRATIONS, *MIGRATIONS])


def test_two_stores_on_one_file_see_each_others_writes(db_path: Path) -> None:
    with Store.from_path(db_path) as a, Store.from_path(db_path) as b:
        from_a = a.save_grade(make_result())
        assert b.get_judgment(from_a) is not None
        from_b = b.save_grade(make_result())
        assert {s.id for s in a.list_judgments()} == {from_a, from_b}
        assert a.delete_judgment(from_b)
        assert b.count_judgments() == 1


def test_concurrent_writers_from_threads(db_path: Path) -> None:
    with Store.from_path(db_path) as store:
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


def test_url_of_a_file_store(db_path: Path, store: Store) -> None:
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



def test_stores_opening_a_new_file_at_once_migrate_it_once(db_path: Path) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_store() -> None:
        barrier.wait()
        try:
            Store.from_path(db_path).close()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(MIGRATIONS),)
