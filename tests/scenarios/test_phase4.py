"""Phase 4 on the rehearsal cluster, the suite run in a child pytest (tests/harness.py).

One stack for the module, in order:
1. after phase 2 only (nothing handed over): the preconditions fail per component, naming it, and
   nothing is resumed (Git still suspended, no reconcile requested);
2. after the full handover (phase 3 --perform on the whole homelab): phase 4 --perform resumes the
   entry points in Git, they reconcile Ready, every HelmRelease/Kustomization is Ready, nothing was
   deleted or restarted, every health check answers;
3. a second run of phase 4 is a no-op that passes.
"""
from __future__ import annotations

import json

import pytest

from tests.harness import run_suite
from tests.scenarios.phase3_rehearsal import bootstrapped_stack, run_phase3

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]
PHASE4 = "suites/phase4"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("phase4")
    state_dir, work = base / "state", base / "work"
    work.mkdir()
    with bootstrapped_stack(state_dir, work) as s:
        yield {"stack": s, "work": work, "journal": work / "journal.jsonl"}


def _run(env, name: str, *extra: str):
    s = env["stack"]
    return run_suite([PHASE4], s.inventory_path, env["work"] / f"{name}.xml",
                     "--kubeconfig", str(s.cluster.kubeconfig), "--perform",
                     "--journal", str(env["journal"]),
                     "--report-dir", str(env["work"] / "reports"), *extra, timeout=1200)


def _entry_states(env):
    from handover.sources.gitops import GitOpsRepo
    from handover.core.inventory import load
    return GitOpsRepo(load(env["stack"].inventory_path).gitops).remote_states()


def test_preconditions_fail_clearly_when_nothing_was_handed_over(env):
    head_before, _ = _entry_states(env)
    run = _run(env, "not-handed-over")
    assert run.returncode != 0
    failed = run.failed
    assert "test_component_handed_over[loki]" in failed and \
        "test_component_handed_over[envoy-gateway]" in failed, run.stdout[-3000:]
    msg = run.message("test_component_handed_over[loki]")
    assert "component loki is not handed over" in msg and "run phase 3 for loki first" in msg
    for name in ("test_resume_in_git[infrastructure]", "test_reconciled[workloads]"):
        assert run.by_name[name].outcome == "skipped", name
    head_after, states = _entry_states(env)
    assert head_after == head_before and all(s.suspended for s in states)
    intents = [json.loads(ln) for ln in env["journal"].read_text().splitlines()] \
        if env["journal"].exists() else []
    assert not [e for e in intents if e.get("phase") == "phase4" and e["kind"] == "intent"]


def test_after_full_handover_phase4_resumes_and_validates(env):
    h = run_phase3(env["stack"], env["work"], journal=env["journal"], name="phase3")
    if h.returncode != 0:
        pytest.fail(f"the full handover (phase 3) failed, phase 4 cannot be shown:\n"
                    f"{h.stdout[-3000:]}")
    run = _run(env, "resume")
    assert run.returncode == 0, run.stdout[-5000:]
    passed = set(run.outcomes("passed"))
    assert {"test_resume_in_git[infrastructure]", "test_resume_in_git[workloads]",
            "test_reconciled[infrastructure]", "test_reconciled[workloads]",
            "test_every_kustomization_ready", "test_every_helmrelease_ready",
            "test_nothing_deleted", "test_health[loki-loki]",
            "test_health[llama-cpp-llama-cpp]"} <= passed, run.stdout[-3000:]
    _, states = _entry_states(env)
    assert not any(s.suspended for s in states)


def test_second_phase4_run_is_a_noop(env):
    head, _ = _entry_states(env)
    lines = env["journal"].read_text().count("\n")
    run = _run(env, "resume-again")
    assert run.returncode == 0, run.stdout[-3000:]
    assert _entry_states(env)[0] == head
    new = env["journal"].read_text().splitlines()[lines:]
    assert not [ln for ln in new if '"kind": "intent"' in ln]
