"""handover.flux.takeover's waits on handover.core.wait: sync_source returns at once when the
GitRepository serves the checkout's HEAD, and ends (refused) as soon as the reconcile request is
handled at another revision, without waiting for the timeout."""
from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from handover.core.errors import HandoverError
from handover.flux import takeover

HEAD = "0123456789abcdef0123456789abcdef01234567"


class Mutator:
    token = ""

    def request_reconcile(self, api_version, kind, name, namespace, token):
        Mutator.token = token


class Kube:
    def __init__(self, revision: str, handled_after: int = 0):
        self.revision, self.handled_after, self.gets = revision, handled_after, 0

    def get(self, api_version, kind, name, namespace):
        self.gets += 1
        handled = self.gets > self.handled_after
        return {"metadata": {"name": name, "generation": 1},
                "status": {"lastHandledReconcileAt": Mutator.token if handled else "old",
                           "artifact": {"revision": f"main@sha1:{self.revision}"},
                           "conditions": [{"type": "Ready", "status": "True",
                                           "observedGeneration": 1}]}}


def _inventory(tmp_path):
    return NS(cluster=NS(flux_namespace="flux-system"), gitops=NS(path=tmp_path),
              ready_timeout=30)


def test_sync_source_returns_the_served_revision(monkeypatch, tmp_path):
    monkeypatch.setattr(takeover, "local_head", lambda inv: HEAD)
    kube = Kube(HEAD, handled_after=2)
    rev = takeover.sync_source(kube, Mutator(), _inventory(tmp_path), timeout=30)
    assert rev.endswith(HEAD) and kube.gets == 3


def test_sync_source_refuses_another_revision_without_waiting_out_the_timeout(monkeypatch,
                                                                               tmp_path):
    monkeypatch.setattr(takeover, "local_head", lambda inv: HEAD)
    kube = Kube("f" * 40)
    with pytest.raises(HandoverError, match="serves main@sha1:ffff.*push the checkout"):
        takeover.sync_source(kube, Mutator(), _inventory(tmp_path), timeout=30)
    assert kube.gets == 1  # one read: the wait ended when the request was handled
