from handover.flux import schema as flux_schema


def test_misspelt_field_named_by_path():
    hr = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
          "metadata": {"name": "loki", "namespace": "logging"},
          "spec": {"interval": "30m", "chart": {"spec": {"chart": "loki", "vesion": "6.21.0",
                                                          "sourceRef": {"kind": "HelmRepository",
                                                                        "name": "grafana"}}}}}
    other = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}
    assert flux_schema.flux_objects([hr, other]) == [hr]
    [f] = flux_schema.check_objects([hr, other])
    assert f.subject == "HelmRelease logging/loki"
    assert f.problem.startswith("spec.chart.spec.vesion: unknown field (did you mean version?)")
    hr["spec"]["chart"]["spec"]["version"] = hr["spec"]["chart"]["spec"].pop("vesion")
    assert flux_schema.check_objects([hr]) == []


def test_kustomize_config_kustomization_is_not_a_flux_object():
    k = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    assert flux_schema.flux_objects([k]) == []
