"""What the web app is given to work with: built once at start-up by the entry point, never global."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.batch import DEFAULT_BATCH_SIZE, BatchJobs
from core.hub_sign_in import HubRoles
from core.judge.base import JudgeBackend
from core.presets import Preset
from core.store import Store
from core.studies import Studies
from webapp.demo_limits import DemoLimits


@dataclass
class Services:
    """The store, the rubric presets, the judge and the human-agreement studies.

    `judge` is None while the model loads (`judge_loading` names it) or when it failed to load
    (`judge_error` then says why and how to fix it): the app still starts, shows the state in a
    banner, and answers Grade with that message.

    `studies` holds users, studies and labels (None: the study tabs say they are unavailable).
    `auth_enabled`: the app is launched behind Gradio's sign-in (see webapp.app.auth_options), so
    every request carries the signed-in username; the study tabs work only then.

    `judge_identity` is what decides a grade's meaning (core.judge.options.judge_identity of the
    flags the judge was built from), so a batch job started here has the key the CLI gives the same
    data and settings. `batch` runs and exports batch jobs (None: the Batch tab says it is unavailable).

    `judge_reason` says why this back-end was chosen (core.judge.options.judge_choice, e.g. for
    `--backend auto`), shown in the banner; None when nothing chose it. No lock is kept here: a back-end
    that must run one generation at a time serialises them itself (core.judge.base.JudgeBackend's
    concurrency rule). `api_batch_size`: the most `/grade` calls that share one batched generation.
    `demo_limits`: what anonymous visitors of a public demo may ask of the Grade tab and `/grade`
    (webapp.demo_limits; None: no limits).

    `hub`: sign in with Hugging Face instead of passwords (core.hub_sign_in; who is an admin, who may label);
    None: Gradio's password sign-in when `auth_enabled`.
    """

    store: Store
    presets: list[Preset]
    judge: JudgeBackend | None
    judge_error: str | None = None
    judge_loading: str | None = None
    studies: Studies | None = None
    auth_enabled: bool = False
    judge_identity: dict[str, Any] | None = None
    batch: BatchJobs | None = None
    judge_reason: str | None = None
    api_batch_size: int = DEFAULT_BATCH_SIZE
    demo_limits: DemoLimits | None = None
    hub: HubRoles | None = None
