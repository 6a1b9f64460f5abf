from pathlib import Path
from types import SimpleNamespace

from handover.gate.hazards import immutable
from handover.core.inventory import Component, Workload


def sts(**spec):
    base = {"selector": {"matchLabels": {"app": "loki"}}, "serviceName": "loki-headless",
            "podManagementPolicy": "Parallel",
            "volumeClaimTemplates": [{"metadata": {"name": "storage"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}]}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "loki", "namespace": "logging"}, "spec": {**base, **spec}}


def test_equal_statefulset_with_live_defaults_has_no_changes():
    live = sts()
    live["spec"]["volumeClaimTemplates"][0].update(
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}})
    live["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"] = "Filesystem"
    assert immutable.immutable_changes(sts(), live) == []


def test_each_immutable_statefulset_field_is_named():
    desired = sts(serviceName="loki", podManagementPolicy=None,
                  selector={"matchLabels": {"app": "loki", "env": "home"}},
                  volumeClaimTemplates=[{"metadata": {"name": "storage"}, "spec": {
                      "resources": {"requests": {"storage": "20Gi"}}}}])
    paths = [d.path for d in immutable.immutable_changes(desired, sts())]
    assert paths == ["spec.selector", "spec.serviceName", "spec.podManagementPolicy",
                     "spec.volumeClaimTemplates[name=storage].spec.resources.requests.storage"]


def test_vct_added_or_removed():
    desired = sts(volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {}}])
    paths = [d.path for d in immutable.immutable_changes(desired, sts())]
    assert paths == ["spec.volumeClaimTemplates[name=data]", "spec.volumeClaimTemplates[name=storage]"]


def test_deployment_only_selector():
    d = {"kind": "Deployment", "spec": {"selector": {"matchLabels": {"app": "a"}}, "replicas": 3}}
    live = {"kind": "Deployment", "spec": {"selector": {"matchLabels": {"app": "a"}}, "replicas": 1}}
    assert immutable.immutable_changes(d, live) == []
    d["spec"]["selector"]["matchLabels"]["team"] = "x"
    [c] = immutable.immutable_changes(d, live)
    assert c.describe() == 'spec.selector: live {"matchLabels": {"app": "a"}}, Git {"matchLabels": {"app": "a", "team": "x"}}'


def _repo(tmp_path: Path, parent_labels=None, own=None) -> Path:
    (tmp_path / "workloads" / "app").mkdir(parents=True)
    (tmp_path / "workloads" / "kustomization.yaml").write_text(
        "resources: [app]\n" + (f"commonLabels: {parent_labels}\n" if parent_labels else ""))
    (tmp_path / "workloads" / "app" / "kustomization.yaml").write_text(
        "resources: []\n" + (f"labels:\n- pairs: {own}\n  includeSelectors: true\n" if own else ""))
    return tmp_path


def test_common_label_sources_in_tree_and_ancestors(tmp_path):
    repo = _repo(tmp_path, parent_labels="{env: home}", own="{team: a}")
    assert immutable.common_label_sources(repo, "workloads/app") == {
        "workloads/app/kustomization.yaml": {"team": "a"},
        "workloads/kustomization.yaml": {"env": "home"}}


def test_check_common_labels_against_live_selector(tmp_path):
    from tests.unit.kube_fake import FakeKube
    repo = _repo(tmp_path, parent_labels="{env: home}")
    comp = Component("app", "manifests", "low", "workloads/app", ("apps",),
                     workloads=(Workload("Deployment", "app", "apps", "app=app"),))
    inv = SimpleNamespace(gitops=SimpleNamespace(path=repo))
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "app", "namespace": "apps"},
           "spec": {"selector": {"matchLabels": {"app": "app"}}}}
    [f] = immutable.check_common_labels(FakeKube(dep), inv, comp, [dep])
    assert f.subject == "Deployment apps/app"
    assert "workloads/kustomization.yaml injects commonLabels {'env': 'home'}" in f.problem
    dep["spec"]["selector"]["matchLabels"]["env"] = "home"  # already live: nothing changes
    assert immutable.check_common_labels(FakeKube(dep), inv, comp, [dep]) == []


def test_check_immutable_for_manifests(tmp_path):
    from tests.unit.kube_fake import FakeKube
    comp = Component("loki", "manifests", "low", "x", ("logging",))
    inv = SimpleNamespace(gitops=SimpleNamespace(path=tmp_path))
    [f] = immutable.check_immutable(FakeKube(sts()), inv, comp, [sts(serviceName="loki")])
    assert f.subject == "StatefulSet logging/loki"
    assert 'spec.serviceName: live "loki-headless", Git "loki"' in f.problem
    assert immutable.check_immutable(FakeKube(sts()), inv, comp, [sts()]) == []
