"""Review and adjudication in headless Chromium: reviewer rita signs in, sees Label and Review (not Agreement),
opens two items from the triage table and records their adjudicated labels; then the admin's Agreement tab,
with the adjudicated labels as the reference, shows the numbers worked out by hand in tests.review_data.

Also writes the README's Review-tab screenshot (tests.test_browser.screenshot_path: assets/ only on request)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sklearn.metrics import cohen_kappa_score

from core.studies import ADMIN, ANNOTATOR, REVIEWER
from core.studies.review import Reviews
from tests.review_data import ADJUDICATED, BY_JUDGE, JUDGE, make_review_study
from tests.test_browser import BROWSER_MARKS, TIMEOUT_MS, screenshot_path
from tests.webapp_helpers import PASSWORD, launched, make_study_services

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = BROWSER_MARKS
USERS = {"ada": ADMIN, "rita": REVIEWER, "ann": ANNOTATOR, "bob": ANNOTATOR}
SCREENSHOT = screenshot_path("screenshot-review.png")  # the README's, written to assets/ only on request
IN_THE_BROWSER = (5, 6)  # positions (1-based, tests.review_data) adjudicated through the page; 1-4 beforehand


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[int]]]:
    services = make_study_services(tmp_path_factory.mktemp("browser-review"), users=USERS)
    studies = services.studies
    assert studies is not None
    people = {name: studies.get_user(name) for name in USERS}
    made = make_review_study(studies, services.store, people["ada"], people["ann"], people["bob"])  # type: ignore[arg-type]
    reviews = Reviews(services.store)
    for position in range(1, 5):
        reviews.adjudicate(people["rita"], made.item_ids[position - 1], ADJUDICATED[position - 1], "")  # type: ignore[arg-type]
    with launched(services) as url:
        yield url, made.item_ids
    services.store.close()


def sign_in(page: sync_api.Page, url: str, username: str) -> None:
    page.goto(url)
    page.locator("input[type=text]").fill(username)
    page.locator("input[type=password]").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    sync_api.expect(page.locator("#gl-user")).to_contain_text(f"Signed in as {username}")


def pick_study(page: sync_api.Page, picker: str) -> None:
    page.locator(f"#{picker} input").click()
    page.get_by_role("option", name=re.compile(r"^Helpfulness")).click()


def test_a_reviewer_adjudicates_two_items_and_the_report_shows_the_hand_computed_numbers(
        browser: sync_api.Browser, app: tuple[str, list[int]]) -> None:
    url, item_ids = app
    reviewer = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="light")
    reviewer.set_default_timeout(TIMEOUT_MS)
    try:
        page = reviewer.new_page()
        sign_in(page, url, "rita")
        sync_api.expect(page.get_by_role("tab", name="Review")).to_be_visible()
        sync_api.expect(page.get_by_role("tab", name="Agreement")).to_be_hidden()
        page.get_by_role("tab", name="Review").click()
        pick_study(page, "gl-review-study")
        page.locator("#gl-review-run").click()
        table = page.locator("#gl-review-table")
        last = len(BY_JUDGE) - 1
        sync_api.expect(table.locator(f"[data-testid='cell-{last}-0']")).to_be_visible()
        order = [table.locator(f"[data-testid='cell-{row}-0']").inner_text().strip() for row in range(len(BY_JUDGE))]
        assert order == [str(item_ids[n - 1]) for n in BY_JUDGE]  # human vs judge: confident and wrong first
        for position in IN_THE_BROWSER:
            item_id, score = item_ids[position - 1], ADJUDICATED[position - 1]
            row = [table.locator(f"[data-testid='cell-{r}-0']").inner_text().strip()
                   for r in range(len(BY_JUDGE))].index(str(item_id))
            table.locator(f"[data-testid='cell-{row}-0']").click()
            sync_api.expect(page.locator("#gl-review-item")).to_contain_text(f"Item #{item_id}")
            sync_api.expect(page.locator("#gl-review-item")).to_contain_text(f"Judged item {position}.")
            sync_api.expect(page.locator("#gl-review-item")).to_contain_text("Not adjudicated yet.")
            page.locator(f"#gl-review-score label:has(input[value='{score}'])").click()
            page.locator("#gl-review-note textarea").fill(f"Level {score} by the rubric.")
            page.locator("#gl-review-save").click()
            sync_api.expect(page.locator("#gl-review-saved")).to_contain_text(
                f"Recorded {score} as the adjudicated label of item #{item_id}")
            sync_api.expect(page.locator("#gl-review-item")).to_contain_text(f"Level {score} by the rubric.")
            sync_api.expect(page.locator("#gl-review-item")).to_contain_text(f"{score} by rita")
        assert page.evaluate("window.__xss") is None
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert SCREENSHOT.stat().st_size > 20_000
    finally:
        reviewer.close()

    admin = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="light")
    admin.set_default_timeout(TIMEOUT_MS)
    try:
        page = admin.new_page()
        sign_in(page, url, "ada")
        page.get_by_role("tab", name="Agreement").click()
        pick_study(page, "gl-agree-study")
        page.locator("#gl-agree-reference label:has(input[value='adjudicated'])").click()
        page.locator("#gl-agree-run").click()
        metrics = page.locator("#gl-agree-metrics")
        sync_api.expect(metrics).to_contain_text("Reference: adjudicated labels on 6 of 7 items.")
        judge = metrics.locator(".gl-metrics", has_text="Judge vs adjudicated")
        sync_api.expect(judge).to_contain_text("6 items")
        # By hand: the judge 1 2 5 4 5 4 vs the adjudicated 1 3 3 4 5 2 agree on items 1, 4, 5: 3 of 6.
        sync_api.expect(judge.locator("tr", has_text="Exact agreement").locator("td").first).to_have_text("0.500")
        sync_api.expect(judge.locator("tr", has_text="Within \u00b11").locator("td").first).to_have_text("0.667")
        kappa = cohen_kappa_score(JUDGE[:6], ADJUDICATED, labels=[1, 2, 3, 4, 5], weights="quadratic")
        sync_api.expect(judge.locator("tr", has_text="Weighted \u03ba").locator("td").first).to_have_text(
            f"{kappa:.3f}")
        ann = metrics.locator(".gl-metrics", has_text="ann vs adjudicated")
        sync_api.expect(ann.locator("tr", has_text="Exact agreement").locator("td").first).to_have_text("0.833")
    finally:
        admin.close()
