"""The Grade tab's "Compare two responses" mode (webapp.compare_panel) and `/compare`, in-process and launched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client

from core.pairwise import DEFAULT_PAIR_RUBRIC
from tests.net import SLOW_MACHINE
from tests.pair_fakes import CRITERIA, LYON, PARIS, QUESTION, PairJudge, always_slot, prefers
from tests.test_webapp_render import Markup
from tests.webapp_helpers import (
    build,
    by_id,
    handler,
    launched,
    make_services,
    make_study_services,
    signed_in,
    value,
)
from webapp.compare_panel import PAIR, SINGLE

# Gradio's queue analytics use a pandas option that pandas 3 deprecates (raised in the server thread).
pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*")


def form(a: str = PARIS, b: str = LYON, rubric: str = DEFAULT_PAIR_RUBRIC, both: bool = True) -> list[object]:
    """The pairwise form's values: context, user input, A, B, gold answer, criteria, rubric, both orders."""
    return ["", QUESTION, a, b, "", CRITERIA, rubric, both]


def text_of(update: object) -> str:
    return Markup(str(value(update) or "")).all_text


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[gr.Blocks]:
    services = make_services(tmp_path, judge=PairJudge(prefers(PARIS)))
    yield build(services)
    services.store.close()


def test_the_mode_picker_swaps_the_forms(demo: gr.Blocks) -> None:
    shown = by_id(demo, handler(demo, "on_mode")(PAIR))
    assert shown["gl-compare"]["visible"] is True and shown["gl-single"]["visible"] is False
    back = by_id(demo, handler(demo, "on_mode")(SINGLE))
    assert back["gl-compare"]["visible"] is False and back["gl-single"]["visible"] is True


def test_compare_shows_the_verdict_both_responses_and_both_orders(demo: gr.Blocks) -> None:
    updates = by_id(demo, handler(demo, "on_compare")(*form()))
    assert "Response A is better" in text_of(updates["gl-compare-verdict"])
    assert "Both orders prefer A" in text_of(updates["gl-compare-verdict"])
    shown_a = Markup(str(value(updates["gl-compare-shown-a"])))
    assert [inner for inner, _ in shown_a.marks] == [PARIS]
    assert Markup(str(value(updates["gl-compare-shown-b"]))).marks == []
    orders = text_of(updates["gl-compare-orders"])
    assert "Order A,B" in orders and "Order B,A" in orders and orders.count("preferred A") == 2


def test_an_inconsistent_judge_and_one_order(tmp_path: Path) -> None:
    services = make_services(tmp_path, judge=PairJudge(always_slot(2)))
    demo = build(services)
    updates = by_id(demo, handler(demo, "on_compare")(*form()))
    assert "Inconsistent" in text_of(updates["gl-compare-verdict"])
    assert "slot 2 both times" in text_of(updates["gl-compare-verdict"])
    one = by_id(demo, handler(demo, "on_compare")(*form(both=False)))
    assert "Response B is better" in text_of(one["gl-compare-verdict"])
    assert "One order only" in text_of(one["gl-compare-verdict"])
    services.store.close()


@pytest.mark.parametrize(("values", "message"), [
    (form(b=""), "Response B is empty"),
    (form(rubric="1: bad\n2: ok\n3: good"), "must be a 0/1 scale"),
])
def test_bad_input_gets_a_clear_message(demo: gr.Blocks, values: list[object], message: str) -> None:
    updates = by_id(demo, handler(demo, "on_compare")(*values))
    assert message in text_of(updates["gl-compare-message"])
    assert value(updates["gl-compare-verdict"]) == ""


def test_no_judge_says_why(tmp_path: Path) -> None:
    services = make_services(tmp_path, judge=None, judge_error="No model at /models/glider.")
    demo = build(services)
    updates = by_id(demo, handler(demo, "on_compare")(*form()))
    assert "the judge model is not loaded" in text_of(updates["gl-compare-message"])
    with pytest.raises(gr.Error, match="No model at /models/glider"):
        handler(demo, "compare")("", "", PARIS, LYON, "", CRITERIA, "")
    services.store.close()


def test_the_example_fills_both_responses(demo: gr.Blocks) -> None:
    updates = by_id(demo, handler(demo, "on_compare_example")("pair-faithfulness"))
    assert "Hartwell" in updates["gl-compare-context"] and updates["gl-compare-a"] and updates["gl-compare-b"]
    assert updates["gl-compare-rubric"].startswith("0: The MODEL OUTPUT 1 is better")


def test_events_are_private_and_compare_is_public(demo: gr.Blocks) -> None:
    fns = {fn.name: fn for fn in demo.fns.values()}
    for name in ("on_mode", "on_compare", "on_compare_preset", "on_compare_example", "on_compare_rubric"):
        assert fns[name].api_visibility == "private", name
    assert fns["compare"].api_visibility == "public" and fns["compare"].api_name == "compare"
    assert fns["on_compare"].concurrency_id == fns["compare"].concurrency_id == "judge"


def test_compare_needs_the_grade_right(tmp_path: Path) -> None:
    services = make_study_services(tmp_path, judge=PairJudge(prefers(PARIS)))
    demo = build(services)
    for who in ("bob", None):  # an annotator without the grade right; nobody signed in
        with pytest.raises(gr.Error, match="Grading is for admins|Sign in first"):
            handler(demo, "compare")("", "", PARIS, LYON, "", CRITERIA, "", request=signed_in(who))
        refused = by_id(demo, handler(demo, "on_compare")(*form(), request=signed_in(who)))
        assert "Grading is for admins" in text_of(refused["gl-compare-message"]) or \
            "Sign in first" in text_of(refused["gl-compare-message"])
    assert services.store.count_judgments() == 0
    allowed = handler(demo, "compare")("", "", PARIS, LYON, "", CRITERIA, "", request=signed_in("ada"))
    assert allowed["verdict"] == "A"
    services.store.close()


def test_compare_through_the_launched_app(tmp_path: Path) -> None:
    judge = PairJudge(prefers(LYON))
    services = make_services(tmp_path, judge=judge)
    with launched(services) as url:
        client = Client(url, verbose=False, httpx_kwargs=SLOW_MACHINE)
        try:
            info = client.view_api(print_info=False, return_format="dict")
            params = [p["parameter_name"] for p in info["named_endpoints"]["/compare"]["parameters"]]
            assert params == ["context", "user_input", "response_a", "response_b", "gold_answer", "pass_criteria",
                              "rubric", "both_orders", "max_new_tokens"]
            result = client.predict("", QUESTION, PARIS, LYON, "", CRITERIA, "", api_name="/compare")
            assert result["verdict"] == "B" and result["both_orders"] is True
            assert [o["order"] for o in result["orders"]] == ["A,B", "B,A"]
            assert [o["preferred"] for o in result["orders"]] == ["B", "B"]
            for order in result["orders"]:
                assert order["reasoning"] and order["status"] == "ok"
                assert [(s["field"], LYON[s["start"]:s["end"]]) for s in order["spans"]] == [("B", LYON)]
            assert all(services.store.get_judgment(i) is not None for i in result["judgment_ids"])
            single = client.predict(response_a=PARIS, response_b=LYON, context="", user_input="", gold_answer="",
                                    pass_criteria=CRITERIA, rubric="", both_orders=False, api_name="/compare")
            assert single["both_orders"] is False and len(single["judgment_ids"]) == 1
            with pytest.raises(Exception, match="Response B is empty") as caught:
                client.predict("", "", PARIS, " ", "", CRITERIA, "", api_name="/compare")
            assert "Traceback" not in str(caught.value)
            with pytest.raises(Exception, match="0/1 scale"):
                client.predict("", "", PARIS, LYON, "", CRITERIA, "1: a\n2: b\n3: c", api_name="/compare")
        finally:
            client.close()
    services.store.close()


def test_the_demo_limits_apply_to_anonymous_comparisons(tmp_path: Path) -> None:
    from webapp.demo_limits import DemoLimits

    services = make_services(tmp_path, judge=PairJudge(prefers(PARIS)))
    services.demo_limits = DemoLimits(max_input_chars=200)
    demo = build(services)
    long_b = "Lyon " * 60
    with pytest.raises(gr.Error, match="at most 200 characters"):
        handler(demo, "compare")("", "", PARIS, long_b, "", CRITERIA, "")
    refused = by_id(demo, handler(demo, "on_compare")(*form(b=long_b)))
    assert "at most 200 characters" in text_of(refused["gl-compare-message"])
    assert handler(demo, "compare")("", "", PARIS, LYON, "", "Which is right?", "")["verdict"] == "A"
    assert services.store.count_judgments() == 2
    services.store.close()
