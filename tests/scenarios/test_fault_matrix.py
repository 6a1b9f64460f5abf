"""The fault matrix over a representative subset of cells (the whole matrix:
benchmarks/fault_matrix.py): the phase-3 chain of envoy-gateway is SIGKILLed at a named point
(tests/scenarios/kill_point_plugin.py) and run again; every cell must end handed over or cleanly
rolled back (never a finished component rolled back), with the pods of a handed-over component
unchanged, no Helm release pending and a consistent journal (tests/scenarios/fault_matrix.py).

The first scenario is the resume case of issue 8: killed right after step 7 (handover finished,
temporary Kustomization removed) and run again, step 8 used to fail on a value only step 6 of the
same process filled, and that failure rolled back a finished handover.

Also one phase-2 cell (the Git-suspend step killed after its push) and one phase-4 cell (the resume
killed after its push, every component handed over first).
"""
from __future__ import annotations

import pytest

from handover.core import journal as journal_mod
from handover.core.inventory import load
from handover.core.kube import Kube
from tests.scenarios import fault_matrix as fm
from tests.scenarios.phase3_rehearsal import bootstrapped_stack

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]


def test_phase2_killed_after_the_suspend_push(tmp_path):
    """First in the module (its own seeded stack, before the module's stack is up: one
    cluster at a time). Phase 2, killed right after step 1 pushed the entry points' suspend (its intent still
    open), run again on a fresh seeded stack: it passes, nothing covered moved, no release
    pending, the journal consistent, a third run passes."""
    cell = fm.run_phase2_cell(tmp_path / "state", tmp_path / "work",
                              fm.Cell("phase2", "test_entrypoints_suspended_in_git", "mutated"))
    assert cell.result == "passed", "\n".join(cell.problems)
    assert cell.end == "bootstrapped", cell.end


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    state = tmp_path_factory.mktemp("fault-matrix") / "state"
    work = tmp_path_factory.mktemp("fault-matrix-work")
    with bootstrapped_stack(state, work) as s:
        inv = load(s.inventory_path)
        kube = Kube(kubeconfig=s.cluster.kubeconfig, context=inv.cluster.context)
        yield {"stack": s, "work": work, "inv": inv, "kube": kube}


def run_cell(env, step: str, point: str) -> fm.Cell:
    cell = fm.Cell("phase3", step, point)
    work = env["work"] / f"{step}-{point}"
    return fm.run_phase3_cell(env["stack"], work, env["kube"], env["inv"], cell)


def test_killed_after_step_7_resumes_without_undoing_the_handover(env):
    cell = run_cell(env, "finish", "done")
    assert cell.result == "passed" and cell.end == "handed over", cell.problems
    work = env["work"] / "finish-done"
    entries = [e for e in journal_mod.Journal(work / "journal.jsonl").entries()
               if e.component == fm.COMPONENT and e.kind == "step"]
    assert not [e for e in entries if e.step == "rollback"], "the finished handover was rolled back"
    assert (entries[-1].step, entries[-1].action) == ("record", "passed")
    import xml.etree.ElementTree as ET
    cases = {tc.get("name"): tc for tc in ET.parse(work / "rerun.xml").getroot().iter("testcase")}
    assert cases[f"test_8_record[{fm.COMPONENT}]"].find("skipped") is None
    assert cases[f"test_8_record[{fm.COMPONENT}]"].find("failure") is None
    for n, s in enumerate(fm.PHASE3_STEPS[:7], 1):
        name = [k for k in cases if k.startswith(f"test_{n}_") and fm.COMPONENT in k][0]
        assert cases[name].find("skipped") is not None, f"{name} was repeated"


# Two representative cells (a kill right after each mutation that hands over and finishes); the
# whole matrix is benchmarks/fault_matrix.py (README, "Kill and resume").
@pytest.mark.parametrize("step,point", [("handover", "mutated"), ("finish", "mutated")])
def test_fault_matrix_cell(env, step, point):
    cell = run_cell(env, step, point)
    assert cell.result == "passed", "\n".join(cell.problems)
    assert cell.end == "handed over", cell.end


def test_phase4_killed_after_the_resume_push_resumes_once(env):
    """Phase 4, killed right after the entry points' resume was pushed (before the journal wrote
    its outcome), run again: the entry points are resumed in Git and live and Ready, the
    handed-over components' pods and releases unchanged, no release pending, the journal
    consistent, a third run a no-op. (Runs last: it hands every component over on the module's
    stack.)"""
    inv_path, journal3 = fm.hand_over_for_phase4(env["stack"], env["work"] / "p4")
    inv = load(inv_path)
    cell = fm.run_phase4_cell(env["stack"], inv_path, journal3, env["work"] / "p4-resume-mutated",
                              env["kube"], inv, fm.Cell("phase4", "test_resume_in_git", "mutated"))
    assert cell.result == "passed", "\n".join(cell.problems)
    assert cell.end == "resumed", cell.end

