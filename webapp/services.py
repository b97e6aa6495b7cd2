"""What the web app is given to work with: built once at start-up by the entry point, never global."""

from __future__ import annotations

from dataclasses import dataclass

from core.judge.base import JudgeBackend
from core.presets import Preset
from core.store import Store


@dataclass
class Services:
    """The store, the rubric presets and the judge.

    `judge` is None while the model loads (`judge_loading` names it) or when it failed to load
    (`judge_error` then says why and how to fix it): the app still starts, shows the state in a
    banner, and answers Grade with that message.
    """

    store: Store
    presets: list[Preset]
    judge: JudgeBackend | None
    judge_error: str | None = None
    judge_loading: str | None = None
