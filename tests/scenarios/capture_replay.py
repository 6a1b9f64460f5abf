"""Issue 10's "Done when": a capture of the seeded example rehearsal, replayed into a fresh
rehearsal, gives the same pass/fail of phases 1-4 as the example itself.

:func:`compare` brings up the seeded example (``stack.up`` with examples/homelab/migration.yaml),
captures it (``handover.capture.capture`` with its rehearsal inventory), runs phases 1, 2
(--perform), 3 (--perform, optionally limited with ``-k``) and 4 (--perform) on it in child
pytests (tests/harness.py), stops and purges it; then replays the bundle into a fresh rehearsal
(``replay.up_from_capture`` with the GitOps tree examples/homelab/gitops and the captured
inventory) and runs the same phases with the same arguments there. One rehearsal cluster at a
time. Used by tests/scenarios/test_capture_replay.py (phase 3 limited to two components) and
benchmarks/capture_replay_phases.py (the full chain, with figures).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import ROOT, SuiteRun, run_suite
from tests.rehearsal_support import seeded_stack

EXAMPLE_INVENTORY = ROOT / "examples" / "homelab" / "migration.yaml"
EXAMPLE_GITOPS = ROOT / "examples" / "homelab" / "gitops"
PHASES = (1, 2, 3, 4)


@dataclass
class Side:
    """The phases' outcomes on one cluster: phase -> {testcase: outcome}, and the runs."""
    outcomes: dict[int, dict[str, str]] = field(default_factory=dict)
    runs: dict[int, SuiteRun] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def tail(self, phase: int) -> str:
        run = self.runs.get(phase)
        return run.stdout[-3000:] if run else ""


@dataclass
class Comparison:
    seeded: Side
    replayed: Side
    replay_problems: list[str]
    replay_notes: list[str]

    def differences(self) -> list[str]:
        out = []
        for p in PHASES:
            a, b = self.seeded.outcomes.get(p, {}), self.replayed.outcomes.get(p, {})
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    out.append(f"phase {p} {name}: seeded {a.get(name, 'absent')}, "
                               f"replay {b.get(name, 'absent')}")
        return out


def run_phases(inventory: Path, kubeconfig: Path, work: Path, phase3_k: str | None,
               side: Side) -> None:
    work.mkdir(parents=True, exist_ok=True)
    for p in PHASES:
        args = ["--kubeconfig", str(kubeconfig), "--report-dir", str(work / "reports"),
                "--journal", str(work / "journal.jsonl")]
        if p > 1:
            args.append("--perform")
        if p == 3 and phase3_k:
            args += ["-k", phase3_k]
        t0 = time.monotonic()
        run = run_suite([f"suites/phase{p}"], inventory, work / f"phase{p}.xml", *args,
                        timeout=1800)
        side.seconds[f"phase {p}"] = time.monotonic() - t0
        side.runs[p] = run
        side.outcomes[p] = {c.name: c.outcome for c in run.cases}


def compare(base: Path, phase3_k: str | None = None) -> Comparison:
    from handover.capture import replay
    from handover.capture.capture import capture
    from handover.rehearsal import stack

    seeded, replayed = Side(), Side()
    bundle = base / "bundle"
    inventory = base / "captured-inventory.yaml"
    t0 = time.monotonic()
    with seeded_stack(base / "seeded" / "state", EXAMPLE_INVENTORY) as s:
        seeded.seconds["seed"] = time.monotonic() - t0
        t0 = time.monotonic()
        shutil.copy(s.inventory_path, inventory)  # the state dir is purged below
        capture(bundle, kubeconfig=s.cluster.kubeconfig, inventory=inventory)
        seeded.seconds["capture"] = time.monotonic() - t0
        run_phases(Path(s.inventory_path), s.cluster.kubeconfig, base / "seeded" / "work",
                   phase3_k, seeded)
    state = base / "replayed" / "state"
    try:
        t0 = time.monotonic()
        r = replay.up_from_capture(state, bundle, EXAMPLE_GITOPS, inventory=inventory)
        replayed.seconds["replay"] = time.monotonic() - t0
        run_phases(r.inventory_path, r.kubeconfig, base / "replayed" / "work", phase3_k,
                   replayed)
        return Comparison(seeded, replayed, list(r.report.problems), list(r.report.notes))
    finally:
        stack.down(state, purge=True)
