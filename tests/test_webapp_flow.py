"""The web app's callbacks, driven through the built Blocks with a scripted judge and a real SQLite store."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import pytest

from core.batch import BatchJobs, JobSpec, load_rubric_file
from core.errors import JudgeError, StorageError
from core.judge.base import DEFAULT_MAX_NEW_TOKENS, Generation
from core.judge.options import judge_choice
from core.prompt import DEFAULT_TAGS
from core.store import Store
from tests.fakes import WELL_FORMED, ScriptedJudge
from tests.test_webapp_render import Markup
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    answer,
    build,
    by_id,
    component,
    grade_in_form,
    handler,
    make_services,
    value,
)
from webapp import Services, grade_tab, main

CONTEXT = "France's capital city is Paris, on the Seine."
OUTPUT = "Paris is the capital of France."


def grade_inputs(
    texts: tuple[str, str, str, str] = (CONTEXT, "What is the capital of France?", OUTPUT, ""),
    criteria: str = FAITHFULNESS_CRITERIA,
    rubric: str = FAITHFULNESS_RUBRIC,
    tags: tuple[str, ...] = DEFAULT_TAGS,
) -> list[Any]:
    return [*tags, *texts, criteria, rubric, DEFAULT_MAX_NEW_TOKENS]


def run_grade(demo: gr.Blocks, *inputs: Any) -> list[dict[str, Any]]:
    """Every update the Grade button's events make, keyed by elem_id."""
    return [by_id(demo, update) for update in grade_in_form(demo, *inputs)]


def final_view(updates: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for update in updates:
        merged.update(update)
    return {key: value(val) for key, val in merged.items()}


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    services = make_services(tmp_path)
    yield services
    services.store.close()


@pytest.fixture
def demo(services: Services) -> gr.Blocks:
    return build(services)


# --- grading ---------------------------------------------------------------------------------


def test_grading_streams_then_renders_and_stores_the_judgment(
    demo: gr.Blocks, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grade_tab, "STREAM_EVERY_S", 0.0)  # every piece is drawn
    updates = run_grade(demo, *grade_inputs())
    streamed = [value(u["gl-stream"]) for u in updates if "gl-stream" in u]
    assert len(streamed) > 3, "the raw answer should arrive in several pieces"
    assert max(streamed, key=len) == WELL_FORMED
    assert updates[-1]["gl-stream"]["visible"] is False  # the live box gives way to the rendering

    view = final_view(updates)
    card = Markup(view["gl-result-card"]).all_text
    stored = services.store.list_judgments()
    assert len(stored) == 1
    assert f"#{stored[0].id}" in card and "1" in card and "ok" in card
    fields = Markup(view["gl-result-fields"])
    # "capital" in the CONTEXT and USER INPUT; in the MODEL OUTPUT it lies inside the longer phrase.
    assert [m for m, _ in fields.marks] == ["capital", "capital", "Paris is the ", "capital", " of France"]
    assert fields.max_mark_depth == 1
    assert "adds nothing the context does not say" in Markup(view["gl-result-reasoning"]).all_text
    assert view["gl-result-raw"] == WELL_FORMED
    assert view["gl-result-plot"] is not None  # the scripted judge gives a distribution

    judgment = services.store.get_judgment(stored[0].id)
    assert judgment is not None and judgment.score == 1
    assert judgment.fields["CONTEXT"] == CONTEXT and judgment.fields["MODEL OUTPUT"] == OUTPUT


class Clock:
    """A monotonic clock that a judge moves forward by `step` seconds per streamed piece."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 1000.0, step

    def monotonic(self) -> float:
        return self.now


class PacedJudge(ScriptedJudge):
    def __init__(self, clock: Clock) -> None:
        super().__init__(chunk_size=8)
        self.clock = clock

    def stream(self, prompt: str, **kwargs: Any) -> Iterator[str | Generation]:
        for event in super().stream(prompt, **kwargs):
            if isinstance(event, str):
                self.clock.now += self.clock.step
            yield event


def test_the_live_box_is_redrawn_at_most_every_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(step=0.03)
    monkeypatch.setattr(grade_tab, "time", clock)
    services = make_services(tmp_path, judge=PacedJudge(clock))
    updates = run_grade(build(services), *grade_inputs())
    drawn = [value(u["gl-stream"]) for u in updates if "gl-stream" in u and value(u["gl-stream"])]
    pieces = -(-len(WELL_FORMED) // 8)
    # The first piece at once, then one redraw per 0.1 s of (fake) time: every 4th piece at 0.03 s a piece.
    assert [len(text) for text in drawn] == [min(8 * n, len(WELL_FORMED)) for n in range(1, pieces + 1, 4)]
    assert all(WELL_FORMED.startswith(text) for text in drawn)
    assert value(final_view(updates)["gl-result-raw"]) == WELL_FORMED  # the finished answer is shown whole


def test_renamed_tags_reach_the_prompt_and_the_highlights(demo: gr.Blocks, services: Services) -> None:
    tags = ("SOURCE", "QUESTION", "RESPONSE", "REFERENCE")
    view = final_view(run_grade(demo, *grade_inputs(tags=tags, criteria="Is the RESPONSE faithful to the SOURCE?")))
    prompt = services.judge.prompts[-1]  # type: ignore[union-attr]
    assert "<SOURCE>\n" + CONTEXT in prompt and "<RESPONSE>\n" + OUTPUT in prompt and "<REFERENCE>" not in prompt
    assert "RESPONSE" in Markup(view["gl-result-fields"]).all_text


def test_unfound_highlight_is_listed_with_a_note_when_it_is_in_the_rubric(tmp_path: Path) -> None:
    judge = ScriptedJudge(answer("- fine", ["Paris", "supported by the CONTEXT", "moon"], 1))
    services = make_services(tmp_path, judge=judge)
    demo = build(services)
    view = final_view(run_grade(demo, *grade_inputs()))
    text = Markup(view["gl-result-ungrounded"]).all_text
    assert "supported by the CONTEXT (only in the pass criteria or rubric)" in text
    assert "moon" in text and "moon (only" not in text


def test_unparseable_answer_shows_a_failed_card_not_a_fake_score(tmp_path: Path) -> None:
    services = make_services(tmp_path, judge=ScriptedJudge("I think it is fine.", distribution={}))
    view = final_view(run_grade(build(services), *grade_inputs()))
    card = Markup(view["gl-result-card"]).all_text
    assert "failed" in card and "\u2014" in card
    assert view["gl-result-plot"] is None
    assert services.store.list_judgments()[0].score is None


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (grade_inputs(rubric=""), "rubric names no scores"),
        (grade_inputs(rubric="Grade it sensibly."), "names no scores"),
        (grade_inputs(criteria=" "), "pass criteria are empty"),
        (grade_inputs(texts=("", " ", "", "")), "Every field is empty"),
        (grade_inputs(texts=(CONTEXT, "What is the capital of France?", " ", "")), "The MODEL OUTPUT field is empty"),
        (grade_inputs(tags=("A", "A", "C", "D"), texts=("x", "y", "", "")), "both tagged 'A'"),
        (grade_inputs(tags=("CON<TEXT", *DEFAULT_TAGS[1:])), "may not contain"),
    ],
)
def test_input_errors_become_messages(demo: gr.Blocks, services: Services, inputs: list[Any], expected: str) -> None:
    updates = run_grade(demo, *inputs)
    message = value(final_view(updates)["gl-message"])
    assert expected in Markup(message).all_text
    assert "gl-message-error" in message and "Traceback" not in message
    assert services.store.list_judgments() == []


class FailingJudge(ScriptedJudge):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def stream(self, prompt: str, **_: Any) -> Iterator[str | Generation]:
        yield "<reasoning>"
        raise self.error


@pytest.mark.parametrize(
    ("judge", "expected"),
    [
        (ScriptedJudge(max_prompt_chars=100), "the limit is 100"),
        (FailingJudge(JudgeError("CUDA out of memory; try --quantization nf4")), "CUDA out of memory"),
        (FailingJudge(RuntimeError("kaboom")), "Something went wrong (RuntimeError: kaboom)"),
    ],
)
def test_judge_errors_become_messages(tmp_path: Path, judge: Any, expected: str) -> None:
    services = make_services(tmp_path, judge=judge)
    view = final_view(run_grade(build(services), *grade_inputs()))
    assert expected in Markup(view["gl-message"]).all_text
    assert view["gl-result"] is None or "gl-result-card" not in view  # no stale rendering


def test_a_new_grade_hides_the_previous_result_until_it_finishes(demo: gr.Blocks) -> None:
    run_grade(demo, *grade_inputs())
    second = run_grade(demo, *grade_inputs(rubric=""))
    assert second[-1]["gl-result"] == {"__type__": "update", "visible": False}


# --- the judge failed to load ----------------------------------------------------------------


def test_load_error_banner_and_grade_message_when_the_judge_is_missing(tmp_path: Path) -> None:
    reason = "Could not load /models/glider: no config.json there."
    services = make_services(tmp_path, judge=None, judge_error=reason)
    demo = build(services)
    banner = Markup(component(demo, "gl-banner").value).all_text
    assert reason in banner and "--model /path/to/local/model" in banner
    message = Markup(value(final_view(run_grade(demo, *grade_inputs()))["gl-message"])).all_text
    assert "not loaded" in message and reason in message
    with pytest.raises(gr.Error, match="not loaded"):
        handler(demo, "grade")(CONTEXT, "", OUTPUT, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC)


def test_while_the_judge_loads_the_app_says_so_then_switches_to_ready(tmp_path: Path) -> None:
    services = make_services(tmp_path, judge=None)
    services.judge_loading = "PatronusAI/glider (auto, auto)"
    demo = build(services)
    assert "Loading the judge: PatronusAI/glider" in Markup(component(demo, "gl-banner").value).all_text
    assert handler(demo, "status")()["state"] == "loading"
    message = Markup(value(final_view(run_grade(demo, *grade_inputs()))["gl-message"])).all_text
    assert "still loading" in message
    with pytest.raises(gr.Error, match="still loading"):
        handler(demo, "grade")(CONTEXT, "", OUTPUT, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC)

    services.judge, services.judge_loading = ScriptedJudge(), None  # what the loader thread does
    status = handler(demo, "status")()
    assert status["state"] == "ready" and status["judge"]["model_id"] == "tests/scripted-judge"
    assert handler(demo, "grade")(CONTEXT, "", OUTPUT, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC)["score"] == 1
    # The banner's poll (a gr.Timer) now renders the ready banner and switches itself off.
    tick = next(fn.fn for fn in demo.fns.values() if fn.name == "<lambda>" and len(fn.outputs) == 2)
    updates = tick()
    banner, timer = (updates[block] for block in sorted(updates, key=lambda b: b.__class__.__name__))
    assert "tests/scripted-judge" in Markup(banner).all_text and timer.active is False


def test_banner_describes_the_loaded_judge(demo: gr.Blocks) -> None:
    banner = Markup(component(demo, "gl-banner").value).all_text
    assert "tests/scripted-judge" in banner and "scripted" in banner and "cpu" in banner


# --- why this back-end (core.judge.options.judge_choice, e.g. --backend auto) ---------------------


REASON = "no CUDA GPU and llama-cpp-python is installed: GGUF Q4_K_M through llama.cpp, the fastest CPU path"


@pytest.mark.parametrize("loaded", [True, False])
def test_the_back_end_choice_reaches_the_banner_escaped(tmp_path: Path, loaded: bool) -> None:
    payload = '<img src=x onerror="window.__xss=1">'
    services = make_services(tmp_path, judge=ScriptedJudge() if loaded else None)
    services.judge_loading = None if loaded else "llamacpp: PatronusAI/glider-gguf"
    services.judge_reason = f"{REASON} {payload}"
    demo = build(services)
    banner = component(demo, "gl-banner").value
    assert "<img" not in banner and html.escape(payload, quote=True) in banner
    assert f"Why this back-end: {REASON} {payload}" in Markup(banner).all_text
    assert handler(demo, "status")()["reason"] == services.judge_reason


def test_the_app_takes_core_s_back_end_choice_and_its_reason(tmp_path: Path) -> None:
    gguf = tmp_path / "glider-Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF")  # auto reads the name only; nothing is loaded here
    args = main.parse_args(["--model", str(gguf), "--device", "cpu", "--db", f"sqlite:///{tmp_path / 'app.db'}"])
    choice = judge_choice(args)
    assert choice.backend == "llamacpp" and "GGUF" in choice.reason
    store = Store(args.db)
    services = main.build_services(args, store, auth=False, choice=choice)
    assert services.judge_reason == choice.reason
    assert services.judge_loading == f"llamacpp: {gguf} (device=cpu)"
    assert services.judge_identity == {"backend": "llamacpp", "model": str(gguf)}
    assert choice.reason in Markup(component(build(services), "gl-banner").value).all_text
    store.close()


def test_a_named_back_end_is_kept_and_said_so(tmp_path: Path) -> None:
    args = main.parse_args(["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "glider"])
    services = main.build_services(args, Store(f"sqlite:///{tmp_path / 'app.db'}"), auth=False)
    assert services.judge_loading.startswith("openai: glider")
    assert services.judge_reason == "openai: chosen with --backend (or GLIDER_BACKEND)"
    services.store.close()


# --- the form --------------------------------------------------------------------------------


def test_choosing_a_preset_fills_criteria_and_rubric_and_load_example_fills_the_fields(
    demo: gr.Blocks, services: Services
) -> None:
    preset = services.presets[6]
    updates = by_id(demo, handler(demo, "on_preset")(preset.key))
    assert value(updates["gl-pass-criteria"]) == preset.pass_criteria
    assert value(updates["gl-rubric"]) == preset.rubric

    updates = by_id(demo, handler(demo, "on_load_example")(preset.key))
    for i, tag in enumerate(DEFAULT_TAGS):
        assert value(updates[f"gl-tag-{i}"]) == tag
        assert value(updates[f"gl-field-{i}"]) == preset.example.get(tag, "")

    error = by_id(demo, handler(demo, "on_load_example")(None))
    assert "Choose a rubric preset" in value(error["gl-message"])


def test_scale_follows_the_rubric(demo: gr.Blocks) -> None:
    on_rubric = handler(demo, "on_rubric")
    assert value(by_id(demo, on_rubric("1: bad\n3: fine\n5: great"))["gl-scale"]).startswith("1\u20135")
    assert "names no scores" in value(by_id(demo, on_rubric(""))["gl-scale"])


def test_renaming_a_tag_relabels_its_field(demo: gr.Blocks) -> None:
    updates = by_id(demo, handler(demo, "on_tags")("SOURCE", "USER INPUT", " ", "GOLD ANSWER"))
    assert updates["gl-field-0"]["label"] == "SOURCE"
    assert updates["gl-field-2"]["label"] == "(untagged field)"


# --- history ---------------------------------------------------------------------------------


def test_history_lists_reopens_and_copies_back_to_the_form(demo: gr.Blocks, services: Services) -> None:
    fresh = final_view(run_grade(demo, *grade_inputs()))
    run_grade(demo, *grade_inputs(texts=("", "Capital of Italy?", "Rome <b>is</b> the capital.", "Rome")))

    table = value(by_id(demo, handler(demo, "on_refresh")())["gl-history"])
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["ID", "Time", "Score", "Status", "Model", "Preview"]
    assert len(table) == 2
    first_id = min(int(i) for i in table["ID"])
    assert "Rome <b>is</b> the capital." in set(table["Preview"])  # a Dataframe cell shows text as text

    row = table[table["ID"] == str(first_id)].iloc[0].tolist()
    raw = handler(demo, "on_select")(gr.SelectData(None, {"index": [0, 0], "value": row[0], "row_value": row}))
    opened = {key: value(val) for key, val in by_id(demo, raw).items()}
    assert opened["gl-history-result-fields"] == fresh["gl-result-fields"]  # same rendering as when graded
    assert opened["gl-history-result-reasoning"] == fresh["gl-result-reasoning"]
    selected = next(val for key, val in raw.items() if isinstance(key, gr.State))
    assert selected == first_id

    copied = by_id(demo, handler(demo, "on_edit")(selected))
    assert value(copied["gl-field-0"]) == CONTEXT and value(copied["gl-field-2"]) == OUTPUT
    assert value(copied["gl-pass-criteria"]) == FAITHFULNESS_CRITERIA
    assert copied["gl-tabs"].selected == "grade"
    assert f"#{first_id}" in value(copied["gl-message"])


@pytest.mark.parametrize(("wanted", "expected"), [(999, "no judgment #999"), (None, "Enter a judgment id")])
def test_opening_an_unknown_judgment_says_so(demo: gr.Blocks, wanted: Any, expected: str) -> None:
    updates = by_id(demo, handler(demo, "on_open")(wanted))
    assert expected in value(updates["gl-history-message"])


def test_edit_without_a_selection_says_so(demo: gr.Blocks) -> None:
    assert "Open a judgment first" in value(by_id(demo, handler(demo, "on_edit")(None))["gl-history-message"])


def test_history_of_an_empty_store_is_an_empty_table(demo: gr.Blocks) -> None:
    table = value(by_id(demo, handler(demo, "on_refresh")())["gl-history"])
    assert len(table) == 0 and list(table.columns)[0] == "ID"


# --- the HTTP API function and the event configuration -----------------------------------------


def test_api_function_returns_the_result_json(demo: gr.Blocks, services: Services) -> None:
    result = handler(demo, "grade")(CONTEXT, "", OUTPUT, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC)
    assert result["score"] == 1 and result["status"] == "ok"
    assert services.store.get_judgment(result["judgment_id"]) is not None
    with pytest.raises(gr.Error, match="rubric names no scores"):
        handler(demo, "grade")(CONTEXT, "", OUTPUT, "", FAITHFULNESS_CRITERIA, "")


def test_grade_events_queue_apart_and_only_grade_and_status_are_public(demo: gr.Blocks) -> None:
    fns = {fn.name: fn for fn in demo.fns.values()}
    assert fns["on_grade"].concurrency_id == "judge" and fns["on_grade"].concurrency_limit == 1
    # Several /grade calls wait in the batcher at once (two batches' worth); a serialising back-end keeps
    # them apart from the streamed grade (tests/test_webapp_grade_queue.py).
    assert fns["grade"].concurrency_id == "grade-api" and fns["grade"].concurrency_limit == 16
    assert fns["grade"].api_name == "grade" and fns["grade"].api_visibility == "public"
    public = [fn.name for fn in demo.fns.values() if fn.api_visibility == "public"]
    assert sorted(public) == ["compare", "grade", "status"]  # compare: webapp.compare_panel


def test_the_app_builds_without_presets(tmp_path: Path) -> None:
    services = make_services(tmp_path, presets=[])
    demo = build(services)
    assert component(demo, "gl-preset").choices == []
    assert "names no scores" in component(demo, "gl-scale").value
    assert "Choose a rubric preset" in value(by_id(demo, handler(demo, "on_load_example")(None))["gl-message"])
    view = final_view(run_grade(demo, *grade_inputs()))  # grading works from typed-in criteria and rubric
    assert "gl-result-card" in view


def test_storage_errors_in_history_become_messages(demo: gr.Blocks, services: Services,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise StorageError("Could not read the database at sqlite:///x.db: it is read-only.")

    monkeypatch.setattr(services.store, "list_judgments", broken)
    monkeypatch.setattr(services.store, "get_judgment", broken)
    for name, args in (("on_refresh", ()), ("on_open", (1,)), ("on_edit", (1,))):
        message = value(by_id(demo, handler(demo, name)(*args))["gl-history-message"])
        assert "it is read-only" in Markup(message).all_text and "Traceback" not in message


def test_the_api_refuses_an_empty_model_output(demo: gr.Blocks, services: Services) -> None:
    with pytest.raises(gr.Error, match="The MODEL OUTPUT field is empty"):
        handler(demo, "grade")(CONTEXT, "What is the capital of France?", "", "", FAITHFULNESS_CRITERIA,
                                   FAITHFULNESS_RUBRIC)
    assert services.store.list_judgments() == []


def test_a_yaml_rubric_and_the_same_rubric_typed_give_the_same_prompt(tmp_path: Path) -> None:
    """`rubric: |` keeps a final newline (and an editor may leave spaces or CRLF); the prompt does not."""
    rubric_file = tmp_path / "rubric.yaml"
    criteria_block = "".join(f"  {line}\n" for line in FAITHFULNESS_CRITERIA.splitlines())
    rubric_block = "".join(f"  {line}   \n" for line in FAITHFULNESS_RUBRIC.splitlines())  # trailing spaces too
    rubric_file.write_text(f"pass_criteria: |\n{criteria_block}rubric: |\n{rubric_block}", encoding="utf-8")
    loaded = load_rubric_file(rubric_file)
    assert loaded["rubric"].endswith("   \n")  # what YAML hands over is not what was typed
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"context": CONTEXT, "model_output": OUTPUT}) + "\n", encoding="utf-8")

    judge = ScriptedJudge()
    services = make_services(tmp_path, judge=judge)
    jobs = BatchJobs(services.store)
    spec = JobSpec(pass_criteria=loaded["pass_criteria"], rubric=loaded["rubric"], tags=tuple(loaded["tags"]))
    job = jobs.open(data, spec, {"backend": "scripted"}).job
    jobs.run(job.id, judge)
    [batch_row] = jobs.results(job.id)
    demo = build(services)
    typed = grade_inputs(texts=(CONTEXT, "", OUTPUT, ""), rubric=FAITHFULNESS_RUBRIC + "\r\n",
                         criteria=FAITHFULNESS_CRITERIA)
    form = final_view(run_grade(demo, *typed))
    api = handler(demo, "grade")(CONTEXT, "", OUTPUT, "", FAITHFULNESS_CRITERIA, FAITHFULNESS_RUBRIC)

    assert len(judge.prompts) == 3 and len(set(judge.prompts)) == 1
    assert f"Rubric:\n{FAITHFULNESS_RUBRIC}\n\nYour output" in judge.prompts[0]
    sha = {services.store.get_judgment(judgment_id).repro["prompt_sha256"]  # type: ignore[union-attr]
           for judgment_id in (batch_row.judgment_id, api["judgment_id"])}
    assert sha == {api["backend"]["prompt_sha256"]} and "gl-result-card" in form
    services.store.close()


# --- the Grade button while a grade runs ----------------------------------------------------------


def _button(update: Any) -> tuple[Any, Any]:
    return update["value"], update["interactive"]


@pytest.mark.parametrize(
    ("judge", "inputs", "message"),
    [
        ("default", grade_inputs(), None),
        ("default", grade_inputs(rubric=""), "rubric names no scores"),
        ("default", grade_inputs(texts=(CONTEXT, "", "", "")), "MODEL OUTPUT field is empty"),
        (FailingJudge(RuntimeError("kaboom")), grade_inputs(), "kaboom"),
        (None, grade_inputs(), "judge model is not loaded"),
    ],
)
def test_the_grade_button_is_busy_while_grading_and_ready_after(
    tmp_path: Path, judge: Any, inputs: list[Any], message: str | None
) -> None:
    services = make_services(tmp_path, judge=judge)
    updates = run_grade(build(services), *inputs)
    start, done = updates[0], updates[-1]
    assert _button(start["gl-grade"]) == ("Grading\u2026", False)
    assert "Grading" in Markup(value(start["gl-message"])).all_text  # said next to the live box too
    assert _button(done["gl-grade"]) == ("Grade", True)
    shown = Markup(value(done["gl-message"])).all_text if value(done["gl-message"]) else ""
    if message is None:
        assert shown == "" and "gl-result-card" in done
    else:
        assert message in shown
    services.store.close()


def test_a_result_that_cannot_be_shown_still_frees_the_button(
    demo: gr.Blocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> Any:
        raise ValueError("unrenderable")

    monkeypatch.setattr(grade_tab.JudgmentView, "from_result", broken)
    done = run_grade(demo, *grade_inputs())[-1]
    assert _button(done["gl-grade"]) == ("Grade", True)
    assert "unrenderable" in Markup(value(done["gl-message"])).all_text


def test_a_second_grade_while_one_runs_is_refused_and_queues_nothing(demo: gr.Blocks) -> None:
    check = handler(demo, "on_grade_check")
    assert list(check(False).values()) == [True]  # claims the page's one grade
    with pytest.raises(gr.Error, match="already running"):
        check(True)
    note = by_id(demo, handler(demo, "on_grade_refused")())["gl-grade-note"]
    assert "already running" in Markup(value(note)).all_text
    # The grade starts only when the check passed; rendering runs whatever happened to the grade.
    names = {fn._id: fn.name for fn in demo.fns.values()}
    deps = {names[dep["id"]]: dep for dep in demo.config["dependencies"] if dep["id"] in names}
    check_dep, refused, start = deps["on_grade_check"], deps["on_grade_refused"], deps["on_grade_start"]
    grade, done = deps["on_grade"], deps["on_grade_done"]
    assert check_dep["trigger_mode"] == "once" and not check_dep["queue"]
    assert refused["trigger_after"] == check_dep["id"] and refused["trigger_only_on_failure"]
    assert start["trigger_after"] == check_dep["id"] and start["trigger_only_on_success"]
    assert grade["trigger_after"] == start["id"]
    assert done["trigger_after"] == grade["id"] and not done["trigger_only_on_success"]
