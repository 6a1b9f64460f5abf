import pytest

from handover.gate.hazards import adoption
from handover.core import redact
from handover.core.inventory import Component, ObjectRef
from tests.unit.kube_fake import FakeKube, release_secret

LOKI = Component(name="loki", type="helm", risk="high", path="infrastructure/logging/loki",
                 namespaces=("logging",), release=ObjectRef("loki", "logging"),
                 helm_release=ObjectRef("loki", "logging"))


def hr(name="loki", namespace="logging", version="6.21.0", values=None, **spec):
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"chart": {"spec": {"chart": "loki", "version": version,
                                        "sourceRef": {"kind": "HelmRepository",
                                                      "name": "grafana"}}},
                     "values": values if values is not None else {"a": 1}, **spec}}


def kube(**kw):
    return FakeKube(release_secret("loki", "logging", revision=3, config={"a": 1}, **kw))


def test_matching_target_passes():
    assert adoption.check_target(kube(), LOKI, [hr()]) == []


def test_hr_in_flux_system_with_target_namespace_installs_second_release():
    obj = hr(namespace="flux-system", targetNamespace="logging")
    comp = Component(**{**LOKI.__dict__, "helm_release": ObjectRef("loki", "flux-system")})
    [f] = adoption.check_target(kube(), comp, [obj])
    assert f.subject == "HelmRelease flux-system/loki"
    assert "release name 'logging-loki'" in f.problem
    assert "storage namespace 'flux-system'" in f.problem
    assert "INSTALLS A SECOND RELEASE" in f.problem
    assert "spec.releaseName: loki" in f.fix and "spec.storageNamespace: logging" in f.fix


def test_storage_namespace_mismatch_alone():
    [f] = adoption.check_target(kube(), LOKI, [hr(storageNamespace="flux-system")])
    assert "storage namespace 'flux-system'" in f.problem and "release name" not in f.problem


def test_uninstalled_release_means_install():
    [f] = adoption.check_target(kube(status="uninstalled"), LOKI, [hr()])
    assert "status 'uninstalled'" in f.problem and "INSTALLS" in f.problem


def test_missing_helmrelease_is_a_finding():
    [f] = adoption.check_target(kube(), LOKI, [])
    assert "not found in the kustomize build" in f.problem


def test_values_equal_pass_and_differences_name_paths():
    assert adoption.check_values(kube(), LOKI, [hr()]) == []
    [f] = adoption.check_values(kube(), LOKI, [hr(values={"a": 2, "b": {"c": True}})])
    assert "revision 3" in f.problem and "2 path(s)" in f.problem
    # every value by its path and a short hash (handover.core.redact), booleans in clear
    assert f"a: live {redact.hashed(1)}, Git {redact.hashed(2)}" in f.problem
    assert "b.c: live (absent), Git true" in f.problem
    assert "helm get values loki -n logging" in f.fix


def test_values_from_configmap_merged_under_spec_values():
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "v", "namespace": "logging"}, "data": {"values.yaml": "a: 1\n"}}
    obj = hr(values={}, valuesFrom=[{"kind": "ConfigMap", "name": "v"}])
    assert adoption.check_values(kube(), LOKI, [obj, cm]) == []
    obj = hr(values={}, valuesFrom=[{"kind": "ConfigMap", "name": "missing"}])
    assert any("not found" in f.problem for f in adoption.check_values(kube(), LOKI, [obj]))


@pytest.mark.parametrize("version,expect", [("6.21.0", None), ("v6.21.0", None),
                                            ("6.22.0", "Git '6.22.0', deployed"),
                                            ("6.x", "not an exact version"),
                                            (None, "not an exact version")])
def test_chart_version(version, expect):
    found = adoption.check_chart_version(kube(), LOKI, [hr(version=version)])
    if expect is None:
        assert found == []
    else:
        [f] = found
        assert expect in f.problem and "6.21.0" in f.fix


def test_chart_name_differs():
    obj = hr()
    obj["spec"]["chart"]["spec"]["chart"] = "loki-stack"
    [f] = adoption.check_chart_version(kube(), LOKI, [obj])
    assert "spec.chart.spec.chart" in f.problem
