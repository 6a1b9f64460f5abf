"""Pure rules of the Flux stand-ins added for issue 14 item 9 (no cluster): targetPath typing,
ReleaseTargetChanged, the chart-source-not-ready reason, Kustomization dependsOn revision
check."""
from __future__ import annotations

import pytest

from handover.rehearsal.flux import helm_controller as hc
from handover.rehearsal.flux import kustomize_controller as kc


def test_target_path_values_are_typed_as_helm_strvals():
    """Source: fluxcd/pkg chartutil/values.go ReplacePathValue (strvals.ParseInto, quoted -> strvals.ParseIntoString); helm pkg/strvals/parser.go typedVal."""
    v: dict = {}
    hc.set_path(v, "a.replicas", "3")
    hc.set_path(v, "a.enabled", "true")
    hc.set_path(v, "a.off", "FALSE")
    hc.set_path(v, "a.none", "null")
    hc.set_path(v, "a.zero", "0")
    hc.set_path(v, "a.octal", "0123")
    hc.set_path(v, "a.quoted", '"42"')
    hc.set_path(v, "a.single", "'true'")
    hc.set_path(v, "a.text", "s3cret")
    hc.set_path(v, r"ann.example\.com/key", "x")
    assert v == {"a": {"replicas": 3, "enabled": True, "off": False, "none": None, "zero": 0,
                       "octal": "0123", "quoted": "42", "single": "true", "text": "s3cret"},
                 "ann": {"example.com/key": "x"}}
    with pytest.raises(hc.ValuesError, match="comma"):
        hc.set_path({}, "a.b", "x,y")
    hc.set_path(v, "a.list", '"x,y"')
    assert v["a"]["list"] == "x,y"
    with pytest.raises(hc.ValuesError, match="list indexes"):
        hc.set_path({}, "a[0].b", "x")


def _hr(**spec):
    return {"metadata": {"name": "web", "namespace": "apps"},
            "spec": {"chart": {"spec": {"chart": "web"}}, **spec}}


def test_release_target_changed():
    """Source: helm-controller internal/action/verify.go ReleaseTargetChanged (storage namespace, release namespace, release name, chart name; nothing without a storage namespace or history)."""
    status = {"storageNamespace": "apps",
              "history": [{"name": "web", "namespace": "apps", "releaseNamespace": "apps",
                           "chartName": "web", "version": 1}]}
    assert hc.release_target_changed(_hr(), status, "web") is None
    assert hc.release_target_changed(_hr(), {"history": status["history"]}, "x") is None
    assert hc.release_target_changed(_hr(), {"storageNamespace": "apps"}, "x") is None
    assert hc.release_target_changed(_hr(storageNamespace="other"), status, "web") == \
        "storage namespace"
    assert hc.release_target_changed(_hr(targetNamespace="prod", releaseName="web"), status,
                                     "web") == "release namespace"
    assert hc.release_target_changed(_hr(releaseName="web2"), status, "web") == "release name"
    assert hc.release_target_changed(_hr(), status, "web-ng") == "chart name"


def test_chart_source_not_ready_reason():
    """Source: helm-controller internal/controller/helmrelease_controller.go reconcileRelease (isSourceReady -> "SourceNotReady"; getSource failure -> ArtifactFailed)."""
    assert hc.ChartError("HelmChart 'a/b' is not ready: chart pull error: no chart version "
                         "found for web-9.9.9").reason == "SourceNotReady"
    assert hc.ChartError("spec.chartRef is not supported").reason == "ArtifactFailed"


def _ks(name, src="flux-system", applied=None, gen=1, observed=1, ready="True", ns=None):
    o = {"metadata": {"name": name, "namespace": "flux-system", "generation": gen},
         "spec": {"sourceRef": {"kind": "GitRepository", "name": src}},
         "status": {"observedGeneration": observed,
                    "conditions": [{"type": "Ready", "status": ready,
                                    "observedGeneration": observed}]}}
    if ns:
        o["spec"]["sourceRef"]["namespace"] = ns
    if applied:
        o["status"]["lastAppliedRevision"] = applied
    return o


def test_kustomization_depends_on_revision_check():
    """Source: kustomize-controller internal/controller/kustomization_controller.go checkDependencies (Ready for its generation; same source -> lastAppliedRevision must be the artifact's revision)."""
    me = _ks("apps")
    rev = "main@sha1:2222"
    assert kc.dependency_error(me, None, "flux-system/infra", rev) == \
        "dependency 'flux-system/infra' not found"
    assert kc.dependency_error(me, _ks("infra", applied=rev), "flux-system/infra", rev) is None
    assert kc.dependency_error(me, _ks("infra", applied="main@sha1:1111"), "flux-system/infra",
                               rev) == "dependency 'flux-system/infra' revision is not up to date"
    # same source written with an explicit namespace is the same source
    assert "not up to date" in kc.dependency_error(
        me, _ks("infra", applied="main@sha1:1111", ns="flux-system"), "flux-system/infra", rev)
    # another source: no revision check
    assert kc.dependency_error(me, _ks("infra", src="other", applied="x"), "flux-system/infra",
                               rev) is None
    assert kc.dependency_error(me, _ks("infra", applied=rev, gen=2), "flux-system/infra",
                               rev) == "dependency 'flux-system/infra' is not ready"
    assert kc.dependency_error(me, _ks("infra", applied=rev, ready="False"),
                               "flux-system/infra", rev) == \
        "dependency 'flux-system/infra' is not ready"


def test_helm4_explicit_settings_are_refused_defaults_are_a_named_gap():
    """Source: helm-controller api/v2 InstallSpec.ServerSideApply, UpgradeSpec.ServerSideApply (enabled/disabled/auto), WaitStrategy (poller/legacy): the stand-in's Helm 3 cannot do them, so it refuses what is asked explicitly and lists Flux >= 2.8 defaults as a gap."""
    from handover.rehearsal import fidelity
    hr = {"kind": "HelmRelease", "metadata": {"name": "web", "namespace": "apps"},
          "spec": {"chart": {"spec": {"chart": "web"}}}}
    assert fidelity.refusals(hr) == []
    assert fidelity.object_gaps("web", hr, "2.4.0") == []
    assert [g.feature.key for g in fidelity.object_gaps("web", hr, "2.8.1")] == ["hr-helm4"]
    for path, value in (("install", {"serverSideApply": True}),
                        ("upgrade", {"serverSideApply": "enabled"}),
                        ("rollback", {"serverSideApply": "enabled"}),
                        ("waitStrategy", {"name": "poller"})):
        obj = {**hr, "spec": {**hr["spec"], path: value}}
        assert [f.key for f in fidelity.refusals(obj)] == ["hr-helm4-explicit"], path
        assert "server-side" in fidelity.refusal_message(fidelity.refusals(obj))
    for path, value in (("install", {"serverSideApply": False}),
                        ("upgrade", {"serverSideApply": "disabled"}),
                        ("waitStrategy", {"name": "legacy"})):
        obj = {**hr, "spec": {**hr["spec"], path: value}}
        assert fidelity.refusals(obj) == [], path
    auto = {**hr, "spec": {**hr["spec"], "upgrade": {"serverSideApply": "auto"}}}
    assert fidelity.refusals(auto) == []
    assert [g.feature.key for g in fidelity.object_gaps("web", auto, "2.4.0")] == ["hr-helm4"]


def test_standin_helm_selection(monkeypatch, tmp_path):
    """HANDOVER_STANDIN_HELM: unset -> the suite's Helm 3; a missing path or an uninstalled helm4 -> a clear error naming the variable; helm4 only when its pinned sha256 matches."""
    from handover.core import tools
    from handover.core.errors import ToolNotFound
    monkeypatch.delenv(tools.STANDIN_HELM_ENV, raising=False)
    assert tools.standin_helm() == tools.helm()
    monkeypatch.setenv(tools.STANDIN_HELM_ENV, str(tmp_path / "nope"))
    with pytest.raises(ToolNotFound, match=tools.STANDIN_HELM_ENV):
        tools.standin_helm()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(tools.STANDIN_HELM_ENV, "helm4")
    assert tools.helm4() is None
    with pytest.raises(ToolNotFound, match="--helm4"):
        tools.standin_helm()
    fake = tools._helm4_target()
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho v4.0.0\n")
    assert tools.helm4() is None  # not the pinned binary: refused


def test_deletion_uninstalls_only_the_latest_snapshot():
    """Source: helm-controller internal/controller/helmrelease_controller.go reconcileReleaseDeletion (no storage namespace -> skip), internal/reconcile/uninstall.go Uninstall.Reconcile (no latest snapshot -> ErrNoLatest, ignored: nothing uninstalled)."""
    assert hc.uninstall_target({}) is None
    assert hc.uninstall_target({"storageNamespace": "apps", "history": []}) is None
    assert hc.uninstall_target({"history": [{"name": "web", "version": 2}]}) is None
    assert hc.uninstall_target({"storageNamespace": "apps",
                                "history": [{"name": "apps-web", "version": 2},
                                            {"name": "apps-web", "version": 1}]}) == "apps-web"


def test_kstatus_failed_progress_deadline_and_job_failed():
    """Source: sigs.k8s.io/cli-utils pkg/kstatus/status core.go deploymentConditions (Progressing False ProgressDeadlineExceeded -> Failed), jobConditions (Failed -> Failed); fluxcd/pkg ssa WaitForSet FailFast (kustomize-controller feature gate DisableFailFastBehavior, off)."""
    dep = {"kind": "Deployment", "metadata": {"generation": 1}, "spec": {"replicas": 1},
           "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                      "readyReplicas": 0, "availableReplicas": 0,
                      "conditions": [{"type": "Progressing", "status": "True",
                                      "reason": "ReplicaSetUpdated"}]}}
    assert kc.kstatus_failed(dep) is None
    dep["status"]["conditions"][0].update(status="False", reason="ProgressDeadlineExceeded")
    assert kc.kstatus_failed(dep) == "Progress deadline exceeded"
    job = {"kind": "Job", "metadata": {}, "status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}
    assert kc.kstatus_failed(job) == "Job Failed"
    assert kc.kstatus_failed({"kind": "Job", "metadata": {}, "status": {}}) is None
    assert kc.kstatus_failed(None) is None


def test_git_revision_formats(tmp_path):
    """Source: source-controller internal/controller/gitrepository_controller.go commitReference (ref.name -> Commit.AbsoluteReference; else Commit.String), fluxcd/pkg git Commit.String / AbsoluteReference."""
    import subprocess
    from handover.rehearsal.flux import source

    def git(*a, cwd=None):
        return subprocess.run(["git", *a], cwd=cwd, check=True, capture_output=True,
                              text=True).stdout.strip()
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "feature/x", cwd=repo)
    (repo / "f").write_text("1")
    git("add", "f", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@example.test", "commit", "-qm", "c", cwd=repo)
    sha = git("rev-parse", "HEAD", cwd=repo)
    git("tag", "v1.0.0", cwd=repo)
    git("update-ref", "refs/pull/1/head", sha, cwd=repo)
    sc = source.SourceController(None, tmp_path / "state")  # type: ignore[arg-type]

    def rev(ref):
        label, got, _ = sc._fetch("ns", "r", {"url": str(repo), "ref": ref})
        assert got == sha
        return source.commit_revision(label, got)
    assert rev({"branch": "feature/x"}) == f"feature/x@sha1:{sha}"
    assert rev({"tag": "v1.0.0"}) == f"v1.0.0@sha1:{sha}"
    assert rev({"name": "refs/pull/1/head"}) == f"refs/pull/1/head@sha1:{sha}"
    assert rev({"name": "refs/heads/feature/x"}) == f"refs/heads/feature/x@sha1:{sha}"
    assert rev({"commit": sha}) == f"sha1:{sha}"
    assert rev({"commit": sha, "branch": "feature/x"}) == f"feature/x@sha1:{sha}"


def test_sourceignore_in_the_tree_is_refused(tmp_path):
    """Source: source-controller internal/controller/gitrepository_controller.go (artifact excludes .sourceignore patterns, fluxcd/pkg sourceignore): not emulated, so a tree with a .sourceignore is refused by name."""
    from handover.rehearsal.flux import source
    assert source.sourceignore_files("a/b.yaml\n.sourceignore\napps/x/.sourceignore\n"
                                     "apps/.sourceignore.bak\n") == [".sourceignore",
                                                                     "apps/x/.sourceignore"]
    assert source.sourceignore_files("kustomization.yaml\n") == []
