"""Review and adjudication (core.studies.review) and the report with adjudicated labels as the reference
(core.agreement.adjudicated_report), on a SQLite file and on PostgreSQL (conftest.db_url); the numbers are worked out
in tests.review_data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import text

from core.agreement import adjudicated_report, agreement_report, load_ratings
from core.errors import InputError
from core.store import Store
from core.studies import ADMIN, REVIEWER, AnnotationRow, PermissionDenied, Studies, StudyInputError, User, write_exports
from core.studies.review import Reviews, consensus
from tests.review_data import (
    ADJUDICATED,
    ANN,
    BOB,
    BY_HUMANS,
    BY_JUDGE,
    CONFIDENCE,
    JUDGE,
    ReviewStudy,
    make_review_study,
)

PASSWORD = "correct horse battery"
SCALE = [1, 2, 3, 4, 5]


@pytest.fixture
def studies(store: Store) -> Studies:
    return Studies(store, password_cost=16)


@pytest.fixture
def people(studies: Studies) -> dict[str, User]:
    return {"ada": studies.create_user("ada", PASSWORD, role=ADMIN),
            "rita": studies.create_user("rita", PASSWORD, role=REVIEWER),
            "ann": studies.create_user("ann", PASSWORD), "bob": studies.create_user("bob", PASSWORD)}


@pytest.fixture
def made(studies: Studies, store: Store, people: dict[str, User]) -> ReviewStudy:
    return make_review_study(studies, store, people["ada"], people["ann"], people["bob"])


def adjudicate_all(reviews: Reviews, reviewer: User, made: ReviewStudy) -> None:
    for item_id, score in zip(made.item_ids, ADJUDICATED, strict=False):
        reviews.adjudicate(reviewer, item_id, score, f"note {item_id}")


@pytest.mark.parametrize(("scores", "expected"), [
    ([3], 3), ([1, 5, 2], 2), ([2, 3], 3), ([2, 4], 3), ([1, 2, 4, 5], 3), ([4, 5], 5), ([-2, -1], -1), ([0, 1], 1),
])
def test_consensus_is_the_median_with_an_even_count_s_half_rounded_up(scores: list[int], expected: int) -> None:
    assert consensus(scores) == expected


def test_review_list_sorts_by_human_vs_judge_and_by_annotator_spread(store: Store, people: dict[str, User],
                                                                     made: ReviewStudy) -> None:
    reviews = Reviews(store)
    by_judge = reviews.review_list(people["rita"], made.study_id)
    assert [made.item_ids.index(item.item_id) + 1 for item in by_judge] == BY_JUDGE
    by_humans = reviews.review_list(people["ada"], made.study_id, "humans")
    assert [made.item_ids.index(item.item_id) + 1 for item in by_humans] == BY_HUMANS
    second = next(item for item in by_judge if item.item_id == made.item_ids[1])
    assert (second.spread, second.distinct, second.consensus, second.judge_score, second.delta) == (2, 2, 3, 2, 1)
    assert second.judge_confidence == pytest.approx(CONFIDENCE[1])
    assert [(label.annotator, label.score, label.comment) for label in second.labels] == [
        ("ann", ANN[1], f"ann on {second.item_id}"), ("bob", BOB[1], "")]
    assert second.adjudication is None and second.fields == {"USER INPUT": "Question 2?", "MODEL OUTPUT": "Answer 2."}
    with pytest.raises(StudyInputError, match="Sort by"):
        reviews.review_list(people["rita"], made.study_id, "loudest")  # type: ignore[arg-type]


def test_unlabelled_items_are_not_listed_and_adjudicated_ones_are_marked(
        studies: Studies, store: Store, people: dict[str, User], made: ReviewStudy) -> None:
    extra = studies.add_item(people["ada"], made.study_id, {"USER INPUT": "Nobody?", "MODEL OUTPUT": "Nobody."})
    reviews = Reviews(store)
    settled = reviews.adjudicate(people["rita"], made.item_ids[2], 3, "the rubric's level 3")
    listed = {item.item_id: item for item in reviews.review_list(people["rita"], made.study_id)}
    assert extra.id not in listed and len(listed) == 7
    assert listed[made.item_ids[2]].adjudication == settled
    assert all(item.adjudication is None for key, item in listed.items() if key != made.item_ids[2])
    unlabelled = reviews.review_item(people["rita"], extra.id)  # the panel still opens it
    assert (unlabelled.labels, unlabelled.consensus, unlabelled.delta, unlabelled.judge_score) == ((), None, None, None)


def test_adjudicate_appends_history_and_changes_no_one_s_label(store: Store, people: dict[str, User],
                                                              made: ReviewStudy) -> None:
    reviews, item_id = Reviews(store), made.item_ids[5]
    with store.session() as session:
        before = sorted((row.id, row.score, row.comment) for row in session.query(AnnotationRow))
    first = reviews.adjudicate(people["rita"], item_id, 3, "  first look  ")
    second = reviews.adjudicate(people["ada"], item_id, 2, "")
    history = reviews.adjudication_history(people["rita"], item_id)
    assert [(h.reviewer, h.score, h.note) for h in history] == [("rita", 3, "first look"), ("ada", 2, "")]
    assert history == [first, second] and first.at <= second.at
    assert reviews.review_item(people["rita"], item_id).adjudication == second  # the newest counts
    with store.session() as session:
        after = sorted((row.id, row.score, row.comment) for row in session.query(AnnotationRow))
    assert after == before


@pytest.mark.parametrize(("score", "message"), [(0, "outside this study's scale 1-5"), (6, "outside"),
                                                ("3", "whole number"), (2.5, "whole number")])
def test_adjudicate_refuses_scores_off_the_scale(store: Store, people: dict[str, User], made: ReviewStudy,
                                                 score: object, message: str) -> None:
    reviews = Reviews(store)
    with pytest.raises(StudyInputError, match=message):
        reviews.adjudicate(people["rita"], made.item_ids[0], score, "")  # type: ignore[arg-type]
    with pytest.raises(StudyInputError, match="no item"):
        reviews.adjudicate(people["rita"], 9999, 3, "")
    with pytest.raises(StudyInputError, match="The note must be text"):
        reviews.adjudicate(people["rita"], made.item_ids[0], 3, None)  # type: ignore[arg-type]
    assert reviews.adjudication_history(people["rita"], made.item_ids[0]) == []


def test_annotators_may_neither_review_nor_adjudicate(store: Store, people: dict[str, User],
                                                      made: ReviewStudy) -> None:
    reviews, ann = Reviews(store), people["ann"]
    for attempt in (lambda: reviews.review_list(ann, made.study_id), lambda: reviews.review_item(ann, made.item_ids[0]),
                    lambda: reviews.adjudicate(ann, made.item_ids[0], 1, "mine"),
                    lambda: reviews.adjudication_history(ann, made.item_ids[0])):
        with pytest.raises(PermissionDenied, match="Only a reviewer or an admin"):
            attempt()
    # A reviewer demoted meanwhile loses the right at once: the role is read in the same transaction.
    with store.session("demote", write=True) as session:  # changing roles is another part's (SQL here)
        session.execute(text("UPDATE users SET role = 'annotator' WHERE username = 'rita'"))
    with pytest.raises(PermissionDenied):
        reviews.adjudicate(people["rita"], made.item_ids[0], 1, "")
    assert reviews.adjudication_history(people["ada"], made.item_ids[0]) == []


def test_the_report_with_adjudicated_labels_as_the_reference_matches_the_hand_computed_numbers(
        studies: Studies, store: Store, people: dict[str, User], made: ReviewStudy) -> None:
    reviews = Reviews(store)
    reviews.adjudicate(people["rita"], made.item_ids[5], 4, "changed my mind below")  # history: 4 then 2
    adjudicate_all(reviews, people["rita"], made)
    rows = studies.ratings(people["ada"], made.study_id)
    report = adjudicated_report(rows, (1, 5), n_resamples=200, seed=1)
    assert (report["reference"], report["n_items_adjudicated"], report["n_items_total"]) == ("adjudicated", 6, 7)
    by_name = {c["name"]: c for c in report["comparisons"]}
    assert [c["kind"] for c in report["comparisons"]] == ["judge", "annotators", "annotator", "annotator"]

    adjudicated = ADJUDICATED
    judge = JUDGE[:6]
    assert by_name["judge"]["n_items"] == 6
    assert by_name["judge"]["exact"]["value"] == pytest.approx(3 / 6)
    assert by_name["judge"]["within_1"]["value"] == pytest.approx(4 / 6)
    assert by_name["judge"]["weighted_kappa"]["value"] == pytest.approx(
        cohen_kappa_score(judge, adjudicated, labels=SCALE, weights="quadratic"))
    # Cohen's kappa without weights, by hand, checks the same confusion: p_o = 3/6; the margins
    # judge {1:1, 2:1, 4:2, 5:2}, adjudicated {1:1, 2:1, 3:2, 4:1, 5:1}: p_e = (1*1 + 1*1 + 2*1 + 2*1) / 36 = 6/36.
    assert cohen_kappa_score(judge, adjudicated, labels=SCALE) == pytest.approx((3 / 6 - 6 / 36) / (1 - 6 / 36))
    assert by_name["ann"]["exact"]["value"] == pytest.approx(5 / 6)
    assert by_name["bob"]["exact"]["value"] == pytest.approx(3 / 6)
    assert by_name["bob"]["weighted_kappa"]["value"] == pytest.approx(
        cohen_kappa_score(BOB[:6], adjudicated, labels=SCALE, weights="quadratic"))
    pooled = by_name["annotators (pooled)"]
    assert pooled["n_items"] == 6 and pooled["exact"]["value"] == pytest.approx(4 / 6)
    assert pooled["weighted_kappa"]["value"] == pytest.approx(
        cohen_kappa_score([1, 3, 3, 5, 5, 3], adjudicated, labels=SCALE, weights="quadratic"))
    # The same intervals as the report: a bootstrap CI around each defined value.
    for comparison in report["comparisons"]:
        kappa = comparison["weighted_kappa"]
        assert kappa["ci_low"] <= kappa["value"] <= kappa["ci_high"], comparison["name"]
    # And exactly what agreement_report says when the adjudicated label stands in for the model's score.
    direct = agreement_report([{"item_id": i, "annotator": "x", "human_score": a, "model_score": j}
                               for i, (j, a) in enumerate(zip(judge, adjudicated, strict=True))],
                              (1, 5), n_resamples=200, seed=1)
    assert by_name["judge"]["weighted_kappa"] == direct["weighted_kappa"]
    assert by_name["judge"]["pearson"] == direct["pearson"]


def test_the_export_carries_the_adjudicated_label_and_the_cli_report_reads_it_back(
        studies: Studies, store: Store, people: dict[str, User], made: ReviewStudy, tmp_path: Path) -> None:
    reviews = Reviews(store)
    adjudicate_all(reviews, people["rita"], made)
    rows = studies.export_rows(people["ada"], made.study_id)
    first = next(row for row in rows if row["item_id"] == made.item_ids[0])
    assert (first["adjudicated_score"], first["adjudication_note"], first["adjudicated_by"]) == (
        1, f"note {made.item_ids[0]}", "rita")
    assert first["adjudicated_at"].startswith("20")
    last = next(row for row in rows if row["item_id"] == made.item_ids[6])
    assert last["adjudicated_score"] is None and last["adjudicated_by"] is None
    report = adjudicated_report(studies.ratings(people["ada"], made.study_id), (1, 5), n_resamples=50)
    paths = write_exports(studies, people["ada"], made.study_id, report, tmp_path)
    assert json.loads(paths[2].read_text(encoding="utf-8"))["n_items_adjudicated"] == 6
    for path in paths[:2]:  # the CSV and the JSONL give the same numbers as the database
        again = adjudicated_report(load_ratings(path), (1, 5), n_resamples=50)
        assert again["comparisons"] == report["comparisons"], path.name


def test_a_file_without_adjudicated_labels_is_refused_clearly() -> None:
    rows = [{"item_id": 1, "annotator": "a", "human_score": 1, "model_score": 1}]
    with pytest.raises(InputError, match="no adjudicated_score column"):
        adjudicated_report(rows)
    conflicting = [{**rows[0], "adjudicated_score": 1}, {**rows[0], "annotator": "b", "adjudicated_score": 2}]
    with pytest.raises(InputError, match="different adjudicated_score"):
        adjudicated_report(conflicting)


def test_a_blind_study_s_review_counts_the_scores_given_before_the_reveal(
        studies: Studies, store: Store, people: dict[str, User]) -> None:
    from core.studies import StudySpec
    from tests.review_data import CRITERIA, RUBRIC_1_5

    ada = people["ada"]
    study = studies.create_study(ada, StudySpec(name="Blind", pass_criteria=CRITERIA, rubric=RUBRIC_1_5,
                                                tags=("MODEL OUTPUT",), overlap_target=2, blind=True))
    item = studies.add_item(ada, study.id, {"MODEL OUTPUT": "Blind answer."})
    label = studies.submit(people["ann"], item.id, 2)
    studies.confirm_after_reveal(people["ann"], label.id, 5)
    studies.submit(people["bob"], item.id, 4)
    listed = Reviews(store).review_list(people["rita"], study.id, "humans")
    assert [(lab.score, lab.current_score) for lab in listed[0].labels] == [(2, 5), (4, 4)]
    assert (listed[0].spread, listed[0].consensus) == (2, 3)


def test_a_reviewer_who_may_still_label_a_blind_item_does_not_see_its_verdict(
        studies: Studies, store: Store, people: dict[str, User]) -> None:
    from core.studies import StudySpec
    from tests.review_data import CRITERIA, RUBRIC_1_5

    ada, rita, ann, bob = people["ada"], people["rita"], people["ann"], people["bob"]
    study = studies.create_study(ada, StudySpec(name="Blind k=3", pass_criteria=CRITERIA, rubric=RUBRIC_1_5,
                                                tags=("MODEL OUTPUT",), overlap_target=3, blind=True))
    open_item = studies.add_item(ada, study.id, {"MODEL OUTPUT": "Rita may still label this."}).id
    rita_item = studies.add_item(ada, study.id, {"MODEL OUTPUT": "Rita labelled this one."}).id
    full_item = studies.add_item(ada, study.id, {"MODEL OUTPUT": "This one has its three labels."}).id
    studies.submit(ann, open_item, 2)
    for annotator in (ann, rita):
        studies.submit(annotator, rita_item, 3)
    for annotator in (ann, bob, ada):
        studies.submit(annotator, full_item, 4)
    reviews = Reviews(store)
    assert {r.item_id for r in reviews.review_list(rita, study.id)} == {rita_item, full_item}
    assert {r.item_id for r in reviews.review_list(ada, study.id)} == {open_item, rita_item, full_item}
    with pytest.raises(PermissionDenied, match="still has a place you may label"):
        reviews.review_item(rita, open_item)
    with pytest.raises(PermissionDenied, match="still has a place you may label"):
        reviews.adjudicate(rita, open_item, 2)
    assert reviews.adjudicate(rita, full_item, 4).score == 4
    studies.submit(rita, open_item, 1)  # once labelled, the item is hers to review
    assert reviews.review_item(rita, open_item).item_id == open_item
