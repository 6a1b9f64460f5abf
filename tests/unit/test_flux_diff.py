"""handover.flux.diff: the classification `flux diff kustomization` makes, on plain objects
(the server-side dry-run itself is exercised on the rehearsal cluster in
tests/scenarios/test_phase2.py)."""
from __future__ import annotations

from handover.flux import diff as fd
from handover.tree_diff import MISSING, Difference

OWNER = {"kustomize.toolkit.fluxcd.io/name": "workloads",
         "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}


def _deploy(image="llama:1", labels=None, **meta):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "llama-cpp", "namespace": "llm", "labels": labels or {"app": "x"},
                         **meta},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
            "status": {"replicas": 1}}


def test_noise_is_ignored():
    live = _deploy(resourceVersion="1", generation=1, uid="u", managedFields=[{"m": 1}])
    dry = _deploy(resourceVersion="2", generation=2, uid="u", managedFields=[{"m": 2}])
    dry["status"] = {"replicas": 0}
    assert fd.classify(live, dry, "workloads", "Deployment llm/llama-cpp").action == fd.UNCHANGED


def test_owner_labels_only_is_not_drift():
    live = _deploy(resourceVersion="1")
    dry = _deploy(labels={"app": "x", **OWNER}, resourceVersion="1")
    d = fd.classify(live, dry, "workloads", "Deployment llm/llama-cpp")
    assert d.action == fd.OWNER_LABELS
    assert [c.path for c in d.changes] == [
        'metadata.labels["kustomize.toolkit.fluxcd.io/name"]',
        'metadata.labels["kustomize.toolkit.fluxcd.io/namespace"]']


def test_owner_labels_on_an_object_without_labels():
    live = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "llm",
                                                                   "resourceVersion": "3"}}
    dry = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "llm", "labels": OWNER,
                                                                  "resourceVersion": "3"}}
    assert fd.classify(live, dry, "workloads", "Namespace llm").action == fd.OWNER_LABELS


def test_modified_lists_field_paths_with_live_and_git_values():
    live = _deploy(resourceVersion="1")
    dry = _deploy(image="llama:2", labels={"app": "x", **OWNER}, resourceVersion="1")
    d = fd.classify(live, dry, "workloads", "Deployment llm/llama-cpp")
    assert d.action == fd.MODIFIED
    img = [c for c in d.changes if "image" in c.path]
    assert img == [Difference("spec.template.spec.containers[0].image", "llama:1", "llama:2")]
    assert "llama:1 -> llama:2" in str(d)


def test_created_when_no_live_object():
    dry = _deploy()
    assert fd.classify(None, dry, "workloads", "x").action == fd.CREATED


def test_secret_values_hidden():
    live = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "resourceVersion": "1"},
            "data": {"password": "b2xk"}}
    dry = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "resourceVersion": "1"},
           "data": {"password": "bmV3"}}
    d = fd.classify(live, dry, "infrastructure", "Secret a/s")
    assert d.action == fd.MODIFIED
    assert d.changes == [Difference("data.password", fd.HIDDEN, fd.HIDDEN)]
    assert "b2xk" not in str(d) and "bmV3" not in str(d)


def test_list_length_changes_are_paths():
    ch = fd.field_changes({"a": [1, 2]}, {"a": [1, 3, 4]})
    assert [(c.path, c.live, c.git) for c in ch] == [("a[1]", 2, 3), ("a[2]", MISSING, 4)]


def test_inventory_ids_round_trip():
    obj = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
           "metadata": {"name": "loki", "namespace": "logging"}}
    assert fd.inventory_id(obj) == "logging_loki_helm.toolkit.fluxcd.io_HelmRelease"
    assert fd.inventory_id({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": "llm"}}) == "_llm__Namespace"
    assert fd.parse_inventory_id("_llm__Namespace") == ("", "llm", "", "Namespace")


def test_prepare_adds_owner_labels_target_namespace_and_common_metadata():
    objs = [_deploy(), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "llm"}}]
    spec = {"targetNamespace": "other", "commonMetadata": {"labels": {"team": "a"}}}
    out = fd.prepare(objs, "workloads", "flux-system", spec,
                     lambda api, kind: kind != "Namespace")
    assert out[0]["metadata"]["namespace"] == "other"
    assert out[0]["metadata"]["labels"] == {"app": "x", "team": "a", **OWNER}
    assert "namespace" not in out[1]["metadata"]
    assert objs[0]["metadata"]["namespace"] == "llm"  # input untouched


def test_unsupported_spec_named():
    import pytest
    ks = {"metadata": {"name": "apps", "namespace": "flux-system"},
          "spec": {"path": "./apps", "postBuild": {"substitute": {"a": "b"}}}}
    with pytest.raises(fd.FluxDiffError, match="postBuild.*flux diff kustomization apps"):
        fd.diff_kustomization(None, ".", ks)


