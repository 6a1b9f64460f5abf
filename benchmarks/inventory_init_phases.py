"""Phases 1-4 (the full phase-3 chain, every component) under a draft written by `handover
inventory init` on the seeded example, and, as the peer measured in the same run, under the
hand-written examples/homelab/migration.yaml on a fresh seeded stack, testcase by testcase
(tests/scenarios/inventory_init_phases.py, tests/scenarios/capture_replay.py):

    python benchmarks/inventory_init_phases.py [-k EXPR] [--no-peer] [--keep DIR]

Prints per phase: testcases, passed/failed/skipped under the draft and under the hand-written
inventory, seconds on each side, and every testcase whose outcome differs; exit status 1 when a
testcase failed under the draft or differs from the hand-written run. One rehearsal cluster at a
time.

Measured 2026-11-30 with --no-peer on the shared 2-core machine (load ~20, ~17 min wall): under
the draft 228 testcases, 0 failed (phase 1: 130/0/1 passed/failed/skipped, 176.6 s; 2: 9/0/0,
99.7 s; 3: 64/0/0, 375.1 s; 4: 24/0/0, 91.6 s), seed 273.6 s, inventory init 6.3 s. The same
counts as the hand-written inventory's in benchmarks/capture_replay_phases.py's measurement; the
run with the peer (testcase by testcase) has not been made yet.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.rehearsal_support import seeded_stack  # noqa: E402
from tests.scenarios.capture_replay import (EXAMPLE_INVENTORY, PHASES, Side,  # noqa: E402
                                            run_phases)
from tests.scenarios.inventory_init_phases import run  # noqa: E402


def _fmt(k: Counter) -> str:
    return f"{k['passed']}/{k['failed'] + k['error']}/{k['skipped']}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", dest="phase3_k", default=None, help="limit phase 3 (pytest -k)")
    ap.add_argument("--no-peer", action="store_true",
                    help="skip the run under the hand-written inventory")
    ap.add_argument("--keep", type=Path, default=None, help="work dir kept afterwards")
    a = ap.parse_args(argv)
    base = a.keep or Path(tempfile.mkdtemp(prefix="init-phases-"))
    peer = None
    try:
        draft = run(base / "draft", a.phase3_k).side
        if not a.no_peer:
            peer = Side()
            t0 = time.monotonic()
            with seeded_stack(base / "hand" / "state", EXAMPLE_INVENTORY) as s:
                peer.seconds["seed"] = time.monotonic() - t0
                run_phases(Path(s.inventory_path), s.cluster.kubeconfig, base / "hand" / "work",
                           a.phase3_k, peer)
    finally:
        if a.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print(f"{'phase':<8}{'cases':>6}  {'draft p/f/s':>12}  {'hand p/f/s':>12}  "
          f"{'draft s':>9}  {'hand s':>9}")
    for p in PHASES:
        d = Counter(draft.outcomes[p].values())
        h = Counter(peer.outcomes[p].values()) if peer else Counter()
        print(f"{p:<8}{len(draft.outcomes[p]):>6}  {_fmt(d):>12}  "
              f"{_fmt(h) if peer else '-':>12}  {draft.seconds[f'phase {p}']:>9.1f}  "
              f"{peer.seconds[f'phase {p}'] if peer else float('nan'):>9.1f}")
    print(f"seed {draft.seconds['seed']:.1f} s, inventory init "
          f"{draft.seconds['inventory init']:.1f} s")
    failed = [f"phase {p} {n}: {o}" for p in PHASES for n, o in draft.outcomes[p].items()
              if o in ("failed", "error")]
    diff = []
    if peer:
        for p in PHASES:
            x, y = draft.outcomes[p], peer.outcomes[p]
            diff += [f"phase {p} {n}: draft {x.get(n, 'absent')}, hand-written "
                     f"{y.get(n, 'absent')}" for n in sorted(set(x) | set(y))
                     if x.get(n) != y.get(n)]
    for f in failed:
        print("FAILED UNDER THE DRAFT", f)
    for d in diff:
        print("DIFFERENCE", d)
    print(f"failed under the draft: {len(failed)}, differences: {len(diff)}")
    return 1 if failed or diff else 0


if __name__ == "__main__":
    sys.exit(main())
