"""Progress of long waits: one hook that every deadline loop the runbook waits in reports to.

A wait (a step waiting for Ready, a rollback waiting for pods, the rehearsal building binaries)
opens a ``Wait`` and calls ``update(message)`` on each poll; the module's *sink* receives a
``Progress`` snapshot (what, elapsed, timeout, latest message, state). The default sink does
nothing, so handover/ stays free of any terminal logic; the pytest plugin ``plugins.progress``
sets a sink that draws one updating line (interactive terminal) or one line per state change
(CI logs). Messages are written by the suite or are Kubernetes condition messages; the sink
should redact them anyway.

    with progress.wait("Kustomization flux-system/handover-loki Ready", timeout) as w:
        while ...:
            w.update(last_ready_message)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    what: str
    elapsed: float
    timeout: float | None
    message: str
    state: str  # waiting | done | failed

    def line(self) -> str:
        limit = f" / {self.timeout:.0f} s" if self.timeout else ""
        msg = f": {self.message}" if self.message else ""
        return f"{self.state} {self.what} [{self.elapsed:.0f} s{limit}]{msg}"


Sink = Callable[[Progress], None]


def _no_op(p: Progress) -> None:
    return None


_sink: Sink = _no_op
_lock = threading.Lock()


def set_sink(sink: Sink | None) -> Sink:
    """Install ``sink`` (None: the no-op); returns the previous one (to restore it)."""
    global _sink
    with _lock:
        previous, _sink = _sink, (sink or _no_op)
    return previous


def emit(p: Progress) -> None:
    try:
        _sink(p)
    except Exception:  # a broken display must never break a wait
        pass


class Wait:
    """One wait. ``update()`` on every poll; leaving the ``with`` block reports done, or failed
    when an exception leaves it (``fail()`` / ``finish()`` set the end state explicitly)."""

    def __init__(self, what: str, timeout: float | None = None):
        self.what = what
        self.timeout = timeout
        self.started = time.monotonic()
        self.message = ""
        self.ended = False

    def _emit(self, state: str) -> None:
        emit(
            Progress(self.what, time.monotonic() - self.started, self.timeout, self.message, state)
        )

    def update(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message.strip().splitlines()[0][:200] if message.strip() else ""
        self._emit("waiting")

    def finish(self, ok: bool = True, message: str | None = None) -> None:
        if self.ended:
            return
        if message is not None:
            self.message = message
        elif ok:
            self.message = ""  # the last "not ready yet" message no longer holds
        self.ended = True
        self._emit("done" if ok else "failed")

    def __enter__(self) -> Wait:
        self._emit("waiting")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(exc_type is None)


def wait(what: str, timeout: float | None = None) -> Wait:
    return Wait(what, timeout)
