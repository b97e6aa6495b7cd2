"""Many annotators labelling one SQLite file at once: every label is stored exactly once, no errors."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.store import Store
from core.studies import ADMIN, Studies, StudySpec, User

ANNOTATORS, ITEMS = 8, 200
PASSWORD = "correct horse battery"
FAST = 2**10  # scrypt cost: these tests are about the labels, not the hashing


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "shared.db"


def _setup(db_path: Path, tmp_path: Path, items: int, overlap: int) -> tuple[int, list[User]]:
    with Store.from_path(db_path) as store:
        studies = Studies(store, password_cost=FAST)
        admin = studies.create_user("boss", PASSWORD, role=ADMIN)
        people = [studies.create_user(f"ann{i}", PASSWORD) for i in range(ANNOTATORS)]
        study = studies.create_study(admin, StudySpec(
            name="Load", pass_criteria="Is it good?", rubric="0: bad\n1: good", tags=("MODEL OUTPUT",),
            overlap_target=overlap,
        ))
        source = tmp_path / "items.csv"
        source.write_text("output\n" + "".join(f"text {n}\n" for n in range(items)), encoding="utf-8")
        report = studies.import_items(admin, study.id, source, {"MODEL OUTPUT": "output"})
        assert (report.added, report.errors) == (items, [])
        return study.id, people


def _run_threads(work: Callable[[int], None], count: int) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a labelling thread hung"
    return errors


def _label_counts(db_path: Path) -> tuple[int, int, list[int]]:
    """(rows, distinct (item, annotator) pairs, labels per item) straight from the file."""
    with sqlite3.connect(db_path) as raw:
        rows = raw.execute("SELECT count(*) FROM annotations").fetchone()[0]
        pairs = raw.execute(
            "SELECT count(*) FROM (SELECT DISTINCT item_id, annotator_id FROM annotations)").fetchone()[0]
        per_item = [n for (n,) in raw.execute(
            "SELECT count(a.id) FROM items i LEFT JOIN annotations a ON a.item_id = i.id GROUP BY i.id")]
    return rows, pairs, per_item


@pytest.mark.timing
def test_eight_annotators_label_200_items_each_at_once(db_path: Path, tmp_path: Path) -> None:
    study_id, people = _setup(db_path, tmp_path, ITEMS, overlap=ANNOTATORS)
    done = [0] * ANNOTATORS

    def label(index: int) -> None:
        # Each thread opens its own Store, like a separate process (or web worker) would.
        with Store.from_path(db_path) as store:
            studies = Studies(store, password_cost=FAST)
            me = people[index]
            while (item := studies.next_item(me, study_id)) is not None:
                studies.submit(me, item.id, (item.id + index) % 2, seconds=0.1)
                done[index] += 1

    started = time.perf_counter()
    errors = _run_threads(label, ANNOTATORS)
    elapsed = time.perf_counter() - started
    assert errors == []
    assert done == [ITEMS] * ANNOTATORS
    rows, pairs, per_item = _label_counts(db_path)
    assert rows == pairs == ANNOTATORS * ITEMS  # every label stored exactly once
    assert per_item == [ANNOTATORS] * ITEMS
    assert elapsed < 60, f"labelling took {elapsed:.1f} s"
    with Store.from_path(db_path) as store:
        progress = Studies(store).progress(people[0], study_id)
    assert (progress.labelled_by_me, progress.items_complete, progress.annotators) == (ITEMS, ITEMS, ANNOTATORS)


def test_threads_sharing_one_store_respect_the_overlap_target(db_path: Path, tmp_path: Path) -> None:
    study_id, people = _setup(db_path, tmp_path, items=60, overlap=3)
    with Store.from_path(db_path) as store:
        studies = Studies(store, password_cost=FAST)  # one shared object, like a threaded web server

        def label(index: int) -> None:
            me = people[index]
            while (item := studies.next_item(me, study_id)) is not None:
                studies.submit(me, item.id, 1)

        assert _run_threads(label, ANNOTATORS) == []
    rows, pairs, per_item = _label_counts(db_path)
    assert rows == pairs
    assert all(n >= 3 for n in per_item)
    # Claims keep annotators off each other's items. Only at the very end, when every open place is
    # claimed (at most one claim per annotator, so at most 8 such items), are claimed items offered
    # again rather than answering "done"; only those can end with more than 3 labels.
    assert sum(n > 3 for n in per_item) <= ANNOTATORS


def test_a_label_submitted_many_times_at_once_is_stored_once(db_path: Path, tmp_path: Path) -> None:
    study_id, people = _setup(db_path, tmp_path, items=1, overlap=1)
    me = people[0]
    with Store.from_path(db_path) as store:
        item = Studies(store, password_cost=FAST).next_item(me, study_id)
    assert item is not None
    ids: list[int] = []

    def double_click(_index: int) -> None:
        with Store.from_path(db_path) as store:
            ids.append(Studies(store, password_cost=FAST).submit(me, item.id, 1, comment="same").id)

    assert _run_threads(double_click, ANNOTATORS) == []
    assert len(set(ids)) == 1 and len(ids) == ANNOTATORS  # every call got the one stored label back
    assert _label_counts(db_path)[:2] == (1, 1)
