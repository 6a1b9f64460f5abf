"""Render as the adoption upgrade will, on a real rehearsal cluster: the test chart
tests/charts/webapp (a password kept by `lookup` and checksummed into the pod template, a
pre-upgrade hook Job, crds/, a subchart, a library chart, a .Capabilities branch, 53/TCP+UDP)
installed by the real helm CLI, then predicted by handover.flux.render with `helm upgrade
--dry-run=server` and compared with what a real upgrade then does.

- The server-side render answers `lookup` from the cluster: two renders agree (the kept password,
  the same checksum); the offline render (`helm template`) names the password and its checksum as
  non-deterministic instead.
- `.Capabilities` are the server's: the v1.20 rehearsal server does not serve policy/v1, so the
  chart renders its PodDisruptionBudget as policy/v1beta1.
- Nothing is stored by the prediction (no new release revision).
- The prediction equals the outcome: the install rendered checksum/secret over a second random
  password (as real charts do), so the first upgrade changes that annotation: predicted
  "recreated" with the cause "computed by the chart"; a real `helm upgrade` with the offered
  postRenderers patch (applied by a helm --post-renderer) keeps the pod template, and without it
  the pod template rolls to exactly the predicted checksum.
"""
from __future__ import annotations

import functools
import json
import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from handover.gate.hazards import hooks_crds as chart_hazards
from handover.sources import helm_storage
from handover.flux import render
from handover.core import tools
from handover.core.kube import Kube
from tests.rehearsal_support import rehearsal_cluster

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]

CHART = Path(__file__).resolve().parents[1] / "charts" / "webapp"
NS = "web"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from handover.rehearsal import chart_repo
    state = tmp_path_factory.mktemp("render-live")
    shutil.copytree(CHART, state / "src" / "webapp")
    henv = {**os.environ, "HELM_CACHE_HOME": str(state / "h"),
            "HELM_CONFIG_HOME": str(state / "h"), "HELM_DATA_HOME": str(state / "h")}
    chart_repo.package(state / "src", state / "repo", env=henv)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(state / "repo"))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        with rehearsal_cluster(state / "cluster") as cluster:
            def helm(*args: str) -> subprocess.CompletedProcess:
                return subprocess.run([str(tools.helm()), *args, "--kubeconfig",
                                       str(cluster.kubeconfig), "--kube-context",
                                       cluster.context], capture_output=True, text=True,
                                      env=henv, check=True)
            # installed like a user did with the CLI, hooks included: helm waits for the
            # pre-install Job, which the node agent runs to completion
            helm("install", "webapp", "webapp", "--repo", url, "--version", "1.2.0",
                 "--namespace", NS, "--create-namespace", "--timeout", "120s")
            yield {"cluster": cluster, "url": url, "helm": helm,
                   "kube": Kube(cluster.kubeconfig, cluster.context)}
    finally:
        srv.shutdown()


def source(env) -> render.ChartSource:
    return render.ChartSource("webapp", NS, "webapp", "1.2.0", env["url"])


def predict_live(env):
    kube = env["kube"]
    r = render.render_chart(source(env), {}, render.kube_version(kube),
                            render.cluster_access(kube))
    rec = helm_storage.latest(kube, "webapp", NS)
    preds = {p.subject: p for p in render.predict(
        r.objects, render.parse_manifest(rec.manifest),
        lambda k, ns, n: kube.get("apps/v1", k, n, ns), NS)}
    return r, preds


def test_server_render_answers_lookup_and_capabilities_and_names_the_cause(env):
    """Like real charts (grafana's), the install rendered the password twice: the Secret got one
    random value and checksum/secret was taken over another render with a second random value.
    The upgrade's render finds the Secret through lookup, so its checksum is stable (two renders
    agree) but differs from the deployed one: the first upgrade rolls the pods, and the reason is
    the chart's computed checksum, not a render without a cluster."""
    kube = env["kube"]
    before = [r.revision for r in helm_storage.list_revisions(kube, "webapp", NS)]
    r, preds = predict_live(env)
    assert r.mode == render.SERVER
    assert r.unstable == []  # the password is kept through lookup: two renders agree
    pdb = render.kustomize.find(r.objects, "PodDisruptionBudget", "webapp")
    assert pdb["apiVersion"] == "policy/v1beta1"  # the v1.20 server's capabilities
    assert [(h.kind, h.name, h.events) for h in r.hooks] == [
        ("Job", "webapp-migrate", ("pre-install", "pre-upgrade"))]
    assert preds["StatefulSet web/webapp-cache"].outcome == render.IN_PLACE
    dep = preds["Deployment web/webapp"]
    assert dep.outcome == render.RECREATED
    assert [c.path for c in dep.changes] == [
        'spec.template.metadata.annotations["checksum/secret"]']  # ports etc. are no change
    why = render.cause(dep.subject, dep.changes[0], set())
    assert "computed by the chart" in why
    assert render.keep_live_patch(dep) is not None
    # read-only: no revision was stored by the dry-run upgrades
    assert [r.revision for r in helm_storage.list_revisions(kube, "webapp", NS)] == before


def _post_renderer(tmp: Path, patch: dict) -> Path:
    """A helm --post-renderer applying the offered JSON-patch ops to their target, as
    helm-controller applies spec.postRenderers[].kustomize.patches."""
    import json
    import sys
    (tmp / "patch.json").write_text(json.dumps(patch))
    script = tmp / "post-render"
    script.write_text(f"""#!{sys.executable}
import json, sys, yaml
patch = json.load(open({str(tmp / "patch.json")!r}))
ops = yaml.safe_load(patch["patch"])
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
for d in docs:
    # as kustomize selects: a target namespace does not match an object without one
    if d.get("kind") == patch["target"]["kind"] and \\
            d["metadata"]["name"] == patch["target"]["name"] and \\
            patch["target"].get("namespace") in (None, d["metadata"].get("namespace")):
        for op in ops:
            *parents, last = [x.replace("~1", "/").replace("~0", "~")
                              for x in op["path"].split("/")[1:]]
            node = d
            for k in parents:
                node = node.setdefault(k, {{}})
            if op["op"] == "remove":
                node.pop(last, None)
            else:
                node[last] = op["value"]
sys.stdout.write(yaml.safe_dump_all(docs))
""")
    script.chmod(0o755)
    return script


def test_post_renderers_patch_adopts_in_place(env, tmp_path):
    """The offered patch, applied by a post-renderer to a real helm upgrade: the Deployment's
    pod template (generation, ReplicaSets) is unchanged."""
    kube = env["kube"]
    _, preds = predict_live(env)
    patch = render.keep_live_patch(preds["Deployment web/webapp"])
    dep = kube.get("apps/v1", "Deployment", "webapp", NS)
    rsets = {rs["metadata"]["name"] for rs in kube.list("apps/v1", "ReplicaSet", NS)}
    env["helm"]("upgrade", "webapp", "webapp", "--repo", env["url"], "--version", "1.2.0",
                "--namespace", NS, "--reset-values", "--no-hooks", "--post-renderer",
                str(_post_renderer(tmp_path, patch)))
    after = kube.get("apps/v1", "Deployment", "webapp", NS)
    assert after["metadata"]["generation"] == dep["metadata"]["generation"]
    assert after["spec"]["template"] == dep["spec"]["template"]
    assert {rs["metadata"]["name"] for rs in kube.list("apps/v1", "ReplicaSet", NS)} == rsets


def test_without_the_patch_the_upgrade_rolls_as_predicted(env):
    """Dropping the patch later (a commit of its own) is the one planned rollout: the pod
    template then takes the rendered checksum, and the next prediction is in place."""
    kube = env["kube"]
    r, preds = predict_live(env)
    want = preds["Deployment web/webapp"].changes[0].git
    dep = kube.get("apps/v1", "Deployment", "webapp", NS)
    env["helm"]("upgrade", "webapp", "webapp", "--repo", env["url"], "--version", "1.2.0",
                "--namespace", NS, "--reset-values", "--no-hooks")
    after = kube.get("apps/v1", "Deployment", "webapp", NS)
    assert after["metadata"]["generation"] == dep["metadata"]["generation"] + 1
    assert after["spec"]["template"]["metadata"]["annotations"]["checksum/secret"] == want
    _, again = predict_live(env)
    assert again["Deployment web/webapp"].outcome == render.IN_PLACE


def test_offline_render_invents_a_password_the_cluster_render_does_not(env):
    r = render.render_chart(source(env), {}, "v1.20.2", None)
    assert r.mode == render.CLIENT
    assert {(u.subject, u.path) for u in r.unstable} == {
        ("Secret web/webapp-admin", "data.password"),
        ("Deployment web/webapp", 'spec.template.metadata.annotations["checksum/secret"]')}


def test_chart_crds_installed_by_helm_match_live(env):
    # installed with crds/ (helm install does), so the live CRD equals the chart's
    crds = chart_hazards.show_crds(source(env))
    live = env["kube"].get("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                           crds[0]["metadata"]["name"])
    assert live is not None and chart_hazards.crd_differences(crds[0], live) == []


def test_upgrade_runs_the_listed_pre_upgrade_hook(env):
    """The hook the finding lists is the one the upgrade runs: helm creates the Job, waits for
    it to complete (the real Job controller, the node agent's pod) and, by its delete policy
    hook-succeeded, deletes it; the release then records it as a succeeded pre-upgrade hook."""
    kube = env["kube"]
    r, _ = predict_live(env)
    listed = {(h.kind, h.name) for h in r.hooks if "pre-upgrade" in h.events}
    before = helm_storage.latest(kube, "webapp", NS).revision
    env["helm"]("upgrade", "webapp", "webapp", "--repo", env["url"], "--version", "1.2.0",
                "--namespace", NS, "--reset-values", "--timeout", "120s")
    assert kube.list("batch/v1", "Job", NS) == []  # hook-succeeded deleted it once it completed
    status = json.loads(env["helm"]("status", "webapp", "--namespace", NS, "-o",
                                    "json").stdout)
    assert status["version"] == before + 1 and status["info"]["status"] == "deployed"
    ran = {(h["kind"], h["name"]) for h in status.get("hooks") or []
           if "pre-upgrade" in h.get("events", []) and h["last_run"]["phase"] == "Succeeded"}
    assert ran == listed == {("Job", "webapp-migrate")}
