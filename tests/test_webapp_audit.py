"""The Agreement tab's Audit panel (webapp.studies.audit_panel): the flow with the scripted judge, and access."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.audit.perturbations import PERTURBATIONS
from core.studies import StudySpec
from tests.test_webapp_render import Markup
from tests.webapp_helpers import build, by_id, handler, make_study_services, signed_in, value

pytestmark = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*")]

RUBRIC = "0: The MODEL OUTPUT is not faithful to the CONTEXT.\n1: The MODEL OUTPUT is faithful to the CONTEXT."


def _flags(*names: str) -> list[bool]:
    """The Audit panel's checkboxes with these perturbations ticked."""
    return [name in names for name in PERTURBATIONS]


def _text(update: Any) -> str:
    return Markup(value(update) or "").all_text


def test_an_admin_runs_the_audit_and_sees_the_table_and_the_chart(tmp_path: Path) -> None:
    services = make_study_services(tmp_path)
    assert services.studies is not None
    ada = services.studies.get_user("ada")
    assert ada is not None
    study = services.studies.create_study(ada, StudySpec(name="<b>Capitals</b>", pass_criteria="Faithful?",
                                                         rubric=RUBRIC, tags=("CONTEXT", "MODEL OUTPUT")))
    for n in range(5):
        services.studies.add_item(ada, study.id, {"CONTEXT": "Paris is the capital.", "MODEL OUTPUT": f"Paris {n}."})
    demo = build(services)
    audit = handler(demo, "on_audit")

    done = by_id(demo, audit(signed_in("ada"), study.id, 3, 5, *_flags("reverse-rubric", "whitespace")))
    assert "Audited a random sample of 3 of the study's 5 items (seed 5)" in _text(done["gl-audit-message"])
    table = _text(done["gl-audit-table"])
    assert "reverse-rubric" in table and "whitespace" in table and "Flip rate" in table
    figure = value(done["gl-audit-chart"])
    assert figure is not None and list(figure.data[0].x) == ["reverse-rubric", "whitespace"]
    written = json.loads(Path(value(done["gl-audit-json"])).read_text(encoding="utf-8"))
    assert [run["name"] for run in written["runs"]] == ["unperturbed", "reverse-rubric", "whitespace"]

    # Bad input: a clear message, never a traceback.
    for args, words in (((None, None, 0, *_flags("whitespace")), "Choose a study first"),
                        ((study.id, None, 0, *_flags()), "Choose at least one perturbation"),
                        ((study.id, 0, 0, *_flags("whitespace")), "The sample size must be a whole number >= 1")):
        shown = by_id(demo, audit(signed_in("ada"), *args))
        assert words in _text(shown["gl-audit-message"])
    swap = by_id(demo, audit(signed_in("ada"), study.id, None, 0, *_flags("swap-responses")))
    assert "Cannot swap the two responses" in _text(swap["gl-audit-table"])


def test_annotators_and_visitors_are_refused(tmp_path: Path) -> None:
    services = make_study_services(tmp_path)
    assert services.studies is not None
    ada = services.studies.get_user("ada")
    assert ada is not None
    study = services.studies.create_study(ada, StudySpec(name="Capitals", pass_criteria="Faithful?", rubric=RUBRIC,
                                                         tags=("CONTEXT", "MODEL OUTPUT")))
    services.studies.add_item(ada, study.id, {"CONTEXT": "Paris is the capital.", "MODEL OUTPUT": "Paris."})
    demo = build(services)
    judge = services.judge
    before = list(getattr(judge, "prompts", []))
    for who in ("ann", None):
        shown = by_id(demo, handler(demo, "on_audit")(signed_in(who), study.id, None, 0, *_flags("whitespace")))
        assert "gl-message-error" in (value(shown["gl-audit-message"]) or ""), who
        assert value(shown["gl-audit-table"]) in ("", None)
    assert list(getattr(judge, "prompts", [])) == before  # nothing was graded
    events = [fn for fn in demo.fns.values() if fn.name == "on_audit"]
    assert events and all(fn.api_visibility == "private" for fn in events)
