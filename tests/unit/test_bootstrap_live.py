"""Phase 2's live bootstrap paths (handover/flux/bootstrap.py), with a stand-in `flux` executable that
records how it was called: no flux CLI can be had here, so this pins the exact commands the suite
would run on a live cluster, that the token never reaches argv or the journal, and the clear
errors when something is missing."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from handover.flux import bootstrap
from handover.core import inventory

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-not-real-0123456789"
# the example inventory's cluster.fluxComponentsExtra (the runbook's image automation controllers)
EXTRA = ["--components-extra=image-reflector-controller,image-automation-controller"]


def inv(tmp_path: Path, url: str | None) -> inventory.Inventory:
    doc = yaml.safe_load((ROOT / "examples/homelab/migration.yaml").read_text())
    if url:
        doc["gitops"]["url"] = url
    return inventory.parse(doc, tmp_path / "migration.yaml")


@pytest.fixture()
def fake_flux(tmp_path, monkeypatch) -> Path:
    calls = tmp_path / "flux-calls.jsonl"
    script = tmp_path / "flux"
    script.write_text(
        "#!/usr/bin/env python3\nimport json, os, sys\n"
        "if sys.argv[1:] == ['--version']:\n"
        "    print('flux version ' + os.environ.get('FAKE_FLUX_VERSION', '2.4.0'))\n"
        "    sys.exit(0)\n"
        f"open({str(calls)!r}, 'a').write(json.dumps({{'argv': sys.argv[1:], "
        "'token_in_env': bool(os.environ.get('GITHUB_TOKEN'))}) + '\\n')\n")
    script.chmod(0o755)
    monkeypatch.setenv("HANDOVER_FLUX", str(script))
    return calls


class RecordingMutator:
    def __init__(self):
        self.actions: list[str] = []

    def call(self, action, fn):
        self.actions.append(action)
        return fn()

    def kubectl(self, args, description, input=None):
        self.actions.append(f"kubectl {' '.join(args)} ({description})")


def fake_kube():
    return SimpleNamespace(context="homelab", kubeconfig=None,
                           dynamic=SimpleNamespace(resources=SimpleNamespace(
                               invalidate_cache=lambda: None)))


def test_flux_bootstrap_github_with_the_seeds_flags_and_no_token_in_argv(
        tmp_path, fake_flux, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setattr(bootstrap, "already_bootstrapped", lambda *a: False)
    i = inv(tmp_path, "https://github.com/example/homelab-gitops")
    repo = SimpleNamespace(path=tmp_path / "gitops")
    assert bootstrap.plan(i, repo).mode == "flux-bootstrap-github"
    m = RecordingMutator()
    bootstrap.bootstrap(m, fake_kube(), i, repo)
    [call] = [json.loads(line) for line in fake_flux.read_text().splitlines()]
    assert call["argv"] == ["bootstrap", "github", "--owner", "example", "--repository",
                            "homelab-gitops", "--branch", "main", "--path", "clusters/homelab",
                            "--personal", "--namespace", "flux-system", "--version", "v2.4.0",
                            *EXTRA, "--context", "homelab"]
    assert call["token_in_env"] is True
    assert all(TOKEN not in a for a in m.actions) and "token from GITHUB_TOKEN" in m.actions[0]


def test_flux_install_plus_the_repos_flux_system_manifests(tmp_path, fake_flux, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.setattr(bootstrap, "already_bootstrapped", lambda *a: False)
    i = inv(tmp_path, None)
    fs = tmp_path / "gitops" / "clusters/homelab/flux-system"
    fs.mkdir(parents=True)
    (fs / "kustomization.yaml").write_text("resources: [gotk-components.yaml, gotk-sync.yaml]\n")
    repo = SimpleNamespace(path=tmp_path / "gitops")
    m = RecordingMutator()
    bootstrap.bootstrap(m, fake_kube(), i, repo)
    [call] = [json.loads(line) for line in fake_flux.read_text().splitlines()]
    assert call["argv"] == ["install", "--namespace", "flux-system", "--version", "v2.4.0",
                            *EXTRA, "--context", "homelab"]
    assert m.actions[-1] == f"kubectl apply -k {fs} (the repository's flux-system manifests)"


def test_no_flux_cli_is_a_clear_error_before_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDOVER_FLUX", str(tmp_path / "missing"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(bootstrap.BootstrapError) as e:
        bootstrap.plan(inv(tmp_path, None), SimpleNamespace(path=tmp_path))
    assert "the flux CLI is not installed" in str(e.value) and "Nothing was applied" in str(e.value)


def test_no_token_and_no_flux_system_manifests_is_a_clear_error(tmp_path, fake_flux,
                                                                 monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    with pytest.raises(bootstrap.BootstrapError) as e:
        bootstrap.plan(inv(tmp_path, "https://github.com/example/homelab-gitops"),
                       SimpleNamespace(path=tmp_path / "gitops"))
    msg = str(e.value)
    assert "GITHUB_TOKEN is not set" in msg and "flux-system/kustomization.yaml" in msg
    assert os.environ.get("GITHUB_TOKEN") is None


def test_cli_version_different_from_the_inventory_is_a_clear_error_before_anything(
        tmp_path, fake_flux, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("FAKE_FLUX_VERSION", "2.6.1")
    monkeypatch.setattr(bootstrap, "already_bootstrapped", lambda *a: False)
    i = inv(tmp_path, "https://github.com/example/homelab-gitops")
    m = RecordingMutator()
    with pytest.raises(bootstrap.BootstrapError) as e:
        bootstrap.bootstrap(m, fake_kube(), i, SimpleNamespace(path=tmp_path / "gitops"))
    msg = str(e.value)
    assert "version 2.6.1" in msg and "cluster.fluxVersion is 2.4.0" in msg
    assert "Nothing was applied" in msg
    assert m.actions == [] and not fake_flux.exists()


def test_minor_only_inventory_version_takes_the_cli_patch(tmp_path, fake_flux, monkeypatch):
    monkeypatch.setenv("FAKE_FLUX_VERSION", "2.4.3")
    doc = yaml.safe_load((ROOT / "examples/homelab/migration.yaml").read_text())
    doc["cluster"]["fluxVersion"] = "2.4"
    i = inventory.parse(doc, tmp_path / "migration.yaml")
    assert bootstrap.check_cli_version(i, Path(os.environ["HANDOVER_FLUX"])) == "v2.4.3"
    monkeypatch.setenv("FAKE_FLUX_VERSION", "2.5.0")
    with pytest.raises(bootstrap.BootstrapError, match="version 2.5.0"):
        bootstrap.check_cli_version(i, Path(os.environ["HANDOVER_FLUX"]))


def test_unknown_extra_component_is_an_inventory_error(tmp_path):
    doc = yaml.safe_load((ROOT / "examples/homelab/migration.yaml").read_text())
    doc["cluster"]["fluxComponentsExtra"] = ["image-reflector-controller", "image-automaton"]
    with pytest.raises(inventory.InventoryError) as e:
        inventory.parse(doc, tmp_path / "migration.yaml")
    assert "cluster.fluxComponentsExtra" in str(e.value) and "image-automaton" in str(e.value)


def _deployment(name, available):
    return {"metadata": {"name": name}, "status": {"conditions": [
        {"type": "Available", "status": "True" if available else "False",
         "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
         "message": "x"}]}}


def test_controllers_running_means_each_controller_deployment_available(tmp_path):
    """flux check: each controller Deployment (defaults + extra components) Available; a live
    cluster no longer counts as bootstrapped just because it is live."""
    i = inv(tmp_path, None)
    live = {n: _deployment(n, True) for n in bootstrap.controllers(i)}
    kube = SimpleNamespace(get=lambda api, kind, name, ns: live.get(name))
    assert bootstrap.controller_problems(kube, i) == []
    assert bootstrap._controllers_running(kube, i) is True
    live["image-automation-controller"] = _deployment("image-automation-controller", False)
    del live["helm-controller"]
    problems = bootstrap.controller_problems(kube, i)
    assert problems == ["Deployment flux-system/helm-controller does not exist",
                        "Deployment flux-system/image-automation-controller is not Available: "
                        "MinimumReplicasUnavailable: x"]
    assert bootstrap._controllers_running(kube, i) is False
