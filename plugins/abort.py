"""The abort part of the runbook plugin (plugins/runbook.py owns it): the per-run state of the
abort chains (suites/abort; the chain is handover.runbook.ABORT).

- suites/abort is kept out of every run that does not name it: a bare ``pytest --perform`` (which
  runs the handover, ``testpaths = suites``) never aborts it (``ignored``);
- the chains run highest risk first (the reverse of the handover's inventory order), the final
  step (``remove_flux``) after every chain;
- every step is journaled (started / passed / failed) in the same journal as phase 3 (phase
  ``abort``), with the same run id; mutations go through the same Mutator;
- the first failing step halts: there is no rollback of an abort: everything is left frozen
  (suspended), the safe state, and every step checks the live state first, so running the abort
  again continues where it stopped;
- resume from the journal: a component whose chain passed is skipped ("handed back in run X");
  steps that passed in the current attempt are not repeated (the preconditions' record, i.e. what
  Flux managed and the snapshot from before the abort, is read back from the journal);
- one availability probe over the health checks of every selected component, from the first
  mutating step to the last component's proof (the downtime of the whole abort).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from handover.chain.abort import ComponentState
from handover.core import journal as journal_mod
from handover.runbook import ABORT
from plugins.journal import HandoverRun

PHASE = ABORT.phase
ABORT_DIR = Path(__file__).resolve().parents[1] / "suites" / "abort"


@dataclass
class AbortComponent:
    name: str
    progress: journal_mod.Progress | None = None
    state: ComponentState | None = None  # preconditions: what Flux managed
    before: Any = None  # handover.snapshot.component.Snapshot before the abort
    detail: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> journal detail
    resumed: bool = False


class AbortRun:
    """Per-run state of the abort chains (the journal is what persists)."""

    def __init__(self, handover: HandoverRun):
        self.handover = handover  # same journal, same run id
        self.id = self.handover.id
        self.journal = self.handover.journal
        self.components: dict[str, AbortComponent] = {}
        self.selected: list[str] = []  # components of the selected chain steps, chain order
        self.probe: Any = None
        self.probe_result: Any = None

    def component(self, name: str) -> AbortComponent:
        if name not in self.components:
            self.components[name] = AbortComponent(
                name,
                journal_mod.progress(
                    self.journal, PHASE, name, first_step=ABORT.first, last_step=ABORT.last
                ),
            )
        return self.components[name]

    def record_step(self, component: str, step: str, status: str, **detail: Any) -> None:
        self.journal.set_context(PHASE, component, step)
        self.journal.step(status, run=self.id, **detail)

    def passed_detail(self, component: str, step: str) -> dict[str, Any]:
        p = self.component(component).progress
        return (p.passed.get(step) if p else None) or {}

    def snapshot_dir(self, inventory, component: str) -> Path:
        d = inventory.backups / component / f"abort-{self.id}"
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return d

    def keep_before(self, inventory, component: str, snap) -> str:
        path = self.snapshot_dir(inventory, component) / "snapshot-before-abort.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, snap.to_json().encode())
        finally:
            os.close(fd)
        return str(path)

    def restore(self, component: str) -> AbortComponent:
        """A resumed chain: read the preconditions' record back from the journal."""
        from handover.snapshot import component as snapshot_mod

        ac = self.component(component)
        d = self.passed_detail(component, "preconditions")
        if ac.state is None and d.get("state"):
            ac.state = ComponentState.from_dict(d["state"])
        if ac.before is None and d.get("snapshot") and Path(d["snapshot"]).exists():
            ac.before = snapshot_mod.Snapshot.from_dict(json.loads(Path(d["snapshot"]).read_text()))
        return ac


def _requested(config: pytest.Config) -> bool:
    base = Path(config.invocation_params.dir)
    for arg in config.args:
        p = Path(arg.split("::")[0])
        p = (p if p.is_absolute() else base / p).resolve()
        if p == ABORT_DIR or ABORT_DIR in p.parents:
            return True
    return False


def under_abort(path: Path | str) -> bool:
    p = Path(path).resolve()
    return p == ABORT_DIR or ABORT_DIR in p.parents


def ignored(collection_path: Path, config: pytest.Config) -> bool:
    """suites/abort is collected only when named on the command line."""
    return under_abort(collection_path) and not _requested(config)
