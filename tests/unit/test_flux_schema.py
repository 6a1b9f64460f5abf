"""handover.flux.schema: the strict schema of the Flux objects (upstream API types)."""
from __future__ import annotations

import copy

from handover.flux import schema as flux_schema

HR = {
    "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
    "metadata": {"name": "loki", "namespace": "logging"},
    "spec": {"interval": "10m", "releaseName": "loki",
             "chart": {"spec": {"chart": "loki", "version": "6.6.4",
                                "sourceRef": {"kind": "HelmRepository", "name": "grafana",
                                              "namespace": "flux-system"}}},
             "values": {"anything": {"goes": [1, 2]}},
             "valuesFrom": [{"kind": "ConfigMap", "name": "loki-values"}],
             "upgrade": {"remediation": {"strategy": "rollback", "retries": 3}}},
}
KS = {
    "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
    "metadata": {"name": "apps", "namespace": "flux-system"},
    "spec": {"interval": "1m", "prune": False, "path": "./apps",
             "sourceRef": {"kind": "GitRepository", "name": "flux-system"}, "suspend": True},
}


def test_valid_objects_have_no_problems():
    """Source: helm-controller api/v2/helmrelease_types.go; kustomize-controller api/v1/kustomization_types.go."""
    assert flux_schema.validate(HR) == []
    assert flux_schema.validate(KS) == []


def test_typo_in_chart_spec_is_an_unknown_field_with_a_hint():
    """Source: helm-controller api/v2/helmrelease_types.go HelmChartTemplateSpec (version)."""
    hr = copy.deepcopy(HR)
    hr["spec"]["chart"]["spec"]["vesion"] = hr["spec"]["chart"]["spec"].pop("version")
    assert flux_schema.validate(hr) == [
        "spec.chart.spec.vesion: unknown field (did you mean version?)"]


def test_wrong_types_enums_patterns_and_missing_required_fields():
    """Source: kustomize-controller api/v1/kustomization_types.go (prune required, DeletionPolicy enum, Interval pattern)."""
    ks = copy.deepcopy(KS)
    del ks["spec"]["prune"]
    ks["spec"]["suspend"] = "yes"
    ks["spec"]["interval"] = "1 minute"
    ks["spec"]["deletionPolicy"] = "Keep"
    problems = flux_schema.validate(ks)
    assert "spec.prune: required field is missing" in problems
    assert "spec.suspend: expected boolean, got string ('yes')" in problems
    assert any(p.startswith("spec.interval: '1 minute' does not match") for p in problems)
    assert any(p.startswith("spec.deletionPolicy: 'Keep' is not one of") for p in problems)
    assert len(problems) == 4


def test_wrong_api_version_and_chart_xor_chartref():
    """Source: helm-controller api/v2/helmrelease_types.go (XValidation: either chart or chartRef)."""
    hr = copy.deepcopy(HR)
    hr["apiVersion"] = "helm.toolkit.fluxcd.io/v2beta1"
    hr["spec"]["chartRef"] = {"kind": "OCIRepository", "name": "x"}
    problems = flux_schema.validate(hr)
    assert problems[0].startswith("apiVersion: 'helm.toolkit.fluxcd.io/v2beta1'")
    assert any("either spec.chart or spec.chartRef" in p for p in problems)


def test_values_are_free_form_but_values_from_is_typed():
    """Source: helm-controller api/v2 HelmReleaseSpec.Values (apiextensionsv1.JSON); fluxcd/pkg apis/meta ValuesReference."""
    hr = copy.deepcopy(HR)
    hr["spec"]["valuesFrom"][0]["valueKey"] = "values.yaml"
    assert flux_schema.validate(hr) == [
        "spec.valuesFrom[0].valueKey: unknown field (did you mean valuesKey?)"]


def test_git_repository_url_pattern_and_unknown_kind():
    """Source: source-controller api/v1/gitrepository_types.go (URL Pattern ^(http|https|ssh)://)."""
    gr = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
          "metadata": {"name": "flux-system"},
          "spec": {"interval": "1m", "url": "git@github.com:me/repo", "ref": {"brnch": "main"}}}
    problems = flux_schema.validate(gr)
    assert any(p.startswith("spec.url: 'git@github.com:me/repo' does not match") for p in problems)
    assert "spec.ref.brnch: unknown field (did you mean branch?)" in problems
    assert flux_schema.validate({"kind": "Bucket"})[0].startswith("kind: 'Bucket' has no Flux schema")


def test_crd_schema_is_structural_with_status_subresource():
    """Source: helm-controller config/crd/bases/helm.toolkit.fluxcd.io_helmreleases.yaml (status subresource, values preserve-unknown)."""
    crd = flux_schema.crd("HelmRelease")
    assert crd["metadata"]["name"] == "helmreleases.helm.toolkit.fluxcd.io"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v2" and version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"]["properties"]["values"] == {
        "x-kubernetes-preserve-unknown-fields": True}
    assert schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True

    def walk(node):  # structural: every node with properties has type object
        if "properties" in node:
            assert node["type"] == "object"
            for sub in node["properties"].values():
                walk(sub)
        if "items" in node:
            walk(node["items"])
    walk(schema)


# --- the newer source kinds (OCIRepository, HelmChart, ExternalArtifact, ArtifactGenerator) ------

OCI = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
       "metadata": {"name": "gateway-helm", "namespace": "envoy-gateway-system"},
       "spec": {"interval": "24h", "url": "oci://registry.example.test/charts/gateway-helm",
                "layerSelector": {"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                                  "operation": "copy"},
                "ref": {"semver": ">= 1.8.0"}}}
GENERATOR = {"apiVersion": "source.extensions.fluxcd.io/v1beta1", "kind": "ArtifactGenerator",
             "metadata": {"name": "flux-system", "namespace": "flux-system"},
             "spec": {"sources": [{"alias": "repo", "kind": "GitRepository",
                                   "name": "flux-system"}],
                      "artifacts": [{"name": "apps", "originRevision": "@repo", "copy": [
                          {"from": "@repo/apps/base/**", "to": "@artifact/base/"}]}]}}
CHART = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmChart",
         "metadata": {"name": "podinfo", "namespace": "flux-system"},
         "spec": {"chart": "podinfo", "interval": "10m", "version": "6.x",
                  "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}}}
EXTERNAL = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "ExternalArtifact",
            "metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {"sourceRef": {"apiVersion": "source.extensions.fluxcd.io/v1beta1",
                                   "kind": "ArtifactGenerator", "name": "flux-system"}}}


def test_newer_source_kinds_validate():
    from handover.flux import schema as flux_schema
    for obj in (OCI, GENERATOR, CHART, EXTERNAL):
        assert flux_schema.validate(obj) == [], obj["kind"]
        assert flux_schema.is_flux_object(obj)


def test_newer_source_kinds_name_misspelt_fields():
    import copy

    from handover.flux import schema as flux_schema
    bad = copy.deepcopy(OCI)
    bad["spec"]["layerSelector"]["operaton"] = "copy"
    assert flux_schema.validate(bad) == [
        "spec.layerSelector.operaton: unknown field (did you mean operation?)"]
    gen = copy.deepcopy(GENERATOR)
    gen["spec"]["artifacts"][0]["copy"][0]["to"] = "base/"
    [p] = flux_schema.validate(gen)
    assert p.startswith("spec.artifacts[0].copy[0].to")
    ch = copy.deepcopy(CHART)
    del ch["spec"]["sourceRef"]
    assert any("spec.sourceRef" in p for p in flux_schema.validate(ch))
