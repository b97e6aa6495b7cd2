"""A pairwise study in headless Chromium: the admin creates it in the Studies tab (Compare two responses, Allow
ties), two annotators label every item blind by clicking Response 1 / Response 2 / Tie (bob partly by keyboard: 2,
T, Enter) and keep their choice on the judge's reveal; the stored labels carry the choice in the item's terms and
the order the responses were shown in, and both orders occur.

The judge's two orders are attached through core (tests.pair_study_helpers.judge_pair_study, a scripted judge), so
the study this module leaves behind (`PairApp.study_id`) is graded and labelled by two annotators: a later test
here can open it in the Agreement tab (e.g. its "Position consistency") without grading anything.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from core.studies import Studies
from core.studies.pair_reports import pair_report
from core.studies.pairs import RESPONSE_A, RESPONSE_B, TIE
from tests.pair_study_helpers import PAIR_CRITERIA, PAIR_ITEMS, judge_pair_study
from tests.test_browser import BROWSER_MARKS, TIMEOUT_MS
from tests.test_browser_study import sign_in
from tests.webapp_helpers import launched, make_study_services
from webapp import Services

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = BROWSER_MARKS

STUDY_NAME = "Kinder reply"
CLICKS = ("1", "2", TIE, "2", "1", TIE)  # what each annotator clicks on their n-th item
BUTTONS = {"1": "#gl-label-pick-1", "2": "#gl-label-pick-2", TIE: "#gl-label-pick-tie"}


@dataclass
class PairApp:
    """The launched app; `study_id` is set once the pairwise study is created (graded and labelled by the
    module's first test)."""

    url: str
    services: Services
    study_id: int | None = None

    @property
    def studies(self) -> Studies:
        assert self.services.studies is not None
        return self.services.studies


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PairApp]:
    """Sign-in on, ada (admin), ann and bob (annotators), no study yet."""
    services = make_study_services(tmp_path_factory.mktemp("browser-pairs"))
    with launched(services) as url:
        yield PairApp(url, services)
    services.store.close()


@pytest.fixture
def context(browser: sync_api.Browser) -> Iterator[sync_api.BrowserContext]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def create_pair_study(page: sync_api.Page, app: PairApp) -> int:
    """The admin's Studies tab: a pairwise study with ties allowed; its id (the items are added through core)."""
    page.get_by_role("tab", name="Studies").click()
    page.locator("#gl-study-name input, #gl-study-name textarea").first.fill(STUDY_NAME)
    page.locator("#gl-study-mode label", has_text="Compare two responses (pairwise)").click()
    tags = page.locator("#gl-study-tags textarea, #gl-study-tags input").first
    sync_api.expect(tags).to_have_value(re.compile(r"RESPONSE A, RESPONSE B"))
    sync_api.expect(page.locator("#gl-study-rubric textarea")).to_have_value(
        re.compile(r"^0: The MODEL OUTPUT 1 is better"))
    page.locator("#gl-study-allow-tie input").check()
    page.locator("#gl-study-criteria textarea").fill(PAIR_CRITERIA)
    page.locator("#gl-study-overlap input").fill("2")
    page.locator("#gl-study-create").click()
    message = page.locator("#gl-study-message")
    sync_api.expect(message).to_contain_text("(pairwise, ties allowed)")
    study_id = int(re.search(r"\(#(\d+)\)", message.inner_text()).group(1))  # type: ignore[union-attr]
    sync_api.expect(page.locator("#gl-study-list")).to_contain_text("pairwise, ties allowed")
    ada = app.studies.get_user("ada")
    assert ada is not None
    for number, (question, first, second) in enumerate(PAIR_ITEMS):
        app.studies.add_item(ada, study_id, {"USER INPUT": question, RESPONSE_A: first, RESPONSE_B: second},
                             external_id=f"p-{number}")
    judge_pair_study(app.studies, app.services.store, ada, study_id)
    return study_id


def label_everything(page: sync_api.Page, app: PairApp, username: str) -> list[tuple[int, str, str]]:
    """Open the study on the Label tab and answer every item by its CLICKS; (item id, slot clicked, text shown
    as Response 1) of each."""
    page.get_by_role("tab", name="Label").click()
    page.locator("#gl-label-study input").click()
    page.get_by_role("option", name=re.compile(rf"^{STUDY_NAME}")).click()
    done: list[tuple[int, str, str]] = []
    for number, slot in enumerate(CLICKS):
        sides = page.locator("#gl-label-fields .gl-pair-side .gl-field-text")
        sync_api.expect(sides).to_have_count(2)
        sync_api.expect(page.locator("#gl-label-progress")).to_contain_text(f"{number} / {len(PAIR_ITEMS)}")
        header = page.locator("#gl-label-item").inner_text()
        item_id = int(re.search(r"Item #(\d+)", header).group(1))  # type: ignore[union-attr]
        first_shown = sides.first.inner_text()
        text = page.locator("#gl-label-work").inner_text()
        assert "RESPONSE A" not in text and "RESPONSE B" not in text  # blind to which is A
        sync_api.expect(page.locator("#gl-label-score")).to_be_hidden()
        if username == "bob" and slot != "1":  # the keyboard: 2 and T answer, Enter keeps on the reveal
            page.locator("#gl-label-item").click()
            page.keyboard.press("2" if slot == "2" else "T")
        else:
            page.locator(BUTTONS[slot]).click()
        # Every item is graded: the reveal gives the judge's verdict in this annotator's slots.
        chose = "Tie" if slot == TIE else f"Response {slot}"
        sync_api.expect(page.locator("#gl-label-reveal-text")).to_contain_text(f"You chose {chose}.")
        sync_api.expect(page.locator("#gl-label-reveal-text")).to_contain_text(re.compile(
            r"The judge preferred Response [12] \(in both orders\)|The judge's verdict flips with the order"))
        sync_api.expect(page.locator("#gl-label-model")).to_contain_text("with the responses swapped")
        revealed = page.locator("#gl-label-work").inner_text()
        assert "RESPONSE A" not in revealed and "RESPONSE B" not in revealed  # the reveal names slots only
        if username == "bob" and slot != "1":
            page.locator("#gl-label-item").click()
            page.keyboard.press("Enter")
        else:
            page.locator("#gl-label-keep").click()
        sync_api.expect(page.locator("#gl-label-message")).to_contain_text(
            f"Kept your choice ({chose}) for item #{item_id}.")
        done.append((item_id, slot, first_shown))
    sync_api.expect(page.locator("#gl-label-message")).to_contain_text("You have labelled every item")
    return done


def test_an_admin_creates_a_pairwise_study_and_two_annotators_label_it_blind(
    context: sync_api.BrowserContext, app: PairApp
) -> None:
    page = context.new_page()
    sign_in(page, app.url, "ada")
    app.study_id = create_pair_study(page, app)

    orders: Counter[str] = Counter()
    for username in ("ann", "bob"):
        page.locator("#gl-logout").click()
        page.wait_for_selector("input[type=password]")
        sign_in(page, app.url, username)
        clicked = label_everything(page, app, username)
        assert page.evaluate("window.__xss") is None
        me = app.studies.get_user(username)
        assert me is not None
        stored = {a.item_id: a for a in app.studies.my_annotations(me, app.study_id)}
        assert sorted(stored) == sorted(item_id for item_id, _, _ in clicked)
        for item_id, slot, first_shown in clicked:
            label = stored[item_id]
            fields = app.studies.get_item(me, item_id).fields
            order = label.shown_order
            assert order in ("AB", "BA") and order == app.studies.pair_order(me, item_id)
            # Slot 1 is the response shown first: the one the order names first.
            assert first_shown == fields[{"A": RESPONSE_A, "B": RESPONSE_B}[order[0]]]
            expected = TIE if slot == TIE else order[int(slot) - 1]
            assert (label.choice, label.score_before_reveal, label.score_after_reveal) == (
                expected, label.score, label.score)
            orders[order] += 1
    assert set(orders) == {"AB", "BA"}, orders  # both orders occur across the items


def test_the_agreement_tab_reports_position_consistency_on_the_labelled_study(
    context: sync_api.BrowserContext, app: PairApp
) -> None:
    """The study the two annotators labelled in the browser above: the admin's Agreement tab shows the pairwise
    report, its position consistency included, over their 2 x 6 choices."""
    assert app.study_id is not None, "runs after the labelling test"
    page = context.new_page()
    sign_in(page, app.url, "ada")
    page.get_by_role("tab", name="Agreement").click()
    page.locator("#gl-agree-study input").click()
    page.get_by_role("option", name=re.compile(rf"^{STUDY_NAME}")).click()
    page.locator("#gl-agree-run").click()
    metrics = page.locator("#gl-agree-metrics")
    sync_api.expect(metrics.locator("h3", has_text="Position consistency")).to_be_visible()
    sync_api.expect(metrics).to_contain_text("Accuracy vs the human majority")
    ada = app.studies.get_user("ada")
    assert ada is not None
    report = pair_report(app.studies, ada, app.study_id, n_resamples=0)
    assert report["n_labels"] == 2 * len(CLICKS) and report["n_annotators"] == 2
    assert report["position_consistency"]["n"] == len(PAIR_ITEMS)  # every item graded in both orders
