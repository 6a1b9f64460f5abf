"""Phases 1-4 under a draft written by ``handover inventory init`` (issue 10, "Done when": the
draft yields an inventory under which phases 1-4 pass).

:func:`run` brings up the seeded example (``stack.up`` with examples/homelab/migration.yaml), runs
``handover inventory init`` on its GitOps clone and the rehearsal cluster (read-only), turns the
draft into a rehearsal copy the way ``rehearsal up --inventory`` does for an inventory
(:func:`rehearsal_copy`: the rehearsal state dir, node root, GitOps clone and remote, backups),
then runs phases 1, 2 (--perform), 3 (--perform, optionally limited with ``-k``) and 4 (--perform)
under the draft in child pytests (tests/harness.py, the same runner as
tests/scenarios/capture_replay.py), stops and purges the stack. Used by
tests/scenarios/test_inventory_init.py (phase 3 limited to two components) and
benchmarks/inventory_init_phases.py (the full chain).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.rehearsal_support import seeded_stack
from tests.scenarios.capture_replay import EXAMPLE_INVENTORY, Side, run_phases


@dataclass
class DraftRun:
    side: Side
    draft_text: str  # the draft as `inventory init` wrote it
    inventory: dict  # the rehearsal copy the phases ran under


def rehearsal_copy(draft: Path, rehearsal_inventory: Path, out: Path) -> Path:
    """The draft pointed at the rehearsal, with the fields ``rehearsal up --inventory`` sets in
    its rehearsal copy of an inventory (taken from that copy of the hand-written one); every
    component and everything else is the draft's."""
    data = yaml.safe_load(draft.read_text())
    hand = yaml.safe_load(rehearsal_inventory.read_text())
    data["cluster"]["rehearsalStateDir"] = hand["cluster"]["rehearsalStateDir"]
    data["cluster"]["nodes"] = hand["cluster"]["nodes"]
    for k in ("path", "url", "branch"):
        data["gitops"][k] = hand["gitops"][k]
    data["backups"]["path"] = str(out.parent / "backups")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def run(base: Path, phase3_k: str | None = None) -> DraftRun:
    from handover import cli

    side = Side()
    t0 = time.monotonic()
    with seeded_stack(base / "state", EXAMPLE_INVENTORY) as s:
        side.seconds["seed"] = time.monotonic() - t0
        draft = base / "draft" / "migration.yaml"
        draft.parent.mkdir(parents=True)
        t0 = time.monotonic()
        rc = cli.main(["inventory", "init", "--gitops", str(s.gitops_clone), "--kube-context",
                       s.cluster.context, "--kubeconfig", str(s.cluster.kubeconfig), "--out",
                       str(draft)])
        side.seconds["inventory init"] = time.monotonic() - t0
        if rc != 0:
            raise AssertionError(f"handover inventory init exited {rc}")
        inv = rehearsal_copy(draft, Path(s.inventory_path), base / "inv" / "migration.yaml")
        run_phases(inv, s.cluster.kubeconfig, base / "work", phase3_k, side)
        return DraftRun(side, draft.read_text(), yaml.safe_load(inv.read_text()))
