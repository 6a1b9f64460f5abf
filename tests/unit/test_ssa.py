"""handover.flux.ssa: the one copy of kustomize-controller's pre-apply normalisation
(fluxcd/pkg ssa/normalize/normalize.go ``UnstructuredWithScheme``) and of the comparison
normalisation of a dry-run result. The gate's check 2 (handover.gate.dryrun) and the native flux
diff (handover.flux.diff) both use it; before, each had its own copy, and each copy missed a case
the other handled (the ``union`` tests below)."""
from __future__ import annotations

from handover.flux import diff as fd
from handover.flux import ssa
from handover.gate import dryrun


def _deploy(**pod: object) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": pod}}}



def test_flux_defaults_set_protocol_and_quantities():
    """Source: normalizeServiceProtoDefault / normalizePodProtoDefault (protocol TCP) and the
    typed round trip (quantities as strings)."""
    svc = {"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 80}]}}
    assert ssa.flux_defaults(svc)["spec"]["ports"][0]["protocol"] == "TCP"
    assert "protocol" not in svc["spec"]["ports"][0]  # the input is not modified
    dep = _deploy(containers=[{"name": "c", "ports": [{"containerPort": 1, "protocol": "UDP"}],
                               "resources": {"requests": {"cpu": 2}}}])
    c = ssa.flux_defaults(dep)["spec"]["template"]["spec"]["containers"][0]
    assert c["ports"][0]["protocol"] == "UDP" and c["resources"]["requests"]["cpu"] == "2"


def test_native_defaults_as_kustomize_controller_normalises():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}}
    ssa.native_defaults(svc)
    assert [p["protocol"] for p in svc["spec"]["ports"]] == ["TCP", "UDP"]
    dep = _deploy(containers=[{"name": "c", "ports": [{"containerPort": 8080}],
                               "resources": {"limits": {"cpu": 2, "memory": "1Gi"}}}])
    ssa.native_defaults(dep)
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["ports"][0]["protocol"] == "TCP" and c["resources"]["limits"]["cpu"] == "2"
    assert c["resources"]["limits"]["memory"] == "1Gi"
    sec = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"},
           "stringData": {"a": "b"}}
    ssa.native_defaults(sec)
    assert sec == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"},
                   "data": {"a": "Yg=="}}


def test_union_init_containers_in_the_flux_diff_path():
    """The flux diff's old copy (flux_diff.native_defaults) walked only ``containers``: an init
    container's port without protocol and its numeric quantity went to the server as written."""
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "main"}],
                "initContainers": [{"name": "init", "ports": [{"containerPort": 9}],
                                    "resources": {"requests": {"cpu": 1}}}]}}}}}}
    (prepared,) = fd.prepare([cron], "apps", "flux-system", {}, lambda a, k: True)
    init = prepared["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"][0]
    assert init["ports"][0]["protocol"] == "TCP"
    assert init["resources"]["requests"]["cpu"] == "1"


def test_union_secret_string_data_in_the_gate_path():
    """The gate's old copy (dryrun.flux_defaults) left a Secret's stringData as written, so the
    dry-run sent what kustomize-controller never sends (normalizeSecret folds it into data)."""
    sec = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "a"},
           "stringData": {"password": "pw"}, "data": {"user": "dQ=="}}
    out = ssa.flux_defaults(sec)
    assert "stringData" not in out
    assert out["data"] == {"user": "dQ==", "password": "cHc="}
    assert sec["stringData"] == {"password": "pw"}  # the input is not modified


def test_union_empty_metadata_maps_are_not_a_change_for_the_gate():
    """The flux diff's comparison dropped empty labels/annotations maps; the gate's did not and
    reported ``configured: changes metadata.annotations`` for a live ``annotations: {}``."""
    live = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "annotations": {}, "resourceVersion": "7"},
            "data": {"k": "v"}}
    after = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "c", "resourceVersion": "7"}, "data": {"k": "v"}}
    assert dryrun.changed_paths(live, after) == []
    after["data"]["k"] = "w"
    assert dryrun.changed_paths(live, after) == ["data.k"]


def test_comparable_drops_only_what_every_write_changes():
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "status": {"x": 1},
           "metadata": {"name": "c", "uid": "u", "generation": 3, "selfLink": "/x",
                        "creationTimestamp": "t", "managedFields": [{}], "resourceVersion": "1",
                        "labels": {"a": "b"}}}
    assert ssa.comparable(obj) == {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "c", "labels": {"a": "b"}}}
    assert obj["status"] == {"x": 1}  # the input is not modified


class _FakeResource:
    """Records the dynamic-client call (the real call is exercised on the rehearsal cluster in
    tests/rehearsal/test_dryrun*.py and tests/scenarios/test_phase2.py)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def server_side_apply(self, **kwargs: object) -> _FakeResource:
        self.calls.append(kwargs)
        return self

    def to_dict(self) -> dict:
        return {"applied": True}


def test_dry_run_apply_is_a_forced_dry_run_as_kustomize_controller():
    res = _FakeResource()
    assert ssa.dry_run_apply(res, {"metadata": {"name": "x"}}, "ns") == {"applied": True}
    assert res.calls == [{"body": {"metadata": {"name": "x"}}, "namespace": "ns",
                          "field_manager": "kustomize-controller", "force_conflicts": True,
                          "dry_run": "All"}]
    ssa.dry_run_apply(res, {"metadata": {"name": "y"}})
    assert "namespace" not in res.calls[-1]
