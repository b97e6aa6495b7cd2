"""The grade right (core.studies): admins have it, annotators only when an admin grants it, and even then the
verdict of an item of a blind study they have not labelled stays hidden (no stored judgment, no new grade).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.grading import GradeRequest, grade
from core.store import Store
from core.studies import ADMIN, PermissionDenied, Studies, StudyInputError, StudySpec, User
from tests.fakes import ScriptedJudge
from tests.webapp_helpers import FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, answer

PASSWORD = "correct horse battery"
FAST = 2**10


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.from_path(tmp_path / "rights.db") as opened:
        yield opened


@pytest.fixture
def studies(store: Store) -> Studies:
    return Studies(store, password_cost=FAST)


@pytest.fixture
def people(studies: Studies) -> tuple[User, User, User]:
    return (studies.create_user("ada", PASSWORD, role=ADMIN), studies.create_user("ann", PASSWORD),
            studies.create_user("bob", PASSWORD))


def test_admins_may_grade_annotators_only_when_granted(studies: Studies, people: tuple[User, User, User]) -> None:
    ada, ann, bob = people
    assert ada.can_grade and not ann.can_grade
    assert studies.blind_guard(ada).items == ()
    with pytest.raises(PermissionDenied, match="'ann' may not grade.*grant-grading"):
        studies.blind_guard(ann)
    granted = studies.set_grading(ada, "ann", True)
    assert granted.can_grade and studies.get_user("ann") == granted
    studies.blind_guard(ann)  # no longer refused
    assert studies.set_grading(ada, "ann", False).can_grade is False
    with pytest.raises(PermissionDenied):
        studies.blind_guard(ann)
    # Only an admin (or the command line, actor None) may change the right; an admin's right comes with the role.
    with pytest.raises(PermissionDenied, match="Only an admin"):
        studies.set_grading(bob, "bob", True)
    assert studies.set_grading(None, "bob", True).can_grade
    with pytest.raises(StudyInputError, match="admins may always grade"):
        studies.set_grading(None, "ada", False)
    with pytest.raises(StudyInputError, match="no user 'nobody'"):
        studies.set_grading(ada, "nobody", True)


def test_a_granted_annotator_gets_no_verdict_of_an_unlabelled_blind_item(
        studies: Studies, store: Store, people: tuple[User, User, User]) -> None:
    ada, ann, _ = people
    ann = studies.set_grading(ada, "ann", True)
    judge = ScriptedJudge()
    judge.answer = answer("- A verdict.", ["Output"], 1)
    blind = studies.create_study(ada, StudySpec(name="Blind", pass_criteria=FAITHFULNESS_CRITERIA,
                                                rubric=FAITHFULNESS_RUBRIC, tags=("CONTEXT", "MODEL OUTPUT"),
                                                overlap_target=2, blind=True))
    open_study = studies.create_study(ada, StudySpec(name="Open", pass_criteria=FAITHFULNESS_CRITERIA,
                                                     rubric=FAITHFULNESS_RUBRIC, tags=("CONTEXT", "MODEL OUTPUT"),
                                                     blind=False))
    texts = [{"CONTEXT": f"Context {n}.", "MODEL OUTPUT": f"Output {n}."} for n in range(3)]
    judgments = [grade(judge, GradeRequest(dict(f), FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC), store).judgment_id
                 for f in texts]
    assert all(j is not None for j in judgments)
    first = studies.add_item(ada, blind.id, texts[0], judgment_id=judgments[0])
    studies.add_item(ada, blind.id, texts[1])  # not graded yet: asking the judge would give its verdict
    studies.add_item(ada, open_study.id, texts[2], judgment_id=judgments[2])
    # A copy of item 0's fields graded outside the study (e.g. on the Grade tab before it was added).
    copy = grade(judge, GradeRequest(dict(texts[0]), FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC), store).judgment_id
    assert copy is not None
    unrelated = grade(judge, GradeRequest({"MODEL OUTPUT": "Something else."}, FAITHFULNESS_CRITERIA,
                                          FAITHFULNESS_RUBRIC), store).judgment_id
    assert unrelated is not None

    guard = studies.blind_guard(ann)
    for fields in (texts[0], texts[1], {"MODEL OUTPUT": " Output 1.\n", "CONTEXT": "Context   1.", "X": ""},
                   {"RENAMED": "Context 0.", "OTHER": "Output 0.", "GOLD ANSWER": "extra"}):
        with pytest.raises(PermissionDenied, match="blind study that 'ann' has not labelled yet"):
            guard.check(fields)
    guard.check(texts[2])  # a non-blind study's item
    guard.check({"MODEL OUTPUT": "Output 0."})  # only part of the item: not the item
    everything = {*judgments, copy, unrelated}
    # judgments[1] is attached to nothing, but it was graded on item 1's texts: hidden as well.
    assert studies.visible_judgments(ann, everything) == {judgments[2], unrelated}
    assert studies.visible_judgments(ada, everything) == everything

    # Once ann labelled item 0 its verdict is hers to see; item 1 stays hidden.
    claimed = studies.next_item(ann, blind.id)
    while claimed is not None and claimed.id != first.id:
        claimed = studies.next_item(ann, blind.id, skip=[claimed.id])
    assert claimed is not None
    studies.submit(ann, first.id, 1)
    after = studies.blind_guard(ann)
    after.check(texts[0])
    with pytest.raises(PermissionDenied):
        after.check(texts[1])
    assert studies.visible_judgments(ann, everything) == everything - {judgments[1]}
