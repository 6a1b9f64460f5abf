"""Halt-and-rollback for the phase-3 chains.

A chain step is a test marked ``@pytest.mark.handover_step("<step>")`` with a ``component``
argument. This plugin
- orders the steps: each component's chain, in step order, before the next component (inventory
  order, lowest risk first), whatever order pytest collected them in;
- journals each step (started / passed / failed) through the journal plugin;
- halts at the first failing step of a component: its later steps are skipped with the failed
  step's name, later components are not started, and the component's rollback
  (handover.chain.rollback) runs at once, when a mutating step had begun;
- puts every rollback action and its result into the failing test's JUnit properties
  (``rollback.<n>``), a "rollback" report section, the journal and the migration report;
- on a resumed run, skips steps the journal says passed (plugins.journal.resume_skip_reason) and
  finishes an interrupted rollback before anything else;
- never rolls back a component whose handover finished (step ``finish`` passed, in this run or in
  the journal): a later failure (step ``record``, a resumed run) is reported, not undone.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from pathlib import Path

import pytest

from handover.chain import rollback as rollback_mod
from handover.report.migration import StepResult
from plugins.journal import STEPS, handover_run, resume_skip_reason
from plugins.report import migration_report

HALT_KEY = pytest.StashKey["Halt"]()


@dataclass
class Halt:
    component: str
    step: str
    test: str
    rolled_back: bool


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "handover_step(name): one step of a component's phase-3 "
                                       "chain (" + ", ".join(STEPS) + ")")


def step_of(item: pytest.Item) -> tuple[str, object] | None:
    """(step name, Component) of a chain step item, else None."""
    m = item.get_closest_marker("handover_step")
    callspec = getattr(item, "callspec", None)
    if m is None or callspec is None or "component" not in callspec.params:
        return None
    return m.args[0], callspec.params["component"]


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Chain order: (component's inventory position, step position). The phases keep their order
    (suites/phase1 .. phase4, so `pytest -k envoy` runs phase 1's checks of Envoy Gateway, its
    handover, then phase 4's); within a phase other items keep their relative order and come
    before the chain."""
    from plugins.safety import load_inventory
    steps = [(i, step_of(it)) for i, it in enumerate(items)]
    if not any(s for _, s in steps):
        return
    order = {c.name: n for n, c in enumerate(load_inventory(config).components)}

    def key(pair):
        i, s = pair
        phase = phase_rank(items[i])
        if s is None:
            return (phase, 0, i, 0, 0)
        step, comp = s
        if step not in STEPS:
            raise pytest.UsageError(f"{items[i].nodeid}: unknown handover_step {step!r} "
                                    f"(steps: {', '.join(STEPS)})")
        return (phase, 1, order.get(comp.name, len(order)), STEPS.index(step), i)
    items[:] = [items[i] for i, _ in sorted(steps, key=key)]


def phase_rank(item: pytest.Item) -> int:
    """N for an item under a `phaseN` directory (suites/phase3/...), else 0."""
    for part in reversed(Path(str(item.path)).parts):
        if part.startswith("phase") and part[5:].isdigit():
            return int(part[5:])
    return 0


def _perform(config: pytest.Config) -> bool:
    return bool(config.getoption("--perform"))


def run_rollback(item: pytest.Item, component, reason: str) -> list[rollback_mod.RollbackAction]:
    """Run the component's rollback now, with the session's kube/mutator/inventory."""
    config = item.config
    run = handover_run(config)
    cr = run.component(component.name)
    if cr.probe is not None:  # stop measuring: the rollback is not the handover
        cr.probe_result = cr.probe.stop()
        cr.probe = None
    req = item._request  # the test's fixture request: session fixtures are still alive
    kube = req.getfixturevalue("kube")
    mutator = req.getfixturevalue("mutator")
    inventory = req.getfixturevalue("inventory")
    record = cr.backup
    if record is None:
        from fixtures.backups import backup_from_journal
        record = backup_from_journal(run, component.name)
    run.record_step(component.name, "rollback", "started", reason=reason)
    rb = rollback_mod.Rollback(kube, mutator, inventory, component, record)
    actions = rb.run()
    run.record_step(component.name, "rollback", "rolled-back" if rb.ok else "rollback-failed",
                    actions=[a.to_dict() for a in actions])
    return actions


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    s = step_of(item)
    if s is None:
        return (yield)
    step, component = s
    config = item.config
    halt = config.stash.get(HALT_KEY, None)
    if halt is not None:
        if halt.component == component.name:
            pytest.skip(f"halted: {component.name} failed at step {halt.step} ({halt.test})"
                        f"{'; rolled back' if halt.rolled_back else ''}")
        pytest.skip(f"not started: component {halt.component} halted at step {halt.step} "
                    f"({halt.test}); later components are not started")
    if not _perform(config):
        # dry run: steps decide themselves (read-only ones run, mutating ones skip)
        return (yield)
    run = handover_run(config)
    cr = run.component(component.name)
    p = cr.progress
    if p is not None and p.state == "failed" and step == STEPS[0] and not cr.mutated \
            and not run.finished(component.name):
        # A previous run failed (or was killed) and its rollback did not complete: finish it.
        # The rollback takes the session's kube/mutator/inventory from the item's fixture
        # request, so the item is set up first (pytest refuses fixture lookups on an item
        # that is not set up: the first item of a run would get FixtureLookupError).
        yield
        actions = run_rollback(item, component, f"journal: run {p.run} failed at "
                                                f"{p.failed_step or p.last_started}")
        rep = migration_report(config).component(component.name, component.type, component.risk)
        rep.rollback += [a.to_dict() for a in actions]
        rep.status = "rolled back (from the journal)" if all(
            a.result != "failed" for a in actions) else "rollback FAILED"
        config.stash[HALT_KEY] = Halt(component.name, p.failed_step or p.last_started,
                                      f"run {p.run}", True)
        pytest.skip(f"halted: {component.name}: run {p.run} failed at step "
                    f"{p.failed_step or p.last_started}; rolled back from the journal now "
                    f"({'; '.join(str(a) for a in actions)}). Fix the cause and run again.")
    reason = resume_skip_reason(run, component.name, step)
    if reason:
        rep = migration_report(config).component(component.name, component.type, component.risk)
        rep.steps.append(StepResult(step, "skipped", 0.0, reason))
        if p is not None and p.state == "done":
            rep.status = f"handed over (run {p.run})"
        pytest.skip(reason)
    return (yield)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    s = step_of(item)
    if s is None or not _perform(item.config):
        yield
        return
    step, component = s
    run = handover_run(item.config)
    rep = migration_report(item.config).component(component.name, component.type,
                                                  component.risk)
    if rep.started is None:
        rep.started = time.time()
    run.record_step(component.name, step, "started")
    item.stash[_T0] = time.monotonic()
    yield


_T0 = pytest.StashKey[float]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    s = step_of(item)
    if s is None or report.when not in ("setup", "call"):
        return
    step, component = s
    config = item.config
    if not _perform(config):
        return
    if report.when == "setup" and not report.failed:
        return
    run = handover_run(config)
    rep = migration_report(config).component(component.name, component.type, component.risk)
    seconds = time.monotonic() - item.stash.get(_T0, time.monotonic())
    if report.skipped:
        return
    if report.passed:
        cr = run.component(component.name)
        detail = {}
        if step == "backup" and cr.backup is not None:
            detail["backup"] = cr.backup.directory
        if step == "snapshot" and cr.before is not None:
            detail["snapshot"] = getattr(cr, "snapshot_path", "")
        run.record_step(component.name, step, "passed", **detail)
        rep.steps.append(StepResult(step, "passed", seconds))
        if step == STEPS[-1]:
            rep.finished = time.time()
            rep.status = "handed over"
        return
    # failed: halt the component, roll it back at once
    message = str(report.longrepr.reprcrash.message) if hasattr(report.longrepr, "reprcrash") \
        else str(report.longrepr)[-2000:]
    run.record_step(component.name, step, "failed", error=message[:2000])
    rep.steps.append(StepResult(step, "failed", seconds, message))
    rep.failed_step, rep.failure = step, message
    actions: list[rollback_mod.RollbackAction] = []
    rolled = False
    if run.finished(component.name):
        # handed over: Flux manages it and the temporary Kustomization is gone. A later step's
        # failure is reported, never answered by undoing the handover.
        rep.status = f"handed over; step {step} FAILED afterwards (not rolled back)"
        actions = [rollback_mod.RollbackAction(
            "rollback", "not-needed",
            f"step {step} failed after the handover finished (step finish passed): a finished "
            "component is never rolled back automatically; fix what the step reports and run "
            "again (the finished steps are not repeated)")]
    elif run.mutation_began(component.name):
        try:
            actions = run_rollback(item, component, f"step {step} failed")
            rolled = all(a.result != "failed" for a in actions)
        except Exception as e:  # the rollback itself broke: say so loudly, keep the halt
            actions = [rollback_mod.RollbackAction("rollback", "failed",
                                                   f"{e.__class__.__name__}: {e}")]
        rep.status = "rolled back" if rolled else "rollback FAILED: see the actions"
    else:
        rep.status = "halted (nothing had been changed)"
        actions = [rollback_mod.RollbackAction("rollback", "not-needed",
                                               f"step {step} failed before any mutation")]
    rep.rollback += [a.to_dict() for a in actions]
    rep.finished = time.time()
    for n, a in enumerate(actions, 1):
        # junitxml writes the properties of the teardown report, made from item.user_properties
        item.user_properties.append((f"rollback.{n}", str(a)))
        report.user_properties.append((f"rollback.{n}", str(a)))
    report.sections.append(("rollback", "\n".join(f"{n}. {a}" for n, a in
                                                  enumerate(actions, 1))))
    config.stash[HALT_KEY] = Halt(component.name, step, item.name, rolled)
