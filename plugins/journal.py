"""The migration journal, as a pytest plugin: the journal itself, the run id, the Mutator, and
resuming an interrupted run.

Options: --journal (default ``<inventory backups>/journal.jsonl``).

Fixtures: ``run_id``, ``journal``, ``mutator`` (the one place that mutates: --perform, context
guard, journal first), ``handover_run`` (per-run state of the phase-3 chains).

Resume: the journal outlives a killed process. For every component, ``progress()`` reads where its
chain stood (handover.core.journal.progress):
- done: its steps are skipped ("handed over in run X"), nothing is repeated;
- in-progress with the hand-over begun: steps that passed are not repeated; the backup and the
  snapshot taken before the hand-over are read back from the files the journal names, and the
  chain continues at the first step that did not pass;
- in-progress before the hand-over: read-only steps are simply run again;
- failed without a completed rollback (killed mid-rollback): the rollback runs again from the
  journal (each rollback action checks the live state first) and the component halts;
- failed AFTER the handover finished (step ``finish`` passed, the temporary Kustomization is gone):
  never rolled back; the steps that passed are skipped and the failed ones run again;
- rolled-back: the chain starts afresh.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from handover.core import journal as journal_mod
from handover.core.mutation import Mutator

PHASE = "phase3"
# The chain, in order. A step's name is what the journal, the skip reasons and the report use.
STEPS = ("preconditions", "backup", "snapshot", "handover", "ready", "adopted", "finish", "record")
MUTATION_BEGINS = "handover"
# Once this step passed the component is handed over (the temporary Kustomization is removed, Flux
# manages it): no later failure (a bookkeeping step, a resumed run) may roll it back.
FINISHED_AT = "finish"

RUN_KEY = pytest.StashKey["HandoverRun"]()


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
    def __init__(self, config: pytest.Config, journal_path: Path):
        self.config = config
        self.id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.journal = journal_mod.Journal(journal_path)
        self.components: dict[str, ComponentRun] = {}

    def component(self, name: str) -> ComponentRun:
        if name not in self.components:
            cr = ComponentRun(name)
            cr.progress = journal_mod.progress(self.journal, PHASE, name,
                                               first_step=STEPS[0], last_step=STEPS[-1])
            self.components[name] = cr
        return self.components[name]

    def record_step(self, component: str, step: str, status: str, **detail: Any) -> None:
        self.journal.set_context(PHASE, component, step)
        self.journal.step(status, run=self.id, **detail)
        if status == "started" and step in STEPS[STEPS.index(MUTATION_BEGINS):]:
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
        if p and p.state != "rolled-back" and (MUTATION_BEGINS in p.passed or p.last_started in STEPS[STEPS.index(
                MUTATION_BEGINS):]):
            return True
        return False


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flux-handover")
    group.addoption("--journal", default=None,
                    help="the migration journal (default: <inventory backups>/journal.jsonl)")


def handover_run(config: pytest.Config) -> HandoverRun:
    """The run's state, created on first use (needs the inventory)."""
    if RUN_KEY not in config.stash:
        from plugins.safety import load_inventory
        inv = load_inventory(config)
        path = config.getoption("--journal")
        config.stash[RUN_KEY] = HandoverRun(config, Path(path) if path else
                                            inv.backups / "journal.jsonl")
    return config.stash[RUN_KEY]


@pytest.fixture(scope="session")
def handover_run_state(pytestconfig: pytest.Config) -> HandoverRun:
    return handover_run(pytestconfig)


@pytest.fixture(scope="session")
def run_id(handover_run_state: HandoverRun) -> str:
    return handover_run_state.id


@pytest.fixture(scope="session")
def journal(handover_run_state: HandoverRun) -> journal_mod.Journal:
    return handover_run_state.journal


@pytest.fixture(scope="session")
def mutator(kube, inventory, journal, perform) -> Mutator:
    return Mutator(kube, inventory, journal, perform)


def resume_skip_reason(run: HandoverRun, component: str, step: str) -> str | None:
    """Why a step is not run again in this run, according to the journal, or None."""
    cr = run.component(component)
    p = cr.progress
    if p is None or p.state == "fresh" or p.state == "rolled-back":
        return None
    if p.state == "done":
        return (f"{component} was handed over in run {p.run} (journal {run.journal.path}); "
                "nothing is repeated")
    resumable = p.state == "in-progress" or (p.state == "failed" and run.finished(component))
    if resumable and run.mutation_began(component) and step in p.passed:
        cr.resumed = True
        return (f"{component}: step {step} passed in run {p.passed[step].get('run', '?')} "
                "(journal); not repeated, continuing from the journal")
    return None
