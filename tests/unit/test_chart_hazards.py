"""The test chart tests/charts/webapp (lookup-kept password checksummed into the pod template, a
pre-upgrade hook Job, crds/, a subchart, a library chart, a .Capabilities branch, a ConfigMap
checksum, port 53 for TCP and UDP) through the render, hooks and CRD checks, offline: with no
cluster (helm template) every render makes a new password, which the render-twice comparison
names as non-deterministic."""
from __future__ import annotations

import copy
import functools
import http.server
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest
import yaml

from handover.gate.hazards import hooks_crds as chart_hazards
from handover.core import redact
from handover.flux import render
from handover.core.inventory import Component, ObjectRef
from tests.unit.kube_fake import FakeKube, release_secret

CHARTS = Path(__file__).resolve().parents[1] / "charts"
WEBAPP = Component(name="webapp", type="helm", risk="high", path="webapp", namespaces=("web",),
                   release=ObjectRef("webapp", "web"), helm_release=ObjectRef("webapp", "web"))


@pytest.fixture(scope="module")
def repo_url(tmp_path_factory):
    from handover.rehearsal import chart_repo
    d = tmp_path_factory.mktemp("webapp")
    shutil.copytree(CHARTS / "webapp", d / "src" / "webapp")
    env = {**os.environ, "HELM_CACHE_HOME": str(d / "h"), "HELM_CONFIG_HOME": str(d / "h"),
           "HELM_DATA_HOME": str(d / "h")}
    chart_repo.package(d / "src", d / "repo", env=env)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(d / "repo"))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def objects(url, upgrade=None):
    hr = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
          "metadata": {"name": "webapp", "namespace": "web"},
          "spec": {"chart": {"spec": {"chart": "webapp", "version": "1.2.0", "sourceRef": {
              "kind": "HelmRepository", "name": "charts", "namespace": "flux-system"}}}}}
    if upgrade is not None:
        hr["spec"]["upgrade"] = upgrade
    repo = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": {"name": "charts", "namespace": "flux-system"}, "spec": {"url": url}}
    return [hr, repo]


def inv(tmp_path):
    return type("Inv", (), {"gitops": type("G", (), {"sources_path": None, "path": tmp_path}),
                            "backups": tmp_path / "backups"})


def test_offline_render_names_the_random_password_and_its_checksum(repo_url, tmp_path):
    objs = objects(repo_url)
    r = render.rendering(FakeKube(), inv(tmp_path), WEBAPP, objs)
    assert r.mode == render.CLIENT
    got = {(u.subject, u.path, u.in_pod_template) for u in r.unstable}
    assert got == {("Secret web/webapp-admin", "data.password", False),
                   ("Deployment web/webapp",
                    'spec.template.metadata.annotations["checksum/secret"]', True)}
    # the deployed release = one render; live = the same objects: every difference at adoption
    # is the random password's checksum, named as such, and the TCP+UDP ports are no change
    live = copy.deepcopy(render.kustomize.find(r.objects, "Deployment", "webapp"))
    live["metadata"]["namespace"] = "web"
    live["spec"]["template"]["metadata"]["annotations"]["checksum/secret"] = "deployed-sum"
    sts = copy.deepcopy(render.kustomize.find(r.objects, "StatefulSet", "webapp-cache"))
    sts["metadata"]["namespace"] = "web"
    kube = FakeKube(live, sts, release_secret("webapp", "web", chart="webapp", version="1.2.0"))
    found = render.check_rollout(kube, inv(tmp_path), WEBAPP, objs)
    errs = [f for f in found if f.severity == "error"]
    assert [f.subject for f in errs] == ["Deployment web/webapp"]
    assert "ports" not in errs[0].problem
    assert "checksum/secret" in errs[0].problem and "non-deterministic" in errs[0].problem
    assert "postRenderers" in errs[0].fix and "checksum~1secret" in errs[0].fix
    # the live checksum is never printed (the redaction rule: its hash); the exact patch, with
    # it, is in a 0600 file in a 0700 folder whose path the fix names
    assert "deployed-sum" not in errs[0].fix and "deployed-sum" not in errs[0].problem
    assert redact.hashed("deployed-sum") in errs[0].fix
    path = render.offer_path(inv(tmp_path), objs[0])
    assert str(path) in errs[0].fix
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    [patch] = render.read_offer(path)["spec"]["postRenderers"][0]["kustomize"]["patches"]
    assert yaml.safe_load(patch["patch"])[0]["value"] == "deployed-sum"
    warn = [f for f in found if f.severity == "warning"]
    assert [(f.subject, "data.password" in f.problem) for f in warn] == [
        ("Secret web/webapp-admin", True)]


def test_hooks_of_the_upgrade_are_listed_unless_disabled(repo_url, tmp_path):
    kube = FakeKube(release_secret("webapp", "web", chart="webapp", version="1.2.0"))
    [f] = chart_hazards.check_hooks(kube, inv(tmp_path), WEBAPP, objects(repo_url))
    assert f.subject == "HelmRelease web/webapp" and f.severity == "error"
    assert "RUNS 1 chart hook(s)" in f.problem
    assert ("Job webapp-migrate (pre-install, pre-upgrade; weight -1; delete policy "
            "before-hook-creation, hook-succeeded)") in f.problem
    assert "spec.upgrade.disableHooks: true" in f.fix
    assert chart_hazards.check_hooks(kube, inv(tmp_path), WEBAPP,
                                     objects(repo_url, {"disableHooks": True})) == []


def test_chart_crds_against_live(repo_url, tmp_path):
    objs = objects(repo_url)
    src = render.chart_source(objs[0], objs)
    [crd] = chart_hazards.show_crds(src)
    assert crd["metadata"]["name"] == "widgets.webapp.example.test"
    [missing] = chart_hazards.check_crds(FakeKube(), inv(tmp_path), WEBAPP, objs)
    assert "not in the cluster" in missing.problem and "only at install" in missing.problem
    live = copy.deepcopy(crd)
    live["spec"]["conversion"] = {"strategy": "None"}  # a server default: no difference
    assert chart_hazards.check_crds(FakeKube(live), inv(tmp_path), WEBAPP, objs) == []
    old = copy.deepcopy(live)
    del old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"]["size"]
    [f] = chart_hazards.check_crds(FakeKube(old), inv(tmp_path), WEBAPP, objs)
    assert f.subject == "CustomResourceDefinition widgets.webapp.example.test"
    assert "properties.size" in f.problem and "never upgrades CRDs" in f.problem


# --- the example's own charts ---------------------------------------------------------------------

EXAMPLE = CHARTS.parents[1] / "examples" / "homelab"
ENVOY = Component(name="envoy-gateway", type="helm", risk="low",
                  path="infrastructure/controllers/envoy-gateway",
                  namespaces=("envoy-gateway-system",), release=ObjectRef("eg", "envoy-gateway-system"),
                  helm_release=ObjectRef("envoy-gateway", "envoy-gateway-system"))


@pytest.fixture(scope="module")
def example_repo_url(tmp_path_factory):
    from handover.rehearsal import chart_repo
    d = tmp_path_factory.mktemp("example-charts")
    shutil.copytree(EXAMPLE / "charts" / "gateway-helm", d / "src" / "gateway-helm")
    env = {**os.environ, "HELM_CACHE_HOME": str(d / "h"), "HELM_CONFIG_HOME": str(d / "h"),
           "HELM_DATA_HOME": str(d / "h")}
    chart_repo.package(d / "src", d / "repo", env=env)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(d / "repo"))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_example_envoy_gateway_certgen_hook_is_listed_unless_disabled(example_repo_url,
                                                                       tmp_path):
    """examples/homelab/charts/gateway-helm runs its certgen Job as a pre-install/pre-upgrade
    hook, as upstream's does: with the example's HelmRelease minus spec.upgrade.disableHooks the
    hooks check fails naming the Job, its ServiceAccount (weight -1) and the default delete
    policy; the example's HelmRelease as committed (disableHooks: true) passes."""
    from handover.sources import kustomize
    objs = kustomize.build(EXAMPLE / "gitops" / ENVOY.path)
    hr = kustomize.find(objs, "HelmRelease", "envoy-gateway", "envoy-gateway-system")
    assert hr["spec"]["upgrade"]["disableHooks"] is True
    repo = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": {"name": "envoy-gateway", "namespace": "flux-system"},
            "spec": {"url": example_repo_url}}
    kube = FakeKube(release_secret("eg", "envoy-gateway-system", chart="gateway-helm",
                                   version="v1.4.6"))
    assert chart_hazards.check_hooks(kube, inv(tmp_path), ENVOY, objs + [repo]) == []
    with_hooks = copy.deepcopy(hr)
    del with_hooks["spec"]["upgrade"]
    others = [o for o in objs if o is not hr]
    [f] = chart_hazards.check_hooks(kube, inv(tmp_path), ENVOY, others + [with_hooks, repo])
    assert f.severity == "error" and f.subject == "HelmRelease envoy-gateway-system/envoy-gateway"
    assert "RUNS 2 chart hook(s)" in f.problem
    assert ("Job eg-gateway-helm-certgen (pre-install, pre-upgrade; weight 0; delete policy "
            "before-hook-creation (default))") in f.problem
    assert "ServiceAccount eg-gateway-helm-certgen (pre-install, pre-upgrade; weight -1" in \
        f.problem
    assert "spec.upgrade.disableHooks: true" in f.fix
