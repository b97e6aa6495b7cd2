"""A public demo must not be taken down by one visitor: limits for grades asked by visitors who are not signed in.

Two limits, each off at 0: how many grades one visitor may have in flight at once (waiting for the judge
or generating: the Grade button in several tabs, whose grades wait in Gradio's queue, or many `/grade`
calls at once, which wait in the batcher), and how many characters
the fields, pass criteria and rubric of one grade may hold. They apply only to anonymous visitors (no
username, no Hugging Face sign-in); signed-in users are limited by their role instead. On a Space they are
on by default (GLIDER_DEMO_MAX_QUEUED=2, GLIDER_DEMO_MAX_INPUT_CHARS=20000); elsewhere off unless set.

A visitor is their address: the first address of X-Forwarded-For (what the Spaces proxy reports for the
client), else the connection's. A visitor who forges that header or uses many addresses gets around the
per-visitor count; the limit stops one browser or script from filling the queue, not a distributed attack.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from core.errors import InputError

MAX_QUEUED_ENV = "GLIDER_DEMO_MAX_QUEUED"
MAX_INPUT_CHARS_ENV = "GLIDER_DEMO_MAX_INPUT_CHARS"
# On a Space: one grade running and one waiting per visitor; 20,000 characters is about 5,000 tokens,
# well inside GLIDER's trained 8,192-token context with room for the answer.
SPACE_MAX_QUEUED = 2
SPACE_MAX_INPUT_CHARS = 20_000


class DemoLimitError(InputError):
    """An anonymous visitor's grade refused by a demo limit; the message says which and what to do."""


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number (0 for no limit), got {text!r}.") from None
    if value < 0:
        raise ValueError(f"{name} must be 0 (no limit) or more, got {text!r}.")
    return value


@dataclass(frozen=True)
class DemoLimits:
    """Limits for anonymous visitors; 0 means no limit."""

    max_queued: int = 0
    max_input_chars: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DemoLimits:
        """GLIDER_DEMO_MAX_QUEUED and GLIDER_DEMO_MAX_INPUT_CHARS; defaults on a Space (SPACE_ID), else off."""
        env = os.environ if env is None else env
        space = bool(env.get("SPACE_ID", "").strip())
        return cls(_count(env, MAX_QUEUED_ENV, SPACE_MAX_QUEUED if space else 0),
                   _count(env, MAX_INPUT_CHARS_ENV, SPACE_MAX_INPUT_CHARS if space else 0))

    @property
    def active(self) -> bool:
        return self.max_queued > 0 or self.max_input_chars > 0


def signed_in(request: Any) -> bool:
    """Whether a Gradio request carries a signed-in user: a username (password sign-in) or a live Hugging Face
    session (webapp.hub_sign_in.profile_of, the same reading the study tabs use)."""
    if request is None:
        return False
    if getattr(request, "username", None):
        return True
    from webapp.hub_sign_in import profile_of  # here: hub_sign_in imports the services, which import this module

    return profile_of(request) is not None


def visitor_of(request: Any) -> str:
    """Who is asking, as far as a server can tell: the client's address (see the module docstring)."""
    if request is None:
        return "local"
    headers = getattr(request, "headers", None) or {}
    forwarded = str(headers.get("x-forwarded-for", "") or "").split(",")[0].strip()
    if forwarded:
        return forwarded
    client = getattr(request, "client", None)
    host = getattr(client, "host", None) if client is not None else None
    return str(host or getattr(request, "session_hash", None) or "unknown")


def waiting_in_queue(demo: Any, fn_name: str, visitor: str) -> int:
    """How many events of the function `fn_name` from `visitor` wait in Gradio's queue now.

    Read from Gradio 6.31's queue internals (Blocks._queue.event_queue_per_concurrency_id, read only);
    0 where they are not there, so a Gradio that changes them loses this count, never the app.
    """
    per_id = getattr(getattr(demo, "_queue", None), "event_queue_per_concurrency_id", None)
    if not isinstance(per_id, dict):
        return 0
    return sum(1 for group in list(per_id.values()) for event in list(getattr(group, "queue", []))
               if getattr(getattr(event, "fn", None), "name", None) == fn_name
               and visitor_of(getattr(event, "request", None)) == visitor)


class DemoGate:
    """Counts each anonymous visitor's grades in flight and refuses what goes past the limits."""

    def __init__(self, limits: DemoLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}

    def check_size(self, texts: list[str]) -> None:
        """DemoLimitError when the texts of one grade hold more characters than the limit."""
        limit = self.limits.max_input_chars
        size = sum(len(text or "") for text in texts)
        if limit and size > limit:
            raise DemoLimitError(
                f"This public demo grades at most {limit:,} characters at a time (fields, pass criteria and rubric "
                f"together); this grade has {size:,}. Shorten the text, sign in, or run GLIDER Studio yourself.")

    def acquire(self, request: Any, texts: list[str], waiting: Callable[[str], int] | None = None) -> str | None:
        """Take one of this visitor's grade slots (DemoLimitError when none is left or the input is too long).

        `waiting(visitor)`: how many more of this visitor's grades wait in Gradio's queue behind this one; they
        count too, so a visitor who queued many grades (several tabs) gets `max_queued` of them, the rest are
        refused at once when their turn comes instead of holding everyone else up.
        Returns the visitor whose slot it is, for `release`; None when nothing was counted (a signed-in user,
        or no limit on grades in flight).
        """
        if not self.limits.active or signed_in(request):
            return None
        self.check_size(texts)
        limit = self.limits.max_queued
        if not limit:
            return None
        visitor = visitor_of(request)
        with self._lock:
            held = self._in_flight.get(visitor, 0) + (waiting(visitor) if waiting is not None else 0)
            if held >= limit:
                raise DemoLimitError(
                    f"This public demo grades at most {limit} item{'s' if limit != 1 else ''} at a time per "
                    "visitor, and yours are still waiting or running. Wait for them to finish, then try again.")
            self._in_flight[visitor] = held + 1
        return visitor

    def release(self, visitor: str | None) -> None:
        """Give back the slot `acquire` took (nothing for None)."""
        if visitor is None:
            return
        with self._lock:
            left = self._in_flight.get(visitor, 1) - 1
            if left > 0:
                self._in_flight[visitor] = left
            else:
                self._in_flight.pop(visitor, None)

    @contextmanager
    def admit(self, request: Any, texts: list[str], waiting: Callable[[str], int] | None = None) -> Iterator[None]:
        """Hold one of this visitor's grade slots for the block (see `acquire`)."""
        visitor = self.acquire(request, texts, waiting)
        try:
            yield
        finally:
            self.release(visitor)

    def in_flight(self, visitor: str) -> int:
        """How many grades this visitor has in flight now (for tests and logs)."""
        with self._lock:
            return self._in_flight.get(visitor, 0)
