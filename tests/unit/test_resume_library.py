"""handover/flux/resume.py (phase 4's reads and waits) and handover.chain.probe.wait_answering,
against a fake API whose objects change between polls (the waits that used to be written out in
suites/phase4/test_resume.py and suites/abort/test_abort.py)."""
from __future__ import annotations

from types import SimpleNamespace

from handover.chain import probe as probe_mod
from handover.chain.probe import Sample
from handover.core.inventory import HealthCheck
from handover.flux import resume
from handover.flux import rules as flux

NS = "flux-system"
INV = SimpleNamespace(cluster=SimpleNamespace(flux_namespace=NS, rehearsal_state_dir=None))
HEAD = "main@sha1:0123456789abcdef"


def ks(name, ready=True, suspend=False, applied="", handled="", generation=2):
    return {"metadata": {"name": name, "namespace": NS, "generation": generation},
            "spec": {"suspend": suspend} if suspend else {},
            "status": {"observedGeneration": generation, "lastAppliedRevision": applied,
                       "lastHandledReconcileAt": handled,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "reason": "ReconciliationSucceeded" if ready else "Failed",
                                       "message": "ok" if ready else "boom"}]}}


class FakeKube:
    """get() returns the next state of an object at each call (the last one sticks)."""

    def __init__(self, states):
        self.states = {k: list(v) for k, v in states.items()}

    def get(self, api, kind, name, ns=None):
        seq = self.states.get(name) or [None]
        return seq.pop(0) if len(seq) > 1 else seq[0]

    def list(self, api, kind):
        return [s[-1] for s in self.states.values() if s[-1] is not None]


def test_reconciled_needs_the_head_applied_and_the_entry_point_resumed_and_ready():
    assert resume.reconciled(FakeKube({"flux-system": [ks("flux-system", applied=HEAD)],
                                       "apps": [ks("apps")]}), INV, "apps", "0123456789abcdef")
    for states in ({"flux-system": [ks("flux-system", applied="main@sha1:old")],
                    "apps": [ks("apps")]},
                   {"flux-system": [ks("flux-system", applied=HEAD)],
                    "apps": [ks("apps", suspend=True)]},
                   {"flux-system": [ks("flux-system", applied=HEAD)],
                    "apps": [ks("apps", ready=False)]},
                   {"flux-system": [ks("flux-system", applied=HEAD)]}):
        assert not resume.reconciled(FakeKube(states), INV, "apps", "0123456789abcdef")


def test_wait_applied_returns_the_entry_point_once_flux_system_applied_the_head():
    kube = FakeKube({"flux-system": [ks("flux-system", applied="main@sha1:old")] * 2
                     + [ks("flux-system", applied=HEAD)],
                     "apps": [ks("apps", suspend=True)] * 2 + [ks("apps")]})
    got = resume.wait_applied(kube, INV, "apps", "0123456789abcdef", timeout=10)
    assert got is not None and got["metadata"]["name"] == "apps"
    stuck = FakeKube({"flux-system": [ks("flux-system", applied="main@sha1:old")],
                      "apps": [ks("apps")]})
    assert resume.wait_applied(stuck, INV, "apps", "0123456789abcdef", timeout=0.2) is None


def test_wait_reconciled_waits_for_the_token_and_ready():
    kube = FakeKube({"apps": [ks("apps", handled="t0"), ks("apps", ready=False, handled="t1"),
                              ks("apps", handled="t1")]})
    got = resume.wait_reconciled(kube, INV, "apps", "t1", timeout=10)
    assert got is not None and got["status"]["lastHandledReconcileAt"] == "t1"
    assert resume.wait_reconciled(FakeKube({"apps": [ks("apps", handled="t0")]}), INV, "apps",
                                  "t1", timeout=0.2) is None


def test_not_ready_and_temporary_kustomizations_one_line_each():
    kube = FakeKube({"a": [ks("a")], "b": [ks("b", ready=False)], "c": [ks("c", suspend=True)],
                     "handover-loki": [ks("handover-loki")]})
    assert resume.not_ready(kube, flux.KUSTOMIZE_API, "Kustomization") == [
        "Kustomization flux-system/b (generation 2): Failed: boom",
        "Kustomization flux-system/c (generation 2): suspended"]
    assert resume.temporary_kustomizations(kube) == ["flux-system/handover-loki"]


def test_wait_answering_samples_until_every_check_answers(monkeypatch):
    built: list[dict] = []

    class FakeProbe:
        def __init__(self, kube, checks, **kw):
            built.append(kw)
            self.rounds = iter([[Sample("web", 0.0, False, "refused")],
                                [Sample("web", 1.0, True)]])

        def sample_once(self):
            return next(self.rounds)

    monkeypatch.setattr(probe_mod, "Probe", FakeProbe)
    checks = [HealthCheck("web", "ns", 80)]
    samples = probe_mod.wait_answering(None, checks, INV, within=10, interval=0.01, timeout=2.0)
    assert [s.ok for s in samples] == [True]
    assert built == [{"mode": "proxy", "pod_fallback": False, "timeout": 2.0}]

    class Down(FakeProbe):
        def sample_once(self):
            return [Sample("web", 0.0, False, "refused")]

    monkeypatch.setattr(probe_mod, "Probe", Down)
    samples = probe_mod.wait_answering(None, checks, INV, within=0.2, interval=0.05)
    assert [(s.ok, s.detail) for s in samples] == [(False, "refused")]
