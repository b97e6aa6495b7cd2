"""The Agreement tab on a pairwise study in headless Chromium: two annotators have chosen between the responses
(their sides randomised), the scripted pair judge graded both orders; the admin computes the report and sees the
pairwise sections with "Position consistency", the position chart, and the HTML report download holding them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.studies import ADMIN
from core.studies.grading import grade_study
from tests.pair_fakes import PairJudge
from tests.test_browser import BROWSER_MARKS, TIMEOUT_MS
from tests.test_browser_study import sign_in
from tests.test_pair_reports import kind_first_or_slot_1, seed_study
from tests.webapp_helpers import launched, make_study_services

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    services = make_study_services(tmp_path_factory.mktemp("browser-pair-agreement"), users={"ada": ADMIN})
    studies = services.studies
    assert studies is not None
    ada = studies.get_user("ada")
    assert ada is not None
    study_id, _ = seed_study(studies, ada)
    grade_study(studies, ada, study_id, PairJudge(kind_first_or_slot_1), services.store)
    with launched(services) as address:
        yield address
    services.store.close()


def test_the_admin_sees_position_consistency(browser: sync_api.Browser, url: str) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="light",
                                  accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        sign_in(page, url, "ada")
        page.get_by_role("tab", name="Agreement").click()
        page.locator("#gl-agree-study input").click()
        page.get_by_role("option", name=re.compile(r"^Kindness")).click()
        page.locator("#gl-agree-run").click()

        metrics = page.locator("#gl-agree-metrics")
        sync_api.expect(metrics.locator("h3", has_text="Position consistency")).to_be_visible()
        sync_api.expect(metrics).to_contain_text("Accuracy vs the human majority")
        sync_api.expect(metrics).to_contain_text("Position bias (slot 1 when inconsistent)")
        sync_api.expect(page.locator("#gl-agree-decision")).to_contain_text("labels are choices")
        sync_api.expect(page.locator("#gl-agree-heatmap .gtitle")).to_contain_text("Position consistency")

        with page.expect_download() as download:
            page.locator("#gl-export-html").click()
        document = Path(download.value.path()).read_text(encoding="utf-8")
        assert "Position consistency" in document and "Kindness &lt;b&gt;" in document
        assert page.evaluate("window.__xss") is None
    finally:
        context.close()
