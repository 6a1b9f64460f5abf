"""handover.core.wait (the one deadline loop) and handover.core.objects (object identity)."""
from __future__ import annotations

from handover.core import objects, progress, wait


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def test_until_returns_the_first_result_that_holds():
    c = FakeClock()
    calls = []
    r = wait.until("x", lambda: calls.append(1) or c.now, timeout=10, interval=1,
                   done=lambda v: v >= 3, sleep=c.sleep, clock=c)
    assert r == 3.0 and len(calls) == 4


def test_until_returns_the_last_observation_at_the_deadline_and_reports_failed():
    c = FakeClock()
    seen = []
    prev = progress.set_sink(seen.append)
    try:
        r = wait.until("never", lambda: c.now, timeout=2.5, interval=1, done=lambda v: False,
                       message=lambda v: f"at {v}", sleep=c.sleep, clock=c)
    finally:
        progress.set_sink(prev)
    assert r == 2.5  # the last sleep is cut to the deadline
    assert seen[-1].state == "failed" and seen[-1].what == "never"
    assert any(p.message == "at 1.0" for p in seen)


def test_until_reports_done_and_can_stay_silent():
    c = FakeClock()
    seen = []
    prev = progress.set_sink(seen.append)
    try:
        wait.until("ok", lambda: True, timeout=1, sleep=c.sleep, clock=c)
        wait.until("quiet", lambda: True, timeout=1, report=False, sleep=c.sleep, clock=c)
    finally:
        progress.set_sink(prev)
    assert [p.state for p in seen if p.what == "ok"][-1] == "done"
    assert not [p for p in seen if p.what == "quiet"]


def test_deadline_left_and_expired():
    c = FakeClock()
    d = wait.Deadline(5, clock=c)
    assert d.left() == 5 and not d.expired
    c.now = 7
    assert d.left() == 0 and d.expired and d.elapsed() == 7


def test_object_identity():
    assert objects.group_of("apps/v1") == "apps"
    assert objects.group_of("v1") == ""
    assert objects.version_of("helm.toolkit.fluxcd.io/v2") == "v2"
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    oid = objects.object_id(dep, "media")
    assert oid == ("apps", "Deployment", "media", "web")
    assert str(oid) == "Deployment media/web"  # as messages name objects (kustomize.object_id)
    # the same object served at another version is the same object
    assert objects.object_id({**dep, "apiVersion": "apps/v1beta2"}, "media") == oid
    ns = objects.object_id({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    assert str(ns) == "Namespace x"
