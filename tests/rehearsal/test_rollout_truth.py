"""The rollout prediction against the real outcome, through the helm-controller stand-in.

For the test chart tests/charts/webapp (a password kept by `lookup` and checksummed into the pod
template, a pre-upgrade hook Job, crds/, a subchart StatefulSet, a library chart, a .Capabilities
branch, 53/TCP+UDP), installed by the real helm CLI on a rehearsal cluster, hooks included:

1. phase 1 predicts with the library calls the gate makes (``render.predictions`` and
   ``render.check_rollout`` on an inventory component and its built HelmRepository +
   HelmRelease), on the live cluster;
2. a HelmRelease is applied and the helm-controller stand-in adopts the CLI release (an upgrade to
   revision 2, hooks run, post-renderers applied);
3. the outcome is measured per workload once it settled: the pod UIDs kept (and 0 restarts) or
   replaced; it must equal the prediction, workload by workload.

Variants: the chart's defaults (the install checksummed a second random password, as real charts
such as grafana's do: the Deployment is predicted to roll, the subchart's StatefulSet not); the
same with the exact spec.postRenderers patch the gate offers (everything adopted in place), then
the patch dropped in a commit of its own (the one planned rollout, as predicted); and a fixed
password in values (no rollout predicted, none happens).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from handover.flux import rules as flux
from handover.sources import helm_storage
from handover.flux import render
from handover.core import tools
from handover.core.inventory import Cluster, Component, GitOps, Inventory, ObjectRef
from handover.core.kube import Kube
from handover.rehearsal import chart_repo
from handover.rehearsal.flux import install
from handover.rehearsal.flux.runtime import Api
from handover.rehearsal.flux.testkit import HttpDir, wait_for
from tests.rehearsal_support import rehearsal_cluster

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]

CHART = Path(__file__).resolve().parents[1] / "charts" / "webapp"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "homelab"
VERSION = "1.2.0"
SETTLE = 180.0


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    state = tmp_path_factory.mktemp("rollout-truth")
    shutil.copytree(CHART, state / "src" / "webapp")
    shutil.copytree(EXAMPLE / "charts" / "grafana", state / "src" / "grafana")
    henv = {**os.environ, "HELM_CACHE_HOME": str(state / "h"),
            "HELM_CONFIG_HOME": str(state / "h"), "HELM_DATA_HOME": str(state / "h")}
    chart_repo.package(state / "src", state / "repo", env=henv)
    repo = HttpDir(state / "repo")
    try:
        with rehearsal_cluster(state / "cluster") as cluster:
            install(cluster, state / "flux")
            api = Api(str(cluster.kubeconfig), cluster.context)
            api.apply(helm_repository(repo.url), "test")
            wait_for(lambda: flux.is_ready(api.get(flux.SOURCE_API, "HelmRepository", "charts",
                                                   "flux-system")), what="HelmRepository Ready")
            yield {"cluster": cluster, "api": api, "url": repo.url, "state": state, "henv": henv,
                   "kube": Kube(cluster.kubeconfig, cluster.context)}
    finally:
        repo.close()


def helm_repository(url: str) -> dict:
    return {"apiVersion": flux.SOURCE_API, "kind": "HelmRepository",
            "metadata": {"name": "charts", "namespace": "flux-system"},
            "spec": {"interval": "10m", "url": url}}


def helm_release(ns: str, values: dict, post_renderers: list | None = None) -> dict:
    spec = {"interval": "10m",
            "chart": {"spec": {"chart": "webapp", "version": VERSION,
                               "sourceRef": {"kind": "HelmRepository", "name": "charts",
                                             "namespace": "flux-system"}}},
            "values": values}
    if post_renderers:
        spec["postRenderers"] = post_renderers
    return {"apiVersion": flux.HELM_API, "kind": "HelmRelease",
            "metadata": {"name": "webapp", "namespace": ns}, "spec": spec}


def inventory(env, ns: str) -> tuple[Inventory, Component]:
    c = env["cluster"]
    comp = Component(name=f"webapp-{ns}", type="helm", risk="low", path=f"apps/{ns}",
                     namespaces=(ns,), release=ObjectRef("webapp", ns),
                     helm_release=ObjectRef("webapp", ns))
    inv = Inventory(source=env["state"] / "migration.yaml",
                    cluster=Cluster(name="rehearsal", context=c.context, flux_version="2.3.0"),
                    gitops=GitOps(path=env["state"], branch="main"),
                    backups=env["state"] / "backups", components=(comp,))
    return inv, comp


def helm(env, *args: str):
    c = env["cluster"]
    return tools.run([str(tools.helm()), *args, "--kubeconfig", str(c.kubeconfig),
                      "--kube-context", c.context], env=env["henv"], check=True)


def cli_install(env, ns: str, *sets: str) -> None:
    args = ["install", "webapp", "webapp", "--repo", env["url"], "--version", VERSION,
            "--namespace", ns, "--create-namespace", "--timeout", "120s"]
    for s in sets:
        args += ["--set", s]
    # hooks included: helm waits for the pre-install Job (run to completion by the node agent)
    helm(env, *args)


SELECTORS = {"Deployment": "app.kubernetes.io/name=webapp,app.kubernetes.io/instance=webapp",
             "StatefulSet": "app.kubernetes.io/name=cache,app.kubernetes.io/instance=webapp"}


def settled(env, ns: str, kind: str, name: str, selector: str | None = None) -> dict | None:
    """The workload's pods once its controller finished with the current template: {uid:
    restarts} of exactly spec.replicas Running pods, none terminating; None until then."""
    kube = env["kube"]
    w = kube.get("apps/v1", kind, name, ns)
    st = w.get("status") or {}
    want = w["spec"].get("replicas", 1)
    if st.get("observedGeneration") != w["metadata"]["generation"]:
        return None
    if kind == "Deployment" and not (st.get("updatedReplicas") == st.get("replicas") == want):
        return None
    if kind == "StatefulSet" and st.get("currentRevision") != st.get("updateRevision"):
        return None
    pods = kube.list("v1", "Pod", ns, label_selector=selector or SELECTORS[kind])
    if any(p["metadata"].get("deletionTimestamp") for p in pods) or len(pods) != want:
        return None
    if any((p.get("status") or {}).get("phase") != "Running" for p in pods):
        return None
    return {p["metadata"]["uid"]: sum(c.get("restartCount", 0) for c in
                                      p["status"].get("containerStatuses") or [])
            for p in pods}


def measure(env, ns: str, workloads=None) -> dict[str, dict]:
    out = {}
    for kind, name, *sel in workloads or (("Deployment", "webapp"),
                                          ("StatefulSet", "webapp-cache")):
        pods = wait_for(lambda: settled(env, ns, kind, name, *sel), timeout=SETTLE,
                        what=f"{kind} {ns}/{name} settled")
        gen = env["kube"].get("apps/v1", kind, name, ns)["metadata"]["generation"]
        out[f"{kind} {ns}/{name}"] = {"pods": pods, "generation": gen}
    return out


def outcome(before: dict, after: dict) -> str:
    """What happened to one workload's pods between two measures."""
    if set(after["pods"]) == set(before["pods"]):
        assert all(n == 0 for n in after["pods"].values()), after  # no restart either
        assert after["generation"] == before["generation"]
        return render.IN_PLACE
    assert set(after["pods"]).isdisjoint(before["pods"])  # all replaced, none kept
    return render.RECREATED


def gate(env, ns: str, hr: dict):
    """Phase 1's library calls on the component and its build (HelmRepository + HelmRelease)."""
    inv, comp = inventory(env, ns)
    objects = [helm_repository(env["url"]), hr]
    preds = {p.subject: p for p in render.predictions(env["kube"], inv, comp, objects)}
    findings = render.check_rollout(env["kube"], inv, comp, objects)
    return preds, findings


def adopt(env, hr: dict, revision: int) -> dict:
    ns, name = hr["metadata"]["namespace"], hr["metadata"]["name"]
    env["api"].apply(hr, "test")

    def done():
        h = env["api"].get(flux.HELM_API, "HelmRelease", name, ns)
        if h and flux.is_ready(h) and (h.get("status") or {}).get("history", [{}])[0].get(
                "version") == revision:
            return h
        return None
    return wait_for(done, timeout=SETTLE, what=f"HelmRelease {ns}/{name} at revision {revision}")


def assert_outcome_equals_prediction(preds: dict, before: dict, after: dict) -> dict:
    measured = {s: outcome(before[s], after[s]) for s in after}
    assert {s: p.outcome for s, p in preds.items()} == measured
    return measured


def test_defaults_roll_the_deployment_as_predicted(env):
    """The chart's defaults: the install's checksum/secret was taken over a second random
    password, the adoption upgrade's lookup finds the kept one: the Deployment rolls (predicted,
    with the chart-computed checksum as the only field), the subchart's StatefulSet does not."""
    ns = "rt-defaults"
    cli_install(env, ns)
    hr = helm_release(ns, {})
    preds, findings = gate(env, ns, hr)
    dep = preds[f"Deployment {ns}/webapp"]
    assert dep.outcome == render.RECREATED
    assert [c.path for c in dep.changes] == [
        'spec.template.metadata.annotations["checksum/secret"]']
    assert preds[f"StatefulSet {ns}/webapp-cache"].outcome == render.IN_PLACE
    errors = [f for f in findings if f.severity == "error"]
    assert [f.subject for f in errors] == [f"Deployment {ns}/webapp"]
    assert "computed by the chart" in errors[0].problem
    before = measure(env, ns)
    h = adopt(env, hr, 2)
    assert flux.condition(h, "Released")["reason"] == "UpgradeSucceeded"
    # the adoption upgrade ran the chart's pre-upgrade hook (the Job completed, then deleted by
    # its hook-succeeded policy), as the hooks finding lists it
    assert env["kube"].list("batch/v1", "Job", ns) == []
    status = json.loads(helm(env, "status", "webapp", "--namespace", ns, "-o", "json").stdout)
    assert status["version"] == 2
    assert [(x["kind"], x["name"], x["last_run"]["phase"]) for x in status["hooks"]
            if "pre-upgrade" in x["events"]] == [("Job", "webapp-migrate", "Succeeded")]
    assert_outcome_equals_prediction(preds, before, measure(env, ns))
    # the pods now carry the checksum the prediction named
    live = env["kube"].get("apps/v1", "Deployment", "webapp", ns)
    assert live["spec"]["template"]["metadata"]["annotations"]["checksum/secret"] == \
        dep.changes[0].git


def test_offered_post_renderers_patch_adopts_in_place_then_dropping_it_rolls_once(env):
    """The gate's offer, applied verbatim as the HelmRelease's spec.postRenderers: the
    helm-controller stand-in's adoption upgrade (kustomize post-renderer, hooks run) keeps every
    pod (same UIDs, 0 restarts). Dropping the patch later, in a commit of its own, is the one
    planned rollout: the Deployment rolls, as predicted before the commit, the StatefulSet not;
    after it the prediction is in place for both."""
    ns = "rt-keep"
    cli_install(env, ns)
    plain = helm_release(ns, {})
    preds, findings = gate(env, ns, plain)
    patch = render.keep_live_patch(preds[f"Deployment {ns}/webapp"])
    assert patch is not None
    error = next(f for f in findings if f.subject == f"Deployment {ns}/webapp")
    # the finding names the 0600 file that holds the exact patch (the live checksum is printed
    # only as its hash); that file's fragment is what is applied below, verbatim
    inv, _ = inventory(env, ns)
    path = render.offer_path(inv, plain)
    assert str(path) in error.fix
    offer = render.read_offer(path)
    assert offer == yaml.safe_load(render.post_renderers_offer(plain, [patch]))
    assert yaml.safe_load(patch["patch"])[0]["value"] not in error.fix
    patched = helm_release(ns, {}, offer["spec"]["postRenderers"])
    # phase 1 on the commit that adds the patch: the post-renderers are applied to the render
    kept, findings = gate(env, ns, patched)
    assert {s: p.outcome for s, p in kept.items()} == {s: render.IN_PLACE for s in preds}
    assert not [f for f in findings if f.severity == "error"]
    before = measure(env, ns)
    adopt(env, patched, 2)
    after = measure(env, ns)
    assert_outcome_equals_prediction(kept, before, after)
    rel = helm_storage.latest(env["kube"], "webapp", ns)
    assert (rel.revision, rel.status) == (2, "deployed")

    # later: the patch dropped (its own commit). Predicted first, then measured.
    preds2, _ = gate(env, ns, plain)
    assert preds2[f"Deployment {ns}/webapp"].outcome == render.RECREATED
    assert preds2[f"StatefulSet {ns}/webapp-cache"].outcome == render.IN_PLACE
    adopt(env, plain, 3)
    final = measure(env, ns)
    assert_outcome_equals_prediction(preds2, after, final)
    preds3, findings3 = gate(env, ns, plain)
    assert {p.outcome for p in preds3.values()} == {render.IN_PLACE}
    assert not [f for f in findings3 if f.severity == "error"]


def test_fixed_password_is_predicted_and_adopted_in_place(env):
    """A password given in values (no random, no lookup): nothing in a pod template changes,
    predicted in place, and the adoption keeps every pod."""
    ns = "rt-fixed"
    cli_install(env, ns, "adminPassword=rehearsal-only")
    hr = helm_release(ns, {"adminPassword": "rehearsal-only"})
    preds, findings = gate(env, ns, hr)
    assert {p.outcome for p in preds.values()} == {render.IN_PLACE}
    assert not [f for f in findings if f.severity == "error"]
    before = measure(env, ns)
    adopt(env, hr, 2)
    assert_outcome_equals_prediction(preds, before, measure(env, ns))


def test_changed_values_roll_and_get_no_keep_live_offer(env):
    """The HelmRelease's values differ from the CLI release's (another greeting: the ConfigMap
    and its checksum change): the Deployment is predicted to roll with checksum/config among
    the fields, and NO postRenderers patch is offered (it would pin a checksum over content that
    really changed); the adoption rolls the Deployment, not the subchart's StatefulSet."""
    ns = "rt-values"
    cli_install(env, ns)
    hr = helm_release(ns, {"config": {"greeting": "changed in Git"}})
    preds, findings = gate(env, ns, hr)
    dep = preds[f"Deployment {ns}/webapp"]
    assert dep.outcome == render.RECREATED
    assert 'spec.template.metadata.annotations["checksum/config"]' in [
        c.path for c in dep.changes]
    [error] = [f for f in findings if f.severity == "error"]
    assert error.subject == f"Deployment {ns}/webapp"
    assert "postRenderers:" not in error.fix and "no spec.postRenderers patch" in error.fix
    before = measure(env, ns)
    adopt(env, hr, 2)
    assert_outcome_equals_prediction(preds, before, measure(env, ns))
    cm = env["kube"].get("v1", "ConfigMap", "webapp-config", ns)
    assert cm["data"]["greeting"] == "changed in Git"


# --- the example's own grafana chart, installed once ----------------------------------------------

GRAFANA = ("Deployment", "grafana", "app.kubernetes.io/name=grafana,app.kubernetes.io/instance=grafana")


def git(repo: Path, *args: str) -> str:
    return tools.run(["git", "-C", str(repo), "-c", "user.name=rehearsal", "-c",
                      "user.email=rehearsal@invalid", *args], check=True).stdout


def test_example_grafana_installed_once_offer_committed_then_dropped(env, tmp_path):
    """examples/homelab/charts/grafana (as upstream: admin password kept by lookup,
    checksum/secret on the pod template) installed ONCE with the seed's values, as a homelab that
    never upgraded it: the install checksummed a second random password, so the adoption upgrade
    rolls the pods, and phase 1 says so (checksum/secret the only field) with the offer in a
    0600 file. The user's step: that fragment committed into the example's own HelmRelease file
    in the GitOps repo. Phase 1 on that commit predicts in place; the helm-controller stand-in's
    adoption keeps every pod. Dropping the patch later (git revert, a commit of its own) is the
    one planned rollout, as predicted."""
    from ruamel.yaml import YAML
    from handover.rehearsal.seed import seed_release
    from handover.sources import kustomize

    rel = seed_release("grafana", "logging", EXAMPLE / "seed.yaml")
    values = tmp_path / "values.json"
    values.write_text(json.dumps(rel.config))
    helm(env, "install", "grafana", "grafana", "--repo", env["url"], "--version", rel.version,
         "--namespace", "logging", "--create-namespace", "-f", str(values))
    # the example's HelmRepository name, served by this test's chart repository
    env["api"].apply({**helm_repository(env["url"]), "metadata": {
        "name": "grafana", "namespace": "flux-system"}}, "test")
    repo = tmp_path / "gitops"
    shutil.copytree(EXAMPLE / "gitops" / "infrastructure" / "logging" / "grafana",
                    repo / "grafana")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the example's grafana HelmRelease")
    sources = [{**helm_repository(env["url"]), "metadata": {"name": "grafana",
                                                            "namespace": "flux-system"}}]

    def gate_build():
        objs = kustomize.build(repo / "grafana")
        hr = kustomize.find(objs, "HelmRelease", "grafana", "logging")
        comp = Component(name="grafana", type="helm", risk="low", path="grafana",
                         namespaces=("logging",), release=ObjectRef("grafana", "logging"),
                         helm_release=ObjectRef("grafana", "logging"))
        inv = Inventory(source=env["state"] / "migration.yaml",
                        cluster=Cluster(name="rehearsal", context=env["cluster"].context,
                                        flux_version="2.3.0"),
                        gitops=GitOps(path=repo, branch="main"),
                        backups=env["state"] / "backups", components=(comp,))
        preds = {p.subject: p for p in render.predictions(env["kube"], inv, comp, objs + sources)}
        findings = render.check_rollout(env["kube"], inv, comp, objs + sources)
        return inv, hr, preds, [f for f in findings if f.severity == "error"]

    subject = "Deployment logging/grafana"
    inv, hr, preds, errors = gate_build()
    assert preds[subject].outcome == render.RECREATED
    assert [c.path for c in preds[subject].changes] == [
        'spec.template.metadata.annotations["checksum/secret"]']
    assert [f.subject for f in errors] == [subject]
    path = render.offer_path(inv, hr)
    assert str(path) in errors[0].fix and "computed by the chart" in errors[0].problem
    live_sum = env["kube"].get("apps/v1", "Deployment", "grafana", "logging")[
        "spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
    assert live_sum not in errors[0].fix and live_sum not in errors[0].problem

    # the user's step: the offered fragment into the HelmRelease file, committed
    y = YAML()
    f = repo / "grafana" / "helmrelease.yaml"
    doc = y.load(f.read_text())
    doc["spec"]["postRenderers"] = render.read_offer(path)["spec"]["postRenderers"]
    with f.open("w") as out:
        y.dump(doc, out)
    git(repo, "commit", "-q", "-am", "handover: keep grafana's live pod-template checksums")
    _, patched, kept, errors = gate_build()
    assert kept[subject].outcome == render.IN_PLACE and errors == []
    before = measure(env, "logging", [GRAFANA])
    h = adopt(env, patched, 2)
    assert flux.condition(h, "Released")["reason"] == "UpgradeSucceeded"
    after = measure(env, "logging", [GRAFANA])
    assert_outcome_equals_prediction(kept, before, after)

    # later: the patch dropped in a commit of its own (the one planned rollout)
    git(repo, "revert", "--no-edit", "HEAD")
    _, plain, again, _ = gate_build()
    assert "postRenderers" not in plain["spec"]
    assert again[subject].outcome == render.RECREATED
    adopt(env, plain, 3)
    final = measure(env, "logging", [GRAFANA])
    assert_outcome_equals_prediction(again, after, final)
    _, _, settled_preds, errors = gate_build()
    assert settled_preds[subject].outcome == render.IN_PLACE and errors == []
