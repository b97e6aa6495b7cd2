"""webapp.report_sampling: the `sampling` block as HTML (the bias note, counts and item ids, escaped), and its
section in the HTML report."""

from __future__ import annotations

from core.agreement import agreement_report
from core.agreement.sampling import BIAS_NOTE, UNRECORDED_NOTE
from tests.test_webapp_render import Markup
from webapp.render import esc
from webapp.report_html import report_to_html
from webapp.report_sampling import SHOWN_IDS, render_sampling

HOSTILE = "<img src=x onerror=alert(1)>"


def rows(drawn: dict[str, bool | None]) -> list[dict[str, object]]:
    return [{"item_id": item, "annotator": name, "human_score": 1, "model_score": 1, "drawn_at_random": flag}
            for item, flag in drawn.items() for name in ("ann", "bob")]


def test_the_note_counts_and_ids_are_shown_escaped() -> None:
    report = agreement_report(rows({"q1": True, HOSTILE: False, "q3": None}), n_resamples=0)
    html = render_sampling(report["sampling"])
    assert HOSTILE not in html and esc(HOSTILE) in html
    cells = Markup(html).text
    assert cells[0] == BIAS_NOTE and 'class="basis"' in html
    start = cells.index("Drawn at random")
    assert cells[start:start + 12] == ["Drawn at random", "2", "2", "2", "2", "q1, q3",
                                       "Least-confident judgment first", "1", "1", "1", "1", HOSTILE]


def test_long_id_lists_are_cut_and_missing_blocks_say_why() -> None:
    many = agreement_report(rows({f"i{n}": False for n in range(SHOWN_IDS + 5)}), n_resamples=0)
    text = Markup(render_sampling(many["sampling"])).all_text
    assert f"i{SHOWN_IDS - 1} … and 5 more" in text and f"i{SHOWN_IDS}," not in text
    assert Markup(render_sampling({"available": False, "reason": "no <items>"})).all_text == "no <items>"
    assert "no &lt;items&gt;" in render_sampling({"available": False, "reason": "no <items>"})
    plain = agreement_report(rows({"q1": None}), n_resamples=0)
    assert UNRECORDED_NOTE in Markup(render_sampling(plain["sampling"])).all_text


def test_the_html_report_has_the_section_escaped() -> None:
    report = agreement_report(rows({"q1": True, HOSTILE: False}), n_resamples=0)
    html = report_to_html(report, [], title="Queue")
    assert "How items were drawn (queue order)" in html and BIAS_NOTE in Markup(html).all_text
    assert HOSTILE not in html
