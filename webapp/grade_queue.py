"""Concurrent `/grade` calls share one batched generation, and each caller still gets its own answer or error.

Gradio 6's own batching (`gr.api(..., batch=True)`) was the first choice and does not fit: a batched
function answers every caller of a batch with one outcome, so one caller's bad input would fail the
others too; the `validator` hook that could reject bad input before the queue breaks on batched
functions (Gradio 6.31 hands it a one-item batch it then refuses); and there is no batch timeout.
So the API endpoint stays an ordinary queued event that may run several times at once, and the calls
meet here: the first caller waits up to `batch_timeout` (default 0: not at all) for others, then grades up to
`max_batch_size` requests with one `grade_many` call (core.grading.grade_batch, which uses the
back-end's `generate_batch`), and hands every caller its own outcome. Calls that arrive while a batch runs
form the next one, without waiting again. No lock is taken here: a back-end that must run one generation
at a time serialises its batches and streams itself (core.judge.base.JudgeBackend's concurrency rule).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from core.grading import GradeRequest

# Seconds the first caller waits for company. 0: a lone grade starts at once (a wait would be pure latency
# for the single user of a laptop, and the app-overhead target is 5 %); under load, batches still form from
# the calls that queue while the previous batch generates.
DEFAULT_BATCH_TIMEOUT = 0.0

R = TypeVar("R")


@dataclass(eq=False)
class _Ticket(Generic[R]):
    request: GradeRequest
    arrived: float
    outcome: R | BaseException | None = None
    done: bool = False


class GradeBatcher(Generic[R]):
    """Collects concurrent grade requests into batches; `submit` blocks until its own request is graded.

    `grade_many(requests)` returns one outcome per request, in order: a result, or the exception that
    stopped that request alone (it is raised to that caller only). An exception raised by `grade_many`
    itself stopped the whole batch and reaches every caller in it. Requests of one batch share their
    max_new_tokens (a batch decodes to one limit). One batch runs at a time per batcher.
    """

    def __init__(
        self,
        grade_many: Callable[[Sequence[GradeRequest]], Sequence[R | Exception]],
        *,
        max_batch_size: int,
        batch_timeout: float = DEFAULT_BATCH_TIMEOUT,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1 (got {max_batch_size})")
        self.grade_many = grade_many
        self.max_batch_size = max_batch_size
        self.batch_timeout = max(0.0, batch_timeout)
        self._cond = threading.Condition()
        self._waiting: list[_Ticket[R]] = []
        self._leading = False  # one caller at a time cuts and runs a batch; the others wait for their outcome

    def submit(self, request: GradeRequest) -> R:
        """Grade `request`, batched with the requests submitted meanwhile; raises this request's own error."""
        ticket: _Ticket[R] = _Ticket(request, time.monotonic())
        with self._cond:
            self._waiting.append(ticket)
            self._cond.notify_all()
        while True:
            with self._cond:
                while self._leading and not ticket.done:
                    self._cond.wait()
                if ticket.done:
                    break
                self._leading = True  # this caller runs the next batch (which may or may not hold its request)
            try:
                self._lead()
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()
        if isinstance(ticket.outcome, BaseException):
            raise ticket.outcome
        return ticket.outcome  # type: ignore[return-value]

    def _lead(self) -> None:
        with self._cond:
            # Wait for company only as long as the oldest request has not waited batch_timeout already
            # (requests that queued behind a running batch go at once).
            deadline = self._waiting[0].arrived + self.batch_timeout
            while len(self._waiting) < self.max_batch_size and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
        with self._cond:
            batch = self._cut()
        try:
            outcomes: Sequence[R | BaseException] = self.grade_many([ticket.request for ticket in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"grade_many returned {len(outcomes)} outcomes for {len(batch)} requests")
        except Exception as error:  # it stopped the whole batch: every caller in it hears of it
            outcomes = [error] * len(batch)
        except BaseException as error:  # interrupted: nobody may wait forever, then let it propagate
            self._settle(batch, [error] * len(batch))
            raise
        self._settle(batch, outcomes)

    def _cut(self) -> list[_Ticket[R]]:
        """The oldest waiting requests that share the oldest one's max_new_tokens, at most max_batch_size."""
        limit = self._waiting[0].request.max_new_tokens
        batch = [ticket for ticket in self._waiting if ticket.request.max_new_tokens == limit]
        batch = batch[: self.max_batch_size]
        taken = set(map(id, batch))
        self._waiting = [ticket for ticket in self._waiting if id(ticket) not in taken]
        return batch

    def _settle(self, batch: Sequence[_Ticket[R]], outcomes: Sequence[R | BaseException]) -> None:
        with self._cond:
            for ticket, outcome in zip(batch, outcomes, strict=True):
                ticket.outcome, ticket.done = outcome, True
            self._cond.notify_all()
