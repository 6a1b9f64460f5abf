"""Progress of long waits in the terminal (handover.core.progress's sink, set for the session).

Interactive terminal (pytest's terminal reporter writes to a tty): one line, redrawn in place at
most twice a second, with what is awaited, elapsed / timeout and the latest condition message;
the final state (done / failed) stays on screen. Non-interactive output (CI logs, files, -p
xdist workers): one line per state change only (a wait starts, its message changes, it ends), so
logs stay readable. Messages pass through the report's redaction.

Output bypasses pytest's capture the way live logging does (the capture manager's
``global_and_fixture_disabled``), so it shows while a test runs.
"""

from __future__ import annotations

import shutil
import time

import pytest

from handover.core import progress
from handover.report.migration import redact

SINK_KEY = pytest.StashKey["TerminalProgress"]()
REDRAW_EVERY = 0.5  # seconds between redraws of the interactive line


class TerminalProgress:
    def __init__(self, config: pytest.Config, tty: bool | None = None):
        self.config = config
        self.tr = config.pluginmanager.get_plugin("terminalreporter")
        self.capman = config.pluginmanager.get_plugin("capturemanager")
        self.tty = bool(getattr(self.tr, "isatty", False)) if tty is None else tty
        self.last_key: tuple[str, str, str] | None = None
        self.last_draw = 0.0
        self.drawing = False  # an interactive line is on screen, not yet ended

    def _write(self, text: str) -> None:
        if self.tr is None:
            return
        if self.capman is not None:
            with self.capman.global_and_fixture_disabled():
                self.tr.write(text)
                self.tr.flush()
        else:
            self.tr.write(text)
            self.tr.flush()

    def __call__(self, p: progress.Progress) -> None:
        line = redact(p.line())
        key = (p.what, p.state, redact(p.message))
        if not self.tty:
            if key != self.last_key:
                # a new wait starts on its own line (pytest may be mid-line with its dots)
                new = (
                    self.last_key is None
                    or self.last_key[0] != p.what
                    or self.last_key[1] != "waiting"
                )
                self._write(("\n" if new else "") + line + "\n")
            self.last_key = key
            return
        now = time.monotonic()
        final = p.state != "waiting"
        if not final and key == self.last_key and now - self.last_draw < REDRAW_EVERY:
            return
        width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
        text = line if len(line) <= width else line[: width - 3] + "..."
        prefix = "\r" if self.drawing else "\n"
        self._write(prefix + text.ljust(width) + ("\n" if final else ""))
        self.drawing = not final
        self.last_key, self.last_draw = key, now


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.get_plugin("terminalreporter") is None:
        return
    sink = TerminalProgress(config)
    config.stash[SINK_KEY] = sink
    progress.set_sink(sink)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(SINK_KEY, None) is not None:
        progress.set_sink(None)
