"""Scenario catalogue for phase 1's hazard checks (suites/phase1/test_hazard_*.py).

The example homelab passes every hazard test (with a get/list/watch-only identity, and nothing in
the cluster changes). Then every hazard gets a broken variant of the example: an edit in a private
copy of the GitOps remote + clone, or a live change undone afterwards. To keep this affordable,
independent breaks that hit DIFFERENT testcases share one child run: two runs cover all fifteen,
and each asserts exactly which testcases fail and what their messages say (JUnit, through
tests/harness.py). Where one break has two honest consequences (a misspelt `version` is both a
schema error and an unpinned chart), both testcases are expected and named.
"""
from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from handover.snapshot import cluster as cluster_snapshot
from handover.core import tools
from handover.core.inventory import load
from handover.core.kube import Kube
from handover.rehearsal import chart_repo
from tests.scenarios.conftest import ROOT, explain

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]

HAZARDS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "suites/phase1").glob("test_hazard_*.py"))
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"scenario setup: {old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def edit_yaml(path: Path, edit) -> None:
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def assert_failures(run, expected: dict[str, list[str]]) -> None:
    """Exactly these testcases fail, each message containing its needles."""
    assert set(run.failed) == set(expected), explain(run)
    for name, needles in expected.items():
        msg = run.message(name)
        for n in needles:
            assert n in msg, f"{name}: {n!r} not in its message:\n{msg}"


def test_example_passes_every_hazard_check_read_only(rehearsal, tmp_path):
    cluster = rehearsal.stack.cluster

    def readonly(data: dict) -> None:
        data["cluster"]["context"] = cluster.readonly_context
    inv = rehearsal.inventory_copy(tmp_path / "inv", readonly)
    admin = Kube(rehearsal.kubeconfig, cluster.context)
    before = cluster_snapshot.take(admin, load(inv))
    run = rehearsal.run(tmp_path / "run", inv, HAZARDS, "--kubeconfig",
                        str(cluster.readonly_kubeconfig), "--kube-context",
                        cluster.readonly_context)
    after = cluster_snapshot.take(admin, load(inv))
    assert run.returncode == 0 and run.failed == [], explain(run)
    assert not [c.name for c in run.cases if c.outcome != "passed"], explain(run)
    names = {c.name for c in run.cases}
    for comp in ("envoy-gateway", "alloy", "tempo", "grafana", "loki"):
        for t in ("test_adoption_target", "test_values_match_release",
                  "test_chart_version_matches_release", "test_adopted_in_place",
                  "test_helmrelease_settings", "test_immutable_fields_unchanged"):
            assert f"{t}[{comp}]" in names
    for comp in ("llama-cpp", "log-analyzer"):
        for t in ("test_no_restarted_at_drift", "test_replicas_kept_beside_hpa",
                  "test_common_labels_keep_selectors", "test_immutable_fields_unchanged"):
            assert f"{t}[{comp}]" in names
    assert {"test_entry_prune_guards[infrastructure]", "test_entry_prune_guards[workloads]",
            "test_flux_schema[HelmRelease logging/loki]",
            "test_flux_schema[Kustomization flux-system/workloads]",
            "test_flux_schema[HelmRepository flux-system/grafana]",
            "test_volumes_retained[storage]"} <= names
    moved = cluster_snapshot.compare(before, after, resource_versions=True)
    assert not moved, cluster_snapshot.report(moved, before, after)


def test_repo_breaks_each_fail_their_hazard_test(rehearsal, tmp_path):
    """Eight Git-side breaks in one repo variant, each hitting a different testcase."""
    def edit(clone: Path) -> None:
        logging = clone / "infrastructure/logging"
        # 1. release name: HelmRelease moved to flux-system with targetNamespace -> second release
        def move(d):
            d["metadata"]["namespace"] = "flux-system"
            d["spec"]["targetNamespace"] = "logging"
        edit_yaml(logging / "loki/helmrelease.yaml", move)
        # 2. storage namespace mismatch
        edit_yaml(logging / "tempo/helmrelease.yaml",
                  lambda d: d["spec"].update(storageNamespace="flux-system"))
        # 3. values differ (a value that does not touch the pod template)
        edit_yaml(logging / "grafana/helmrelease.yaml",
                  lambda d: d["spec"]["values"].update(service={"port": 8080}))
        # 4. install remediation retries
        edit_yaml(logging / "alloy/helmrelease.yaml",
                  lambda d: d["spec"].update(install={"remediation": {"retries": 3}}))
        # 5. preserveValues
        edit_yaml(clone / "infrastructure/controllers/envoy-gateway/helmrelease.yaml",
                  lambda d: d["spec"].setdefault("upgrade", {}).update(preserveValues=True))
        # 6. Deployment selector changed
        dep = clone / "workloads/llama-cpp/deployment.yaml"
        replace_in(dep, "    matchLabels:\n      app: llama-cpp",
                   "    matchLabels:\n      app: llama-cpp\n      tier: inference")
        replace_in(dep, "      labels:\n        app: llama-cpp",
                   "      labels:\n        app: llama-cpp\n        tier: inference")
        # 7. commonLabels added above the workloads
        (clone / "workloads/kustomization.yaml").write_text(
            (clone / "workloads/kustomization.yaml").read_text() +
            "commonLabels:\n  env: homelab\n")
        # 8. the entry Kustomization `workloads` (prune: true) owns a PVC without prune: disabled
        replace_in(clone / "workloads/llama-cpp/pvc.yaml",
                   "    kustomize.toolkit.fluxcd.io/prune: disabled\n", "")
    inv = rehearsal.repo_variant(tmp_path / "repo", edit, "eight hazards")
    edit_yaml(inv, lambda d: [c["helmRelease"].update(namespace="flux-system")
                              for c in d["components"] if c["name"] == "loki"])
    run = rehearsal.run(tmp_path / "run", inv, HAZARDS)
    assert_failures(run, {
        "test_adoption_target[loki]": [
            "HelmRelease flux-system/loki", "release name 'logging-loki'",
            "storage namespace 'flux-system'", "INSTALLS A SECOND RELEASE",
            "spec.releaseName: loki", "spec.storageNamespace: logging"],
        "test_adoption_target[tempo]": [
            "HelmRelease logging/tempo", "storage namespace 'flux-system' (CLI release stored in "
            "'logging')", "INSTALLS A SECOND RELEASE"],
        "test_values_match_release[grafana]": [
            "HelmRelease logging/grafana", "service.port: live (absent), Git 8080",
            "helm get values grafana -n logging"],
        "test_helmrelease_settings[alloy]": [
            "HelmRelease logging/alloy", "spec.install.remediation.retries: Git 3", "UNINSTALLS"],
        "test_helmrelease_settings[envoy-gateway]": [
            "HelmRelease envoy-gateway-system/envoy-gateway",
            "spec.upgrade.preserveValues: Git true"],
        "test_immutable_fields_unchanged[llama-cpp]": [
            "Deployment llm/llama-cpp", "spec.selector", '"tier": "inference"', "immutable"],
        "test_common_labels_keep_selectors[llama-cpp]": [
            "Deployment llm/llama-cpp", "workloads/kustomization.yaml injects commonLabels",
            "'env': 'homelab'", "includeSelectors: false"],
        "test_common_labels_keep_selectors[log-analyzer]": [
            "Deployment log-analyzer/log-analyzer", "'env': 'homelab'"],
        "test_entry_prune_guards[workloads]": [
            "Kustomization flux-system/workloads", "spec.prune: true",
            "PersistentVolumeClaim llm/llama-models", "kustomize.toolkit.fluxcd.io/prune: disabled"],
    })
    # the rollout / immutable predictions of the mis-targeted loki point at the cause
    for name in ("test_adopted_in_place[loki]", "test_immutable_fields_unchanged[loki]"):
        assert run.by_name[name].outcome == "skipped", explain(run)
        assert "see test_adoption_target[loki]" in run.message(name)


def _add_chart_version(state_dir: Path, chart: str, version: str) -> Path:
    """Publish a copy of a stand-in chart under another version in the rehearsal chart repo."""
    src = ROOT / "examples/homelab/charts" / chart
    work = state_dir / "scenario-charts" / chart
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(src, work)
    edit_yaml(work / "Chart.yaml", lambda d: d.update(version=version))
    repo_dir = state_dir / "chart-repo"
    env = {**os.environ, **chart_repo.helm_env(state_dir)}
    tools.run([str(tools.helm()), "package", str(work), "--destination", str(repo_dir)],
              env=env, check=True)
    tools.run([str(tools.helm()), "repo", "index", str(repo_dir)], env=env, check=True)
    return repo_dir / f"{chart}-{version}.tgz"


def test_cluster_and_repo_breaks_each_fail_their_hazard_test(rehearsal, tmp_path):
    """Seven more breaks in one run: live changes (undone afterwards) and Git edits."""
    dyn = rehearsal.admin
    state_dir = rehearsal.stack.state_dir
    deploys = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    pvs = dyn.resources.get(api_version="v1", kind="PersistentVolume")
    hpas = dyn.resources.get(api_version="autoscaling/v1", kind="HorizontalPodAutoscaler")
    eg = deploys.get(name="envoy-gateway", namespace="envoy-gateway-system").to_dict()
    eg_image = [c for c in eg["spec"]["template"]["spec"]["containers"]
                if c["name"] == "envoy-gateway"][0]["image"]
    smp = "application/strategic-merge-patch+json"
    merge = "application/merge-patch+json"

    def set_eg_image(image):
        deploys.patch(name="envoy-gateway", namespace="envoy-gateway-system", content_type=smp,
                      body={"spec": {"template": {"spec": {"containers": [
                          {"name": "envoy-gateway", "image": image}]}}}})

    def pv_policy(policy):
        pvs.patch(name="tempo-pv", content_type=merge,
                  body={"spec": {"persistentVolumeReclaimPolicy": policy}})

    def restarted_at(value):
        deploys.patch(name="log-analyzer", namespace="log-analyzer", content_type=merge,
                      body={"spec": {"template": {"metadata": {"annotations": {
                          RESTARTED_AT: value}}}}})

    hpa = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "llama-cpp", "namespace": "llm"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                       "name": "llama-cpp"},
                    "minReplicas": 1, "maxReplicas": 2, "targetCPUUtilizationPercentage": 80}}
    chart_tgz: list[Path] = []

    def unpublish():
        for t in chart_tgz:
            t.unlink(missing_ok=True)
        env = {**os.environ, **chart_repo.helm_env(state_dir)}
        tools.run([str(tools.helm()), "repo", "index", str(state_dir / "chart-repo")], env=env,
                  check=True)

    def edit(clone: Path) -> None:
        logging = clone / "infrastructure/logging"
        # 9. misspelt field spec.chart.spec.vesion
        replace_in(logging / "grafana/helmrelease.yaml", "      version: 10.2.0",
                   "      vesion: 10.2.0")
        # 10. StatefulSet volumeClaimTemplates changed (through the chart's values)
        replace_in(logging / "loki/helmrelease.yaml", "        size: 10Gi", "        size: 20Gi")
        # 11. chart version differs from the deployed chart.metadata.version
        replace_in(logging / "alloy/helmrelease.yaml", "      version: 1.4.0",
                   "      version: 1.4.1")
        # 15 (Git half). replicas omitted beside an HPA
        replace_in(clone / "workloads/llama-cpp/deployment.yaml", "  replicas: 1\n", "")

    inv = rehearsal.repo_variant(tmp_path / "repo", edit, "seven hazards")
    with ExitStack() as undo:
        chart_tgz.append(_add_chart_version(state_dir, "alloy", "1.4.1"))
        undo.callback(unpublish)
        # 12. the live pod template differs from the render -> pods will be recreated
        set_eg_image("docker.io/envoyproxy/gateway:v1.3.0")
        undo.callback(set_eg_image, eg_image)
        # 13. a PV with reclaim policy Delete behind a component
        pv_policy("Delete")
        undo.callback(pv_policy, "Retain")
        # 14. restartedAt left live by `kubectl rollout restart`, not in Git
        restarted_at("2026-11-26T12:00:00Z")
        undo.callback(restarted_at, None)
        # 15 (live half). an HPA scales llama-cpp
        hpas.create(body=hpa, namespace="llm")
        undo.callback(hpas.delete, name="llama-cpp", namespace="llm")
        run = rehearsal.run(tmp_path / "run", inv, HAZARDS)
    assert_failures(run, {
        "test_flux_schema[HelmRelease logging/grafana]": [
            "spec.chart.spec.vesion: unknown field (did you mean version?)"],
        # the same typo leaves the chart unpinned: the chart-version check says so too
        "test_chart_version_matches_release[grafana]": [
            "spec.chart.spec.version: Git None is not an exact version", "10.2.0"],
        # 10: the values change is the cause, the immutable claim template the consequence
        "test_values_match_release[loki]": [
            "singleBinary.persistence.size: live \"10Gi\", Git \"20Gi\""],
        "test_immutable_fields_unchanged[loki]": [
            "StatefulSet logging/loki",
            'spec.volumeClaimTemplates[name=storage].spec.resources.requests.storage: '
            'live "10Gi", Git "20Gi"', "immutable"],
        "test_chart_version_matches_release[alloy]": [
            "HelmRelease logging/alloy", "Git '1.4.1', deployed chart.metadata.version '1.4.0'"],
        "test_adopted_in_place[envoy-gateway]": [
            "Deployment envoy-gateway-system/envoy-gateway", "pods will be recreated",
            "spec.template.spec.containers[name=envoy-gateway].image",
            'live "docker.io/envoyproxy/gateway:v1.3.0"'],
        "test_volumes_retained[tempo]": [
            "PersistentVolume tempo-pv", "persistentVolumeReclaimPolicy is 'Delete'",
            "PVC logging/storage-tempo-0", "Retain"],
        "test_volumes_retained[storage]": [
            "PersistentVolume tempo-pv", "persistentVolumeReclaimPolicy is 'Delete'"],
        "test_no_restarted_at_drift[log-analyzer]": [
            "Deployment log-analyzer/log-analyzer", "live '2026-11-26T12:00:00Z', Git (absent)",
            "flux2#2526"],
        "test_replicas_kept_beside_hpa[llama-cpp]": [
            "Deployment llm/llama-cpp", "spec.replicas: Git (absent), live 1",
            "HorizontalPodAutoscaler llm/llama-cpp (live)"],
    })
    # every live change was undone
    assert pvs.get(name="tempo-pv").to_dict()["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert hpas.get(namespace="llm").to_dict()["items"] == []
    la = deploys.get(name="log-analyzer", namespace="log-analyzer").to_dict()
    assert RESTARTED_AT not in (la["spec"]["template"]["metadata"].get("annotations") or {})


def _republish_with_hook(state_dir: Path, chart: str) -> tuple[Path, bytes]:
    """Publish the stand-in chart again under its own version with a pre-upgrade hook Job added
    (as real charts ship migration Jobs); returns (tgz, its original bytes) to restore."""
    src = ROOT / "examples/homelab/charts" / chart
    version = yaml.safe_load((src / "Chart.yaml").read_text())["version"]
    repo_dir = state_dir / "chart-repo"
    tgz = repo_dir / f"{chart}-{version}.tgz"
    original = tgz.read_bytes()
    work = state_dir / "scenario-charts" / f"{chart}-hook"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(src, work)
    (work / "templates" / "migrate-job.yaml").write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {{ .Release.Name }}-migrate\n"
        "  annotations:\n    \"helm.sh/hook\": pre-upgrade\n"
        "    \"helm.sh/hook-delete-policy\": before-hook-creation,hook-succeeded\n"
        "spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n"
        "        - name: migrate\n          image: docker.io/library/busybox:1.36\n"
        "          command: [\"true\"]\n")
    env = {**os.environ, **chart_repo.helm_env(state_dir)}
    tools.run([str(tools.helm()), "package", str(work), "--destination", str(repo_dir)],
              env=env, check=True)
    tools.run([str(tools.helm()), "repo", "index", str(repo_dir)], env=env, check=True)
    return tgz, original


def test_current_flux_and_chart_breaks_each_fail_their_hazard_test(rehearsal, tmp_path):
    """The issue-11 hazards in one run (Git edits and live changes undone afterwards): a
    pre-upgrade hook the adoption would run, a live CRD that differs from the chart's crds/,
    remediation strategy uninstall, disableTakeOwnership for install only, a stored
    release manifest with an apiVersion the cluster no longer serves, a field kubectl set that Git
    lacks, and ssa: IfNotPresent on a cluster-scoped object under Flux 2.8.3. The clean variants
    are the example itself (test_example_passes_every_hazard_check_read_only)."""
    from handover.sources import helm_storage
    dyn = rehearsal.admin
    state_dir = rehearsal.stack.state_dir
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1",
                             kind="CustomResourceDefinition")
    secrets = dyn.resources.get(api_version="v1", kind="Secret")
    merge = "application/merge-patch+json"
    crd_name = "envoyproxies.gateway.envoyproxy.io"
    short = crds.get(name=crd_name).to_dict()["spec"]["names"].get("shortNames")
    rec = helm_storage.latest(Kube(rehearsal.kubeconfig, rehearsal.stack.cluster.context),
                              "grafana", "logging")
    stored = secrets.get(name=rec.secret_name, namespace="logging").to_dict()["data"]["release"]
    rel = helm_storage.decode_release(stored)
    old_api = rel["manifest"].replace("apiVersion: apps/v1\nkind: Deployment",
                                      "apiVersion: apps/v1beta2\nkind: Deployment", 1)
    assert old_api != rel["manifest"], "scenario setup: grafana's manifest has no Deployment"
    kubectl = [str(tools.kubectl()), "--kubeconfig", str(rehearsal.kubeconfig), "--context",
               rehearsal.stack.cluster.context]

    def set_short(names):
        crds.patch(name=crd_name, content_type=merge, body={"spec": {"names": {
            "shortNames": names}}})

    def set_release(data):
        secrets.patch(name=rec.secret_name, namespace="logging", content_type=merge,
                      body={"data": {"release": data}})

    def kubectl_env(arg):
        tools.run([*kubectl, "-n", "log-analyzer", "set", "env", "deployment/log-analyzer", arg],
                  check=True)

    def edit(clone: Path) -> None:
        logging = clone / "infrastructure/logging"
        # remediation strategy uninstall on an adoption
        edit_yaml(logging / "tempo/helmrelease.yaml", lambda d: d["spec"].update(
            upgrade={"remediation": {"retries": 1, "strategy": "uninstall"}}))
        # disableTakeOwnership for install only: the adoption is an upgrade
        edit_yaml(logging / "loki/helmrelease.yaml", lambda d: d["spec"].update(
            install={"disableTakeOwnership": True}))
        # ssa: IfNotPresent on the (cluster-scoped, live) Namespace llm
        edit_yaml(clone / "workloads/llama-cpp/namespace.yaml", lambda d: d["metadata"].update(
            annotations={"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}))

    inv = rehearsal.repo_variant(tmp_path / "repo", edit, "issue 11 hazards")
    edit_yaml(inv, lambda d: d["cluster"].update(fluxVersion="2.8.3"))
    with ExitStack() as undo:
        tgz, original = _republish_with_hook(state_dir, "alloy")

        def restore_chart():
            tgz.write_bytes(original)
            env = {**os.environ, **chart_repo.helm_env(state_dir)}
            tools.run([str(tools.helm()), "repo", "index", str(state_dir / "chart-repo")],
                      env=env, check=True)
        undo.callback(restore_chart)
        set_short(["eproxy", "ep"])
        undo.callback(set_short, short)
        set_release(helm_storage.encode_release({**rel, "manifest": old_api}))
        undo.callback(set_release, stored)
        kubectl_env("DEBUG=1")
        undo.callback(kubectl_env, "DEBUG-")
        run = rehearsal.run(tmp_path / "run", inv, HAZARDS)
    assert_failures(run, {
        "test_upgrade_hooks[alloy]": [
            "HelmRelease logging/alloy", "RUNS 1 chart hook(s)",
            "Job alloy-migrate (pre-upgrade; weight 0; delete policy before-hook-creation, "
            "hook-succeeded)", "spec.upgrade.disableHooks: true"],
        "test_chart_crds_match_live[envoy-gateway]": [
            f"CustomResourceDefinition {crd_name}", "spec.names.shortNames",
            "never upgrades CRDs"],
        "test_helmrelease_flux_rules[tempo]": [
            "HelmRelease logging/tempo", "spec.upgrade.remediation.strategy: uninstall",
            "UNINSTALLS the adopted release"],
        "test_helmrelease_flux_rules[loki]": [
            "HelmRelease logging/loki", "spec.install.disableTakeOwnership is set",
            "the adoption of an existing release is an UPGRADE"],
        "test_stored_apis_served[grafana]": [
            "Helm release logging/grafana", "apps/v1beta2 Deployment", "mapkubeapis"],
        # the same stored manifest stops the server-side render too: three honest consequences
        "test_adopted_in_place[grafana]": [
            "cannot render the chart", "from current release manifest", "mapkubeapis"],
        "test_upgrade_hooks[grafana]": ["cannot render the chart"],
        "test_immutable_fields_unchanged[grafana]": ["cannot build the desired workloads"],
        "test_kubectl_fields_in_git[log-analyzer]": [
            "Deployment log-analyzer/log-analyzer", "env[name=DEBUG]", "kubectl-set",
            "pods roll"],
        "test_ssa_if_not_present[llama-cpp]": [
            "Namespace llm", "IfNotPresent", "kustomize-controller#1647"],
    })
    # every live change was undone
    assert crds.get(name=crd_name).to_dict()["spec"]["names"].get("shortNames") == short
    assert secrets.get(name=rec.secret_name, namespace="logging").to_dict()["data"][
        "release"] == stored
