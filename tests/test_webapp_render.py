"""webapp.render: every renderer escapes user and model text; highlights never nest; offsets are exact."""

from __future__ import annotations

import html
import importlib
import inspect
import pkgutil
import re
import sys
import types
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from core.errors import InputError
from core.grading import FieldSpan
from core.judge.base import BackendInfo
from core.presets import Preset
from core.spans import locate
from core.storage import StorageStatus
from tests.webapp_helpers import XSS_PAYLOADS
from webapp import compare_render, render, report_html, report_judge_run
from webapp.studies import pair_label
from webapp.view_models import JudgmentView, describe_scale, fill_slots, request_fields

# The only markup the renderers may produce: no links, images, scripts or event handlers.
ALLOWED_TAGS = {"div", "section", "span", "mark", "ul", "li", "p", "q", "b", "strong", "dl", "dt", "dd", "h1", "code",
                "br"}
ALLOWED_ATTRS = {"class", "title", "role", "aria-hidden"}
FIXED_STYLE = re.compile(r"width: \d+(\.\d+)?%")  # a progress bar's width, from numbers only


class Markup(HTMLParser):
    """Collects the tags, attributes, text and <mark> nesting of a rendered fragment."""

    def __init__(self, fragment: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.marks: list[tuple[str, dict[str, str | None]]] = []  # (text inside, attrs)
        self.mark_depth = 0
        self.max_mark_depth = 0
        self.feed(fragment)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "mark":
            self.mark_depth += 1
            self.max_mark_depth = max(self.max_mark_depth, self.mark_depth)
            self.marks.append(("", dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "mark":
            self.mark_depth -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.mark_depth and self.marks:
            inner, attrs = self.marks[-1]
            self.marks[-1] = (inner + data, attrs)

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def assert_safe(fragment: str, payload: str) -> Markup:
    """No element or attribute beyond the allowed ones, and the payload visible as text."""
    parsed = Markup(fragment)
    for tag, attrs in parsed.tags:
        assert tag in ALLOWED_TAGS, f"unexpected <{tag}> in {fragment!r}"
        for name, value in attrs.items():
            assert name in ALLOWED_ATTRS or (name == "style" and FIXED_STYLE.fullmatch(value or "")), \
                f"unexpected attribute {name}= in {fragment!r}"
    lowered = fragment.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<svg" not in lowered
    if any(ch in payload for ch in "<>\""):
        assert payload not in fragment, "the payload appears unescaped"
        assert html.escape(payload, quote=True) in fragment
    # Visible as text (or, for a highlight's phrase, in a title attribute, which is also only text).
    assert payload in parsed.all_text or any(payload in str(v) for _, at in parsed.tags for v in at.values())
    return parsed


def make_view(**overrides: Any) -> JudgmentView:
    values: dict[str, Any] = dict(
        judgment_id=7, created_at=None, fields={"MODEL OUTPUT": "Paris is the capital of France."},
        pass_criteria="Is it right?", rubric="0: no\n1: yes", scale=(0, 1), score=1, status="ok", problems=(),
        reasoning="- fine", highlights=("Paris",), spans=(FieldSpan("MODEL OUTPUT", 0, 5, "Paris"),),
        ungrounded=(), in_instructions=frozenset(), distribution={0: 0.1, 1: 0.9}, expected_score=0.9,
        confidence=0.9, raw_output="<score>1</score>", warnings=(), model="tests/scripted-judge · scripted",
    )
    values.update(overrides)
    return JudgmentView(**values)


# --- escaping, payload by payload and renderer by renderer ------------------------------------


def _field_with_highlight(payload: str) -> str:
    text = f"before {payload} after"
    start = text.index(payload)
    return render.render_field(payload, text, [FieldSpan(payload, start, start + len(payload), payload)])


RENDERERS = {
    "one-time password": lambda p: render.render_one_time_password(p, p),
    "field text, tag and highlight title": _field_with_highlight,
    "fields": lambda p: render.render_fields(
        {p: f"x {p} y"}, [FieldSpan(p, 2, 2 + len(p), p)]
    ),
    "reasoning bullet": lambda p: render.render_reasoning(f"- {p}\n- second"),
    "reasoning paragraph": lambda p: render.render_reasoning(f"{p}\n\n- bullet {p}"),
    "problems": lambda p: render.render_score_card(make_view(problems=(p,), status="repaired")),
    "status": lambda p: render.render_score_card(make_view(status=p)),
    "model line": lambda p: render.render_score_card(make_view(model=p)),
    "ungrounded": lambda p: render.render_ungrounded([p], in_instructions={p}),
    "backend info": lambda p: render.render_backend_banner(
        BackendInfo(backend=p, model_id=p, quantization=p, dtype=p, device=p, notes=(p,))
    ),
    "load error": lambda p: render.render_backend_banner(None, p),
    "back-end choice, ready": lambda p: render.render_backend_banner(BackendInfo("llamacpp", "m"), reason=p),
    "back-end choice, loading": lambda p: render.render_backend_banner(None, loading=p, reason=p),
    "back-end choice, failed": lambda p: render.render_backend_banner(None, "no file", reason=p),
    "error message": render.render_error,
    "warnings": lambda p: render.render_warnings([p]),
    "notice": render.render_notice,
    "hint": render.render_hint,
    "preset": lambda p: render.render_preset(Preset(p, p, p, p, p, {})),
    "marked text": lambda p: render.render_marked_text(p + p, locate(p + p, [p])),
    "subtitle": render.render_subtitle,
    "batch status": lambda p: render.render_batch_status(3, p, p, 10, 4, 1, rate=p, eta=p, message=p),
    "batch judge": lambda p: render.render_batch_judge(p, p, p),
    "storage notice": lambda p: render.render_storage_notice(StorageStatus(False, True, p, p)),
    "pair verdict": lambda p: compare_render.render_pair_verdict(p, p, False),
    "pair response": lambda p: compare_render.render_pair_response(
        p, f"x {p} y", [FieldSpan(p, 2, 2 + len(p), p), FieldSpan("B", 0, 1, p)]),
    "pair order": lambda p: compare_render.render_pair_order(f"{p},{p}", p, 1, p, [p], f"- {p}"),
    "pair order, no score": lambda p: compare_render.render_pair_order(p, None, None, "failed", [], None),
    "pair item to label": lambda p: pair_label.render_pair_item({p: p, "RESPONSE A": p, "RESPONSE B": p}, "BA"),
    "pair study summary": lambda p: pair_label.render_pair_summary(p, p, p, True, True),
    "pair reveal": lambda p: pair_label.render_pair_reveal(p, p, True),
    "pair judge": lambda p: pair_label.render_pair_judge(p, [(p, p, f"- {p}")]),
    "judge run line": lambda p: report_judge_run.render_judge_run({"id": p, "name": p, "description": p,
                                                                   "first": True}),
}


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
@pytest.mark.parametrize("renderer", sorted(RENDERERS))
def test_every_renderer_escapes(renderer: str, payload: str) -> None:
    assert_safe(RENDERERS[renderer](payload), payload)


def _hostile_report_page(payload: str) -> str:
    """The downloadable agreement report with the payload as its title, an item id and an annotator's name."""
    from core.agreement import agreement_report

    rows = [{"item_id": payload if item == 0 else f"q{item}", "annotator": name,
             "human_score": (item + person) % 5 + 1, "model_score": item % 5 + 1}
            for item in range(6) for person, name in enumerate((payload, "bob"))]
    return report_html.report_to_html(agreement_report(rows, scale=(1, 5), n_resamples=0), [], title=payload)


def _hostile_alt_test(payload: str) -> str:
    """The alt-test table (webapp.report_alt_test) with the payload as a tested annotator's name."""
    from core.agreement import agreement_report
    from webapp.report_alt_test import render_alt_test

    rows = [{"item_id": item, "annotator": name, "human_score": (item + person * (item % 3 == 0)) % 5 + 1,
             "model_score": item % 5 + 1} for item in range(40) for person, name in enumerate((payload, "bob", "cy"))]
    return render_alt_test(agreement_report(rows, scale=(1, 5), n_resamples=0)["alt_test"])



def _hostile_calibration(payload: str) -> str:
    """The agreement report's calibration section with the payload in every text it shows."""
    from webapp.report_calibration import render_calibration

    bins = [{"low": 0.9, "high": 1.0, "n": 1, "n_agreed": 1, "mean_confidence": 0.95, "agreement": 1.0}]
    return render_calibration({"available": True, "target": 0.9, "n_graded": 1, "n_labelled": 1, "bins": bins,
                               "ece": {"value": 0.05}, "threshold": {"found": False, "reason": payload},
                               "note": payload, "bins_note": payload, "method": payload})




def _hostile_sampling(payload: str) -> str:
    """How items were drawn (webapp.report_sampling), with the payload as the ids of both kinds of item."""
    from core.agreement import agreement_report
    from webapp.report_sampling import render_sampling

    rows = [{"item_id": f"{payload}{item}", "annotator": "ann", "human_score": 1, "model_score": 1,
             "drawn_at_random": item % 2 == 0} for item in range(4)]
    return render_sampling(agreement_report(rows, scale=(0, 1), n_resamples=0)["sampling"])


def _hostile_decision(payload: str) -> str:
    """The Agreement tab's decision panel (webapp.studies.decision_render) with the payload as an annotator."""
    from core.agreement import agreement_report
    from webapp.studies.decision_render import render_decision

    rows = [{"item_id": item, "annotator": name, "human_score": (item + person * (item % 3 == 0)) % 5 + 1,
             "model_score": item % 5 + 1, "model_confidence": 0.5 + (item % 5) / 10}
            for item in range(40) for person, name in enumerate((payload, "bob", "cy"))]
    return render_decision(agreement_report(rows, scale=(1, 5), n_resamples=50))


def _hostile_audit(payload: str) -> str:
    """The robustness audit table (webapp.report_audit) with the payload as a perturbation, a judge and a note."""
    from core.audit.report import RunScores, audit_report
    from webapp.report_audit import render_audit

    runs = [RunScores(payload, {1: 1, 2: 0}, payload, judge=payload),
            RunScores("b", {}, not_applicable=payload)]
    block = audit_report({1: 1, 2: 1}, runs, (0, 1), {1: 1, 2: 0}, n_resamples=0, sample={"note": payload},
                         baseline_judge=payload)
    # As kept with the study (core.studies.audits): which audit, by whom (a username), under which label.
    block["stored"] = {"audit_id": 1, "label": payload, "by": payload, "judge_runs": {payload: 1}}
    return render_audit(block)


def _hostile_pairwise_report(payload: str) -> dict[str, object]:
    """A pairwise study's report with the payload as an item id, annotators' names, the run's label and the study."""
    from core.agreement.pairwise_report import pairwise_report

    choices = [{"item_id": f"{payload}{item}", "annotator": name, "choice": "AB"[(item + k) % 2]}
               for item in range(3) for k, name in enumerate((payload, f"{payload}2"))]
    report = pairwise_report(choices, {f"{payload}{item}": None for item in range(3)}, allow_tie=True, n_resamples=0)
    return {**report, "run": {"label": payload}, "choices_headline": payload}


def _hostile_pairwise(payload: str) -> str:
    """The pairwise report's sections (webapp.report_pairwise)."""
    from webapp.report_pairwise import render_pairwise

    return render_pairwise(_hostile_pairwise_report(payload))


def _hostile_pairwise_page(payload: str) -> str:
    """The downloadable report of a pairwise study, with the payload as its title too."""
    return report_html.report_to_html(_hostile_pairwise_report(payload), [], title=payload)


# Whole pages: a document's head and tables besides the fragments' markup, still no script, link or image.
PAGES = {"pairwise report": _hostile_pairwise, "pairwise report page": _hostile_pairwise_page,
         "agreement report": _hostile_report_page, "alt-test table": _hostile_alt_test,
         "calibration section": _hostile_calibration, "sampling section": _hostile_sampling,
         "decision panel": _hostile_decision, "audit table": _hostile_audit}
PAGE_TAGS = ALLOWED_TAGS | {"html", "head", "meta", "title", "style", "body", "h2", "h3", "section", "table", "thead",
                            "tbody", "tr", "th", "td"}
PAGE_ATTRS = ALLOWED_ATTRS | {"lang", "charset", "name", "content", "scope"}


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_page_escapes(page: str, payload: str) -> None:
    document = PAGES[page](payload)
    parsed = Markup(document)
    for tag, attrs in parsed.tags:
        assert tag in PAGE_TAGS and set(attrs) <= PAGE_ATTRS, f"unexpected <{tag} {attrs}>"
    if any(ch in payload for ch in '<>"'):
        assert payload not in document and html.escape(payload, quote=True) in document
    assert payload in parsed.all_text


# Renderers that write only their own fixed sentences, whatever the input says.
FIXED_TEXT = {"score basis": lambda p: render.render_score_basis({"headline_score": {"blind": p, "score": p}})}


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
@pytest.mark.parametrize("renderer", sorted(FIXED_TEXT))
def test_fixed_text_renderers_show_none_of_the_input(renderer: str, payload: str) -> None:
    fragment = FIXED_TEXT[renderer](payload)
    assert fragment and payload not in Markup(fragment).all_text and html.escape(payload) not in fragment
    assert_safe(fragment, "")


def _html_renderers() -> dict[str, Callable[..., str]]:
    """Every public function of webapp that writes HTML, found by name: render_* and *_html."""
    import webapp

    found: dict[str, Callable[..., str]] = {}
    for info in pkgutil.walk_packages(webapp.__path__, "webapp."):
        module = importlib.import_module(info.name)
        for name, function in inspect.getmembers(module, inspect.isfunction):
            public = function.__module__ == module.__name__ and not name.startswith("_")
            if public and (name.startswith("render_") or name.endswith("_html")):
                found[f"{module.__name__}.{name}"] = function
    return found


def _takes_no_text(function: Callable[..., str]) -> bool:
    """Only numbers and flags in (or nothing at all): nothing a person or the model wrote can reach the HTML."""
    annotations = [str(parameter.annotation) for parameter in inspect.signature(function).parameters.values()]
    return all({part.strip() for part in annotation.split("|")} <= {"int", "float", "bool", "None"}
               for annotation in annotations)


def _called_by(case: Callable[[str], str], payload: str) -> set[types.CodeType]:
    """The code of every function the case calls directly (or the case itself, when it is a renderer)."""
    called = {case.__code__} if hasattr(case, "__code__") else set()

    def profile(frame: types.FrameType, event: str, _: object) -> None:
        if event == "call" and frame.f_back is not None and frame.f_back.f_code is case.__code__:
            called.add(frame.f_code)

    sys.setprofile(profile)
    try:
        case(payload)
    finally:
        sys.setprofile(None)
    return called


def test_every_renderer_has_an_escaping_case() -> None:
    """A renderer added to webapp is found here; it fails until a case pushes the payloads through it."""
    from tests.test_webapp_studies_render import RENDERERS as STUDY_RENDERERS

    renderers = _html_renderers()
    assert {"webapp.render.render_score_card", "webapp.render.render_label_fields",
            "webapp.report_html.report_to_html"} <= set(renderers)
    cases = [*RENDERERS.values(), *STUDY_RENDERERS.values(), *PAGES.values(), *FIXED_TEXT.values()]
    covered = set().union(*(_called_by(case, XSS_PAYLOADS[0]) for case in cases))
    missing = sorted(name for name, function in renderers.items()
                     if function.__code__ not in covered and not _takes_no_text(function))
    assert missing == [], f"add a case to RENDERERS (fragments), PAGES (documents) or FIXED_TEXT for each of {missing}"
    assert {name for name, function in renderers.items() if _takes_no_text(function)} == {
        "webapp.render.render_header", "webapp.render.render_reveal"}


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_highlight_of_a_payload_marks_the_escaped_text(payload: str) -> None:
    parsed = assert_safe(_field_with_highlight(payload), payload)
    assert [inner for inner, _ in parsed.marks] == [payload]
    assert parsed.marks[0][1]["title"] == f"Highlighted: {payload}"


def test_escape_helper_quotes_attributes() -> None:
    assert render.esc('a"b\'<c>&') == "a&quot;b&#x27;&lt;c&gt;&amp;"
    assert render.esc(None) == ""


# --- highlights ----------------------------------------------------------------------------


def test_overlapping_highlights_do_not_nest() -> None:
    text = "the quick brown fox jumps"
    spans = locate(text, ["quick brown", "brown fox", "fox"])
    parsed = Markup(render.render_marked_text(text, spans))
    assert parsed.max_mark_depth == 1
    assert parsed.all_text == text
    inner = [m for m, _ in parsed.marks]
    assert "".join(inner) == "quick brown fox"
    brown = next(attrs for m, attrs in parsed.marks if m == "brown")
    assert "gl-hl-multi" in (brown["class"] or "")
    assert "quick brown" in (brown["title"] or "") and "brown fox" in (brown["title"] or "")


def test_nested_highlight_inside_a_longer_one() -> None:
    text = "it was designed by Holm & Bech in 1985"
    parsed = Markup(render.render_marked_text(text, locate(text, ["designed by Holm & Bech", "Holm"])))
    assert parsed.max_mark_depth == 1
    assert parsed.all_text == text
    assert [m for m, _ in parsed.marks] == ["designed by ", "Holm", " & Bech"]


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("🚀🚀 Zürich ist großartig, sagt sie.", "großartig"),
        ("née 'Çelik' — a café near İzmir 👋🏽 today", "İzmir"),
        ("e\u0301te\u0301 (combining accents) then 日本語のテキスト", "日本語"),
        ("emoji 👨‍👩‍👧 family then target", "target"),
    ],
)
def test_unicode_offsets_mark_the_right_text(text: str, phrase: str) -> None:
    spans = locate(text, [phrase])
    assert spans, "locate must find the phrase"
    field_spans = [FieldSpan("MODEL OUTPUT", s.start, s.end, s.phrase) for s in spans]
    parsed = Markup(render.render_field("MODEL OUTPUT", text, field_spans))
    assert [m for m, _ in parsed.marks] == [phrase]
    assert parsed.all_text.endswith(text)


def test_field_shows_only_its_own_spans_and_unhighlighted_fields_are_left_out() -> None:
    fields = {"CONTEXT": "Paris is big.", "USER INPUT": "Where?", "MODEL OUTPUT": "Paris."}
    spans = [FieldSpan("CONTEXT", 0, 5, "Paris"), FieldSpan("MODEL OUTPUT", 0, 5, "Paris")]
    parsed = Markup(render.render_fields(fields, spans))
    assert [m for m, _ in parsed.marks] == ["Paris", "Paris"]
    assert "Where?" not in parsed.all_text
    assert "No highlighted phrase" in Markup(render.render_fields(fields, [])).all_text


def test_spans_past_the_end_of_a_field_are_ignored() -> None:
    parsed = Markup(render.render_field("F", "short", [FieldSpan("F", 2, 99, "ort and more")]))
    assert parsed.marks == [] and parsed.all_text.endswith("short")


# --- reasoning, score card, ungrounded, banner --------------------------------------------------


def test_reasoning_bullets_become_a_list() -> None:
    reasoning = "Overall:\n- first point\n  continues here\n* second\n\u2022 third\n1. fourth\n\n"
    parsed = Markup(render.render_reasoning(reasoning))
    items = [tag for tag, _ in parsed.tags if tag == "li"]
    assert len(items) == 4
    assert "first point continues here" in parsed.all_text
    assert "Overall:" in parsed.all_text


def test_reasoning_markdown_is_not_rendered() -> None:
    fragment = render.render_reasoning("- **bold** [link](javascript:alert(1)) `code`")
    parsed = assert_safe(fragment, "[link](javascript:alert(1))")
    assert "**bold**" in parsed.all_text


@pytest.mark.parametrize("reasoning", [None, "", "   \n "])
def test_missing_reasoning_says_so(reasoning: str | None) -> None:
    assert "no reasoning" in Markup(render.render_reasoning(reasoning)).all_text


def test_score_card_shows_score_scale_status_and_statistics() -> None:
    text = Markup(render.render_score_card(make_view())).all_text
    for expected in ("1", "0\u20131", "ok", "0.90", "90%", "#7"):
        assert expected in text


def test_failed_score_card_shows_no_number_and_the_problems() -> None:
    view = make_view(score=None, status="failed", problems=("The answer has no <score> block.",),
                     expected_score=None, confidence=None, distribution=None)
    fragment = render.render_score_card(view)
    parsed = assert_safe(fragment, "The answer has no <score> block.")
    assert "\u2014" in parsed.all_text and "failed" in parsed.all_text
    assert "gl-status-failed" in fragment and "Expected" not in parsed.all_text


def test_ungrounded_notes_phrases_that_only_occur_in_the_instructions() -> None:
    text = Markup(render.render_ungrounded(["rubric words", "invented"], {"rubric words"})).all_text
    assert "rubric words (only in the pass criteria or rubric)" in text
    assert "invented" in text and "invented (only" not in text
    assert render.render_ungrounded([]) == ""


def test_backend_banner_names_the_model_and_the_fix_when_it_failed() -> None:
    ok = Markup(render.render_backend_banner(BackendInfo("transformers", "PatronusAI/glider", quantization="nf4",
                                                         dtype="bfloat16", device="cuda:0"))).all_text
    for expected in ("PatronusAI/glider", "transformers", "nf4", "cuda:0"):
        assert expected in ok
    failed = Markup(render.render_backend_banner(None, "No such directory: /models/glider")).all_text
    assert "No such directory: /models/glider" in failed and "--model /path/to/local/model" in failed
    assert "Why this back-end" not in ok + failed  # nothing chose it: nothing to explain


def test_backend_banner_names_the_cpu_routine_that_runs() -> None:
    kernel = "nf4 via bitsandbytes (native CPU kernel, AVX512-BF16 path)"
    info = BackendInfo("transformers", "PatronusAI/glider", quantization="nf4", dtype="nf4/bfloat16", kernel=kernel)
    assert f"Runs {kernel}" in Markup(render.render_backend_banner(info)).all_text
    assert info.describe().endswith(f"cpu · {kernel}")
    plain = Markup(render.render_backend_banner(BackendInfo("openai", "glider"))).all_text
    assert "Runs" not in plain and not BackendInfo("openai", "glider").describe().endswith(" · ")
    # README's "What to expect" tells users to look for this very line.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert '("Runs nf4 via bitsandbytes (…)")' in readme and "AVX512-BF16" in readme


def test_backend_banner_says_why_the_back_end_was_chosen_in_every_state() -> None:
    reason = "no CUDA GPU and llama-cpp-python is installed: GGUF Q4_K_M through llama.cpp, the fastest CPU path"
    banners = [render.render_backend_banner(BackendInfo("llamacpp", "PatronusAI/glider-gguf"), reason=reason),
               render.render_backend_banner(None, loading="llamacpp: PatronusAI/glider-gguf", reason=reason),
               render.render_backend_banner(None, "The GGUF file is missing.", reason=reason)]
    for banner in banners:
        assert f"Why this back-end: {reason}" in Markup(banner).all_text


# --- view helpers --------------------------------------------------------------------------------


def test_fill_slots_puts_default_tags_in_place_and_others_in_free_slots() -> None:
    assert fill_slots({"MODEL OUTPUT": "m", "USER INPUT": "u"}) == [
        ("CONTEXT", ""), ("USER INPUT", "u"), ("MODEL OUTPUT", "m"), ("GOLD ANSWER", "")]
    assert fill_slots({"CONTEXT": "c", "USER INPUT": "u", "RESPONSE": "r", "GOLD ANSWER": "g"}) == [
        ("CONTEXT", "c"), ("USER INPUT", "u"), ("RESPONSE", "r"), ("GOLD ANSWER", "g")]
    assert len(fill_slots({f"T{i}": str(i) for i in range(6)})) == 4


def test_request_fields_strips_tags_and_refuses_two_filled_fields_with_one_tag() -> None:
    assert request_fields([" A ", "B", "C", "D"], ["a", "", None, "d"]) == {"A": "a", "B": "", "C": "", "D": "d"}
    assert request_fields(["A", "A", "C", "D"], ["a", "", "", ""]) == {"A": "a", "C": "", "D": ""}
    with pytest.raises(InputError, match="'A'"):
        request_fields(["A", "A", "C", "D"], ["a", "b", "", ""])


def test_describe_scale_shows_the_scale_or_the_rubric_error() -> None:
    assert describe_scale("1: bad\n2: ok\n3: good").startswith("1\u20133")
    assert "names no scores" in describe_scale("just some words")
