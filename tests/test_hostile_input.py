"""Bad input, everywhere a user can give it: each case gets a clear message within a second, nothing
crashes, and the good rows of a damaged file are still imported (studies) or graded (batch).

The time bound is the issue's acceptance criterion and is asserted on the handler itself (in process);
the round trip through the running server is printed, not asserted (the CI machine is shared).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from gradio_client import Client

from core.grading import GradeRequest, grade
from core.judge import create_backend
from core.studies import StudyInputError
from tests.net import SLOW_MACHINE
from tests.test_webapp_batch import MAPPING, start, text
from tests.test_webapp_studies import create_study, message, plain, v
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    XSS_PAYLOADS,
    build,
    by_id,
    handler,
    launched,
    make_services,
    make_study_services,
    signed_in,
    value,
    with_batch,
)
from webapp import Services

ONE_SECOND = 1.0
MEGABYTE_PASTE = "The bridge opened in 1901. " * 40_000  # ~1.08 MB

# (fields: context, user input, model output, gold answer), pass criteria, rubric -> words of the message
FORM_CASES: dict[str, tuple[tuple[str, str, str, str], str, str, str]] = {
    "every field empty": (("", "", "", ""), FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC, "Every field is empty"),
    "whitespace only": ((" \n\t", "\u00a0\u2003", "  ", "\r\n"), FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC,
                        "Every field is empty"),
    "1 MB paste": ((MEGABYTE_PASTE, "", "It opened in 1901.", ""), FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC,
                   "limit"),
    "empty pass criteria": (("c", "", "o", ""), " ", FAITHFULNESS_RUBRIC, "pass criteria are empty"),
    "rubric with no scores": (("c", "", "o", ""), FAITHFULNESS_CRITERIA, "Grade it sensibly.", "names no scores"),
    "empty rubric": (("c", "", "o", ""), FAITHFULNESS_CRITERIA, "", "names no scores"),
    "a scale of 1-100": (("c", "", "o", ""), FAITHFULNESS_CRITERIA, "1: awful\n50: middling\n100: perfect",
                         "at most 11 levels"),
}


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    outcome = call()
    return outcome, time.perf_counter() - started


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    services = make_services(tmp_path)
    yield services
    services.store.close()


@pytest.mark.parametrize("case", sorted(FORM_CASES))
@pytest.mark.timing
def test_the_grade_form_and_the_api_answer_bad_input_with_a_message(services: Services, case: str) -> None:
    fields, criteria, rubric, expected = FORM_CASES[case]
    demo = build(services)
    with pytest.raises(gr.Error) as raised:
        timed(lambda: handler(demo, "grade")(*fields, criteria, rubric))
    assert expected in raised.value.message and "Traceback" not in raised.value.message

    tags = ["CONTEXT", "USER INPUT", "MODEL OUTPUT", "GOLD ANSWER"]
    updates, seconds = timed(lambda: list(handler(demo, "on_grade")(*tags, *fields, criteria, rubric, 256)))
    outcome = next(val for update in updates for key, val in update.items() if isinstance(key, gr.State))
    assert isinstance(outcome, str) and expected in outcome
    done = by_id(demo, handler(demo, "on_grade_done")(outcome))
    assert expected in text(value(done["gl-message"])) and "gl-message-error" in value(done["gl-message"])
    assert seconds < ONE_SECOND, f"{case}: {seconds:.3f} s"
    assert services.store.count_judgments() == 0  # nothing half-graded was stored


@pytest.mark.timing
def test_a_1_mb_paste_to_the_real_judge_is_refused_quickly(trained_model_dir: Path) -> None:
    """The real tokenizer counts the pasted megabyte and refuses it before anything runs on the model."""
    judge = create_backend("transformers", model=str(trained_model_dir), quantization="none")
    request = GradeRequest({"CONTEXT": MEGABYTE_PASTE, "MODEL OUTPUT": "It opened in 1901."}, FAITHFULNESS_CRITERIA,
                           FAITHFULNESS_RUBRIC)
    started = time.perf_counter()
    with pytest.raises(Exception) as raised:
        grade(judge, request)
    seconds = time.perf_counter() - started
    print(f"1 MB paste refused by the real judge in {seconds:.3f} s: {raised.value}")
    assert "context" in str(raised.value).lower() and "token" in str(raised.value).lower()
    assert seconds < ONE_SECOND


def test_bad_input_through_the_running_server(services: Services) -> None:
    with launched(services) as url:
        client = Client(url, verbose=False, httpx_kwargs=SLOW_MACHINE)
        try:
            for case, (fields, criteria, rubric, expected) in sorted(FORM_CASES.items()):
                started = time.perf_counter()
                with pytest.raises(Exception) as raised:
                    client.predict(*fields, criteria, rubric, api_name="/grade")
                print(f"{case}: message after {time.perf_counter() - started:.3f} s (round trip)")
                assert expected in str(raised.value) and "Traceback" not in str(raised.value), case
            # After all of that the app still grades.
            result = client.predict("Paris is the capital of France.", "", "Paris.", "", FAITHFULNESS_CRITERIA,
                                    FAITHFULNESS_RUBRIC, api_name="/grade")
            assert result["score"] == 1
        finally:
            client.close()


# --- files: study import and the Batch tab ----------------------------------------------------------------

GOOD_ROWS = [("Paris is the capital of France.", "Paris."), ("Rome is the capital of Italy.", "Rome, Italé.")]


def csv_bytes(encoding: str = "utf-8", extra: str = "") -> bytes:
    lines = ["context,model_output"] + [f'"{c}","{o}"' for c, o in GOOD_ROWS]
    return ("\n".join(lines[:2] + ([extra] if extra else []) + lines[2:]) + "\n").encode(encoding)


def jsonl_bytes(extra: str = "") -> bytes:
    lines = [json.dumps({"context": c, "model_output": o}) for c, o in GOOD_ROWS]
    return ("\n".join(lines[:1] + ([extra] if extra else []) + lines[1:]) + "\n").encode("utf-8")


# name -> (file name, bytes, good rows it holds, words of its message or report)
FILE_CASES: dict[str, tuple[str, bytes, int, str]] = {
    "empty file": ("items.csv", b"", 0, "empty"),
    "binary file": ("items.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, 0, "binary"),
    "zip named .csv": ("items.csv", b"PK\x03\x04" + b"\x00" * 200, 0, "zip"),
    "Windows-1252 CSV": ("items.csv", csv_bytes("cp1252"), 2, "Windows-1252"),
    "ragged CSV rows": ("items.csv", csv_bytes(extra='"Too","many","values"'), 2, "row"),
    "JSONL with a broken line": ("items.jsonl", jsonl_bytes(extra='{"context": "cut off'), 2, "row 2"),
    "JSONL line that is not an object": ("items.jsonl", jsonl_bytes(extra="[1, 2, 3]"), 2, "row 2"),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
@pytest.mark.timing
def test_a_bad_study_import_is_reported_and_good_rows_are_kept(tmp_path: Path, case: str) -> None:
    name, content, good, expected = FILE_CASES[case]
    services = make_study_services(tmp_path)
    demo = build(services)
    study_id = create_study(demo)
    path = tmp_path / name
    path.write_bytes(content)
    preview, preview_s = timed(lambda: plain(handler(demo, "on_preview")(study_id, str(path),
                                                                           request=signed_in("ada"))))
    mapping = [v(preview, f"gl-import-map-{i}") for i in range(8)]
    imported, import_s = timed(lambda: plain(handler(demo, "on_import")(
        signed_in("ada"), study_id, str(path), v(preview, "gl-import-id"), *mapping)))
    report = message(imported, "gl-import-report") + message(preview, "gl-import-report")
    assert expected.lower() in report.lower(), report
    assert "Traceback" not in report
    assert preview_s < ONE_SECOND and import_s < ONE_SECOND, (preview_s, import_s)
    assert services.studies is not None
    ada = services.studies.get_user("ada")
    assert ada is not None
    items = services.studies.list_items(ada, study_id)
    assert len(items) == good
    if good:
        assert dict(items[1].fields)["MODEL OUTPUT"] == "Rome, Italé."  # decoded right, whatever the encoding
    services.store.close()


@pytest.mark.parametrize("case", sorted(FILE_CASES))
@pytest.mark.timing
def test_a_bad_batch_file_is_reported_and_good_rows_are_graded(tmp_path: Path, case: str) -> None:
    name, content, good, expected = FILE_CASES[case]
    services = with_batch(make_services(tmp_path))
    demo = build(services)
    path = tmp_path / name
    path.write_bytes(content)
    preview, seconds = timed(lambda: by_id(demo, handler(demo, "on_batch_upload")(
        str(path), ", ".join(["CONTEXT", "USER INPUT", "MODEL OUTPUT", "GOLD ANSWER"]), gr.Request())))
    assert seconds < ONE_SECOND
    note = text(value(preview["gl-batch-preview-note"]))
    updates = start(demo, path, mapping=["context", "", "model_output", ""] if good else MAPPING)
    said = " ".join(text(value(update.get("gl-batch-message"))) for update in updates) + " " + note
    assert "Traceback" not in said and "Traceback" not in str(updates)
    if good:
        assert f"{good} of" in said or f"{good} rows" in said, said
        assert expected.lower() in said.lower(), said
        assert services.store.count_judgments() == good
    else:
        assert expected.lower() in said.lower(), said
        assert services.store.count_judgments() == 0
    services.store.close()


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_a_username_cannot_carry_markup(tmp_path: Path, payload: str) -> None:
    """Annotator names appear in labels, reports and exports: they are refused at creation if they could
    be markup (and escaped wherever shown regardless: tests/test_webapp_studies_render.py)."""
    services = make_study_services(tmp_path, users={})
    assert services.studies is not None
    with pytest.raises(StudyInputError, match="not allowed"):
        services.studies.create_user(f"eve{payload}", "a long enough password", role="annotator")
    services.store.close()
