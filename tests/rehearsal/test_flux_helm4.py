"""The helm-controller stand-in run with Helm 4 (opt-in: ``handover tools install --helm4``,
``HANDOVER_STANDIN_HELM=helm4``), adopting a release the Helm 3 CLI made.

Flux >= 2.8's helm-controller runs the Helm 4 SDK: upgrade ``serverSideApply`` defaults to
``auto``, i.e. the release's own apply method, which is client-side for a release the Helm 3 CLI
wrote; so the adoption upgrade stays a client-side 3-way patch and recreates no pod."""
from __future__ import annotations

import os
import subprocess

import pytest

from handover.flux import rules as flux
from handover.sources import helm_storage
from handover.core import tools
from handover.core.kube import Kube
from handover.rehearsal.flux import install
from handover.rehearsal.flux.runtime import Api
from handover.rehearsal.flux.testkit import ChartRepo, wait_for
from tests.rehearsal_support import rehearsal_cluster

# scripts/setup installs Helm 4; a machine without it fails here naming what to run, unless the
# user opted out by name (HANDOVER_SKIP_HELM4=1).
pytestmark = pytest.mark.skipif(tools.helm4() is None and os.environ.get("HANDOVER_SKIP_HELM4") == "1",
                                reason="HANDOVER_SKIP_HELM4=1: the Helm 4 stand-in is not tested")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if tools.helm4() is None:
        pytest.fail("Helm 4 is not installed: run `handover tools install --helm4` (scripts/setup "
                    "does), or set HANDOVER_SKIP_HELM4=1 to opt out of this test by name")
    state = tmp_path_factory.mktemp("flux-helm4")
    old = os.environ.get(tools.STANDIN_HELM_ENV)
    os.environ[tools.STANDIN_HELM_ENV] = "helm4"
    try:
        with rehearsal_cluster(state / "cluster") as cluster:
            repo = ChartRepo(state / "charts")
            try:
                repo.add("demo", "1.0.0")
                install(cluster, state / "flux")
                api = Api(str(cluster.kubeconfig), cluster.context)
                api.apply({"apiVersion": flux.SOURCE_API, "kind": "HelmRepository",
                           "metadata": {"name": "charts", "namespace": "flux-system"},
                           "spec": {"interval": "10m", "url": repo.url}}, "test")
                wait_for(lambda: flux.is_ready(api.get(flux.SOURCE_API, "HelmRepository",
                                                       "charts", "flux-system")),
                         what="HelmRepository Ready")
                yield {"cluster": cluster, "api": api, "repo": repo, "state": state,
                       "kube": Kube(cluster.kubeconfig, cluster.context)}
            finally:
                repo.close()
    finally:
        if old is None:
            os.environ.pop(tools.STANDIN_HELM_ENV, None)
        else:
            os.environ[tools.STANDIN_HELM_ENV] = old


def test_helm4_standin_adopts_a_helm3_cli_release_in_place(env):
    """Source: helm-controller internal/reconcile/state.go (unmanaged -> upgrade) with the Helm 4 SDK (internal/action upgrade: serverSideApply auto -> the release's apply method); helm v4 pkg/action upgrade --server-side auto."""
    cluster = env["cluster"]
    ns = "h4-adopt"
    helm3 = str(tools.helm())
    assert subprocess.run([helm3, "version", "--short"], capture_output=True,
                          text=True).stdout.startswith("v3.")
    subprocess.run([helm3, "install", "app", "demo", "--repo", env["repo"].url, "--version",
                    "1.0.0", "-n", ns, "--create-namespace", "--kubeconfig",
                    str(cluster.kubeconfig), "--kube-context", cluster.context,
                    "--set", "greeting=hello"], check=True, capture_output=True)
    pods = lambda: {p["metadata"]["uid"] for p in env["kube"].list(  # noqa: E731
        "v1", "Pod", ns, label_selector="app=app")
        if (p.get("status") or {}).get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")}
    before = wait_for(lambda: pods() or None, what="CLI release pods Running")
    values = {"replicas": 1, "greeting": "hello", "image": "example/app:1.0"}
    env["api"].apply({"apiVersion": flux.HELM_API, "kind": "HelmRelease",
                      "metadata": {"name": "app", "namespace": ns},
                      "spec": {"interval": "10m", "values": values,
                               "chart": {"spec": {"chart": "demo", "version": "1.0.0",
                                                  "sourceRef": {"kind": "HelmRepository",
                                                                "name": "charts",
                                                                "namespace": "flux-system"}}}}},
                     "test")
    hr = wait_for(lambda: (h := env["api"].get(flux.HELM_API, "HelmRelease", "app", ns))
                  and flux.is_ready(h) and h, what="adopted HelmRelease Ready", timeout=180)
    assert hr["status"]["history"][0]["version"] == 2
    assert flux.condition(hr, "Released")["reason"] == "UpgradeSucceeded"
    rel = helm_storage.latest(env["kube"], "app", ns)
    assert (rel.revision, rel.status) == (2, "deployed")
    assert pods() == before
    # the stand-in really ran Helm 4: its log names it
    log = env["cluster"].logs / "flux-controllers.log"
    text = log.read_text() if log.exists() else ""
    assert "(Helm 4)" in text, "the stand-in did not run Helm 4"
