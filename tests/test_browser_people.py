"""A password reset in headless Chromium: admin ada gives ann a one-time password on the People tab; ann signs in
with it, sees only "Choose a new password" (no tabs) until she has chosen one, then has her tabs; after signing
out she signs in with the new password, and the one-time password no longer works.

Also writes the People tab's screenshot (tests.test_browser.screenshot_path: assets/ only on request)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.test_browser import BROWSER_MARKS, TIMEOUT_MS, screenshot_path
from tests.webapp_helpers import PASSWORD, launched, make_study_services
from webapp import Services

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = BROWSER_MARKS
NEW_PASSWORD = "ann's own passphrase"
SCREENSHOT = screenshot_path("screenshot-people.png")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Services]]:
    services = make_study_services(tmp_path_factory.mktemp("browser-people"))
    with launched(services) as url:
        yield url, services
    services.store.close()


def new_page(browser: sync_api.Browser) -> sync_api.Page:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def sign_in(page: sync_api.Page, url: str, username: str, password: str) -> None:
    """Gradio's login form, then the app."""
    page.goto(url)
    page.locator("input[type=text]").fill(username)
    page.locator("input[type=password]").fill(password)
    page.get_by_role("button", name="Login").click()
    sync_api.expect(page.locator("#gl-user")).to_contain_text(f"Signed in as {username}")


def test_an_admin_resets_a_password_and_the_user_chooses_a_new_one(browser: sync_api.Browser,
                                                                   app: tuple[str, Services]) -> None:
    url, services = app
    admin = new_page(browser)
    sign_in(admin, url, "ada", PASSWORD)
    admin.get_by_role("tab", name="People", exact=True).click()
    sync_api.expect(admin.locator("#gl-people-table")).to_contain_text("ann")
    admin.locator("#gl-people-user input").click()
    admin.get_by_role("option", name="ann", exact=True).click()
    sync_api.expect(admin.locator("#gl-people-role input")).to_have_value("annotator")
    admin.locator("#gl-people-reset").click()  # the password box left empty: a one-time password
    shown = admin.locator(".gl-one-time-password")
    sync_api.expect(shown).to_be_visible()
    one_time = shown.inner_text().strip()
    assert len(one_time) >= 12
    sync_api.expect(admin.locator("#gl-people-table")).to_contain_text("must choose a new one")
    admin.screenshot(path=str(SCREENSHOT), full_page=True)
    admin.context.close()

    user = new_page(browser)
    sign_in(user, url, "ann", one_time)
    panel = user.locator("#gl-password-panel")
    sync_api.expect(panel).to_be_visible()
    sync_api.expect(user.get_by_role("tab", name="Label", exact=True)).to_be_hidden()  # no tabs until it is done
    sync_api.expect(user.locator("#gl-tabs")).to_be_hidden()
    sync_api.expect(user.locator("#gl-label-notice")).to_contain_text("must choose a new password first")  # core
    user.locator("#gl-password-current input").fill(one_time)
    user.locator("#gl-password-new input").fill(NEW_PASSWORD)
    user.locator("#gl-password-again input").fill(NEW_PASSWORD + "!")
    user.locator("#gl-password-save").click()
    sync_api.expect(user.locator("#gl-password-message")).to_contain_text("The two new passwords differ")
    user.locator("#gl-password-current input").fill(one_time)
    user.locator("#gl-password-new input").fill(NEW_PASSWORD)
    user.locator("#gl-password-again input").fill(NEW_PASSWORD)
    user.locator("#gl-password-save").click()
    # The page reloads with her tabs: the panel gone, the Label tab hers.
    sync_api.expect(panel).to_be_hidden()
    sync_api.expect(user.get_by_role("tab", name="Label", exact=True)).to_be_visible()
    sync_api.expect(user.get_by_role("tab", name="People", exact=True)).to_be_hidden()
    sync_api.expect(user.locator("#gl-label-notice")).to_be_hidden()  # no "must choose a new password" any more
    user.locator("#gl-logout").click()
    sync_api.expect(user.get_by_role("button", name="Login")).to_be_visible()
    sign_in(user, url, "ann", NEW_PASSWORD)
    sync_api.expect(user.get_by_role("tab", name="Label", exact=True)).to_be_visible()
    sync_api.expect(panel).to_be_hidden()
    user.context.close()
    studies = services.studies
    assert studies is not None
    assert studies.authenticate("ann", one_time) is None
    signed = studies.authenticate("ann", NEW_PASSWORD)
    assert signed is not None and not signed.must_change_password
