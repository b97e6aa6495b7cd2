"""Command line of the web app: read settings (flags or environment), build the services, launch.

Every flag has an environment variable, so a Hugging Face Space (which runs `python app.py` with no
arguments) is configured through its Variables.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Sequence

from core.errors import JudgeError
from core.judge import JudgeBackend, create_backend
from core.judge.transformers_backend import DEFAULT_MODEL_ID, QUANTIZATIONS
from core.presets import load_presets
from core.settings import default_db_url
from core.store import Store
from core.studies import Studies, UserRow
from webapp.app import auth_options, build_app, launch_options
from webapp.services import Services

log = logging.getLogger("glider_studio")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Flags override environment variables, which override the defaults."""
    env = os.environ
    on_spaces = bool(env.get("SPACE_ID"))
    parser = argparse.ArgumentParser(prog="app.py", description="GLIDER Studio: grade LLM outputs with GLIDER.")
    parser.add_argument("--model", default=env.get("GLIDER_MODEL", DEFAULT_MODEL_ID),
                        help="Hub id or local directory of the judge (env GLIDER_MODEL; default %(default)s)")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default=env.get("GLIDER_QUANTIZATION", "auto"),
                        help="auto = nf4 (4-bit) on GPU and CPU alike (env GLIDER_QUANTIZATION)")
    parser.add_argument("--device", default=env.get("GLIDER_DEVICE", "auto"),
                        help="auto, cpu or cuda[:N] (env GLIDER_DEVICE)")
    parser.add_argument("--revision", default=env.get("GLIDER_REVISION") or None,
                        help="Hub revision (branch, tag or commit) to pin (env GLIDER_REVISION)")
    parser.add_argument("--db", default=default_db_url(),
                        help="SQLAlchemy URL (env GLIDER_DB; default a SQLite file in GLIDER_DATA_DIR or ./data)")
    parser.add_argument("--host", default=env.get("GLIDER_HOST", "0.0.0.0" if on_spaces else "127.0.0.1"),
                        help="Address to listen on (env GLIDER_HOST)")
    parser.add_argument("--port", type=int, default=int(env.get("GLIDER_PORT", env.get("PORT", "7860"))),
                        help="Port (env GLIDER_PORT)")
    parser.add_argument("--share", action="store_true", help="Also open a public gradio.live link")
    parser.add_argument("--auth", action="store_true", default=_truthy(env.get("GLIDER_AUTH")),
                        help="Require sign-in even before any user exists (env GLIDER_AUTH=1); sign-in is on "
                             "anyway once `python -m core create-admin NAME` has created a user")
    return parser.parse_args(argv)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def users_exist(store: Store) -> bool:
    """Whether anyone can sign in yet (core.studies has no public count, so the users table is asked)."""
    from sqlalchemy import func, select

    with store.session("read") as session:
        return bool(session.scalar(select(func.count()).select_from(UserRow)))


def load_judge_into(services: Services, args: argparse.Namespace) -> None:
    """Load the judge and publish it (or the reason it failed) on `services`; runs in a background thread."""
    services.judge, services.judge_error = load_judge(args)
    services.judge_loading = None


def load_judge(args: argparse.Namespace) -> tuple[JudgeBackend | None, str | None]:
    """The judge, or None and the reason: the app still starts without a model and says why."""
    log.info("Loading judge %s (quantization %s, device %s) ...", args.model, args.quantization, args.device)
    try:
        judge = create_backend(
            "transformers", model=args.model, quantization=args.quantization, device=args.device,
            revision=args.revision,
        )
    except JudgeError as exc:
        log.error("The judge could not be loaded: %s", exc)
        return None, str(exc)
    log.info("Judge ready: %s", judge.info.describe())
    return _on_zero_gpu(judge), None


def _on_zero_gpu(judge: JudgeBackend) -> JudgeBackend:
    """On a ZeroGPU Space a GPU is attached only inside functions wrapped by `spaces.GPU`."""
    if not os.environ.get("SPACES_ZERO_GPU"):
        return judge
    import spaces  # only installed on Hugging Face Spaces

    judge.generate = spaces.GPU(duration=180)(judge.generate)  # type: ignore[method-assign]
    judge.stream = spaces.GPU(duration=180)(judge.stream)  # type: ignore[method-assign]
    return judge


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python app.py`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    store = Store(args.db)
    log.info("Storing judgments in %s", store.url)
    studies = Studies(store)
    # Sign-in is on when someone can sign in (checked once, at start) or when asked for with --auth.
    auth = args.auth or users_exist(store)
    if auth:
        log.info("Sign-in is on: the study tabs know who is labelling")
    else:
        log.info("Sign-in is off: no user exists yet (create one with `python -m core create-admin NAME`)")
    services = Services(store=store, presets=load_presets(), judge=None,
                        judge_loading=f"{args.model} ({args.quantization}, {args.device})", studies=studies,
                        auth_enabled=auth)
    # The page is up at once; the model (minutes on a CPU when quantizing) arrives when it is ready.
    threading.Thread(target=load_judge_into, args=(services, args), name="load-judge", daemon=True).start()
    demo = build_app(services)
    demo.queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, share=args.share, **launch_options(), **auth_options(services)
    )
