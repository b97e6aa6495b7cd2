"""Study administration (core.studies.admin, items_browser, team_progress) on real SQLite files: editing and its
locks, duplicating, archiving, deleting, removing items, the item browser's states and per-annotator progress."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.store import Store
from core.studies import (
    ADMIN,
    AnnotationEditRow,
    AnnotationRow,
    ClaimRow,
    ItemRow,
    PermissionDenied,
    Studies,
    StudyInputError,
    StudyRow,
    StudySpec,
    User,
)
from core.studies.items_browser import (
    COMPLETE,
    HUMANS_DISAGREE,
    JUDGE_DISAGREES,
    JUDGE_FAILED,
    PARTLY,
    REMOVED,
    STATES,
    UNLABELLED,
)
from tests.fakes import WELL_FORMED
from tests.test_judgments import make_result

PASSWORD = "correct horse battery"
RUBRIC_0_1 = "0: The MODEL OUTPUT is not faithful to the CONTEXT.\n1: The MODEL OUTPUT is faithful to the CONTEXT."
RUBRIC_1_5 = "\n".join(f"{n}: level {n} of helpfulness." for n in range(1, 6))
JUDGE_SAYS_0 = WELL_FORMED.replace("<score>\n1\n", "<score>\n0\n")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.from_path(tmp_path / "admin.db") as opened:
        yield opened


@pytest.fixture
def studies(store: Store) -> Studies:
    return Studies(store, password_cost=2**10)


@pytest.fixture
def boss(studies: Studies) -> User:
    return studies.create_user("boss", PASSWORD, role=ADMIN)


@pytest.fixture
def ann(studies: Studies) -> list[User]:
    return [studies.create_user(f"ann{i}", PASSWORD) for i in range(3)]


def make_study(studies: Studies, boss: User, *, name: str = "Faithfulness", blind: bool = False,
               overlap: int = 2, items: int = 3) -> tuple[int, list[int]]:
    study = studies.create_study(boss, StudySpec(
        name=name, pass_criteria="Is the MODEL OUTPUT faithful?", rubric=RUBRIC_0_1,
        tags=("CONTEXT", "MODEL OUTPUT"), overlap_target=overlap, blind=blind))
    ids = [studies.add_item(boss, study.id, {"CONTEXT": f"Context {n}.", "MODEL OUTPUT": f"Output {n}."},
                            external_id=f"ext-{n}").id for n in range(items)]
    return study.id, ids


def count(store: Store, model: Any, *where: Any) -> int:
    with store.session("read") as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


# ---- editing


def test_name_description_and_guidelines_change_at_any_time(studies: Studies, boss: User, ann: list[User]) -> None:
    study_id, items = make_study(studies, boss)
    studies.submit(ann[0], items[0], 1)
    guide = "# How to label\n\n- Read the **context** first.\n- <script>no</script>"
    changed = studies.admin.update_study(boss, study_id, name="  Faithful v2 ", description="New words.",
                                         guidelines=guide, overlap_target=3)
    assert (changed.name, changed.description, changed.guidelines, changed.overlap_target) == (
        "Faithful v2", "New words.", guide, 3)
    again = studies.get_study(ann[1], study_id)  # what annotators read
    assert again.guidelines == guide and again.name == "Faithful v2"
    assert again.updated_at >= again.created_at


def test_rubric_criteria_and_blind_mode_change_only_before_the_first_label(studies: Studies, boss: User,
                                                                        ann: list[User]) -> None:
    study_id, items = make_study(studies, boss)
    before = studies.admin.update_study(boss, study_id, rubric=RUBRIC_1_5, pass_criteria="Is it helpful?",
                                        blind=True)
    assert (before.scale, before.pass_criteria, before.blind) == ((1, 5), "Is it helpful?", True)
    studies.submit(ann[0], items[0], 4)
    for change in ({"rubric": RUBRIC_0_1}, {"pass_criteria": "Other?"}, {"blind": False}):
        with pytest.raises(StudyInputError, match=r"already has 1 label.*Duplicate it as a new study"):
            studies.admin.update_study(boss, study_id, name="Renamed too", **change)
    kept = studies.get_study(boss, study_id)
    assert (kept.name, kept.scale, kept.pass_criteria, kept.blind) == ("Faithfulness", (1, 5), "Is it helpful?", True)
    # The same values again are no change, so a form that sends every field still saves the name.
    same = studies.admin.update_study(boss, study_id, name="Renamed", rubric=RUBRIC_1_5,
                                      pass_criteria="Is it helpful?", blind=True)
    assert same.name == "Renamed"


@pytest.mark.parametrize(("changes", "message"), [
    ({"name": "   "}, "needs a name"),
    ({"name": "x" * 201}, "longer than 200"),
    ({"rubric": "no numbers here"}, "names no scores"),
    ({"overlap_target": 0}, "at least 1"),
    ({"overlap_target": 1.5}, "whole number"),
    ({"pass_criteria": " "}, "pass criteria are empty"),
    ({"guidelines": 3}, "must be text"),
])
def test_bad_edits_are_refused(studies: Studies, boss: User, changes: dict[str, Any], message: str) -> None:
    study_id, _ = make_study(studies, boss)
    with pytest.raises(StudyInputError, match=message):
        studies.admin.update_study(boss, study_id, **changes)
    assert studies.get_study(boss, study_id).name == "Faithfulness"


def test_duplicate_copies_settings_and_items_but_no_labels_or_verdicts(studies: Studies, store: Store, boss: User,
                                                                       ann: list[User]) -> None:
    study_id, items = make_study(studies, boss, blind=True, overlap=3)
    studies.admin.update_study(boss, study_id, guidelines="Be strict.")
    studies.attach_judgment(boss, items[0], store.save_grade(make_result()))
    studies.submit(ann[0], items[0], 1)
    studies.admin.set_item_removed(boss, items[2], True)
    copy = studies.admin.duplicate_study(boss, study_id)
    assert copy.id != study_id and copy.name == "Faithfulness (copy)"
    old = studies.get_study(boss, study_id)
    for attribute in ("description", "pass_criteria", "rubric", "scale", "tags", "overlap_target", "blind",
                      "guidelines", "assignment"):
        assert getattr(copy, attribute) == getattr(old, attribute), attribute
    copied = studies.list_items(boss, copy.id)
    assert [(i.fields, i.external_id, i.judgment_id) for i in copied] == [
        (i.fields, i.external_id, None) for i in studies.list_items(boss, study_id) if i.removed_at is None]
    assert studies.ratings(boss, copy.id) and all(r["annotator"] is None for r in studies.ratings(boss, copy.id))
    assert studies.admin.duplicate_study(boss, study_id, "Faithfulness, strict").name == "Faithfulness, strict"
    # The copy takes changed settings: it has no labels yet.
    assert studies.admin.update_study(boss, copy.id, rubric=RUBRIC_1_5).scale == (1, 5)


# ---- archive and delete


def test_an_archived_study_is_hidden_from_annotators_and_takes_no_labels(studies: Studies, store: Store,
                                                                         boss: User, ann: list[User]) -> None:
    study_id, items = make_study(studies, boss)
    other_id, _ = make_study(studies, boss, name="Other")
    label = studies.submit(ann[0], items[0], 1)
    assert studies.next_item(ann[1], study_id) is not None  # ann1 holds a claim
    archived = studies.admin.set_archived(boss, study_id, True)
    assert archived.archived and archived.archived_at is not None
    assert [s.id for s in studies.list_studies(ann[1])] == [other_id]
    assert {s.id for s in studies.list_studies(boss)} == {study_id, other_id}
    with pytest.raises(StudyInputError, match="archived"):
        studies.next_item(ann[1], study_id)
    with pytest.raises(StudyInputError, match="archived"):
        studies.submit(ann[1], items[1], 0)
    assert studies.get_annotation(boss, label.id).score == 1  # labels are kept
    assert [r["annotation_id"] for r in studies.ratings(boss, study_id) if r["annotator"]] == [label.id]
    assert count(store, ClaimRow, ClaimRow.study_id == study_id) == 0
    studies.admin.set_archived(boss, study_id, False)
    assert study_id in {s.id for s in studies.list_studies(ann[1])}
    assert studies.next_item(ann[1], study_id) is not None


def test_delete_needs_an_archived_study_and_its_exact_name(studies: Studies, store: Store, boss: User,
                                                          ann: list[User]) -> None:
    study_id, items = make_study(studies, boss)
    kept_id, kept_items = make_study(studies, boss, name="Kept")
    judgment = store.save_grade(make_result())
    studies.attach_judgment(boss, items[0], judgment)
    first = studies.submit(ann[0], items[0], 1)
    studies.edit(ann[0], first.id, score=0)
    studies.submit(ann[1], items[0], 1)
    studies.submit(ann[0], kept_items[0], 1)
    studies.next_item(ann[2], study_id)
    with pytest.raises(StudyInputError, match="not archived"):
        studies.admin.delete_study(boss, study_id, "Faithfulness")
    studies.admin.set_archived(boss, study_id, True)
    for wrong in ("faithfulness", "Faithfulnes", "", "Kept"):
        with pytest.raises(StudyInputError, match="type its name exactly"):
            studies.admin.delete_study(boss, study_id, wrong)
    assert count(store, AnnotationRow, AnnotationRow.study_id == study_id) == 2  # nothing lost on a refusal
    gone = studies.admin.delete_study(boss, study_id, "Faithfulness")
    assert (gone.items, gone.labels, gone.name) == (3, 2, "Faithfulness")
    with pytest.raises(StudyInputError, match="no study"):
        studies.get_study(boss, study_id)
    assert count(store, ItemRow, ItemRow.study_id == study_id) == 0
    assert count(store, AnnotationRow, AnnotationRow.study_id == study_id) == 0
    assert count(store, AnnotationEditRow) == 0
    assert store.get_judgment(judgment) is not None  # the judge's grades stay in History
    assert len(studies.list_items(boss, kept_id)) == 3 and count(store, AnnotationRow) == 1
    assert count(store, StudyRow) == 1


# ---- items


def test_a_removed_item_leaves_the_queue_and_the_report_but_stays_in_the_export(studies: Studies, boss: User,
                                                                                ann: list[User]) -> None:
    study_id, items = make_study(studies, boss, items=2, overlap=3)
    label = studies.submit(ann[0], items[0], 1)
    removed = studies.admin.set_item_removed(boss, items[0], True)
    assert removed.removed_at is not None
    assert [i.removed_at is not None for i in studies.list_items(boss, study_id)] == [True, False]
    offered = studies.next_item(ann[1], study_id)
    assert offered is not None and offered.id == items[1]
    studies.submit(ann[1], items[1], 0)
    assert studies.next_item(ann[1], study_id) is None  # the removed item is never offered
    with pytest.raises(StudyInputError, match="removed"):
        studies.submit(ann[2], items[0], 0)
    assert {r["item_id"] for r in studies.ratings(boss, study_id)} == {items[1]}
    exported = {r["annotation_id"]: r["item_removed"] for r in studies.export_rows(boss, study_id)}
    assert exported[label.id] is True and list(exported.values()).count(False) == 1
    progress = studies.progress(ann[0], study_id)
    assert (progress.total_items, progress.labelled_by_me) == (1, 0)
    studies.admin.set_item_removed(boss, items[0], False)
    assert {r["item_id"] for r in studies.ratings(boss, study_id)} == set(items)
    assert studies.progress(ann[0], study_id).total_items == 2


def _browser_study(studies: Studies, store: Store, boss: User, ann: list[User]) -> tuple[int, dict[str, int]]:
    """Seven items, one per situation, in a study with overlap 2."""
    study_id, ids = make_study(studies, boss, items=7)
    names = ["none", "one", "agree", "humans differ", "judge differs", "judge failed", "removed"]
    item = dict(zip(names, ids, strict=True))
    one = store.save_grade(make_result())
    zero = store.save_grade(make_result(raw=JUDGE_SAYS_0))
    failed = store.save_grade(make_result(raw="no tags at all"))
    for name, judgment in (("agree", one), ("humans differ", one), ("judge differs", zero), ("judge failed", failed)):
        studies.attach_judgment(boss, item[name], judgment)
    for name, scores in (("one", [1]), ("agree", [1, 1]), ("humans differ", [1, 0]), ("judge differs", [1, 1]),
                         ("judge failed", [0, 0]), ("removed", [1])):
        for annotator, score in zip(ann, scores, strict=False):
            studies.submit(annotator, item[name], score)
    studies.admin.set_item_removed(boss, item["removed"], True)
    return study_id, item


def test_the_item_browser_filters_by_state(studies: Studies, store: Store, boss: User, ann: list[User]) -> None:
    study_id, item = _browser_study(studies, store, boss, ann)
    expected = {
        UNLABELLED: ["none"], PARTLY: ["one"], COMPLETE: ["agree", "humans differ", "judge differs", "judge failed"],
        JUDGE_FAILED: ["judge failed"], HUMANS_DISAGREE: ["humans differ"],
        JUDGE_DISAGREES: ["humans differ", "judge differs"],  # the humans' median 0.5 is not the judge's 1 either
        REMOVED: ["removed"],
    }
    assert set(expected) == set(STATES)
    for state, names in expected.items():
        found = studies.admin.browse_items(boss, study_id, state=state)
        assert [f.id for f in found] == [item[name] for name in names], state
    everything = studies.admin.browse_items(boss, study_id)
    assert len(everything) == 7
    row = {f.id: f for f in everything}
    assert row[item["judge differs"]].scores == (1, 1) and row[item["judge differs"]].judge_score == 0
    assert row[item["judge failed"]].judge_score is None and row[item["judge failed"]].judge_status == "failed"
    assert row[item["humans differ"]].human_median == 0.5
    assert row[item["removed"]].removed and PARTLY in row[item["removed"]].states
    with pytest.raises(StudyInputError, match="Unknown item state"):
        studies.admin.browse_items(boss, study_id, state="pending")


def test_the_item_browser_searches_text_external_ids_and_numbers(studies: Studies, boss: User) -> None:
    study_id, ids = make_study(studies, boss, items=12)
    assert [f.id for f in studies.admin.browse_items(boss, study_id, search="output 11")] == [ids[11]]
    assert [f.id for f in studies.admin.browse_items(boss, study_id, search="EXT-3")] == [ids[3]]
    assert [f.id for f in studies.admin.browse_items(boss, study_id, search=f"#{ids[5]}")] == [ids[5]]
    assert len(studies.admin.browse_items(boss, study_id, search="context 1")) == 3  # 1, 10, 11
    assert studies.admin.browse_items(boss, study_id, search="nowhere") == []


def test_an_opened_item_shows_every_label_with_its_history_and_the_verdict(studies: Studies, store: Store,
                                                                          boss: User, ann: list[User]) -> None:
    study_id, items = make_study(studies, boss, blind=True)
    studies.attach_judgment(boss, items[0], store.save_grade(make_result(raw=JUDGE_SAYS_0)))
    first = studies.submit(ann[0], items[0], 1, comment="Looks fine.", spans=[
        {"field": "MODEL OUTPUT", "start": 0, "end": 6}], seconds=12)
    studies.confirm_after_reveal(ann[0], first.id, 0)
    studies.edit(ann[0], first.id, score=1, comment="Fine after all.")
    second = studies.submit(ann[1], items[0], 0)
    detail = studies.admin.item_detail(boss, items[0])
    assert detail.item.fields["MODEL OUTPUT"] == "Output 0." and detail.blind
    assert [entry.annotation.annotator for entry in detail.labels] == ["ann0", "ann1"]
    mine = detail.labels[0].annotation
    assert (mine.score_before_reveal, mine.score_after_reveal, mine.score, mine.comment) == (1, 0, 1, "Fine after all.")
    assert mine.spans == [{"field": "MODEL OUTPUT", "start": 0, "end": 6}]
    assert [edit.changes for edit in detail.labels[0].edits] == [
        {"score": (0, 1), "comment": ("Looks fine.", "Fine after all.")}]
    assert detail.labels[1].annotation.id == second.id and detail.labels[1].edits == ()
    assert (detail.judge_score, detail.judge_status) == (0, "ok") and detail.judgment_id is not None
    # Humans gave 1 and 0 before the reveal (the blind headline): they disagree; their median 0.5 is not 0.
    assert {HUMANS_DISAGREE, JUDGE_DISAGREES, COMPLETE} <= detail.states


def test_per_annotator_progress(studies: Studies, boss: User, ann: list[User]) -> None:
    study_id, items = make_study(studies, boss, blind=True, items=4)
    idle = studies.create_user("idle", PASSWORD)
    seconds = {"ann0": [10.0, 20.0, 60.0], "ann1": [5.0]}
    labels = []
    for annotator in ann[:2]:
        for item_id, spent in zip(items, seconds[annotator.username], strict=False):
            labels.append(studies.submit(annotator, item_id, 1, seconds=spent))
    studies.confirm_after_reveal(ann[0], labels[0].id, 0)  # changed at the reveal
    studies.confirm_after_reveal(ann[0], labels[1].id, 1)  # confirmed, unchanged
    studies.edit(ann[1], labels[3].id, comment="later")
    studies.admin.set_item_removed(boss, items[2], True)  # ann0's third label no longer counts as labelled
    rows = {row.username: row for row in studies.admin.annotator_progress(boss, study_id)}
    assert set(rows) == {"ann0", "ann1", "ann2", "idle"}  # the admin has no label: not listed
    assert (rows["ann0"].labelled, rows["ann0"].assigned) == (2, 3)
    assert rows["ann0"].median_seconds == statistics.median(seconds["ann0"]) == 20.0
    assert (rows["ann0"].changed_at_reveal, rows["ann0"].edited) == (1, 0)
    assert (rows["ann1"].labelled, rows["ann1"].changed_at_reveal, rows["ann1"].edited) == (1, 0, 1)
    assert rows["ann1"].last_active is not None and rows["ann1"].last_active >= labels[3].created_at
    assert (rows[idle.username].labelled, rows[idle.username].median_seconds, rows[idle.username].last_active) == (
        0, None, None)
    assert rows["ann0"].last_active == studies.get_annotation(boss, labels[1].id).updated_at


# ---- who may


ACTIONS: dict[str, Callable[[Studies, User, int, int], Any]] = {
    "update_study": lambda s, u, study, item: s.admin.update_study(u, study, guidelines="mine now"),
    "duplicate_study": lambda s, u, study, item: s.admin.duplicate_study(u, study),
    "archive": lambda s, u, study, item: s.admin.set_archived(u, study, True),
    "unarchive": lambda s, u, study, item: s.admin.set_archived(u, study, False),
    "delete_study": lambda s, u, study, item: s.admin.delete_study(u, study, "Faithfulness"),
    "remove_item": lambda s, u, study, item: s.admin.set_item_removed(u, item, True),
    "restore_item": lambda s, u, study, item: s.admin.set_item_removed(u, item, False),
    "browse_items": lambda s, u, study, item: s.admin.browse_items(u, study),
    "item_detail": lambda s, u, study, item: s.admin.item_detail(u, item),
    "annotator_progress": lambda s, u, study, item: s.admin.annotator_progress(u, study),
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_admin_action_is_refused_for_an_annotator(studies: Studies, store: Store, boss: User,
                                                        ann: list[User], action: str) -> None:
    study_id, items = make_study(studies, boss)
    studies.admin.set_archived(boss, study_id, True)  # so that only the role stops delete_study
    with pytest.raises(PermissionDenied, match="Only an admin"):
        ACTIONS[action](studies, ann[0], study_id, items[0])
    study = studies.get_study(boss, study_id)
    assert (study.guidelines, study.archived, len(studies.list_studies(boss))) == ("", True, 1)
    assert all(i.removed_at is None for i in studies.list_items(boss, study_id))


def test_an_export_read_back_leaves_removed_items_out_as_the_app_does(studies: Studies, store: Store, boss: User,
                                                                      ann: list[User], tmp_path: Path) -> None:
    from core.agreement import agreement_report, load_ratings
    from core.studies import write_exports

    study_id, items = make_study(studies, boss, items=3)
    for item_id, scores in zip(items, ([1, 1], [0, 1], [1, 0]), strict=True):
        studies.attach_judgment(boss, item_id, store.save_grade(make_result()))
        for annotator, score in zip(ann, scores, strict=False):
            studies.submit(annotator, item_id, score)
    studies.admin.set_item_removed(boss, items[1], True)
    in_app = agreement_report(studies.ratings(boss, study_id), (0, 1))
    csv, jsonl, _ = write_exports(studies, boss, study_id, in_app, tmp_path)
    assert "True" in csv.read_text(encoding="utf-8")  # the removed item's labels are in the file, marked
    for path in (csv, jsonl):
        read = load_ratings(path)
        assert sorted(set(read["item_id"].astype(int))) == [items[0], items[2]]
        assert agreement_report(read, (0, 1))["n_items"] == in_app["n_items"] == 2


def test_grading_a_study_leaves_removed_items_alone(studies: Studies, store: Store, boss: User) -> None:
    from core.studies.grading import select_items

    study_id, items = make_study(studies, boss, items=3)
    studies.admin.set_item_removed(boss, items[1], True)
    chosen, left_out = select_items(studies, boss, study_id, store)
    assert ([item.id for item in chosen], left_out) == ([items[0], items[2]], 0)
