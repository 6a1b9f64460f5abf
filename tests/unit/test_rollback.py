"""handover.chain.rollback pure parts (order and idempotence are shown on the rehearsal cluster in
tests/scenarios/test_phase3_failures.py) and handover.flux.takeover's temporary Kustomization."""
from __future__ import annotations

from types import SimpleNamespace as NS

from handover.flux import takeover
from handover.chain.rollback import Rollback, changed_since_backup


def dep(replicas=1, image="app:1", **extra):
    d = {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "app", "namespace": "a", "labels": {"app": "x"}},
         "spec": {"replicas": replicas, "template": {"spec": {"containers": [
             {"name": "app", "image": image}]}}}}
    d["spec"].update(extra)
    return d


def test_server_defaults_are_not_a_change_but_a_spec_edit_is():
    live = dep(progressDeadlineSeconds=600)  # defaulted by the API server
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["status"] = {"readyReplicas": 1}
    assert not changed_since_backup(dep(), live)
    assert changed_since_backup(dep(), dep(image="app:2"))
    assert changed_since_backup(dep(), dep(replicas=3))
    assert changed_since_backup(dep(), None)


def test_changed_since_backup_compares_what_the_backup_sets_item_by_item():
    """handover.tree_diff.exact(git_keys_only=True), as the rollback's own copy compared before:
    live-only keys inside list items are defaults, a longer live list is a change, an explicit
    null in the backup matches an absent live field."""
    live = dep()
    live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/x"
    assert not changed_since_backup(dep(), live)
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "s:1"})
    assert changed_since_backup(dep(), live)
    assert not changed_since_backup(dep(paused=None), dep())
    assert changed_since_backup(dep(paused=True), dep())


def test_metadata_patch_removes_flux_owner_labels_and_restores_last_applied():
    backup = dep()
    backup["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": "{...}"}
    live = dep()
    live["metadata"]["labels"].update({"kustomize.toolkit.fluxcd.io/name": "handover-app",
                                       "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
                                       "team": "kept"})
    live["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    patch = Rollback._metadata_patch(backup, live)
    assert patch == {
        "labels": {"kustomize.toolkit.fluxcd.io/name": None,
                   "kustomize.toolkit.fluxcd.io/namespace": None},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"}}
    assert Rollback._metadata_patch(backup, backup) == {}


def test_temporary_kustomization_never_prunes():
    inv = NS(cluster=NS(flux_namespace="flux-system"))
    ks = takeover.temporary_kustomization(inv, "handover-loki", "infrastructure/logging/loki/")
    assert ks["metadata"] == {"name": "handover-loki", "namespace": "flux-system",
                              "labels": {"app.kubernetes.io/managed-by": "flux-handover"}}
    spec = ks["spec"]
    assert spec["prune"] is False and spec["deletionPolicy"] == "Orphan"
    assert spec["path"] == "./infrastructure/logging/loki"
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": "flux-system",
                                 "namespace": "flux-system"}


def test_request_token_is_rfc3339_with_nanoseconds():
    import re
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", takeover.request_token())


def test_ready_state_needs_current_generation_and_handled_request():
    obj = {"metadata": {"generation": 2},
           "status": {"lastHandledReconcileAt": "t1",
                      "conditions": [{"type": "Ready", "status": "True",
                                      "observedGeneration": 1, "message": "ok"}]}}
    assert takeover._ready_state(obj, None)[0] is False  # stale: generation 1 of 2
    obj["status"]["conditions"][0]["observedGeneration"] = 2
    assert takeover._ready_state(obj, "t1")[0] is True
    ok, msg = takeover._ready_state(obj, "t2")
    assert not ok and "reconcile request t2 not handled yet" in msg
