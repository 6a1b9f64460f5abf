"""Phases 1-4 (the full phase-3 chain, every component) on the seeded example and on a replay
of its capture, testcase by testcase (tests/scenarios/capture_replay.py):

    python benchmarks/capture_replay_phases.py [-k EXPR] [--keep DIR]

Prints per phase: testcases, passed/failed/skipped on each side, differences, seconds on each
side (the seeded example is the peer measured in the same run); exit status 1 on any difference
or replay problem. One rehearsal cluster at a time.

Measured 2026-11-29 on the shared 2-core machine (11 min 42 s wall): 228 testcases (phase 1: 131,
2: 9, 3: 64, 4: 24), the same outcome for each on both sides (130/0/1, 9/0/0, 64/0/0, 24/0/0
passed/failed/skipped), 0 replay problems.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.scenarios.capture_replay import PHASES, compare  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", dest="phase3_k", default=None, help="limit phase 3 (pytest -k)")
    ap.add_argument("--keep", type=Path, default=None, help="work dir kept afterwards")
    a = ap.parse_args(argv)
    base = a.keep or Path(tempfile.mkdtemp(prefix="capture-replay-"))
    try:
        c = compare(base, a.phase3_k)
    finally:
        if a.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print(f"{'phase':<8}{'cases':>6}  {'seeded p/f/s':>14}  {'replay p/f/s':>14}  "
          f"{'seeded s':>9}  {'replay s':>9}")
    for p in PHASES:
        s, r = Counter(c.seeded.outcomes[p].values()), Counter(c.replayed.outcomes[p].values())
        fmt = lambda k: f"{k['passed']}/{k['failed'] + k['error']}/{k['skipped']}"  # noqa: E731
        print(f"{p:<8}{len(c.seeded.outcomes[p]):>6}  {fmt(s):>14}  {fmt(r):>14}  "
              f"{c.seeded.seconds[f'phase {p}']:>9.1f}  {c.replayed.seconds[f'phase {p}']:>9.1f}")
    print(f"seed {c.seeded.seconds['seed']:.1f} s, capture {c.seeded.seconds['capture']:.1f} s, "
          f"replay {c.replayed.seconds['replay']:.1f} s")
    diff = c.differences()
    for d in diff:
        print("DIFFERENCE", d)
    for p in c.replay_problems:
        print("REPLAY PROBLEM", p)
    print(f"differences: {len(diff)}, replay problems: {len(c.replay_problems)}, "
          f"replay notes: {len(c.replay_notes)}")
    return 1 if diff or c.replay_problems else 0


if __name__ == "__main__":
    sys.exit(main())
