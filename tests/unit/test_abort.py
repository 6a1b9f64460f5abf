"""The abort's pure parts (handover/chain/abort.py, the Mutator's refusals of the hand-written recipe's
shortcuts, the abort chain's ordering (handover.runbook.ABORT,
plugins/runbook.py) and opt-in collection (plugins/abort.py)); the cluster behaviour is in
tests/scenarios/test_abort.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from handover.chain import abort
from handover.sources import helm_storage
from handover.core import inventory
from handover.core.errors import UnsafeActionRefused
from handover.core.journal import Journal
from handover.core.mutation import Mutator

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "examples/homelab/migration.yaml"
HR = "helm.toolkit.fluxcd.io/v2"
LAST = abort.LAST_APPLIED


class Live:
    """get() from a dict keyed Kind/name; any mutation reaching the API fails the test."""

    def __init__(self, **objects):
        self.context = "homelab"
        self.kubeconfig = None
        self.objects = objects

    def has_resource(self, api_version, kind):
        return True

    def get(self, api_version, kind, name, namespace=None):
        return self.objects.get(f"{kind}/{name}")

    def resource(self, *a):
        pytest.fail("a refused mutation reached the API")


def mutator(tmp_path, kube):
    return Mutator(kube, inventory.load(INVENTORY), Journal(tmp_path / "j.jsonl"), True)


def hr(suspend: bool):
    return {"spec": {"suspend": suspend}, "status": {"storageNamespace": "logging"}}


# -- metadata: Flux's hands off, kubectl's last-applied back -----------------------------------
def test_metadata_patch_removes_flux_labels_and_restores_last_applied():
    live = {"metadata": {"labels": {"app": "x", "kustomize.toolkit.fluxcd.io/name": "handover-x",
                                    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
                                    "helm.toolkit.fluxcd.io/name": "x"},
                         "annotations": {"other": "1"}}}
    backup = {"metadata": {"labels": {"app": "x"}, "annotations": {LAST: '{"kind":"X"}'}}}
    patch = abort.metadata_patch(live, backup, kubectl_managed=True)
    assert patch == {"labels": {"kustomize.toolkit.fluxcd.io/name": None,
                                "kustomize.toolkit.fluxcd.io/namespace": None,
                                "helm.toolkit.fluxcd.io/name": None},
                     "annotations": {LAST: '{"kind":"X"}'}}


def test_metadata_patch_helm_object_touches_only_flux_labels():
    live = {"metadata": {"labels": {"helm.toolkit.fluxcd.io/name": "loki", "app": "loki"}}}
    backup = {"metadata": {"labels": {"app": "old"}, "annotations": {LAST: "{}"}}}
    assert abort.metadata_patch(live, backup, kubectl_managed=False) == \
        {"labels": {"helm.toolkit.fluxcd.io/name": None}}


def test_metadata_patch_keeps_a_flux_label_the_backup_already_had_and_is_idempotent():
    live = {"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": "apps"},
                         "annotations": {LAST: "{}"}}}
    backup = {"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": "apps"},
                           "annotations": {LAST: "{}"}}}
    assert abort.metadata_patch(live, backup, kubectl_managed=True) == {}


# -- the recipe's destructive shortcuts, refused with the reason -------------------------------
def test_kubectl_delete_of_an_unsuspended_helmrelease_is_refused(tmp_path):
    m = mutator(tmp_path, Live(**{"HelmRelease/loki": hr(False)}))
    why = m.kubectl_refusal(["delete", "helmrelease", "loki", "-n", "logging"])
    assert why and "would UNINSTALL its Helm release" in why
    with pytest.raises(UnsafeActionRefused, match="Suspend it first"):
        m.kubectl(["delete", "hr", "loki", "--namespace", "logging"], "the runbook's recipe")
    assert "refused: kubectl delete hr loki" in (tmp_path / "j.jsonl").read_text()


def test_kubectl_delete_of_a_suspended_helmrelease_is_not_refused(tmp_path):
    m = mutator(tmp_path, Live(**{"HelmRelease/loki": hr(True)}))
    assert m.kubectl_refusal(["delete", "helmrelease", "loki", "-n", "logging"]) is None
    assert m.kubectl_refusal(["get", "helmrelease", "loki"]) is None


def _release(status: str):
    return SimpleNamespace(revision=3, status=status, manifest="")


def test_helm_install_of_an_existing_release_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(helm_storage, "latest", lambda kube, name, ns: _release("deployed")
                        if name == "loki" else None)
    monkeypatch.setattr(Mutator, "flux_manages", lambda self, r, ns: None)
    m = mutator(tmp_path, Live())
    why = m.helm_refusal(["install", "loki", "grafana/loki", "-f", "values.yaml"], "logging")
    assert why and "cannot re-use a name that is still in use" in why and "revision 3" in why
    with pytest.raises(UnsafeActionRefused, match="keep it, `helm upgrade` it"):
        m.helm(["install", "loki", "grafana/loki"], "logging", "the runbook's re-install")
    assert m.helm_refusal(["install", "tempo", "grafana/tempo"], "logging") is None


def test_helm_install_after_an_uninstall_kept_history_is_not_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(helm_storage, "latest", lambda kube, name, ns: _release("uninstalled"))
    monkeypatch.setattr(Mutator, "flux_manages", lambda self, r, ns: None)
    assert mutator(tmp_path, Live()).helm_refusal(["install", "loki", "c"], "logging") is None


# -- the suite: opt-in, highest risk first ------------------------------------------------------
def _collect(*args: str) -> list[str]:
    p = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                        "-p", "no:cacheprovider", "--inventory", str(INVENTORY), *args],
                       cwd=ROOT, capture_output=True, text=True)
    return [ln for ln in p.stdout.splitlines() if "::" in ln]


def test_a_bare_run_never_collects_the_abort():
    ids = _collect()
    assert ids and not [i for i in ids if "suites/abort" in i]


def test_abort_chains_run_highest_risk_first_each_in_step_order():
    ids = _collect("suites/abort")
    comps = [i[i.index("[") + 1:-1] for i in ids if "[" in i]
    order = [c.name for c in reversed(inventory.load(INVENTORY).components)]
    assert [c for n, c in enumerate(comps) if n == 0 or comps[n - 1] != c] == order
    assert ids[:4] == [f"suites/abort/test_abort.py::{t}[loki]" for t in (
        "test_1_preconditions", "test_2_freeze", "test_3_orphan", "test_4_prove")]
    assert ids[-1] == "suites/abort/test_abort.py::test_5_remove_flux"


def test_k_selects_one_component_chain():
    ids = _collect("suites/abort", "-k", "envoy")
    assert [i.split("::")[1] for i in ids] == [f"{t}[envoy-gateway]" for t in (
        "test_1_preconditions", "test_2_freeze", "test_3_orphan", "test_4_prove")]


def test_the_abort_refuses_to_share_a_session_with_the_handover():
    p = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                        "-p", "no:cacheprovider", "--inventory", str(INVENTORY),
                        "suites/phase4", "suites/abort"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode != 0
    assert "the abort (suites/abort) runs on its own" in p.stdout + p.stderr


# -- removing Flux: only when no finalizer would act -------------------------------------------
class FluxObjects(Live):
    """list() of Flux custom resources; get() by Kind/name (the Mutator's deletion rules)."""

    def __init__(self, items):
        super().__init__(**{f"{o['kind']}/{o['metadata']['name']}": o for o in items})
        self.items = items

    def list(self, api_version, kind, namespace=None, label_selector=None):
        return [o for o in self.items if o["kind"] == kind]


def _cr(kind, name, spec, status, finalizers=("finalizers.fluxcd.io",)):
    api = HR if kind == "HelmRelease" else "kustomize.toolkit.fluxcd.io/v1"
    return {"apiVersion": api, "kind": kind, "spec": spec, "status": status,
            "metadata": {"name": name, "namespace": "flux-system",
                         "finalizers": list(finalizers)}}


def test_acting_finalizers_names_what_would_uninstall_or_garbage_collect(tmp_path):
    inv_entries = {"inventory": {"entries": [{"id": "logging_loki_apps_StatefulSet"}]}}
    kube = FluxObjects([
        _cr("HelmRelease", "loki", {"suspend": False}, {"storageNamespace": "logging"}),
        _cr("HelmRelease", "tempo", {"suspend": True}, {"storageNamespace": "logging"}),
        _cr("HelmRelease", "never-reconciled", {}, {}),
        _cr("Kustomization", "apps", {"prune": True}, inv_entries),
        _cr("Kustomization", "frozen", {"prune": True, "suspend": True}, inv_entries),
        _cr("Kustomization", "orphans", {"prune": True, "deletionPolicy": "Orphan"},
            inv_entries),
        _cr("Kustomization", "no-finalizer", {"prune": True}, inv_entries, finalizers=()),
    ])
    acting = abort.acting_finalizers(kube, mutator(tmp_path, kube))
    assert len(acting) == 2, acting
    assert "HelmRelease flux-system/loki is not suspended" in acting[0] or \
        "HelmRelease flux-system/loki is not suspended" in acting[1]
    assert any("Kustomization flux-system/apps would garbage-collect its 1" in a
               for a in acting)


def test_metadata_patch_a_shared_object_backed_up_after_another_components_handover():
    """loki-pv belongs to storage and to Loki: Loki's phase-3 backup was taken after storage's
    handover had labelled it (handover-storage, or the entry point after phase 4); those labels
    are the migration's, not "from before": the abort removes them all (rehearsal: the abort
    after phase 4 left kustomize.toolkit.fluxcd.io/namespace on loki-pv before this)."""
    owners = frozenset({"flux-system", "infrastructure", "workloads", "loki"})
    for backup_name, live_name in (("handover-storage", "handover-storage"),
                                   ("handover-storage", "infrastructure")):
        live = {"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": live_name,
                                        "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}}}
        backup = {"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": backup_name,
                                          "kustomize.toolkit.fluxcd.io/namespace":
                                              "flux-system"}}}
        assert abort.metadata_patch(live, backup, False, owners) == {"labels": {
            "kustomize.toolkit.fluxcd.io/name": None,
            "kustomize.toolkit.fluxcd.io/namespace": None}}
    # an owner that is not the migration's (a Kustomization "apps" from before) is kept
    live = {"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": "apps",
                                    "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}}}
    assert abort.metadata_patch(live, live, False, owners) == {}
