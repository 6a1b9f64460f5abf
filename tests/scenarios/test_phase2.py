"""Phase 2 on the rehearsal cluster (real kube-apiserver, real git remote, Flux stand-ins), the
suite run in a child pytest with --perform and read from its JUnit XML (tests/harness.py).

One seeded stack for the module, scenarios in order (each leaves the state the next expects):
1. the entry point is pushed back to unsuspended right before the bootstrap (a teammate): the
   bootstrap step fails BEFORE anything is applied (no Flux CRD, no flux-system, no apply
   journaled);
2. phase 2 --perform then passes on the example (step 1 suspends again and pushes);
3. a second run is a no-op that still passes (nothing journaled, no new commit);
4. an object in the live inventory of `workloads` that Git dropped shows as a deletion and fails
   test_diff[workloads] only.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import ROOT, run_suite
from tests.rehearsal_support import seeded_stack

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]
EXAMPLE_INVENTORY = ROOT / "examples" / "homelab" / "migration.yaml"
PHASE2 = "suites/phase2"
SUSPEND = "test_entrypoints_suspended_in_git"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with seeded_stack(tmp_path_factory.mktemp("phase2") / "state", EXAMPLE_INVENTORY) as s:
        yield s


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("phase2-runs")


def _run(stack, work: Path, name: str, *extra: str, env=None):
    return run_suite([PHASE2], stack.inventory_path, work / f"{name}.xml",
                     "--kubeconfig", str(stack.cluster.kubeconfig), "--perform", *extra, env=env)


def _journal(stack) -> list[dict]:
    p = Path(stack.state_dir) / "backups" / "journal.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def _kube(stack):
    from handover.core.kube import Kube
    return Kube(stack.cluster.kubeconfig, stack.cluster.context)


def _head(stack) -> str:
    from handover.sources.gitops import GitOpsRepo
    from handover.core.inventory import load
    return GitOpsRepo(load(stack.inventory_path).gitops).remote_head()


def test_unsuspended_before_bootstrap_fails_before_anything_is_applied(stack, work):
    run = _run(stack, work, "revert", "-p", "tests.scenarios.phase2_revert_plugin",
               env={"HANDOVER_SCENARIO_UNSUSPEND": "clusters/homelab/workloads.yaml"})
    assert {f"{SUSPEND}[infrastructure]", f"{SUSPEND}[workloads]"} <= set(run.outcomes("passed")), \
        run.stdout[-3000:]
    assert run.failed == ["test_bootstrap"], run.stdout[-3000:]
    msg = run.message("test_bootstrap")
    assert "refusing to bootstrap: Kustomization workloads (clusters/homelab/workloads.yaml) " \
           "not suspended" in msg and "Nothing was applied" in msg
    # nothing applied: Flux's API is not served, no flux-system namespace, no apply journaled
    kube = _kube(stack)
    assert not kube.has_resource("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
    assert kube.get("v1", "Namespace", "flux-system") is None
    actions = [e["action"] for e in _journal(stack) if e["kind"] == "intent"]
    assert not [a for a in actions if a.startswith(("apply", "install"))], actions
    # the later steps did not act on a state step 2 did not establish
    for name in ("test_entrypoint_present_and_suspended[workloads]", "test_nothing_moved"):
        assert run.by_name[name].outcome == "skipped", name


def test_phase2_passes_on_the_example(stack, work):
    run = _run(stack, work, "first")
    assert run.returncode == 0, run.stdout[-4000:]
    assert run.failed == []
    assert set(run.outcomes("passed")) >= {
        f"{SUSPEND}[infrastructure]", f"{SUSPEND}[workloads]", "test_bootstrap",
        "test_entrypoint_present_and_suspended[infrastructure]",
        "test_entrypoint_present_and_suspended[workloads]", "test_nothing_moved",
        "test_diff[infrastructure]", "test_diff[workloads]"}
    # the entry points are suspended in Git with nothing else changed in their files
    import subprocess

    from handover.core.inventory import load
    inv = load(stack.inventory_path)
    diff = subprocess.run(["git", "-C", str(inv.gitops.path), "diff", "HEAD~1", "--",
                           "clusters/homelab/workloads.yaml"], capture_output=True, text=True
                          ).stdout
    assert [ln for ln in diff.splitlines() if ln[:1] in "+-" and
            not ln.startswith(("+++", "---"))] == ["+  suspend: true"]
    # modifications listed per object in the JUnit output: owner labels only on this example
    diff_json = json.loads((Path(stack.state_dir) / "backups" /
                            "phase2-diff-workloads.json").read_text())
    actions = {o["subject"]: o["action"] for o in diff_json["objects"]}
    assert actions["Deployment llm/llama-cpp"] == "owner-labels"
    xml = (work / "first.xml").read_text()
    assert 'name="diff_counts"' in xml


def test_second_run_is_a_noop_that_passes(stack, work):
    before_journal, before_head = len(_journal(stack)), _head(stack)
    run = _run(stack, work, "second")
    assert run.returncode == 0, run.stdout[-4000:]
    assert run.failed == []
    assert run.by_name["test_snapshot_before_bootstrap"].outcome == "skipped"
    assert "keeping the snapshot of the first run" in run.message("test_snapshot_before_bootstrap")
    assert "test_nothing_moved" in run.outcomes("passed")
    assert len(_journal(stack)) == before_journal, "a second run must not mutate anything"
    assert _head(stack) == before_head


def test_object_git_dropped_is_a_deletion_and_fails_the_diff(stack, work):
    kube = _kube(stack)
    kube.core.create_namespaced_config_map("default", {
        "metadata": {"name": "legacy-dashboard"}, "data": {"k": "v"}})
    ks = kube.resource("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
    live = kube.get("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "workloads",
                    "flux-system")
    status = live.get("status") or {}
    status["inventory"] = {"entries": [{"id": "default_legacy-dashboard__ConfigMap", "v": "v1"}]}
    # as if an earlier Flux had applied it from Git: in the live inventory, gone from the build
    kube.dynamic.request("PATCH", ks.path(name="workloads", namespace="flux-system") + "/status",
                         body={"status": status},
                         content_type="application/merge-patch+json")
    run = _run(stack, work, "dropped")
    assert run.failed == ["test_diff[workloads]"], run.stdout[-4000:]
    msg = run.message("test_diff[workloads]")
    assert "ConfigMap default/legacy-dashboard: deleted" in msg
    assert "prune: true would delete it" in msg
    assert "test_diff[infrastructure]" in run.outcomes("passed")
    assert kube.get("v1", "ConfigMap", "legacy-dashboard", "default") is not None
