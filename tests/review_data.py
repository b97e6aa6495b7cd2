"""A small 1-5 study for the review and adjudication tests, with every number the tests expect worked out by hand.

Seven items; annotators ann and bob label all of them (not blind); the judge grades each with a score
distribution, so its confidence (the probability of its own score) is known; a reviewer adjudicates the
first six (ADJUDICATED), item 7 never.

    item  ann bob  judge  P(judge's score)  consensus  spread  |delta|  adjudicated
    1     1   1    1      0.90              1          0       0        1
    2     2   4    2      0.50              3          2       1        3
    3     3   3    5      0.95              3          0       2        3
    4     4   5    4      0.60              5 (4.5 up) 1       1        4
    5     5   5    5      0.80              5          0       0        5
    6     2   3    4      0.70              3 (2.5 up) 1       1        2
    7     2   2    2      0.85              2          0       0        -

Sorted by human vs judge (|delta| desc, then confidence desc): 3, 6, 4, 2, 1, 7, 5.
Sorted by annotators (spread desc, then distinct scores, then |delta|, then item order): 2, 4, 6, 3, 1, 5, 7.

Against the adjudicated labels (items 1-6): the judge 1 2 5 4 5 4 vs 1 3 3 4 5 2 agrees exactly on 3 of 6
(0.500) and within 1 on 4 of 6; ann 1 2 3 4 5 2 on 5 of 6; bob 1 4 3 5 5 3 on 3 of 6; the item means rounded
half up, 1 3 3 5 5 3, on 4 of 6. Quadratic-weighted kappas: sklearn's cohen_kappa_score on the same lists.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.grading import GradeRequest, grade
from core.store import Store
from core.studies import Studies, StudySpec, User
from tests.fakes import ScriptedJudge
from tests.webapp_helpers import answer

RUBRIC_1_5 = "\n".join(f"{n}: level {n} of helpfulness." for n in range(1, 6))
CRITERIA = "Is the MODEL OUTPUT a helpful answer to the USER INPUT?"
ANN = [1, 2, 3, 4, 5, 2, 2]
BOB = [1, 4, 3, 5, 5, 3, 2]
JUDGE = [1, 2, 5, 4, 5, 4, 2]
CONFIDENCE = [0.9, 0.5, 0.95, 0.6, 0.8, 0.7, 0.85]
ADJUDICATED = [1, 3, 3, 4, 5, 2]  # items 1-6; item 7 is never adjudicated
BY_JUDGE = [3, 6, 4, 2, 1, 7, 5]  # positions (1-based) in the order of the review list
BY_HUMANS = [2, 4, 6, 3, 1, 5, 7]
NOTE_PREFIX = "settled by the rubric's level "


@dataclass(frozen=True)
class ReviewStudy:
    study_id: int
    item_ids: list[int]  # in the order of the table above


def make_review_study(studies: Studies, store: Store, admin: User, ann: User, bob: User) -> ReviewStudy:
    """The study of the table above, graded and labelled, not adjudicated yet."""
    study = studies.create_study(admin, StudySpec(name="Helpfulness", pass_criteria=CRITERIA, rubric=RUBRIC_1_5,
                                                  tags=("USER INPUT", "MODEL OUTPUT"), overlap_target=2, blind=False))
    item_ids = []
    for n, (score, confidence) in enumerate(zip(JUDGE, CONFIDENCE, strict=True), start=1):
        fields = {"USER INPUT": f"Question {n}?", "MODEL OUTPUT": f"Answer {n}."}
        other = score - 1 if score > 1 else score + 1
        judge = ScriptedJudge(answer(f"- Judged item {n}.", [f"Answer {n}."], score),
                              distribution={score: confidence, other: round(1 - confidence, 6)})
        result = grade(judge, GradeRequest(fields, CRITERIA, RUBRIC_1_5), store)
        item = studies.add_item(admin, study.id, fields, external_id=f"h-{n}", judgment_id=result.judgment_id)
        item_ids.append(item.id)
    for item_id, ann_score, bob_score in zip(item_ids, ANN, BOB, strict=True):
        studies.submit(ann, item_id, ann_score, comment=f"ann on {item_id}")
        studies.submit(bob, item_id, bob_score)
    return ReviewStudy(study.id, item_ids)
