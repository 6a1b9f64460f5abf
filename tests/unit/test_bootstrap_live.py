"""Phase 2's live bootstrap paths (handover/bootstrap.py), with a stand-in `flux` executable that
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

from handover import bootstrap, inventory

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-not-real-0123456789"


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
                            "--personal", "--namespace", "flux-system", "--context", "homelab"]
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
    assert call["argv"] == ["install", "--namespace", "flux-system", "--context", "homelab"]
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
