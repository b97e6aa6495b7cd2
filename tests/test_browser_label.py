"""The Label tab in headless Chromium: a 0-10 blind study labelled by keyboard (typed numbers reach 10, Enter
presses the highlighted button), a reload on the reveal, My labels, and the item in the first screen of a phone."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from core.grading import GradeRequest, grade
from core.studies import Studies, StudySpec
from tests.fakes import ScriptedJudge
from tests.test_browser import BROWSER_MARKS, TIMEOUT_MS
from tests.webapp_helpers import PASSWORD, answer, launched, make_study_services

sync_api = pytest.importorskip("playwright.sync_api")

LONG = "The answer is right, " + "and every detail of it is supported by the source, " * 6
LEVELS = {0: "Wrong.", 3: "Mostly wrong.", 5: "Half right.", 7: "Mostly right.", 10: LONG.strip()}
RUBRIC = "\n".join(f"{score}: {text}" for score, text in LEVELS.items())
MODEL_SCORE = 7

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Studies]]:
    """Sign-in on, one graded blind study on a 0-10 scale with four items; yields its URL and the studies."""
    judge = ScriptedJudge()
    services = make_study_services(tmp_path_factory.mktemp("browser-label"), judge=judge)
    studies = services.studies
    assert studies is not None
    ada = studies.get_user("ada")
    assert ada is not None
    study = studies.create_study(ada, StudySpec(
        name="Ten levels", description="How right is the answer?", pass_criteria="Is the answer right?",
        rubric=RUBRIC, tags=("QUESTION", "ANSWER"), overlap_target=2, blind=True))
    judge.answer = answer("- Mostly right.", ["right"], MODEL_SCORE)
    for number in range(4):
        fields = {"QUESTION": f"Question {number}?", "ANSWER": f"The right answer {number}."}
        result = grade(judge, GradeRequest(fields, "Is the answer right?", RUBRIC), services.store)
        studies.add_item(ada, study.id, fields, external_id=f"q-{number}", judgment_id=result.judgment_id)
    with launched(services) as url:
        yield url, studies
    services.store.close()


def open_page(browser: sync_api.Browser, url: str, username: str, width: int, height: int) -> sync_api.Page:
    """A new browser signed in as `username` on the Label tab (reached through "More tabs" on a phone)."""
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme="light")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(url)
    page.locator("input[type=text]").fill(username)
    page.locator("input[type=password]").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    sync_api.expect(page.locator("#gl-user")).to_contain_text(f"Signed in as {username}")
    label_tab(page)
    return page


def label_tab(page: sync_api.Page) -> None:
    tab, more = page.get_by_role("tab", name="Label"), page.get_by_role("button", name="More tabs")
    sync_api.expect(tab.or_(more).first).to_be_visible()  # the tab bar has been laid out
    if tab.count() and tab.is_visible():
        tab.click()
    else:
        more.click()
        page.locator(".overflow-dropdown button", has_text="Label").click()


def item_number(page: sync_api.Page) -> int:
    return int(re.search(r"Item #(\d+)", page.locator("#gl-label-item").inner_text()).group(1))  # type: ignore[union-attr]


def label_scores(studies: Studies, username: str) -> list[tuple[int, int, int | None, int]]:
    me = studies.get_user(username)
    assert me is not None
    study = studies.list_studies(me)[0]
    return [(a.item_id, a.score_before_reveal, a.score_after_reveal, a.score)
            for a in studies.my_annotations(me, study.id)]


def test_keyboard_on_ten_levels_a_reload_on_the_reveal_and_my_labels(
    browser: sync_api.Browser, app: tuple[str, Studies]
) -> None:
    url, studies = app
    page = open_page(browser, url, "ann", 1440, 900)
    # The annotator's only study opens by itself; the buttons carry the levels, the summary folds them.
    sync_api.expect(page.locator("#gl-label-fields")).to_contain_text("Question")
    first = item_number(page)
    sync_api.expect(page.locator("#gl-label-summary summary")).to_have_text("What each score means")
    ten = page.locator("#gl-label-score label:has(input[value='10'])")
    sync_api.expect(ten).to_have_attribute("title", f"10 \u2014 {LONG.strip()}")  # the whole level on hover
    folded = ten.locator("span").evaluate("span => [span.scrollHeight, span.clientHeight]")
    assert folded[0] > folded[1] + 10, folded  # shortened on the page until it is chosen
    sync_api.expect(page.locator("#gl-label-score label:has(input[value='3'])")).to_contain_text("Mostly wrong.")
    assert page.locator("#gl-label-score input[type=radio]").count() == 11

    page.locator("#gl-label-item").click()
    page.keyboard.press("1")
    sync_api.expect(page.locator("#gl-label-score input[value='1']")).to_be_checked()
    page.keyboard.press("0")  # "1" then "0": ten
    sync_api.expect(page.locator("#gl-label-score input[value='10']")).to_be_checked()
    unfolded = ten.locator("span").evaluate("span => [span.scrollHeight, span.clientHeight]")
    assert unfolded[0] <= unfolded[1] + 1, unfolded  # the chosen level shows all of its text
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#gl-label-reveal-text")).to_contain_text(f"You gave 10; the model gave {MODEL_SCORE}")
    sync_api.expect(page.locator("#gl-label-keep")).to_have_class(re.compile(r"\bprimary\b"))
    page.keyboard.press("3")
    sync_api.expect(page.locator("#gl-label-change")).to_have_text("Change to 3")
    sync_api.expect(page.locator("#gl-label-change")).to_have_class(re.compile(r"\bprimary\b"))
    sync_api.expect(page.locator("#gl-label-keep")).to_have_class(re.compile(r"\bsecondary\b"))

    # A reload on the reveal: the same study, and the same reveal, come back; nothing was confirmed meanwhile.
    page.reload()
    label_tab(page)
    sync_api.expect(page.locator("#gl-label-reveal-text")).to_contain_text("You gave 10")
    sync_api.expect(page.locator("#gl-label-message")).to_contain_text("not yet kept or changed")
    assert item_number(page) == first and label_scores(studies, "ann") == [(first, 10, None, 10)]
    page.locator("#gl-label-item").click()
    page.keyboard.press("3")
    sync_api.expect(page.locator("#gl-label-change")).to_have_class(re.compile(r"\bprimary\b"))
    page.keyboard.press("Enter")  # presses the highlighted button: Change to 3
    sync_api.expect(page.locator("#gl-label-message")).to_contain_text(f"item #{first} from 10 to 3")

    for score in ("5", "0"):  # two more, each kept with Enter on the reveal
        page.locator("#gl-label-item").click()
        page.keyboard.press(score)
        page.keyboard.press("Enter")
        sync_api.expect(page.locator("#gl-label-reveal-text")).to_contain_text(f"You gave {score};")
        page.keyboard.press("Enter")
        sync_api.expect(page.locator("#gl-label-message")).to_contain_text(f"Kept your score {score}")

    # My labels: every label in one list; the oldest is one click away, and an edit keeps the blind score.
    page.locator("#gl-label-mine-box button.label-wrap").click()
    table = page.locator("#gl-label-mine")
    sync_api.expect(table).to_contain_text("3 (first 10)")
    sync_api.expect(table.locator("[data-testid='cell-2-0']")).to_have_text(str(first))
    table.locator("[data-testid='cell-2-0']").click()
    sync_api.expect(page.locator("#gl-label-submit")).to_have_text("Save changes")
    assert item_number(page) == first
    sync_api.expect(page.locator("#gl-label-score input[value='3']")).to_be_checked()
    page.locator("#gl-label-score label:has(input[value='4'])").click()
    page.locator("#gl-label-submit").click()
    sync_api.expect(page.locator("#gl-label-message")).to_contain_text("Saved your changes")
    assert label_scores(studies, "ann")[0] == (first, 10, 3, 4)
    page.context.close()


def test_on_a_phone_the_item_is_in_the_first_screen(browser: sync_api.Browser, app: tuple[str, Studies]) -> None:
    url, studies = app
    page = open_page(browser, url, "bob", 390, 844)
    fields = page.locator("#gl-label-fields .gl-field-text").first
    sync_api.expect(fields).to_be_visible()
    sync_api.expect(fields).to_be_in_viewport()
    # The item's header and its first field whole on the first screen (the banner, which annotators cannot
    # use, is hidden and the title is compact on a phone), with no scrolling.
    for part in ("#gl-label-item", "#gl-label-fields .gl-field"):
        box = page.locator(part).first.bounding_box()
        assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 844, (part, box)
    assert page.evaluate("window.scrollY") == 0
    sync_api.expect(page.locator("#gl-banner")).to_be_hidden()
    sync_api.expect(page.locator(".gl-header p")).to_be_hidden()
    first = item_number(page)
    page.locator("#gl-label-score label:has(input[value='7'])").click()
    page.locator("#gl-label-submit").click()
    page.locator("#gl-label-keep").click()
    sync_api.expect(page.locator("#gl-label-message")).to_contain_text("Kept your score 7")
    assert item_number(page) != first
    # The next item too: its text is on the screen, not above it where the buttons were.
    sync_api.expect(page.locator("#gl-label-fields .gl-field-text").first).to_be_in_viewport()
    assert label_scores(studies, "bob") == [(first, 7, 7, 7)]
    page.context.close()
