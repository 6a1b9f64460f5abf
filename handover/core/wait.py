"""The one wait: poll something until it holds or a deadline passes, reporting progress.

Every deadline loop in handover/ is this function or a ``Deadline`` (for loops whose body is a
watch with its own timeout). A wait never raises on timeout by itself: it returns the last
observation, and the caller says what a timeout means (a failed step, a finding, a rollback).

    state = wait.until("Kustomization flux-system/handover-loki Ready",
                       lambda: takeover_state(kube, name), timeout=300,
                       done=lambda s: s.ready, message=lambda s: s.message)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from handover.core import progress

T = TypeVar("T")


class Deadline:
    """A point in time, for loops that need ``left()`` (a watch's timeout) or ``expired``."""

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.start = clock()
        self.at = self.start + timeout

    @property
    def expired(self) -> bool:
        return self.clock() >= self.at

    def left(self) -> float:
        return max(0.0, self.at - self.clock())

    def elapsed(self) -> float:
        return self.clock() - self.start


def until(
    what: str,
    probe: Callable[[], T],
    *,
    timeout: float,
    interval: float = 1.0,
    done: Callable[[T], bool] = bool,
    message: Callable[[T], str] | None = None,
    report: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``probe()`` until ``done(result)`` or ``timeout`` seconds have passed; return the last
    result. ``message(result)`` is the progress line's detail (e.g. a condition message).
    ``report=False`` for short internal waits that should not draw a progress line."""
    deadline = Deadline(timeout, clock)
    w = progress.wait(what, timeout) if report else None
    ok = False
    try:
        while True:
            result = probe()
            ok = done(result)
            if w is not None:
                w.update(message(result) if message else None)
            if ok or deadline.expired:
                return result
            sleep(min(interval, max(deadline.left(), 0.0)) or interval)
    finally:
        if w is not None:
            w.finish(ok)
