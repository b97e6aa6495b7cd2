"""The queue order (core.studies.queue_order, core.studies.queue): random, least-confident first, or the first N at
random then least-confident first; how each item was drawn, recorded once. On a SQLite file and on PostgreSQL
(conftest.db_url)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.accounts import ADMIN, User
from core.agreement import agreement_report
from core.errors import PermissionDenied, StudyInputError
from core.store import Store
from core.studies import Studies, StudySpec
from core.studies.queue_order import RANDOM, UNCERTAINTY
from core.studies.rows import StudySettingChangeRow
from tests.databases import column_names, raw
from tests.test_judgments import make_result

PASSWORD = "correct horse battery"
RUBRIC = "0: The MODEL OUTPUT is not faithful.\n1: The MODEL OUTPUT is faithful."
# Item n's judgment confidence (None: not graded). Least sure first: items 3, 1, 4, 2, 0, then 5 and 6 (no judgment).
CONFIDENCE: list[float | None] = [0.95, 0.6, 0.8, 0.51, 0.7, None, None]
UNSURE_ORDER = [3, 1, 4, 2, 0]


@pytest.fixture
def studies(store: Store) -> Studies:
    return Studies(store, password_cost=2**10)


@pytest.fixture
def boss(studies: Studies) -> User:
    return studies.create_user("boss", PASSWORD, role=ADMIN)


@pytest.fixture
def team(studies: Studies) -> list[User]:
    return [studies.create_user(name, PASSWORD) for name in ("ann", "bob")]


def _study(studies: Studies, store: Store, boss: User, *, order: str = RANDOM, first: int = 0, k: int = 1
           ) -> tuple[int, list[int]]:
    """A study with the CONFIDENCE items, graded as listed; (study id, item ids by position)."""
    study = studies.create_study(boss, StudySpec(name="Queue", pass_criteria="Faithful?", rubric=RUBRIC,
                                                 tags=("CONTEXT", "MODEL OUTPUT"), overlap_target=k, blind=False,
                                                 queue_order=order, random_first=first))
    ids = []
    for n, confidence in enumerate(CONFIDENCE):
        item = studies.add_item(boss, study.id, {"CONTEXT": f"Context {n}.", "MODEL OUTPUT": f"Output {n}."})
        if confidence is not None:
            judgment = store.save_grade(make_result(distribution={0: 1 - confidence, 1: confidence}))
            studies.attach_judgment(boss, item.id, judgment)
        ids.append(item.id)
    return study.id, ids


def _random_order(studies: Studies, boss: User, study_id: int) -> list[int]:
    return [item.id for item in sorted(studies.list_items(boss, study_id), key=lambda i: (i.order_key, i.id))]


def _label_all(studies: Studies, user: User, study_id: int) -> list[int]:
    done = []
    while (item := studies.next_item(user, study_id)) is not None:
        studies.submit(user, item.id, 1)
        done.append(item.id)
    return done


def _drawn(studies: Studies, boss: User, study_id: int) -> dict[int, str | None]:
    return {item.id: item.drawn_by for item in studies.list_items(boss, study_id)}


def test_the_default_order_is_random_and_records_each_item_as_drawn_at_random(studies: Studies, store: Store,
                                                                               boss: User, team: list[User]) -> None:
    study_id, ids = _study(studies, store, boss)
    assert studies.get_study(boss, study_id).queue_order == RANDOM
    assert _drawn(studies, boss, study_id) == dict.fromkeys(ids)  # nothing handed out yet
    first = studies.next_item(team[0], study_id)
    assert first is not None and first.id == _random_order(studies, boss, study_id)[0]
    assert _drawn(studies, boss, study_id)[first.id] == RANDOM
    assert _label_all(studies, team[0], study_id) == _random_order(studies, boss, study_id)
    assert set(_drawn(studies, boss, study_id).values()) == {RANDOM}


def test_uncertainty_order_follows_confidence_then_unjudged_items_at_random(studies: Studies, store: Store,
                                                                            boss: User, team: list[User]) -> None:
    study_id, ids = _study(studies, store, boss, order=UNCERTAINTY)
    unjudged = [i for i in _random_order(studies, boss, study_id) if i in (ids[5], ids[6])]
    assert _label_all(studies, team[0], study_id) == [ids[n] for n in UNSURE_ORDER] + unjudged
    assert set(_drawn(studies, boss, study_id).values()) == {UNCERTAINTY}


def test_the_first_n_come_at_random_then_least_confident_first(studies: Studies, store: Store, boss: User,
                                                               team: list[User]) -> None:
    study_id, ids = _study(studies, store, boss, order=UNCERTAINTY, first=2)
    random_two = _random_order(studies, boss, study_id)[:2]
    done = _label_all(studies, team[0], study_id)
    assert done[:2] == random_two
    rest = [ids[n] for n in UNSURE_ORDER if ids[n] not in random_two]
    rest += [i for i in _random_order(studies, boss, study_id) if i in (ids[5], ids[6]) and i not in random_two]
    assert done[2:] == rest
    drawn = _drawn(studies, boss, study_id)
    assert [item for item, how in drawn.items() if how == RANDOM] == sorted(random_two)
    assert sum(how == UNCERTAINTY for how in drawn.values()) == len(ids) - 2


def test_claims_spread_two_annotators_in_uncertainty_order(studies: Studies, store: Store, boss: User,
                                                           team: list[User]) -> None:
    study_id, ids = _study(studies, store, boss, order=UNCERTAINTY)
    first, second = studies.next_item(team[0], study_id), studies.next_item(team[1], study_id)
    assert first is not None and second is not None
    assert (first.id, second.id) == (ids[3], ids[1])  # the least sure item is taken: the next one goes to bob
    assert studies.next_item(team[0], study_id) == first  # asking again keeps one's own item
    studies.submit(team[0], first.id, 1)
    third = studies.next_item(team[0], study_id)
    assert third is not None and third.id == ids[4]  # bob still holds ids[1]


def test_the_random_sample_gets_its_overlap_before_uncertain_items(studies: Studies, store: Store, boss: User,
                                                                   team: list[User]) -> None:
    study_id, ids = _study(studies, store, boss, order=UNCERTAINTY, first=1, k=2)
    sample = studies.next_item(team[0], study_id)
    assert sample is not None and sample.id == _random_order(studies, boss, study_id)[0]
    studies.submit(team[0], sample.id, 1)
    # Now least-confident first, but the item drawn at random still has an open place: bob completes it first.
    again = studies.next_item(team[1], study_id)
    assert again is not None and again.id == sample.id
    assert _drawn(studies, boss, study_id)[sample.id] == RANDOM


def test_how_an_item_was_drawn_never_changes_with_later_settings(studies: Studies, store: Store, boss: User,
                                                                 team: list[User]) -> None:
    study_id, ids = _study(studies, store, boss, order=UNCERTAINTY)
    for _ in range(2):
        item = studies.next_item(team[0], study_id)
        assert item is not None
        studies.submit(team[0], item.id, 1)
    before = _drawn(studies, boss, study_id)
    assert [i for i, how in before.items() if how == UNCERTAINTY] == sorted([ids[3], ids[1], ids[4]])  # + claimed
    study = studies.admin.set_queue_order(boss, study_id, RANDOM)
    assert (study.queue_order, study.random_first) == (RANDOM, 0)
    _label_all(studies, team[0], study_id)
    after = _drawn(studies, boss, study_id)
    assert {i: after[i] for i in before if before[i] is not None} == {i: h for i, h in before.items() if h}
    assert {after[i] for i in after if before[i] is None} == {RANDOM}
    (change,) = studies.admin.queue_order_history(boss, study_id)
    assert change.editor == "boss" and change.changes == {"queue_order": (UNCERTAINTY, RANDOM)}
    studies.admin.set_queue_order(boss, study_id, RANDOM, 0)  # no change: nothing recorded
    assert len(studies.admin.queue_order_history(boss, study_id)) == 1
    # The report separates them by the record, not by the setting.
    report = agreement_report(studies.ratings(boss, study_id), n_resamples=0)
    sampling = report["sampling"]
    assert sampling["biased"] and sampling["recorded"]
    assert sorted(sampling["uncertainty"]["item_ids"]) == sorted([ids[3], ids[1], ids[4]])
    assert sampling["uncertainty"]["n_labelled"] == 3 and sampling["random"]["n_items"] == 4


def test_only_admins_change_the_queue_order_and_bad_values_are_refused(studies: Studies, store: Store, boss: User,
                                                                       team: list[User]) -> None:
    study_id, _ = _study(studies, store, boss)
    with pytest.raises(PermissionDenied):
        studies.admin.set_queue_order(team[0], study_id, UNCERTAINTY, 5)
    with pytest.raises(PermissionDenied):
        studies.admin.queue_order_history(team[0], study_id)
    assert studies.get_study(boss, study_id).queue_order == RANDOM
    for order, first in (("confident", 0), (UNCERTAINTY, -1), (UNCERTAINTY, "ten"), (UNCERTAINTY, True)):
        with pytest.raises(StudyInputError):
            studies.admin.set_queue_order(boss, study_id, order, first)
        with pytest.raises(StudyInputError):
            studies.create_study(boss, StudySpec(name="Bad", pass_criteria="p", rubric=RUBRIC, queue_order=order,
                                                 random_first=first))  # type: ignore[arg-type]
    assert studies.admin.queue_order_history(boss, study_id) == []
    with pytest.raises(PermissionDenied):
        studies.create_study(team[0], StudySpec(name="Mine", pass_criteria="p", rubric=RUBRIC,
                                                queue_order=UNCERTAINTY))
    study = studies.admin.set_queue_order(boss, study_id, UNCERTAINTY, 5)
    assert (study.queue_order, study.random_first) == (UNCERTAINTY, 5)
    copy = studies.admin.duplicate_study(boss, study_id)
    assert (copy.queue_order, copy.random_first) == (UNCERTAINTY, 5)
    assert set(_drawn(studies, boss, copy.id).values()) == {None}


def test_ratings_and_export_carry_drawn_at_random(studies: Studies, store: Store, boss: User,
                                                  team: list[User], db_url: str) -> None:
    study_id, ids = _study(studies, store, boss, order=UNCERTAINTY, first=1)
    _label_all(studies, team[0], study_id)
    unsure = next(i for i, how in _drawn(studies, boss, study_id).items() if how == UNCERTAINTY)
    with raw(db_url) as sql:  # as if labelled without being handed out (an API call): unknown
        sql.execute(text("UPDATE items SET drawn_by = NULL WHERE id = :i"), {"i": unsure})
    drawn = _drawn(studies, boss, study_id)
    expected = {i: None if how is None else how == RANDOM for i, how in drawn.items()}
    assert {row["item_id"]: row["drawn_at_random"] for row in studies.ratings(boss, study_id)} == expected
    assert {row["item_id"]: row["drawn_at_random"] for row in studies.export_rows(boss, study_id)} == expected
    assert sum(value is True for value in expected.values()) == 1 and expected[unsure] is None
    assert sum(value is False for value in expected.values()) == len(ids) - 2


def test_the_setting_changes_row_matches_the_migrated_table(store: Store, db_url: str) -> None:
    columns = column_names(db_url, "study_setting_changes")
    assert columns == [column.name for column in StudySettingChangeRow.__table__.columns]
