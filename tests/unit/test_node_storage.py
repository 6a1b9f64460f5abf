"""Node checks of hostPath PV data (handover/gate/hazards/node_storage.py), through pytest-testinfra's real
local backend on a node root made in tmp_path."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from handover.core import inventory
from handover.gate.hazards import node_storage
from tests.unit.kube_fake import FakeKube

ROOT = Path(__file__).resolve().parents[2]


def pv(name: str, path: str | None, node: str | None = None) -> dict:
    spec: dict = {"persistentVolumeReclaimPolicy": "Retain"}
    if path:
        spec["hostPath"] = {"path": path, "type": "DirectoryOrCreate"}
    else:
        spec["nfs"] = {"server": "nfs.invalid", "path": "/x"}
    if node:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": spec}


def inv_with_nodes(tmp_path: Path, nodes: list[dict] | None) -> inventory.Inventory:
    doc = yaml.safe_load((ROOT / "examples/homelab/migration.yaml").read_text())
    if nodes is not None:
        doc["cluster"]["nodes"] = nodes
    return inventory.parse(doc, tmp_path / "migration.yaml")


@pytest.fixture()
def node_root(tmp_path) -> Path:
    root = tmp_path / "node"
    for d in ("mnt/k8s-storage/loki", "mnt/k8s-storage/tempo"):
        (root / d).mkdir(parents=True)
    (root / "mnt/k8s-storage/loki/chunks").write_text("data")
    (root / "mnt/k8s-storage/llama-models").write_text("a file, not a directory")
    return root


def test_each_status_of_a_pv_directory(tmp_path, node_root):
    inv = inv_with_nodes(tmp_path, [{"name": "*", "host": "local://", "root": str(node_root)}])
    kube = FakeKube(pv("loki-pv", "/mnt/k8s-storage/loki"),
                    pv("tempo-pv", "/mnt/k8s-storage/tempo"),
                    pv("llama-models-pv", "/mnt/k8s-storage/llama-models"))
    checks = {c.pv: c for c in node_storage.check_component(kube, inv, inv.component("storage"))}
    assert checks["loki-pv"].status == "ok"
    assert checks["tempo-pv"].status == "empty"
    assert checks["llama-models-pv"].status == "not-a-directory"
    found = node_storage.findings(list(checks.values()))
    assert sorted((f.subject, f.severity) for f in found) == [
        ("PersistentVolume llama-models-pv", "error"), ("PersistentVolume tempo-pv", "warning")]
    assert "kubelet would create it EMPTY" in [f for f in found if f.severity == "error"][0].problem


def test_missing_directory_and_missing_pv(tmp_path, node_root):
    inv = inv_with_nodes(tmp_path, [{"name": "*", "host": "local://", "root": str(node_root)}])
    kube = FakeKube(pv("loki-pv", "/mnt/k8s-storage/elsewhere"))
    checks = node_storage.check_component(kube, inv, inv.component("loki"))
    assert [(c.status, c.path) for c in checks] == [("missing", "/mnt/k8s-storage/elsewhere")]
    assert node_storage.findings(checks)[0].severity == "error"
    checks = node_storage.check_component(FakeKube(), inv, inv.component("loki"))
    assert checks[0].status == "missing" and "does not exist" in checks[0].detail


def test_pinned_node_without_access_is_not_checked(tmp_path, node_root):
    inv = inv_with_nodes(tmp_path, [{"name": "other", "host": "local://",
                                     "root": str(node_root)}])
    kube = FakeKube(pv("loki-pv", "/mnt/k8s-storage/loki", node="k3s-1"))
    [c] = node_storage.check_component(kube, inv, inv.component("loki"))
    assert (c.status, c.node) == ("no-access", "k3s-1")
    assert node_storage.findings([c]) == []  # reported as not checked, not as a finding


def test_no_nodes_configured_and_non_host_path_volumes(tmp_path):
    inv = inv_with_nodes(tmp_path, None)
    kube = FakeKube(pv("loki-pv", "/mnt/k8s-storage/loki"), pv("tempo-pv", None))
    assert node_storage.check_component(kube, inv, inv.component("loki"))[0].status == \
        "no-access"
    assert node_storage.check_component(kube, inv, inv.component("tempo"))[0].status == \
        "not-host-path"
