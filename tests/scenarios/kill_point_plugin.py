"""Scenario plugin (loaded into the child pytest with ``-p``): a deterministic kill point, named by
``HANDOVER_KILL_POINT=<phase>:<component>:<step>:<point>[:<action>]`` (step and action are fnmatch
patterns; for phases 2 and 4 component is empty and step is the test's name, e.g.
``phase2::test_bootstrap:done``).

point:
- ``started``: right after the step is journaled started (phase 3: the journal's ``started``
  record; phases 2 and 4, which journal only mutations: when the test's call begins);
- ``mutated``: right after the step's first mutation (whose journal action matches ``action``,
  default any) was made, before the journal writes its outcome (the journal's ``done`` is about to
  be written: the intent stays open, as a kill there leaves it);
- ``done``: right after the step is journaled done (phase 3: ``passed``; phases 2 and 4: the
  test's call passed).

At the point the process stops itself with SIGSTOP, once; the scenario sees it stopped and
SIGKILLs its process group, so the kill lands exactly there instead of racing the next action.
Nothing else in the suite changes.
"""
from __future__ import annotations

import os
import signal
from fnmatch import fnmatch

import pytest

from handover.core.journal import Journal

ENV = "HANDOVER_KILL_POINT"
POINTS = ("started", "mutated", "done")


def _point() -> tuple[str, str, str, str, str] | None:
    raw = os.environ.get(ENV, "")
    if not raw:
        return None
    phase, component, step, point, *rest = raw.split(":", 4)
    action = rest[0] if rest else "*"
    if point not in POINTS:
        raise pytest.UsageError(f"{ENV}: point must be one of {POINTS}, got {point!r}")
    return phase, component, step, point, action


_fired = {"n": 0}


def _stop() -> None:
    if _fired["n"]:
        return
    _fired["n"] = 1
    os.kill(os.getpid(), signal.SIGSTOP)


def _matches(ctx: dict, phase: str, component: str, step: str) -> bool:
    return ctx.get("phase") == phase and ctx.get("component", "") == component and \
        fnmatch(ctx.get("step", ""), step)


def pytest_configure(config: pytest.Config) -> None:
    kp = _point()
    if kp is None:
        return
    phase, component, step, point, action_pattern = kp
    original_step, original_done = Journal.step, Journal.done

    def step_(self: Journal, status: str, **detail) -> None:
        original_step(self, status, **detail)
        if _matches(self.context, phase, component, step) and (
                (point == "started" and status == "started") or
                (point == "done" and status == "passed")):
            _stop()

    def done_(self: Journal, id: str, action: str, **detail) -> None:
        if point == "mutated" and _matches(self.context, phase, component, step) and \
                fnmatch(action, action_pattern):
            _stop()
        original_done(self, id, action, **detail)

    Journal.step, Journal.done = step_, done_


def _test_matches(item: pytest.Item, phase: str, step: str) -> bool:
    return phase != "phase3" and f"/{phase}/" in str(item.path) and fnmatch(item.name, step)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    kp = _point()
    if kp is not None and kp[3] == "started" and _test_matches(item, kp[0], kp[2]):
        _stop()
    yield


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    kp = _point()
    if kp is None or kp[3] != "done" or kp[0] == "phase3":
        return
    if report.when == "call" and report.passed and f"/{kp[0]}/" in report.nodeid.replace(
            "suites/", "/") and fnmatch(report.nodeid.split("::")[-1], kp[2]):
        _stop()
