"""The app as a Hugging Face Space: the README's front matter, the storage warning, and the --mcp flag.

What a real Space does with these (the volume, OAuth, preloading, MCP clients) cannot be reached from the
test machines; what is tested is what this repository controls: the configuration Spaces read, what the app
shows and logs for a given environment and mount table, and the launch options it passes to Gradio.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gradio as gr
import pytest
import yaml
from gradio_client import Client

from core.judge.common import DEFAULT_MODEL_ID
from core.storage import Mount
from tests.net import SLOW_MACHINE
from tests.webapp_helpers import build, component, launched, make_services
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


def test_the_api_the_mcp_tools_are_made_from_lists_grade_with_its_inputs(tmp_path: Path) -> None:
    """Gradio's MCP server turns the app's visible API endpoints into tools; here is that API (the `mcp`
    package itself is not installed on the test machines, so the tool list is not read over MCP)."""
    services = make_services(tmp_path)
    with launched(services) as url:
        client = Client(url, verbose=False, httpx_kwargs=SLOW_MACHINE)
        try:
            api = client.view_api(print_info=False, return_format="dict")
        finally:
            client.close()
    assert isinstance(api, dict)
    endpoints = api["named_endpoints"]
    assert set(endpoints) == {"/grade", "/status"}
    names = [parameter["parameter_name"] for parameter in endpoints["/grade"]["parameters"]]
    assert names == ["context", "user_input", "model_output", "gold_answer", "pass_criteria", "rubric",
                     "max_new_tokens"]
    services.store.close()
