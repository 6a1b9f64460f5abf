"""The source- and kustomize-controller stand-ins against a real rehearsal cluster, real kubectl
(kustomize, client-side apply) and a git remote over HTTP.

Each test names the upstream source of the behaviour it checks."""
from __future__ import annotations

import subprocess
import textwrap

import pytest

from handover.flux import rules as flux
from handover.core import tools
from handover.core.kube import Kube
from handover.rehearsal.flux import install
from handover.rehearsal.flux.runtime import Api
from handover.rehearsal.flux.testkit import GitRemote, wait_for
from tests.rehearsal_support import rehearsal_cluster

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    state = tmp_path_factory.mktemp("flux-ks")
    with rehearsal_cluster(state / "cluster") as cluster:
        git = GitRemote(state / "git")
        try:
            sha = git.write({"README.md": "rehearsal\n"}, "init")
            install(cluster, state / "flux")
            api = Api(str(cluster.kubeconfig), cluster.context)
            api.apply({"apiVersion": flux.SOURCE_API, "kind": "GitRepository",
                       "metadata": {"name": "repo", "namespace": "flux-system"},
                       "spec": {"interval": "1m", "url": git.url,
                                "ref": {"branch": "main"}}}, "test")
            yield {"cluster": cluster, "api": api,
                   "kube": Kube(cluster.kubeconfig, cluster.context), "git": git,
                   "first_sha": sha}
        finally:
            git.close()


def cm(name: str, ns: str, data: dict, annotations: dict | None = None) -> str:
    meta = {"name": name, "namespace": ns}
    if annotations:
        meta["annotations"] = annotations
    import yaml
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                           "data": data})


def deployment(name: str, ns: str, greeting: str = "hi") -> str:
    return textwrap.dedent(f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: {name}, namespace: {ns}}}
        spec:
          replicas: 1
          selector: {{matchLabels: {{app: {name}}}}}
          template:
            metadata:
              labels: {{app: {name}}}
              annotations: {{greeting: "{greeting}"}}
            spec:
              containers:
                - name: app
                  image: example/app:1.0
                  ports: [{{containerPort: 8080}}]
        """)


def push(env, files: dict, message: str) -> str:
    """Commit + push, then ask the GitRepository to fetch now (flux reconcile source git)."""
    sha = env["git"].write(files, message)
    env["api"].patch(flux.SOURCE_API, "GitRepository", "repo", "flux-system",
                     {"metadata": {"annotations": {flux.RECONCILE_REQUESTED_AT: sha}}})
    return sha


def ks_obj(name: str, path: str, prune: bool = True, **spec) -> dict:
    return {"apiVersion": flux.KUSTOMIZE_API, "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"interval": "10m", "path": path, "prune": prune,
                     "sourceRef": {"kind": "GitRepository", "name": "repo"}, **spec}}


def get_ks(env, name):
    return env["api"].get(flux.KUSTOMIZE_API, "Kustomization", name, "flux-system")


def applied(env, name, revision_sha):
    ks = get_ks(env, name)
    if ks and flux.is_ready(ks) and ks["status"].get("lastAppliedRevision", "").endswith(
            revision_sha):
        return ks
    return None


def namespace(env, name):
    env["api"].apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                     "test")
    return name


def kubectl(env, *args, input=None):
    c = env["cluster"]
    return subprocess.run([str(tools.kubectl()), "--kubeconfig", str(c.kubeconfig),
                           "--context", c.context, *args], input=input, capture_output=True,
                          text=True, check=True)


def test_git_repository_artifact_revision_and_ready(env):
    """Source: source-controller internal/controller/gitrepository_controller.go (artifact revision '<branch>@sha1:<sha>')."""
    api = env["api"]
    gr = wait_for(lambda: (g := api.get(flux.SOURCE_API, "GitRepository", "repo", "flux-system"))
                  and flux.is_ready(g) and g, what="GitRepository Ready")
    art = gr["status"]["artifact"]
    head = subprocess.run(["git", "-C", str(env["git"].work), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert art["revision"] == f"main@sha1:{head}"
    assert art["digest"].startswith("sha256:") and art["path"].endswith(f"{head}.tar.gz")
    ready = flux.condition(gr, "Ready")
    assert ready["observedGeneration"] == gr["metadata"]["generation"]
    new = env["git"].write({"x.txt": "1\n"}, "bump")
    api.patch(flux.SOURCE_API, "GitRepository", "repo", "flux-system",
              {"metadata": {"annotations": {flux.RECONCILE_REQUESTED_AT: "now-1"}}})
    gr = wait_for(lambda: (g := api.get(flux.SOURCE_API, "GitRepository", "repo",
                                        "flux-system"))
                  and g["status"]["artifact"]["revision"] == f"main@sha1:{new}" and g,
                  what="new revision")
    assert gr["status"]["lastHandledReconcileAt"] == "now-1"


def test_apply_owner_labels_inventory_and_field_manager(env):
    """Source: kustomize-controller internal/controller/kustomization_controller.go apply(); fluxcd/pkg ssa (owner labels, inventory ids)."""
    ns = "k-apply"
    sha = push(env, {"apps/apply/ns.yaml": f"apiVersion: v1\nkind: Namespace\n"
                                                  f"metadata: {{name: {ns}}}\n",
                            "apps/apply/cm.yaml": cm("settings", ns, {"a": "1"}),
                            "apps/apply/deploy.yaml": deployment("web", ns)}, "apply")
    env["api"].apply(ks_obj("apply", "./apps/apply", wait=True), "test")
    ks = wait_for(lambda: applied(env, "apply", sha), timeout=90, what="Kustomization applied")
    ids = {e["id"]: e["v"] for e in ks["status"]["inventory"]["entries"]}
    assert ids == {f"_{ns}__Namespace": "v1", f"{ns}_settings__ConfigMap": "v1",
                   f"{ns}_web_apps_Deployment": "v1"}
    assert flux.condition(ks, "Healthy")["status"] == "True"
    dep = env["kube"].get("apps/v1", "Deployment", "web", ns)
    assert dep["metadata"]["labels"][flux.KUSTOMIZE_OWNER_NAME] == "apply"
    assert dep["metadata"]["labels"][flux.KUSTOMIZE_OWNER_NAMESPACE] == "flux-system"
    assert flux.KUSTOMIZE_OWNER_NAME not in dep["spec"]["template"]["metadata"]["labels"]
    managers = {(m["manager"], m["operation"]) for m in dep["metadata"]["managedFields"]}
    assert (flux.KUSTOMIZE_FIELD_MANAGER, "Apply") in managers
    # a second reconcile with nothing changed does not touch the objects
    rv = dep["metadata"]["resourceVersion"]
    env["api"].patch(flux.KUSTOMIZE_API, "Kustomization", "apply", "flux-system",
                     {"metadata": {"annotations": {flux.RECONCILE_REQUESTED_AT: "again"}}})
    wait_for(lambda: get_ks(env, "apply")["status"].get("lastHandledReconcileAt") == "again",
             what="reconcile request handled")
    assert env["kube"].get("apps/v1", "Deployment", "web", ns)["metadata"][
        "resourceVersion"] == rv


def test_last_applied_stripped_and_kubectl_managed_fields_taken_over(env):
    """Source: fluxcd/pkg ssa/patch.go PatchReplaceFieldsManagers; kustomize-controller apply() Cleanup (last-applied annotation)."""
    ns = namespace(env, "k-takeover")
    live = cm("legacy", ns, {"keep": "1", "dropped": "2"})
    kubectl(env, "apply", "-f", "-", input=live)
    before = env["kube"].get("v1", "ConfigMap", "legacy", ns)
    assert "kubectl.kubernetes.io/last-applied-configuration" in before["metadata"]["annotations"]
    assert any(m["manager"].startswith("kubectl") for m in before["metadata"]["managedFields"])
    sha = push(env, {"apps/takeover/cm.yaml": cm("legacy", ns, {"keep": "1"}),
                            "apps/takeover/merge.yaml": cm("merged", ns, {"keep": "1"},
                                                           {flux.SSA_ANNOTATION: "Merge"})},
                           "takeover")
    kubectl(env, "apply", "-f", "-", input=cm("merged", ns, {"keep": "1", "dropped": "2"}))
    env["api"].apply(ks_obj("takeover", "./apps/takeover", prune=False), "test")
    wait_for(lambda: applied(env, "takeover", sha), what="takeover applied")
    after = env["kube"].get("v1", "ConfigMap", "legacy", ns)
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (
        after["metadata"].get("annotations") or {})
    assert after["data"] == {"keep": "1"}  # the field removed from Git is removed from the cluster
    managers = [m["manager"] for m in after["metadata"]["managedFields"]]
    assert not any(m.startswith("kubectl") for m in managers)
    # opt-out: ssa: Merge keeps kubectl's fields and annotation
    merged = env["kube"].get("v1", "ConfigMap", "merged", ns)
    assert merged["data"] == {"keep": "1", "dropped": "2"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in merged["metadata"]["annotations"]


def test_reconcile_disabled_objects_are_skipped(env):
    """Source: kustomize-controller apply() ExclusionSelector kustomize.toolkit.fluxcd.io/reconcile: disabled."""
    ns = namespace(env, "k-skip")
    kubectl(env, "apply", "-f", "-", input=cm("frozen", ns, {"v": "live"},
                                                {flux.RECONCILE_ANNOTATION: "disabled"}))
    sha = push(env, {"apps/skip/cm.yaml": cm("frozen", ns, {"v": "git"})}, "skip")
    env["api"].apply(ks_obj("skip", "./apps/skip", prune=False), "test")
    wait_for(lambda: applied(env, "skip", sha), what="skip applied")
    assert env["kube"].get("v1", "ConfigMap", "frozen", ns)["data"] == {"v": "live"}


def test_prune_removes_objects_dropped_from_git(env):
    """Source: kustomize-controller kustomization_controller.go prune() / deleteObjects (prune: disabled excluded)."""
    ns = namespace(env, "k-prune")
    sha = push(env, {"apps/prune/a.yaml": cm("a", ns, {"x": "1"}),
                            "apps/prune/b.yaml": cm("b", ns, {"x": "1"}),
                            "apps/prune/c.yaml": cm("c", ns, {"x": "1"},
                                                    {flux.PRUNE_ANNOTATION: "disabled"})},
                           "prune-1")
    env["api"].apply(ks_obj("prune", "./apps/prune"), "test")
    wait_for(lambda: applied(env, "prune", sha), what="prune applied")
    sha = push(env, {"apps/prune/b.yaml": None, "apps/prune/c.yaml": None}, "prune-2")
    ks = wait_for(lambda: applied(env, "prune", sha), what="prune-2 applied")
    assert env["kube"].get("v1", "ConfigMap", "a", ns) is not None
    wait_for(lambda: env["kube"].get("v1", "ConfigMap", "b", ns) is None, what="b pruned")
    assert env["kube"].get("v1", "ConfigMap", "c", ns) is not None  # prune: disabled
    assert [e["id"] for e in ks["status"]["inventory"]["entries"]] == [f"{ns}_a__ConfigMap"]


def test_deletion_garbage_collects_only_with_prune(env):
    """Source: kustomize-controller kustomization_controller.go finalizerShouldDeleteResources / finalize()."""
    ns = namespace(env, "k-delete")
    sha = push(env, {"apps/del-prune/cm.yaml": cm("pruned", ns, {"x": "1"}),
                            "apps/del-keep/cm.yaml": cm("kept", ns, {"x": "1"}),
                            "apps/del-orphan/cm.yaml": cm("orphan", ns, {"x": "1"}),
                            "apps/del-susp/cm.yaml": cm("suspended", ns, {"x": "1"})}, "del")
    env["api"].apply(ks_obj("del-prune", "./apps/del-prune", prune=True), "test")
    env["api"].apply(ks_obj("del-keep", "./apps/del-keep", prune=False), "test")
    env["api"].apply(ks_obj("del-orphan", "./apps/del-orphan", prune=True,
                            deletionPolicy="Orphan"), "test")
    env["api"].apply(ks_obj("del-susp", "./apps/del-susp", prune=True), "test")
    for n in ("del-prune", "del-keep", "del-orphan", "del-susp"):
        wait_for(lambda n=n: applied(env, n, sha), what=f"{n} applied")
    env["api"].patch(flux.KUSTOMIZE_API, "Kustomization", "del-susp", "flux-system",
                     {"spec": {"suspend": True}})
    for n in ("del-prune", "del-keep", "del-orphan", "del-susp"):
        env["api"].delete(flux.KUSTOMIZE_API, "Kustomization", n, "flux-system")
    for n in ("del-prune", "del-keep", "del-orphan", "del-susp"):
        wait_for(lambda n=n: get_ks(env, n) is None, what=f"{n} gone")
    wait_for(lambda: env["kube"].get("v1", "ConfigMap", "pruned", ns) is None,
             what="inventory of prune: true garbage-collected")
    for kept in ("kept", "orphan", "suspended"):
        assert env["kube"].get("v1", "ConfigMap", kept, ns) is not None, kept


def test_depends_on_waits_for_ready_and_target_namespace(env):
    """Source: kustomize-controller kustomization_controller.go checkDependencies; spec.targetNamespace (kustomize namespace)."""
    ns = namespace(env, "k-deps")
    sha = push(env, {"apps/deps/cm.yaml": cm("dep", "elsewhere", {"x": "1"})}, "deps")
    env["api"].apply(ks_obj("second", "./apps/deps", targetNamespace=ns,
                            dependsOn=[{"name": "first"}]), "test")
    ks = wait_for(lambda: (k := get_ks(env, "second")) and flux.condition(k, "Ready")
                  and flux.condition(k, "Ready")["reason"] == "DependencyNotReady" and k,
                  what="DependencyNotReady")
    assert "first" in flux.condition(ks, "Ready")["message"]
    assert env["kube"].get("v1", "ConfigMap", "dep", ns) is None
    env["api"].apply(ks_obj("first", "./apps/deps", targetNamespace=ns, prune=False,
                            suspend=False), "test")
    wait_for(lambda: applied(env, "second", sha), what="second applied after first Ready")
    assert env["kube"].get("v1", "ConfigMap", "dep", ns) is not None


def test_suspended_kustomization_is_not_applied(env):
    """Source: kustomize-controller kustomization_controller.go Reconcile (suspend: skip)."""
    ns = namespace(env, "k-suspend")
    push(env, {"apps/susp/cm.yaml": cm("never", ns, {"x": "1"})}, "susp")
    env["api"].apply(ks_obj("susp", "./apps/susp", suspend=True), "test")
    env["api"].patch(flux.KUSTOMIZE_API, "Kustomization", "susp", "flux-system",
                     {"metadata": {"annotations": {flux.RECONCILE_REQUESTED_AT: "x"}}})
    with pytest.raises(TimeoutError):
        wait_for(lambda: env["kube"].get("v1", "ConfigMap", "never", ns), timeout=6,
                 what="nothing applied while suspended")
    assert not (get_ks(env, "susp").get("status") or {}).get("inventory")


def test_post_build_substitution_in_values_and_configmaps(env):
    """Source: kustomize-controller internal/controller/kustomization_controller.go (postBuild after the build), fluxcd/pkg kustomize/kustomize_varsub.go SubstituteVariables / loadVars (substituteFrom, inline substitute wins, unset variables empty, ${var:=default})."""
    ns = "k-postbuild"
    hr = textwrap.dedent(f"""\
        apiVersion: {flux.HELM_API}
        kind: HelmRelease
        metadata: {{name: app, namespace: {ns}}}
        spec:
          interval: 10m
          suspend: true
          chart:
            spec:
              chart: demo
              sourceRef: {{kind: HelmRepository, name: charts, namespace: flux-system}}
          values:
            greeting: ${{GREETING}}
            tier: ${{TIER:=standard}}
            unset: "${{NOT_SET}}"
            literal: $${{GREETING}}
        """)
    env["api"].apply({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "cluster-vars", "namespace": "flux-system"},
                      "data": {"GREETING": "from-configmap", "REGION": "eu", "TIER": ""}},
                     "test")
    sha = push(env, {"apps/postbuild/ns.yaml": f"apiVersion: v1\nkind: Namespace\n"
                                                f"metadata: {{name: {ns}}}\n",
                     "apps/postbuild/hr.yaml": hr,
                     "apps/postbuild/cm.yaml": cm("settings", ns, {"region": "${REGION}",
                                                                   "zone": "${ZONE}"})},
               "postbuild")
    env["api"].apply(ks_obj("postbuild", "./apps/postbuild", postBuild={
        "substitute": {"GREETING": "inline-wins"},
        "substituteFrom": [{"kind": "ConfigMap", "name": "cluster-vars"},
                           {"kind": "Secret", "name": "absent", "optional": True}]}), "test")
    wait_for(lambda: applied(env, "postbuild", sha), what="Kustomization applied")
    values = env["api"].get(flux.HELM_API, "HelmRelease", "app", ns)["spec"]["values"]
    assert values["greeting"] == "inline-wins"
    assert values["tier"] == "standard"      # set but empty -> default
    assert values["unset"] is None or values["unset"] == ""  # unset -> empty
    assert values["literal"] == "${GREETING}"  # $$ escapes
    data = env["kube"].get("v1", "ConfigMap", "settings", ns).get("data") or {}
    assert data.get("region") == "eu" and not data.get("zone")


def test_sops_decryption_is_refused_by_name(env):
    """Source: kustomize-controller internal/decryptor (SOPS): no keys in the rehearsal, so the stand-in refuses it (handover/rehearsal/fidelity.py FEATURES ks-decryption) instead of applying encrypted data."""
    sha = push(env, {"apps/sops/cm.yaml": cm("enc", "default", {"a": "ENC[AES256_GCM,data:x]"})},
               "sops")
    env["api"].apply(ks_obj("sops", "./apps/sops", decryption={"provider": "sops"}), "test")
    ks = wait_for(lambda: (k := get_ks(env, "sops")) and (flux.condition(k, "Ready") or {}).get(
        "reason") == "UnemulatedFeature" and k, what="Ready False UnemulatedFeature")
    assert "decryption (SOPS)" in flux.condition(ks, "Ready")["message"]
    assert env["kube"].get("v1", "ConfigMap", "enc", "default") is None
    assert sha


def test_force_recreates_on_any_invalid_and_leaves_it_deleted_when_reapply_fails(env):
    """Source: fluxcd/pkg ssa/errors IsImmutableError (any 409 Conflict / 422 Invalid counts as immutable) and ssa ResourceManager ApplyAllStaged with force (delete, then apply: a failing re-apply leaves the object deleted)."""
    ns = namespace(env, "k-force")

    def dep(selector: str, template: str) -> str:
        return deployment("forced", ns).replace(
            "selector: {matchLabels: {app: forced}}",
            f"selector: {{matchLabels: {{app: {selector}}}}}").replace(
            "labels: {app: forced}", f"labels: {{app: {template}}}")

    sha = push(env, {"apps/force/deploy.yaml": dep("forced", "forced")}, "force 1")
    env["api"].apply(ks_obj("force", "./apps/force", force=True), "test")
    wait_for(lambda: applied(env, "force", sha), what="applied")
    uid = env["kube"].get("apps/v1", "Deployment", "forced", ns)["metadata"]["uid"]
    # an immutable selector change: deleted and re-created
    sha = push(env, {"apps/force/deploy.yaml": dep("forced2", "forced2")}, "force 2")
    wait_for(lambda: applied(env, "force", sha), what="recreated")
    new = env["kube"].get("apps/v1", "Deployment", "forced", ns)
    assert new["metadata"]["uid"] != uid
    assert new["spec"]["selector"]["matchLabels"] == {"app": "forced2"}
    # an invalid object (selector does not match the template: 422): upstream takes it for
    # immutable too, deletes the live object, the re-apply fails: the Deployment is gone
    push(env, {"apps/force/deploy.yaml": dep("forced3", "other")}, "force 3")
    ks = wait_for(lambda: (k := get_ks(env, "force")) and (flux.condition(k, "Ready") or {}).get(
        "status") == "False" and k, what="Ready False")
    assert "forced" in flux.condition(ks, "Ready")["message"]
    assert env["kube"].get("apps/v1", "Deployment", "forced", ns) is None


def test_build_composes_into_the_directorys_own_kustomization(env):
    """Source: fluxcd/pkg kustomize/kustomize_generator.go Generator.WriteFile (the directory's kustomization.yaml edited in place: namePrefix replaced, images merged by name, namespace set)."""
    ns = namespace(env, "k-compose")
    own = ("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
           "namePrefix: own-\nresources: [deploy.yaml]\n"
           "images: [{name: example/app, newTag: '0.9'}, {name: example/side, newTag: '2'}]\n")
    sha = push(env, {"apps/compose/kustomization.yaml": own,
                     "apps/compose/deploy.yaml": deployment("web", "default")}, "compose")
    env["api"].apply(ks_obj("compose", "./apps/compose", targetNamespace=ns, namePrefix="flux-",
                            images=[{"name": "example/app", "newTag": "1.1"}]), "test")
    wait_for(lambda: applied(env, "compose", sha), what="applied")
    dep = env["kube"].get("apps/v1", "Deployment", "flux-web", ns)
    assert dep is not None, "namePrefix must replace the directory's own prefix, not stack"
    assert env["kube"].get("apps/v1", "Deployment", "flux-own-web", ns) is None
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "example/app:1.1"


def test_a_failing_dry_run_applies_nothing_of_the_stage(env):
    """Source: fluxcd/pkg ssa ResourceManager.ApplyAllStaged / ApplyAll (every object of a stage is dry-run first; one failure returns before anything is applied)."""
    ns = namespace(env, "k-dryrun")
    bad = deployment("broken", ns).replace("labels: {app: broken}", "labels: {app: other}")
    sha = push(env, {"apps/dryrun/cm.yaml": cm("fine", ns, {"a": "1"}),
                     "apps/dryrun/deploy.yaml": bad}, "dry-run")
    env["api"].apply(ks_obj("dryrun", "./apps/dryrun"), "test")
    ks = wait_for(lambda: (k := get_ks(env, "dryrun")) and (flux.condition(k, "Ready") or {}).get(
        "status") == "False" and k, what="Ready False")
    assert "dry-run failed" in flux.condition(ks, "Ready")["message"]
    assert env["kube"].get("v1", "ConfigMap", "fine", ns) is None  # nothing of the stage applied
    assert sha


def test_sourceignore_in_the_repository_is_refused_by_name(env, tmp_path):
    """Source: source-controller internal/controller/gitrepository_controller.go (the artifact excludes .sourceignore patterns, fluxcd/pkg sourceignore): not emulated, so the stand-in refuses the GitRepository (handover/rehearsal/fidelity.py src-sourceignore) instead of serving an artifact with files the real one excludes."""
    other = GitRemote(tmp_path / "git2")
    try:
        other.write({"apps/.sourceignore": "*.png\n", "apps/cm.yaml": "kind: ConfigMap\n"},
                    "with sourceignore")
        env["api"].apply({"apiVersion": flux.SOURCE_API, "kind": "GitRepository",
                          "metadata": {"name": "ignored", "namespace": "flux-system"},
                          "spec": {"interval": "1m", "url": other.url,
                                   "ref": {"branch": "main"}}}, "test")

        def refused():
            o = env["api"].get(flux.SOURCE_API, "GitRepository", "ignored", "flux-system")
            c = flux.condition(o or {}, "Ready")
            return o if c and c["status"] == "False" else None
        o = wait_for(refused, what="GitRepository Ready False")
        c = flux.condition(o, "Ready")
        assert c["reason"] == "UnemulatedFeature" and "apps/.sourceignore" in c["message"]
        assert not (o.get("status") or {}).get("artifact")
    finally:
        env["api"].delete(flux.SOURCE_API, "GitRepository", "ignored", "flux-system")
        other.close()
