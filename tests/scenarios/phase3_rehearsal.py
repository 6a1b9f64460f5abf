"""Helpers for the phase-3 scenarios: a seeded rehearsal stack with Flux bootstrapped by the
phase-2 suite, and running the phase-3 suite against it in a child pytest (tests/harness.py).

HANDOVER_SCENARIO_STATE_DIR is NOT used here: each phase-3 module brings up its own stack in its
own temporary directory (one for the happy path, one for the failure scenarios) and purges it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import yaml

from handover.core.journal import Journal
from tests.harness import ROOT, SuiteRun, run_suite
from tests.rehearsal_support import seeded_stack

EXAMPLE_INVENTORY = ROOT / "examples" / "homelab" / "migration.yaml"
PHASE3 = "suites/phase3"
GIT_ENV = {"GIT_AUTHOR_NAME": "scenario", "GIT_AUTHOR_EMAIL": "scenario@flux-handover.invalid",
           "GIT_COMMITTER_NAME": "scenario",
           "GIT_COMMITTER_EMAIL": "scenario@flux-handover.invalid", "GIT_TERMINAL_PROMPT": "0"}


@contextmanager
def bootstrapped_stack(state_dir: Path, work: Path) -> Iterator:
    """The seeded stack + `pytest suites/phase2 --perform` (Flux stand-ins, entry points
    suspended); stopped and purged afterwards."""
    with seeded_stack(state_dir, EXAMPLE_INVENTORY) as s:
        run = run_suite(["suites/phase2"], s.inventory_path, work / "phase2.xml",
                        "--kubeconfig", str(s.cluster.kubeconfig), "--perform",
                        "--report-dir", str(work / "reports"))
        assert run.returncode == 0, f"phase 2 failed:\n{run.stdout[-3000:]}"
        yield s


def ready_timeout(component: str, seconds: int):
    """An inventory edit (for inventory_copy) giving one component a short readyTimeout."""
    def edit(data: dict) -> None:
        for c in data["components"]:
            if c["name"] == component:
                c["readyTimeout"] = seconds
    return edit


def phase3_args(stack, work: Path, *extra: str, journal: Path | None = None) -> list[str]:
    return ["--kubeconfig", str(stack.cluster.kubeconfig), "--perform",
            "--report-dir", str(work / "reports"),
            "--journal", str(journal or work / "journal.jsonl"), *extra]


def run_phase3(stack, work: Path, *extra: str, inventory: Path | None = None,
               journal: Path | None = None, name: str = "phase3") -> SuiteRun:
    work.mkdir(parents=True, exist_ok=True)
    return run_suite([PHASE3], inventory or stack.inventory_path, work / f"{name}.xml",
                     *phase3_args(stack, work, *extra, journal=journal), timeout=1200)


def spawn_phase3(stack, work: Path, *extra: str, inventory: Path | None = None,
                 journal: Path | None = None) -> subprocess.Popen:
    """The phase-3 suite as a child process in its own process group (to be killed)."""
    work.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pytest", PHASE3, "--inventory",
            str(inventory or stack.inventory_path), "-p", "no:cacheprovider", "-q",
            f"--junitxml={work / 'killed.xml'}",
            *phase3_args(stack, work, *extra, journal=journal)]
    return subprocess.Popen(argv, cwd=ROOT, stdout=open(work / "killed.log", "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(p: subprocess.Popen) -> None:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)


def journal_steps(journal: Path, component: str) -> list[tuple[str, str]]:
    """(step, status) of every step record of a component, in order."""
    return [(e["step"], e["action"]) for e in journal_entries(journal, component)
            if e["kind"] == "step"]


def wait_journal(journal: Path, component: str, step: str, status: str, timeout: float,
                 proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (step, status) in journal_steps(journal, component):
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended before {component} {step} {status}")
        time.sleep(0.01)
    raise AssertionError(f"{component} step {step} never {status} within {timeout} s")


def inventory_copy(stack, dest: Path, edit) -> Path:
    """A copy of the rehearsal inventory (same cluster, repo, backups) edited by edit(dict)."""
    src = Path(stack.inventory_path)
    data = yaml.safe_load(src.read_text())
    edit(data)
    dest = src.parent / dest.name  # beside the original: its relative paths stay valid
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def git(repo: Path, *args: str) -> str:
    p = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                       env={**os.environ, **GIT_ENV})
    if p.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {repo}: {p.stderr}")
    return p.stdout


def commit_and_push(clone: Path, message: str) -> str:
    git(clone, "commit", "-q", "-am", message)
    git(clone, "push", "-q", "origin", "HEAD")
    return git(clone, "rev-parse", "HEAD").strip()


def revert_and_push(clone: Path, sha: str) -> None:
    git(clone, "revert", "--no-edit", sha)
    git(clone, "push", "-q", "origin", "HEAD")


def report_of(work: Path) -> dict:
    """The newest migration report JSON in work/reports."""
    reports = sorted((work / "reports").glob("*.json"), key=lambda p: p.stat().st_mtime)
    assert reports, f"no migration report in {work / 'reports'}"
    return json.loads(reports[-1].read_text())


def component_report(report: dict, name: str) -> dict:
    for c in report["components"]:
        if c["name"] == name:
            return c
    raise AssertionError(f"{name} not in the report")


def journal_entries(journal: Path, component: str) -> list[dict]:
    """Every journal entry of a component (intents, outcomes, steps, notes), in order, read by
    the journal itself (which passes over a torn last line from a kill mid-write)."""
    if not journal.exists():
        return []
    return [asdict(e) for e in Journal(journal).entries() if e.component == component]


def wait_stopped(proc: subprocess.Popen, timeout: float) -> None:
    """Wait until the process is stopped (state T in /proc/<pid>/stat), e.g. by SIGSTOP."""
    deadline = time.monotonic() + timeout
    stat = Path(f"/proc/{proc.pid}/stat")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process {proc.pid} ended (rc {proc.returncode}) instead of "
                                 "stopping")
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {proc.pid} not stopped within {timeout} s")
