"""Scenario fixtures: ONE seeded rehearsal stack for every phase-1 scenario of the session, and
helpers to break the example in one way and restore it.

- ``phase1_stack``: ``handover.rehearsal.stack.up(state_dir, examples/homelab/migration.yaml)``
  (cluster + chart repo + git remote + seeded homelab), session-scoped, purged at the end
  (HANDOVER_SCENARIO_STATE_DIR=<dir> reuses a stack of your own there and leaves it running).
- ``rehearsal``: a :class:`Rehearsal` over it:
  - ``inventory_copy(dest, edit)``: a copy of the rehearsal inventory, edited by ``edit(dict)``;
  - ``repo_variant(dest, edit, ...)``: a private copy of the GitOps remote AND clone (the clone's
    origin repointed at the copied remote), ``edit(clone)`` applied, committed and pushed to the
    copy (so only the intended check sees a difference), and an inventory copy pointing at it;
    the stack's own remote and clone are never touched;
  - ``cluster_change(apply, undo)``: a context manager for a live change undone afterwards;
  - ``run(dest, inventory, ...)``: the phase-1 suite in a child pytest with --junitxml
    (tests/harness.py), against the stack's kubeconfig;
  - ``admin``: an admin kubernetes DynamicClient for making the cluster changes.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
import yaml

from tests.rehearsal_support import require_rehearsal
from tests.harness import SuiteRun, run_suite

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_INVENTORY = ROOT / "examples" / "homelab" / "migration.yaml"
PHASE1 = "suites/phase1"
# The runbook's checks 1-8 (the hazard modules are test_hazard_*.py beside them).
PHASE1_CHECKS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / PHASE1).glob("test_0*.py"))
GIT_ENV = {"GIT_AUTHOR_NAME": "scenario", "GIT_AUTHOR_EMAIL": "scenario@flux-handover.invalid",
           "GIT_COMMITTER_NAME": "scenario",
           "GIT_COMMITTER_EMAIL": "scenario@flux-handover.invalid", "GIT_TERMINAL_PROMPT": "0",
           "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent"}


def git(repo: Path, *args: str) -> str:
    p = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                       env=GIT_ENV)
    if p.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {repo}: {p.stderr}")
    return p.stdout


@dataclass
class Rehearsal:
    stack: object  # handover.rehearsal.stack.RehearsalStack

    @property
    def inventory_path(self) -> Path:
        return Path(self.stack.inventory_path)

    @property
    def kubeconfig(self) -> Path:
        return self.stack.cluster.kubeconfig

    @property
    def clone(self) -> Path:
        return Path(self.stack.gitops_clone)

    def inventory_data(self) -> dict:
        return yaml.safe_load(self.inventory_path.read_text())

    def inventory_copy(self, dest: Path, edit: Callable[[dict], None] | None = None) -> Path:
        data = self.inventory_data()
        if edit:
            edit(data)
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / "migration.yaml"
        out.write_text(yaml.safe_dump(data, sort_keys=False))
        return out

    def repo_variant(self, dest: Path, edit: Callable[[Path], None], message: str = "scenario",
                     commit: bool = True, push: bool = True) -> Path:
        """A private remote + clone with ``edit`` applied; returns an inventory copy using it."""
        dest.mkdir(parents=True, exist_ok=True)
        origin = git(self.clone, "remote", "get-url", "origin").strip()
        bare_src = Path(origin.removeprefix("file://"))
        bare, clone = dest / "remote.git", dest / "gitops"
        shutil.copytree(bare_src, bare, symlinks=True)
        shutil.copytree(self.clone, clone, symlinks=True)
        git(clone, "remote", "set-url", "origin", f"file://{bare}")
        edit(clone)
        if commit:
            git(clone, "add", "-A")
            git(clone, "commit", "-q", "-m", message)
            if push:
                git(clone, "push", "-q", "origin", "HEAD")

        def point(data: dict) -> None:
            data["gitops"]["path"] = str(clone)
            data["gitops"]["url"] = f"file://{bare}"
        return self.inventory_copy(dest / "inventory", point)

    @property
    def admin(self):
        from kubernetes import config
        from kubernetes.dynamic import DynamicClient
        return DynamicClient(config.new_client_from_config(
            str(self.kubeconfig), context=self.stack.cluster.context))

    @contextmanager
    def cluster_change(self, apply: Callable[[], None], undo: Callable[[], None]) -> Iterator[None]:
        apply()
        try:
            yield
        finally:
            undo()

    def run(self, dest: Path, inventory: Path, paths: list[str] | None = None,
            *args: str) -> SuiteRun:
        dest.mkdir(parents=True, exist_ok=True)
        if not any(a.startswith("--kubeconfig") for a in args):
            args = ("--kubeconfig", str(self.kubeconfig), *args)
        return run_suite(paths or PHASE1_CHECKS, inventory, dest / "junit.xml", *args)


@pytest.fixture(scope="session")
def phase1_stack(tmp_path_factory):
    from handover.rehearsal import stack

    require_rehearsal()
    reuse = os.environ.get("HANDOVER_SCENARIO_STATE_DIR")
    if reuse:  # developer loop: an already seeded stack of your own, left running
        yield stack.up(Path(reuse), EXAMPLE_INVENTORY)
        return
    state_dir = tmp_path_factory.mktemp("phase1") / "state"
    try:
        yield stack.up(state_dir, EXAMPLE_INVENTORY)
    finally:
        stack.down(state_dir, purge=True)


@pytest.fixture(scope="session")
def rehearsal(phase1_stack) -> Rehearsal:
    return Rehearsal(phase1_stack)


def only_failures(run: SuiteRun) -> list[str]:
    return run.failed


def explain(run: SuiteRun) -> str:
    """A scenario's assertion context: the failing cases and the end of the child's output."""
    lines = [f"{c.outcome}: {c.name}\n{c.message[:1500]}" for c in run.cases
             if c.outcome in ("failed", "error")]
    return "\n".join(lines) + "\n--- child output (tail) ---\n" + run.stdout[-3000:]
