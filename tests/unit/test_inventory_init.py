"""`handover inventory init` offline: a GitOps repo in a temp dir and a fake cluster. The helm
component is matched by helm-controller's effective release name and storage namespace; a
HelmRelease whose effective name misses the live release is written with a comment naming the
second-release trap, never matched silently; kubectl-applied workloads, PVs, selectors, health
from Service + readiness probe; order storage -> stateless helm -> workloads -> stateful."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from handover.core import inventory
from handover.core import inventory_init
from handover.core.inventory_init import LiveCluster
from tests.unit.kube_fake import FakeKube, release_secret

LAST = inventory_init.LAST_APPLIED


def _write(root: Path, rel: str, *docs: dict) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def _hr(name: str, ns: str, chart: str, **spec) -> dict:
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"interval": "30m", "chart": {"spec": {"chart": chart, "version": "1.0.0",
                     "sourceRef": {"kind": "HelmRepository", "name": "repo",
                                   "namespace": "flux-system"}}}, **spec}}


def _sts(name: str, ns: str, labels: dict, probe_port="http", claim: str | None = None,
         applied: bool = False) -> dict:
    meta = {"name": name, "namespace": ns}
    if applied:
        meta["annotations"] = {LAST: "{}"}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta, "spec": {
        "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
        "spec": {"containers": [{"name": "c", "image": "x", "ports": [
            {"name": "http", "containerPort": 3100}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": probe_port}}}]}}}}


def _deploy(name: str, ns: str, labels: dict, applied: bool = True) -> dict:
    d = _sts(name, ns, labels, applied=applied)
    d["kind"] = "Deployment"
    return d


def _repo(root: Path, loki_hr: dict) -> None:
    _write(root, "clusters/home/infra.yaml", {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "infra", "namespace": "flux-system"},
        "spec": {"path": "./infra", "prune": True,
                 "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}})
    _write(root, "clusters/home/flux-system/gotk-sync.yaml", {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "flux-system", "namespace": "flux-system"}, "spec": {}})
    _write(root, "infra/sources/repo.yaml", {
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "repo", "namespace": "flux-system"},
        "spec": {"url": "https://charts.example.org"}})
    _write(root, "infra/storage/pv.yaml", {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "loki-pv"},
        "spec": {"persistentVolumeReclaimPolicy": "Retain"}})
    _write(root, "infra/controller/hr.yaml", _hr("ctl", "ctl-system", "ctl", releaseName="c1"))
    _write(root, "infra/loki/hr.yaml", loki_hr)
    _write(root, "apps/web/deploy.yaml", _deploy("web", "apps", {"app": "web"}))
    (root / "infra/kustomization.yaml").write_text("resources: []\n")


def _cluster(loki_storage_ns: str = "logging") -> FakeKube:
    loki_labels = {"app.kubernetes.io/name": "loki"}
    ctl_manifest = yaml.safe_dump(_deploy("ctl", "ctl-system", {"app": "ctl"}, applied=False))
    loki_manifest = yaml.safe_dump(_sts("loki", "logging", loki_labels))
    return FakeKube(
        release_secret("c1", "ctl-system", chart="ctl", manifest=ctl_manifest),
        release_secret("loki", "logging", chart="loki", manifest=loki_manifest,
                       storage_namespace=loki_storage_ns),
        release_secret("orphan", "misc", chart="orphan"),
        _deploy("ctl", "ctl-system", {"app": "ctl"}, applied=False),
        _sts("loki", "logging", loki_labels),
        _deploy("web", "apps", {"app": "web"}, applied=True),
        {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "loki-0", "namespace": "logging", "labels": loki_labels},
         "spec": {"volumes": [{"name": "s", "persistentVolumeClaim": {"claimName": "s-loki-0"}}]}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {
            "name": "s-loki-0", "namespace": "logging"}, "spec": {"volumeName": "loki-pv"}},
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "loki-pv"},
         "spec": {"persistentVolumeReclaimPolicy": "Retain"}},
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "stray-pv"},
         "spec": {"persistentVolumeReclaimPolicy": "Delete"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "loki-headless",
         "namespace": "logging"}, "spec": {"clusterIP": "None", "selector": loki_labels,
                                           "ports": [{"port": 3100, "targetPort": "http"}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "loki", "namespace": "logging"},
         "spec": {"selector": loki_labels, "ports": [
             {"name": "grpc", "port": 9095, "targetPort": 9095},
             {"name": "http", "port": 3100, "targetPort": "http"}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "apps"},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 3100}]}},
    )


def _init(tmp_path: Path, kube: FakeKube, loki_hr: dict):
    repo = tmp_path / "gitops"
    _repo(repo, loki_hr)
    live = LiveCluster(None, "home", kube=kube)
    data, comps, top = inventory_init.build(repo, live)
    out = tmp_path / "migration.yaml"
    text = inventory_init.render(data, comps, top, "test", out)
    out.write_text(text)
    return out, text, comps


def test_draft_components_order_and_validity(tmp_path):
    out, text, comps = _init(tmp_path, _cluster(), _hr("loki", "logging", "loki"))
    inv = inventory.load(out)  # `handover inventory check` passes on it
    assert [c.name for c in inv.components] == ["storage", "ctl", "web", "loki"]
    by = {c.name: c for c in inv.components}
    assert by["storage"].pvs == ("loki-pv",) and by["storage"].path == "infra/storage"
    ctl = by["ctl"]
    assert (ctl.type, ctl.release.name, ctl.release.namespace) == ("helm", "c1", "ctl-system")
    assert (ctl.helm_release.name, ctl.helm_release.namespace) == ("ctl", "ctl-system")
    assert ctl.risk == "low" and ctl.path == "infra/controller"
    loki = by["loki"]
    assert loki.risk == "high" and loki.pvs == ("loki-pv",)
    assert [(w.kind, w.name, w.selector) for w in loki.workloads] == [
        ("StatefulSet", "loki", "app.kubernetes.io/name=loki")]
    # the non-headless Service, on the port that targets the readiness probe's port
    assert [(h.service, h.port, h.path) for h in loki.health] == [("loki", 3100, "/ready")]
    web = by["web"]
    assert (web.type, web.path, web.namespaces) == ("manifests", "apps/web", ("apps",))
    assert inv.gitops.entrypoints[0].name == "infra"
    assert inv.gitops.cluster_path == "clusters/home"
    assert inv.gitops.sources_path == "infra/sources"
    assert inv.cluster.context == "home"
    # the guesses and what is left out are comments in the file
    assert "# GUESS: risk high" in text
    assert "live Helm release misc/orphan" in text and "stray-pv" in text
    assert "# TRAP" not in text


def test_release_name_mismatch_is_a_trap_comment_not_a_silent_match(tmp_path):
    hr = _hr("loki", "flux-system", "loki", targetNamespace="logging")
    out, text, comps = _init(tmp_path, _cluster(), hr)
    loki = {c.name: c for c in comps}["loki"]
    assert loki.release == {"name": "loki", "namespace": "logging"}  # the live release
    trap = [c for c in loki.comments if c.startswith("TRAP")]
    assert len(trap) == 1
    assert "'logging-loki' in storage namespace 'flux-system'" in trap[0]
    assert "SECOND release" in trap[0]
    assert "# TRAP (second release): HelmRelease flux-system/loki" in text
    inventory.load(out)


def test_from_capture_of_something_that_is_no_bundle_is_refused_clearly(tmp_path):
    from handover.core.errors import HandoverError
    (tmp_path / "bundle").mkdir()
    # with the capture reader: "not a capture bundle: no index.yaml"; without: names the option
    with pytest.raises(HandoverError, match=r"(not a capture bundle|--from-capture .*bundle)"):
        inventory_init.init(tmp_path, tmp_path / "m.yaml", from_capture=tmp_path / "bundle")
    with pytest.raises(inventory_init.InitError, match="not both"):
        inventory_init.init(tmp_path, tmp_path / "m.yaml", kube_context="x",
                            from_capture=tmp_path / "bundle")
    assert not (tmp_path / "m.yaml").exists()


def test_a_repo_without_flux_kustomizations_is_refused(tmp_path):
    (tmp_path / "r").mkdir()
    live = LiveCluster(None, "home", kube=_cluster())
    with pytest.raises(inventory_init.InitError, match="no Flux Kustomization"):
        inventory_init.build(tmp_path / "r", live)
