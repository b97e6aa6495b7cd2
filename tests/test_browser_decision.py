"""The Agreement tab's decision panel in headless Chromium: for a seeded study (40 items, three annotators, a
judge whose confidence tracks whether it is right), the admin computes the report and sees the alt-test's
per-annotator table and decision, the judge-vs-people reading, the reliability chart and the auto-accept
threshold; the downloaded JSON report holds the same blocks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.grading import GradeRequest, grade
from core.studies import ADMIN, ANNOTATOR, StudySpec
from tests.fakes import ScriptedJudge
from tests.review_data import CRITERIA, RUBRIC_1_5
from tests.test_browser import BROWSER_MARKS, TIMEOUT_MS
from tests.webapp_helpers import PASSWORD, answer, launched, make_study_services

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = BROWSER_MARKS
ANNOTATORS = ("ann", "bob", "cy")
USERS = {"ada": ADMIN, **{name: ANNOTATOR for name in ANNOTATORS}}
N_ITEMS = 40


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    services = make_study_services(tmp_path_factory.mktemp("browser-decision"), users=USERS)
    studies = services.studies
    assert studies is not None
    ada = studies.get_user("ada")
    assert ada is not None
    study = studies.create_study(ada, StudySpec(name="Decision", pass_criteria=CRITERIA, rubric=RUBRIC_1_5,
                                                tags=("USER INPUT", "MODEL OUTPUT"), overlap_target=3, blind=False))
    rng = np.random.default_rng(17)
    for n in range(N_ITEMS):
        truth = int(rng.integers(1, 6))
        right = n % 4 != 0  # the judge misses one item in four, and is unsure exactly there
        score = truth if right else (truth % 5) + 1
        confidence = 0.95 if right else 0.55
        other = score - 1 if score > 1 else score + 1
        judge = ScriptedJudge(answer(f"- Judged item {n}.", [f"Answer {n}."], score),
                              distribution={score: confidence, other: round(1 - confidence, 6)})
        fields = {"USER INPUT": f"Question {n}?", "MODEL OUTPUT": f"Answer {n}."}
        result = grade(judge, GradeRequest(fields, CRITERIA, RUBRIC_1_5), services.store)
        item = studies.add_item(ada, study.id, fields, judgment_id=result.judgment_id)
        for person, name in enumerate(ANNOTATORS):
            annotator = studies.get_user(name)
            assert annotator is not None
            human = truth if (n + person) % 7 else min(5, truth + 1)  # people disagree now and then
            studies.submit(annotator, item.id, human)
    with launched(services) as address:
        yield address
    services.store.close()



def test_the_admin_sees_the_alt_test_the_reliability_chart_and_the_threshold(
        browser: sync_api.Browser, url: str) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="light",
                                  accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(url)
        page.locator("input[type=text]").fill("ada")
        page.locator("input[type=password]").fill(PASSWORD)
        page.get_by_role("button", name="Login").click()
        sync_api.expect(page.locator("#gl-user")).to_contain_text("Signed in as ada")
        page.get_by_role("tab", name="Agreement").click()
        page.locator("#gl-agree-study input").click()
        page.get_by_role("option", name=re.compile(r"^Decision")).click()
        page.locator("#gl-agree-target input").fill("0.8")
        page.locator("#gl-agree-run").click()

        decision = page.locator("#gl-agree-decision")
        sync_api.expect(decision).to_contain_text("Can the judge replace an annotator? (alt-test)")
        sync_api.expect(decision).to_contain_text("Winning rate ω")
        alt_rows = decision.locator(".gl-decision-alt-test tbody tr")
        sync_api.expect(alt_rows).to_have_count(len(ANNOTATORS))
        assert sorted(alt_rows.locator("th").all_inner_texts()) == sorted(ANNOTATORS)
        sync_api.expect(decision.locator(".gl-decision-judge-vs-people")).to_contain_text("ann")
        sync_api.expect(decision).to_contain_text("For a target agreement of 80%: accept the judge's score")
        sync_api.expect(page.locator("#gl-agree-reliability .js-plotly-plot")).to_be_visible()
        sync_api.expect(page.locator("#gl-agree-reliability .gtitle")).to_contain_text("Reliability")

        with page.expect_download() as download:
            page.locator("#gl-export-json").click()
        report = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
        assert report["calibration"]["target"] == 0.8 and report["calibration"]["threshold"]["found"]
        assert report["calibration"]["threshold"]["value"] == 0.95
        assert report["alt_test"]["decision"] in decision.inner_text()
        assert [row["annotator"] for row in report["alt_test"]["annotators"]] == list(ANNOTATORS)
        assert page.evaluate("window.__xss") is None
    finally:
        context.close()
