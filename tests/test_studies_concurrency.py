"""Many annotators labelling one database at once (a SQLite file, and PostgreSQL: conftest.db_url), each thread on its
own connections like a separate process: every label is stored exactly once, no errors, no item over-labelled."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from core.store import Store
from core.studies import ADMIN, Studies, StudySpec, User
from tests.databases import raw

ANNOTATORS, ITEMS = 8, 200
PASSWORD = "correct horse battery"
FAST = 2**10  # scrypt cost: these tests are about the labels, not the hashing


def _setup(db_url: str, tmp_path: Path, items: int, overlap: int) -> tuple[int, list[User]]:
    with Store(db_url) as store:
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


def _label_counts(db_url: str) -> tuple[int, int, list[int]]:
    """(rows, distinct (item, annotator) pairs, labels per item) straight from the database."""
    with raw(db_url) as sql:
        rows = sql.execute(text("SELECT count(*) FROM annotations")).scalar_one()
        pairs = sql.execute(text(
            "SELECT count(*) FROM (SELECT DISTINCT item_id, annotator_id FROM annotations) AS pairs")).scalar_one()
        per_item = [n for (n,) in sql.execute(text(
            "SELECT count(a.id) FROM items i LEFT JOIN annotations a ON a.item_id = i.id GROUP BY i.id ORDER BY i.id"))]
    return rows, pairs, per_item


@pytest.mark.timing
def test_eight_annotators_label_200_items_each_at_once(db_url: str, tmp_path: Path) -> None:
    study_id, people = _setup(db_url, tmp_path, ITEMS, overlap=ANNOTATORS)
    done = [0] * ANNOTATORS

    def label(index: int) -> None:
        # Each thread opens its own Store, like a separate process (or web worker) would.
        with Store(db_url) as store:
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
    rows, pairs, per_item = _label_counts(db_url)
    assert rows == pairs == ANNOTATORS * ITEMS  # every label stored exactly once
    assert per_item == [ANNOTATORS] * ITEMS
    assert elapsed < 60, f"labelling took {elapsed:.1f} s"
    with Store(db_url) as store:
        progress = Studies(store).progress(people[0], study_id)
    assert (progress.labelled_by_me, progress.items_complete, progress.annotators) == (ITEMS, ITEMS, ANNOTATORS)


def test_threads_sharing_one_store_respect_the_overlap_target(db_url: str, tmp_path: Path) -> None:
    study_id, people = _setup(db_url, tmp_path, items=60, overlap=3)
    with Store(db_url) as store:
        studies = Studies(store, password_cost=FAST)  # one shared object, like a threaded web server

        def label(index: int) -> None:
            me = people[index]
            while (item := studies.next_item(me, study_id)) is not None:
                studies.submit(me, item.id, 1)

        assert _run_threads(label, ANNOTATORS) == []
    rows, pairs, per_item = _label_counts(db_url)
    assert rows == pairs
    assert all(n >= 3 for n in per_item)
    # Claims keep annotators off each other's items. Only at the very end, when every open place is
    # claimed (at most one claim per annotator, so at most 8 such items), are claimed items offered
    # again rather than answering "done"; only those can end with more than 3 labels.
    assert sum(n > 3 for n in per_item) <= ANNOTATORS


def test_a_label_submitted_many_times_at_once_is_stored_once(db_url: str, tmp_path: Path) -> None:
    study_id, people = _setup(db_url, tmp_path, items=1, overlap=1)
    me = people[0]
    with Store(db_url) as store:
        item = Studies(store, password_cost=FAST).next_item(me, study_id)
    assert item is not None
    ids: list[int] = []

    def double_click(_index: int) -> None:
        with Store(db_url) as store:
            ids.append(Studies(store, password_cost=FAST).submit(me, item.id, 1, comment="same").id)

    assert _run_threads(double_click, ANNOTATORS) == []
    assert len(set(ids)) == 1 and len(ids) == ANNOTATORS  # every call got the one stored label back
    assert _label_counts(db_url)[:2] == (1, 1)


def test_annotators_asking_at_the_same_moment_get_different_items(db_url: str, tmp_path: Path) -> None:
    """Round after round, every annotator asks at the same moment (and submits at the same moment, which claims the
    next item): while at least one free item each is left, no two of them are handed the same item. On PostgreSQL
    the claim transactions run side by side (FOR NO KEY UPDATE SKIP LOCKED); on SQLite one after the other."""
    study_id, people = _setup(db_url, tmp_path, items=ANNOTATORS * 5, overlap=1)
    rounds: list[list[int]] = [[] for _ in range(5)]
    lock = threading.Lock()
    together = threading.Barrier(ANNOTATORS)

    def label(index: int) -> None:
        with Store(db_url) as store:
            studies = Studies(store, password_cost=FAST)
            me = people[index]
            for handed in rounds:
                together.wait(timeout=60)
                item = studies.next_item(me, study_id)
                assert item is not None
                with lock:
                    handed.append(item.id)
                together.wait(timeout=60)
                studies.submit(me, item.id, 1)

    assert _run_threads(label, ANNOTATORS) == []
    assert all(len(set(handed)) == ANNOTATORS for handed in rounds), rounds
    rows, pairs, per_item = _label_counts(db_url)
    assert rows == pairs == ANNOTATORS * 5 and per_item == [1] * (ANNOTATORS * 5)  # every item labelled once


def test_annotators_hammering_a_k_limited_pairwise_and_single_study(db_url: str, tmp_path: Path) -> None:
    """Eight threads label as fast as they can, half in a single-response study (submit), half in a pairwise one
    (submit_choice), both with k=2: no error, every label stored once, every item reaches k. An item gets more than
    k labels only at the very end, when every open place is claimed by someone still labelling and the queue offers
    a claimed item rather than answering "done" (Studies.next_item): at most one such item per annotator."""
    from core.studies.pairs import RESPONSE_A, RESPONSE_B

    single_id, people = _setup(db_url, tmp_path, items=40, overlap=2)
    with Store(db_url) as store:
        studies = Studies(store, password_cost=FAST)
        boss = studies.authenticate("boss", PASSWORD)
        assert boss is not None
        pair_id = studies.create_study(boss, StudySpec(name="Pairs", pass_criteria="Which is kinder?", rubric="",
                                                       mode="pairwise", overlap_target=2)).id
        for n in range(40):
            studies.add_item(boss, pair_id, {"USER INPUT": f"q{n}", RESPONSE_A: f"kind {n}", RESPONSE_B: f"curt {n}"})
    done = [0] * ANNOTATORS

    def label(index: int) -> None:
        with Store(db_url) as store:
            studies = Studies(store, password_cost=FAST)
            me, pairwise = people[index], index % 2 == 1
            study_id = pair_id if pairwise else single_id
            while (item := studies.next_item(me, study_id)) is not None:
                if pairwise:
                    studies.submit_choice(me, item.id, "1" if item.id % 2 else "2")
                else:
                    studies.submit(me, item.id, item.id % 2)
                done[index] += 1

    assert _run_threads(label, ANNOTATORS) == []
    rows, pairs, _ = _label_counts(db_url)
    assert rows == pairs == sum(done)  # every label stored exactly once
    with raw(db_url) as sql:
        for study_id in (single_id, pair_id):
            per_item = [n for (n,) in sql.execute(text(
                "SELECT count(a.id) FROM items i LEFT JOIN annotations a ON a.item_id = i.id WHERE i.study_id = :s "
                "GROUP BY i.id"), {"s": study_id})]
            assert len(per_item) == 40 and all(n >= 2 for n in per_item)
            assert sum(n > 2 for n in per_item) <= ANNOTATORS // 2, per_item
