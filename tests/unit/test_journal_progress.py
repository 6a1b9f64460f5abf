"""handover.core.journal.progress: where a component's chain stands for a resumed run."""
from __future__ import annotations

from handover.core.journal import Journal, progress


def steps(j: Journal, comp: str, *seq: tuple[str, str], run: str = "r1", **detail):
    for step, status in seq:
        j.set_context("phase3", comp, step)
        j.step(status, run=run, **detail)


def test_fresh(tmp_path):
    assert progress(Journal(tmp_path / "j"), "phase3", "loki").state == "fresh"


def test_killed_after_handover_is_in_progress_with_passed_steps(tmp_path):
    j = Journal(tmp_path / "j")
    steps(j, "loki", ("preconditions", "started"), ("preconditions", "passed"),
          ("backup", "started"))
    j.set_context("phase3", "loki", "backup")
    j.step("passed", run="r1", backup="/b/loki/r1")
    steps(j, "loki", ("handover", "started"))
    j.set_context("phase3", "loki", "handover")
    jid = j.intent("apply Kustomization flux-system/handover-loki")  # killed before done
    p = progress(j, "phase3", "loki")
    assert p.state == "in-progress" and p.last_started == "handover"
    assert p.passed["backup"]["backup"] == "/b/loki/r1" and "handover" not in p.passed
    assert p.interrupted == ["apply Kustomization flux-system/handover-loki"]
    j.done(jid, "apply")
    assert progress(j, "phase3", "loki").interrupted == []


def test_done_failed_rolled_back_and_a_fresh_attempt(tmp_path):
    j = Journal(tmp_path / "j")
    steps(j, "a", ("preconditions", "started"), ("record", "started"), ("record", "passed"))
    assert progress(j, "phase3", "a").state == "done"
    steps(j, "b", ("preconditions", "started"), ("preconditions", "passed"),
          ("ready", "started"), ("ready", "failed"))
    p = progress(j, "phase3", "b")
    assert (p.state, p.failed_step) == ("failed", "ready")
    steps(j, "b", ("rollback", "started"), ("rollback", "rollback-failed"))
    assert progress(j, "phase3", "b").state == "failed"
    steps(j, "b", ("rollback", "started"), ("rollback", "rolled-back"))
    p = progress(j, "phase3", "b")
    assert p.state == "rolled-back" and p.passed == {}
    steps(j, "b", ("preconditions", "started"), run="r2")
    p = progress(j, "phase3", "b")
    assert p.state == "in-progress" and p.run == "r2" and p.passed == {}
    # other components and phases are separate
    assert progress(j, "phase2", "b").state == "fresh"


def test_torn_last_line_is_ignored(tmp_path):
    j = Journal(tmp_path / "j")
    steps(j, "a", ("preconditions", "started"))
    with open(j.path, "a") as f:
        f.write('{"id": "x", "kind": "st')  # killed mid-write
    assert progress(j, "phase3", "a").state == "in-progress"
