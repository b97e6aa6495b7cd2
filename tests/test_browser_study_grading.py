"""Grade all items in headless Chromium: the tab shows the run's progress line while it runs, Cancel gets
through while the run holds the judge's queue, and the outcome says what was graded and what is left."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.studies import StudySpec
from tests.test_browser import BROWSER_MARKS, TIMEOUT_MS
from tests.test_browser_study import sign_in
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    BatchingJudge,
    launched,
    make_study_services,
)

sync_api = pytest.importorskip("playwright.sync_api")

ITEMS = 12
pytestmark = BROWSER_MARKS


@pytest.fixture
def app(tmp_path: Path) -> Iterator[str]:
    """The app behind sign-in with a 12-item study and a judge that takes a while per batch of 2."""
    services = make_study_services(tmp_path, judge=BatchingJudge(delay=0.8))
    services.api_batch_size = 2
    studies = services.studies
    assert studies is not None
    ada = studies.get_user("ada")
    assert ada is not None
    study = studies.create_study(ada, StudySpec(name="Capitals", pass_criteria=FAITHFULNESS_CRITERIA,
                                                rubric=FAITHFULNESS_RUBRIC, tags=("CONTEXT", "MODEL OUTPUT")))
    for n in range(ITEMS):
        studies.add_item(ada, study.id, {"CONTEXT": f"Fact {n}.", "MODEL OUTPUT": f"Claim {n}."})
    with launched(services) as url:
        yield url
    services.store.close()


def test_grade_all_shows_progress_in_the_tab_and_can_be_cancelled(browser: sync_api.Browser, app: str) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="light")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        sign_in(page, app, "ada")
        page.get_by_role("tab", name="Studies").click()
        page.locator("#gl-import-study input").click()
        page.get_by_role("option", name=re.compile(r"^Capitals")).click()
        page.locator("#gl-grade-all").click()

        status = page.locator("#gl-grade-all-status")
        # The tab's own line, updated after every batch while the run goes on (not a spinner overlay).
        sync_api.expect(status).to_contain_text(re.compile(r"Grading \u201cCapitals\u201d: [2-8] of 12 items"))
        first = status.inner_text()
        sync_api.expect(status).not_to_have_text(first)
        page.locator("#gl-grade-cancel").click()
        outcome = page.locator("#gl-grade-all-message")
        sync_api.expect(outcome).to_contain_text(re.compile(r"Cancelled: \d+ graded \(\d+ of 12 items"))
        sync_api.expect(status).to_be_hidden()
        left = int(re.search(r"(\d+) left", outcome.inner_text()).group(1))  # type: ignore[union-attr]
        assert 0 < left < 12

        page.locator("#gl-grade-all").click()  # grading again picks up the rest
        sync_api.expect(outcome).to_contain_text(f"{left} graded ({left} of {left} items without a judgment",
                                                 timeout=TIMEOUT_MS * 2)
    finally:
        context.close()
