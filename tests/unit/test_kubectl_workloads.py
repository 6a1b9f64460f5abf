from handover.gate.hazards import kubectl_workloads as kw
from handover.core.inventory import Component
from tests.unit.kube_fake import FakeKube

APP = Component("app", "manifests", "low", "workloads/app", ("apps",))


def dep(annotations=None, replicas=2):
    spec = {"template": {"metadata": {"annotations": annotations or {}}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "app", "namespace": "apps"}, "spec": spec}


def test_restarted_at_live_not_in_git():
    live = dep({kw.RESTARTED_AT: "2026-01-01T00:00:00Z"})
    [f] = kw.check_restarted_at(FakeKube(live), APP, [dep()])
    assert f.subject == "Deployment apps/app"
    assert "live '2026-01-01T00:00:00Z', Git (absent)" in f.problem
    assert '2026-01-01T00:00:00Z"' in f.fix
    assert kw.check_restarted_at(FakeKube(live), APP, [live]) == []
    assert kw.check_restarted_at(FakeKube(dep()), APP, [dep()]) == []


def test_replicas_omitted_beside_hpa():
    hpa = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "app", "namespace": "apps"},
           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "app"}}}
    live = dep(replicas=4)
    [f] = kw.check_replicas_beside_hpa(FakeKube(live, hpa), APP, [dep(replicas=None)])
    assert "spec.replicas: Git (absent), live 4" in f.problem
    assert "HorizontalPodAutoscaler apps/app (live)" in f.problem
    assert "spec.replicas: 4" in f.fix
    assert kw.check_replicas_beside_hpa(FakeKube(live, hpa), APP, [dep(replicas=4)]) == []
    assert kw.check_replicas_beside_hpa(FakeKube(live), APP, [dep(replicas=None)]) == []
