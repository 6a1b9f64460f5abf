"""Pure rules of the Flux stand-ins (no cluster): managed-field takeover, inventory ids, values
composition, release digests, health, the origin-label post-renderer, and handover.flux.rules names."""
from __future__ import annotations

from handover.flux import rules as flux
from handover.flux import ssa
from handover.rehearsal.flux import helm_controller as hc
from handover.rehearsal.flux import kustomize_controller as kc
from handover.flux import postrender


def _entry(manager, op, fields, sub=None):
    e = {"manager": manager, "operation": op, "apiVersion": "v1", "fieldsType": "FieldsV1",
         "fieldsV1": fields, "time": "2026-01-01T00:00:00Z"}
    if sub:
        e["subresource"] = sub
    return e


def test_takeover_folds_kubectl_entries_into_the_apply_entry():
    """Source: fluxcd/pkg ssa/patch.go PatchReplaceFieldsManagers (prefix match, operation, no subresource)."""
    entries = [
        _entry("kubectl-client-side-apply", "Update", {"f:data": {"f:a": {}}}),
        _entry("kubectl-edit", "Update", {"f:data": {"f:b": {}}}),
        _entry("kube-controller-manager", "Update", {"f:status": {}}),
        _entry("kubectl", "Update", {"f:status": {}}, sub="status"),
        _entry("before-first-apply", "Update", {"f:metadata": {"f:labels": {}}}),
    ]
    out = kc.takeover_managed_fields(entries)
    managers = [(e["manager"], e["operation"]) for e in out]
    assert managers == [("kube-controller-manager", "Update"), ("kubectl", "Update"),
                        ("kustomize-controller", "Apply")]
    assert out[-1]["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}},
                                   "f:metadata": {"f:labels": {}}}


def test_takeover_merges_into_existing_apply_entry_and_is_none_without_matches():
    """Source: fluxcd/pkg ssa/patch.go PatchReplaceFieldsManagers (existing owner Apply entry kept, merged)."""
    entries = [_entry("kustomize-controller", "Apply", {"f:data": {"f:x": {}}}),
               _entry("kubectl-client-side-apply", "Update", {"f:data": {"f:y": {}}})]
    out = kc.takeover_managed_fields(entries)
    assert len(out) == 1 and out[0]["fieldsV1"] == {"f:data": {"f:x": {}, "f:y": {}}}
    assert kc.takeover_managed_fields([_entry("helm", "Update", {})]) is None


def test_inventory_id_format():
    """Source: fluxcd/pkg ssa ObjMetadata / kustomize-controller api/v1/inventory_types.go (<namespace>_<name>_<group>_<kind>)."""
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "apps"}}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}
    assert kc.inventory_id(dep) == {"id": "apps_web_apps_Deployment", "v": "v1"}
    assert kc.inventory_id(ns) == {"id": "_apps__Namespace", "v": "v1"}
    assert kc.parse_inventory_id({"id": "apps_web_apps_Deployment", "v": "v1"}) == (
        "apps", "web", "apps", "Deployment", "v1")


def test_normalize_sets_default_port_protocol():
    """Source: fluxcd/pkg ssa/normalize (container and service ports get protocol TCP); the
    stand-in applies handover.flux.ssa.flux_defaults (tests/unit/test_ssa.py for the rest)."""
    dep = {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [
        {"name": "a", "ports": [{"containerPort": 80}]}]}}}}
    ssa.native_defaults(dep)
    assert dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] == "TCP"


def test_health_of_rollouts():
    """Source: kstatus (sigs.k8s.io/cli-utils status) as used by kustomize-controller checkHealth."""
    dep = {"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
           "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                      "readyReplicas": 1, "availableReplicas": 1}}
    assert kc.health(dep)[0] is False
    dep["status"].update(readyReplicas=2, availableReplicas=2)
    assert kc.health(dep) == (True, "")
    dep["status"]["observedGeneration"] = 1
    assert kc.health(dep)[0] is False
    hr = {"kind": "HelmRelease", "metadata": {"generation": 3}, "status": {"conditions": [
        {"type": "Ready", "status": "True", "observedGeneration": 2}]}}
    assert kc.health(hr)[0] is False  # Ready for an older generation is not current


def test_values_merge_and_target_path_and_config_digest():
    """Source: helm-controller internal/chartutil/values.go (merge order, targetPath); api/v2 Snapshot.ConfigDigest."""
    merged = hc.deep_merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"c": 3}, "l": [2]})
    assert merged == {"a": {"b": 1, "c": 3}, "l": [2]}
    v: dict = {}
    hc.set_path(v, "auth.password", "s3cret")
    assert v == {"auth": {"password": "s3cret"}}
    assert hc.config_digest({"a": 1, "b": 2}) == hc.config_digest({"b": 2, "a": 1})
    assert hc.config_digest({"a": 1}) != hc.config_digest({"a": 2})


def test_origin_labels_only_on_top_level_metadata():
    """Source: helm-controller internal/postrender/origin_labels.go."""
    docs = [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
             "spec": {"selector": {"matchLabels": {"app": "x"}},
                      "template": {"metadata": {"labels": {"app": "x"}}}}}, None]
    out = postrender.transform(docs, "hr", "apps")
    assert len(out) == 1
    assert out[0]["metadata"]["labels"] == {flux.HELM_ORIGIN_NAME: "hr",
                                            flux.HELM_ORIGIN_NAMESPACE: "apps"}
    assert out[0]["spec"]["template"]["metadata"]["labels"] == {"app": "x"}
    assert out[0]["spec"]["selector"]["matchLabels"] == {"app": "x"}


def test_release_name_rules():
    """Source: helm-controller api/v2/helmrelease_types.go GetReleaseName (targetNamespace prefix, 53-char shortening)."""
    hr = {"metadata": {"name": "loki", "namespace": "flux-system"},
          "spec": {"targetNamespace": "logging"}}
    assert flux.helm_release_name(hr) == "logging-loki"
    assert flux.storage_namespace(hr) == "flux-system"
    assert flux.target_namespace(hr) == "logging"
    long = {"metadata": {"name": "x" * 60, "namespace": "a"}, "spec": {}}
    assert len(flux.helm_release_name(long)) == 53
