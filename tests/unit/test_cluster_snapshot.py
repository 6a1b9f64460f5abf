"""Phase 2's "nothing moved" snapshot (handover/snapshot/cluster.py): what counts as a change."""
from __future__ import annotations

import copy
import json
from pathlib import Path

from handover.snapshot import cluster as cluster_snapshot
from handover.core import inventory
from tests.unit.kube_fake import FakeKube

ROOT = Path(__file__).resolve().parents[2]
INV = inventory.load(ROOT / "examples/homelab/migration.yaml")


def ds(rv="100", ready=1, labels=None, image="alloy:1"):
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "alloy", "namespace": "logging", "uid": "u-ds",
                         "resourceVersion": rv, "generation": 1,
                         "labels": labels or {"app.kubernetes.io/name": "alloy"}},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": image}]}}},
            "status": {"numberReady": ready}}


def secret(rv="5", value="czNjcjN0"):
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "grafana", "namespace": "logging", "uid": "u-s",
                         "resourceVersion": rv},
            "data": {"admin-password": value}}


def pod(uid="p1", restarts=0):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "alloy-x", "namespace": "logging", "uid": uid,
                         "resourceVersion": "9",
                         "ownerReferences": [{"kind": "DaemonSet", "name": "alloy"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "restartCount": restarts, "containerID": "c1"}]}}


def snap(*objects):
    return cluster_snapshot.take(FakeKube(*objects), INV)


def changes(before, after):
    return [(c.subject, c.change) for c in cluster_snapshot.compare(before, after)]


def test_nothing_moved():
    assert changes(snap(ds(), secret(), pod()), snap(ds(), secret(), pod())) == []


def test_status_only_update_by_the_controller_is_not_a_change():
    assert changes(snap(ds(rv="100", ready=0)), snap(ds(rv="130", ready=1))) == []


def test_label_spec_and_data_writes_are_changes():
    before = snap(ds(), secret())
    owned = ds(rv="140", labels={"app.kubernetes.io/name": "alloy",
                                 "kustomize.toolkit.fluxcd.io/name": "infrastructure"})
    assert changes(before, snap(owned, secret())) == [("DaemonSet logging/alloy", "changed")]
    new_image = ds(rv="141", image="alloy:2")
    new_image["metadata"]["generation"] = 2
    found = cluster_snapshot.compare(before, snap(new_image, secret()))
    assert [c.change for c in found] == ["changed"] and "generation 1 -> 2" in found[0].detail
    assert changes(before, snap(ds(), secret(rv="6", value="b3RoZXI="))) == [
        ("Secret logging/grafana", "changed")]


def test_recreated_deleted_and_restarted():
    before = snap(ds(), pod())
    gone = changes(before, snap(pod(uid="p2")))
    assert ("DaemonSet logging/alloy", "deleted") in gone
    assert ("Pod logging/alloy-x", "recreated") in gone
    assert changes(before, snap(ds(), pod(restarts=1))) == [("Pod logging/alloy-x", "restarted")]


def test_snapshot_json_carries_no_secret_data_and_round_trips(tmp_path):
    s = snap(secret(value="czNjcjN0"))
    text = s.to_json()
    assert "czNjcjN0" not in text and "s3cr3t" not in text
    loaded = cluster_snapshot.ClusterSnapshot.load(s.save(tmp_path / "s.json"))
    assert changes(s, loaded) == []


def test_old_snapshots_without_digest_compare_by_resource_version():
    before = snap(ds(rv="100"))
    old = json.loads(before.to_json())
    for o in old["objects"]:
        o.pop("content")
    legacy = cluster_snapshot.ClusterSnapshot.from_dict(copy.deepcopy(old))
    assert changes(legacy, snap(ds(rv="130"))) == [("DaemonSet logging/alloy", "changed")]
