"""handover.snapshot.component: comparison semantics, JSON round trip, and one list call per namespace +
selector (never one call per pod)."""
from __future__ import annotations

import json
from types import SimpleNamespace as NS

from handover.snapshot import component as snap
from handover.core.inventory import Component, ObjectRef, Workload


def pod(name, uid, restarts=0, ready=True, ns="logging"):
    return snap.PodState(ns, name, uid, "StatefulSet logging/loki", "2026-01-01T00:00:00+00:00",
                         "Running", ready, {"loki": restarts})


def base():
    return snap.Snapshot("loki", 0.0, pods=[pod("loki-0", "u1")],
                         claims=[snap.ClaimBinding("PersistentVolumeClaim", "storage-loki-0",
                                                   "logging", "c1", "loki-pv", "Bound")],
                         release=snap.ReleaseState("loki", "logging", 1, "deployed", "6.21.0"))


def test_identical_snapshots_have_no_difference():
    assert snap.compare(base(), base(), release_moves=0) == []


def test_recreated_pod_is_named_with_old_and_new_uid():
    after = base()
    after.pods = [pod("loki-0", "u2")]
    (d,) = snap.compare(base(), after)
    assert d.subject == "Pod logging/loki-0" and d.path == "uid"
    assert (d.live, d.git) == ("u1", "u2") and "recreated" in str(d)


def test_restart_is_counted_per_container():
    after = base()
    after.pods = [pod("loki-0", "u1", restarts=2)]
    (d,) = snap.compare(base(), after)
    assert d.path == "restarts.loki" and (d.live, d.git) == (0, 2)
    assert "restarted 2 time(s)" in str(d)


def test_replaced_deployment_pod_shows_as_gone_and_new():
    before = snap.Snapshot("g", 0, pods=[pod("grafana-abc", "u1")])
    after = snap.Snapshot("g", 0, pods=[pod("grafana-def", "u9")])
    diffs = snap.compare(before, after)
    assert {(d.subject, d.path, d.git) for d in diffs} == {
        ("Pod logging/grafana-abc", "present", False), ("Pod logging/grafana-def", "present", True)}


def test_pvc_rebinding_and_deletion():
    after = base()
    after.claims = [snap.ClaimBinding("PersistentVolumeClaim", "storage-loki-0", "logging", "c2",
                                      "pvc-new", "Bound")]
    fields = {d.path for d in snap.compare(base(), after)}
    assert fields == {"uid", "bound_to"}
    after.claims = []
    (d,) = snap.compare(base(), after)
    assert d.path == "present" and "deleted" in str(d)


def test_release_must_move_by_exactly_the_expected_revisions():
    after = base()
    after.release = snap.ReleaseState("loki", "logging", 2, "deployed", "6.21.0")
    assert snap.compare(base(), after, release_moves=1) == []
    after.release.revision = 3
    (d,) = snap.compare(base(), after, release_moves=1)
    assert d.path == "revision" and d.git == 3
    after.release = None
    (d,) = snap.compare(base(), after, release_moves=1)
    assert "uninstalled" in str(d)
    assert snap.compare(base(), after, release_moves=None) == []  # not compared when not asked


def test_unready_pod_is_a_difference():
    after = base()
    after.pods = [pod("loki-0", "u1", ready=False)]
    (d,) = snap.compare(base(), after)
    assert d.path == "ready"


def test_json_round_trip():
    s = base()
    again = snap.Snapshot.from_dict(json.loads(s.to_json()))
    assert again == s and again.total_restarts == 0


class CountingCore:
    def __init__(self, pods_per_selector: int):
        self.n = pods_per_selector
        self.calls: list[tuple] = []

    """Answers list calls the way the API server does with _preload_content=False (raw JSON)."""

    def list_namespaced_pod(self, ns, label_selector=None, _preload_content=True):
        assert _preload_content is False  # parsed once with json.loads, not into typed models
        self.calls.append(("pods", ns, label_selector))
        items = [{"metadata": {"name": f"p{i}", "namespace": ns, "uid": f"uid-{i}",
                               "creationTimestamp": "2026-01-01T00:00:00Z"},
                  "status": {"phase": "Running", "conditions": [{"type": "Ready",
                                                                 "status": "True"}],
                             "containerStatuses": [{"name": "c", "restartCount": i % 3}]}}
                 for i in range(self.n)]
        return NS(data=json.dumps({"items": items}).encode())

    def list_namespaced_persistent_volume_claim(self, ns, _preload_content=True):
        self.calls.append(("pvcs", ns))
        return NS(data=json.dumps({"items": [{"metadata": {"name": "data", "uid": "c1"},
                                              "spec": {"volumeName": "pv-1"},
                                              "status": {"phase": "Bound"}}]}).encode())

    def list_persistent_volume(self, _preload_content=True):
        self.calls.append(("pvs",))
        return NS(data=json.dumps({"items": [{"metadata": {"name": "pv-1", "uid": "v1"},
                                              "spec": {"claimRef": {"namespace": "a",
                                                                    "name": "data"},
                                                       "persistentVolumeReclaimPolicy":
                                                           "Retain"},
                                              "status": {"phase": "Bound"}}]}).encode())


def test_calls_do_not_grow_with_pods():
    comp = Component("app", "manifests", "low", "apps/app", namespaces=("a",),
                     workloads=(Workload("Deployment", "app", "a", "app=x"),
                                Workload("Deployment", "app-2", "a", "app=x"),  # same selector
                                Workload("Deployment", "other", "a", "app=y")),
                     pvs=("pv-1",))
    counts = []
    for n in (1, 10, 1000):
        core = CountingCore(n)
        s = snap.take(NS(core=core), comp)
        counts.append(s.api_calls)
        assert len(s.pods) == n  # same names from both selectors: one entry per pod
        assert s.api_calls == len(core.calls)
        assert s.pods[0].restarts == {"c": 0} and s.pods[0].ready
        assert [(c.key, c.bound_to, c.reclaim_policy) for c in s.claims] == [
            ("PersistentVolume pv-1", "a/data", "Retain"),
            ("PersistentVolumeClaim a/data", "pv-1", "")]
    assert counts == [4, 4, 4]  # 2 pod lists (2 distinct selectors) + 1 PVC list + 1 PV list


def test_release_revision_is_taken_from_storage(monkeypatch):
    comp = Component("loki", "helm", "high", "x", namespaces=("logging",),
                     release=ObjectRef("loki", "logging"))
    rec = NS(name="loki", storage_namespace="logging", revision=4, status="deployed",
             chart_version="6.21.0")
    monkeypatch.setattr(snap.helm_storage, "list_revisions", lambda kube, name, namespace: [rec])
    s = snap.take(NS(core=CountingCore(0)), comp)
    assert s.release == snap.ReleaseState("loki", "logging", 4, "deployed", "6.21.0")
