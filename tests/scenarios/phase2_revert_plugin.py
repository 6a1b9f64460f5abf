"""Scenario plugin (loaded into the child pytest with ``-p``): right before phase 2's bootstrap
step, a teammate pushes the entry point back to unsuspended (HANDOVER_SCENARIO_UNSUSPEND=<file>
of the rehearsal inventory's entry point, relative to the GitOps repo; the remote URL is read
from the inventory's checkout). Phase 2 must then refuse to bootstrap: nothing applied."""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

ENV = {"GIT_AUTHOR_NAME": "teammate", "GIT_AUTHOR_EMAIL": "teammate@flux-handover.invalid",
       "GIT_COMMITTER_NAME": "teammate", "GIT_COMMITTER_EMAIL": "teammate@flux-handover.invalid"}


def pytest_runtest_setup(item):
    target = os.environ.get("HANDOVER_SCENARIO_UNSUSPEND")
    if not target or item.name != "test_bootstrap":
        return
    from handover.sources import gitops
    from plugins.safety import load_inventory
    inv = load_inventory(item.config)
    url = subprocess.run(["git", "-C", str(inv.gitops.path), "remote", "get-url",
                          inv.gitops.remote], capture_output=True, text=True, check=True
                         ).stdout.strip()
    name = next(e.name for e in inv.gitops.entrypoints if e.file == target)
    env = {**os.environ, **ENV}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d) / "teammate"
        subprocess.run(["git", "clone", "-q", "-b", inv.gitops.branch, url, str(work)],
                       check=True, env=env)
        f = work / target
        f.write_text(gitops.set_suspend(f.read_text(), name, False))
        subprocess.run(["git", "-C", str(work), "commit", "-qam", f"unsuspend {name}"],
                       check=True, env=env)
        subprocess.run(["git", "-C", str(work), "push", "-q", "origin", inv.gitops.branch],
                       check=True, env=env)
