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
and put it back to its pre-handover state after each cell (handover.chain.rollback from the cell's
backup), so cells are independent.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from handover.flux import rules as flux
from handover.sources import helm_storage
from handover.chain import backup as backup_mod
from handover.core import journal as journal_mod
from handover.snapshot import component as snapshot_mod
from handover.core.mutation import Mutator
from handover.chain.rollback import Rollback
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


# -- phase 2: Git suspend and the bootstrap, killed and run again (a fresh seeded stack per cell) --
PHASE2_STEPS = ("test_entrypoints_suspended_in_git", "test_bootstrap")
# the mutation each phase-2 / phase-4 step's "mutated" point follows (journal action pattern): for
# the Git steps the push (what Flux reads; the edit and the commit before it are local)
PHASE2_MUTATIONS = {"test_entrypoints_suspended_in_git": "git push*", "test_bootstrap": "*"}


def phase2_cells(points=POINTS, steps=PHASE2_STEPS) -> list[Cell]:
    return [Cell("phase2", s, p) for s in steps for p in points]


def suite_kill_point(cell: Cell, mutations: dict[str, str]) -> str:
    """HANDOVER_KILL_POINT for a phase-2/4 cell: the step is the test's name, parametrized by
    entry point (``test_resume_in_git[infrastructure]``): the first one run matches."""
    return f"{cell.phase}::{cell.step}*:{cell.point}:{mutations.get(cell.step, '*')}"


def run_phase2_cell(state_dir: Path, work: Path, cell: Cell) -> Cell:
    """Seed a fresh stack, kill `pytest suites/phase2 --perform` at the cell's point, run it
    again: it must pass, the covered objects and pods must be exactly as before the first run
    (the harness's own snapshot, not the suite's), no Helm release pending, the journal
    consistent, and a third run must be a no-op that passes."""
    from handover.snapshot import cluster as cluster_snapshot
    from handover.core.inventory import load
    from handover.core.kube import Kube
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
                                     suite_kill_point(cell, PHASE2_MUTATIONS)})
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


# -- phase 4: resume the entry points, killed and run again ------------------------------------
# One stack for every phase-4 cell: Flux bootstrapped (phase 2) and every component handed over
# (phase 3 --perform) ONCE; each cell starts from a copy of that phase-3 journal, and afterwards
# the entry points are suspended again in Git (the suite's own edit, handover/sources/gitops.py) and live
# (flux-system reconciled), so cells are independent. (A reduced inventory of one component does
# not do: resuming the entry points then creates the HelmReleases of the components not handed
# over, which phase 4 rightly finds not Ready.)
PHASE4_STEPS = ("test_snapshot_before_resume", "test_resume_in_git", "test_reconciled")
PHASE4_MUTATIONS = {"test_resume_in_git": "git push*", "test_reconciled": "*"}
PHASE4 = "suites/phase4"


def phase4_cells(points=POINTS, steps=PHASE4_STEPS) -> list[Cell]:
    return [Cell("phase4", s, p) if p != "mutated" or s in PHASE4_MUTATIONS else
            Cell("phase4", s, p, "n/a", ["the step makes no mutation"])
            for s in steps for p in points]


def reduced_inventory(stack, components=(COMPONENT,)) -> Path:
    """The rehearsal inventory restricted to ``components`` (beside the original, so its relative
    paths stay valid): phase 3 hands over only these, phase 4 checks only these."""
    from tests.scenarios.phase3_rehearsal import inventory_copy

    def edit(data: dict) -> None:
        data["components"] = [c for c in data["components"] if c["name"] in components]
    return inventory_copy(stack, Path("migration-phase4-cells.yaml"), edit)


def hand_over_for_phase4(stack, work: Path, components=None) -> tuple[Path, Path]:
    """Phase 3 --perform on every component (or only ``components``, a reduced inventory);
    returns (inventory, phase-3 journal)."""
    from tests.scenarios.phase3_rehearsal import run_phase3

    inv_path = Path(stack.inventory_path) if components is None else \
        reduced_inventory(stack, components)
    journal = work / "phase3-journal.jsonl"
    run = run_phase3(stack, work / "phase3", inventory=inv_path, journal=journal)
    assert run.returncode == 0, f"phase 3 failed:\n{run.stdout[-3000:]}"
    return inv_path, journal


def _phase4_args(stack, work: Path, journal: Path) -> list[str]:
    return ["--kubeconfig", str(stack.cluster.kubeconfig), "--perform", "--report-dir",
            str(work / "reports"), "--journal", str(journal)]


def _open_intents(entries, killed_at: int, point: str) -> list[str]:
    closed = {e.id for e in entries if e.kind in ("done", "failed")}
    open_before = [e.action for e in entries[:killed_at] if e.kind == "intent"
                   and e.id not in closed]
    open_after = [e.action for e in entries[killed_at:] if e.kind == "intent"
                  and e.id not in closed]
    problems = []
    if open_after:
        problems.append(f"the rerun left intents without an outcome: {open_after}")
    if len(open_before) > (1 if point == "mutated" else 0):
        problems.append(f"intents left open by the kill: {open_before}")
    return problems


def entrypoints_state(kube, inv) -> tuple[list[str], list[str]]:
    """(entry points suspended in Git at the remote head, entry points suspended or absent live)."""
    from handover.flux import bootstrap
    from handover.sources.gitops import GitOpsRepo

    _, states = GitOpsRepo(inv.gitops).remote_states()
    live = bootstrap.state(kube, inv).entrypoints
    return ([s.name for s in states if s.suspended],
            [n for n, ks in live.items() if ks is None or (ks.get("spec") or {}).get("suspend")])


def resuspend(kube, inv, work: Path, timeout: float = 300) -> list[str]:
    """Put the entry points back as phase 2 left them: suspended in Git (the suite's own edit,
    commit and push) and live (flux-system asked to reconcile, waited for)."""
    from datetime import datetime, timezone

    from handover.flux import bootstrap
    from handover.sources.gitops import GitOpsRepo

    mutator = Mutator(kube, inv, journal_mod.Journal(work / "reset-journal.jsonl"), True)
    GitOpsRepo(inv.gitops).set_entrypoints_suspended(
        mutator, True, "fault matrix: suspend the entry points again for the next cell")
    ns = inv.cluster.flux_namespace
    token = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    mutator.request_reconcile(flux.SOURCE_API, "GitRepository", bootstrap.SYNC_NAME, ns, token)
    mutator.request_reconcile(flux.KUSTOMIZE_API, "Kustomization", bootstrap.SYNC_NAME, ns, token)
    names = [ep.name for ep in inv.gitops.entrypoints]
    deadline = time.monotonic() + timeout
    while True:
        git_suspended, live_suspended = entrypoints_state(kube, inv)
        if sorted(git_suspended) == sorted(names) and sorted(live_suspended) == sorted(names):
            return []
        if time.monotonic() > deadline:
            return [f"reset: entry points suspended in Git {git_suspended}, live "
                    f"{live_suspended}, after {timeout} s"]
        time.sleep(1)


def run_phase4_cell(stack, inv_path: Path, phase3_journal: Path, work: Path, kube, inv,
                    cell: Cell) -> Cell:
    """Kill `pytest suites/phase4 --perform` at the cell's point, run it again: it must pass with
    the entry points resumed (Git and live, Ready), every handed-over component's pods and release
    unchanged (no restart, no new revision), no Helm release pending, the journal consistent,
    and a third run a no-op (passes, no intent). Then the entry points are suspended again."""
    from handover.flux import bootstrap
    from tests.harness import run_suite

    t0 = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    journal = work / "journal.jsonl"
    journal.write_bytes(phase3_journal.read_bytes())
    start = len(list(journal_mod.Journal(journal).entries()))
    comps = [c for c in inv.components if c.helm_release or c.workloads]
    before = {c.name: snapshot_mod.take(kube, c) for c in comps}
    args = _phase4_args(stack, work, journal)
    argv = [sys.executable, "-m", "pytest", PHASE4, "--inventory", str(inv_path),
            "-p", "no:cacheprovider", "-q", "-p", "tests.scenarios.kill_point_plugin",
            f"--junitxml={work / 'killed.xml'}", *args]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=open(work / "killed.log", "w"),
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "HANDOVER_KILL_POINT":
                                 suite_kill_point(cell, PHASE4_MUTATIONS)})
    problems: list[str] = []
    try:
        try:
            stopped = _wait_stopped(proc, 900)
        finally:
            if proc.poll() is None:
                kill_group(proc)
        if not stopped:
            cell.result, cell.problems = "FAILED", [
                f"the run ended (rc {proc.returncode}) without reaching the kill point: "
                + (work / "killed.log").read_text()[-1500:]]
            return cell
        entries = [e for e in journal_mod.Journal(journal).entries()][start:]
        killed_at = len(entries)
        rerun = run_suite([PHASE4], inv_path, work / "rerun.xml", *args, timeout=1200)
        if rerun.returncode != 0:
            problems.append(f"the rerun failed (rc {rerun.returncode}): {rerun.failed}: "
                            + rerun.stdout[-1500:])
        entries = [e for e in journal_mod.Journal(journal).entries()][start:]
        problems += _open_intents(entries, killed_at, cell.point)
        git_suspended, live_suspended = entrypoints_state(kube, inv)
        if git_suspended or live_suspended:
            problems.append(f"entry points not resumed: suspended in Git {git_suspended}, "
                            f"live suspended or absent {live_suspended}")
        live = bootstrap.state(kube, inv).entrypoints
        not_ready = [n for n, ks in live.items() if ks is None or not flux.is_ready(ks)]
        if not_ready:
            problems.append(f"entry points not Ready: {not_ready}")
        for c in comps:
            if journal_mod.progress(journal_mod.Journal(journal), "phase3", c.name).state \
                    != "done":
                problems.append(f"{c.name} is no longer recorded handed over in the journal")
            hr = c.helm_release
            if hr is not None:
                live_hr = kube.get(flux.HELM_API, "HelmRelease", hr.name, hr.namespace)
                if live_hr is None or not flux.is_ready(live_hr):
                    problems.append(f"HelmRelease {hr.namespace}/{hr.name} gone or not Ready")
            problems += [f"pods/release of {c.name} changed: {d}" for d in snapshot_mod.compare(
                before[c.name], snapshot_mod.take(kube, c),
                release_moves=0)]
        for rel in helm_storage.list_releases(kube):
            if rel.status.startswith("pending"):
                problems.append(f"Helm release {rel.namespace}/{rel.name} left {rel.status}")
        n = len(list(journal_mod.Journal(journal).entries()))
        third = run_suite([PHASE4], inv_path, work / "third.xml", *args, timeout=1200)
        new = list(journal_mod.Journal(journal).entries())[n:]
        intents = [e.action for e in new if e.kind == "intent"]
        if third.returncode != 0 or intents:
            problems.append(f"a third run was not a no-op (rc {third.returncode}, failed "
                            f"{third.failed}, mutations {intents})")
        cell.end = "resumed" if rerun.returncode == 0 and not git_suspended else "not resumed"
    finally:
        if proc.poll() is None:
            kill_group(proc)
        try:
            problems += resuspend(kube, inv, work)
        except Exception as e:  # the next cell would start from a wrong state: say so
            problems.append(f"reset failed: {e.__class__.__name__}: {e}")
    cell.problems = problems
    cell.result = "FAILED" if problems else "passed"
    cell.seconds = time.monotonic() - t0
    return cell
