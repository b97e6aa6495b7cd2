"""A database made by the previous release opens with this one and migrates without losing anything.

tests/data/release-schema2.db was written by the code of commit 57b3c9c (schema version 2: judgments
and studies, before batch jobs) with that commit's own Store, grading and Studies
(tests/data/make_release_schema2.py, run from a checkout of that commit): three judgments, three users,
a study with four items, three labels (one edited). It is committed as that script made it, in journal
mode DELETE so that reading it leaves no -wal/-shm files beside it (the Store sets WAL again on the copy
each test opens).

Each test runs twice (conftest.db_url): on a copy of the file, and on PostgreSQL, where the same rows are copied
into a database built at schema 2 by this code's migrations (tests.databases.copy_rows), as a deployment moving
from the file to a server would: every later migration then runs on PostgreSQL against the previous release's data.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from core.batch import BatchJobs
from core.store import MIGRATIONS, Store
from core.studies import Studies
from tests.databases import column_names, copy_rows, raw

FIXTURE = Path(__file__).parent / "data" / "release-schema2.db"


columns = column_names


def rows(url: str, table: str, names: list[str] | None = None) -> list[tuple[object, ...]]:
    """Every row of a table, with the named columns (default: all) in that order."""
    listed = ", ".join(names) if names else "*"
    with raw(url) as sql:
        return [tuple(row) for row in sql.execute(text(f"SELECT {listed} FROM {table} ORDER BY id"))]  # noqa: S608


def release_database(db_url: str, db: Path) -> str:
    """The previous release's database at `db_url` (a fresh one): the fixture file itself on SQLite, its rows at
    schema 2 on PostgreSQL."""
    if db_url.startswith("sqlite"):
        shutil.copyfile(FIXTURE, db)
    else:
        Store(db_url, migrations=MIGRATIONS[:2]).close()
        copy_rows(FIXTURE, db_url)
    return db_url


@pytest.fixture
def old_db(db_url: str, db: Path) -> str:
    return release_database(db_url, db)


def test_the_fixture_is_the_previous_schema() -> None:
    with sqlite3.connect(f"file:{FIXTURE}?mode=ro&immutable=1", uri=True) as connection:
        versions = [v for (v,) in connection.execute("SELECT version FROM schema_migrations ORDER BY version")]
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert versions == [1, 2] and "batch_jobs" not in tables


def test_opening_migrates_and_keeps_every_row(old_db: str) -> None:
    tables = ("judgments", "users", "studies", "items", "annotations", "annotation_edits")
    old_columns = {table: columns(old_db, table) for table in tables}
    before = {table: rows(old_db, table) for table in tables}
    store = Store(old_db)
    assert store.schema_version() == len(MIGRATIONS) == 10
    store.close()
    for table, old_rows in before.items():
        # byte for byte: nothing rewritten, nothing lost (columns that later migrations added come on top)
        assert rows(old_db, table, old_columns[table]) == old_rows, table
    assert len(before["judgments"]) == 3 and len(before["annotations"]) == 3
    # Migration 4: nobody who existed before may grade unless an admin grants it; admins may by their role.
    assert rows(old_db, "users", ["username", "can_grade"]) == [("ada", 0), ("ann", 0), ("bob", 0)]
    # Migration 5: every old user stays active with the password they had; the study keeps meaning what it
    # meant (open to every annotator, not archived, no guidelines), no item is removed, nothing is adjudicated.
    assert rows(old_db, "users", ["active", "must_change_password"]) == [(1, 0)] * 3
    study = rows(old_db, "studies", ["guidelines", "archived_at", "assignment", "split_items"])
    assert study == [("", None, "open", 0)]
    assert rows(old_db, "items", ["removed_at"]) == [(None,)] * 4
    assert rows(old_db, "adjudications") == [] and columns(old_db, "study_annotators") == ["study_id", "user_id"]
    # Migration 6: the study keeps its random order; the items the old queue handed out (labelled: 1 and 2;
    # claimed: 4) were drawn at random, the one never handed out (3) is not drawn yet; no setting was changed.
    assert rows(old_db, "studies", ["queue_order", "random_first"]) == [("random", 0)]
    assert rows(old_db, "items", ["id", "drawn_by"]) == [(1, "random"), (2, "random"), (3, None), (4, "random")]
    assert rows(old_db, "study_setting_changes") == []
    # Migration 7: the judgment attached to item 1 (the only one) is the study's judge run 1, as graded then.
    assert rows(old_db, "judge_runs", ["study_id", "position", "name", "created_by_id"]) == [(1, 1, "Run 1", None)]
    with raw(old_db) as sql:
        linked = sql.execute(text("SELECT run_id, item_id, judgment_id FROM run_judgments")).fetchall()
    assert linked == [(1, 1, 1)] and rows(old_db, "items", ["id", "judgment_id"])[0] == (1, 1)
    # Migration 8: the study grades one response, as before; no label is a pairwise choice; no run has a second order.
    assert rows(old_db, "studies", ["mode", "allow_tie"]) == [("single", 0)]
    assert rows(old_db, "annotations", ["choice", "shown_order"]) == [(None, None)] * 3
    assert columns(old_db, "run_second_orders") == ["run_id", "item_id", "judgment_id", "attached_at"]
    with raw(old_db) as sql:
        assert sql.execute(text("SELECT COUNT(*) FROM run_second_orders")).scalar_one() == 0
    # Migration 9: the study was never audited: it has no kept audit.
    assert rows(old_db, "study_audits") == []
    # Migration 10: each user's name in the form names are compared in (no two differed only in case).
    assert rows(old_db, "users", ["username_key"]) == [("ada",), ("ann",), ("bob",)]


def test_the_old_data_reads_through_this_release(old_db: str) -> None:
    store = Store(old_db)
    try:
        judgments = store.list_judgments()
        assert len(judgments) == 3
        unicode_one = store.get_judgment(max(j.id for j in judgments))
        assert unicode_one is not None and unicode_one.fields["MODEL OUTPUT"] == "Ünïcödé ✓ <b>bold</b>"
        studies = Studies(store)
        ada = studies.authenticate("ada", "release-2-admin-pw")
        ann = studies.authenticate("ann", "release-2-ann-pw")
        assert ada is not None and ada.is_admin and ann is not None and not ann.is_admin
        assert ada.can_grade and not ann.can_grade
        assert studies.authenticate("bob", "wrong password") is None
        (study,) = studies.list_studies(ada)
        assert study.name == "Release 2 study" and study.scale == (1, 5)
        items = studies.list_items(ada, study.id)
        assert [item.external_id for item in items] == ["ext-0", "ext-1", "ext-2", "ext-3"]
        assert items[0].judgment_id is not None
        mine = sorted(studies.my_annotations(ann, study.id), key=lambda a: a.item_id)
        assert [(a.score, a.score_before_reveal, a.comment) for a in mine] == [
            (3, 4, "ann: changed my mind"), (5, 5, "")]
        assert mine[0].spans == [{"field": "MODEL OUTPUT", "start": 0, "end": 6}] and mine[0].seconds == 12.5
        assert len(studies.history(ann, mine[0].id)) == 1
        ratings = studies.ratings(ada, study.id)
        labelled = sorted((r["annotator"], r["human_score"]) for r in ratings if r["human_score"] is not None)
        assert labelled == [("ann", 3), ("ann", 5), ("bob", 2)]
        # The new release's features work on the upgraded file: a new label, and a batch job.
        bob = studies.authenticate("bob", "release-2-bob-pw")
        assert bob is not None
        nxt = studies.next_item(bob, study.id)
        assert nxt is not None
        studies.submit(bob, nxt.id, 4)
        assert isinstance(BatchJobs(store).list_jobs(), list)
    finally:
        store.close()
