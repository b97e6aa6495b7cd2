"""Pairwise studies for the web app tests (UI flow only): a study made through core, its items, and the judge's
two orders attached to an item as its study's first run holds them (the (A, B) order's judgment on the item, the
(B, A) order's in run_second_orders), written by a scripted judge."""

from __future__ import annotations

from datetime import UTC, datetime

from core.grading import GradeRequest, grade
from core.pairwise import DEFAULT_PAIR_RUBRIC
from core.store import Store
from core.studies import Studies, StudySpec, User, runs
from core.studies.pairs import RESPONSE_A, RESPONSE_B
from tests.fakes import ScriptedJudge
from tests.webapp_helpers import answer

PAIR_CRITERIA = "Which reply answers the question more kindly?"
PAIR_ITEMS = (
    ("Can I bring my dog?", "Of course, dogs are welcome here!", "No."),
    ("Is the shop open on Sunday?", "Closed.", "Yes, from ten until four; see you then!"),
    ("Where is the station?", "Two streets down on the left, I can show you.", "Find it yourself."),
    ("Do you have tea?", "We do: green, black and mint.", "Maybe."),
    ("Can I pay by card?", "Cash only.", "Yes, any card is fine, thank you for asking."),
    ("Is there parking?", "Behind the building, free for guests.", "Not my problem."),
)


def pair_study(studies: Studies, admin: User, *, allow_tie: bool = False, blind: bool = True,
               overlap: int = 2, items: int = len(PAIR_ITEMS), name: str = "Kinder reply") -> int:
    """A pairwise study with `items` items (user input, response A, response B); its id."""
    study = studies.create_study(admin, StudySpec(
        name=name, pass_criteria=PAIR_CRITERIA, rubric="", mode="pairwise", allow_tie=allow_tie, blind=blind,
        overlap_target=overlap, description="Pick the kinder reply."))
    for number, (question, first, second) in enumerate(PAIR_ITEMS[:items]):
        studies.add_item(admin, study.id, {"USER INPUT": question, RESPONSE_A: first, RESPONSE_B: second},
                         external_id=f"p-{number}")
    return study.id


def judge_pair(studies: Studies, store: Store, admin: User, item_id: int, score_ab: int | None,
               score_ba: int | None, reasoning: str = "- The reply is kinder.") -> tuple[int, int]:
    """Store the judge's (A, B) and (B, A) judgments of a pairwise item (a score of None: an answer that does not
    parse) and attach them in the study's first run; the two judgment ids."""
    judge = ScriptedJudge()
    item = studies.get_item(admin, item_id)
    ids = []
    orders = ((RESPONSE_A, RESPONSE_B, score_ab, "first order"), (RESPONSE_B, RESPONSE_A, score_ba, "second order"))
    for first, second, score, which in orders:
        judge.answer = (answer(f"{reasoning} ({which})", [], score) if score is not None
                        else "no tags at all")
        fields = {"MODEL OUTPUT 1": item.fields[first], "MODEL OUTPUT 2": item.fields[second]}
        ids.append(grade(judge, GradeRequest(fields, PAIR_CRITERIA, DEFAULT_PAIR_RUBRIC), store).judgment_id)
    ab, ba = ids
    studies.attach_judgment(admin, item_id, ab)

    def second_order(session) -> None:  # type: ignore[no-untyped-def]
        run_id = runs.first_run_id(session, item.study_id)
        session.add(runs.RunSecondOrderRow(run_id=run_id, item_id=item_id, judgment_id=ba,
                                           attached_at=datetime.now(UTC)))

    store.write("attach a second order", second_order)
    return ab, ba


def judge_pair_study(studies: Studies, store: Store, admin: User, study_id: int) -> None:
    """Every item of the study judged: A preferred in both orders, except every third item, where the judge picks
    slot 1 both times (inconsistent)."""
    for number, item in enumerate(studies.list_items(admin, study_id)):
        judge_pair(studies, store, admin, item.id, 0, 0 if number % 3 == 2 else 1)
