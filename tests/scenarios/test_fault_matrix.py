"""The fault matrix over a representative subset of cells (the whole matrix:
benchmarks/fault_matrix.py): the phase-3 chain of envoy-gateway is SIGKILLed at a named point
(tests/scenarios/kill_point_plugin.py) and run again; every cell must end handed over or cleanly
rolled back (never a finished component rolled back), with the pods of a handed-over component
unchanged, no Helm release pending and a consistent journal (tests/scenarios/fault_matrix.py).

The first scenario is the resume case of issue 8: killed right after step 7 (handover finished,
temporary Kustomization removed) and run again, step 8 used to fail on a value only step 6 of the
same process filled, and that failure rolled back a finished handover.
"""
from __future__ import annotations

import pytest

from handover import journal as journal_mod
from handover.inventory import load
from handover.kube import Kube
from tests.scenarios import fault_matrix as fm
from tests.scenarios.phase3_rehearsal import bootstrapped_stack

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]


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


@pytest.mark.parametrize("step,point", [("handover", "mutated"), ("adopted", "started"),
                                        ("finish", "mutated"), ("record", "started")])
def test_fault_matrix_cell(env, step, point):
    cell = run_cell(env, step, point)
    assert cell.result == "passed", "\n".join(cell.problems)
    assert cell.end == "handed over", cell.end
