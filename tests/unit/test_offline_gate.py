"""`pytest suites/phase1 --offline` on a GitOps repository shaped like the current
fluxcd/flux2-kustomize-helm-example (tests/repos/flux-example-layout, written here):
ExternalArtifacts assembled by an ArtifactGenerator, OCIRepository + chartRef with layerSelector,
valuesFrom, Kustomization patches / components / postBuild. No cluster is contacted."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from handover.sources import entry_paths
from handover.core.inventory import load

ROOT = Path(__file__).resolve().parents[2]
INV = ROOT / "tests/repos/flux-example-layout.migration.yaml"


def test_external_artifact_paths_are_discovered_and_assembled():
    inv = load(INV)
    paths, problems = entry_paths.discover(inv)
    assert problems == []
    assert [p.path for p in paths][:4] == ["clusters/production", "@infrastructure/controllers",
                                           "@infrastructure/configs", "@apps/production"]
    by = {p.path: p for p in paths}
    objs, notes = entry_paths.build_with_overlay(inv.gitops.path, "@infrastructure/configs",
                                                 by["@infrastructure/configs"].overlay)
    [cm] = objs
    assert cm["data"]["environment"] == "production"  # the Kustomization's spec.patches
    objs, notes = entry_paths.build_with_overlay(inv.gitops.path, "@apps/production",
                                                 by["@apps/production"].overlay)
    mon = [o for o in objs if o["metadata"]["name"] == "monitoring-settings"]
    assert mon and mon[0]["data"]["domain"] == "production.example.test"  # component + postBuild
    hr = [o for o in objs if o["kind"] == "HelmRelease"][0]
    assert hr["spec"]["values"]["replicas"] == 2  # the overlay's patch of the base
    # without the other paths' builds, substituteFrom is named as not checked, never guessed
    assert any(n.startswith(entry_paths.NOT_CHECKED) and
               "ConfigMap flux-system/cluster-settings: not in the GitOps repository" in n and
               "environment" in n for n in notes), notes
    assert mon[0]["data"]["environment"] == "${environment}"


def test_substitute_from_is_resolved_from_the_repository_builds():
    """postBuild.substituteFrom ConfigMap cluster-settings is in the repo, built by the
    infra-configs Kustomization, whose patch sets environment=production: the apps build reads
    the built value (as kustomize-controller reads the applied one), not the file's staging.
    Source: fluxcd/pkg kustomize/kustomize_varsub.go loadVars (refs in order, inline substitute
    wins)."""
    from fixtures.gitops import EntryBuilds
    inv = load(INV)
    paths, _ = entry_paths.discover(inv)
    builds = EntryBuilds(inv.gitops.path, paths)
    r = builds.result("@apps/production")
    assert r.error is None, r.error
    [mon] = [o for o in r.objects if o["metadata"]["name"] == "monitoring-settings"]
    assert mon["data"] == {"domain": "production.example.test", "environment": "production",
                           "logLevel": "info"}
    assert any("substituteFrom (ConfigMap cluster-settings) resolved" in n for n in r.notes)
    assert not any(n.startswith(entry_paths.NOT_CHECKED) for n in r.notes)


def test_substitute_from_vars_order_secrets_and_what_is_not_checked():
    import base64
    objs = {("ConfigMap", "a"): {"kind": "ConfigMap", "data": {"X": "a", "Y": "a"}},
            ("ConfigMap", "b"): {"kind": "ConfigMap", "data": {"Y": "b\n"}},
            ("Secret", "s"): {"kind": "Secret", "data": {"P": base64.b64encode(b"pw").decode()},
                              "stringData": {"Q": "q"}},
            ("Secret", "enc"): {"kind": "Secret", "data": {"P": "ENC[...]"}, "sops": {}}}
    get = lambda kind, name, ns: objs.get((kind, name)) if ns == "flux-system" else None  # noqa
    pb = {"substitute": {"X": "inline"}, "substituteFrom": [
        {"kind": "ConfigMap", "name": "a"}, {"kind": "ConfigMap", "name": "b"},
        {"kind": "Secret", "name": "s"}, {"kind": "Secret", "name": "enc"},
        {"kind": "ConfigMap", "name": "gone", "optional": True}]}
    got, unread = entry_paths.substitute_from_vars(pb, "flux-system", get)
    assert got == {"X": "inline", "Y": "b", "P": "pw", "Q": "q"}
    assert unread == [
        "Secret flux-system/enc: SOPS-encrypted in the repository (decrypted only by "
        "kustomize-controller)",
        "ConfigMap flux-system/gone (optional): not in the GitOps repository"]


def test_substitute_like_envsubst():
    text, unknown = entry_paths.substitute("a: ${x}\nb: ${y:=7}\nc: ${z}\n", {"x": "1"})
    assert text == "a: 1\nb: 7\nc: ${z}\n" and unknown == {"z"}


def test_offline_gate_runs_with_no_build_error(tmp_path):
    junit = tmp_path / "junit.xml"
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["KUBECONFIG"] = str(tmp_path / "no-such-kubeconfig")  # nothing to contact
    res = subprocess.run([sys.executable, "-m", "pytest", "suites/phase1", "--offline",
                          "--inventory", str(INV), "-q", "-p", "no:cacheprovider",
                          f"--junitxml={junit}", "--report-dir", str(tmp_path / "r")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    for path in ("clusters/production", "@infrastructure/controllers",
                 "@infrastructure/configs", "@apps/production"):
        c = cases[f"test_kustomize_build[{path}]"]
        assert c.find("failure") is None and c.find("skipped") is None, path
    for name in ("test_flux_schema[OCIRepository gateway-system/gateway-chart]",
                 "test_flux_schema[ArtifactGenerator flux-system/fleet]",
                 "test_helmrelease_refs[gateway]", "test_helmrelease_refs[webapp]"):
        assert cases[name].find("failure") is None and cases[name].find("skipped") is None
    skipped = cases["test_server_dry_run[@apps/production]"].find("skipped")
    assert skipped is not None and "--offline: not checked" in skipped.get("message")
