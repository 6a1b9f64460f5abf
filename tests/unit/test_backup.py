"""handover.chain.backup: 0600 files, values/manifest from the release Secret, no secret in the record,
tamper and permission detection, cleaned re-appliable objects."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace as NS

import yaml

from handover.chain import backup
from handover.sources.helm_storage import HelmReleaseRecord
from handover.core.inventory import Component, ObjectRef, Workload

SECRET_VALUE = "s3cr3t-admin-password"


class FakeKube:
    def __init__(self, objects):
        self.objects = objects

    def resource(self, api_version, kind):
        return NS(namespaced=kind not in ("PersistentVolume", "Namespace"))

    def get(self, api_version, kind, name, namespace=None):
        return self.objects.get((kind, namespace or "", name))


def inventory(tmp_path):
    return NS(backups=tmp_path / "backups", gitops=NS(path=tmp_path / "repo"))


def test_helm_backup_is_private_and_complete(tmp_path, monkeypatch):
    manifest = ("apiVersion: v1\nkind: Secret\nmetadata: {name: grafana}\n"
                f"stringData: {{password: {SECRET_VALUE}}}\n---\n"
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: grafana}\n")
    rec = HelmReleaseRecord("grafana", "logging", "logging", 3, "deployed", "grafana", "8.0.0",
                            "11", {"adminPassword": SECRET_VALUE}, manifest)
    monkeypatch.setattr(backup.helm_storage, "latest", lambda kube, n, ns: rec)
    live_secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "grafana", "namespace": "logging", "uid": "u", "resourceVersion": "9",
        "managedFields": [{"manager": "helm"}]}, "data": {"password": "eA=="}}
    live_dep = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "grafana", "namespace": "logging", "uid": "d"},
                "spec": {"replicas": 1}, "status": {"readyReplicas": 1}}
    kube = FakeKube({("Secret", "logging", "grafana"): live_secret,
                     ("Deployment", "logging", "grafana"): live_dep})
    comp = Component("grafana", "helm", "medium", "infra/grafana", ("logging",),
                     release=ObjectRef("grafana", "logging"),
                     helm_release=ObjectRef("grafana", "logging"),
                     workloads=(Workload("Deployment", "grafana", "logging", "app=g"),))
    r = backup.take(kube, inventory(tmp_path), comp, "run1")
    d = Path(r.directory)
    assert d == tmp_path / "backups" / "grafana" / "run1"
    assert oct(d.stat().st_mode & 0o777) == "0o700"
    for rel in r.files:
        assert (d / rel).stat().st_mode & 0o777 == 0o600, rel
    assert yaml.safe_load((d / "values.yaml").read_text()) == {"adminPassword": SECRET_VALUE}
    assert (d / "manifest.yaml").read_text() == manifest
    assert r.revision == 3 and sorted(r.objects) == ["Deployment logging/grafana",
                                                     "Secret logging/grafana"]
    # the record (journal / report material) names files, never content
    assert SECRET_VALUE not in json.dumps(r.to_dict())
    assert SECRET_VALUE not in (d / "index.json").read_text()
    cleaned = yaml.safe_load((d / "live/Deployment_logging_grafana.yaml").read_text())
    assert "status" not in cleaned and "uid" not in cleaned["metadata"]
    assert backup.verify(r) == []
    assert backup.load_record(d) == r
    assert backup.release_values(r) == {"adminPassword": SECRET_VALUE}
    os.chmod(d / "values.yaml", 0o644)
    (d / "manifest.yaml").write_text("changed")
    problems = backup.verify(r)
    assert any("mode 0o644" in p for p in problems)
    assert any("content changed" in p for p in problems)


def test_missing_release_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(backup.helm_storage, "latest", lambda kube, n, ns: None)
    comp = Component("loki", "helm", "high", "x", ("logging",), release=ObjectRef("loki", "logging"))
    try:
        backup.take(FakeKube({}), inventory(tmp_path), comp, "r")
    except backup.BackupError as e:
        assert "no Helm release logging/loki in storage" in str(e)
    else:
        raise AssertionError("no error")
