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


def test_no_node_access_fails_naming_the_opt_out_and_the_opt_out_skips_by_name(rehearsal,
                                                                              tmp_path):
    """Without cluster.nodes the hostPath data check FAILS naming what to configure and the
    opt-out node-data (before: it skipped, and `pytest suites/phase1` exited 0 on a live cluster
    without node access); with --skip-check node-data or gate.skipChecks it is skipped BY that
    opt-out, named in the verdict and in MIGRATION_STATE.md."""
    inv = rehearsal.inventory_copy(tmp_path / "inv",
                                   lambda d: d["cluster"].pop("nodes", None))
    run = rehearsal.run(tmp_path / "run", inv, SUITE)
    assert run.returncode != 0 and run.outcomes("passed") == [], explain(run)
    assert set(run.failed) == {"test_pv_host_paths[storage]", "test_pv_host_paths[tempo]",
                               "test_pv_host_paths[llama-cpp]", "test_pv_host_paths[loki]"}
    msg = run.message("test_pv_host_paths[loki]")
    assert "NOT CHECKED" in msg and "no access to node '*' configured" in msg, msg
    assert "cluster.nodes" in msg and "--skip-check node-data" in msg, msg

    run = rehearsal.run(tmp_path / "opted-out", inv, SUITE, "--skip-check", "node-data")
    assert run.returncode == 0 and run.outcomes("passed") == [], explain(run)
    msg = run.message("test_pv_host_paths[loki]")
    assert run.by_name["test_pv_host_paths[loki]"].outcome == "skipped"
    assert "skipped by opt-out node-data (--skip-check)" in msg, msg
    assert "gate opt-outs (NOT checked)" in run.stdout and \
        "node-data (--skip-check): not checked" in run.stdout, run.stdout[-2000:]

    def opt_out(d: dict) -> None:
        d["cluster"].pop("nodes", None)
        d["gate"] = {"skipChecks": ["node-data"]}
    inv = rehearsal.inventory_copy(tmp_path / "inv-optout", opt_out)
    run = rehearsal.run(tmp_path / "inventory-opt-out", inv,
                        SUITE + ["suites/phase1/test_08_migration_state.py"],
                        "--report-dir", str(tmp_path / "state"))
    assert run.returncode == 0, explain(run)
    assert "skipped by opt-out node-data (inventory gate.skipChecks)" in \
        run.message("test_pv_host_paths[loki]")
    md = (tmp_path / "state" / "MIGRATION_STATE.md").read_text()
    assert "| node-data | inventory gate.skipChecks |" in md, md[:2000]
