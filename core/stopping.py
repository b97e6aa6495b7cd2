"""Ctrl-C and SIGTERM for the commands that grade in batches: the first asks to stop after the batch in
progress (it is stored, and the work can be resumed), a second stops at once."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def stop_after_batch() -> Iterator[Callable[[], bool]]:
    """Yield should_stop(), true once SIGINT or SIGTERM came; a second one raises KeyboardInterrupt.

    The previous handlers are restored on exit.
    """
    requested: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)
        print("\nStopping after the current batch (press Ctrl-C again to stop now) ...", file=sys.stderr)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(requested)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
