"""handover.snapshot.pods: the one PodState, read once from a live pod, loaded from both snapshot
formats written before (component snapshots: ``restarts``; cluster snapshots: ``containers``)."""
from __future__ import annotations

from handover.snapshot import cluster, component, pods

POD = {"metadata": {"namespace": "logging", "name": "loki-0", "uid": "u1",
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                    "ownerReferences": [{"kind": "StatefulSet", "name": "loki"}]},
       "status": {"phase": "Running",
                  "conditions": [{"type": "Ready", "status": "True"}],
                  "containerStatuses": [{"name": "loki", "restartCount": 2, "containerID": "c1"},
                                        {"name": "sidecar", "restartCount": 0}]}}


def test_from_pod_reads_what_both_snapshots_need():
    p = pods.from_pod(POD, "StatefulSet logging/loki")
    assert (p.key, p.uid, p.phase, p.ready, p.created) == (
        "logging/loki-0", "u1", "Running", True, "2026-01-01T00:00:00Z")
    assert p.owner == "StatefulSet loki" and p.workload == "StatefulSet logging/loki"
    assert p.restarts == {"loki": 2, "sidecar": 0} and p.total_restarts == 2
    assert p.container_ids == {"loki": "c1", "sidecar": ""}
    unready = pods.from_pod({**POD, "status": {"phase": "Pending"}})
    assert not unready.ready and unready.restarts == {} and unready.workload == ""


def test_one_class_serves_both_snapshots():
    assert component.PodState is pods.PodState is cluster.PodState


def test_old_cluster_snapshot_format_loads_and_compares():
    """A cluster snapshot written before (pods with ``containers``) still loads, and a restart
    against it is found."""
    old = {"context": "c", "taken_at": 0.0, "namespaces": ["logging"], "objects": [],
           "pods": [{"namespace": "logging", "name": "loki-0", "uid": "u1",
                     "owner": "StatefulSet loki", "phase": "Running",
                     "containers": [{"name": "loki", "restart_count": 1,
                                     "container_id": "c0"}]}]}
    before = cluster.ClusterSnapshot.from_dict(old)
    assert before.pods[0].restarts == {"loki": 1} and before.pods[0].container_ids == {
        "loki": "c0"}
    after = cluster.ClusterSnapshot("c", 1.0, ("logging",), pods=[pods.from_pod(POD)])
    (change,) = cluster.compare(before, after, resource_versions=False)
    assert (change.subject, change.change) == ("Pod logging/loki-0", "restarted")
    assert "restartCount 1 -> 2" in change.detail
    again = cluster.ClusterSnapshot.from_dict(after.to_dict())
    assert again.pods == after.pods


def test_container_id_change_is_a_restart_even_at_the_same_count():
    before = pods.from_pod(POD)
    moved = dict(POD, status={**POD["status"], "containerStatuses": [
        {"name": "loki", "restartCount": 2, "containerID": "c2"}]})
    b = cluster.ClusterSnapshot("c", 0.0, ("logging",), pods=[before])
    a = cluster.ClusterSnapshot("c", 1.0, ("logging",), pods=[pods.from_pod(moved)])
    assert [(c.subject, c.change) for c in cluster.compare(b, a)] == [
        ("Pod logging/loki-0", "restarted")]
