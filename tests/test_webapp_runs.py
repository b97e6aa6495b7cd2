"""The Agreement tab's judge runs (webapp.studies.runs_panel) with a real Store and Studies on a SQLite file, the
scripted judge (UI flow only) and fake sign-ins: the Studies tab's "Grade as a new run", the "Judge run" picker of
the report, the "Compare judge runs" panel with its changed items one click away, refusals, and escaping."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from core.studies import StudySpec
from core.studies.runs import describe_config
from tests.fakes import ScriptedJudge
from tests.test_webapp_render import Markup
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    answer,
    build,
    handler,
    make_study_services,
    signed_in,
    value,
)
from webapp import Services
from webapp.studies.runs_render import render_run_comparison, render_two_verdicts
from webapp.view_models import JudgmentView

pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]

ADA, ANN = signed_in("ada"), signed_in("ann")
SAYS = {score: answer(f"- run verdict {score}.", ["capital"], score) for score in (0, 1)}


def plain(raw: Any) -> dict[str, Any]:
    return {block.elem_id: val for block, val in raw.items() if getattr(block, "elem_id", None)}


def text(view: dict[str, Any], key: str) -> str:
    return Markup(value(view.get(key)) or "").all_text


def last(updates: Iterator[dict[Any, Any]]) -> dict[str, Any]:
    final: dict[Any, Any] = {}
    for final in updates:  # noqa: B007 - the last one is wanted
        pass
    return plain(final)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    made = make_study_services(tmp_path, judge=ScriptedJudge(SAYS[1]))
    yield made
    made.store.close()


@pytest.fixture
def demo(services: Services) -> gr.Blocks:
    return build(services)


@pytest.fixture
def study_id(services: Services) -> int:
    """A study of three items, each labelled 1 by ann."""
    assert services.studies is not None
    studies, ada = services.studies, services.studies.get_user("ada")
    ann = services.studies.get_user("ann")
    assert ada is not None and ann is not None
    study = studies.create_study(ada, StudySpec(name="Capitals", pass_criteria=FAITHFULNESS_CRITERIA,
                                                rubric=FAITHFULNESS_RUBRIC, tags=("CONTEXT", "MODEL OUTPUT"),
                                                blind=False))
    for number in range(3):
        item = studies.add_item(ada, study.id, {"CONTEXT": "Paris is the capital of France.",
                                                "MODEL OUTPUT": f"Paris, answer {number}."}, external_id=f"q{number}")
        studies.submit(ann, item.id, 1)
    return study.id


def two_runs(demo: gr.Blocks, services: Services, study_id: int) -> None:
    """Run 1 by the judge that says 1; then "Grade as a new run" with a judge that says 0 for item q1."""
    first = last(handler(demo, "on_grade_all")(study_id, request=ADA))
    assert "3 graded" in text(first, "gl-grade-all-message")
    services.judge = MixedJudge()  # the same configuration: a new run only because it is asked for
    second = last(handler(demo, "on_grade_all")(study_id, ADA, True))
    shown = text(second, "gl-grade-all-message")
    assert shown.startswith("New judge run \u201cRun 2\u201d") and "3 graded" in shown, shown


class MixedJudge(ScriptedJudge):
    """Says 0 for the item whose output is "Paris, answer 1.", 1 for the others."""

    def generate(self, prompt: str, **kwargs: Any) -> Any:
        generation = super().generate(prompt, **kwargs)
        return replace(generation, text=SAYS[0] if "Paris, answer 1." in prompt else SAYS[1])


def test_grade_as_a_new_run_then_pick_the_judge_run_and_compare_runs(demo: gr.Blocks, services: Services,
                                                                     study_id: int) -> None:
    two_runs(demo, services, study_id)
    opened = plain(handler(demo, "on_runs_study")(study_id, None, None, None, request=ADA))
    judge, run_a, run_b = (opened[key] for key in ("gl-agree-judge-run", "gl-runs-a", "gl-runs-b"))
    labels = [label for label, _ in judge["choices"]]
    assert len(labels) == 2 and labels[0].startswith("Run 1 (#") and "first run" in labels[0]
    first, second = (run_id for _, run_id in judge["choices"])
    assert (judge["value"], run_a["value"], run_b["value"]) == (first, first, second)

    # The report with the default judge (run 1) and with run 2 as the judge.
    default = plain(handler(demo, "on_report")(study_id, "annotators", None, None, ADA, None))
    chosen = plain(handler(demo, "on_report")(study_id, "annotators", None, None, ADA, second))
    assert "Exact agreement" in text(default, "gl-agree-metrics")
    assert text(default, "gl-agree-message") == ""
    assert "judge run \u201cRun 2\u201d" in text(chosen, "gl-agree-message")
    assert value(default["gl-agree-metrics"]) != value(chosen["gl-agree-metrics"])
    # A disagreement of run 2's report shows run 2's verdict (0), not the first run's.
    row = [str(services.studies.list_items(services.studies.get_user("ada"), study_id)[1].id)]  # type: ignore[union-attr,arg-type]
    select = gr.SelectData(None, {"index": [0, 0], "value": row[0], "row_value": row})
    item = plain(handler(demo, "on_disagreement_select")(study_id, select, ADA, second))
    assert "run verdict 0" in text(item, "gl-agree-item")
    item = plain(handler(demo, "on_disagreement_select")(study_id, select, ADA))
    assert "run verdict 1" in text(item, "gl-agree-item")

    compared = plain(handler(demo, "on_compare_runs")(study_id, first, second, request=ADA))
    metrics = text(compared, "gl-runs-metrics")
    assert "Flip rate" in metrics and "Weighted \u03ba" in metrics and "1 item(s) changed" in metrics
    table = value(compared["gl-runs-changed"])
    assert list(table.columns) == ["Item", "Run A", "Run B", "Change", "Preview"]
    assert table.values.tolist() == [[row[0], "1", "0", "-1", "[q1] Paris is the capital of France. \u00b7 "
                                                                "Paris, answer 1."]]
    state = next(val for key, val in handler(demo, "on_compare_runs")(study_id, first, second, request=ADA).items()
                 if isinstance(key, gr.State))
    assert state == [study_id, first, second]
    clicked = plain(handler(demo, "on_changed_run_item")(state, select, request=ADA))
    both = text(clicked, "gl-runs-item")
    assert "Run A: Run 1" in both and "Run B: Run 2" in both
    assert both.index("run verdict 1") < both.index("run verdict 0") and "ann" in both


def test_the_downloads_use_the_picked_judge_run_and_name_it(demo: gr.Blocks, services: Services,
                                                          study_id: int) -> None:
    """The CSV / JSONL / JSON / HTML downloads of a report carry the picked run's verdicts and say which run it is;
    without a pick, the first run's. The HTML report also holds the study's newest robustness audit."""
    import pandas as pd

    from core.audit.perturbations import PERTURBATIONS

    two_runs(demo, services, study_id)
    ada = services.studies.get_user("ada")  # type: ignore[union-attr]
    runs = services.studies.runs.list_runs(ada, study_id)  # type: ignore[union-attr,arg-type]
    item = services.studies.list_items(ada, study_id)[1].id  # type: ignore[union-attr,arg-type]
    for run, says in ((None, 1), (runs[0].id, 1), (runs[1].id, 0)):
        shown = plain(handler(demo, "on_report")(study_id, "annotators", None, None, ADA, run))
        assert "stay the first run" not in text(shown, "gl-agree-message")
        csv = pd.read_csv(value(shown["gl-export-csv"]))
        assert csv.loc[csv["item_id"] == item, "model_score"].tolist() == [says]
        lines = Path(value(shown["gl-export-jsonl"])).read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["model_score"] for line in lines if json.loads(line)["item_id"] == item] == [says]
        chosen = runs[1] if run == runs[1].id else runs[0]
        assert json.loads(Path(value(shown["gl-export-json"])).read_text(encoding="utf-8"))["judge_run"]["id"] \
            == chosen.id
        page = Markup(Path(value(shown["gl-export-html"])).read_text(encoding="utf-8")).all_text
        assert f"Judge run: \u201c{chosen.name}\u201d (#{chosen.id})" in page
        assert describe_config(chosen.config) in page and "Robustness audit" not in page
    # Adjudicated reference: its exports follow the pick too.
    adjudicated = plain(handler(demo, "on_report")(study_id, "adjudicated", None, None, ADA, runs[1].id))
    csv = pd.read_csv(value(adjudicated["gl-export-csv"]))
    assert csv.loc[csv["item_id"] == item, "model_score"].tolist() == [0]

    # An audit from the Audit panel: the next report's HTML holds its table and says which audit it is.
    flags = [name == "whitespace" for name in PERTURBATIONS]
    audited = plain(handler(demo, "on_audit")(ADA, study_id, None, 4, *flags))
    assert "Audit #1, started" in text(audited, "gl-audit-table")
    shown = plain(handler(demo, "on_report")(study_id, "annotators", None, None, ADA, None))
    page = Markup(Path(value(shown["gl-export-html"])).read_text(encoding="utf-8")).all_text
    assert "Robustness audit" in page and "Audit #1, started" in page and "seed 4" in page and "whitespace" in page


def test_the_runs_panel_explains_what_is_missing_and_refuses_annotators(demo: gr.Blocks, services: Services,
                                                                        study_id: int) -> None:
    none = plain(handler(demo, "on_runs_study")(study_id, None, None, None, request=ADA))
    assert none["gl-agree-judge-run"]["choices"] == [] and none["gl-runs-a"]["value"] is None
    asked = plain(handler(demo, "on_compare_runs")(study_id, None, None, request=ADA))
    assert "Choose two judge runs" in text(asked, "gl-runs-message")
    assert "Choose a study" in text(plain(handler(demo, "on_compare_runs")(None, 1, 1, request=ADA)),
                                    "gl-runs-message")
    two_runs(demo, services, study_id)
    attempts: dict[str, Callable[[], Any]] = {
        "study": lambda: handler(demo, "on_runs_study")(study_id, None, None, None, request=ANN),
        "compare": lambda: handler(demo, "on_compare_runs")(study_id, 1, 2, request=ANN),
        "item": lambda: handler(demo, "on_changed_run_item")(
            [study_id, 1, 2], gr.SelectData(None, {"index": [0, 0], "value": "1", "row_value": ["1"]}), request=ANN),
        "report with a run": lambda: handler(demo, "on_report")(study_id, "annotators", None, None, ANN, 2),
        "grade as a new run": lambda: last(handler(demo, "on_grade_all")(study_id, ANN, True)),
    }
    for name, attempt in attempts.items():
        view = attempt()
        view = view if isinstance(view, dict) and all(isinstance(k, str) for k in view) else plain(view)
        shown = " ".join(Markup(str(value(val) or "")).all_text for val in view.values() if not hasattr(val, "columns"))
        assert "Only an admin" in shown or "Only admins" in shown, (name, shown)
        assert "run verdict" not in shown, name
    assert len(services.studies.runs.list_runs(services.studies.get_user("ada"), study_id)) == 2  # type: ignore[union-attr,arg-type]


def test_every_runs_event_is_private(demo: gr.Blocks) -> None:
    names = {"on_runs_study", "on_compare_runs", "on_changed_run_item"}
    found = {fn.name: fn for fn in demo.fns.values() if fn.name in names}
    assert set(found) == names
    assert all(fn.api_visibility == "private" for fn in found.values())


# --- escaping ------------------------------------------------------------------------------------------


def _view(payload: str) -> JudgmentView:
    return JudgmentView(judgment_id=1, created_at=None, fields={payload: payload}, pass_criteria=payload,
                        rubric=payload, scale=(0, 1), score=1, status="ok", problems=(payload,),
                        reasoning=f"- {payload}", highlights=(payload,), spans=(), ungrounded=(),
                        in_instructions=frozenset(), distribution=None, expected_score=None, confidence=None,
                        raw_output=payload, model=payload)


def _comparison(payload: str) -> str:
    run = {"id": 1, "name": payload, "label": payload}
    metric = {"value": None, "reason": payload}
    return render_run_comparison({"runs": [run, run], "n_items": 0, "left_out": {}, "exact": metric,
                                  "flip_rate": {"value": 0.5, "ci_low": 0.1, "ci_high": 0.9, "n": 3},
                                  "changed": [{"item_id": payload}], "method": payload})


# Pushed through every payload by tests/test_webapp_studies_render.py (which imports them).
RENDERERS: dict[str, Callable[[str], str]] = {
    "run comparison": _comparison,
    "run comparison, names only": lambda p: render_run_comparison({"names": [p, p]}),
    "two verdicts": lambda p: render_two_verdicts(7, p, {p: p}, [(p, 1, p)], [(p, _view(p)), (p, None)]),
}
