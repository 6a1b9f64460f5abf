from handover.gate import ownership


def test_classify_owners():
    helm = {"metadata": {"labels": {"app.kubernetes.io/managed-by": "Helm"},
                         "annotations": {"meta.helm.sh/release-name": "loki",
                                         "meta.helm.sh/release-namespace": "logging"},
                         "managedFields": [{"manager": "helm"}]}}
    assert ownership.classify("x", helm).release == "logging/loki"
    kubectl = {"metadata": {"annotations": {ownership.LAST_APPLIED: "{}"}}}
    assert ownership.classify("x", kubectl).owner == "kubectl-apply"
    other = {"metadata": {"managedFields": [{"manager": "argocd"}]}}
    o = ownership.classify("x", other)
    assert o.owner == "field-managers" and o.managers == ["argocd"]
    assert ownership.classify("x", None).owner == "nobody"
    # the label alone does not make a Helm owner (Helm needs the annotations too)
    assert ownership.helm_owner({"metadata": {"labels": {
        "app.kubernetes.io/managed-by": "Helm"}}}) is None


def test_unclaimed_severity():
    fs = ownership.unclaimed_findings([ownership.Ownership("Deployment ns/a", "kubectl-apply"),
                                       ownership.Ownership("Secret ns/b", "field-managers")])
    assert [f.severity for f in fs] == ["error", "warning"]
