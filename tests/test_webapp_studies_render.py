"""webapp.render for the study tabs: every renderer escapes what people and the model wrote; marks never nest."""

from __future__ import annotations

import html
from collections.abc import Callable

import pytest

from core.grading import FieldSpan
from tests.test_webapp_render import Markup
from tests.test_webapp_review import RENDERERS as REVIEW_RENDERERS
from tests.test_webapp_runs import RENDERERS as RUNS_RENDERERS
from tests.webapp_helpers import XSS_PAYLOADS
from webapp import render
from webapp.report_judge_vs_people import render_judge_vs_people

# The markup the study renderers may produce: the general renderers' set plus tables and the field marker.
ALLOWED_TAGS = {"div", "section", "span", "mark", "ul", "li", "p", "q", "b", "table", "thead", "tbody", "tr", "th",
                "td", "details", "summary", "pre", "code",
                "dl", "dt", "dd"}  # a score card's statistics (webapp.render.render_score_card), as the general set
ALLOWED_ATTRS = {"class", "title", "role", "data-field", "scope", "open"}


def metric(value: object, **extra: object) -> dict[str, object]:
    return {"value": value, **extra}


def judge_vs_people_block(p: str) -> dict[str, object]:
    """A judge-vs-people block with the payload in every text: names, reasons, notes and readings."""
    comparison = {"annotator": metric(0.5, ci_low=0.4, ci_high=0.6, ci_note=p), "judge": metric(None, reason=p),
                  "difference": metric(None, reason=p), "judge_vs_annotator": None}
    row = {"annotator": p, "n_items": 3, "note": p, "weighted_kappa": comparison, "exact": comparison}
    return {"available": True, "rows": [row], "pooled": {**row, "n_pairs": 6}, "reading": p, "ceiling_reading": p,
            "method": p, "left_out": [{"annotator": p, "reason": p}], "reading_metric": "weighted_kappa"}


RENDERERS: dict[str, Callable[[str], str]] = {
    "label fields (tag, text, evidence, model phrase)": lambda p: render.render_label_fields(
        {p: f"a {p} b"}, [{"field": p, "start": 2, "end": 2 + len(p)}], [FieldSpan(p, 0, 1, p)]),
    "evidence": lambda p: render.render_evidence({p: p}, [{"field": p, "start": 0, "end": len(p)}]),
    "progress": render.render_progress,
    "study summary": lambda p: render.render_study_summary(p, p, p, (0, 1), True, [(0, p), (1, p)]),
    "item header": lambda p: render.render_item_header(3, p, p),
    "import report": lambda p: render.render_import_report(1, [(4, p)]),
    "signed in": lambda p: render.render_signed_in(p, p),
    "metric reason": lambda p: render.render_agreement_metrics({"weighted_kappa": metric(None, reason=p)}),
    "report notes": lambda p: render.render_report_notes([p], {p: 1}),
    "human labels": lambda p: render.render_human_labels([(p, 1, p)]),
    "score basis": lambda p: render.render_agreement_metrics({"headline_score": {"blind": True},
                                                               "pearson": metric(None, reason=p)}),
    "metric table (label, title, counts, reason)": lambda p: render.render_metric_table(
        {p: metric(None, reason=p)}, {p: p}, p, p),
    # Markdown turns some text into markup by design; inside a code block every character stays text (the
    # payloads as Markdown are tests/test_webapp_manage.py's test_rendered_guidelines_hold_no_markup_beyond_markdown).
    "guidelines (Markdown)": lambda p: render.render_guidelines(f"~~~\n{p}\n~~~"),
    "item labels (admin)": lambda p: render.render_item_labels([{
        "annotator": p, "before": p, "after": p, "score": p, "comment": p, "evidence": [(p, p)], "seconds": p,
        "created_at": p, "edits": [p]}]),
    "post-reveal view": lambda p: render.render_anchoring(
        {"post_reveal": {"available": True, "n_items": p, "pearson": metric(0.5)}, "pearson": metric(0.4)}),
    "judge vs people": lambda p: render_judge_vs_people(judge_vs_people_block(p)),
    "judge vs people, not available": lambda p: render_judge_vs_people({"available": False, "reason": p}),
    **REVIEW_RENDERERS,  # the Review tab's (webapp.studies.review_render)
    **RUNS_RENDERERS,  # the Agreement tab's judge runs (webapp.studies.runs_render)
}


def blind_report() -> dict[str, object]:
    """A blind study's report, shaped as core.agreement writes it (values by hand)."""
    return {
        "n_items": 20, "n_items_total": 20, "n_annotators": 2,
        "headline_score": {"blind": True, "score": "human_score_before_reveal"},
        "pearson": metric(0.867, n=20), "exact": metric(0.8, n=20), "weighted_kappa": metric(0.849, n=20),
        "human_human": {"n_items_multiply_rated": 20, "krippendorff_alpha_ordinal": metric(0.756, n=20)},
        "post_reveal": {
            "available": True, "n_items": 20, "n_annotators": 2,
            "pearson": metric(0.954, n=20), "exact": metric(0.85, n=20), "weighted_kappa": metric(0.889, n=20),
            "human_human": {"krippendorff_alpha_ordinal": metric(0.649, n=20)},
        },
        "anchoring": {"available": True, "n": 40, "revised": 3, "towards_model": 3, "away_from_model": 0,
                      "changed_at_reveal": 2, "changed_by_later_edit": 1,
                      "before": {"exact": metric(0.75)}, "after": {"exact": metric(0.825)}},
    }


def test_a_blind_report_leads_with_the_scores_before_the_reveal_and_shows_the_second_view() -> None:
    text = Markup(render.render_agreement_metrics(blind_report())).all_text
    assert "Blind study: every number here uses the score each annotator gave before the model's verdict" in text
    assert "Human vs model \u2014 before the reveal" in text and "Human vs human \u2014 before the reveal" in text
    assert text.index("Human vs model \u2014 before the reveal") < text.index("After the reveal: second view")
    assert ("Revised after the reveal: 3 of 40 labels (3 towards the model, 0 away; 2 when confirming at the "
            "reveal, 1 by a later edit).") in text
    assert "0.750 before, 0.825 after" in text
    for row in ("Pearson r0.8670.954+0.087", "Exact agreement0.8000.850+0.050",
                "Weighted \u03ba (quadratic)0.8490.889+0.040", "Krippendorff \u03b1 (ordinal)0.7560.649-0.107"):
        assert row in text, row


def test_the_second_view_collapses_when_no_score_moved() -> None:
    report = blind_report()
    report["post_reveal"] = {**report, "available": True}  # every number the same after the reveal
    text = Markup(render.render_anchoring(report)).all_text
    assert "Every number after the reveal equals the headline: no score changed." in text
    assert "Change" not in text


@pytest.mark.parametrize(
    ("blind", "expected", "absent"),
    [
        (False, "labels were given with the model's verdict visible", "After the reveal"),
        (None, "does not say whether the labels were given blind", "After the reveal"),
    ],
)
def test_a_report_that_is_not_blind_says_so(blind: bool | None, expected: str, absent: str) -> None:
    report = {**blind_report(), "headline_score": {"blind": blind},
              "post_reveal": {"available": False, "reason": "not a blind study"}}
    text = Markup(render.render_agreement_metrics(report)).all_text
    assert expected in text and absent not in text and "before the reveal" not in text


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
@pytest.mark.parametrize("renderer", sorted(RENDERERS))
def test_every_study_renderer_escapes(renderer: str, payload: str) -> None:
    fragment = RENDERERS[renderer](payload)
    parsed = Markup(fragment)
    for tag, attrs in parsed.tags:
        assert tag in ALLOWED_TAGS, f"unexpected <{tag}> in {fragment!r}"
        assert set(attrs) <= ALLOWED_ATTRS, f"unexpected attribute in <{tag} {attrs}>"
    if any(ch in payload for ch in '<>"'):
        assert payload not in fragment and html.escape(payload, quote=True) in fragment
    shown = parsed.all_text + " ".join(str(v) for _, attrs in parsed.tags for v in attrs.values())
    assert payload in shown


def test_label_fields_mark_evidence_and_model_highlights_without_nesting() -> None:
    text = "The capital of France is Paris."
    human = [{"field": "OUT", "start": 4, "end": 18}]  # "capital of Fra"
    model = [FieldSpan("OUT", 15, 31, "France is Paris."), FieldSpan("OTHER", 0, 3, "The")]
    parsed = Markup(render.render_label_fields({"OUT": text, "EMPTY": ""}, human, model))
    assert parsed.all_text == "OUT" + text  # the empty field is left out; the text is whole
    assert parsed.max_mark_depth == 1
    marks = [(inner, (attrs["class"] or "").split()) for inner, attrs in parsed.marks]
    assert marks == [("capital of ", ["gl-hl-human"]), ("Fra", ["gl-hl", "gl-hl-human"]),
                     ("nce is Paris.", ["gl-hl"])]
    assert ("data-field", "OUT") in [(k, v) for _, attrs in parsed.tags for k, v in attrs.items()]


def test_label_fields_with_astral_characters_use_code_point_offsets() -> None:
    text = "🚀🚀 Zürich ist großartig"
    start = text.index("großartig")
    parsed = Markup(render.render_label_fields({"F": text}, [{"field": "F", "start": start, "end": start + 9}]))
    assert [inner for inner, _ in parsed.marks] == ["großartig"]


def test_agreement_metrics_show_value_interval_p_and_the_reason_when_undefined() -> None:
    report = {
        "n_items": 40, "n_items_total": 42, "n_annotators": 3,
        "weighted_kappa": metric(0.61234, ci_low=0.4, ci_high=0.75, n=40),
        "pearson": metric(0.7, ci_low=0.5, ci_high=0.8, p_value=0.0000002, n=40),
        "kendall": metric(None, reason="fewer than 2 items (n=1)", n=1),
        "human_human": {"n_items_multiply_rated": 12, "krippendorff_alpha_ordinal": metric(0.5, n=12)},
    }
    text = Markup(render.render_agreement_metrics(report)).all_text
    for expected in ("Human vs model", "40 of 42 items \u00b7 3 annotators", "Weighted \u03ba (quadratic)", "0.612",
                     "[0.400, 0.750]", "< 0.001", "fewer than 2 items (n=1)", "Human vs human",
                     "12 items with 2+ labels", "Krippendorff \u03b1 (ordinal)"):
        assert expected in text, expected
    assert "Spearman" not in text  # absent from the report, absent from the table
    assert "no metrics" in Markup(render.render_agreement_metrics({})).all_text


def test_import_report_lists_refused_rows_and_caps_the_list() -> None:
    assert Markup(render.render_import_report(3, [])).all_text == "3 items added."
    text = Markup(render.render_import_report(1, [(4, "missing column 'model_output'")])).all_text
    assert text == "1 item added; 1 row refused:row 4: missing column 'model_output'"
    many = Markup(render.render_import_report(0, [(i, "bad") for i in range(1, 61)], limit=50)).all_text
    assert "row 50: bad" in many and "row 51" not in many and "and 10 more refused rows" in many


def test_reveal_and_progress_text() -> None:
    text = Markup(render.render_reveal(2, 4, blind=True)).all_text
    assert "You gave 2; the model gave 4." in text and "verdict is shown" in text
    assert "could not be read" in Markup(render.render_reveal(2, None, blind=True)).all_text
    assert render.render_signed_in(None, None) == ""


def test_study_summary_folds_the_rubric_levels_away() -> None:
    levels = [(1, "Poor."), (2, "Fine."), (3, "Great.")]
    parsed = Markup(render.render_study_summary("S", "", "Is it good?", (1, 3), True, levels))
    assert [tag for tag, _ in parsed.tags].count("details") == 1  # closed: no "open" attribute
    assert all("open" not in attrs for tag, attrs in parsed.tags if tag == "details")
    assert "What each score means1 Poor.2 Fine.3 Great." in parsed.all_text
    assert "details" not in render.render_study_summary("S", "", "Is it good?", (1, 3), True)
