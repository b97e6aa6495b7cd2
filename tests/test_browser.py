"""The real page in headless Chromium: pick a preset, load its example, grade, see highlights; no XSS.

Also saves screenshot-grade.png (used in the README) from the graded example: into assets/ only with
GLIDER_UPDATE_SCREENSHOTS=1 (see screenshot_path).
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.judge.base import StreamEvent
from core.store import Store
from tests.fakes import ScriptedJudge
from tests.webapp_helpers import BRIDGE_ANSWER, BRIDGE_DISTRIBUTION, XSS_PAYLOADS, answer, launched, make_services

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
# CI installs Chromium (.ci/run), so there a missing browser fails loudly instead of skipping.
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"), reason="needs Chromium at /usr/bin/chromium"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ASSETS = Path(__file__).resolve().parent.parent / "assets"
UPDATE_SCREENSHOTS = "GLIDER_UPDATE_SCREENSHOTS"


def screenshot_path(name: str) -> Path:
    """Where a browser test saves the README screenshot `name`: assets/ (tracked) only with
    GLIDER_UPDATE_SCREENSHOTS=1, else a temporary folder, so running the tests never rewrites tracked files."""
    if os.environ.get(UPDATE_SCREENSHOTS) == "1":
        return ASSETS / name
    folder = Path(tempfile.gettempdir()) / "glider-studio-screenshots"
    folder.mkdir(exist_ok=True)
    return folder / name


SCREENSHOT = screenshot_path("screenshot-grade.png")
TIMEOUT_MS = 15_000

# Every browser test module's marks. Gradio's queue analytics use pandas options and arguments that pandas 3
# deprecates (raised in the server thread).
BROWSER_MARKS = [
    pytest.mark.browser,
    NEEDS_CHROMIUM,
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
pytestmark = BROWSER_MARKS


class HeldJudge(ScriptedJudge):
    """A scripted judge that, while `release` is clear, stops after its first streamed piece until it is set:
    a grade that is still running for as long as a test needs (a real judge on a CPU takes minutes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.release.set()

    def stream(self, prompt: str, **kwargs: Any) -> Iterator[StreamEvent]:
        for number, event in enumerate(super().stream(prompt, **kwargs)):
            yield event
            if number == 0:
                self.release.wait(timeout=60)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ScriptedJudge, Store]]:
    judge = HeldJudge(BRIDGE_ANSWER, distribution=BRIDGE_DISTRIBUTION)
    services = make_services(tmp_path_factory.mktemp("browser"), judge=judge)
    with launched(services) as url:
        yield url, judge, services.store
    services.store.close()




@pytest.fixture
def page(browser: sync_api.Browser, app: tuple[str, ScriptedJudge, Store]) -> Iterator[sync_api.Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app[0])
    page.wait_for_selector("#gl-grade")
    yield page
    context.close()


def _starts(prefix: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(prefix))


def choose_preset(page: sync_api.Page, name: str) -> None:
    page.locator("#gl-preset input").click()
    page.get_by_role("option", name=name).click()


def field(page: sync_api.Page, elem_id: str) -> sync_api.Locator:
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def grade(page: sync_api.Page) -> None:
    page.locator("#gl-grade").click()
    page.wait_for_selector("#gl-result-card .gl-score")


def test_grade_a_preset_example_and_save_the_screenshot(
    page: sync_api.Page, app: tuple[str, ScriptedJudge, Store]
) -> None:
    _, judge, store = app
    judge.answer, judge.distribution = BRIDGE_ANSWER, BRIDGE_DISTRIBUTION

    choose_preset(page, "Correctness against gold answer (1-3)")
    sync_api.expect(field(page, "gl-rubric")).to_have_value(_starts("1: Incorrect"))
    sync_api.expect(field(page, "gl-scale")).to_have_value(_starts("1\u20133"))
    choose_preset(page, "Faithfulness to context (0-1)")
    sync_api.expect(field(page, "gl-scale")).to_have_value(_starts("0\u20131"))
    page.locator("#gl-load-example").click()
    sync_api.expect(field(page, "gl-field-0")).to_have_value(_starts("The Hartwell Bridge opened"))
    sync_api.expect(field(page, "gl-field-3")).to_have_value("")

    grade(page)
    marks = page.locator("#gl-result-fields mark.gl-hl")
    sync_api.expect(marks.first).to_be_visible()
    assert "designed by the Danish engineering firm Holm & Bech" in marks.all_inner_texts()
    sync_api.expect(page.locator("#gl-result-card .gl-score")).to_have_text("0")
    sync_api.expect(page.locator("#gl-result-card")).to_contain_text("83%")
    sync_api.expect(page.locator("#gl-result-plot .js-plotly-plot").first).to_be_visible()
    sync_api.expect(page.locator("#gl-result-reasoning li")).to_have_count(4)
    assert len(store.list_judgments()) >= 1

    page.wait_for_timeout(400)  # let the plot finish its entry animation
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 20_000


def test_script_payloads_render_as_text_and_never_run(
    page: sync_api.Page, app: tuple[str, ScriptedJudge, Store]
) -> None:
    _, judge, _ = app
    img, script = XSS_PAYLOADS[1], XSS_PAYLOADS[0]
    reasoning = f"- The output contains {img} and {script}.\n- {XSS_PAYLOADS[2]}"
    judge.answer = answer(reasoning, [img, script, 'x" onmouseover="window.__xss=1'], 0)
    judge.distribution = {0: 0.6, 1: 0.4}

    output = f"Before {img} middle {script} after."
    field(page, "gl-field-2").fill(output)
    field(page, "gl-field-0").fill(f"Context with {XSS_PAYLOADS[2]} and {XSS_PAYLOADS[3]}")
    grade(page)
    page.wait_for_timeout(500)  # an injected <img src=x> would have fired onerror by now

    assert page.evaluate("window.__xss") is None
    result = page.locator("#gl-result")
    assert result.locator("img, script").count() == 0
    fields_text = page.locator("#gl-result-fields").inner_text()
    assert img in fields_text and script in fields_text
    assert page.locator("#gl-result-fields mark.gl-hl").all_inner_texts() == [img, script]
    reasoning = page.locator("#gl-result-reasoning").inner_text()
    assert img in reasoning and script in reasoning and XSS_PAYLOADS[2] in reasoning
    sync_api.expect(page.locator("#gl-result-ungrounded")).to_contain_text('x" onmouseover="window.__xss=1')

    page.get_by_role("tab", name="History").click()
    cell = page.locator("#gl-history [data-testid='cell-0-5']")
    sync_api.expect(cell).to_contain_text("Before <img src=x")
    cell.click()
    sync_api.expect(page.locator("#gl-history-result-fields mark.gl-hl").first).to_be_visible()
    page.wait_for_timeout(300)
    assert page.locator("#gl-history, #gl-history-result").locator("img, script").count() == 0
    assert img in page.locator("#gl-history-result-fields").inner_text()
    assert page.evaluate("window.__xss") is None


def test_an_unreadable_rubric_is_reported_in_the_page(page: sync_api.Page) -> None:
    field(page, "gl-field-2").fill("Some answer.")
    field(page, "gl-rubric").fill("Grade it fairly.")
    sync_api.expect(field(page, "gl-scale")).to_have_value(_starts("The rubric names no scores"))
    page.locator("#gl-grade").click()
    message = page.locator("#gl-message .gl-message-error")
    sync_api.expect(message).to_contain_text("The rubric names no scores")
    assert page.locator("#gl-result").is_hidden()


def _in_view(page: sync_api.Page, selector: str) -> None:
    """Wait until the element's top edge is inside the viewport (the page scrolls it there by itself)."""
    page.wait_for_function(
        """(selector) => {
             const el = document.querySelector(selector);
             if (!el || el.offsetParent === null) { return false; }
             const box = el.getBoundingClientRect();
             return box.height > 0 && box.top >= 0 && box.top < window.innerHeight - 40;
           }""",
        arg=selector,
    )


def test_grade_shows_it_is_working_and_a_second_click_queues_nothing(
    browser: sync_api.Browser, app: tuple[str, ScriptedJudge, Store]
) -> None:
    """At 1440x900 the Grade button is below the fold of a long form and the live box far above it."""
    url, judge, store = app
    assert isinstance(judge, HeldJudge)
    judge.answer, judge.distribution = BRIDGE_ANSWER, BRIDGE_DISTRIBUTION
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    choose_preset(page, "Faithfulness to context (0-1)")
    page.locator("#gl-load-example").click()
    sync_api.expect(field(page, "gl-field-0")).to_have_value(_starts("The Hartwell Bridge opened"))
    button = page.locator("#gl-grade")
    button.scroll_into_view_if_needed()
    assert page.locator("#gl-preset").bounding_box()["y"] < 0, "the top of both columns starts out of view"
    prompts, judgments = len(judge.prompts), len(store.list_judgments())

    judge.release.clear()
    try:
        button.dblclick()  # the second click of a double-click must not grade again
        sync_api.expect(button).to_be_disabled()
        sync_api.expect(button).to_have_text("Grading\u2026")
        sync_api.expect(page.locator("#gl-stream textarea")).to_have_value(_starts("<reasoning>"))
        _in_view(page, "#gl-stream")
        sync_api.expect(page.locator("#gl-message")).to_contain_text("Grading")
        # A page whose button was re-enabled behind Gradio's back (a stale tab, a script) is refused by the server.
        page.evaluate("document.querySelector('#gl-grade').disabled = false")
        button.click()
        sync_api.expect(page.locator("#gl-grade-note")).to_contain_text("A grade is already running")
        sync_api.expect(page.locator("#gl-stream")).not_to_contain_text("Error")  # the running grade is untouched
        assert len(judge.prompts) == prompts + 1
    finally:
        judge.release.set()

    sync_api.expect(page.locator("#gl-result-card .gl-score")).to_have_text("0")
    _in_view(page, "#gl-result")
    sync_api.expect(button).to_be_enabled()
    sync_api.expect(button).to_have_text("Grade")
    sync_api.expect(page.locator("#gl-grade-note")).to_be_hidden()
    page.wait_for_timeout(500)  # a queued duplicate would have reached the judge by now
    assert len(judge.prompts) == prompts + 1 and len(store.list_judgments()) == judgments + 1

    # Ready again: the next Grade is a new grade; a refused one (no MODEL OUTPUT) frees the button too.
    field(page, "gl-field-2").fill("")
    button.scroll_into_view_if_needed()
    button.click()
    sync_api.expect(page.locator("#gl-message .gl-message-error")).to_contain_text("The MODEL OUTPUT field is empty")
    _in_view(page, "#gl-message")
    sync_api.expect(button).to_be_enabled()
    assert len(judge.prompts) == prompts + 1
    context.close()
