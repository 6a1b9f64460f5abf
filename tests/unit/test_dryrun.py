from handover.gate import dryrun


def test_order_puts_crds_and_namespaces_first():
    objs = [{"kind": "Deployment"}, {"kind": "Namespace"}, {"kind": "ConfigMap"},
            {"kind": "CustomResourceDefinition"}, {"kind": "PersistentVolume"}]
    assert [o["kind"] for o in dryrun.order(objs)] == [
        "CustomResourceDefinition", "Namespace", "PersistentVolume", "ConfigMap", "Deployment"]


def test_flux_defaults_set_protocol_and_quantities():
    svc = {"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 80}]}}
    assert dryrun.flux_defaults(svc)["spec"]["ports"][0]["protocol"] == "TCP"
    assert "protocol" not in svc["spec"]["ports"][0]  # the input is not modified
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {
        "containers": [{"name": "c", "ports": [{"containerPort": 1, "protocol": "UDP"}],
                        "resources": {"requests": {"cpu": 2}}}]}}}}
    c = dryrun.flux_defaults(dep)["spec"]["template"]["spec"]["containers"][0]
    assert c["ports"][0]["protocol"] == "UDP" and c["resources"]["requests"]["cpu"] == "2"


def test_diff_paths_and_normalise():
    live = {"metadata": {"name": "a", "resourceVersion": "1", "managedFields": []},
            "spec": {"replicas": 1, "x": [1, 2]}, "status": {"ready": 1}}
    after = {"metadata": {"name": "a", "resourceVersion": "2"},
             "spec": {"replicas": 2, "x": [1, 3], "new": True}}
    assert dryrun.diff_paths(dryrun.normalise(live), dryrun.normalise(after)) == [
        "spec.new", "spec.replicas", "spec.x[1]"]
    assert dryrun.diff_paths(dryrun.normalise(live), dryrun.normalise(live)) == []


def test_findings_only_for_rejected_and_forbidden():
    rs = [dryrun.DryRunResult("Service a/b", "rejected", "422: bad port"),
          dryrun.DryRunResult("HelmRelease a/b", "not-served", dryrun.NOT_SERVED_FLUX),
          dryrun.DryRunResult("ConfigMap a/c", "configured", "changes data.x")]
    (f,) = dryrun.findings(rs, "workloads")
    assert f.subject == "Service a/b" and "422: bad port" in f.problem and "workloads" in f.fix
