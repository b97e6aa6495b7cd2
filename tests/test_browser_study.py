"""A blind study in headless Chromium: two annotators sign in through Gradio's login form and label it (by
mouse and by keyboard), one changes a score at the reveal and the other corrects a label later through "My
labels"; then the admin opens the Agreement tab and sees the headline computed on the scores given BEFORE the
reveal, the post-reveal view and the anchoring summary beside it, and the charts.

Also writes the README's report screenshot (tests.test_browser.screenshot_path: assets/ only on request).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.grading import GradeRequest, grade
from core.studies import StudySpec
from tests.fakes import ScriptedJudge
from tests.test_browser import BROWSER_MARKS, TIMEOUT_MS, screenshot_path
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    PASSWORD,
    XSS_PAYLOADS,
    answer,
    launched,
    make_study_services,
)

sync_api = pytest.importorskip("playwright.sync_api")

SCREENSHOT = screenshot_path("screenshot-report.png")
REASONING = "The MODEL OUTPUT names the capital that the CONTEXT gives."
ITEMS = [
    ("France's capital is Paris.", "The capital of France is Paris."),
    ("Italy's capital is Rome.", "The capital of Italy is Milan."),
    ("Spain's capital is Madrid.", "Madrid is the capital of Spain."),
    ("Germany's capital is Berlin.", f"Germany's capital is Bonn. {XSS_PAYLOADS[1]}"),
    ("Austria's capital is Vienna.", "Vienna is the capital of Austria."),
]
MODEL_SCORES = [1, 0, 1, 1, 1]  # the model misses the Bonn error on item 4
SCORES = {"ann": [1, 0, 1, 0, 1], "bob": [1, 0, 0, 0, 1]}  # keyed by item order as added; the blind scores
CHANGED_AT_REVEAL = {"ann": {3: 1}}  # ann sees the model's 1 on the Bonn item and moves her 0 to it
EDITED_LATER = {"bob": {2: 1}}  # bob reopens the Madrid item from "My labels" after finishing and makes it 1

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, int]]]:
    """The app behind sign-in with a graded five-item blind study; yields its URL and item id -> position."""
    judge = ScriptedJudge()
    services = make_study_services(tmp_path_factory.mktemp("browser-study"), judge=judge)
    studies = services.studies
    assert studies is not None
    ada = studies.get_user("ada")
    assert ada is not None
    study = studies.create_study(ada, StudySpec(
        name="Capitals", description="Is the capital in the output the one the context gives?",
        pass_criteria=FAITHFULNESS_CRITERIA, rubric=FAITHFULNESS_RUBRIC, tags=("CONTEXT", "MODEL OUTPUT"),
        overlap_target=2, blind=True))
    positions: dict[int, int] = {}
    for position, ((context, output), score) in enumerate(zip(ITEMS, MODEL_SCORES, strict=True)):
        fields = {"CONTEXT": context, "MODEL OUTPUT": output}
        judge.answer = answer(f"- {REASONING}", ["capital"], score)
        result = grade(judge, GradeRequest(fields, FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC), services.store)
        item = studies.add_item(ada, study.id, fields, external_id=f"cap-{position + 1}",
                                judgment_id=result.judgment_id)
        positions[item.id] = position
    with launched(services) as url:
        yield url, positions
    services.store.close()



@pytest.fixture
def context(browser: sync_api.Browser) -> Iterator[sync_api.BrowserContext]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def sign_in(page: sync_api.Page, url: str, username: str) -> None:
    """Gradio's login form, then the app."""
    page.goto(url)
    page.locator("input[type=text]").fill(username)
    page.locator("input[type=password]").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    sync_api.expect(page.locator("#gl-user")).to_contain_text(f"Signed in as {username}")


def open_label_tab(page: sync_api.Page) -> None:
    page.get_by_role("tab", name="Label").click()
    page.locator("#gl-label-study input").click()
    page.get_by_role("option", name=re.compile(r"^Capitals")).click()
    page.wait_for_selector("#gl-label-fields .gl-field-text")


def current_item(page: sync_api.Page, positions: dict[int, int]) -> int:
    header = page.locator("#gl-label-item").inner_text()
    return positions[int(re.search(r"Item #(\d+)", header).group(1))]  # type: ignore[union-attr]


def progress(page: sync_api.Page, done: int) -> None:
    sync_api.expect(page.locator("#gl-label-progress")).to_contain_text(f"{done} / 5 labelled by you")


def select_text(page: sync_api.Page, field: str, text: str) -> None:
    """Select `text` inside one field the way a user's drag would (a DOM Range on the text node)."""
    page.evaluate(
        """([field, text]) => {
            const box = document.querySelector(`#gl-label-fields .gl-field-text[data-field="${field}"]`);
            const node = box.firstChild;
            const start = node.textContent.indexOf(text);
            const range = document.createRange();
            range.setStart(node, start);
            range.setEnd(node, start + text.length);
            const selection = window.getSelection();
            selection.removeAllRanges();
            selection.addRange(range);
        }""",
        [field, text],
    )


def label_everything(page: sync_api.Page, username: str, positions: dict[int, int], *, keyboard: set[int]) -> None:
    """Label the five items; the ones at positions in `keyboard` by digit + Enter, the rest by mouse."""
    for done in range(5):
        progress(page, done)
        position = current_item(page, positions)
        score = SCORES[username][position]
        # Blind: before submitting, nothing of the model's verdict is on the page.
        assert page.locator("#gl-label-model .gl-card").count() == 0
        assert REASONING not in page.locator("#gl-label-work").inner_text()
        if position in keyboard:
            page.locator("#gl-label-item").click()  # focus out of the study picker
            page.keyboard.press(str(score))
            sync_api.expect(page.locator(f"#gl-label-score input[value='{score}']")).to_be_checked()
            page.keyboard.press("Enter")
        else:
            page.locator(f"#gl-label-score label:has(input[value='{score}'])").click()
            page.locator("#gl-label-submit").click()
        reveal = page.locator("#gl-label-reveal-text .gl-reveal")
        sync_api.expect(reveal).to_contain_text(f"You gave {score}; the model gave {MODEL_SCORES[position]}")
        sync_api.expect(page.locator("#gl-label-model")).to_contain_text(REASONING)
        sync_api.expect(page.locator("#gl-label-fields mark.gl-hl").first).to_be_visible()
        changed = CHANGED_AT_REVEAL.get(username, {}).get(position)
        if changed is not None:
            page.locator(f"#gl-label-score label:has(input[value='{changed}'])").click()
            sync_api.expect(page.locator("#gl-label-change")).to_have_text(f"Change to {changed}")
            page.locator("#gl-label-change").click()
            sync_api.expect(page.locator("#gl-label-message")).to_contain_text(f"from {score} to {changed}")
            continue
        if position in keyboard:
            page.keyboard.press("Enter")  # keeps the score
        else:
            page.locator("#gl-label-keep").click()
        sync_api.expect(page.locator("#gl-label-message")).to_contain_text(f"Kept your score {score}")
    sync_api.expect(page.locator("#gl-label-message")).to_contain_text("labelled every item")
    progress(page, 5)


def test_two_annotators_label_a_blind_study_and_the_admin_sees_the_agreement(
    context: sync_api.BrowserContext, browser: sync_api.Browser, app: tuple[str, dict[int, int]]
) -> None:
    url, positions = app
    page = context.new_page()
    sign_in(page, url, "ann")
    open_label_tab(page)

    # Evidence: select words in a field, mark them; offsets are checked by the server against the text.
    first = current_item(page, positions)
    select_text(page, "MODEL OUTPUT", "capital")
    page.locator("#gl-label-mark").click()
    sync_api.expect(page.locator("#gl-label-evidence")).to_contain_text("capital")
    sync_api.expect(page.locator("#gl-label-fields mark.gl-hl-human")).to_have_text("capital")
    assert current_item(page, positions) == first
    label_everything(page, "ann", positions, keyboard={0, 2, 4})
    assert page.evaluate("window.__xss") is None
    assert page.locator("#gl-label-work img, #gl-label-work script").count() == 0

    page.locator("#gl-logout").click()  # Gradio's /logout, back to the login form
    page.wait_for_selector("input[type=password]")
    sign_in(page, url, "bob")
    open_label_tab(page)
    label_everything(page, "bob", positions, keyboard={0, 1, 2, 3, 4})
    # A later correction, after the reveal: the label's current score changes, its blind score stays.
    for position, new_score in EDITED_LATER["bob"].items():
        item_id = next(item for item, where in positions.items() if where == position)
        page.locator("#gl-label-mine-box button.label-wrap").click()
        mine = page.locator("#gl-label-mine")
        sync_api.expect(mine.locator("[data-testid='cell-4-0']")).to_be_visible()  # all five labels listed
        ids = [mine.locator(f"[data-testid='cell-{row}-0']").inner_text().strip() for row in range(5)]
        assert sorted(ids) == sorted(str(item) for item in positions), ids
        mine.locator(f"[data-testid='cell-{ids.index(str(item_id))}-0']").click()
        sync_api.expect(page.locator("#gl-label-submit")).to_have_text("Save changes")
        assert current_item(page, positions) == position
        page.locator(f"#gl-label-score label:has(input[value='{new_score}'])").click()
        page.locator("#gl-label-submit").click()
        sync_api.expect(page.locator("#gl-label-message")).to_contain_text(
            f"Saved your changes to item #{item_id}: score {new_score}")

    admin = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
    admin.set_default_timeout(TIMEOUT_MS)
    try:
        report_page = admin.new_page()
        sign_in(report_page, url, "ada")
        report_page.get_by_role("tab", name="Agreement").click()
        report_page.locator("#gl-agree-study input").click()
        report_page.get_by_role("option", name=re.compile(r"^Capitals")).click()
        report_page.locator("#gl-agree-run").click()
        metrics = report_page.locator("#gl-agree-metrics")
        sync_api.expect(metrics).to_contain_text("Weighted \u03ba (quadratic)")
        sync_api.expect(metrics).to_contain_text("5 of 5 items \u00b7 2 annotators")
        expect_the_blind_headline_and_the_anchoring(metrics)
        heatmap = report_page.locator("#gl-agree-heatmap .js-plotly-plot")
        sync_api.expect(heatmap).to_be_visible()
        sync_api.expect(report_page.locator("#gl-agree-heatmap .gtitle")).to_have_text("Human vs model scores (items)")
        for chart in ("gl-agree-scatter", "gl-agree-distributions", "gl-agree-annotators"):
            sync_api.expect(report_page.locator(f"#{chart} .js-plotly-plot")).to_be_visible()
        with report_page.expect_download() as download:
            report_page.locator("#gl-export-csv").click()
        assert download.value.suggested_filename.endswith("-annotations.csv")
        exported = Path(download.value.path()).read_text(encoding="utf-8")
        assert exported.startswith("study,study_id,item_id") and exported.count("\n") >= 11
        # The largest disagreement first: item 4 (Bonn), both annotators 0, the model 1.
        sync_api.expect(report_page.locator("#gl-agree-disagreements [data-testid='cell-0-0']")).to_be_visible()
        report_page.locator("#gl-agree-disagreements [data-testid='cell-0-0']").click()
        sync_api.expect(report_page.locator("#gl-agree-item")).to_contain_text("cap-4")
        assert report_page.evaluate("window.__xss") is None

        report_page.wait_for_timeout(500)  # let the plots finish their entry animation
        report_page.evaluate("window.scrollTo(0, 0)")
        page_box = report_page.locator("gradio-app").bounding_box()
        charts_box = report_page.locator("#gl-agree-annotators").bounding_box()
        assert page_box is not None and charts_box is not None
        # From the page's title down to the last chart: the headline numbers and the four charts.
        bottom = charts_box["y"] + charts_box["height"] + 16
        clip = {"x": page_box["x"], "y": 0, "width": page_box["width"], "height": bottom}
        report_page.screenshot(path=str(SCREENSHOT), full_page=True, clip=clip)
        assert SCREENSHOT.stat().st_size > 20_000
    finally:
        admin.close()


def expect_the_blind_headline_and_the_anchoring(metrics: sync_api.Locator) -> None:
    """The headline uses the scores given before the reveal; the tab shows the post-reveal view and how many moved.

    By hand, from SCORES (before), CHANGED_AT_REVEAL and EDITED_LATER (after) and MODEL_SCORES = 1 0 1 1 1:
    before, the item means are 1 0 .5 0 1, rounded half up 1 0 1 0 1: 4 of 5 equal the model -> exact 0.800;
    after (ann's 0 -> 1 on item 4, bob's 0 -> 1 on item 3) the means are 1 0 1 .5 1 -> 1 0 1 1 1: exact 1.000.
    Single labels equal to the model: before ann 4 + bob 3 = 7 of 10 (0.700), after 5 + 4 = 9 of 10 (0.900).
    Two of ten labels moved, both towards the model: one at the reveal, one by the later edit.
    """
    means_before, means_after = [1, 0, 0.5, 0, 1], [1, 0, 1, 0.5, 1]
    assert [(s_a + s_b) / 2 for s_a, s_b in zip(SCORES["ann"], SCORES["bob"], strict=True)] == means_before
    pearson_before = float(np.corrcoef(means_before, MODEL_SCORES)[0, 1])
    pearson_after = float(np.corrcoef(means_after, MODEL_SCORES)[0, 1])
    headline = metrics.locator(".gl-metrics-grid")
    sync_api.expect(headline).to_contain_text("Human vs model \u2014 before the reveal")
    sync_api.expect(headline.locator("tr", has_text="Exact agreement").locator("td").first).to_have_text("0.800")
    sync_api.expect(headline.locator("tr", has_text="Pearson r").locator("td").first).to_have_text(
        f"{pearson_before:.3f}")
    sync_api.expect(metrics.locator(".gl-score-basis")).to_contain_text("before the model's verdict was shown")
    sync_api.expect(metrics.locator(".gl-anchoring-summary")).to_have_text(
        "Revised after the reveal: 2 of 10 labels (2 towards the model, 0 away; 1 when confirming at the reveal, "
        "1 by a later edit). Exact agreement of single labels with the model: 0.700 before, 0.900 after.")
    second = metrics.locator(".gl-post-reveal")
    exact = second.locator("tr", has_text="Exact agreement").locator("td")
    sync_api.expect(exact.nth(0)).to_have_text("0.800")
    sync_api.expect(exact.nth(1)).to_have_text("1.000")
    sync_api.expect(exact.nth(2)).to_have_text("+0.200")
    sync_api.expect(second.locator("tr", has_text="Pearson r").locator("td").nth(1)).to_have_text(
        f"{pearson_after:.3f}")
