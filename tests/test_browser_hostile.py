"""Every XSS payload (tests/webapp_helpers.py, 25 of them) through every place user or model text reaches
the page, rendered in real Chromium: the Grade form (fields, pass criteria, rubric), the model's reasoning
and highlight phrases, History, a study's name, description and rubric, an imported CSV file, the Label
tab, an annotator's comment, the Agreement report and the Batch tab. No payload may run (a trap on
window.__xss and on dialogs) and each must still be readable as text.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.grading import GradeRequest, grade
from core.studies import StudySpec
from tests.fakes import ScriptedJudge
from tests.test_browser import BROWSER_MARKS, TIMEOUT_MS
from tests.webapp_helpers import PASSWORD, XSS_PAYLOADS, answer, launched, make_study_services, with_batch

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = BROWSER_MARKS

P = XSS_PAYLOADS
# Elements none of our HTML ever contains; an injected payload would create them.
# (Plotly adds one <style> of its own, with an id, wherever it draws a chart.)
# The Label tab's own <details> (the rubric's levels, class gl-rubric) is the page's, not injected.
INJECTED = ("script, img, iframe, object, embed, video, source, details:not(.gl-rubric), input[autofocus], math, "
            "style:not([id^='plotly']), a[href^=javascript]")
TRAP = """
    window.__xss = undefined;
    window.__dialogs = [];
    for (const name of ["alert", "confirm", "prompt"]) {
        window[name] = (...args) => { window.__xss = window.__xss || name; window.__dialogs.push(String(args[0])); };
    }
"""
STUDY_NAME = f"Hostile {P[0]}"
RUBRIC = f"0: Bad {P[2]}\n1: Good {P[3]}"
CRITERIA = f"Is the MODEL OUTPUT safe? {P[1]}"
REASONING = "\n".join(f"- Reason {n}: {payload}" for n, payload in enumerate(P))
COMMENT = " ".join(P[6:12])
EVE = "eve"  # usernames cannot hold markup (tests/test_hostile_input.py); her comment can


def item_rows() -> list[dict[str, str]]:
    return [{"id": f"row-{n} {payload}", "context": f"Context {n}: {payload}", "output": f"Output {n}: {payload}"}
            for n, payload in enumerate(P)]


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app behind sign-in, with a study of 25 hostile items (imported from CSV), graded, one labelled."""
    folder = tmp_path_factory.mktemp("hostile")
    judge = ScriptedJudge(answer(REASONING, [f"Output 0: {P[0]}", P[1], P[5], P[9]], 1))
    services = with_batch(make_study_services(folder, judge=judge))
    studies = services.studies
    assert studies is not None
    ada, ann = studies.get_user("ada"), studies.get_user("ann")
    assert ada is not None and ann is not None
    study = studies.create_study(ada, StudySpec(
        name=STUDY_NAME, description=" ".join(P), pass_criteria=CRITERIA, rubric=RUBRIC,
        tags=("CONTEXT", "MODEL OUTPUT"), overlap_target=2, blind=True))
    data = write_csv(folder / "hostile.csv", item_rows())
    report = studies.import_items(ada, study.id, data, {"CONTEXT": "context", "MODEL OUTPUT": "output"},
                                  id_column="id")
    assert report.added == len(P) and not report.errors, report
    for item in studies.list_items(ada, study.id):
        result = grade(judge, GradeRequest(dict(item.fields), CRITERIA, RUBRIC), services.store)
        assert result.judgment_id is not None
        studies.attach_judgment(ada, item.id, result.judgment_id)
    first = studies.next_item(ann, study.id)
    assert first is not None
    studies.submit(ann, first.id, 0, comment=COMMENT)
    eve = studies.create_user(EVE, PASSWORD, role="annotator")
    assert studies.next_item(eve, study.id) is not None and studies.next_item(eve, study.id).id == first.id
    studies.submit(eve, first.id, 1, comment=P[20])
    with launched(services) as url:
        yield url, folder
    services.store.close()


@pytest.fixture
def signed_in(browser: sync_api.Browser, app: tuple[str, Path]) -> Iterator[sync_api.BrowserContext]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(TRAP)
    yield context
    context.close()


def sign_in(context: sync_api.BrowserContext, url: str, username: str) -> sync_api.Page:
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.dismiss())  # a native dialog that slipped past the trap
    page.goto(url)
    page.locator("input[type=text]").fill(username)
    page.locator("input[type=password]").fill(PASSWORD)
    page.get_by_role("button", name="Login").click()
    sync_api.expect(page.locator("#gl-user")).to_contain_text(f"Signed in as {username}")
    return page


def assert_nothing_ran(page: sync_api.Page, *containers: str) -> None:
    page.wait_for_timeout(500)  # onerror, onload, ontoggle and animations fire within this
    assert page.evaluate("window.__xss") is None, page.evaluate("window.__dialogs")
    for container in containers:
        found = page.locator(container).locator(INJECTED)
        assert found.count() == 0, (container, [found.nth(i).evaluate("e => e.outerHTML")[:300]
                                                for i in range(found.count())])


def shows(page: sync_api.Page, container: str, *texts: str) -> None:
    shown = page.locator(container).inner_text()
    for text in texts:
        assert text in shown, f"{text!r} is not readable in {container}"


def test_the_grade_form_result_and_history(signed_in: sync_api.BrowserContext, app: tuple[str, Path]) -> None:
    page = sign_in(signed_in, app[0], "ada")
    for slot, payload in enumerate(P[:4]):
        # P[1] is one of the model's highlight phrases: every field gets a highlight, so every field is shown.
        page.locator(f"#gl-field-{slot} textarea").fill(f"Field {slot}: {payload} {P[slot + 10]} {P[1]}")
    page.locator("#gl-pass-criteria textarea").fill(CRITERIA)
    page.locator("#gl-rubric textarea").fill(RUBRIC)
    page.locator("#gl-grade").click()
    sync_api.expect(page.locator("#gl-result-reasoning")).to_contain_text("Reason 24")
    shows(page, "#gl-result-reasoning", *P)
    shows(page, "#gl-result-fields", *[f"Field {slot}: {payload}" for slot, payload in enumerate(P[:4])])
    assert_nothing_ran(page, "#gl-result", "#gl-message")

    page.get_by_role("tab", name="History").click()
    cell = page.locator("#gl-history [data-testid='cell-0-5']")
    sync_api.expect(cell).to_contain_text("Field 2:")
    cell.click()
    sync_api.expect(page.locator("#gl-history-result-reasoning")).to_contain_text("Reason 24")
    shows(page, "#gl-history-result-reasoning", *P)
    assert_nothing_ran(page, "#gl-history", "#gl-history-result")


def test_study_import_label_and_agreement(signed_in: sync_api.BrowserContext, app: tuple[str, Path]) -> None:
    url, folder = app
    admin = sign_in(signed_in, url, "ada")
    admin.get_by_role("tab", name="Studies").click()
    sync_api.expect(admin.locator("#gl-study-list")).to_contain_text("Hostile")
    shows(admin, "#gl-study-list", STUDY_NAME)
    # The import preview of a hostile file.
    admin.locator("#gl-import-study input").click()
    admin.get_by_role("option", name=re.compile(r"^Hostile")).click()
    admin.locator("#gl-import-file input[type=file]").set_input_files(str(folder / "hostile.csv"))
    sync_api.expect(admin.locator("#gl-import-preview")).to_contain_text("Context 0")
    shows(admin, "#gl-import-preview", f"Output 1: {P[1]}", f"row-2 {P[2]}")
    assert_nothing_ran(admin, "#gl-studies-body")

    admin.get_by_role("tab", name="Agreement").click()
    admin.locator("#gl-agree-study input").click()
    admin.get_by_role("option", name=re.compile(r"^Hostile")).click()
    admin.locator("#gl-agree-run").click()
    sync_api.expect(admin.locator("#gl-agree-metrics")).to_contain_text("annotator")
    first_row = admin.locator("#gl-agree-disagreements [data-testid='cell-0-0']")
    sync_api.expect(first_row).to_be_visible()
    first_row.click()
    sync_api.expect(admin.locator("#gl-agree-item")).to_contain_text("Human labels")
    shown = admin.locator("#gl-agree-item").inner_text()
    number = int(re.search(r"row-(\d+)", shown).group(1))  # type: ignore[union-attr]
    shows(admin, "#gl-agree-item", f"Output {number}: {P[number]}", *P[6:12], P[20])  # item, both comments
    assert_nothing_ran(admin, "#gl-agree-body")

    other = signed_in.browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[union-attr]
    other.set_default_timeout(TIMEOUT_MS)
    other.add_init_script(TRAP)
    try:
        page = sign_in(other, url, "bob")
        page.get_by_role("tab", name="Label").click()
        page.locator("#gl-label-study input").click()
        page.get_by_role("option", name=re.compile(r"^Hostile")).click()
        page.wait_for_selector("#gl-label-fields .gl-field-text")
        shows(page, "#gl-label-summary", STUDY_NAME, CRITERIA, " ".join(P))  # name, criteria, description
        header = page.locator("#gl-label-item").inner_text()
        number = int(re.search(r"row-(\d+)", header).group(1))  # type: ignore[union-attr]
        shows(page, "#gl-label-fields", f"Context {number}: {P[number]}", f"Output {number}: {P[number]}")
        page.locator("#gl-label-comment textarea").fill(" ".join(P[12:18]))
        page.locator("#gl-label-score label:has(input[value='1'])").click()
        page.locator("#gl-label-submit").click()
        sync_api.expect(page.locator("#gl-label-model")).to_contain_text("Reason 24")
        shows(page, "#gl-label-model", *P)
        assert_nothing_ran(page, "#gl-label-work", "#gl-label-summary")
    finally:
        other.close()


def test_the_batch_tab(signed_in: sync_api.BrowserContext, app: tuple[str, Path]) -> None:
    url, folder = app
    page = sign_in(signed_in, url, "ada")
    page.get_by_role("tab", name="Batch").click()
    data = write_csv(folder / "batch.csv", [{"context": row["context"], "model_output": row["output"]}
                                           for row in item_rows()])
    page.locator("#gl-batch-file input[type=file]").set_input_files(str(data))
    sync_api.expect(page.locator("#gl-batch-preview")).to_contain_text("Context 0")
    page.locator("#gl-batch-criteria textarea").fill(CRITERIA)
    page.locator("#gl-batch-rubric textarea").fill(RUBRIC)
    page.locator("#gl-batch-start").click()
    sync_api.expect(page.locator("#gl-batch-message")).to_contain_text(f"{len(P)} of {len(P)} rows graded")
    results = page.locator("#gl-batch-results")
    sync_api.expect(results).to_contain_text("Output 0:")
    shows(page, "#gl-batch-results", f"Output 0: {P[0]}", f"Output 1: {P[1]}")
    assert_nothing_ran(page, "#gl-batch-body")
