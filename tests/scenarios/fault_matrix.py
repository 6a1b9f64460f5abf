"""The fault matrix: kill -9 a run at a named point, run it again, and check what it left.

Used by ``benchmarks/fault_matrix.py`` (every cell, printed as a table) and by
``tests/scenarios/test_fault_matrix.py`` (a representative subset). A cell is (phase, step,
point); the kill is injected by ``tests/scenarios/kill_point_plugin.py`` (the child stops itself
at the point, the cell SIGKILLs its process group there).

Every cell must end with:
- the component handed over (journal ``done``, HelmRelease Ready) or cleanly rolled back (journal
  ``rolled-back``, no temporary Kustomization, no HelmRelease, release deployed at the backup
  revision), and NEVER a finished component rolled back (no rollback after step finish passed);
- the pod UIDs of a handed-over component unchanged (same pods, no restart, revision +1 once);
- no Helm release left pending-*;
- the journal consistent: the rerun leaves no intent without an outcome, at most the one the kill
  interrupted stays open, no step from the hand-over on passed twice in one attempt, and a third
  run repeats nothing.
Phase 3 cells use ONE component (envoy-gateway: a Helm release, one Deployment, a health check)
and put it back to its pre-handover state after each cell (handover.rollback from the cell's
backup), so cells are independent.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from handover import flux, helm_storage
from handover import backup as backup_mod
from handover import journal as journal_mod
from handover import snapshot as snapshot_mod
from handover.mutation import Mutator
from handover.rollback import Rollback
from tests.harness import ROOT
from tests.scenarios.phase3_rehearsal import PHASE3, kill_group, phase3_args, run_phase3

COMPONENT = "envoy-gateway"
PHASE3_STEPS = ("preconditions", "backup", "snapshot", "handover", "ready", "adopted", "finish",
                "record")
# the mutation each phase-3 step makes (journal action pattern); steps absent make none
PHASE3_MUTATIONS = {"backup": "backup *",
                    "handover": f"apply Kustomization */handover-{COMPONENT}",
                    "finish": f"delete Kustomization */handover-{COMPONENT} *"}
POINTS = ("started", "mutated", "done")


@dataclass
class Cell:
    phase: str
    step: str
    point: str
    result: str = ""  # passed | FAILED | n/a
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    end: str = ""  # handed over | rolled back | ...

    @property
    def name(self) -> str:
        return f"{self.phase}:{self.step}:{self.point}"


def phase3_cells(steps=PHASE3_STEPS, points=POINTS) -> list[Cell]:
    return [Cell("phase3", s, p) if p != "mutated" or s in PHASE3_MUTATIONS else
            Cell("phase3", s, p, "n/a", ["the step makes no mutation"])
            for s in steps for p in points]


def kill_point(cell: Cell) -> str:
    action = PHASE3_MUTATIONS.get(cell.step, "*")
    return f"phase3:{COMPONENT}:{cell.step}:{cell.point}:{action}"


def _spawn(stack, work: Path, journal: Path, point: str) -> subprocess.Popen:
    work.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pytest", PHASE3, "--inventory", str(stack.inventory_path),
            "-p", "no:cacheprovider", "-q", "-p", "tests.scenarios.kill_point_plugin",
            f"--junitxml={work / 'killed.xml'}", "-k", COMPONENT,
            *phase3_args(stack, work, journal=journal)]
    return subprocess.Popen(argv, cwd=ROOT, stdout=open(work / "killed.log", "w"),
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "HANDOVER_KILL_POINT": point})


def _wait_stopped(proc: subprocess.Popen, timeout: float) -> bool:
    """True once the process stopped itself (state T); False if it ended first."""
    deadline = time.monotonic() + timeout
    stat = Path(f"/proc/{proc.pid}/stat")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return True
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"the run neither stopped at the kill point nor ended in {timeout} s")


def _steps(journal: Path) -> list[journal_mod.Entry]:
    return [e for e in journal_mod.Journal(journal).entries()
            if e.phase == "phase3" and e.component == COMPONENT]


def journal_problems(entries: list[journal_mod.Entry], killed_at: int, point: str) -> list[str]:
    """The journal's consistency after the rerun (see the module docstring)."""
    problems = []
    closed = {e.id for e in entries if e.kind in ("done", "failed")}
    open_before = [e.action for e in entries[:killed_at] if e.kind == "intent"
                   and e.id not in closed]
    open_after = [e.action for e in entries[killed_at:] if e.kind == "intent"
                  and e.id not in closed]
    if open_after:
        problems.append(f"the rerun left intents without an outcome: {open_after}")
    if len(open_before) > (1 if point == "mutated" else 0):
        problems.append(f"intents left open by the kill: {open_before}")
    finished = False
    passed: dict[str, int] = {}
    for e in entries:
        if e.kind != "step":
            continue
        if e.step == "rollback":
            if finished:
                problems.append("a rollback ran after step finish had passed: a finished "
                                "component was rolled back")
            if e.action == "rolled-back":
                passed = {}
            continue
        if e.action == "passed" and e.step in PHASE3_STEPS[PHASE3_STEPS.index("handover"):]:
            # read-only steps before the hand-over are run again by design after a kill there;
            # from the hand-over on, a passed step must never be repeated
            passed[e.step] = passed.get(e.step, 0) + 1
            finished = finished or e.step == "finish"
    twice = sorted(s for s, n in passed.items() if n > 1)
    if twice:
        problems.append(f"steps passed twice in one attempt (repeated after the resume): {twice}")
    return problems


def run_phase3_cell(stack, work: Path, kube, inv, cell: Cell) -> Cell:
    """Kill the envoy-gateway chain at the cell's point, run it again, check, then put the
    component back to its state before the cell."""
    t0 = time.monotonic()
    comp = inv.component(COMPONENT)
    before = snapshot_mod.take(kube, comp)
    journal = work / "journal.jsonl"
    proc = _spawn(stack, work, journal, kill_point(cell))
    try:
        stopped = _wait_stopped(proc, 900)
        if not stopped:
            cell.result, cell.problems = "FAILED", [
                f"the run ended (rc {proc.returncode}) without reaching the kill point: "
                + (work / "killed.log").read_text()[-1500:]]
            return cell
        kill_group(proc)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    killed_at = len(_steps(journal))
    rerun = run_phase3(stack, work, "-k", COMPONENT, journal=journal, name="rerun")
    entries = _steps(journal)
    p = journal_mod.progress(journal_mod.Journal(journal), "phase3", COMPONENT)
    problems = journal_problems(entries, killed_at, cell.point)
    hr = comp.helm_release
    live_hr = kube.get(flux.HELM_API, "HelmRelease", hr.name, hr.namespace)
    rel = helm_storage.latest(kube, comp.release.name, comp.release.namespace)
    if rel is None or rel.status.startswith("pending"):
        problems.append(f"Helm release {comp.release.namespace}/{comp.release.name}: "
                        f"{rel.status if rel else 'gone'}")
    if p.state == "done":
        cell.end = "handed over"
        if rerun.returncode != 0:
            problems.append(f"the rerun failed (rc {rerun.returncode}): "
                            + "; ".join(rerun.failed))
        if live_hr is None or not flux.is_ready(live_hr):
            problems.append("handed over, but the HelmRelease is gone or not Ready")
        after = snapshot_mod.take(kube, comp)
        diffs = snapshot_mod.compare(before, after, release_moves=1)
        problems += [f"pods/release changed: {d}" for d in diffs]
        third = run_phase3(stack, work, "-k", COMPONENT, journal=journal, name="third")
        ran = [c.name for c in third.cases if c.outcome != "skipped"]
        if third.returncode != 0 or ran:
            problems.append(f"a third run repeated steps {ran} (rc {third.returncode})")
    elif p.state == "rolled-back":
        cell.end = "rolled back"
        if live_hr is not None:
            problems.append("rolled back, but the HelmRelease is still there")
        if kube.get(flux.KUSTOMIZE_API, "Kustomization", comp.kustomization_name,
                    inv.cluster.flux_namespace) is not None:
            problems.append("rolled back, but the temporary Kustomization is still there")
    else:
        cell.end = p.state
        problems.append(f"the journal says {p.state!r} after the rerun (neither handed over "
                        f"nor rolled back): {'; '.join(rerun.failed)}")
    problems += reset(kube, inv, comp, journal, work)
    cell.problems = problems
    cell.result = "FAILED" if problems else "passed"
    cell.seconds = time.monotonic() - t0
    return cell


def reset(kube, inv, comp, journal: Path, work: Path) -> list[str]:
    """Put the component back as it was before the handover (the suite's own rollback from the
    cell's backup), so the next cell starts from the same state; a fresh journal per cell."""
    p = journal_mod.progress(journal_mod.Journal(journal), "phase3", COMPONENT)
    directory = (p.passed.get("backup") or {}).get("backup")
    if p.state == "rolled-back" or directory is None:
        return []
    record = backup_mod.load_record(directory)
    mutator = Mutator(kube, inv, journal_mod.Journal(work / "reset-journal.jsonl"), True)
    rb = Rollback(kube, mutator, inv, comp, record)
    actions = rb.run()
    if not rb.ok:
        return [f"reset failed: {[str(a) for a in actions]}"]
    return []


# -- phase 2: the bootstrap, killed and run again (a fresh seeded stack per cell) ----------------
PHASE2_STEPS = ("test_bootstrap",)


def phase2_cells(points=POINTS) -> list[Cell]:
    return [Cell("phase2", s, p) for s in PHASE2_STEPS for p in points]


def run_phase2_cell(state_dir: Path, work: Path, cell: Cell) -> Cell:
    """Seed a fresh stack, kill `pytest suites/phase2 --perform` at the cell's point, run it
    again: it must pass, the covered objects and pods must be exactly as before the first run
    (the harness's own snapshot, not the suite's), no Helm release pending, the journal
    consistent, and a third run must be a no-op that passes."""
    from handover import cluster_snapshot
    from handover.inventory import load
    from handover.kube import Kube
    from tests.harness import run_suite
    from tests.rehearsal_support import seeded_stack

    t0 = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    journal = work / "journal.jsonl"
    with seeded_stack(state_dir) as s:
        inv = load(s.inventory_path)
        kube = Kube(kubeconfig=s.cluster.kubeconfig, context=inv.cluster.context)
        before = cluster_snapshot.take(kube, inv)
        args = ["--kubeconfig", str(s.cluster.kubeconfig), "--perform", "--report-dir",
                str(work / "reports"), "--journal", str(journal)]
        argv = [sys.executable, "-m", "pytest", "suites/phase2", "--inventory",
                str(s.inventory_path), "-p", "no:cacheprovider", "-q", "-p",
                "tests.scenarios.kill_point_plugin", f"--junitxml={work / 'killed.xml'}", *args]
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=open(work / "killed.log", "w"),
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "HANDOVER_KILL_POINT":
                                     f"phase2::{cell.step}:{cell.point}"})
        try:
            if not _wait_stopped(proc, 900):
                cell.result, cell.problems = "FAILED", [
                    f"the run ended (rc {proc.returncode}) without reaching the kill point: "
                    + (work / "killed.log").read_text()[-1500:]]
                return cell
            kill_group(proc)
        finally:
            if proc.poll() is None:
                kill_group(proc)
        entries = list(journal_mod.Journal(journal).entries())
        killed_at = len(entries)
        rerun = run_suite(["suites/phase2"], s.inventory_path, work / "rerun.xml", *args)
        problems = []
        if rerun.returncode != 0:
            problems.append(f"the rerun failed (rc {rerun.returncode}): {rerun.failed}")
        entries = list(journal_mod.Journal(journal).entries())
        closed = {e.id for e in entries if e.kind in ("done", "failed")}
        open_before = [e.action for e in entries[:killed_at] if e.kind == "intent"
                       and e.id not in closed]
        open_after = [e.action for e in entries[killed_at:] if e.kind == "intent"
                      and e.id not in closed]
        if open_after:
            problems.append(f"the rerun left intents without an outcome: {open_after}")
        if len(open_before) > (1 if cell.point == "mutated" else 0):
            problems.append(f"intents left open by the kill: {open_before}")
        after = cluster_snapshot.take(kube, inv)
        changes = cluster_snapshot.compare(before, after, resource_versions=True)
        if changes:
            problems.append("objects moved across the kill and the rerun: "
                            + cluster_snapshot.report(changes, before, after)[:800])
        for c in inv.components:
            if c.release is not None:
                rel = helm_storage.latest(kube, c.release.name, c.release.namespace)
                if rel is None or rel.status.startswith("pending"):
                    problems.append(f"Helm release {c.release.namespace}/{c.release.name}: "
                                    f"{rel.status if rel else 'gone'}")
        third = run_suite(["suites/phase2"], s.inventory_path, work / "third.xml", *args)
        if third.returncode != 0:
            problems.append(f"a third run failed (rc {third.returncode}): {third.failed}")
        cell.end = "bootstrapped" if rerun.returncode == 0 else "not bootstrapped"
    cell.problems = problems
    cell.result = "FAILED" if problems else "passed"
    cell.seconds = time.monotonic() - t0
    return cell
