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


def test_a_hook_the_release_left_behind_is_the_releases():
    """Helm keeps hooks apart from the manifest (release.hooks); a pre-install Job with the default
    delete policy (before-hook-creation) outlives its hook. It is the release's, not an unmanaged
    object outside the inventory (failing before: the certgen Job of a gateway chart was)."""
    from handover.sources import helm_storage

    job = (
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: gw-certgen\n"
        "  annotations: {helm.sh/hook: 'pre-install, pre-upgrade'}\n"
    )
    sa = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: gw-certgen\n"
    release = {
        "name": "gw",
        "namespace": "gw-system",
        "version": 1,
        "info": {"status": "deployed"},
        "chart": {"metadata": {"name": "gateway", "version": "1.0.0"}},
        "manifest": "apiVersion: v1\nkind: Service\nmetadata:\n  name: gw\n",
        "hooks": [{"name": "gw-certgen", "kind": "Job", "manifest": job},
                  {"name": "gw-certgen", "kind": "ServiceAccount", "manifest": "---\n" + sa}],
    }
    secret = {
        "metadata": {"name": "sh.helm.release.v1.gw.v1", "namespace": "gw-system"},
        "data": {"release": helm_storage.encode_release(release)},
    }
    rec = helm_storage.record_from_secret(secret)
    keys = {ownership.key(o, rec.namespace) for o in ownership.hook_objects(rec)}
    assert keys == {("batch", "Job", "gw-system", "gw-certgen"),
                    ("", "ServiceAccount", "gw-system", "gw-certgen")}
    # the manifest's objects stay the manifest's: hooks are not mixed into them
    assert [o["kind"] for o in ownership.manifest_objects(rec)] == ["Service"]
