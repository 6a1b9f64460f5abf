"""The journal part of the runbook plugin (plugins/runbook.py owns it): the run id, the journal and
the per-component state of the phase-3 chains, and resuming an interrupted run.

Resume: the journal outlives a killed process. For every component, ``progress()`` reads where its
chain stood (handover.core.journal.progress):
- done: its steps are skipped ("handed over in run X"), nothing is repeated;
- in-progress with the hand-over begun: steps that passed are not repeated; the backup and the
  snapshot taken before the hand-over are read back from the files the journal names, and the
  chain continues at the first step that did not pass;
- in-progress before the hand-over: read-only steps are simply run again;
- failed without a completed rollback (killed mid-rollback): the rollback runs again from the
  journal (each rollback action checks the live state first) and the component halts;
- failed AFTER the handover finished (the chain's ``finished_at`` step passed, the temporary
  Kustomization is gone): never rolled back; the steps that passed are skipped and the failed
  ones run again;
- rolled-back: the chain starts afresh.

The chain (its steps, where mutation begins, where it is finished) is handover.runbook.PHASE3.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handover.chain import backup as backup_mod
from handover.core import journal as journal_mod
from handover.runbook import PHASE3

PHASE = PHASE3.phase
# Once this step passed the component is handed over (the temporary Kustomization is removed, Flux
# manages it): no later failure (a bookkeeping step, a resumed run) may roll it back.
FINISHED_AT = PHASE3.finished_at


@dataclass
class ComponentRun:
    """Live state of one component's chain in this run (not persisted: the journal is)."""

    name: str
    backup: Any = None  # handover.chain.backup.BackupRecord
    before: Any = None  # handover.snapshot.component.Snapshot
    snapshot_path: str = ""
    after: Any = None
    probe: Any = None  # handover.chain.probe.Probe while running
    probe_result: Any = None
    token: str = ""
    progress: journal_mod.Progress | None = None
    resumed: bool = False
    mutated: bool = False  # a mutating step started in this run
    finished: bool = False  # FINISHED_AT passed in this run
    notes: list[str] = field(default_factory=list)


class HandoverRun:
    def __init__(self, journal_path: Path):
        self.id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.journal = journal_mod.Journal(journal_path)
        self.components: dict[str, ComponentRun] = {}

    def component(self, name: str) -> ComponentRun:
        if name not in self.components:
            cr = ComponentRun(name)
            cr.progress = journal_mod.progress(
                self.journal, PHASE, name, first_step=PHASE3.first, last_step=PHASE3.last
            )
            self.components[name] = cr
        return self.components[name]

    def record_step(self, component: str, step: str, status: str, **detail: Any) -> None:
        self.journal.set_context(PHASE, component, step)
        self.journal.step(status, run=self.id, **detail)
        if status == "started" and PHASE3.after_mutation_began(step):
            self.component(component).mutated = True
        if status == "passed" and step == FINISHED_AT:
            self.component(component).finished = True

    def finished(self, component: str) -> bool:
        """Has the component's handover finished (FINISHED_AT passed, in this run or in the
        journal's current attempt)? A finished component is never rolled back automatically."""
        cr = self.component(component)
        p = cr.progress
        return cr.finished or bool(p and p.state != "rolled-back" and FINISHED_AT in p.passed)

    def step_detail(self, component: str, step: str) -> dict[str, Any]:
        """The journal detail of a step that passed in the current attempt (resume)."""
        p = self.component(component).progress
        return (p.passed.get(step) if p else None) or {}

    def mutation_began(self, component: str) -> bool:
        """Did this attempt reach the first mutating step (in this run or the journal's)?"""
        cr = self.component(component)
        p = cr.progress
        if cr.mutated:
            return True
        return bool(
            p
            and p.state != "rolled-back"
            and (PHASE3.mutation_begins in p.passed or PHASE3.after_mutation_began(p.last_started))
        )

    def backup_record(self, component: str) -> backup_mod.BackupRecord | None:
        """The backup the journal recorded for the component's current attempt, or None."""
        directory = self.step_detail(component, "backup").get("backup")
        if not directory:
            return None
        try:
            return backup_mod.load_record(directory)
        except backup_mod.BackupError:
            return None


def resume_skip_reason(run: HandoverRun, component: str, step: str) -> str | None:
    """Why a step is not run again in this run, according to the journal, or None."""
    cr = run.component(component)
    p = cr.progress
    if p is None or p.state == "fresh" or p.state == "rolled-back":
        return None
    if p.state == "done":
        return (
            f"{component} was handed over in run {p.run} (journal {run.journal.path}); "
            "nothing is repeated"
        )
    resumable = p.state == "in-progress" or (p.state == "failed" and run.finished(component))
    if resumable and run.mutation_began(component) and step in p.passed:
        cr.resumed = True
        return (
            f"{component}: step {step} passed in run {p.passed[step].get('run', '?')} "
            "(journal); not repeated, continuing from the journal"
        )
    return None
