"""Rehearsal clusters for the project's own tests: one place that starts them and tears them down.

A test that needs a rehearsal cluster and cannot have one FAILS, naming what is missing: the
README's test command installs everything first (scripts/setup), so a missing kube binary there is
a broken setup, not a reason to pass quietly with the cluster tests skipped. On a machine where you
deliberately run only the offline tests, set HANDOVER_SKIP_REHEARSAL=1 to skip them instead.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_INVENTORY = ROOT / "examples" / "homelab" / "migration.yaml"


def require_rehearsal() -> None:
    """Fail (or skip with HANDOVER_SKIP_REHEARSAL=1) when the rehearsal cluster cannot run."""
    from handover.core.errors import HandoverError
    from handover.rehearsal.binaries import kube_binaries

    try:
        kube_binaries()
    except HandoverError as e:
        if os.environ.get("HANDOVER_SKIP_REHEARSAL") == "1":
            pytest.skip(f"rehearsal cluster unavailable (HANDOVER_SKIP_REHEARSAL=1): {e}")
        pytest.fail(f"rehearsal cluster unavailable: {e}\nrun scripts/setup first, or set "
                    "HANDOVER_SKIP_REHEARSAL=1 to skip the rehearsal-cluster tests",
                    pytrace=False)


@contextmanager
def rehearsal_cluster(state_dir: Path) -> Iterator:
    """A running RehearsalCluster in ``state_dir``, stopped and purged afterwards."""
    from handover.rehearsal.cluster import RehearsalCluster

    require_rehearsal()
    cluster = RehearsalCluster(state_dir)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down(purge=True)


@contextmanager
def seeded_stack(state_dir: Path, inventory: Path = EXAMPLE_INVENTORY):
    """``stack.up(state_dir, inventory)``: cluster, chart repo, git remote and the seeded homelab;
    stopped and purged afterwards."""
    from handover.rehearsal import stack

    require_rehearsal()
    try:
        yield stack.up(state_dir, inventory)
    finally:
        stack.down(state_dir, purge=True)
