"""The phase-3 plugins in a child pytest (pytester), with chain steps that touch no cluster:
chain ordering, halt (later steps skipped naming the failed step, later components not started),
journal step records, resume after a kill (os._exit mid-chain) without repeating passed steps,
and the migration report written without secrets."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
import shutil
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]

CHAIN = '''
import os, pytest

pytestmark = pytest.mark.chain("phase3")

STEPS = ["preconditions", "backup", "snapshot", "handover", "ready", "adopted", "finish",
         "record"]

def make(step, n):
    @pytest.mark.step(step)
    def t(component, report):
        fail = os.environ.get("FAIL_AT", "")
        if fail == f"{component.name}:{step}":
            assert False, f"{component.name} broke at {step}: password=hunter2"
        if os.environ.get("KILL_AT") == f"{component.name}:{step}":
            os._exit(9)  # killed: no outcome written for this step
        report.component(component.name).notes.append(f"ran {step}")
    t.__name__ = f"test_{n}_{step}"
    return t

# defined in REVERSE order on purpose: the plugin must order the chain
for n, step in reversed(list(enumerate(STEPS, 1))):
    globals()[f"test_{n}_{step}"] = make(step, n)
'''


@pytest.fixture()
def suite(pytester: pytest.Pytester):
    shutil.copy(ROOT / "examples" / "homelab" / "migration.yaml",
                pytester.path / "migration.yaml")
    pytester.makeconftest(textwrap.dedent("""\
        pytest_plugins = ["plugins.safety", "plugins.runbook"]
        """))
    pytester.makepyfile(test_chain=CHAIN)
    return pytester


def run(suite, *args, **env):
    for k, v in env.items():
        suite._monkeypatch.setenv(k, v)
    junit = suite.path / "junit.xml"
    if junit.exists():
        junit.unlink()
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "--perform", f"--junitxml={junit}",
                                     "--report-dir", str(suite.path / "reports"), *args)
    res.cases = {}
    if junit.exists():
        for tc in ET.parse(junit).getroot().iter("testcase"):
            sk = tc.find("skipped")
            outcome = "skipped" if sk is not None else (
                "failed" if tc.find("failure") is not None else "passed")
            res.cases[tc.get("name")] = (outcome, sk.get("message", "") if sk is not None else "")
    return res


def journal(suite) -> list[dict]:
    p = suite.path / "backups" / "journal.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def test_chain_order_is_component_by_component(suite):
    res = suite.runpytest("-p", "no:cacheprovider", "--collect-only", "-q")
    ids = [line.split("::")[1] for line in res.stdout.lines if "::" in line]
    assert ids[:9] == [f"test_{n}_{s}[storage]" for n, s in enumerate(
        ["preconditions", "backup", "snapshot", "handover", "ready", "adopted", "finish",
         "record"], 1)] + ["test_1_preconditions[envoy-gateway]"]
    assert ids[-1] == "test_8_record[loki]" and len(ids) == 64


def test_phases_keep_their_order_around_the_chain(suite):
    """`pytest -k envoy` over all phases: phase 1's checks, then the chain, then phase 4's."""
    for phase in ("phase1", "phase3", "phase4"):
        (suite.path / "suites" / phase).mkdir(parents=True)
    (suite.path / "test_chain.py").rename(suite.path / "suites/phase3/test_chain.py")
    (suite.path / "suites/phase1/test_gate.py").write_text(
        "def test_gate(component):\n    pass\n")
    (suite.path / "suites/phase4/test_after.py").write_text(
        "def test_handed_over(component):\n    pass\n")
    res = suite.runpytest("-p", "no:cacheprovider", "--collect-only", "-q", "-k", "envoy",
                          "suites/phase4", "suites/phase3", "suites/phase1")
    ids = [line.split("::")[1] for line in res.stdout.lines if "::" in line]
    assert ids == ["test_gate[envoy-gateway]"] + [
        f"test_{n}_{s}[envoy-gateway]" for n, s in enumerate(
            ["preconditions", "backup", "snapshot", "handover", "ready", "adopted", "finish",
             "record"], 1)] + ["test_handed_over[envoy-gateway]"]


def test_failure_halts_component_and_skips_later_components(suite):
    res = run(suite, FAIL_AT="alloy:backup")
    res.assert_outcomes(passed=16 + 1, failed=1, skipped=64 - 18)
    assert res.cases["test_3_snapshot[alloy]"] == (
        "skipped", "halted: alloy failed at step backup (test_2_backup[alloy])")
    outcome, msg = res.cases["test_1_preconditions[tempo]"]
    assert outcome == "skipped" and msg.startswith(
        "not started: component alloy halted at step backup")
    steps = [(e["component"], e["step"], e["action"]) for e in journal(suite)
             if e["kind"] == "step"]
    assert ("alloy", "backup", "failed") in steps
    assert not [s for s in steps if s[0] == "tempo"]
    rep = json.loads(next((suite.path / "reports").glob("*.json")).read_text())
    alloy = next(c for c in rep["components"] if c["name"] == "alloy")
    assert alloy["status"] == "halted (nothing had been changed)"
    assert alloy["failed_step"] == "backup" and alloy["rollback"][0]["result"] == "not-needed"
    md = next((suite.path / "reports").glob("*.md")).read_text()
    assert "hunter2" not in md and "hunter2" not in json.dumps(rep)


def test_killed_run_resumes_without_repeating_passed_steps(suite):
    res = run(suite, "-k", "envoy", KILL_AT="envoy-gateway:adopted")
    assert res.ret != 0  # killed
    steps = [(e["step"], e["action"]) for e in journal(suite)
             if e["kind"] == "step" and e["component"] == "envoy-gateway"]
    assert ("ready", "passed") in steps and ("adopted", "started") in steps
    assert ("adopted", "passed") not in steps
    suite._monkeypatch.delenv("KILL_AT")
    res = run(suite, "-k", "envoy")
    res.assert_outcomes(passed=3, skipped=5)
    for n, s in enumerate(("preconditions", "backup", "snapshot", "handover", "ready"), 1):
        outcome, msg = res.cases[f"test_{n}_{s}[envoy-gateway]"]
        assert outcome == "skipped" and msg.startswith(
            f"envoy-gateway: step {s} passed in run") and "not repeated" in msg, msg
    for n, s in ((6, "adopted"), (7, "finish"), (8, "record")):
        assert res.cases[f"test_{n}_{s}[envoy-gateway]"][0] == "passed"
    # third run: the component is done, nothing runs again
    res = run(suite, "-k", "envoy")
    res.assert_outcomes(skipped=8)
    assert all(m.startswith("envoy-gateway was handed over in run")
               for _, m in res.cases.values())


def test_killed_before_the_handover_reruns_read_only_steps(suite):
    res = run(suite, "-k", "storage", KILL_AT="storage:snapshot")
    assert res.ret != 0
    suite._monkeypatch.delenv("KILL_AT")
    res = run(suite, "-k", "storage")
    res.assert_outcomes(passed=8)  # nothing had been mutated: the chain simply runs again


def test_failure_after_the_handover_finished_never_rolls_it_back(suite):
    """Step record failing after step finish passed (the temporary Kustomization is gone, Flux
    manages the component) is reported, never answered by rolling the handover back; the run
    again repeats only the failed step (before: a full rollback, and the rerun rolled back from
    the journal)."""
    res = run(suite, "-k", "envoy", FAIL_AT="envoy-gateway:record")
    res.assert_outcomes(passed=7, failed=1)
    steps = [(e["step"], e["action"]) for e in journal(suite)
             if e["kind"] == "step" and e["component"] == "envoy-gateway"]
    assert ("record", "failed") in steps
    assert not [s for s in steps if s[0] == "rollback"], steps
    rep = json.loads(next((suite.path / "reports").glob("*.json")).read_text())
    eg = next(c for c in rep["components"] if c["name"] == "envoy-gateway")
    assert eg["status"] == "handed over; step record FAILED afterwards (not rolled back)"
    assert [a["result"] for a in eg["rollback"]] == ["not-needed"]
    suite._monkeypatch.delenv("FAIL_AT")
    res = run(suite, "-k", "envoy")
    res.assert_outcomes(passed=1, skipped=7)
    assert res.cases["test_8_record[envoy-gateway]"][0] == "passed"
    for n, s in enumerate(("preconditions", "backup", "snapshot", "handover", "ready",
                           "adopted", "finish"), 1):
        outcome, msg = res.cases[f"test_{n}_{s}[envoy-gateway]"]
        assert outcome == "skipped" and "not repeated" in msg, msg
    steps = [(e["step"], e["action"]) for e in journal(suite)
             if e["kind"] == "step" and e["component"] == "envoy-gateway"]
    assert not [s for s in steps if s[0] == "rollback"], steps
    assert steps[-1] == ("record", "passed")
