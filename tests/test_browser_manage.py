"""The Manage tab in headless Chromium: admin ada writes a study's guidelines (Markdown with hostile HTML in it) and
saves them, and opens an item that two annotators disagree on; annotator ann then opens the study on the Label
tab and reads the guidelines rendered, the HTML shown as text and never run.

Also writes the README's Manage tab screenshot (tests.test_browser.screenshot_path: assets/ only on request).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from core.studies import StudySpec
from tests.test_browser import BROWSER_MARKS, TIMEOUT_MS, screenshot_path
from tests.test_browser_study import sign_in
from tests.webapp_helpers import FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, XSS_PAYLOADS, launched, make_study_services

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = BROWSER_MARKS
SCREENSHOT = screenshot_path("screenshot-manage.png")

GUIDELINES = "\n\n".join([
    "## Before you label",
    "Read the CONTEXT first, then mark the **unsupported claim** as evidence.",
    XSS_PAYLOADS[0], XSS_PAYLOADS[1], XSS_PAYLOADS[7],
])


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    services = make_study_services(tmp_path_factory.mktemp("browser-manage"))
    studies = services.studies
    assert studies is not None
    ada = studies.get_user("ada")
    assert ada is not None
    study = studies.create_study(ada, StudySpec(name="Capitals", pass_criteria=FAITHFULNESS_CRITERIA,
                                                rubric=FAITHFULNESS_RUBRIC, tags=("CONTEXT", "MODEL OUTPUT"),
                                                overlap_target=2, blind=True))
    items = [studies.add_item(ada, study.id, {"CONTEXT": context, "MODEL OUTPUT": output}) for context, output in (
        ("Italy's capital is Rome.", "The capital of Italy is Milan."),
        ("France's capital is Paris.", "Paris."), ("Spain's capital is Madrid.", "Madrid."))]
    for user, score, comment in (("ann", 0, "Milan is not what the context says."), ("bob", 1, "")):
        annotator = studies.get_user(user)
        assert annotator is not None
        studies.submit(annotator, items[0].id, score, comment=comment, seconds=14,
                       spans=[{"field": "MODEL OUTPUT", "start": 24, "end": 29}] if score == 0 else ())
    with launched(services) as address:
        yield address
    services.store.close()


def new_page(browser: sync_api.Browser) -> sync_api.Page:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    return page


def test_an_admin_writes_guidelines_and_an_annotator_reads_them_rendered_and_inert(browser: sync_api.Browser,
                                                                                   url: str) -> None:
    admin = new_page(browser)
    try:
        sign_in(admin, url, "ada")
        admin.get_by_role("tab", name="Manage", exact=True).click()
        admin.locator("#gl-manage-study input").click()
        admin.get_by_role("option", name=re.compile(r"^Capitals")).click()
        sync_api.expect(admin.locator("#gl-manage-name textarea, #gl-manage-name input").first).to_have_value(
            "Capitals")
        admin.locator("#gl-manage-guidelines textarea").fill(GUIDELINES)
        admin.locator("#gl-manage-save").click()
        sync_api.expect(admin.locator("#gl-manage-message")).to_contain_text("Saved the settings of 'Capitals'")
        # The item the two annotators disagree on, found by its state, opened with both labels.
        admin.locator("#gl-manage-state input").click()
        admin.get_by_role("option", name="humans disagree").click()
        admin.locator("#gl-manage-find").click()
        first = admin.locator("#gl-manage-items [data-testid='cell-0-5']")
        sync_api.expect(first).to_contain_text("humans disagree")
        sync_api.expect(admin.locator("#gl-manage-items [data-testid='cell-1-0']")).to_have_count(0)
        admin.locator("#gl-manage-items [data-testid='cell-0-0']").click()
        item = admin.locator("#gl-manage-item")
        sync_api.expect(item).to_contain_text("Milan is not what the context says.")
        sync_api.expect(item.locator(".gl-evidence-list")).to_contain_text("Milan")
        sync_api.expect(admin.locator("#gl-manage-progress")).to_contain_text("1 / 3")
        admin.screenshot(path=str(SCREENSHOT), full_page=True)
        assert admin.evaluate("window.__xss") is None and admin.dialogs == []  # type: ignore[attr-defined]
    finally:
        admin.context.close()

    annotator = new_page(browser)
    try:
        sign_in(annotator, url, "ann")
        sync_api.expect(annotator.get_by_role("tab", name="Manage", exact=True)).to_be_hidden()
        annotator.locator("#gl-label-study input").click()
        annotator.get_by_role("option", name=re.compile(r"^Capitals")).click()
        guidelines = annotator.locator("#gl-label-summary .gl-guidelines")
        sync_api.expect(guidelines.locator("h2")).to_have_text("Before you label")
        sync_api.expect(guidelines.locator("strong")).to_have_text("unsupported claim")
        for payload in (XSS_PAYLOADS[0], XSS_PAYLOADS[1]):  # the HTML is there as text ...
            sync_api.expect(guidelines).to_contain_text(payload)
        # ... and none of it became an element: no script, image or link to javascript:.
        assert guidelines.locator("script, img, a[href^='javascript']").count() == 0
        annotator.wait_for_selector("#gl-label-fields .gl-field-text")
        assert annotator.evaluate("window.__xss") is None and annotator.dialogs == []  # type: ignore[attr-defined]
    finally:
        annotator.context.close()
