"""The app as a Hugging Face Space: the README's front matter, the storage warning, and the --mcp flag.

What a real Space does with these (the volume, OAuth, preloading, MCP clients) cannot be reached from the
test machines; what is tested is what this repository controls: the configuration Spaces read, what the app
shows and logs for a given environment and mount table, and the launch options it passes to Gradio.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
import yaml
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from core.judge.common import DEFAULT_MODEL_ID
from core.storage import Mount
from tests.webapp_helpers import (
    FAITHFULNESS_CRITERIA,
    FAITHFULNESS_RUBRIC,
    build,
    component,
    launched,
    make_services,
)
from webapp.main import mcp_options, parse_args

pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting.*")

ROOT = Path(__file__).resolve().parent.parent


def front_matter() -> dict[str, object]:
    """The YAML block Spaces read at the top of README.md."""
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    block, _, _ = text[4:].partition("\n---\n")
    parsed = yaml.safe_load(block)
    assert isinstance(parsed, dict)
    return parsed


def test_front_matter_configures_the_space() -> None:
    config = front_matter()
    assert config["sdk"] == "gradio" and config["app_file"] == "app.py"
    assert config["sdk_version"] == gr.__version__  # the Space runs the Gradio the tests ran
    assert config["hf_oauth"] is True
    scopes, preloaded = config["hf_oauth_scopes"], config["preload_from_hub"]
    assert isinstance(scopes, list) and {"read-repos", "write-repos", "manage-repos"} <= set(scopes)
    # The model is downloaded when the Space is built, not at every restart.
    assert isinstance(preloaded, list) and DEFAULT_MODEL_ID in preloaded


def test_readme_gives_the_hardware_advice() -> None:
    readme = (ROOT / "README.md").read_text()
    for phrase in ("CPU basic", "ZeroGPU", "untested", "GLIDER_BUCKET_MOUNT", "GLIDER_DEMO_MAX_QUEUED",
                   "GLIDER_DEMO_MAX_INPUT_CHARS", "GLIDER_MCP", "postgresql"):
        assert phrase in readme, phrase


# ---- storage: the banner and the Studies tab


def _on_a_space_without_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPACE_ID", "team/glider")
    monkeypatch.setattr("core.storage.read_mounts", lambda *_: [Mount(Path("/"), "overlay")])


def test_a_space_without_a_bucket_says_so_in_the_banner_and_the_studies_tab(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    services = make_services(tmp_path)  # opened before SPACE_ID is set: the file stays in WAL mode
    _on_a_space_without_bucket(monkeypatch)
    demo = build(services)
    banner = str(component(demo, "gl-banner").value)
    assert "not kept" in banner and "Storage Bucket" in banner and "publish" in banner
    notice = component(demo, "gl-storage-studies")
    assert notice.visible and "wiped at every restart" in str(notice.value)
    services.store.close()


def test_locally_there_is_no_storage_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPACE_ID", raising=False)
    services = make_services(tmp_path)
    demo = build(services)
    assert "not kept" not in str(component(demo, "gl-banner").value)
    assert not component(demo, "gl-storage-studies").visible
    services.store.close()


# ---- --mcp


def test_mcp_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIDER_MCP", raising=False)
    assert parse_args([]).mcp is False and parse_args(["--mcp"]).mcp is True
    monkeypatch.setenv("GLIDER_MCP", "1")
    assert parse_args([]).mcp is True


def test_mcp_options_need_the_mcp_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Launch options for Gradio's MCP server, or a clear stop before anything starts when `mcp` is missing."""
    monkeypatch.delenv("GLIDER_MCP", raising=False)
    args = parse_args(["--mcp"])
    assert mcp_options(parse_args([])) == {}
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mcp" else real(name, *a))
    with pytest.raises(SystemExit, match=r'pip install "gradio\[mcp\]"'):
        mcp_options(args)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "mcp" else real(name, *a))
    assert mcp_options(args) == {"mcp_server": True}


def test_an_mcp_client_lists_grade_with_its_inputs_and_a_call_through_it_stores_a_judgment(tmp_path: Path) -> None:
    """The real thing: the app launched as `--mcp` launches it (Gradio's MCP server), an MCP client (the `mcp`
    package's streamable-HTTP client, as agents connect) lists the tools and calls `grade`."""
    services = make_services(tmp_path)
    fields = {"context": "Paris is the capital of France.", "user_input": "What is the capital of France?",
              "model_output": "Paris.", "gold_answer": "", "pass_criteria": FAITHFULNESS_CRITERIA,
              "rubric": FAITHFULNESS_RUBRIC}

    async def list_and_call(url: str) -> tuple[dict[str, Any], Any]:
        async with streamable_http_client(url + "gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = {tool.name: tool for tool in (await session.list_tools()).tools}
                return tools, await session.call_tool("grade", fields)

    with launched(services, **mcp_options(parse_args(["--mcp"]))) as url:
        # On a thread of its own: a test run earlier in the session (Playwright's sync API) may leave this
        # thread's event loop running, and asyncio.run refuses to start inside one.
        with ThreadPoolExecutor(max_workers=1) as pool:
            tools, answer = pool.submit(asyncio.run, list_and_call(url)).result(timeout=120)
    assert set(tools) == {"grade", "status", "compare"}
    schema = tools["grade"].inputSchema
    assert list(schema["properties"])[:6] == list(fields)  # the six inputs, in order; then max_new_tokens
    assert all(schema["properties"][name]["type"] == "string" for name in fields)
    assert "the text to be judged" in schema["properties"]["model_output"]["description"]
    assert answer.isError is False
    graded = ast.literal_eval(answer.content[0].text)  # Gradio 6.31's MCP server sends a dict as its Python repr
    assert graded["score"] == 1 and graded["judgment_id"] is not None
    stored = services.store.get_judgment(graded["judgment_id"])
    assert stored is not None and stored.fields["MODEL OUTPUT"] == "Paris." and stored.score == 1
    assert services.store.count_judgments() == 1
    services.store.close()
