from pathlib import Path
from types import SimpleNamespace

from handover.gate.hazards import dangerous_settings as ds
from handover.core.inventory import Component, EntryPoint, ObjectRef

GRAFANA = Component("grafana", "helm", "low", "g", ("logging",), ObjectRef("grafana", "logging"),
                    ObjectRef("grafana", "logging"))


def hr(**spec):
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "grafana", "namespace": "logging"}, "spec": spec}


def test_helm_settings():
    assert ds.check_helm_release_settings(GRAFANA, [hr(install={"remediation": {"retries": 0}})]) == []
    [f] = ds.check_helm_release_settings(GRAFANA, [hr(install={"remediation": {"retries": 3}})])
    assert "spec.install.remediation.retries: Git 3" in f.problem and "UNINSTALLS" in f.problem
    [f] = ds.check_helm_release_settings(GRAFANA, [hr(upgrade={"preserveValues": True})])
    assert "spec.upgrade.preserveValues: Git true" in f.problem


ENTRY = """apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: flux-system}
spec: {path: ./apps, prune: PRUNE, sourceRef: {kind: GitRepository, name: flux-system}}
"""
PVC = """apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: apps
  ANNOT
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""


def repo(tmp_path: Path, prune="true", annotated=False) -> SimpleNamespace:
    (tmp_path / "clusters").mkdir()
    (tmp_path / "clusters" / "apps.yaml").write_text(ENTRY.replace("PRUNE", prune))
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "kustomization.yaml").write_text("resources: [pvc.yaml]\n")
    ann = "annotations: {kustomize.toolkit.fluxcd.io/prune: disabled}" if annotated else ""
    (tmp_path / "apps" / "pvc.yaml").write_text(PVC.replace("ANNOT", ann))
    return SimpleNamespace(gitops=SimpleNamespace(
        path=tmp_path, entrypoints=(EntryPoint("clusters/apps.yaml", "apps"),)))


def test_prune_true_entry_owning_unguarded_pvc(tmp_path):
    inv = repo(tmp_path)
    [f] = ds.check_entry_prune(inv, inv.gitops.entrypoints[0])
    assert f.subject == "Kustomization flux-system/apps"
    assert "PersistentVolumeClaim apps/data" in f.problem and "spec.prune: true" in f.problem
    assert "kustomize.toolkit.fluxcd.io/prune: disabled" in f.fix
    comp = Component("apps", "manifests", "low", "apps", ("apps",))
    pvc = {"kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "apps"}}
    assert len(ds.check_component_prune(inv, comp, [pvc])) == 1


def test_guarded_or_no_prune_passes(tmp_path):
    inv = repo(tmp_path / "a", annotated=True) if (tmp_path / "a").mkdir() is None else None
    assert ds.check_entry_prune(inv, inv.gitops.entrypoints[0]) == []
    (tmp_path / "b").mkdir()
    inv = repo(tmp_path / "b", prune="false")
    assert ds.check_entry_prune(inv, inv.gitops.entrypoints[0]) == []


def test_missing_entry(tmp_path):
    inv = repo(tmp_path)
    [f] = ds.check_entry_prune(inv, EntryPoint("clusters/apps.yaml", "nope"))
    assert "no Kustomization named 'nope'" in f.problem
