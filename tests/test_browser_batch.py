"""The Batch tab in headless Chromium: upload a JSONL file, pick a preset, Start, watch every row get its score,
export the CSV; a model output holding markup stays text; Cancel and Resume while a single grade slips in.

Also saves screenshot-batch.png (for the README) from the finished job, graded by the scripted judge; into
assets/ only with GLIDER_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from gradio_client import Client

from core.judge.base import Generation
from tests.fakes import ScriptedJudge
from tests.net import SLOW_MACHINE
from tests.test_browser import NEEDS_CHROMIUM, TIMEOUT_MS, screenshot_path
from tests.webapp_helpers import (
    BRIDGE_ANSWER,
    BRIDGE_DISTRIBUTION,
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    launched,
    make_services,
    with_batch,
)

sync_api = pytest.importorskip("playwright.sync_api")

SCREENSHOT = screenshot_path("screenshot-batch.png")
XSS = '<img src=x onerror="window.__xss=1">'
CONTEXT = ("The Hartwell Bridge opened to traffic in March 1987. It spans 412 metres across the Lune estuary; a "
           "pedestrian walkway was added on its eastern side in 2004.")
OUTPUTS = [
    "The Hartwell Bridge opened in March 1987 and spans 412 metres.",
    "The bridge, designed by the Danish engineering firm Holm & Bech, opened in 1987.",
    "A pedestrian walkway was added on the eastern side in 2004.",
    f"It spans the Lune estuary. {XSS}",
    "The bridge opened to traffic in March 1987.",
    "",  # an empty output: a row error, counted and shown
]
SINGLE_OUTPUT = "A single grade from the Grade tab's API, sent while the batch runs."
PRESET = "Faithfulness to context (0-1)"

pytestmark = [
    pytest.mark.browser,
    NEEDS_CHROMIUM,
    # Gradio's queue analytics use pandas options that pandas 3 deprecates (raised in the server thread).
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


class GatedJudge(ScriptedJudge):
    """A scripted judge with a model lock (as the transformers back-end) whose batch rows can be held back.

    While `gate` is clear, a prompt for a batch row (its output starts "Batch row") waits before taking
    the lock, so the test decides when the second batch runs; single grades are never held.
    """

    def __init__(self) -> None:
        super().__init__(BRIDGE_ANSWER, distribution=BRIDGE_DISTRIBUTION)
        self.gate = threading.Event()
        self.gate.set()
        self.model_lock = threading.Lock()
        self.batch_rows_seen = 0

    def generate(self, prompt: str, **kwargs: Any) -> Generation:
        if "Batch row" in prompt:
            if self.batch_rows_seen >= 4:
                assert self.gate.wait(timeout=30), "the test never opened the gate"
            self.batch_rows_seen += 1
        with self.model_lock:
            return super().generate(prompt, **kwargs)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, GatedJudge]]:
    judge = GatedJudge()
    services = with_batch(make_services(tmp_path_factory.mktemp("browser-batch"), judge=judge))
    with launched(services) as url:
        yield url, judge
    services.store.close()


@pytest.fixture
def page(browser: sync_api.Browser, app: tuple[str, GatedJudge]) -> Iterator[sync_api.Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="light",
                                  accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app[0])
    page.get_by_role("tab", name="Batch").click()
    page.wait_for_selector("#gl-batch-start")
    yield page
    context.close()


def upload(page: sync_api.Page, path: Path) -> None:
    page.locator("#gl-batch-file input[type=file]").set_input_files(str(path))
    sync_api.expect(page.locator("#gl-batch-preview")).to_be_visible()


def choose_preset(page: sync_api.Page, name: str) -> None:
    page.locator("#gl-batch-preset input").click()
    page.get_by_role("option", name=name).click()


def cell(page: sync_api.Page, row: int, column: int) -> sync_api.Locator:
    return page.locator(f"#gl-batch-results [data-testid='cell-{row}-{column}']")


def test_grade_a_file_see_every_score_and_export_it(
    page: sync_api.Page, app: tuple[str, GatedJudge], tmp_path: Path
) -> None:
    data = tmp_path / "bridge-answers.jsonl"
    data.write_text("".join(json.dumps({"id": f"a{n}", "context": CONTEXT, "model_output": output}) + "\n"
                            for n, output in enumerate(OUTPUTS, 1)), encoding="utf-8")
    upload(page, data)
    sync_api.expect(page.locator("#gl-batch-preview-note")).to_contain_text("6 rows, 3 columns")
    sync_api.expect(page.locator("#gl-batch-map-2 input")).to_have_value("model_output")
    choose_preset(page, "Correctness against gold answer (1-3)")
    sync_api.expect(page.locator("#gl-batch-rubric textarea")).to_have_value(re.compile("^1: Incorrect"))
    choose_preset(page, PRESET)
    sync_api.expect(page.locator("#gl-batch-rubric textarea")).to_have_value(re.compile("^0: "))
    sync_api.expect(page.locator("#gl-batch-judge")).to_contain_text("tests/scripted-judge")

    page.locator("#gl-batch-start").click()
    sync_api.expect(page.locator("#gl-batch-message")).to_contain_text("Job 1 finished: 5 of 6 rows graded.")
    status = page.locator("#gl-batch-status")
    sync_api.expect(status).to_contain_text("6 of 6 rows")
    sync_api.expect(status).to_contain_text("1 error")
    for row in range(5):
        sync_api.expect(cell(page, row, 0)).to_have_text(str(row + 1))
        sync_api.expect(cell(page, row, 1)).to_have_text("0")
        sync_api.expect(cell(page, row, 2)).to_have_text("ok")
    sync_api.expect(cell(page, 5, 2)).to_have_text("error")
    sync_api.expect(cell(page, 5, 3)).to_contain_text("is empty")

    # The model output with markup is shown as text and never runs.
    sync_api.expect(cell(page, 3, 4)).to_contain_text(XSS)
    page.wait_for_timeout(300)  # an injected <img src=x> would have fired onerror by now
    assert page.evaluate("window.__xss") is None
    assert page.locator("#gl-batch-results img, #gl-batch-status img, #gl-batch-jobs img").count() == 0

    sync_api.expect(page.locator("#gl-batch-jobs [data-testid='cell-0-2']")).to_have_text("done")
    page.locator("#gl-batch-export-csv").click()
    # Gradio shows the name's stem and extension in separate elements.
    sync_api.expect(page.locator("#gl-batch-download")).to_contain_text(re.compile(r"batch-1-bridge-answers\s*\.csv"))
    with page.expect_download() as download:
        page.locator("#gl-batch-download a").first.click()
    exported = pd.read_csv(download.value.path())
    assert download.value.suggested_filename == "batch-1-bridge-answers.csv"
    assert exported["id"].tolist() == [f"a{n}" for n in range(1, 7)]
    assert exported["score"].tolist()[:5] == [0] * 5 and exported["status"].tolist()[5] == "error"
    assert exported["model_output"].tolist()[3] == f"It spans the Lune estuary. {XSS}"

    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 20_000


def test_cancel_then_resume_while_a_single_grade_slips_in(
    page: sync_api.Page, app: tuple[str, GatedJudge], tmp_path: Path
) -> None:
    url, judge = app
    judge.gate.clear()
    judge.batch_rows_seen = 0
    data = tmp_path / "queued.jsonl"
    data.write_text("".join(json.dumps({"context": CONTEXT, "model_output": f"Batch row {n}: opened in 1987."}) + "\n"
                            for n in range(1, 13)), encoding="utf-8")
    upload(page, data)
    choose_preset(page, PRESET)
    page.locator("#gl-batch-size input[type=number]").fill("4")
    page.locator("#gl-batch-size input[type=number]").press("Enter")
    first_prompt = len(judge.prompts)
    page.locator("#gl-batch-start").click()
    status = page.locator("#gl-batch-status")
    sync_api.expect(status).to_contain_text("4 of 12 rows")  # the first batch is in; the second waits at the gate
    sync_api.expect(status).to_contain_text("running")
    # Gradio's own progress bar (gr.Progress): rows done of the total, the speed and the time left.
    meter = page.locator("#gl-batch-progress")
    sync_api.expect(meter).to_contain_text("4/12 rows")
    sync_api.expect(meter).to_contain_text(re.compile(r"rows/s · ETA \d+ s"))

    # A single grade runs now, between two batches, instead of waiting for the whole job.
    client = Client(url, verbose=False, httpx_kwargs=SLOW_MACHINE)
    try:
        result = client.predict(CONTEXT, "", SINGLE_OUTPUT, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC,
                                api_name="/grade")
    finally:
        client.close()
    assert result["score"] == 0
    order = [("single" if SINGLE_OUTPUT in p else "batch") for p in judge.prompts[first_prompt:]]
    assert order == ["batch"] * 4 + ["single"]

    page.locator("#gl-batch-cancel").click()
    sync_api.expect(page.locator("#gl-batch-message")).to_contain_text("Stopping job")
    judge.gate.set()  # the batch in progress finishes; the run stops before the next one
    sync_api.expect(page.locator("#gl-batch-message")).to_contain_text("after 8 of 12 rows; press Resume")
    sync_api.expect(status).to_contain_text("stopped")
    sync_api.expect(cell(page, 8, 2)).to_have_text("pending")

    page.locator("#gl-batch-resume").click()
    sync_api.expect(page.locator("#gl-batch-message")).to_contain_text("finished: 12 of 12 rows graded")
    sync_api.expect(cell(page, 11, 1)).to_have_text("0")
    assert sum(SINGLE_OUTPUT not in p for p in judge.prompts[first_prompt:]) == 12, "no row graded twice"
