"""The Agreement tab on a pairwise study (webapp.studies.pair_agreement, webapp.report_pairwise) with a real Store
and Studies on a SQLite file, the scripted pair judge (UI flow only) and fake sign-ins: the pairwise report in place
of the numeric one, its chart and exports, the judge run picked, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from core.agreement.pairwise_report import pairwise_report
from core.studies.grading import grade_study
from tests.pair_fakes import PairJudge, always_slot
from tests.test_pair_reports import kind_first_or_slot_1, seed_study
from tests.test_webapp_render import Markup
from tests.webapp_helpers import build, handler, make_study_services, signed_in, value
from webapp import Services
from webapp.report_html import report_to_html
from webapp.report_pairwise import position_figure

pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]

ADA, ANN = signed_in("ada"), signed_in("ann")


def plain(raw: Any) -> dict[str, Any]:
    return {block.elem_id: val for block, val in raw.items() if getattr(block, "elem_id", None)}


def text(view: dict[str, Any], key: str) -> str:
    return Markup(value(view.get(key)) or "").all_text


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    made = make_study_services(tmp_path, users={"ada": "admin"})
    yield made
    made.store.close()


@pytest.fixture
def demo(services: Services) -> gr.Blocks:
    return build(services)


@pytest.fixture
def study_id(services: Services) -> int:
    """seed_study's four pairs labelled by ann and bob, graded by a judge consistent on two of them."""
    studies = services.studies
    assert studies is not None
    ada = studies.get_user("ada")
    assert ada is not None
    made, _ = seed_study(studies, ada)
    grade_study(studies, ada, made, PairJudge(kind_first_or_slot_1), services.store)
    return made


def test_a_pairwise_study_shows_the_pairwise_report(demo: gr.Blocks, services: Services, study_id: int) -> None:
    view = plain(handler(demo, "on_report")(study_id, "annotators", None, None, ADA, None))
    metrics = text(view, "gl-agree-metrics")
    assert "Position consistency" in metrics and "Accuracy vs the human majority" in metrics
    assert "66.7% [" in metrics  # 2 of 3 majority items, with its interval
    assert "Pearson" not in metrics and "pairwise study's labels are choices" in text(view, "gl-agree-decision")
    assert view["gl-agree-heatmap"]["visible"] and view["gl-agree-heatmap"]["value"] is not None  # the position chart
    assert not view["gl-agree-disagreements"]["visible"] and not view["gl-agree-reliability"]["visible"]
    files = [Path(view[f"gl-export-{suffix}"]["value"]) for suffix in ("csv", "jsonl", "json", "html")]
    assert "shown_order" in files[0].read_text(encoding="utf-8").splitlines()[0]
    page = files[3].read_text(encoding="utf-8")
    assert "<h3>Position consistency and position bias</h3>" in page and "Kindness &lt;b&gt;" in page


def test_the_judge_run_picked_is_the_judge(demo: gr.Blocks, services: Services, study_id: int) -> None:
    studies, ada = services.studies, services.studies.get_user("ada")  # type: ignore[union-attr]
    assert studies is not None and ada is not None
    second = grade_study(studies, ada, study_id, PairJudge(always_slot(2)), services.store, new_run="Slot two").run
    assert second is not None
    view = plain(handler(demo, "on_report")(study_id, "annotators", None, None, ADA, second.id))
    assert "judge run \u201cSlot two\u201d" in text(view, "gl-agree-message")
    assert "Slot two" in text(view, "gl-agree-metrics") and "0.0% [" in text(view, "gl-agree-metrics")


def test_refusals_and_the_adjudicated_reference(demo: gr.Blocks, services: Services, study_id: int) -> None:
    studies = services.studies
    assert studies is not None
    studies.create_user("ann2", "correct horse battery", role="annotator")
    refused = plain(handler(demo, "on_report")(study_id, "annotators", None, None, signed_in("ann2"), None))
    assert value(refused["gl-agree-metrics"]) in ("", None) and "admin" in text(refused, "gl-agree-message").lower()
    visitor = plain(handler(demo, "on_report")(study_id, "annotators", None, None, signed_in(None), None))
    assert value(visitor["gl-agree-metrics"]) in ("", None) and text(visitor, "gl-agree-message")
    adjudicated = plain(handler(demo, "on_report")(study_id, "adjudicated", None, None, ADA, None))
    assert "choose Annotators" in text(adjudicated, "gl-agree-message")


def test_the_position_chart_and_the_page_of_a_pure_report() -> None:
    choices = [{"item_id": i, "annotator": name, "choice": "A", "shown_order": "AB"} for i in range(4)
               for name in ("x", "y")]
    report = pairwise_report(choices, {0: "A", 1: "inconsistent", 2: "inconsistent", 3: "B"}, {1: 1, 2: 1},
                             allow_tie=False, n_resamples=100)
    figure = position_figure(report)
    assert figure is not None and list(figure.data[0].y) == [0.5, 1.0, 1.0]
    assert position_figure(pairwise_report([], {}, allow_tie=False)) is None
    page = report_to_html(report, [], title="t")
    assert "Position consistency" in page and page.count("<script") >= 1  # the chart, plotly inlined once
