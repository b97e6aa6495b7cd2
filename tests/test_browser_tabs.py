"""Each role sees only the tabs it may use, in headless Chromium (webapp.access): an annotator only Label, and
lands on it (also at 390x844); an annotator allowed to grade also Grade, History and Batch; an admin every tab,
starting on Grade; with sign-in off every tab, as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from core.studies import ADMIN, ANNOTATOR, REVIEWER, StudySpec
from tests.test_browser import BROWSER_MARKS, TIMEOUT_MS
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    PASSWORD,
    launched,
    make_services,
    make_study_services,
)

sync_api = pytest.importorskip("playwright.sync_api")

ALL_TABS = ["Grade", "History", "Batch", "Studies", "Label", "Agreement", "Review", "Manage", "People"]

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def signed_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    services = make_study_services(tmp_path_factory.mktemp("browser-tabs"),
                                   users={"ada": ADMIN, "ann": ANNOTATOR, "cat": ANNOTATOR, "rita": REVIEWER})
    studies = services.studies
    assert studies is not None
    ada = studies.get_user("ada")
    assert ada is not None
    studies.set_grading(ada, "cat", True)
    study = studies.create_study(ada, StudySpec(name="Capitals", pass_criteria=FAITHFULNESS_CRITERIA,
                                                rubric=FAITHFULNESS_RUBRIC, tags=("CONTEXT", "MODEL OUTPUT")))
    studies.add_item(ada, study.id, {"CONTEXT": "France's capital is Paris.", "MODEL OUTPUT": "Paris."})
    with launched(services) as url:
        yield url
    services.store.close()


@pytest.fixture(scope="module")
def open_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    services = make_services(tmp_path_factory.mktemp("browser-tabs-open"))
    with launched(services) as url:
        yield url
    services.store.close()


def page_at(browser: sync_api.Browser, width: int, height: int) -> sync_api.Page:
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme="light")
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def sign_in(page: sync_api.Page, url: str, username: str) -> None:
    page.goto(url)
    page.locator("input[type=text]").fill(username)
    page.locator("input[type=password]").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    sync_api.expect(page.locator("#gl-user")).to_contain_text(f"Signed in as {username}")


def expect_tabs(page: sync_api.Page, shown: list[str], selected: str) -> None:
    """Exactly `shown` in the tab bar (the rest not displayed), `selected` chosen; waits for the page's load."""
    for name in ALL_TABS:
        tab = page.get_by_role("tab", name=name, exact=True)
        if name in shown:
            sync_api.expect(tab).to_be_visible()
        else:
            sync_api.expect(tab).to_be_hidden()
    sync_api.expect(page.get_by_role("tab", name=selected, exact=True)).to_have_attribute("aria-selected", "true")
    # Nothing is folded into Gradio's "More tabs" menu, whose buttons could not be hidden per role.
    sync_api.expect(page.locator("#gl-tabs .overflow-menu:not(.hide)")).to_have_count(0)
    # The judge's banner only for those who may grade.
    banner = sync_api.expect(page.locator("#gl-banner"))
    banner.to_be_visible() if "Grade" in shown else banner.to_be_hidden()


@pytest.mark.parametrize(("username", "shown", "selected"), [
    ("ann", ["Label"], "Label"),
    ("rita", ["Label", "Review"], "Label"),
    ("cat", ["Grade", "History", "Batch", "Label"], "Label"),
    ("ada", ALL_TABS, "Grade"),
])
@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
def test_each_role_sees_only_its_tabs(browser: sync_api.Browser, signed_app: str, username: str,
                                      shown: list[str], selected: str, width: int, height: int) -> None:
    page = page_at(browser, width, height)
    try:
        sign_in(page, signed_app, username)
        expect_tabs(page, shown, selected)
        if selected == "Label":  # the item to label is what the first screen shows
            sync_api.expect(page.locator("#gl-label-fields .gl-field-text").first).to_be_in_viewport()
        page.reload()  # the same after a reload
        sync_api.expect(page.locator("#gl-user")).to_contain_text(f"Signed in as {username}")
        expect_tabs(page, shown, selected)
    finally:
        page.context.close()


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (390, 844)])
def test_without_sign_in_every_tab_shows_as_before(browser: sync_api.Browser, open_app: str, width: int,
                                                   height: int) -> None:
    page = page_at(browser, width, height)
    try:
        page.goto(open_app)
        sync_api.expect(page.locator("#gl-grade")).to_be_visible()
        sync_api.expect(page.get_by_role("tab", name="Grade", exact=True)).to_have_attribute("aria-selected", "true")
        classes = page.locator("#gl-tabs").get_attribute("class") or ""
        assert not re.search(r"gl-hide-", classes), classes
        for name in ("Grade", "History", "Batch"):
            sync_api.expect(page.get_by_role("tab", name=name, exact=True)).to_be_visible()
    finally:
        page.context.close()
