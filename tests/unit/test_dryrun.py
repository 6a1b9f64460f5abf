from handover.gate import dryrun


def test_order_puts_crds_and_namespaces_first():
    objs = [{"kind": "Deployment"}, {"kind": "Namespace"}, {"kind": "ConfigMap"},
            {"kind": "CustomResourceDefinition"}, {"kind": "PersistentVolume"}]
    assert [o["kind"] for o in dryrun.order(objs)] == [
        "CustomResourceDefinition", "Namespace", "PersistentVolume", "ConfigMap", "Deployment"]


def test_diff_paths_and_normalise():
    live = {"metadata": {"name": "a", "resourceVersion": "1", "managedFields": []},
            "spec": {"replicas": 1, "x": [1, 2]}, "status": {"ready": 1}}
    after = {"metadata": {"name": "a", "resourceVersion": "2"},
             "spec": {"replicas": 2, "x": [1, 3], "new": True}}
    assert dryrun.changed_paths(live, after) == [
        "spec.new", "spec.replicas", "spec.x[1]"]
    assert dryrun.changed_paths(live, live) == []


def test_findings_only_for_rejected_and_forbidden():
    rs = [dryrun.DryRunResult("Service a/b", "rejected", "422: bad port"),
          dryrun.DryRunResult("HelmRelease a/b", "not-served", dryrun.NOT_SERVED_FLUX),
          dryrun.DryRunResult("ConfigMap a/c", "configured", "changes data.x")]
    (f,) = dryrun.findings(rs, "workloads")
    assert f.subject == "Service a/b" and "422: bad port" in f.problem and "workloads" in f.fix
