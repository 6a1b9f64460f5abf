"""The migration journal: every mutation is written here BEFORE it is made, and its outcome after.

One JSON object per line (append-only, fsync'd), in ``<backups>/journal.jsonl``. A run that was
killed leaves an ``intent`` without an outcome: the next run sees it (``interrupted()``) and
continues or rolls back from there instead of repeating a step blindly.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from handover.core import redact

KEPT_AS_WRITTEN = ("run", "backup", "snapshot")  # detail keys the suite writes itself


@dataclass
class Entry:
    id: str
    kind: str  # intent | done | failed | step | note
    action: str  # e.g. "patch HelmRelease logging/loki spec.suspend=true"
    phase: str = ""
    component: str = ""
    step: str = ""
    time: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        redact.private_dir(self.path.parent)
        self.context: dict[str, str] = {"phase": "", "component": "", "step": ""}

    def _write(self, entry: Entry) -> Entry:
        # every string scrubbed (handover.core.redact): the journal never holds a value in clear;
        # the paths and run id a resumed run reads back are the suite's own, kept as written
        d = asdict(entry)
        kept = {k: d["detail"].pop(k) for k in KEPT_AS_WRITTEN if k in d["detail"]}
        d = redact.scrub_all(d)
        d["detail"].update(kept)
        line = json.dumps(d, sort_keys=True, default=str)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def _entry(self, kind: str, action: str, id: str | None = None, **detail: Any) -> Entry:
        return Entry(
            id=id or uuid.uuid4().hex[:12],
            kind=kind,
            action=action,
            phase=self.context["phase"],
            component=self.context["component"],
            step=self.context["step"],
            time=time.time(),
            detail=detail,
        )

    def set_context(self, phase: str = "", component: str = "", step: str = "") -> None:
        self.context = {"phase": phase, "component": component, "step": step}

    def intent(self, action: str, **detail: Any) -> str:
        """Record what is about to be done; returns the id to close it with done()/failed()."""
        return self._write(self._entry("intent", action, **detail)).id

    def done(self, id: str, action: str, **detail: Any) -> None:
        self._write(self._entry("done", action, id=id, **detail))

    def failed(self, id: str, action: str, error: str, **detail: Any) -> None:
        self._write(self._entry("failed", action, id=id, error=error, **detail))

    def step(self, status: str, **detail: Any) -> None:
        """Record a runbook step's outcome (status: started | passed | failed | skipped |
        rolled-back) for the current phase/component/step context."""
        self._write(self._entry("step", status, **detail))

    def note(self, action: str, **detail: Any) -> None:
        self._write(self._entry("note", action, **detail))

    def entries(self) -> Iterator[Entry]:
        if not self.path.exists():
            return
        with open(self.path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    yield Entry(**json.loads(line))
                except (ValueError, TypeError):
                    continue  # a torn last line from a kill mid-write

    def interrupted(self) -> list[Entry]:
        """Intents with no outcome: mutations that may or may not have happened."""
        closed = {e.id for e in self.entries() if e.kind in ("done", "failed")}
        return [e for e in self.entries() if e.kind == "intent" and e.id not in closed]

    def step_status(self, phase: str, component: str, step: str) -> str | None:
        """The last recorded status of a step, or None."""
        last = None
        for e in self.entries():
            if (
                e.kind == "step"
                and e.phase == phase
                and e.component == component
                and e.step == step
            ):
                last = e.action
        return last


@dataclass
class Progress:
    """Where one component's chain stands according to the journal (for a resumed run).

    state: fresh (never started) | in-progress (steps ran, not finished, not failed; e.g. the
    process was killed) | done (the last step passed) | failed (a step failed and no rollback
    completed: killed during the rollback, or the rollback failed) | rolled-back.
    ``passed`` maps each step that passed in the current attempt to its entry's detail (paths of
    the backup and snapshot, the run that did it). ``interrupted`` lists mutations of this
    component whose outcome was never written."""

    component: str
    state: str = "fresh"
    passed: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_started: str = ""
    failed_step: str = ""
    run: str = ""
    interrupted: list[str] = field(default_factory=list)


def progress(
    journal: Journal,
    phase: str,
    component: str,
    first_step: str = "preconditions",
    last_step: str = "record",
) -> Progress:
    p = Progress(component)
    entries = [e for e in journal.entries() if e.phase == phase and e.component == component]
    closed = {e.id for e in entries if e.kind in ("done", "failed")}
    for e in entries:
        if e.kind == "intent" and e.id not in closed:
            p.interrupted.append(e.action)
        if e.kind != "step":
            continue
        run = str(e.detail.get("run", ""))
        if e.step == "rollback":
            if e.action == "rolled-back":
                p.state, p.passed, p.failed_step, p.run = "rolled-back", {}, "", run
                p.interrupted = []
            elif e.action == "rollback-failed":
                p.state = "failed"
            continue
        if e.action == "started":
            if e.step == first_step and p.state in ("fresh", "rolled-back"):
                p.passed = {}
            if p.state != "failed":
                p.state = "in-progress"
            p.last_started, p.run = e.step, run
        elif e.action == "passed":
            p.passed[e.step] = dict(e.detail)
            if e.step == last_step:
                p.state = "done"
        elif e.action == "failed":
            p.state, p.failed_step = "failed", e.step
    return p
