"""plugins.report records what the HTML report draws, in a child pytest (pytester) with chain
steps that touch no cluster: step times and run ids, a killed run's part kept (the report is
rewritten after every step) and shown with the resumed run on one timeline, phase-1 checks with
their outcomes, and an unwritable report directory that does not fail the run."""
from __future__ import annotations

import json
import re


from tests.unit.test_phase3_plugins import run, suite  # noqa: F401  (the pytester chain)

pytest_plugins = ["pytester"]


def reports(suite) -> list[dict]:  # noqa: F811
    d = suite.path / "reports"
    return sorted((json.loads(p.read_text()) for p in d.glob("*.json")),
                  key=lambda r: r["started"])


def test_killed_and_resumed_run_is_one_timeline(suite):  # noqa: F811
    res = run(suite, "-k", "envoy", KILL_AT="envoy-gateway:adopted")
    assert res.ret != 0
    [killed] = reports(suite)  # written after every step: the killed part is there
    env = next(c for c in killed["components"] if c["name"] == "envoy-gateway")
    assert [s["step"] for s in env["steps"]] == ["preconditions", "backup", "snapshot",
                                                 "handover", "ready"]
    assert all(s["start"] <= s["end"] and s["run"] == killed["run"] for s in env["steps"])
    suite._monkeypatch.delenv("KILL_AT")
    res = run(suite, "-k", "envoy")
    first, second = reports(suite)
    assert first["run"] == killed["run"]
    page = (suite.path / "reports" / f"{second['run']}.html").read_text()
    assert re.findall(r'data-lane="([^"]+)"', page) == ["envoy-gateway"]
    lane = page.split('data-lane="envoy-gateway"')[1].split("</g>")[0]
    bars = re.findall(r'class="step-bar".*?data-step="(\w+)" data-outcome="(\w+)"', lane)
    assert [b for b in bars if b[1] == "passed"] == [
        (s, "passed") for s in ("preconditions", "backup", "snapshot", "handover", "ready",
                                "adopted", "finish", "record")]
    assert ("ready", "skipped") in bars  # the resumed run did not repeat it
    assert first["run"] in page and second["run"] in page
    assert page.count('class="part-start"') == 2
    # without the killed run's report, the journal still gives its bars
    (suite.path / "reports" / f"{first['run']}.json").unlink()
    from handover.report import html as report_html
    alone = report_html.render(report_html.parts_for(second, suite.path / "reports"))
    lane = alone.split('data-lane="envoy-gateway"')[1].split("</g>")[0]
    bars = re.findall(r'class="step-bar".*?data-step="(\w+)" data-outcome="(\w+)"', lane)
    assert [b[0] for b in bars if b[1] == "passed"] == [
        "preconditions", "backup", "snapshot", "handover", "ready", "adopted", "finish",
        "record"]
    assert first["run"] in alone


def test_phase1_checks_are_recorded_with_their_outcome(suite):  # noqa: F811
    (suite.path / "suites" / "phase1").mkdir(parents=True)
    (suite.path / "test_chain.py").unlink()
    (suite.path / "suites/phase1/test_gate.py").write_text(
        "import pytest\n"
        "def test_ok(): pass\n"
        "def test_bad(): assert False, '[check] thing broke\\n    fix: mend it (token=hunter2)'\n"
        "def test_known(): pytest.xfail('rehearsal API server too old')\n"
        "def test_skip(): pytest.skip('no node to reach')\n")
    res = run(suite, "suites/phase1")
    res.assert_outcomes(passed=1, failed=1, xfailed=1, skipped=1)
    [rep] = reports(suite)
    assert rep["phases"] == [1]
    got = {c["name"]: c["outcome"] for c in rep["checks"]}
    assert got == {"test_ok": "passed", "test_bad": "failed", "test_known": "expected failure",
                   "test_skip": "skipped"}
    page = (suite.path / "reports" / f"{rep['run']}.html").read_text()
    assert "NOT safe to bootstrap: 1 check(s) failed" in page
    assert "<b>fix:</b> mend it" in page and "hunter2" not in page
    assert "hunter2" not in json.dumps(rep)


def test_unwritable_report_dir_does_not_fail_the_run(suite):  # noqa: F811
    blocker = suite.path / "blocker"
    blocker.write_text("a file where the report directory should be\n")
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "--perform", "-k", "storage",
                                     "--report-dir", str(blocker / "reports"))
    res.assert_outcomes(passed=8)
    assert any("migration report NOT written" in line for line in res.outlines)


def test_phase2_diff_counts_are_recorded_from_the_junit_properties(suite):  # noqa: F811
    (suite.path / "suites" / "phase2").mkdir(parents=True)
    (suite.path / "test_chain.py").unlink()
    (suite.path / "suites/phase2/test_d.py").write_text(
        "import json, pytest\n"
        "@pytest.mark.parametrize('entrypoint', ['workloads'])\n"
        "def test_diff(entrypoint, record_property):\n"
        "    record_property('diff_counts', json.dumps({'created': 1, 'modified': 2,\n"
        "                    'owner-labels': 3, 'deleted': 1, 'unchanged': 4}))\n"
        "    record_property('deleted: ConfigMap ai/old', 'pruned')\n"
        "    record_property('modified: Deployment ai/llama-cpp', 'spec.replicas')\n")
    res = run(suite, "suites/phase2")
    res.assert_outcomes(passed=1)
    [rep] = reports(suite)
    [d] = rep["diffs"]
    assert d["entrypoint"] == "workloads" and d["counts"]["configured"] == 5
    assert d["deleted"] == ["ConfigMap ai/old"] and d["configured"] == ["Deployment ai/llama-cpp"]
    page = (suite.path / "reports" / f"{rep['run']}.html").read_text()
    table = page.split('id="phase2"')[1].split("</table>")[0]
    assert re.findall(r"<td[^>]*>(\d+)</td>", table) == ["1", "5", "1", "4"]


def test_a_drawing_bug_never_breaks_the_run(suite):  # noqa: F811
    """The HTML renderer raising: the chain still passes, .md/.json are written, and the summary
    says the page failed."""
    (suite.path / "conftest.py").write_text(
        (suite.path / "conftest.py").read_text() + "\n" +
        "import handover.report.html as h\n"
        "def _boom(*a, **k):\n"
        "    raise KeyError('drawing bug')\n"
        "h.render = _boom\n")
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "--perform", "-k", "storage",
                                     "--report-dir", str(suite.path / "reports"))
    res.assert_outcomes(passed=8)
    assert any("the HTML page failed (KeyError" in line for line in res.outlines)
    assert list((suite.path / "reports").glob("*.json")) and \
        not list((suite.path / "reports").glob("*.html"))
