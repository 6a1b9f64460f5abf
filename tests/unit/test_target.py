"""handover/target.py: the Target (Live | Rehearsal) is chosen once from the inventory, and each
difference between a live cluster and the rehearsal is answered by it (probe mode, the version
bar, the bootstrap plan and run, what counts as bootstrapped, removing Flux, proof gaps)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from handover import target as targets
from handover.chain import abort
from handover.core import inventory
from handover.flux import bootstrap
from handover.gate.prerequisites import ServerVersion

ROOT = Path(__file__).resolve().parents[2]
OLD_SERVER = ServerVersion(1, 20, "v1.20.2")
NEW_SERVER = ServerVersion(1, 31, "v1.31.0")


def inv(tmp_path: Path, rehearsal: bool) -> inventory.Inventory:
    doc = yaml.safe_load((ROOT / "examples/homelab/migration.yaml").read_text())
    if rehearsal:
        doc["cluster"]["rehearsalStateDir"] = str(tmp_path / "state")
    return inventory.parse(doc, tmp_path / "migration.yaml")


class RecordingMutator:
    def __init__(self):
        self.actions: list[str] = []
        self.applied: list[dict] = []

    def call(self, action, fn):
        self.actions.append(action)
        return fn()

    def apply(self, obj):
        self.applied.append(obj)


def test_the_inventory_picks_the_target(tmp_path):
    live, rehearsal = targets.of(inv(tmp_path, False)), targets.of(inv(tmp_path, True))
    assert isinstance(live, targets.Live) and live.name == "live"
    assert isinstance(rehearsal, targets.Rehearsal) and rehearsal.name == "rehearsal"
    assert rehearsal.state_dir == (tmp_path / "state").resolve()


def test_probe_reaches_services_through_the_api_server_live_and_endpoints_on_the_rehearsal(
        tmp_path):
    live, rehearsal = targets.of(inv(tmp_path, False)), targets.of(inv(tmp_path, True))
    assert (live.probe_mode, live.pod_fallback) == ("proxy", False)
    assert (rehearsal.probe_mode, rehearsal.pod_fallback) == ("endpoints", True)


def test_an_old_api_server_fails_live_and_is_an_expected_failure_on_the_rehearsal(tmp_path):
    for rehearsal in (False, True):
        i = inv(tmp_path, rehearsal)
        t = targets.of(i)
        assert t.server_version_findings(NEW_SERVER, i) == []
        assert t.version_bar_xfail([], NEW_SERVER, i) is None
        found = t.server_version_findings(OLD_SERVER, i)
        assert len(found) == 1 and "below Flux 2.4.0's minimum" in str(found[0])
        assert ("the rehearsal cluster" in str(found[0])) is rehearsal
        why = t.version_bar_xfail(found, OLD_SERVER, i)
        if rehearsal:
            assert why and "rehearsal API server is v1.20.2" in why and \
                "expected failure on the rehearsal only" in why
        else:
            assert why is None  # never a lowered bar on a live cluster


def test_rehearsal_bootstrap_plan_needs_no_flux_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDOVER_FLUX", str(tmp_path / "missing"))
    monkeypatch.setenv("PATH", str(tmp_path))
    repo = SimpleNamespace(path=tmp_path / "gitops", remote_url=lambda: "/srv/gitops.git")
    with pytest.raises(bootstrap.BootstrapError, match="the flux CLI is not installed"):
        bootstrap.plan(inv(tmp_path, False), repo)
    p = bootstrap.plan(inv(tmp_path, True), repo)
    assert p.mode == "rehearsal" and len(p.actions) == 4
    assert str((tmp_path / "state").resolve()) in p.actions[0]
    assert "image-automation-controller" in p.actions[0]
    assert "/srv/gitops.git" in p.actions[1]


def test_rehearsal_bootstrap_installs_the_standins_serves_the_remote_and_applies_the_sync(
        tmp_path, monkeypatch):
    from handover.rehearsal import flux as standins
    from handover.rehearsal import git_remote
    calls: list[tuple] = []
    monkeypatch.setattr(standins, "install", lambda cluster, state, extra: calls.append(
        ("install", state, tuple(extra))))
    monkeypatch.setattr(git_remote, "serve_http", lambda cluster: "http://127.0.0.1:1/g.git")
    monkeypatch.setattr(bootstrap, "already_bootstrapped", lambda *a: False)
    i = inv(tmp_path, True)
    repo = SimpleNamespace(path=tmp_path / "gitops", remote_url=lambda: "/srv/gitops.git")
    kube = SimpleNamespace(dynamic=SimpleNamespace(resources=SimpleNamespace(
        invalidate_cache=lambda: calls.append(("rediscover",)))))
    m = RecordingMutator()
    done = bootstrap.bootstrap(m, kube, i, repo)
    state = (tmp_path / "state").resolve()
    assert calls[0] == ("install", state / "flux", ("image-reflector-controller",
                                                     "image-automation-controller"))
    assert ("rediscover",) in calls
    assert m.actions == bootstrap.plan(i, repo).actions[:2]  # journaled through the mutator
    assert [(o["kind"], o["spec"].get("url")) for o in m.applied] == [
        ("GitRepository", "http://127.0.0.1:1/g.git"), ("Kustomization", None)]
    assert done[2:] == ["applied GitRepository flux-system/flux-system",
                        "applied Kustomization flux-system/flux-system"]


def _bootstrapped_kube(i: inventory.Inventory, url: str) -> SimpleNamespace:
    live = {name: {"status": {"conditions": [{"type": "Available", "status": "True"}]}}
            for name in bootstrap.controllers(i)}
    live["flux-system/GitRepository"] = {"spec": {"url": url, "ref": {"branch": "main"}}}
    live["flux-system/Kustomization"] = {"spec": {"path": "./clusters/homelab"}}

    def get(api, kind, name, ns=None):
        return live.get(name if kind == "Deployment" else f"{name}/{kind}")
    return SimpleNamespace(get=get, has_resource=lambda api, kind: True)


def test_what_counts_as_bootstrapped(tmp_path, monkeypatch):
    """Live: any URL flux bootstrap wrote; rehearsal: the served remote's URL, and the stand-in
    processes running (not just their Deployments)."""
    repo = SimpleNamespace(path=tmp_path / "gitops", remote_url=lambda: "/srv/gitops.git")
    live = inv(tmp_path, False)
    assert bootstrap.already_bootstrapped(_bootstrapped_kube(live, "ssh://anywhere/x.git"),
                                          live, repo)
    rehearsal = inv(tmp_path, True)
    served = "http://127.0.0.1:9/gitops.git"
    running = {"value": True}
    monkeypatch.setattr(targets.Rehearsal, "sync_url", lambda self, i, r: served)
    monkeypatch.setattr(targets.Rehearsal, "flux_processes_running",
                        lambda self, i: running["value"])
    assert bootstrap.already_bootstrapped(_bootstrapped_kube(rehearsal, served), rehearsal, repo)
    assert not bootstrap.already_bootstrapped(_bootstrapped_kube(rehearsal, "ssh://x/y.git"),
                                              rehearsal, repo)
    running["value"] = False
    assert not bootstrap.already_bootstrapped(_bootstrapped_kube(rehearsal, served), rehearsal,
                                              repo)


def test_removing_flux_live_needs_the_cli_and_on_the_rehearsal_uninstalls_the_standins(
        tmp_path, monkeypatch):
    monkeypatch.setenv("HANDOVER_FLUX", str(tmp_path / "missing"))
    kube = SimpleNamespace(context="homelab", kubeconfig=None)
    m = RecordingMutator()
    with pytest.raises(abort.AbortError, match="flux CLI is not installed"):
        targets.of(inv(tmp_path, False)).remove_flux(kube, m, inv(tmp_path, False))
    assert m.actions == []
    from handover.rehearsal import flux as standins
    gone: list[Path] = []
    monkeypatch.setattr(standins, "uninstall", lambda cluster, state: gone.append(state))
    i = inv(tmp_path, True)
    action = targets.of(i).remove_flux(kube, m, i)
    state = (tmp_path / "state").resolve()
    assert gone == [state / "flux"] and m.actions == [action] and str(state) in action


def test_proof_gaps_and_fidelity_notes_only_on_the_rehearsal(tmp_path, monkeypatch):
    from handover.rehearsal import fidelity
    i = inv(tmp_path, False)
    loki = i.component("loki")
    assert targets.of(i).proof_gaps(i, loki) == targets.ProofGaps([])
    assert targets.of(i).fidelity_notes() == []
    class Gap:
        def __str__(self) -> str:
            return "HelmRelease loki: driftDetection not reproduced"
    gap = Gap()
    monkeypatch.setattr(fidelity, "gaps_for", lambda inventory, component: [gap])
    monkeypatch.setattr(fidelity, "summary", lambda gaps: f"{len(gaps)} gap(s)")
    ri = inv(tmp_path, True)
    got = targets.of(ri).proof_gaps(ri, ri.component("loki"))
    assert got.items == [str(gap)] and got.summary == "1 gap(s)"
