"""The Mutator's refusals (handover/core/mutation.py): without --perform, in another context, and the
runbook's destructive deletions — each refused before anything is sent, with the reason
journaled."""
from __future__ import annotations

from pathlib import Path

import pytest

from handover.core import inventory
from handover.core.errors import UnsafeActionRefused
from handover.core.journal import Journal
from handover.core.kube import ContextMismatch
from handover.core.mutation import Mutator

ROOT = Path(__file__).resolve().parents[2]
KS = "kustomize.toolkit.fluxcd.io/v1"
HR = "helm.toolkit.fluxcd.io/v2"


class LiveObjects:
    """get() from a dict; any attempt to reach the API for a mutation fails the test."""

    def __init__(self, context="homelab", **objects):
        self.context = context
        self.objects = objects

    def get(self, api_version, kind, name, namespace=None):
        return self.objects.get(f"{kind}/{name}")

    def resource(self, *a):
        pytest.fail("a refused mutation reached the API")


def mutator(tmp_path, kube, perform=True):
    inv = inventory.load(ROOT / "examples/homelab/migration.yaml")
    return Mutator(kube, inv, Journal(tmp_path / "journal.jsonl"), perform)


def ks(prune, suspend=False, policy=None, entries=1):
    spec = {"prune": prune, "suspend": suspend}
    if policy:
        spec["deletionPolicy"] = policy
    return {"spec": spec, "status": {"inventory": {"entries": [{"id": f"x_{i}"}
                                                               for i in range(entries)]}}}


@pytest.mark.parametrize("obj,refused", [
    (ks(prune=True), True),
    (ks(prune=True, policy="Delete"), True),
    (ks(prune=True, suspend=True), False),
    (ks(prune=True, policy="Orphan"), False),
    (ks(prune=False), False),  # MirrorPrune mirrors prune: false -> orphan
    (ks(prune=False, policy="Delete"), True),
    (ks(prune=True, entries=0), False),
])
def test_kustomization_deleted_only_when_it_orphans(tmp_path, obj, refused):
    m = mutator(tmp_path, LiveObjects(**{"Kustomization/handover-loki": obj}))
    why = m.delete_safety(KS, "Kustomization", "handover-loki", "flux-system")
    assert (why is not None) == refused, why
    if refused:
        assert "would garbage-collect its" in why and "Suspend it or set deletionPolicy: Orphan" \
            in why
        with pytest.raises(UnsafeActionRefused):
            m.delete(KS, "Kustomization", "handover-loki", "flux-system", "test")
        notes = [e for e in m.journal.entries() if e.kind == "note"]
        assert notes and notes[-1].action.startswith("refused: delete Kustomization")


def test_unsuspended_reconciled_helmrelease_is_not_deleted(tmp_path):
    live = {"spec": {"suspend": False}, "status": {"storageNamespace": "logging"}}
    m = mutator(tmp_path, LiveObjects(**{"HelmRelease/loki": live}))
    with pytest.raises(UnsafeActionRefused, match="would UNINSTALL its Helm release"):
        m.delete(HR, "HelmRelease", "loki", "logging", "rollback")
    assert m.delete_safety(HR, "HelmRelease", "loki", "logging") is not None
    live["spec"]["suspend"] = True
    assert m.delete_safety(HR, "HelmRelease", "loki", "logging") is None


def test_kinds_the_runbook_does_not_name_are_never_deleted(tmp_path):
    m = mutator(tmp_path, LiveObjects())
    with pytest.raises(UnsafeActionRefused, match="not a step of the runbook"):
        m.delete("v1", "PersistentVolumeClaim", "storage-loki-0", "logging", "cleanup")


def test_no_perform_and_wrong_context_refuse_before_anything(tmp_path):
    m = mutator(tmp_path, LiveObjects(), perform=False)
    with pytest.raises(UnsafeActionRefused, match="dry run .no --perform.: would patch"):
        m.suspend(HR, "HelmRelease", "loki", "logging")
    m = mutator(tmp_path, LiveObjects(context="production"))
    with pytest.raises(ContextMismatch, match="'production' but the inventory's cluster.context "
                                              "is 'homelab'"):
        m.suspend(HR, "HelmRelease", "loki", "logging")
    assert not [e for e in m.journal.entries() if e.kind == "intent"]
