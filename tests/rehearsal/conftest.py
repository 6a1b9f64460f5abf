"""Fixtures of the rehearsal-cluster tests: one seeded homelab per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLE_INVENTORY = Path(__file__).resolve().parents[2] / "examples" / "homelab" / "migration.yaml"


@pytest.fixture(scope="session")
def seeded_stack(tmp_path_factory):
    """``handover.rehearsal.stack.up(state_dir, examples/homelab/migration.yaml)`` in the session's
    own state dir: cluster, chart repo, git remote and the seeded homelab; purged at the end."""
    from handover.errors import ToolNotFound
    from handover.rehearsal import stack
    from handover.rehearsal.binaries import kube_binaries

    try:
        kube_binaries()
    except ToolNotFound as e:
        pytest.skip(f"rehearsal cluster unavailable: {e}")
    state_dir = tmp_path_factory.mktemp("seeded") / "state"
    try:
        yield stack.up(state_dir, EXAMPLE_INVENTORY)
    finally:
        stack.down(state_dir, purge=True)
