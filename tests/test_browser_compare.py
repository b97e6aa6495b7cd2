"""The Grade tab's "Compare two responses" mode in headless Chromium: switch mode, paste two responses (one a
script payload), compare, and see the verdict, each response's highlights and both orders' verdicts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pair_fakes import CRITERIA, LYON, PARIS, PairJudge, prefers
from tests.test_browser import BROWSER_MARKS, TIMEOUT_MS, field
from tests.webapp_helpers import XSS_PAYLOADS, launched, make_services

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    services = make_services(tmp_path_factory.mktemp("browser-compare"), judge=PairJudge(prefers(PARIS)))
    with launched(services) as url:
        yield url
    services.store.close()


def test_compare_two_responses_and_see_both_orders(browser: sync_api.Browser, app_url: str) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(app_url)
    page.wait_for_selector("#gl-grade")
    sync_api.expect(page.locator("#gl-compare")).to_be_hidden()
    page.locator("#gl-grade-mode").get_by_text("Compare two responses").click()
    sync_api.expect(page.locator("#gl-compare")).to_be_visible()
    sync_api.expect(page.locator("#gl-grade")).to_be_hidden()
    response_b = f"{LYON} {XSS_PAYLOADS[1]}"
    field(page, "gl-compare-a").fill(PARIS)
    field(page, "gl-compare-b").fill(response_b)
    field(page, "gl-compare-criteria").fill(CRITERIA)
    page.locator("#gl-compare-run").click()
    verdict = page.locator("#gl-compare-verdict")
    sync_api.expect(verdict).to_contain_text("Response A is better")
    sync_api.expect(verdict).to_contain_text("Both orders prefer A")
    sync_api.expect(page.locator("#gl-compare-shown-a mark.gl-hl")).to_have_text(PARIS)
    sync_api.expect(page.locator("#gl-compare-shown-b")).to_contain_text(response_b)  # the payload as text
    page.locator("#gl-compare-orders-box").get_by_text("Each order's reasoning").click()
    orders = page.locator("#gl-compare-orders")
    sync_api.expect(orders).to_contain_text("Order A,B: A as MODEL OUTPUT 1")
    sync_api.expect(orders).to_contain_text("Order B,A: B as MODEL OUTPUT 1")
    sync_api.expect(orders.locator(".gl-pair-order")).to_have_count(2)
    assert orders.inner_text().count("preferred A") == 2
    assert page.evaluate("() => window.__xss") is None and dialogs == []
    # Back to one response: the single form is there as it was.
    page.locator("#gl-grade-mode").get_by_text("One response").click()
    sync_api.expect(page.locator("#gl-grade")).to_be_visible()
    context.close()
