"""Scenario: the data behind a PV is not where the PV says (node check over pytest-testinfra).
On the seeded example every PV directory exists on the rehearsal node with data; with Loki's
directory gone, exactly the components that use loki-pv (storage and loki) fail, naming the path."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.scenarios.conftest import explain

pytestmark = pytest.mark.rehearsal
SUITE = ["suites/phase1/test_hazard_pv_host_paths.py"]


def test_example_passes_and_a_missing_directory_fails(rehearsal, tmp_path):
    run = rehearsal.run(tmp_path / "clean", rehearsal.inventory_path, SUITE)
    assert run.failed == [], explain(run)
    assert set(run.outcomes("passed")) == {"test_pv_host_paths[storage]",
                                           "test_pv_host_paths[tempo]",
                                           "test_pv_host_paths[llama-cpp]",
                                           "test_pv_host_paths[loki]"}, explain(run)

    live_root = Path(rehearsal.inventory_data()["cluster"]["nodes"][0]["root"])
    broken_root = tmp_path / "node-root"
    shutil.copytree(live_root, broken_root)
    shutil.rmtree(broken_root / "mnt/k8s-storage/loki")

    def point(data: dict) -> None:
        data["cluster"]["nodes"] = [{"name": "*", "host": "local://", "root": str(broken_root)}]
    inv = rehearsal.inventory_copy(tmp_path / "broken", point)
    run = rehearsal.run(tmp_path / "broken-run", inv, SUITE)
    assert run.failed == ["test_pv_host_paths[loki]", "test_pv_host_paths[storage]"], explain(run)
    for name in run.failed:
        msg = run.message(name)
        assert "PersistentVolume loki-pv" in msg and "/mnt/k8s-storage/loki" in msg
        assert "does not exist" in msg


def test_no_node_access_is_a_skip_not_a_pass(rehearsal, tmp_path):
    inv = rehearsal.inventory_copy(tmp_path / "inv",
                                   lambda d: d["cluster"].pop("nodes", None))
    run = rehearsal.run(tmp_path / "run", inv, SUITE)
    assert run.outcomes("passed") == [], explain(run)
    assert "no access to node '*' configured" in run.message("test_pv_host_paths[loki]")
