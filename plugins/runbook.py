"""The runbook plugin: ONE registered object (``RunbookPlugin``, pytest's stepwise.py model) whose
hooks are methods, and which owns this run's journal, rollback, report and abort state.

It derives everything from the chains declared as data in handover.runbook:
- binding: a test is a step by ``pytestmark = pytest.mark.chain("<phase>")`` on its module and
  ``@pytest.mark.step("<step>")`` on the test; an unknown chain or step name, or a test of a chain
  that names no step, stops the session at collection (a misspelt name cannot block nothing);
- ordering: pytest-order orders the phases (PHASES) and puts each step after the steps it needs
  (``order`` markers added here); one collection hook regroups per-component chains, one
  component's whole chain before the next one's, which pytest-order cannot express;
- blocking: a step whose needed step failed, did not act (dry run, raised by
  ``plugins.safety.skip_unless_perform``) or was itself blocked in this run is skipped naming it;
  decided from the outcomes recorded here, never by reading skip messages;
- per-component chains (phase 3, abort): every step journaled (started / passed / failed), the
  first failure halts the component (its later steps skipped naming it, later components not
  started), phase 3 rolls back at once (plugins.rollback) unless the chain had finished; a resumed
  run skips what the journal says passed and finishes an interrupted rollback first;
- the migration report (plugins.report), rewritten after every phase-3 step.

Options: --journal (default ``<inventory backups>/journal.jsonl``), --report-dir (default
``reports``), --remove-flux (abort). Fixtures: ``handover_run_state``, ``run_id``, ``journal``,
``mutator`` (the one place that mutates: --perform, context guard, journal first), ``report`` (the
MigrationReport), ``abort_state``, ``remove_flux_requested``.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from handover import runbook as model
from handover.core import journal as journal_mod
from handover.core.inventory import Inventory
from handover.core.mutation import Mutator
from handover.report.migration import MigrationReport, StepResult
from plugins import abort as abort_part
from plugins import report as report_part
from plugins.journal import HandoverRun, resume_skip_reason
from plugins.rollback import Resources, answer_failure, run_rollback
from plugins.safety import did_not_act, kube_context_in_use, load_inventory, skip_not_acted

RUNBOOK_KEY = pytest.StashKey["RunbookPlugin"]()
STEP_KEY = pytest.StashKey["StepRef"]()
_T0 = pytest.StashKey[float]()  # monotonic start of a step's call
_WALL0 = pytest.StashKey[float]()  # wall-clock start of a step's call (the report's timeline)


@dataclass(frozen=True)
class StepRef:
    """A collected item as a step of a chain (and, for a per-component chain, its component)."""

    chain: model.Chain
    step: model.Step
    component: Any = None


@dataclass
class Halt:
    component: str
    step: str
    test: str
    rolled_back: bool = False


def step_ref(item: pytest.Item) -> StepRef | None:
    return item.stash.get(STEP_KEY, None)


def bind(item: pytest.Item) -> StepRef | None:
    """The item's step, from its markers; a UsageError naming what is wrong otherwise."""
    cm, sm = item.get_closest_marker("chain"), item.get_closest_marker("step")
    if cm is None and sm is None:
        return None
    if cm is None or not cm.args:
        raise pytest.UsageError(
            f"{item.nodeid}: a step marker without a chain: mark its module "
            '`pytestmark = pytest.mark.chain("<phase>")`'
        )
    try:
        chain = model.chain(cm.args[0])
        if sm is None or not sm.args:
            raise KeyError(
                f"every test of the {chain.phase} chain is one of its steps: mark it "
                f'@pytest.mark.step("<step>") (steps: {", ".join(chain.names)})'
            )
        step = chain.step(sm.args[0])
    except KeyError as e:
        raise pytest.UsageError(f"{item.nodeid}: {e.args[0]}") from None
    component = None
    if chain.per_component and step not in chain.final:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "component" not in callspec.params:
            raise pytest.UsageError(
                f"{item.nodeid}: a step of the per-component {chain.phase} "
                "chain takes a `component` argument"
            )
        component = callspec.params["component"]
    return StepRef(chain, step, component)


def phase_rank(item: pytest.Item) -> int | None:
    """N for an item under a runbook phase directory (suites/phaseN/...), else None."""
    for part in reversed(Path(str(item.path)).parts):
        if part in model.PHASES:
            return model.PHASES.index(part) + 1
    return None


def _message(report: pytest.TestReport) -> str:
    if hasattr(report.longrepr, "reprcrash"):
        return str(report.longrepr.reprcrash.message)
    return str(report.longrepr)[-2000:]


class RunbookPlugin:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._run: HandoverRun | None = None
        self._recorder: report_part.Recorder | None = None
        self._abort: abort_part.AbortRun | None = None
        self.resources: Resources | None = None  # registered by the `mutator` fixture
        self.halts: dict[str, Halt] = {}  # chain phase -> where it halted in this run
        # (phase, step) -> (nodeid, "failed" | "was skipped"): steps that block what needs them
        self.blocking: dict[tuple[str, str], tuple[str, str]] = {}
        self._after: dict[str, list[tuple[str, set[str]]]] = {}  # nodeid -> needed functions
        self._needing: list[pytest.Item] = []  # items with an order(after=...) marker
        self._func_ids: dict[str, set[str]] = {}  # test function -> its collected nodeids
        self._deselected: set[str] = set()

    # -- the run's parts, made on first use (they need the inventory) ---------------------------
    @property
    def perform(self) -> bool:
        return bool(self.config.getoption("--perform"))

    @property
    def inventory(self) -> Inventory:
        """The validated inventory (plugins.safety loads it once; an invalid one stops the
        session)."""
        return load_inventory(self.config)

    @property
    def run(self) -> HandoverRun:
        if self._run is None:
            path = self.config.getoption("--journal")
            self._run = HandoverRun(
                Path(path) if path else self.inventory.backups / "journal.jsonl"
            )
        return self._run

    @property
    def recorder(self) -> report_part.Recorder:
        if self._recorder is None:
            inv = self.inventory
            self._recorder = report_part.Recorder(
                self.config, self.run, str(inv.source), kube_context_in_use(self.config, inv)
            )
        return self._recorder

    @property
    def report(self) -> MigrationReport:
        return self.recorder.report

    @property
    def abort(self) -> abort_part.AbortRun:
        if self._abort is None:
            self._abort = abort_part.AbortRun(self.run)
        return self._abort

    def _recorder_or_none(self) -> report_part.Recorder | None:
        try:
            return self.recorder
        except Exception:  # no inventory / wrong context: the safety plugin says so
            return None

    # -- collection -------------------------------------------------------------------------------
    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        return True if abort_part.ignored(collection_path, config) else None

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Bind every item to its step, and give pytest-order what it orders: the phases in
        PHASES order, each step after the steps it needs."""
        funcs: dict[tuple[str, str], set[str]] = {}
        for it in items:
            self._func_ids.setdefault(getattr(it, "originalname", it.name), set()).add(it.nodeid)
            ref = bind(it)
            if ref is not None:
                it.stash[STEP_KEY] = ref
                funcs.setdefault((ref.chain.phase, ref.step.name), set()).add(
                    getattr(it, "originalname", it.name)
                )
        if any((r := step_ref(it)) and r.chain is model.ABORT for it in items):
            others = [it.nodeid for it in items if not abort_part.under_abort(it.path)]
            if others:
                raise pytest.UsageError(
                    f"the abort (suites/abort) runs on its own, not in one session with other "
                    f"steps ({others[0]}{' and more' if len(others) > 1 else ''}): run "
                    "`pytest suites/abort` alone"
                )
        ranks = [phase_rank(it) for it in items]
        if len(set(ranks) - {None}) > 1:  # several phases: pytest-order puts them in order
            for it, rank in zip(items, ranks, strict=True):
                it.add_marker(pytest.mark.order(rank or 0))
        for it in items:
            ref = step_ref(it)
            if ref is None or not ref.step.needs:
                continue
            self._after[it.nodeid] = [
                (n, funcs.get((ref.chain.phase, n), set())) for n in ref.step.needs
            ]
            self._needing.append(it)
            self._mark_after(it, set())

    def _mark_after(self, item: pytest.Item, gone: set[str]) -> None:
        """order(after=...) over the needed steps' test functions still selected."""
        item.own_markers[:] = [
            m for m in item.own_markers if not (m.name == "order" and "after" in m.kwargs)
        ]
        labels = sorted({f for _, fs in self._after.get(item.nodeid, []) for f in fs} - gone)
        if labels:
            item.add_marker(pytest.mark.order(after=labels))

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        """-k / -m deselected some steps: order only after the needed ones still selected (else
        pytest-order warns about every relation it cannot keep). Runs before pytest-order."""
        self._deselected |= {it.nodeid for it in items}
        gone = {f for f, ids in self._func_ids.items() if ids <= self._deselected}
        for it in self._needing:
            if it.nodeid not in self._deselected:
                self._mark_after(it, gone)

    @pytest.hookimpl(wrapper=True, specname="pytest_collection_modifyitems")
    def pytest_regroup_chains(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> Generator:
        """After every other collection hook, pytest-order's included."""
        result = yield
        self._chain_order(items)
        return result

    # -- per-component chains ---------------------------------------------------------------------
    def _chain_order(self, items: list[pytest.Item]) -> None:
        """What pytest-order cannot express: a per-component chain runs one component's whole
        chain before the next component's (inventory order, or its reverse for the abort), each in
        step order; the other items of the phase keep their place before the chain (a final step
        after every chain)."""
        if not any((r := step_ref(it)) and r.chain.per_component for it in items):
            return
        comps = [c.name for c in self.inventory.components]

        def key(pair: tuple[int, pytest.Item]) -> tuple:
            i, it = pair
            ref = step_ref(it)
            rank = phase_rank(it) or 0
            if ref is None or not ref.chain.per_component:
                return (rank, 0, 0, 0, i)
            if ref.component is None:  # a final step
                return (rank, 2, 0, 0, i)
            order = comps if ref.chain.per_component == "inventory" else comps[::-1]
            pos = order.index(ref.component.name) if ref.component.name in order else len(order)
            return (rank, 1, pos, ref.chain.index(ref.step.name), i)

        items[:] = [it for _, it in sorted(enumerate(items), key=key)]

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        names: list[str] = []
        for it in session.items:
            ref = step_ref(it)
            if (
                ref is not None
                and ref.chain is model.ABORT
                and ref.component is not None
                and ref.component.name not in names
            ):
                names.append(ref.component.name)
        if names:
            self.abort.selected = names

    # -- running a step ---------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator:
        ref = step_ref(item)
        if ref is None:
            return (yield)
        if ref.chain is model.PHASE3:
            return (yield from self._setup_phase3(item, ref))
        if ref.chain is model.ABORT:
            self._setup_abort(item, ref)
            return (yield)
        for need in ref.step.needs:
            if (ref.chain.phase, need) in self.blocking:
                nodeid, how = self.blocking[(ref.chain.phase, need)]
                skip_not_acted(
                    f"not run: the earlier step {nodeid} {how} in this run; fix what "
                    "it reports (or run with --perform) and run the phase again"
                )
        return (yield)

    def _halted(self, ref: StepRef, suffix: str = "") -> None:
        halt = self.halts.get(ref.chain.phase)
        if halt is None:
            return
        if ref.component is None:  # the abort's final step
            pytest.skip(
                f"not run: component {halt.component} halted at step {halt.step} ({halt.test})"
            )
        if halt.component == ref.component.name:
            if ref.chain is model.PHASE3:
                pytest.skip(
                    f"halted: {halt.component} failed at step {halt.step} ({halt.test})"
                    f"{'; rolled back' if halt.rolled_back else ''}"
                )
            pytest.skip(
                f"halted: {halt.component} failed at step {halt.step} ({halt.test}); "
                "everything is left suspended (frozen); fix the cause and run again"
            )
        pytest.skip(
            f"not started: component {halt.component} halted at step {halt.step} "
            f"({halt.test}); later components are not started"
        )

    def _setup_phase3(self, item: pytest.Item, ref: StepRef) -> Generator:
        step, component = ref.step.name, ref.component
        self._halted(ref)
        if not self.perform:
            # dry run: steps decide themselves (read-only ones run, mutating ones skip)
            return (yield)
        run = self.run
        cr = run.component(component.name)
        p = cr.progress
        if (
            p is not None
            and p.state == "failed"
            and step == ref.chain.first
            and not cr.mutated
            and not run.finished(component.name)
        ):
            # A previous run failed (or was killed) and its rollback did not complete: finish it.
            # The item is set up first: its fixtures (the suite's `mutator`) register the
            # session's kube/mutator/inventory that the rollback uses.
            yield
            actions = run_rollback(
                run,
                self.resources,
                component,
                f"journal: run {p.run} failed at {p.failed_step or p.last_started}",
            )
            rep = self.recorder.component(component)
            rep.rollback += [a.to_dict() for a in actions]
            rep.status = (
                "rolled back (from the journal)"
                if all(a.result != "failed" for a in actions)
                else "rollback FAILED"
            )
            self.halts[ref.chain.phase] = Halt(
                component.name, p.failed_step or p.last_started, f"run {p.run}", True
            )
            pytest.skip(
                f"halted: {component.name}: run {p.run} failed at step "
                f"{p.failed_step or p.last_started}; rolled back from the journal now "
                f"({'; '.join(str(a) for a in actions)}). Fix the cause and run again."
            )
        reason = resume_skip_reason(run, component.name, step)
        if reason:
            rep = self.recorder.component(component)
            rep.steps.append(StepResult(step, "skipped", 0.0, reason))
            if p is not None and p.state == "done":
                rep.status = f"handed over (run {p.run})"
            pytest.skip(reason)
        return (yield)

    def _setup_abort(self, item: pytest.Item, ref: StepRef) -> None:
        self._halted(ref)
        if ref.component is None or not self.perform:
            return
        step, component = ref.step.name, ref.component
        run = self.abort
        ac = run.component(component.name)
        p = ac.progress
        if p is not None and p.state == "done" and step == ref.chain.first:
            p3 = run.handover.component(component.name).progress
            if p3 is not None and p3.state not in ("fresh", "rolled-back"):
                # handed over again (phase 3) since that abort: this is a new abort attempt
                run.record_step(
                    component.name,
                    "rollback",
                    "rolled-back",
                    reason=f"phase 3 handed {component.name} over again (journal: "
                    f"{p3.state}, run {p3.run}) after abort run {p.run}: a "
                    "new abort attempt",
                )
                ac.progress = p = journal_mod.Progress(component.name)
        if p is not None and p.state == "done":
            pytest.skip(
                f"{component.name} was handed back in abort run {p.run} (journal "
                f"{run.journal.path}); nothing is repeated"
            )
        if (
            p is not None
            and p.state in ("in-progress", "failed")
            and step in p.passed
            and not (
                step == ref.chain.first and not (p.passed[step].get("state") or {}).get("managed")
            )
        ):
            # (a component found NOT managed is looked at again: it may have been handed over)
            ac.resumed = True
            run.restore(component.name)
            pytest.skip(
                f"{component.name}: abort step {step} passed in run "
                f"{p.passed[step].get('run', '?')} (journal); not repeated"
            )
        if step != ref.chain.first:
            run.restore(component.name)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator:
        item.stash[_WALL0] = time.time()
        ref = step_ref(item)
        if ref is not None and ref.component is not None and self.perform:
            if ref.chain is model.PHASE3:
                rep = self.recorder.component(ref.component)
                if rep.started is None:
                    rep.started = time.time()
                self.run.record_step(ref.component.name, ref.step.name, "started")
            elif ref.chain is model.ABORT:
                self.abort.record_step(ref.component.name, ref.step.name, "started")
            item.stash[_T0] = time.monotonic()
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Generator:
        """Inner: journal, halt and rollback (plugins.redaction, outside, scrubs what this
        adds; ``pytest_record_report``, outermost, draws the result)."""
        report: pytest.TestReport = yield
        ref = step_ref(item)
        if ref is None or report.when == "teardown":
            return report
        if ref.chain is model.PHASE3:
            self._report_phase3(item, ref, report)
        elif ref.chain is model.ABORT:
            self._report_abort(item, ref, report)
        elif report.failed or (report.skipped and did_not_act(call)):
            self.blocking[(ref.chain.phase, ref.step.name)] = (
                report.nodeid,
                "failed" if report.failed else "was skipped",
            )
        return report

    @pytest.hookimpl(wrapper=True, tryfirst=True, specname="pytest_runtest_makereport")
    def pytest_record_report(self, item: pytest.Item, call: pytest.CallInfo) -> Generator:
        """Outermost: the migration report records the result after everything else."""
        report: pytest.TestReport = yield
        ref = step_ref(item)
        if report_part.phase_of(item, ref.chain.phase if ref else "") and not (
            report.when == "teardown" or (report.when == "setup" and report.passed)
        ):
            rec = self._recorder_or_none()
            if rec is not None:
                report_part.record(rec, item, report, item.stash.get(_WALL0, None), ref)
        return report

    def _report_phase3(self, item: pytest.Item, ref: StepRef, report: pytest.TestReport) -> None:
        if report.when == "setup" and not report.failed:
            return
        if not self.perform or report.skipped:
            return
        step, component = ref.step.name, ref.component
        run = self.run
        rep = self.recorder.component(component)
        seconds = time.monotonic() - item.stash.get(_T0, time.monotonic())
        if report.passed:
            cr = run.component(component.name)
            detail = {}
            if step == "backup" and cr.backup is not None:
                detail["backup"] = cr.backup.directory
            if step == "snapshot" and cr.before is not None:
                detail["snapshot"] = getattr(cr, "snapshot_path", "")
            run.record_step(component.name, step, "passed", **detail)
            rep.steps.append(StepResult(step, "passed", seconds))
            if step == ref.chain.last:
                rep.finished = time.time()
                rep.status = "handed over"
            return
        # failed: halt the component, roll it back at once
        message = _message(report)
        run.record_step(component.name, step, "failed", error=message[:2000])
        rep.steps.append(StepResult(step, "failed", seconds, message))
        rep.failed_step, rep.failure = step, message
        actions, rolled, rep.status = answer_failure(run, self.resources, component, step)
        rep.rollback += [a.to_dict() for a in actions]
        rep.finished = time.time()
        for n, a in enumerate(actions, 1):
            # junitxml writes the properties of the teardown report, made from
            # item.user_properties
            item.user_properties.append((f"rollback.{n}", str(a)))
            report.user_properties.append((f"rollback.{n}", str(a)))
        report.sections.append(
            ("rollback", "\n".join(f"{n}. {a}" for n, a in enumerate(actions, 1)))
        )
        self.halts[ref.chain.phase] = Halt(component.name, step, item.name, rolled)

    def _report_abort(self, item: pytest.Item, ref: StepRef, report: pytest.TestReport) -> None:
        if ref.component is None:
            return
        if report.when == "setup" and not report.failed and not report.skipped:
            return
        step, component = ref.step.name, ref.component
        if report.skipped:
            if self.perform and report.when == "call":
                reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
                self.abort.record_step(component.name, step, "skipped", reason=reason[:500])
            return
        if not self.perform:
            if report.failed:
                self.halts[ref.chain.phase] = Halt(component.name, step, item.name)
            return
        run = self.abort
        rep = self.recorder.component(component)
        seconds = time.monotonic() - item.stash.get(_T0, time.monotonic())
        if report.passed:
            run.record_step(
                component.name, step, "passed", **run.component(component.name).detail.get(step, {})
            )
            rep.steps.append(StepResult(f"abort:{step}", "passed", seconds))
            return
        message = _message(report)
        run.record_step(component.name, step, "failed", error=message[:2000])
        rep.steps.append(StepResult(f"abort:{step}", "failed", seconds, message))
        rep.failed_step, rep.failure = f"abort:{step}", message
        rep.status = "abort halted (left suspended)"
        self.halts[ref.chain.phase] = Halt(component.name, step, item.name)

    # -- the end of the session -------------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self._abort is not None and self._abort.probe is not None:
            self._abort.probe_result = self._abort.probe.stop()
            self._abort.probe = None
        if self._recorder is not None:
            self._recorder.report.finished = time.time()
            self._recorder.write()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self._recorder is not None:
            self._recorder.terminal_summary(terminalreporter)


# -- registration (junitxml.py's model: the object under a StashKey, cleaned in unconfigure) -----


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flux-handover")
    group.addoption(
        "--journal",
        default=None,
        help="the migration journal (default: <inventory backups>/journal.jsonl)",
    )
    group.addoption(
        "--report-dir",
        default="reports",
        help="where the migration report goes (<dir>/<run>.md and .json)",
    )
    group.addoption(
        "--remove-flux",
        action="store_true",
        default=False,
        help="abort: after every component is handed back, remove Flux itself "
        "(controllers, CRDs), only when no Flux object left has a finalizer "
        "that would act",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "chain(phase): the module's tests are steps of this "
        "chain of handover.runbook (" + ", ".join(model.CHAINS) + ")",
    )
    config.addinivalue_line("markers", "step(name): the chain step this test performs")
    plugin = RunbookPlugin(config)
    config.stash[RUNBOOK_KEY] = plugin
    config.pluginmanager.register(plugin, "handover-runbook")


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.stash.get(RUNBOOK_KEY, None)
    if plugin is not None:
        del config.stash[RUNBOOK_KEY]
        config.pluginmanager.unregister(plugin)


def runbook_of(config: pytest.Config) -> RunbookPlugin:
    return config.stash[RUNBOOK_KEY]


@pytest.fixture(scope="session")
def handover_run_state(pytestconfig: pytest.Config) -> HandoverRun:
    return runbook_of(pytestconfig).run


@pytest.fixture(scope="session")
def run_id(handover_run_state: HandoverRun) -> str:
    return handover_run_state.id


@pytest.fixture(scope="session")
def journal(handover_run_state: HandoverRun) -> journal_mod.Journal:
    return handover_run_state.journal


@pytest.fixture(scope="session")
def mutator(pytestconfig: pytest.Config, kube, inventory, journal, perform) -> Mutator:
    m = Mutator(kube, inventory, journal, perform)
    runbook_of(pytestconfig).resources = Resources(kube, inventory, m)
    return m


@pytest.fixture(scope="session")
def report(pytestconfig: pytest.Config) -> MigrationReport:
    return runbook_of(pytestconfig).report


@pytest.fixture(scope="session")
def abort_state(pytestconfig: pytest.Config) -> abort_part.AbortRun:
    return runbook_of(pytestconfig).abort


@pytest.fixture(scope="session")
def remove_flux_requested(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--remove-flux"))
