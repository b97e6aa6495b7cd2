"""Shared helpers for the web app tests: services on a temporary SQLite file, handler and component
lookup in a built Blocks, and a launched server on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from core.batch import BatchJobs  # noqa: E402
from core.errors import JudgeError  # noqa: E402
from core.judge.base import DEFAULT_MAX_NEW_TOKENS, BatchOutcome, Generation, SerialBackend  # noqa: E402
from core.presets import Preset, load_presets  # noqa: E402
from core.store import Store  # noqa: E402
from core.studies import ADMIN, ANNOTATOR, Studies  # noqa: E402
from tests.fakes import ScriptedJudge  # noqa: E402
from webapp import Services, build_app, launch_options  # noqa: E402
from webapp.app import auth_options, enable_queue  # noqa: E402

# Each one, if it ever ran, would set window.__xss (or open a dialog, which the browser tests also trap).
XSS_PAYLOADS = (
    "<script>window.__xss=1</script>",
    "<img src=x onerror=window.__xss=1>",
    '"><svg onload=alert(1)>',
    "javascript:alert(1)",
    "<svg><script>window.__xss=5</script></svg>",
    '<iframe srcdoc="<script>parent.__xss=6</script>"></iframe>',
    '<a href="javascript:window.__xss=7">click me</a>',
    "[click me](javascript:window.__xss=8)",
    '![x](x" onerror="window.__xss=9)',
    "<details open ontoggle=window.__xss=10>",
    "<body onload=window.__xss=11>",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=12>",
    "</textarea><script>window.__xss=13</script>",
    "</title><script>window.__xss=14</script>",
    "<input autofocus onfocus=window.__xss=15>",
    '<object data="javascript:window.__xss=16"></object>',
    "<<script>script>window.__xss=17<</script>/script>",
    "<img src=x onerror=&#119;indow.__xss=18>",
    "{{constructor.constructor('window.__xss=19')()}}",
    "<div style=\"background:url(javascript:window.__xss=20)\">styled</div>",
    "' onmouseover='window.__xss=21' x='",
    '<video><source onerror="window.__xss=22"></video>',
    "<script src=data:text/javascript,window.__xss=23></script>",
    "<!--<img src=--><img src=x onerror=window.__xss=24>",
    "<svg><animate onbegin=window.__xss=25 attributeName=x dur=1s>",
)

FAITHFULNESS_CRITERIA = "Is every claim in the MODEL OUTPUT supported by the CONTEXT?"
FAITHFULNESS_RUBRIC = (
    "0: The MODEL OUTPUT contains a claim the CONTEXT does not support.\n"
    "1: Every claim in the MODEL OUTPUT is supported by the CONTEXT."
)


def answer(reasoning: str, highlights: list[str], score: int | str) -> str:
    """A GLIDER-format answer for a ScriptedJudge."""
    return (f"<reasoning>\n{reasoning}\n</reasoning>\n<highlight>\n{highlights!r}\n</highlight>\n"
            f"<score>\n{score}\n</score>")


# A realistic answer to the faithfulness preset's example (the Hartwell Bridge), for the screenshot.
BRIDGE_ANSWER = answer(
    "\n".join((
        '- The MODEL OUTPUT says the bridge "opened to traffic in March 1987" and "spans 412 metres across the '
        'Lune estuary"; the CONTEXT states both.',
        '- The pedestrian walkway added on the "eastern side in 2004" is also stated in the CONTEXT.',
        '- The claim that the bridge "was designed by the Danish engineering firm Holm & Bech" appears nowhere in '
        "the CONTEXT: it is an unsupported addition, whether or not it is true.",
        "- Because one claim is not supported by the CONTEXT, the output does not meet the pass criteria.",
    )),
    ["designed by the Danish engineering firm Holm & Bech", "opened to traffic in March 1987", "spans 412 metres",
     "eastern side in 2004"],
    0,
)
BRIDGE_DISTRIBUTION = {0: 0.83, 1: 0.17}


def quoted_output(prompt: str) -> str:
    """The MODEL OUTPUT a GLIDER prompt carries (what BatchingJudge quotes back)."""
    return prompt.split("<MODEL OUTPUT>\n", 1)[1].split("\n</MODEL OUTPUT>", 1)[0]


class BatchingJudge(ScriptedJudge, SerialBackend):
    """A scripted judge with `generate_batch`: answers each prompt by highlighting its own MODEL OUTPUT.

    It records the size of every batch and counts generations running at once (a stream counts too);
    each batch and each streamed piece takes `delay` seconds, so concurrent callers queue up behind it.
    Like an in-process model it runs one generation at a time under its own `generation_lock` (the
    back-end contract's concurrency rule); `serial=False` makes it a server that runs them side by side.
    """

    def __init__(self, delay: float = 0.2, serial: bool = True) -> None:
        ScriptedJudge.__init__(self)
        SerialBackend.__init__(self)
        self.delay = delay
        self.serial = serial
        self.batches: list[int] = []
        self.active = 0
        self.most_at_once = 0
        self.guard = threading.Lock()

    @contextmanager
    def _running(self) -> Iterator[None]:
        with self.generation_lock if self.serial else contextlib.nullcontext():
            with self.guard:
                self.active += 1
                self.most_at_once = max(self.most_at_once, self.active)
            try:
                yield
            finally:
                with self.guard:
                    self.active -= 1

    def generate_batch(self, prompts: Sequence[str], *, scales: Sequence[tuple[int, int] | None],
                       max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> list[BatchOutcome]:
        with self._running():
            with self.guard:
                self.batches.append(len(prompts))
            time.sleep(self.delay)
            outcomes: list[BatchOutcome] = []
            for prompt, scale in zip(prompts, scales, strict=True):
                try:
                    self._check(prompt)
                except JudgeError as error:  # this prompt alone
                    outcomes.append(error)
                    continue
                text = answer("- It says what it says.", [quoted_output(prompt)], 1)
                outcomes.append(replace(self._generation(prompt, scale), text=text))
            return outcomes

    def stream(self, prompt: str, **kwargs: object) -> Iterator[str | Generation]:
        with self._running():
            for event in super().stream(prompt, **kwargs):  # type: ignore[arg-type]
                if isinstance(event, str):
                    time.sleep(self.delay / 4)
                yield event


def make_services(
    tmp_path: Path,
    judge: Any = "default",
    presets: list[Preset] | None = None,
    judge_error: str | None = None,
) -> Services:
    """Services with a real Store on a SQLite file under tmp_path and the shipped presets."""
    store = Store.from_path(tmp_path / "glider.db")
    return Services(
        store=store,
        presets=load_presets() if presets is None else presets,
        judge=ScriptedJudge() if judge == "default" else judge,
        judge_error=judge_error,
    )


def with_batch(services: Services, identity: dict[str, Any] | None = None) -> Services:
    """The services with a batch job store on their own database (and, optionally, the judge's identity)."""
    services.batch = BatchJobs(services.store)
    services.judge_identity = identity
    return services


PASSWORD = "correct horse battery"
STUDY_USERS = {"ada": ADMIN, "ann": ANNOTATOR, "bob": ANNOTATOR}


def make_study_services(tmp_path: Path, judge: Any = "default", users: dict[str, str] | None = None) -> Services:
    """make_services with studies, sign-in on, and users (name -> role) who all have PASSWORD."""
    services = make_services(tmp_path, judge=judge)
    services.studies = Studies(services.store, password_cost=16)  # scrypt's cost kept low: tests only
    services.auth_enabled = True
    for name, role in (STUDY_USERS if users is None else users).items():
        services.studies.create_user(name, PASSWORD, role=role)
    return services


def signed_in(username: str | None) -> gr.Request:
    """The request Gradio hands a callback for a session signed in as `username` (None: not signed in)."""
    return gr.Request(username=username)


def handler(demo: gr.Blocks, name: str) -> Callable[..., Any]:
    """The Python function behind the event whose function is called `name`."""
    for block_fn in demo.fns.values():
        if block_fn.name == name and block_fn.fn is not None:
            return block_fn.fn
    raise LookupError(f"no event handler named {name!r}")


def grade_in_form(demo: gr.Blocks, *inputs: Any, request: gr.Request | None = None) -> list[dict[Any, Any]]:
    """Every update the Grade button's three events make, in order, as the page would run them.

    on_grade_start opens the live box, on_grade streams (in the judge's queue) and leaves the outcome in a
    State, on_grade_done renders it. `request`: who is signed in (with sign-in on), handed first as Gradio does.
    """
    updates: list[dict[Any, Any]] = [handler(demo, "on_grade_start")()]
    outcome = None
    for update in handler(demo, "on_grade")(*([request] if request is not None else []), *inputs):
        updates.append(update)
        outcome = next((val for key, val in update.items() if isinstance(key, gr.State)), outcome)
    updates.append(handler(demo, "on_grade_done")(outcome))
    return updates


def component(demo: gr.Blocks, elem_id: str) -> Any:
    """The component (or layout block) with this elem_id."""
    for block in demo.blocks.values():
        if getattr(block, "elem_id", None) == elem_id:
            return block
    raise LookupError(f"no block with elem_id {elem_id!r}")


def value(update: Any) -> Any:
    """The value a callback's output sets, whether given plainly or as gr.update(value=...)."""
    if isinstance(update, dict) and update.get("__type__") == "update":
        return update.get("value")
    return update


def by_id(demo: gr.Blocks, updates: dict[Any, Any]) -> dict[str, Any]:
    """A callback's {component: update} dict keyed by elem_id (components without one are dropped)."""
    return {block.elem_id: update for block, update in updates.items() if getattr(block, "elem_id", None)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _closing_stray_event_loops() -> Iterator[None]:
    """Close the event loops created meanwhile once the block ends.

    Gradio 6 makes throw-away loops when a Blocks is built and launched (gradio.utils.safe_get_lock
    and safe_get_stop_event call asyncio.new_event_loop() and never close them); with
    filterwarnings=error their ResourceWarning at garbage collection would fail an unrelated test.
    """
    created: list[asyncio.AbstractEventLoop] = []
    original = asyncio.new_event_loop

    def tracking() -> asyncio.AbstractEventLoop:
        loop = original()
        created.append(loop)
        return loop

    asyncio.new_event_loop = tracking  # type: ignore[assignment]
    try:
        yield
    finally:
        asyncio.new_event_loop = original  # type: ignore[assignment]
        for loop in created:
            if not loop.is_running() and not loop.is_closed():
                loop.close()
        asyncio.set_event_loop(None)


@contextmanager
def blocks() -> Iterator[gr.Blocks]:
    """A bare gr.Blocks to build components in, closing the event loops Gradio creates and drops meanwhile."""
    with _closing_stray_event_loops(), gr.Blocks() as demo:
        yield demo


def build(services: Services) -> gr.Blocks:
    """build_app, closing the event loops Gradio creates and drops while building."""
    with _closing_stray_event_loops():
        return build_app(services)


@contextmanager
def launched(services: Services, **launch_extra: Any) -> Iterator[str]:
    """Build and launch the app on a free local port (behind sign-in when services.auth_enabled); yield its URL.

    launch_extra goes to `Blocks.launch` as well (e.g. `mcp_server=True`, as `--mcp` passes it)."""
    with _closing_stray_event_loops():
        demo = enable_queue(build_app(services))  # as webapp.main serves it
        _, url, _ = demo.launch(
            prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
            **launch_options(), **auth_options(services), **launch_extra,
        )
        try:
            yield url
        finally:
            demo.close()
