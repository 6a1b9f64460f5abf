"""handover.flux.current: current Flux / Helm 4 rules for the inventory's Flux version."""
from __future__ import annotations

import copy
from types import SimpleNamespace

from handover.flux import current as fc
from handover.core.inventory import Component, ObjectRef
from tests.unit.kube_fake import FakeKube, release_secret

APP = Component(name="app", type="helm", risk="low", path="app", namespaces=("web",),
                release=ObjectRef("app", "web"), helm_release=ObjectRef("app", "web"))
MAN = Component(name="tool", type="manifests", risk="low", path="tool", namespaces=("web",))


def inv(version):
    return SimpleNamespace(cluster=SimpleNamespace(flux_version=version), source="inv.yaml")


def hr(**spec):
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "app", "namespace": "web"}, "spec": spec}


SAFE = {"install": {"disableTakeOwnership": True},
        "upgrade": {"disableTakeOwnership": True, "remediation": {"retries": 1}}}


def checks(version, **spec):
    return {(f.check, f.severity): f for f in fc.check_helm_release_rules(inv(version), APP,
                                                                         [hr(**spec)])}


def test_take_ownership_recommended_and_checked_against_the_flux_version():
    assert (fc.TAKE_OWNERSHIP, "warning") in checks("2.6.0", upgrade={"remediation": {
        "retries": 1}})
    assert checks("2.6.0", **SAFE) == {}
    f = checks("2.4.0", **SAFE)[(fc.TAKE_OWNERSHIP, "error")]
    assert "Flux 2.4.0 does not know it" in f.problem
    f = checks("2.8.3", install={"disableTakeOwnership": True},
               upgrade={"remediation": {"retries": 1}})[(fc.TAKE_OWNERSHIP, "error")]
    assert "the adoption of an existing release is an UPGRADE" in f.problem
    assert "spec.upgrade.disableTakeOwnership: true" in f.fix


def test_remediation_uninstall_retry_on_failure_and_no_rollback():
    f = checks("2.9.0", install=SAFE["install"], upgrade={
        "disableTakeOwnership": True, "remediation": {"strategy": "uninstall", "retries": 1}})
    assert "UNINSTALLS the adopted release" in f[(fc.REMEDIATION, "error")].problem
    f = checks("2.9.0", install=SAFE["install"], upgrade={
        "disableTakeOwnership": True, "strategy": {"name": "RetryOnFailure"}})
    assert "never rolled back" in f[(fc.REMEDIATION, "warning")].problem
    f = checks("2.9.0", install=SAFE["install"], upgrade={"disableTakeOwnership": True})
    assert "retries is 0" in f[(fc.REMEDIATION, "warning")].problem


def test_server_side_apply_on_a_helm3_release_under_helm4():
    up = {**SAFE["upgrade"], "serverSideApply": "enabled"}
    f = checks("2.8.0", install=SAFE["install"], upgrade=up)[(fc.APPLY_METHOD, "error")]
    assert "`helm` field manager" in f.problem and "auto" in f.fix
    assert checks("2.8.0", install=SAFE["install"],
                  upgrade={**SAFE["upgrade"], "serverSideApply": "auto"}) == {}


def test_stored_manifest_api_no_longer_served_names_mapkubeapis():
    manifest = ("apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: a\n"
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\n")

    class Kube(FakeKube):
        def has_resource(self, api_version, kind):
            return api_version != "policy/v1beta1"
    kube = Kube(release_secret("app", "web", manifest=manifest))
    [f] = fc.check_stored_apis(kube, APP)
    assert "policy/v1beta1 PodDisruptionBudget" in f.problem and "mapkubeapis" in f.fix
    assert fc.check_stored_apis(FakeKube(release_secret("app", "web", manifest=manifest)),
                                APP) == []


def deployment(env, min_ready=None):
    d = {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "tool", "namespace": "web"},
         "spec": {"template": {"spec": {"containers": [
             {"name": "tool", "image": "tool:1", "env": env}]}}}}
    if min_ready is not None:
        d["spec"]["minReadySeconds"] = min_ready
    return d


KUBECTL_FIELDS = {"f:spec": {
    "f:minReadySeconds": {},
    "f:template": {"f:spec": {
        "f:dnsPolicy": {},
        "f:containers": {'k:{"name":"tool"}': {
            ".": {}, "f:image": {}, "f:name": {},
            "f:env": {'k:{"name":"DEBUG"}': {".": {}, "f:name": {}, "f:value": {}},
                      'k:{"name":"MODE"}': {".": {}, "f:name": {}, "f:value": {}}}}}}}}}


def live_tool():
    live = deployment([{"name": "DEBUG", "value": "1"}, {"name": "MODE", "value": "x"}],
                      min_ready=5)
    live["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
    live["metadata"]["managedFields"] = [
        {"manager": "kubectl-client-side-apply", "operation": "Update",
         "fieldsV1": KUBECTL_FIELDS}]
    return live


def test_kubectl_owned_fields_missing_from_git_are_listed():
    git = deployment([{"name": "MODE", "value": "x"}])
    [f] = fc.check_kubectl_managers(FakeKube(live_tool()), MAN, [git])
    assert f.severity == "error" and "pods roll" in f.problem
    assert "spec.template.spec.containers[name=tool].env[name=DEBUG]" in f.problem
    assert "spec.minReadySeconds: live 5" in f.problem
    assert "dnsPolicy" not in f.problem  # API default: comes back unchanged
    # only outside the pod template: a warning
    git2 = deployment([{"name": "DEBUG", "value": "1"}, {"name": "MODE", "value": "x"}])
    [w] = fc.check_kubectl_managers(FakeKube(live_tool()), MAN, [git2])
    assert w.severity == "warning" and "spec.minReadySeconds" in w.problem
    git3 = copy.deepcopy(git2)
    git3["spec"]["minReadySeconds"] = 5
    assert fc.check_kubectl_managers(FakeKube(live_tool()), MAN, [git3]) == []
    # other managers (helm, k3s) are not taken over
    other = live_tool()
    other["metadata"]["managedFields"][0]["manager"] = "helm"
    assert fc.check_kubectl_managers(FakeKube(other), MAN, [git]) == []


def test_ssa_if_not_present_flapping_in_flux_2_8_before_2_8_7():
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "web", "annotations": {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}}}
    kube = FakeKube(ns)
    [f] = fc.check_ssa_if_not_present(kube, inv("2.8.3"), MAN, [ns])
    assert f.severity == "error" and "kustomize-controller#1647" in f.problem
    [w] = fc.check_ssa_if_not_present(kube, inv("2.8.7"), MAN, [ns])
    assert w.severity == "warning" and "never pruned" in w.problem
    assert fc.check_ssa_if_not_present(FakeKube(), inv("2.8.3"), MAN, [ns]) == []
