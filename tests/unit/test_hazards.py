from types import SimpleNamespace

from handover.gate.hazards import registry as hazards
from handover.core.inventory import Component, ObjectRef, Workload
from tests.unit.kube_fake import FakeKube


def test_checks_per_component_type():
    helm = Component("loki", "helm", "high", "l", ("logging",), ObjectRef("loki", "logging"),
                     ObjectRef("loki", "logging"))
    man = Component("app", "manifests", "low", "a", ("apps",),
                    workloads=(Workload("Deployment", "a", "apps", "a=b"),))
    assert "adoption-target" in hazards.checks_for(helm)
    assert "kubectl-restarted-at" not in hazards.checks_for(helm)
    assert "kubectl-restarted-at" in hazards.checks_for(man)
    assert "adoption-target" not in hazards.checks_for(man)


def test_hazards_for_component_collects_findings_and_reports_crashes(tmp_path):
    man = Component("app", "manifests", "low", "a", ("apps",))
    inv = SimpleNamespace(gitops=SimpleNamespace(path=tmp_path, entrypoints=()))
    live = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "namespace": "apps"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "replicas": 1, "template": {
                "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "t"}}}}}
    git = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "a", "namespace": "apps"},
           "spec": {"selector": {"matchLabels": {"a": "c"}}, "replicas": 1, "template": {}}}
    found = hazards.hazards_for_component(FakeKube(live), inv, man, [git])
    assert sorted(f.check for f in found) == ["immutable-fields", "kubectl-restarted-at"]

    class Broken(FakeKube):
        def list(self, *a, **k):
            raise RuntimeError("boom")
    found = hazards.hazards_for_component(Broken(live), inv, man, [git])
    assert any(f.check == "kubectl-replicas-hpa" and "could not run" in f.problem
               and f.severity == "error" for f in found)


def test_crash_becomes_error_finding(tmp_path, monkeypatch):
    man = Component("app", "manifests", "low", "a", ("apps",))
    inv = SimpleNamespace(gitops=SimpleNamespace(path=tmp_path, entrypoints=()))

    def boom(*a):
        raise RuntimeError("boom")
    monkeypatch.setitem(hazards.CHECKS, "kubectl-restarted-at", (("manifests",), boom))
    found = hazards.hazards_for_component(FakeKube(), inv, man, [])
    [f] = [f for f in found if f.check == "kubectl-restarted-at"]
    assert "could not run: RuntimeError: boom" in f.problem and f.severity == "error"
