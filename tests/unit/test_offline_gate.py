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
    assert any("substituteFrom (ConfigMap cluster-settings)" in n for n in notes)


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
