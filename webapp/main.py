"""Command line of the web app: read settings (flags or environment), build the services, launch.

Every flag has an environment variable, so a Hugging Face Space (which runs `python app.py` with no
arguments) is configured through its Variables.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.accounts import Accounts
from core.batch import BatchJobs
from core.errors import GliderError
from core.hub_sign_in import HUB_MODE, PASSWORD_MODE, SIGN_IN_MODES, HubRoles, sign_in_mode
from core.judge import JudgeBackend, create_backend
from core.judge.options import JudgeChoice, add_judge_arguments, describe_options, judge_choice, judge_identity
from core.judge.speed_check import check_writing_speed
from core.judge.transformers_backend import warm_parallel_runtime
from core.presets import load_presets
from core.settings import default_db_url
from core.storage import storage_status
from core.store import Store
from core.studies import Studies
from core.studies.backup import backup_from_env
from webapp.app import auth_options, build_app, enable_queue, launch_options
from webapp.demo_limits import MAX_INPUT_CHARS_ENV, MAX_QUEUED_ENV, DemoLimits
from webapp.services import Services
from webapp.zero_gpu import wrap_for_zero_gpu

log = logging.getLogger("glider_studio")
README = Path(__file__).resolve().parent.parent / "README.md"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Flags override environment variables, which override the defaults."""
    env = os.environ
    on_spaces = bool(env.get("SPACE_ID"))
    parser = argparse.ArgumentParser(prog="app.py", description="GLIDER Studio: grade LLM outputs with GLIDER.")
    # The judge flags (--backend, --model, ...) are the CLI's own, so both build the same judge from the same words.
    add_judge_arguments(parser, env)
    parser.add_argument("--db", default=default_db_url(),
                        help="SQLAlchemy URL (env GLIDER_DB; default a SQLite file in GLIDER_DATA_DIR or ./data)")
    parser.add_argument("--host", default=env.get("GLIDER_HOST", "0.0.0.0" if on_spaces else "127.0.0.1"),
                        help="Address to listen on (env GLIDER_HOST)")
    parser.add_argument("--port", type=int, default=int(env.get("GLIDER_PORT", env.get("PORT", "7860"))),
                        help="Port (env GLIDER_PORT)")
    parser.add_argument("--share", action="store_true", help="Also open a public gradio.live link")
    parser.add_argument("--auth", nargs="?", const=PASSWORD_MODE, choices=SIGN_IN_MODES, default=None,
                        help="Require sign-in: `--auth` (or password) even before any user exists, `--auth hf` to "
                             "sign in with Hugging Face (env GLIDER_AUTH=1|password|hf). Without it: hf on a Space "
                             "with hf_oauth, password once `python -m core create-admin NAME` has made a user")
    parser.add_argument("--mcp", action="store_true", default=_truthy(env.get("GLIDER_MCP")),
                        help="Also serve the grade and status endpoints as MCP tools at /gradio_api/mcp/ "
                             "(env GLIDER_MCP=1; needs `pip install \"gradio[mcp]\"`)")
    try:
        demo = DemoLimits.from_env(env)  # on a Space: on by default; elsewhere off (0)
    except ValueError as error:
        parser.error(str(error))
    parser.add_argument("--demo-max-queued", type=int, default=demo.max_queued,
                        help=f"Grades one anonymous visitor may have waiting or running at once, 0 for no limit "
                             f"(env {MAX_QUEUED_ENV}; default {demo.max_queued} here)")
    parser.add_argument("--demo-max-input-chars", type=int, default=demo.max_input_chars,
                        help=f"Characters one anonymous visitor's grade may hold, 0 for no limit "
                             f"(env {MAX_INPUT_CHARS_ENV}; default {demo.max_input_chars} here)")
    return parser.parse_args(argv)


def _readme() -> str:
    """The app's README (a Space's front matter may name `hf_oauth_authorized_org`), or "" when there is none."""
    try:
        return README.read_text(encoding="utf-8")
    except OSError:
        return ""


def sign_in(args: argparse.Namespace, store: Store, env: Mapping[str, str]) -> tuple[bool, HubRoles | None]:
    """Whether sign-in is on, and who may sign in with Hugging Face (None: passwords); said in the log.

    Asked for with --auth / GLIDER_AUTH, else Hugging Face on a Space with hf_oauth, else passwords once someone
    can sign in (checked once, at start): core.hub_sign_in.sign_in_mode.
    """
    mode = sign_in_mode(args.auth, env, users_exist(store))
    hub = HubRoles.from_env(env, _readme()) if mode == HUB_MODE else None
    if hub is not None:
        log.info("Sign-in with Hugging Face: %s", hub.describe())
        if not env.get("SPACE_ID"):
            log.warning("Not on a Space: Gradio signs everyone in as the account of `hf auth login` (a local mock "
                        "that asks the Hub who that is once, at start)")
    elif mode is not None:
        log.info("Sign-in is on: the study tabs know who is labelling")
    else:
        log.info("Sign-in is off: no user exists yet (create one with `python -m core create-admin NAME`)")
    return mode is not None, hub


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def users_exist(store: Store) -> bool:
    """Whether anyone can sign in yet."""
    return Accounts(store).any_users()


def load_judge_into(services: Services, args: argparse.Namespace, choice: JudgeChoice | None = None) -> None:
    """Load the judge and publish it (or the reason it failed) on `services`; runs in a background thread."""
    services.judge, services.judge_error = load_judge(args, choice)
    services.judge_loading = None


def load_judge(args: argparse.Namespace, choice: JudgeChoice | None = None) -> tuple[JudgeBackend | None, str | None]:
    """The judge, or None and the reason: the app still starts without a model and says why."""
    chosen = choice or judge_choice(args)
    backend, options = chosen.backend, chosen.options
    log.info("Loading judge %s ...", describe_options(backend, options))
    try:
        judge = create_backend(backend, **options)
    except GliderError as exc:  # JudgeError (bad model, missing package), UnknownBackendError
        log.error("The judge could not be loaded: %s", exc)
        return None, str(exc)
    check_writing_speed(judge)  # on a CPU: the measured figure goes to the log and the banner
    log.info("Judge ready: %s", judge.info.describe())
    return _on_zero_gpu(judge), None


def _on_zero_gpu(judge: JudgeBackend) -> JudgeBackend:
    """On a ZeroGPU Space a GPU is attached only inside functions wrapped by `spaces.GPU`."""
    if not os.environ.get("SPACES_ZERO_GPU"):
        return judge
    import spaces  # only installed on Hugging Face Spaces

    # Each call asks for the GPU time its own request needs (webapp.zero_gpu): visitors' quota is charged by it.
    return wrap_for_zero_gpu(judge, spaces.GPU)


def build_services(args: argparse.Namespace, store: Store, auth: bool, choice: JudgeChoice | None = None) -> Services:
    """The services of a started app: the judge still to load (named by its back-end), batch jobs, studies."""
    chosen = choice or judge_choice(args)
    backend, options, reason = chosen.backend, chosen.options, chosen.reason
    return Services(
        store=store,
        presets=load_presets(),
        judge=None,
        judge_loading=describe_options(backend, options),
        judge_reason=reason,
        studies=Studies(store),
        auth_enabled=auth,
        # The identity the CLI computes from the same flags: a batch job started in the app and one
        # started with `python -m core grade` on the same data and settings are the same job.
        judge_identity=judge_identity(backend, options),
        batch=BatchJobs(store),
        demo_limits=DemoLimits(max(0, getattr(args, "demo_max_queued", 0)),
                               max(0, getattr(args, "demo_max_input_chars", 0))),
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python app.py`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    mcp = mcp_options(args)  # before anything starts: --mcp without its package stops here
    store = Store(args.db)
    log.info("Storing judgments in %s", store.url)
    storage = storage_status(store.sqlite_path, store.backend)
    if storage.warn:
        log.warning("%s", storage.advice)
    try:  # GLIDER_BACKUP_REPO: every study to a private dataset repo every few minutes (core.studies.backup)
        if backup_from_env(store) is not None:
            log.info("Backing up every study to the dataset repo %s", os.environ.get("GLIDER_BACKUP_REPO"))
    except Exception as error:  # the app still starts; the log says why nothing is backed up
        log.warning("No backup to the Hub: %s", error)
    auth, hub = sign_in(args, store, os.environ)
    choice = judge_choice(args)
    log.info("Judge back-end %s: %s", choice.backend, choice.reason)
    services = build_services(args, store, auth, choice)
    services.hub = hub
    if choice.backend == "transformers":
        # PyTorch's OpenMP pool must have run on the main thread before the judge (loaded on a thread, run on
        # Gradio's worker threads) generates; otherwise every grade ran about 25x slower (measured on 2 cores).
        warm_parallel_runtime()
    # The page is up at once; the model (minutes on a CPU when quantizing) arrives when it is ready.
    threading.Thread(target=load_judge_into, args=(services, args, choice), name="load-judge", daemon=True).start()
    demo = build_app(services)
    enable_queue(demo).launch(
        server_name=args.host, server_port=args.port, share=args.share, **launch_options(), **auth_options(services),
        **mcp,
    )


def mcp_options(args: argparse.Namespace) -> dict[str, Any]:
    """`mcp_server=True` for `Blocks.launch` with --mcp / GLIDER_MCP=1: agents then call `grade` as a tool."""
    if not args.mcp:
        return {}
    if importlib.util.find_spec("mcp") is None:  # Gradio would fail only at launch, after the judge started loading
        raise SystemExit('--mcp (GLIDER_MCP=1) needs the MCP extra of Gradio: pip install "gradio[mcp]"')
    log.info("MCP server on: the grade and status endpoints are MCP tools at /gradio_api/mcp/")
    return {"mcp_server": True}
