"""Study assignment (core.studies.assignment): open or chosen annotators, items split k ways; on a SQLite file and
on PostgreSQL (conftest.db_url)."""

from __future__ import annotations

from collections import Counter

import pytest

from core.accounts import ADMIN, User
from core.errors import PermissionDenied, StudyInputError
from core.store import Store
from core.studies import Studies, StudySpec
from core.studies.assignment import CHOSEN, OPEN, assigned_count, assigned_counts, deal

PASSWORD = "correct horse battery"
RUBRIC = "0: The MODEL OUTPUT is not faithful.\n1: The MODEL OUTPUT is faithful."


@pytest.fixture
def studies(store: Store) -> Studies:
    return Studies(store, password_cost=2**10)


@pytest.fixture
def boss(studies: Studies) -> User:
    return studies.create_user("boss", PASSWORD, role=ADMIN)


@pytest.fixture
def team(studies: Studies) -> dict[str, User]:
    return {name: studies.create_user(name, PASSWORD) for name in ("ann", "bob", "cat", "dan")}


def _study(studies: Studies, admin: User, items: int, k: int) -> int:
    study = studies.create_study(admin, StudySpec(name=f"Split {items}x{k}", pass_criteria="Faithful?", rubric=RUBRIC,
                                                  tags=("CONTEXT", "MODEL OUTPUT"), overlap_target=k, blind=False))
    for n in range(items):
        studies.add_item(admin, study.id, {"CONTEXT": f"Context {n}.", "MODEL OUTPUT": f"Output {n}."})
    return study.id


def _label_all(studies: Studies, user: User, study_id: int) -> list[int]:
    """Everything the queue offers `user`, labelled in order; the item ids."""
    done = []
    while (item := studies.next_item(user, study_id)) is not None:
        studies.submit(user, item.id, 1)
        done.append(item.id)
    return done


def test_deal_is_balanced_deterministic_and_keeps_labellers() -> None:
    items = list(range(100, 112))
    dealt = deal(items, [3, 1, 2], 2, {})
    assert dealt == deal(items, [1, 2, 3], 2, {})  # the order people are given in does not matter
    assert all(len(people) == 2 for people in dealt.values())
    assert Counter(p for people in dealt.values() for p in people) == {1: 8, 2: 8, 3: 8}  # 12 items x 2 / 3
    assert dealt[100] == (1, 2) and dealt[101] == (1, 3) and dealt[102] == (2, 3)  # round robin, k at a time
    # Item 100 was labelled by 3 (chosen) and 9 (no longer chosen): both labels count, one place is left.
    kept = deal(items, [1, 2, 3], 2, {100: {3, 9}})
    assert kept[100] == (3,) and kept[101] == dealt[101]
    assert deal(items, [1, 2, 3], 5, {})[100] == (1, 2, 3)  # fewer people than k: everyone gets every item
    assert deal(items, [], 2, {})[100] == ()


def test_a_chosen_study_is_seen_and_labelled_only_by_its_annotators(studies: Studies, boss: User,
                                                                      team: dict[str, User]) -> None:
    study_id = _study(studies, boss, 3, 2)
    other = _study(studies, boss, 1, 1)
    done = studies.assignments.set(boss, study_id, CHOSEN, ["bob", "ann"])
    assert (done.mode, done.split_items, done.annotators) == (CHOSEN, False, ("ann", "bob"))
    assert studies.assignments.get(boss, study_id) == done
    ann, cat = team["ann"], team["cat"]
    assert {s.id for s in studies.list_studies(ann)} == {study_id, other}
    assert {s.id for s in studies.list_studies(cat)} == {other}
    assert {s.id for s in studies.list_studies(boss)} == {study_id, other}  # admins see every study
    item = studies.next_item(ann, study_id)
    assert item is not None
    for action in (lambda: studies.next_item(cat, study_id), lambda: studies.submit(cat, item.id, 1),
                   lambda: studies.get_study(cat, study_id), lambda: studies.get_item(cat, item.id)):
        with pytest.raises(PermissionDenied, match=f"Study #{study_id} is for chosen annotators, and 'cat' is not"):
            action()
    assert len(_label_all(studies, ann, study_id)) == 3  # not split: every item
    assert studies.assignments.assigned(boss, study_id) == {"ann": 3, "bob": 3}
    opened = studies.assignments.set(boss, study_id, OPEN)
    assert (opened.mode, opened.annotators) == (OPEN, ())
    assert len(_label_all(studies, cat, study_id)) == 3  # open again: cat labels too, ann's labels untouched
    assert len(studies.my_annotations(ann, study_id)) == 3


def test_split_items_give_each_annotator_their_share_and_every_item_k_labels(studies: Studies, store: Store,
                                                                           boss: User, team: dict[str, User]) -> None:
    study_id = _study(studies, boss, 12, 2)
    studies.assignments.set(boss, study_id, CHOSEN, ["ann", "bob", "cat"], split=True)
    counts = studies.assignments.assigned(boss, study_id)
    assert counts == {"ann": 8, "bob": 8, "cat": 8}
    with store.session("read") as session:  # the function the progress table uses
        ids = {name: user.id for name, user in team.items()}
        assert assigned_counts(session, study_id, ids.values()) == {ids["ann"]: 8, ids["bob"]: 8, ids["cat"]: 8,
                                                                    ids["dan"]: 0}
        assert assigned_count(session, study_id, ids["bob"]) == 8
    labelled = {name: _label_all(studies, team[name], study_id) for name in ("ann", "bob", "cat")}
    assert {name: len(items) for name, items in labelled.items()} == counts
    per_item = Counter(item for items in labelled.values() for item in items)
    assert len(per_item) == 12 and set(per_item.values()) == {2}  # every item exactly k labels
    # An item dealt to someone else is refused even by id.
    ann_items = set(labelled["ann"])
    foreign = next(item for item in labelled["bob"] if item not in ann_items)
    studies.assignments.set(boss, study_id, CHOSEN, ["ann", "bob", "cat", "dan"], split=True)
    with pytest.raises(StudyInputError, match="You already labelled"):
        studies.submit(team["bob"], foreign, 0)  # bob keeps his items after the re-deal
    assert studies.next_item(team["dan"], study_id) is None  # nothing open left to re-deal


def test_the_progress_table_counts_each_annotators_share_of_a_split_study(studies: Studies, boss: User,
                                                                         team: dict[str, User]) -> None:
    study_id = _study(studies, boss, 12, 2)
    studies.assignments.set(boss, study_id, CHOSEN, ["ann", "bob", "cat"], split=True)
    _label_all(studies, team["ann"], study_id)
    rows = {row.username: row for row in studies.admin.annotator_progress(boss, study_id)}
    assert set(rows) == {"ann", "bob", "cat"}  # dan is not chosen, the admin labels nothing here
    assert {name: (row.labelled, row.assigned) for name, row in rows.items()} == {
        "ann": (8, 8), "bob": (0, 8), "cat": (0, 8)}
    # The Label tab's own line counts the annotator's share, not the whole study.
    assert (studies.progress(team["bob"], study_id).assigned_to_me, studies.progress(team["ann"], study_id).total_items,
            studies.progress(team["ann"], study_id).labelled_by_me) == (8, 12, 8)
    studies.assignments.set(boss, study_id, OPEN, [], split=False)
    assert studies.progress(team["dan"], study_id).assigned_to_me is None  # open: every item, as total_items


def test_changing_annotators_re_deals_unlabelled_items_without_losing_labels(studies: Studies, boss: User,
                                                                            team: dict[str, User]) -> None:
    study_id = _study(studies, boss, 8, 1)
    studies.assignments.set(boss, study_id, CHOSEN, ["ann", "bob"], split=True)
    assert studies.assignments.assigned(boss, study_id) == {"ann": 4, "bob": 4}
    first = studies.next_item(team["ann"], study_id)
    assert first is not None
    studies.submit(team["ann"], first.id, 1)
    with pytest.raises(PermissionDenied, match="not among the items dealt to 'bob'"):
        studies.submit(team["bob"], first.id, 0)
    studies.assignments.set(boss, study_id, CHOSEN, ["bob", "cat"], split=True)  # ann leaves the study
    counts = studies.assignments.assigned(boss, study_id)
    assert set(counts) == {"bob", "cat"} and sorted(counts.values()) == [3, 4]  # ann's item keeps its place
    with pytest.raises(PermissionDenied, match="'ann' is not one of them"):
        studies.next_item(team["ann"], study_id)
    labelled = _label_all(studies, team["bob"], study_id) + _label_all(studies, team["cat"], study_id)
    assert len(labelled) == 7 and first.id not in labelled
    rows = studies.ratings(boss, study_id)
    assert Counter(row["annotator"] for row in rows) == {"ann": 1, **counts}


def test_assignment_input_is_checked_and_only_admins_may_change_it(studies: Studies, boss: User,
                                                                   team: dict[str, User]) -> None:
    study_id = _study(studies, boss, 2, 1)
    for mode, names, split, message in (
        ("some", ["ann"], False, "must be 'open' or 'chosen'"),
        (CHOSEN, [], False, "Choose at least one annotator"),
        (OPEN, [], True, "Splitting items needs chosen annotators"),
        (CHOSEN, ["ann", "zed"], False, "There is no user 'zed'"),
        (CHOSEN, ["bad name"], False, "is not allowed"),
    ):
        with pytest.raises(StudyInputError, match=message):
            studies.assignments.set(boss, study_id, mode, names, split=split)
    with pytest.raises(StudyInputError, match="There is no study with id 99"):
        studies.assignments.set(boss, 99, OPEN)
    studies.people.set_active(boss, "dan", False)
    with pytest.raises(StudyInputError, match="'dan' is deactivated"):
        studies.assignments.set(boss, study_id, CHOSEN, ["dan"])
    for doing in (lambda: studies.assignments.set(team["ann"], study_id, CHOSEN, ["ann"]),
                  lambda: studies.assignments.get(team["ann"], study_id),
                  lambda: studies.assignments.assigned(team["ann"], study_id)):
        with pytest.raises(PermissionDenied, match="Only an admin may"):
            doing()
    assert studies.assignments.get(boss, study_id).mode == OPEN  # nothing changed
    assert studies.assignments.set(None, study_id, CHOSEN, "ann,bob").annotators == ("ann", "bob")  # the CLI
