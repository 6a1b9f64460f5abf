"""The fault matrix: kill -9 the runbook at every step and point, run it again, check what is left.

    python benchmarks/fault_matrix.py [--phases 3,2,4] [--steps preconditions,backup,...]
                                      [--phase2-steps ...] [--phase4-steps ...]
                                      [--points started,done] [--state-dir DIR] [--json PATH]

(`--phases 4` runs only phase 4's cells, `--phases 2 --phase2-steps
test_entrypoints_suspended_in_git` only that step's, and so on.)

For every step of phase 3 (one component: envoy-gateway), the run is killed (a) right after the
step is journaled started, (b) right after the mutation it makes (before its outcome is
journaled), (c) right after it is journaled done; then run again. Phase 2: the Git-suspend step and the bootstrap step,
killed at the same three points, each on a fresh seeded stack (a bootstrap cannot be undone
between cells). Phase 4: the snapshot, resume-in-Git and reconcile steps, on one stack where
every component was handed over once (phase 3); after each cell the entry points
are suspended again in Git and live. Each cell must end with the
component handed over or cleanly rolled back (never a finished component rolled back), the pod
UIDs of a handed-over component unchanged, no Helm release pending, the journal consistent (see
tests/scenarios/fault_matrix.py). Steps without a mutation have no (b) cell ("n/a").

Prints one row per cell (result, how it ended, seconds, problems) and the figures: cells run,
passed, failed, n/a. Exit status 1 if any cell failed. One rehearsal cluster at a time: one
(seeded, Flux bootstrapped by phase 2) for all phase-3 cells, one per phase-2 cell; each stopped
and purged.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handover.core.inventory import load  # noqa: E402
from handover.core.kube import Kube  # noqa: E402
from tests.scenarios.fault_matrix import (PHASE2_STEPS, PHASE3_STEPS, PHASE4_STEPS,  # noqa
                                          POINTS, hand_over_for_phase4, phase2_cells,
                                          phase3_cells, phase4_cells, run_phase2_cell,
                                          run_phase3_cell, run_phase4_cell)
from tests.scenarios.phase3_rehearsal import bootstrapped_stack  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", default=",".join(PHASE3_STEPS))
    ap.add_argument("--points", default=",".join(POINTS))
    ap.add_argument("--phases", default="3,2,4", help="which phases' cells (3, 2, 4)")
    ap.add_argument("--phase2-steps", default=",".join(PHASE2_STEPS))
    ap.add_argument("--phase4-steps", default=",".join(PHASE4_STEPS))
    ap.add_argument("--state-dir", default=None)
    ap.add_argument("--json", default=None, help="also write the cells as JSON here")
    args = ap.parse_args(argv)
    steps = [s for s in args.steps.split(",") if s]
    points = [p for p in args.points.split(",") if p]
    phases = [p for p in args.phases.split(",") if p]
    cells = phase3_cells(steps, points) if "3" in phases else []
    cells2 = phase2_cells(points, [s for s in args.phase2_steps.split(",") if s]) \
        if "2" in phases else []
    steps4 = [s for s in args.phase4_steps.split(",") if s]
    cells4 = phase4_cells(points, steps4) if "4" in phases else []
    base = Path(args.state_dir or tempfile.mkdtemp(prefix="fault-matrix-"))
    t0 = time.monotonic()
    print(f"fault matrix: {len(cells)} phase-3 cells (envoy-gateway), {len(cells2)} phase-2 "
          f"cells, {len(cells4)} phase-4 cells, state {base}", flush=True)
    setup = 0.0

    def show(cell) -> None:
        print(f"  {cell.name:<32} {cell.result:<7} {cell.end:<12} {cell.seconds:5.0f} s"
              + (f"  {'; '.join(cell.problems)[:300]}" if cell.result == "FAILED" else ""),
              flush=True)
    for n, cell in enumerate(cells2, 1):
        try:
            run_phase2_cell(base / f"p2-state-{n}", base / "work" / f"p2-cell-{n:02d}", cell)
        except Exception as e:
            cell.result, cell.problems = "FAILED", [f"{e.__class__.__name__}: {e}"]
        show(cell)
    if cells4:
        with bootstrapped_stack(base / "p4-state", base / "work" / "p4") as s:
            t4 = time.monotonic()
            inv_path, journal3 = hand_over_for_phase4(s, base / "work" / "p4")
            inv4 = load(inv_path)
            kube4 = Kube(kubeconfig=s.cluster.kubeconfig, context=inv4.cluster.context)
            print(f"phase-4 stack: every component handed over in {time.monotonic() - t4:.0f} s",
                  flush=True)
            for n, cell in enumerate(cells4, 1):
                if cell.result == "n/a":
                    continue
                try:
                    run_phase4_cell(s, inv_path, journal3, base / "work" / f"p4-cell-{n:02d}",
                                    kube4, inv4, cell)
                except Exception as e:
                    cell.result, cell.problems = "FAILED", [f"{e.__class__.__name__}: {e}"]
                show(cell)
    if not cells:
        return _table(cells2, [], steps, time.monotonic() - t0, 0.0, args.json, cells4)
    with bootstrapped_stack(base / "state", base / "work") as s:
        inv = load(s.inventory_path)
        kube = Kube(kubeconfig=s.cluster.kubeconfig, context=inv.cluster.context)
        t_setup = time.monotonic()
        setup = t_setup - t0 - sum(c.seconds for c in cells2 + cells4)
        print(f"stack up and Flux bootstrapped in {setup:.0f} s", flush=True)
        for n, cell in enumerate(cells, 1):
            if cell.result == "n/a":
                continue
            try:
                run_phase3_cell(s, base / "work" / f"cell-{n:02d}", kube, inv, cell)
            except Exception as e:  # a cell that breaks the harness is a failed cell
                cell.result, cell.problems = "FAILED", [f"{e.__class__.__name__}: {e}"]
            show(cell)
    return _table(cells2, cells, steps, time.monotonic() - t0, setup, args.json, cells4)


def _table(cells2, cells, steps, total, setup, json_path, cells4=()) -> int:
    print()
    print("| step | killed after: journaled started | after its mutation | journaled done |")
    print("| --- | --- | --- | --- |")
    rows = [("phase 2 " + s, [c for c in cells2 if c.step == s]) for s in PHASE2_STEPS] + \
        [("phase 3 " + s, [c for c in cells if c.step == s]) for s in steps] + \
        [("phase 4 " + s, [c for c in cells4 if c.step == s]) for s in PHASE4_STEPS]
    for label, row_cells in rows:
        if not row_cells:
            continue
        row = {c.point: c for c in row_cells}
        print(f"| {label} | " + " | ".join(
            (f"{row[p].result} ({row[p].end})" if row[p].result != "n/a" else "n/a")
            if p in row else "-" for p in POINTS) + " |")
    every = list(cells2) + list(cells) + list(cells4)
    run = [c for c in every if c.result != "n/a"]
    passed = [c for c in run if c.result == "passed"]
    print(f"\ncells: {len(run)} run, {len(passed)} passed, {len(run) - len(passed)} failed, "
          f"{len(every) - len(run)} n/a; {total:.0f} s in all ("
          + (f"phase-3 stack {setup:.0f} s; " if cells else "") +
          f"{sum(c.seconds for c in run) / max(len(run), 1):.0f} s per cell)")
    if json_path:
        Path(json_path).write_text(json.dumps([asdict(c) for c in every], indent=2))
    return 0 if len(passed) == len(run) else 1


if __name__ == "__main__":
    sys.exit(main())
