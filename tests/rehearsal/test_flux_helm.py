"""The helm-controller stand-in against a real rehearsal cluster, real helm and a chart repo over HTTP.

Each test names the upstream helm-controller source of the behaviour it checks."""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from handover.flux import rules as flux
from handover.sources import helm_storage
from handover.core import tools
from handover.core.kube import Kube
from handover.rehearsal.flux import install
from handover.rehearsal.flux.runtime import Api
from handover.rehearsal.flux.testkit import ChartRepo, wait_for
from tests.rehearsal_support import rehearsal_cluster

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]

# a template that fails to render unless .Values.needed is set: helm writes no release
NEEDS = "{{- if not .Values.needed }}{{ fail \"value 'needed' is required\" }}{{- end }}\n"


GADGET_CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {0}.example.test
spec:
  group: example.test
  names: {{kind: {0}, plural: {0}, singular: {0}x}}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    state = tmp_path_factory.mktemp("flux-helm")
    with rehearsal_cluster(state / "cluster") as cluster:
        repo = ChartRepo(state / "charts")
        try:
            repo.add("demo", "1.0.0")
            repo.add("demo", "1.1.0")
            repo.add("demo", "2.0.0", broken=True)
            repo.add("demo", "1.2.0", templates={"needs.yaml": NEEDS})
            repo.add("labelled", "1.0.0", chart_label=True, files={
                "values-prod.yaml": yaml.safe_dump({"greeting": "from-values-prod"})})
            repo.add("broken", "1.0.0", broken=True)
            repo.add("crdful", "1.0.0")
            repo.add("crdful", "1.1.0", files={"crds/gadgets.yaml": GADGET_CRD.format("gadgets"),
                                               "crds/widgets.yaml": GADGET_CRD.format("widgets")})
            install(cluster, state / "flux")
            api = Api(str(cluster.kubeconfig), cluster.context)
            kube = Kube(cluster.kubeconfig, cluster.context)
            api.apply({"apiVersion": flux.SOURCE_API, "kind": "HelmRepository",
                       "metadata": {"name": "charts", "namespace": "flux-system"},
                       "spec": {"interval": "10m", "url": repo.url}}, "test")
            wait_for(lambda: flux.is_ready(api.get(flux.SOURCE_API, "HelmRepository", "charts",
                                                   "flux-system")), what="HelmRepository Ready")
            yield {"cluster": cluster, "api": api, "kube": kube, "repo": repo, "state": state}
        finally:
            repo.close()


def namespace(env, name: str) -> str:
    env["api"].apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                     "test")
    return name


def helm_cli(env, *args: str) -> subprocess.CompletedProcess:
    c = env["cluster"]
    return subprocess.run([str(tools.helm()), *args, "--kubeconfig", str(c.kubeconfig),
                           "--kube-context", c.context], capture_output=True, text=True,
                          check=True)


def hr_obj(name: str, ns: str, version: str = "1.0.0", values: dict | None = None,
           chart: str = "demo", **spec) -> dict:
    return {"apiVersion": flux.HELM_API, "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"interval": "10m",
                     "chart": {"spec": {"chart": chart, "version": version,
                                        "sourceRef": {"kind": "HelmRepository", "name": "charts",
                                                      "namespace": "flux-system"}}},
                     "values": values if values is not None else
                     {"replicas": 1, "greeting": "hello", "image": "example/app:1.0"},
                     **spec}}


def get_hr(env, name, ns):
    return env["api"].get(flux.HELM_API, "HelmRelease", name, ns)


def ready_current(env, name, ns):
    hr = get_hr(env, name, ns)
    return hr if hr and flux.is_ready(hr) else None


def ready_false(env, name, ns):
    hr = get_hr(env, name, ns)
    c = flux.condition(hr or {}, "Ready")
    if c and c["status"] == "False" and c.get("observedGeneration") == hr["metadata"][
            "generation"]:
        return hr
    return None


def pod_uids(env, ns: str, app: str) -> set[str]:
    pods = env["kube"].list("v1", "Pod", ns, label_selector=f"app={app}")
    return {p["metadata"]["uid"] for p in pods if not p["metadata"].get("deletionTimestamp")}


def running_pods(env, ns, app, n=1):
    pods = [p for p in env["kube"].list("v1", "Pod", ns, label_selector=f"app={app}")
            if not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") == "Running"]
    return {p["metadata"]["uid"] for p in pods} if len(pods) == n else None


def request_reconcile(env, name, ns, token):
    env["api"].patch(flux.HELM_API, "HelmRelease", name, ns,
                     {"metadata": {"annotations": {flux.RECONCILE_REQUESTED_AT: token}}})
    return wait_for(lambda: (get_hr(env, name, ns).get("status") or {}).get(
        "lastHandledReconcileAt") == token and get_hr(env, name, ns),
        what=f"reconcile request {token} handled")


def test_install_when_no_release_with_origin_labels_and_status(env):
    """Source: helm-controller internal/reconcile/state.go (ReleaseStatusAbsent -> install); internal/postrender/origin_labels.go."""
    ns = namespace(env, "h-install")
    env["api"].apply(hr_obj("web", ns), "test")
    hr = wait_for(lambda: ready_current(env, "web", ns), what="HelmRelease web Ready")
    st = hr["status"]
    assert st["storageNamespace"] == ns
    assert st["history"][0]["version"] == 1 and st["history"][0]["chartVersion"] == "1.0.0"
    assert st["history"][0]["status"] == "deployed"
    assert st["lastAttemptedRevision"] == "1.0.0" and st["lastAttemptedReleaseAction"] == "install"
    released = flux.condition(hr, "Released")
    assert released["status"] == "True" and released["reason"] == "InstallSucceeded"
    assert released["observedGeneration"] == hr["metadata"]["generation"]
    assert flux.FINALIZER in hr["metadata"]["finalizers"]
    rel = helm_storage.latest(env["kube"], "web", ns)
    assert (rel.revision, rel.status, rel.chart_version) == (1, "deployed", "1.0.0")
    dep = env["kube"].get("apps/v1", "Deployment", "web", ns)
    labels = dep["metadata"]["labels"]
    assert labels[flux.HELM_ORIGIN_NAME] == "web" and labels[flux.HELM_ORIGIN_NAMESPACE] == ns
    assert flux.HELM_ORIGIN_NAME not in dep["spec"]["template"]["metadata"]["labels"]
    assert flux.HELM_ORIGIN_NAME not in dep["spec"]["selector"]["matchLabels"]
    cm = env["kube"].get("v1", "ConfigMap", "web-config", ns)
    assert cm["metadata"]["labels"][flux.HELM_ORIGIN_NAME] == "web"


def test_adoption_of_cli_release_is_upgrade_to_n_plus_1_with_same_pods(env):
    """Source: helm-controller internal/reconcile/state.go (release in storage, no history -> unmanaged -> upgrade); fluxcd/helm-controller#1096."""
    ns = namespace(env, "h-adopt")
    values = {"replicas": 1, "greeting": "hello", "image": "example/app:1.0"}
    helm_cli(env, "install", "app", "demo", "--repo", env["repo"].url, "--version", "1.0.0",
             "-n", ns, "--set", "greeting=hello", "--set", "extra=cli-only")
    helm_cli(env, "upgrade", "app", "demo", "--repo", env["repo"].url, "--version", "1.0.0",
             "-n", ns, "--reuse-values")
    before = wait_for(lambda: running_pods(env, ns, "app"), what="CLI release pods Running")
    assert helm_storage.latest(env["kube"], "app", ns).revision == 2
    env["api"].apply(hr_obj("app", ns, values=values), "test")
    hr = wait_for(lambda: ready_current(env, "app", ns), what="adopted HelmRelease Ready")
    assert hr["status"]["history"][0]["version"] == 3
    assert flux.condition(hr, "Released")["reason"] == "UpgradeSucceeded"
    rel = helm_storage.latest(env["kube"], "app", ns)
    assert (rel.revision, rel.status) == (3, "deployed")
    # values reset to spec.values: the CLI-only --set is gone (no preserveValues)
    assert rel.config == values
    assert pod_uids(env, ns, "app") == before
    # nothing changed -> a reconcile request does not upgrade again
    request_reconcile(env, "app", ns, "2026-01-01T00:00:00Z")
    assert helm_storage.latest(env["kube"], "app", ns).revision == 3
    assert pod_uids(env, ns, "app") == before


def test_preserve_values_keeps_cli_values(env):
    """Source: helm-controller api/v2 Upgrade.PreserveValues (helm --reuse-values) in internal/action/upgrade.go."""
    ns = namespace(env, "h-preserve")
    helm_cli(env, "install", "keep", "demo", "--repo", env["repo"].url, "--version", "1.0.0",
             "-n", ns, "--set", "extra=cli-only")
    env["api"].apply(hr_obj("keep", ns, values={"replicas": 1},
                            upgrade={"preserveValues": True}), "test")
    wait_for(lambda: ready_current(env, "keep", ns), what="HelmRelease keep Ready")
    rel = helm_storage.latest(env["kube"], "keep", ns)
    assert rel.revision == 2
    assert rel.config.get("extra") == "cli-only"


def test_different_values_recreate_pods(env):
    """Source: helm-controller internal/action/verify.go VerifyRelease (config digest changed -> out of sync -> upgrade)."""
    ns = namespace(env, "h-values")
    env["api"].apply(hr_obj("vals", ns), "test")
    wait_for(lambda: ready_current(env, "vals", ns), what="HelmRelease vals Ready")
    before = wait_for(lambda: running_pods(env, ns, "vals"), what="pods Running")
    env["api"].apply(hr_obj("vals", ns, values={"replicas": 1, "greeting": "changed",
                                                "image": "example/app:1.0"}), "test")
    hr = wait_for(lambda: (h := ready_current(env, "vals", ns))
                  and h["status"]["history"][0]["version"] == 2 and h,
                  what="upgrade to revision 2")
    assert hr["status"]["lastAttemptedReleaseAction"] == "upgrade"
    after = wait_for(lambda: (u := running_pods(env, ns, "vals")) and u != before and u,
                     what="new pods")
    assert after.isdisjoint(before)


def test_missing_chart_version_is_ready_false_without_release_change(env):
    """Source: source-controller internal/controller/helmchart_controller.go (no chart version found); helm-controller internal/controller/helmrelease_controller.go reconcileRelease isSourceReady -> Ready False "SourceNotReady"."""
    ns = namespace(env, "h-missing")
    env["api"].apply(hr_obj("ghost", ns, version="9.9.9"), "test")
    hr = wait_for(lambda: ready_false(env, "ghost", ns), what="Ready False")
    c = flux.condition(hr, "Ready")
    assert c["reason"] == "SourceNotReady" and "9.9.9" in c["message"]
    assert helm_storage.latest(env["kube"], "ghost", ns) is None
    # an existing release is not touched by a bad version either
    env["api"].apply(hr_obj("ghost", ns, version="1.0.0"), "test")
    wait_for(lambda: ready_current(env, "ghost", ns), what="Ready after fixing the version")
    env["api"].apply(hr_obj("ghost", ns, version="9.9.9"), "test")
    wait_for(lambda: ready_false(env, "ghost", ns), what="Ready False again")
    assert helm_storage.latest(env["kube"], "ghost", ns).revision == 1


def test_release_name_and_storage_namespace_rules(env):
    """Source: helm-controller api/v2/helmrelease_types.go GetReleaseName/GetStorageNamespace/GetReleaseNamespace."""
    hr_ns = namespace(env, "h-names")
    target = namespace(env, "h-target")
    env["api"].apply(hr_obj("svc", hr_ns, targetNamespace=target), "test")
    hr = wait_for(lambda: ready_current(env, "svc", hr_ns), what="HelmRelease svc Ready")
    # release "<targetNamespace>-<name>" stored in the HelmRelease's namespace, objects in target
    assert hr["status"]["history"][0]["name"] == f"{target}-svc"
    assert helm_storage.latest(env["kube"], f"{target}-svc", hr_ns) is not None
    assert helm_storage.latest(env["kube"], f"{target}-svc", target) is None
    assert env["kube"].get("apps/v1", "Deployment", f"{target}-svc", target) is not None


def test_values_from_configmap_then_spec_values(env):
    """Source: helm-controller internal/chartutil/values.go ChartValuesFromReferences (valuesFrom in order, spec.values last)."""
    ns = namespace(env, "h-valuesfrom")
    env["api"].apply({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "vals", "namespace": ns},
                      "data": {"values.yaml": yaml.safe_dump({"greeting": "from-cm",
                                                              "image": "example/app:2.0"})}},
                     "test")
    env["api"].apply(hr_obj("vf", ns, values={"greeting": "from-spec"},
                            valuesFrom=[{"kind": "ConfigMap", "name": "vals"}]), "test")
    wait_for(lambda: ready_current(env, "vf", ns), what="HelmRelease vf Ready")
    rel = helm_storage.latest(env["kube"], "vf", ns)
    assert rel.config == {"greeting": "from-spec", "image": "example/app:2.0"}


def test_suspend_stops_reconciling_and_reconcile_request_is_acknowledged(env):
    """Source: helm-controller internal/controller/helmrelease_controller.go (suspend: skip); fluxcd/pkg apis/meta ReconcileRequestStatus."""
    ns = namespace(env, "h-suspend")
    env["api"].apply(hr_obj("sus", ns), "test")
    wait_for(lambda: ready_current(env, "sus", ns), what="Ready")
    request_reconcile(env, "sus", ns, "token-1")
    env["api"].apply(hr_obj("sus", ns, values={"greeting": "never"}, suspend=True), "test")
    env["api"].patch(flux.HELM_API, "HelmRelease", "sus", ns,
                     {"metadata": {"annotations": {flux.RECONCILE_REQUESTED_AT: "token-2"}}})
    with pytest.raises(TimeoutError):
        wait_for(lambda: (get_hr(env, "sus", ns)["status"].get("lastHandledReconcileAt")
                          == "token-2"), timeout=6, what="no reconcile while suspended")
    assert helm_storage.latest(env["kube"], "sus", ns).revision == 1
    env["api"].patch(flux.HELM_API, "HelmRelease", "sus", ns, {"spec": {"suspend": False}})
    wait_for(lambda: helm_storage.latest(env["kube"], "sus", ns).revision == 2,
             what="upgrade after resume")


def test_delete_uninstalls_unless_suspended(env):
    """Source: helm-controller internal/controller/helmrelease_controller.go reconcileDelete (suspended or never reconciled: orphan)."""
    ns = namespace(env, "h-delete")
    for n in ("gone", "kept"):
        env["api"].apply(hr_obj(n, ns), "test")
    for n in ("gone", "kept"):
        wait_for(lambda n=n: ready_current(env, n, ns), what=f"{n} Ready")
    env["api"].patch(flux.HELM_API, "HelmRelease", "kept", ns, {"spec": {"suspend": True}})
    wait_for(lambda: get_hr(env, "kept", ns)["spec"].get("suspend"), what="suspended")
    for n in ("gone", "kept"):
        env["api"].delete(flux.HELM_API, "HelmRelease", n, ns)
    for n in ("gone", "kept"):
        wait_for(lambda n=n: get_hr(env, n, ns) is None, what=f"HelmRelease {n} deleted")
    assert helm_storage.latest(env["kube"], "gone", ns) is None
    assert env["kube"].get("apps/v1", "Deployment", "gone", ns) is None
    assert helm_storage.latest(env["kube"], "kept", ns).status == "deployed"
    assert env["kube"].get("apps/v1", "Deployment", "kept", ns) is not None


def test_install_remediation_as_the_state_table(env):
    """Source: helm-controller internal/reconcile/atomic_release.go actionForState (ReleaseStatusFailed: uninstall remediation while retries remain; RetriesExhausted && !MustRemediateLastFailure -> ErrExceededMaxRetries), api/v2 InstallRemediation.MustRemediateLastFailure (default false), uninstall_remediation.go."""
    ns = namespace(env, "h-inst-fail")
    env["api"].apply(hr_obj("bad", ns, chart="broken",
                            install={"remediation": {"retries": 1}}), "test")
    hr = wait_for(lambda: (h := get_hr(env, "bad", ns)) and
                  (flux.condition(h, "Stalled") or {}).get("status") == "True" and h,
                  timeout=120, what="Stalled after the last install failure")
    st = hr["status"]
    assert st["installFailures"] == 2
    assert flux.condition(hr, "Stalled")["reason"] == "RetriesExceeded"
    assert flux.condition(hr, "Ready")["status"] == "False"
    # the first failure was remediated by an uninstall ...
    rem = flux.condition(hr, "Remediated")
    assert rem and rem["reason"] == "UninstallSucceeded"
    # ... the last one is NOT (remediateLastFailure defaults to false): the failed release of the
    # second install stays in storage, as on a real cluster
    rel = helm_storage.latest(env["kube"], "bad", ns)
    assert rel is not None and rel.status == "failed"
    assert st["history"][0]["version"] == rel.revision and st["history"][0]["status"] == "failed"
    # retries exhausted: no third attempt without a spec change
    request_reconcile(env, "bad", ns, "after-exhausted")
    hr = get_hr(env, "bad", ns)
    assert hr["status"]["installFailures"] == 2
    assert helm_storage.latest(env["kube"], "bad", ns).revision == rel.revision


def test_install_remediate_last_failure_uninstalls(env):
    """Source: helm-controller internal/reconcile/atomic_release.go actionForState (RetriesExhausted but MustRemediateLastFailure -> uninstall remediation), api/v2 InstallRemediation.RemediateLastFailure."""
    ns = namespace(env, "h-inst-last")
    env["api"].apply(hr_obj("bad", ns, chart="broken", install={
        "remediation": {"retries": 0, "remediateLastFailure": True}}), "test")
    hr = wait_for(lambda: (h := get_hr(env, "bad", ns)) and
                  (flux.condition(h, "Stalled") or {}).get("status") == "True" and h,
                  timeout=90, what="Stalled after the remediated last failure")
    assert hr["status"]["installFailures"] == 1
    assert flux.condition(hr, "Remediated")["reason"] == "UninstallSucceeded"
    assert helm_storage.latest(env["kube"], "bad", ns) is None


def test_upgrade_remediation_rolls_back_to_the_previous_snapshot(env):
    """Source: helm-controller internal/reconcile/atomic_release.go actionForState (Failed -> rollback to History.Previous; OutOfSync retried until RetriesExhausted; UpgradeRemediation.MustRemediateLastFailure default Retries > 0), rollback_remediation.go, release.go summarize (Remediated -> Ready False)."""
    ns = namespace(env, "h-up-fail")
    env["api"].apply(hr_obj("roll", ns, upgrade={"remediation": {"retries": 1}}), "test")
    wait_for(lambda: ready_current(env, "roll", ns), what="Ready at 1.0.0")
    env["api"].apply(hr_obj("roll", ns, version="2.0.0",
                            upgrade={"remediation": {"retries": 1}}), "test")
    hr = wait_for(lambda: (h := get_hr(env, "roll", ns)) and
                  (flux.condition(h, "Stalled") or {}).get("status") == "True" and h,
                  timeout=150, what="Stalled after two failed upgrades, each rolled back")
    st = hr["status"]
    assert st["upgradeFailures"] == 2
    revs = [(r.revision, r.status, r.chart_version)
            for r in helm_storage.list_revisions(env["kube"], "roll", ns)]
    # 1 deployed, 2 failed, 3 rollback to 1, 4 failed, 5 rollback to 3 (the last failure is
    # remediated too: retries > 0)
    assert [r[2] for r in revs] == ["1.0.0", "2.0.0", "1.0.0", "2.0.0", "1.0.0"]
    assert revs[-1][1] == "deployed"
    assert flux.condition(hr, "Remediated")["reason"] == "RollbackSucceeded"
    ready = flux.condition(hr, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "RollbackSucceeded"


def test_rolled_back_release_with_old_values_is_not_in_sync(env):
    """Source: helm-controller internal/release/observation.go ObserveRelease (configDigest of the release's own config), internal/action/verify.go VerifyRelease (ErrConfigDigest -> out of sync)."""
    ns = namespace(env, "h-old-values")
    good = {"replicas": 1, "greeting": "hello", "image": "example/app:1.0"}
    env["api"].apply(hr_obj("vals", ns, values=good,
                            upgrade={"remediation": {"retries": 1}}), "test")
    wait_for(lambda: ready_current(env, "vals", ns), what="Ready")
    # replicas -1: the API server refuses the Deployment, helm writes a failed release
    env["api"].apply(hr_obj("vals", ns, values={**good, "replicas": -1},
                            upgrade={"remediation": {"retries": 1}}), "test")
    hr = wait_for(lambda: (h := get_hr(env, "vals", ns)) and
                  (flux.condition(h, "Stalled") or {}).get("status") == "True" and h,
                  timeout=150, what="Stalled")
    st = hr["status"]
    cur = st["history"][0]
    rel = helm_storage.latest(env["kube"], "vals", ns)
    assert rel.config == good and rel.status == "deployed"
    # the release running the old values is not taken for the desired state: its snapshot
    # digests its own config, the upgrade was retried, and Ready never turned True
    assert cur["configDigest"] != st["lastAttemptedConfigDigest"]
    assert st["upgradeFailures"] == 2
    assert flux.condition(hr, "Ready")["status"] == "False"


def test_failed_adoption_upgrade_that_wrote_no_release_stays_not_ready(env):
    """Source: helm-controller internal/reconcile/upgrade.go Reconcile (a failure that stored no release is returned, not counted), release.go observeRelease (only releases written during the action reach status.history), state.go (no history -> unmanaged)."""
    ns = namespace(env, "h-adopt-norel")
    helm_cli(env, "install", "nr", "demo", "--repo", env["repo"].url, "--version", "1.0.0",
             "-n", ns)
    env["api"].apply(hr_obj("nr", ns, version="1.2.0"), "test")  # fails to render
    hr = wait_for(lambda: ready_false(env, "nr", ns), what="Ready False")
    # several resyncs: it must never read as succeeded from the CLI's revision 1
    for i in range(3):
        hr = request_reconcile(env, "nr", ns, f"norel-{i}")
        ready = flux.condition(hr, "Ready")
        assert ready["status"] == "False" and ready["reason"] == "UpgradeFailed", ready
        assert not (hr["status"].get("history") or []), hr["status"].get("history")
        assert "UpgradeSucceeded" not in json.dumps(hr["status"]["conditions"])
    assert hr["status"].get("upgradeFailures", 0) == 0 and hr["status"]["failures"] >= 3
    assert helm_storage.latest(env["kube"], "nr", ns).revision == 1


def test_failed_adoption_upgrade_stalls_without_rollback_target(env):
    """Source: helm-controller internal/reconcile/atomic_release.go actionForState (ReleaseStatusUnmanaged clears the history; Failed + rollback with no History.Previous -> ErrMissingRollbackTarget -> Stalled MissingRollbackTarget)."""
    ns = namespace(env, "h-adopt-fail")
    helm_cli(env, "install", "af", "demo", "--repo", env["repo"].url, "--version", "1.0.0",
             "-n", ns)
    env["api"].apply(hr_obj("af", ns, version="2.0.0",
                            upgrade={"remediation": {"retries": 1}}), "test")
    hr = wait_for(lambda: (h := get_hr(env, "af", ns)) and
                  (flux.condition(h, "Stalled") or {}).get("status") == "True" and h,
                  timeout=90, what="Stalled")
    assert flux.condition(hr, "Stalled")["reason"] == "MissingRollbackTarget"
    ready = flux.condition(hr, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "UpgradeFailed"
    # no recovery to the CLI revision: revision 2 (written by the controller) stays failed
    revs = [(r.revision, r.status) for r in helm_storage.list_revisions(env["kube"], "af", ns)]
    assert revs == [(1, "deployed"), (2, "failed")]
    assert [h["version"] for h in hr["status"]["history"]] == [2]
    assert flux.condition(hr, "Remediated") is None


def test_pending_release_is_unlocked_then_upgraded(env):
    """Source: helm-controller internal/reconcile/state.go (pending-* -> ReleaseStatusLocked) and unlock.go."""
    ns = namespace(env, "h-pending")
    helm_cli(env, "install", "stuck", "demo", "--repo", env["repo"].url, "--version", "1.0.0",
             "-n", ns)
    name = helm_storage.secret_name("stuck", 1)
    secret = env["kube"].get("v1", "Secret", name, ns)
    rel = helm_storage.decode_release(secret["data"]["release"])
    rel["info"]["status"] = "pending-upgrade"
    env["api"].patch("v1", "Secret", name, ns,
                     {"metadata": {"labels": {"status": "pending-upgrade"}},
                      "data": {"release": helm_storage.encode_release(rel)}})
    env["api"].apply(hr_obj("stuck", ns), "test")
    wait_for(lambda: ready_current(env, "stuck", ns), what="Ready after unlock")
    revs = helm_storage.list_revisions(env["kube"], "stuck", ns)
    # helm refuses to upgrade a pending release, so revision 2 exists only after the unlock;
    # helm then marks revision 1 superseded
    assert [(r.revision, r.status) for r in revs] == [(1, "superseded"), (2, "deployed")]
    assert json.dumps(revs[-1].config)  # serialisable config


def test_values_files_replace_values_and_suffix_the_chart_version(env):
    """Source: source-controller internal/controller/helmchart_controller.go buildFromHelmRepository (valuesFiles -> VersionMetadata = HelmChart generation), internal/helm/chart/builder_remote.go mergeChartValues (the merged files replace values.yaml); the version reaches .Chart.Version (helm.sh/chart on the pod template): a rollout."""
    ns = namespace(env, "h-valuesfiles")
    env["api"].apply(hr_obj("lab", ns, chart="labelled", values={}), "test")
    hr = wait_for(lambda: ready_current(env, "lab", ns), what="Ready without valuesFiles")
    assert hr["status"]["history"][0]["chartVersion"] == "1.0.0"
    before = wait_for(lambda: running_pods(env, ns, "lab"), what="pods Running")
    dep = env["kube"].get("apps/v1", "Deployment", "lab", ns)
    assert dep["spec"]["template"]["metadata"]["labels"]["helm.sh/chart"] == "labelled-1.0.0"
    obj = hr_obj("lab", ns, chart="labelled", values={})
    obj["spec"]["chart"]["spec"]["valuesFiles"] = ["values.yaml", "values-prod.yaml"]
    env["api"].apply(obj, "test")
    hr = wait_for(lambda: (h := ready_current(env, "lab", ns))
                  and h["status"]["history"][0]["version"] == 2 and h, what="upgrade")
    # HelmChart generation 2 (its spec changed once): version 1.0.0+2
    assert hr["status"]["history"][0]["chartVersion"] == "1.0.0+2"
    assert hr["status"]["lastAttemptedRevision"] == "1.0.0+2"
    rel = helm_storage.latest(env["kube"], "lab", ns)
    assert rel.chart_version == "1.0.0+2"
    dep = env["kube"].get("apps/v1", "Deployment", "lab", ns)
    tmpl = dep["spec"]["template"]["metadata"]
    assert tmpl["labels"]["helm.sh/chart"] == "labelled-1.0.0_2"
    assert tmpl["annotations"]["greeting"] == "from-values-prod"
    after = wait_for(lambda: (u := running_pods(env, ns, "lab")) and u != before and u,
                     what="pods replaced by the version suffix")
    assert after.isdisjoint(before)


def test_values_files_missing_is_chart_error_unless_ignored(env):
    """Source: source-controller internal/helm/chart/builder_remote.go mergeChartValues ("no values file found at path"), api/v1 HelmChartSpec.IgnoreMissingValuesFiles."""
    ns = namespace(env, "h-valuesfiles-missing")
    obj = hr_obj("miss", ns, chart="labelled", values={})
    obj["spec"]["chart"]["spec"]["valuesFiles"] = ["values.yaml", "nope.yaml"]
    env["api"].apply(obj, "test")
    hr = wait_for(lambda: ready_false(env, "miss", ns), what="Ready False")
    c = flux.condition(hr, "Ready")
    assert c["reason"] == "SourceNotReady" and "nope.yaml" in c["message"]
    assert helm_storage.latest(env["kube"], "miss", ns) is None
    obj["spec"]["chart"]["spec"]["ignoreMissingValuesFiles"] = True
    env["api"].apply(obj, "test")
    hr = wait_for(lambda: ready_current(env, "miss", ns), what="Ready with the missing file ignored")
    assert hr["status"]["history"][0]["chartVersion"] == "1.0.0+2"


def test_post_renderer_patch_on_pod_template_is_a_rollout(env):
    """Source: helm-controller internal/postrender/build.go BuildPostRenderers (kustomize post-renderers, then commonMetadata, then origin labels), kustomize.go Kustomize.Run, common_renderer.go; internal/reconcile/state.go (post-renderers digest changed -> out of sync)."""
    ns = namespace(env, "h-postrender")
    env["api"].apply(hr_obj("pr", ns), "test")
    wait_for(lambda: ready_current(env, "pr", ns), what="Ready without post-renderers")
    before = wait_for(lambda: running_pods(env, ns, "pr"), what="pods Running")
    patch = ("- op: add\n  path: /spec/template/metadata/annotations/patched-by\n"
             "  value: post-renderer\n")
    env["api"].apply(hr_obj("pr", ns, postRenderers=[{"kustomize": {
        "patches": [{"target": {"kind": "Deployment"}, "patch": patch}],
        "images": [{"name": "example/app", "newTag": "1.1"}]}}],
        commonMetadata={"labels": {"team": "platform"}}), "test")
    hr = wait_for(lambda: (h := ready_current(env, "pr", ns))
                  and h["status"]["history"][0]["version"] == 2 and h,
                  what="upgrade for the new post-renderers")
    assert hr["status"]["observedPostRenderersDigest"]
    dep = env["kube"].get("apps/v1", "Deployment", "pr", ns)
    tmpl = dep["spec"]["template"]
    assert tmpl["metadata"]["annotations"]["patched-by"] == "post-renderer"
    assert tmpl["spec"]["containers"][0]["image"] == "example/app:1.1"
    # commonMetadata and origin labels on metadata only, not on the pod template
    assert dep["metadata"]["labels"]["team"] == "platform"
    assert dep["metadata"]["labels"][flux.HELM_ORIGIN_NAME] == "pr"
    assert "team" not in tmpl["metadata"]["labels"]
    assert env["kube"].get("v1", "ConfigMap", "pr-config", ns)["metadata"]["labels"]["team"] \
        == "platform"
    after = wait_for(lambda: (u := running_pods(env, ns, "pr")) and u != before and u,
                     what="pods replaced by the post-renderer patch")
    assert after.isdisjoint(before)


def test_reconcile_strategy_revision_suffixes_the_git_commit(env, tmp_path):
    """Source: source-controller internal/controller/helmchart_controller.go buildFromTarballArtifact (ReconcileStrategyRevision -> VersionMetadata = first 12 hex of the commit), internal/helm/chart/builder_local.go (SetMetadata)."""
    from handover.rehearsal.flux.testkit import GitRemote
    ns = namespace(env, "h-revision")
    git = GitRemote(tmp_path / "git")
    try:
        chart = env["repo"].root / "src" / "labelled-1.0.0"
        files = {f"charts/rev/{p.relative_to(chart)}": p.read_text()
                 for p in chart.rglob("*") if p.is_file()}
        sha = git.write(files, "chart")
        env["api"].apply({"apiVersion": flux.SOURCE_API, "kind": "GitRepository",
                          "metadata": {"name": "charts-git", "namespace": ns},
                          "spec": {"interval": "10m", "url": git.url,
                                   "ref": {"branch": "main"}}}, "test")
        obj = hr_obj("rev", ns, values={})
        obj["spec"]["chart"]["spec"] = {"chart": "./charts/rev", "reconcileStrategy": "Revision",
                                        "sourceRef": {"kind": "GitRepository",
                                                      "name": "charts-git"}}
        env["api"].apply(obj, "test")
        hr = wait_for(lambda: ready_current(env, "rev", ns), timeout=90, what="Ready")
        assert hr["status"]["history"][0]["chartVersion"] == f"1.0.0+{sha[:12]}"
        dep = env["kube"].get("apps/v1", "Deployment", "rev", ns)
        assert dep["spec"]["template"]["metadata"]["labels"]["helm.sh/chart"] == \
            f"labelled-1.0.0_{sha[:12]}"
    finally:
        git.close()


def test_retry_on_failure_strategy_is_refused_by_name(env):
    """Source: helm-controller api/v2 Strategy (RetryOnFailure): not emulated, so the stand-in refuses it (handover/rehearsal/fidelity.py FEATURES hr-retry-on-failure) instead of remediating like RemediateOnFailure."""
    ns = namespace(env, "h-retry")
    env["api"].apply(hr_obj("rt", ns, upgrade={"strategy": {"name": "RetryOnFailure"}}), "test")
    hr = wait_for(lambda: ready_false(env, "rt", ns), what="Ready False")
    c = flux.condition(hr, "Ready")
    assert c["reason"] == "UnemulatedFeature" and "RetryOnFailure" in c["message"]
    assert helm_storage.latest(env["kube"], "rt", ns) is None


def test_chart_name_change_reinstalls_the_release(env):
    """Source: helm-controller internal/action/verify.go ReleaseTargetChanged (chart name), internal/controller/helmrelease_controller.go reconcileRelease: the current release is uninstalled, history and failures cleared, then installed anew (revision 1, new pods)."""
    ns = namespace(env, "h-chartname")
    env["api"].apply(hr_obj("cn", ns), "test")
    hr = wait_for(lambda: ready_current(env, "cn", ns), what="Ready with chart demo")
    assert hr["status"]["history"][0]["chartName"] == "demo"
    before = wait_for(lambda: running_pods(env, ns, "cn"), what="pods Running")
    env["api"].apply(hr_obj("cn", ns, chart="labelled", values={}), "test")
    hr = wait_for(lambda: (h := ready_current(env, "cn", ns))
                  and h["status"]["history"][0]["chartName"] == "labelled" and h,
                  what="Ready with chart labelled")
    assert [(s["chartName"], s["version"]) for s in hr["status"]["history"]] == [("labelled", 1)]
    rel = helm_storage.latest(env["kube"], "cn", ns)
    assert rel.revision == 1 and rel.chart_version == "1.0.0"
    after = wait_for(lambda: (u := running_pods(env, ns, "cn")) and u != before and u,
                     what="pods of the reinstalled release")
    assert after.isdisjoint(before)


def test_release_namespace_change_reinstalls_in_the_new_namespace(env):
    """Source: helm-controller internal/action/verify.go ReleaseTargetChanged (release namespace = GetReleaseNamespace): with a fixed releaseName and storage namespace, a new targetNamespace uninstalls the release (its objects leave the old namespace) and installs it in the new one."""
    hr_ns = namespace(env, "h-relns")
    a, b = namespace(env, "h-relns-a"), namespace(env, "h-relns-b")
    env["api"].apply(hr_obj("rn", hr_ns, releaseName="fixed", targetNamespace=a), "test")
    wait_for(lambda: ready_current(env, "rn", hr_ns), what="Ready in namespace a")
    assert env["kube"].get("apps/v1", "Deployment", "fixed", a) is not None
    env["api"].apply(hr_obj("rn", hr_ns, releaseName="fixed", targetNamespace=b), "test")
    hr = wait_for(lambda: (h := ready_current(env, "rn", hr_ns))
                  and h["status"]["history"][0].get("releaseNamespace") == b and h,
                  what="Ready in namespace b")
    assert [s["version"] for s in hr["status"]["history"]] == [1]
    assert env["kube"].get("apps/v1", "Deployment", "fixed", b) is not None
    wait_for(lambda: env["kube"].get("apps/v1", "Deployment", "fixed", a) is None,
             what="old namespace emptied by the uninstall")


def test_explicit_helm4_server_side_apply_is_refused_by_name(env):
    """Source: helm-controller api/v2 InstallSpec.ServerSideApply (Helm 4): the stand-in's Helm 3 cannot apply server-side, so it refuses (handover/rehearsal/fidelity.py hr-helm4-explicit) instead of proving the release with client-side apply."""
    ns = namespace(env, "h-ssa")
    env["api"].apply(hr_obj("ssa", ns, install={"serverSideApply": True}), "test")
    hr = wait_for(lambda: ready_false(env, "ssa", ns), what="Ready False")
    c = flux.condition(hr, "Ready")
    assert c["reason"] == "UnemulatedFeature" and "server-side" in c["message"]
    assert helm_storage.latest(env["kube"], "ssa", ns) is None


def test_upgrade_creates_new_chart_crds_by_default_and_skip_does_not(env):
    """Source: helm-controller internal/action/upgrade.go Upgrade -> internal/action/crds.go applyCRDs, crdPolicyOrDefault (unset -> Create: each CRD of crds/ created with origin labels, existing ones skipped; Skip: none). The Helm CLI's upgrade never creates crds/."""
    ext = "apiextensions.k8s.io/v1"
    crd = "CustomResourceDefinition"
    ns = namespace(env, "h-crds")
    env["api"].apply(hr_obj("crd", ns, chart="crdful"), "test")
    wait_for(lambda: ready_current(env, "crd", ns), what="Ready 1.0.0")
    # one of the two CRDs exists before the upgrade (made by someone else): skipped, untouched
    env["api"].create(yaml.safe_load(GADGET_CRD.format("widgets")))
    env["api"].apply(hr_obj("crd", ns, version="1.1.0", chart="crdful"), "test")
    hr = wait_for(lambda: (h := ready_current(env, "crd", ns))
                  and h["status"]["history"][0]["chartVersion"] == "1.1.0" and h,
                  what="Ready 1.1.0")
    gadgets = env["api"].get(ext, crd, "gadgets.example.test")
    assert gadgets is not None
    assert gadgets["metadata"]["labels"][flux.HELM_ORIGIN_NAME] == "crd"
    assert gadgets["metadata"]["labels"][flux.HELM_ORIGIN_NAMESPACE] == ns
    widgets = env["api"].get(ext, crd, "widgets.example.test")
    assert flux.HELM_ORIGIN_NAME not in (widgets["metadata"].get("labels") or {})
    assert hr["status"]["history"][0]["version"] == 2
    # Skip: a fresh release upgraded to 1.1.0 creates no CRD
    env["api"].delete(ext, crd, "gadgets.example.test")
    wait_for(lambda: env["api"].get(ext, crd, "gadgets.example.test") is None,
             what="CRD deleted")
    ns2 = namespace(env, "h-crds-skip")
    env["api"].apply(hr_obj("skip", ns2, chart="crdful"), "test")
    wait_for(lambda: ready_current(env, "skip", ns2), what="Ready 1.0.0")
    env["api"].apply(hr_obj("skip", ns2, version="1.1.0", chart="crdful",
                            upgrade={"crds": "Skip"}), "test")
    wait_for(lambda: (h := ready_current(env, "skip", ns2))
             and h["status"]["history"][0]["chartVersion"] == "1.1.0", what="Ready 1.1.0")
    assert env["api"].get(ext, crd, "gadgets.example.test") is None
