"""The abort runbook's chain (suites/abort): ordering, journal, halt and resume.

A chain step is a test marked ``@pytest.mark.abort_step("<step>")`` with a ``component``
argument; ``@pytest.mark.abort_final`` marks the optional Flux removal that runs after every
chain. This plugin
- keeps suites/abort out of every run that does not name it: a bare ``pytest --perform`` (which
  runs the handover, ``testpaths = suites``) never aborts it;
- orders the chains highest risk first (the reverse of the handover's inventory order), each
  component's steps in order (STEPS), the final step last;
- journals every step (started / passed / failed) in the same journal as phase 3 (phase
  ``abort``), with the run id of plugins.journal; mutations go through the same Mutator;
- halts at the first failing step: the component's later steps are skipped naming it, later
  components are not started, the final step does not run. There is no rollback of an abort:
  everything is left frozen (suspended), the safe state, and every step checks the live state
  first, so running the abort again continues where it stopped;
- resumes from the journal: a component whose chain passed is skipped ("handed back in run X");
  steps that passed in the current attempt are not repeated (the preconditions' record, i.e. what
  Flux managed and the snapshot from before the abort, is read back from the journal);
- runs one availability probe over the health checks of every selected component, from the
  first mutating step to the last component's proof (the downtime of the whole abort).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from handover.core import journal as journal_mod
from handover.chain.abort import ComponentState
from handover.report.migration import StepResult

PHASE = "abort"
STEPS = ("preconditions", "freeze", "orphan", "prove")
ABORT_DIR = Path(__file__).resolve().parents[1] / "suites" / "abort"

RUN_KEY = pytest.StashKey["AbortRun"]()
HALT_KEY = pytest.StashKey[tuple]()
_T0 = pytest.StashKey[float]()


@dataclass
class AbortComponent:
    name: str
    progress: journal_mod.Progress | None = None
    state: ComponentState | None = None  # preconditions: what Flux managed
    before: Any = None  # handover.snapshot.component.Snapshot before the abort
    detail: dict[str, dict[str, Any]] = field(default_factory=dict)  # step -> journal detail
    resumed: bool = False


class AbortRun:
    """Per-run state of the abort chains (the journal is what persists)."""

    def __init__(self, config: pytest.Config):
        from plugins.journal import handover_run
        self.config = config
        self.handover = handover_run(config)  # same journal, same run id
        self.id = self.handover.id
        self.journal = self.handover.journal
        self.components: dict[str, AbortComponent] = {}
        self.selected: list[str] = []  # components of the selected chain steps, chain order
        self.probe: Any = None
        self.probe_result: Any = None

    def component(self, name: str) -> AbortComponent:
        if name not in self.components:
            self.components[name] = AbortComponent(
                name, journal_mod.progress(self.journal, PHASE, name, first_step=STEPS[0],
                                           last_step=STEPS[-1]))
        return self.components[name]

    def record_step(self, component: str, step: str, status: str, **detail: Any) -> None:
        self.journal.set_context(PHASE, component, step)
        self.journal.step(status, run=self.id, **detail)

    def passed_detail(self, component: str, step: str) -> dict[str, Any]:
        p = self.component(component).progress
        return (p.passed.get(step) if p else None) or {}

    def snapshot_dir(self, inventory, component: str) -> Path:
        d = inventory.backups / component / f"abort-{self.id}"
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return d

    def keep_before(self, inventory, component: str, snap) -> str:
        path = self.snapshot_dir(inventory, component) / "snapshot-before-abort.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, snap.to_json().encode())
        finally:
            os.close(fd)
        return str(path)

    def restore(self, component: str) -> AbortComponent:
        """A resumed chain: read the preconditions' record back from the journal."""
        from handover.snapshot import component as snapshot_mod
        ac = self.component(component)
        d = self.passed_detail(component, "preconditions")
        if ac.state is None and d.get("state"):
            ac.state = ComponentState.from_dict(d["state"])
        if ac.before is None and d.get("snapshot") and Path(d["snapshot"]).exists():
            ac.before = snapshot_mod.Snapshot.from_dict(json.loads(Path(d["snapshot"]).read_text()))
        return ac


def abort_run(config: pytest.Config) -> AbortRun:
    if RUN_KEY not in config.stash:
        config.stash[RUN_KEY] = AbortRun(config)
    return config.stash[RUN_KEY]


@pytest.fixture(scope="session")
def abort_state(pytestconfig: pytest.Config) -> AbortRun:
    return abort_run(pytestconfig)


@pytest.fixture(scope="session")
def remove_flux_requested(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--remove-flux"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("flux-handover").addoption(
        "--remove-flux", action="store_true", default=False,
        help="abort: after every component is handed back, remove Flux itself (controllers, "
             "CRDs), only when no Flux object left has a finalizer that would act")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "abort_step(name): one step of a component's abort "
                                       "chain (" + ", ".join(STEPS) + ")")
    config.addinivalue_line("markers", "abort_final: the abort's last step, after every chain")


def _requested(config: pytest.Config) -> bool:
    base = Path(config.invocation_params.dir)
    for arg in config.args:
        p = Path(arg.split("::")[0])
        p = (p if p.is_absolute() else base / p).resolve()
        if p == ABORT_DIR or ABORT_DIR in p.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """suites/abort is collected only when named on the command line."""
    p = Path(collection_path).resolve()
    if (p == ABORT_DIR or ABORT_DIR in p.parents) and not _requested(config):
        return True
    return None


def step_of(item: pytest.Item) -> tuple[str, Any] | None:
    m = item.get_closest_marker("abort_step")
    callspec = getattr(item, "callspec", None)
    if m is None or callspec is None or "component" not in callspec.params:
        return None
    return m.args[0], callspec.params["component"]


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Highest risk first: the reverse of the inventory (handover) order; each chain in step
    order; the final step after every chain; other items keep their order, before."""
    if not any(step_of(it) or it.get_closest_marker("abort_final") for it in items):
        return
    others = [it.nodeid for it in items if not (Path(str(it.path)).resolve() == ABORT_DIR or
                                                 ABORT_DIR in Path(str(it.path)).resolve().parents)]
    if others:
        raise pytest.UsageError(
            f"the abort (suites/abort) runs on its own, not in one session with other steps "
            f"({others[0]}{' and more' if len(others) > 1 else ''}): run `pytest suites/abort` "
            "alone")
    from plugins.safety import load_inventory
    order = {c.name: n for n, c in enumerate(reversed(load_inventory(config).components))}

    def key(pair):
        i, it = pair
        s = step_of(it)
        if s is not None:
            step, comp = s
            if step not in STEPS:
                raise pytest.UsageError(f"{it.nodeid}: unknown abort_step {step!r} "
                                        f"(steps: {', '.join(STEPS)})")
            return (1, order.get(comp.name, len(order)), STEPS.index(step), i)
        if it.get_closest_marker("abort_final"):
            return (2, 0, 0, i)
        return (0, 0, 0, i)
    items[:] = [it for _, it in sorted(enumerate(items), key=key)]


def pytest_collection_finish(session: pytest.Session) -> None:
    names: list[str] = []
    for it in session.items:
        s = step_of(it)
        if s is not None and s[1].name not in names:
            names.append(s[1].name)
    if names:
        abort_run(session.config).selected = names


def _perform(config: pytest.Config) -> bool:
    return bool(config.getoption("--perform"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    s = step_of(item)
    config = item.config
    halt = config.stash.get(HALT_KEY, None)
    if s is None:
        if item.get_closest_marker("abort_final") and halt is not None:
            pytest.skip(f"not run: component {halt[0]} halted at step {halt[1]} ({halt[2]})")
        return (yield)
    step, component = s
    if halt is not None:
        if halt[0] == component.name:
            pytest.skip(f"halted: {component.name} failed at step {halt[1]} ({halt[2]}); "
                        "everything is left suspended (frozen); fix the cause and run again")
        pytest.skip(f"not started: component {halt[0]} halted at step {halt[1]} ({halt[2]}); "
                    "later components are not started")
    if not _perform(config):
        return (yield)
    run = abort_run(config)
    ac = run.component(component.name)
    p = ac.progress
    if p is not None and p.state == "done" and step == STEPS[0]:
        p3 = run.handover.component(component.name).progress
        if p3 is not None and p3.state not in ("fresh", "rolled-back"):
            # handed over again (phase 3) since that abort: this is a new abort attempt
            run.record_step(component.name, "rollback", "rolled-back",
                            reason=f"phase 3 handed {component.name} over again (journal: "
                                   f"{p3.state}, run {p3.run}) after abort run {p.run}: a new "
                                   "abort attempt")
            ac.progress = p = journal_mod.Progress(component.name)
    if p is not None and p.state == "done":
        pytest.skip(f"{component.name} was handed back in abort run {p.run} (journal "
                    f"{run.journal.path}); nothing is repeated")
    if p is not None and p.state in ("in-progress", "failed") and step in p.passed and not (
            step == STEPS[0] and not (p.passed[step].get("state") or {}).get("managed")):
        # (a component found NOT managed is looked at again: it may have been handed over since)
        ac.resumed = True
        run.restore(component.name)
        pytest.skip(f"{component.name}: abort step {step} passed in run "
                    f"{p.passed[step].get('run', '?')} (journal); not repeated")
    if step != STEPS[0]:
        run.restore(component.name)
    return (yield)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    s = step_of(item)
    if s is not None and _perform(item.config):
        abort_run(item.config).record_step(s[1].name, s[0], "started")
        item.stash[_T0] = time.monotonic()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    s = step_of(item)
    if s is None or report.when not in ("setup", "call"):
        return
    if report.when == "setup" and not report.failed and not report.skipped:
        return
    step, component = s
    config = item.config
    if report.skipped:
        if _perform(config) and report.when == "call":
            reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
            abort_run(config).record_step(component.name, step, "skipped", reason=reason[:500])
        return
    if not _perform(config):
        if report.failed:
            config.stash[HALT_KEY] = (component.name, step, item.name)
        return
    run = abort_run(config)
    from plugins.report import migration_report
    rep = migration_report(config).component(component.name, component.type, component.risk)
    seconds = time.monotonic() - item.stash.get(_T0, time.monotonic())
    if report.passed:
        run.record_step(component.name, step, "passed",
                        **run.component(component.name).detail.get(step, {}))
        rep.steps.append(StepResult(f"abort:{step}", "passed", seconds))
        return
    message = str(report.longrepr.reprcrash.message) if hasattr(report.longrepr, "reprcrash") \
        else str(report.longrepr)[-2000:]
    run.record_step(component.name, step, "failed", error=message[:2000])
    rep.steps.append(StepResult(f"abort:{step}", "failed", seconds, message))
    rep.failed_step, rep.failure = f"abort:{step}", message
    rep.status = "abort halted (left suspended)"
    config.stash[HALT_KEY] = (component.name, step, item.name)


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(RUN_KEY, None)
    if run is not None and run.probe is not None:
        run.probe_result = run.probe.stop()
        run.probe = None
