"""Fixtures of the rehearsal-cluster tests: one seeded homelab per test session."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.rehearsal_support import seeded_stack as seeded

EXAMPLE_INVENTORY = Path(__file__).resolve().parents[2] / "examples" / "homelab" / "migration.yaml"


@pytest.fixture(scope="session")
def seeded_stack(tmp_path_factory):
    """``handover.rehearsal.stack.up(state_dir, examples/homelab/migration.yaml)`` in the session's
    own state dir: cluster, chart repo, git remote and the seeded homelab; purged at the end."""
    with seeded(tmp_path_factory.mktemp("seeded") / "state", EXAMPLE_INVENTORY) as s:
        yield s
