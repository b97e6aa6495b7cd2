"""core.pairwise: exact verdicts with a scripted judge, bad input, the presets, and the real tiny model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import InputError
from core.grading import GradeResult
from core.pairwise import (
    DEFAULT_PAIR_RUBRIC,
    INCONSISTENT,
    OUTPUT_1,
    OUTPUT_2,
    UNDECIDED,
    MissingResponseError,
    PairRequest,
    PairRubricError,
    check_pair_rubric,
    compare,
    compare_many,
)
from core.pairwise_presets import load_pairwise_presets
from core.presets import load_presets
from core.prompt import build_prompt
from core.store import Store
from tests.pair_fakes import (
    CRITERIA,
    LYON,
    PARIS,
    QUESTION,
    PairJudge,
    always_slot,
    prefers,
    unreadable_when_first,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.from_path(tmp_path / "glider.db") as opened:
        yield opened


def pair(a: str = PARIS, b: str = LYON, **extra: object) -> PairRequest:
    return PairRequest(response_a=a, response_b=b, pass_criteria=CRITERIA, user_input=QUESTION, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(("a", "b", "verdict"), [(PARIS, LYON, "A"), (LYON, PARIS, "B")])
def test_both_orders_agree_on_the_better_response(store: Store, a: str, b: str, verdict: str) -> None:
    judge = PairJudge(prefers(PARIS))
    result = compare(judge, pair(a, b), store)
    assert result.verdict == verdict and result.both_orders and result.slot is None
    assert [order.label for order in result.orders] == ["A,B", "B,A"]
    assert [order.preferred for order in result.orders] == [verdict, verdict]
    assert [order.result.judgment.score for order in result.orders] == ([0, 1] if verdict == "A" else [1, 0])
    assert judge.batches == [2], "both orders go in one batched generation"
    # The highlight sat in MODEL OUTPUT 1 in one order and 2 in the other: both map to the response itself.
    texts = result.request.responses()
    for order in result.orders:
        fields = {span.field for span in order.spans}
        assert fields == {verdict}, order.spans
        for span in order.spans:
            assert texts[span.field][span.start:span.end] == PARIS
    raw_fields = [{span.field for span in order.result.spans} for order in result.orders]
    assert raw_fields == ([{OUTPUT_1}, {OUTPUT_2}] if verdict == "A" else [{OUTPUT_2}, {OUTPUT_1}])


def test_both_judgments_are_stored_with_their_order(store: Store) -> None:
    result = compare(PairJudge(prefers(PARIS)), pair(), store)
    ids = result.judgment_ids
    assert len(ids) == 2 and all(ids) and ids[0] != ids[1]
    stored = [store.get_judgment(i) for i in ids]
    assert [s.repro["pairwise"]["order"] for s in stored if s] == ["A,B", "B,A"]
    first, second = stored
    assert first is not None and second is not None
    assert (first.fields[OUTPUT_1], first.fields[OUTPUT_2]) == (PARIS, LYON)
    assert (second.fields[OUTPUT_1], second.fields[OUTPUT_2]) == (LYON, PARIS)
    assert first.repro["prompt_sha256"] != second.repro["prompt_sha256"]
    assert first.repro["model_id"] == "tests/scripted-judge" and first.rubric == DEFAULT_PAIR_RUBRIC
    data = result.to_dict()
    assert data["verdict"] == "A" and data["judgment_ids"] == ids
    assert [o["order"] for o in data["orders"]] == ["A,B", "B,A"]
    assert {span["field"] for o in data["orders"] for span in o["spans"]} == {"A"}


def test_orders_that_disagree_are_inconsistent_and_name_the_slot(store: Store) -> None:
    result = compare(PairJudge(always_slot(1)), pair(), store)
    assert result.verdict == INCONSISTENT and result.slot == 1
    assert [order.preferred for order in result.orders] == ["A", "B"]
    assert "slot 1 both times" in result.reason
    # Each order highlighted what sat in slot 1: A's text in A,B, B's in B,A.
    assert [{span.field for span in order.spans} for order in result.orders] == [{"A"}, {"B"}]
    assert result.to_dict()["slot_when_inconsistent"] == 1
    assert compare(PairJudge(always_slot(2)), pair(), store).slot == 2


def test_a_failed_parse_in_one_order_leaves_the_pair_undecided(store: Store) -> None:
    judge = PairJudge(unreadable_when_first(LYON, prefers(PARIS)))  # B,A puts LYON first: no score there
    result = compare(judge, pair(), store)
    assert result.verdict == UNDECIDED
    assert [order.preferred for order in result.orders] == ["A", None]
    assert "B,A order's answer has no readable score" in result.reason and "A,B order preferred A" in result.reason
    assert result.orders[1].result.judgment.status == "failed" and result.orders[1].slot is None
    assert all(store.get_judgment(i) is not None for i in result.judgment_ids if i), "failed answers are kept"
    assert all(result.judgment_ids)
    both_failed = compare(PairJudge(lambda first, second: "no answer"), pair(), store)
    assert both_failed.verdict == UNDECIDED and "preferred" not in both_failed.reason


def test_one_order_only_is_marked_so(store: Store) -> None:
    judge = PairJudge(prefers(LYON))
    result = compare(judge, pair(both_orders=False), store)
    assert result.verdict == "B" and not result.both_orders and len(result.judgment_ids) == 1
    assert "Only the A,B order was run" in result.reason and judge.batches == [1]
    assert result.to_dict()["both_orders"] is False


def test_many_pairs_share_one_generation_and_keep_their_own_errors(store: Store) -> None:
    judge = PairJudge(prefers(PARIS))
    outcomes = compare_many(judge, [pair(), pair(b=" \n"), pair(LYON, PARIS)], store)
    assert judge.batches == [4]
    assert [getattr(o, "verdict", None) for o in outcomes] == ["A", None, "B"]
    assert isinstance(outcomes[1], MissingResponseError) and "Response B is empty" in str(outcomes[1])


@pytest.mark.parametrize("rubric", [
    "1: Output 1 is better.\n2: Output 2 is better.",
    "0: The MODEL OUTPUT 1 is better.\n1: They tie.\n2: The MODEL OUTPUT 2 is better.",
    "1: bad\n2: ok\n3: fine\n4: good\n5: great",
    "The better one wins.",
])
def test_a_rubric_that_is_not_zero_one_is_refused(store: Store, rubric: str) -> None:
    with pytest.raises(PairRubricError, match="must be a 0/1 scale"):
        compare(PairJudge(prefers(PARIS)), pair(rubric=rubric), store)
    assert store.count_judgments() == 0


def test_a_blank_rubric_is_the_default_one() -> None:
    assert check_pair_rubric("  ") == DEFAULT_PAIR_RUBRIC
    assert pair(rubric="").grade_request(("A", "B")).rubric == DEFAULT_PAIR_RUBRIC


@pytest.mark.parametrize(("a", "b", "missing"), [(PARIS, "", "B"), ("  ", LYON, "A"), (PARIS, "\n\t", "B")])
def test_a_missing_response_is_refused(store: Store, a: str, b: str, missing: str) -> None:
    with pytest.raises(MissingResponseError, match=f"Response {missing} is empty"):
        compare(PairJudge(prefers(PARIS)), pair(a, b), store)
    assert isinstance(MissingResponseError("x"), InputError)


def test_empty_criteria_are_refused() -> None:
    with pytest.raises(InputError, match="pass criteria are empty"):
        compare(PairJudge(prefers(PARIS)), PairRequest(PARIS, LYON, pass_criteria=" "))


def test_the_prompt_is_the_published_template_with_two_tagged_outputs() -> None:
    judge = PairJudge(prefers(PARIS))
    compare(judge, pair(context="France's capital is Paris."))
    common = {"CONTEXT": "France's capital is Paris.", "USER INPUT": QUESTION}
    assert judge.prompts == [build_prompt({**common, OUTPUT_1: PARIS, OUTPUT_2: LYON}, CRITERIA, DEFAULT_PAIR_RUBRIC),
                             build_prompt({**common, OUTPUT_1: LYON, OUTPUT_2: PARIS}, CRITERIA, DEFAULT_PAIR_RUBRIC)]


def test_pairwise_presets_load_and_leave_the_single_response_list_alone() -> None:
    pairwise = load_pairwise_presets()
    assert len(pairwise) >= 3 and all(check_pair_rubric(p.rubric) == p.rubric for p in pairwise)
    assert all(p.example.get(OUTPUT_1) and p.example.get(OUTPUT_2) for p in pairwise)
    single = {p.key for p in load_presets()}
    assert not single & {p.key for p in pairwise}
    assert all("MODEL OUTPUT 1" not in p.rubric for p in load_presets())


def test_a_pairwise_preset_with_a_wider_scale_is_refused(tmp_path: Path) -> None:
    import json

    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([{"key": "x", "name": "x", "description": "x", "pass_criteria": "Which is better?",
                                 "rubric": "1: worse\n2: same\n3: better",
                                 "example": {OUTPUT_1: "a", OUTPUT_2: "b"}}]), encoding="utf-8")
    with pytest.raises(InputError, match="preset 'x'.*0/1"):
        load_pairwise_presets(path)


# --- the real tiny model through the real transformers back-end -------------------------------------
# An untrained tiny Phi-3 (a pair judge taught both orders took minutes of CPU: too slow for the default run).
# What it proves: both orders go through the real back-end's batched generation, its unreadable answers make
# the pair undecided (never a made-up verdict), and both judgments are stored with the real record.


def test_the_real_tiny_model_compares_in_both_orders(untrained_model_dir: Path, store: Store) -> None:
    from core.judge import create_backend

    judge = create_backend("transformers", model=str(untrained_model_dir), quantization="none", device="cpu")
    request = PairRequest(response_a=PARIS, response_b=LYON, pass_criteria=CRITERIA, user_input=QUESTION,
                          max_new_tokens=8)
    result = compare(judge, request, store)
    assert result.verdict == UNDECIDED and [o.label for o in result.orders] == ["A,B", "B,A"]
    assert all(isinstance(order.result, GradeResult) and order.result.judgment.status == "failed"
               and order.preferred is None for order in result.orders)
    assert "A,B order's answer has no readable score" in result.reason
    prompts = [order.result.prompt for order in result.orders]
    assert prompts == [build_prompt(request.grade_request(o).fields, CRITERIA, DEFAULT_PAIR_RUBRIC)
                       for o in (("A", "B"), ("B", "A"))]
    stored = [store.get_judgment(i) for i in result.judgment_ids if i]
    assert len(stored) == 2
    for order, judgment in zip(result.orders, stored, strict=True):
        assert judgment is not None and judgment.raw_output == order.result.judgment.raw
        assert judgment.repro["backend"] == "transformers" and judgment.repro["quantization"] == "none"
        assert judgment.repro["pairwise"]["order"] == order.label and judgment.repro["max_new_tokens"] == 8
