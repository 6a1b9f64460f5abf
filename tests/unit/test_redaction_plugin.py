"""plugins/redaction.py in a child pytest (pytester): a failing phase-3 step whose message carries
a Secret value (registered, as reading a Secret registers it) and a kubectl-style JSON echo, and a
JUnit property holding the value: neither JUnit XML, the terminal, the journal nor the report
shows the value. The same run without the plugin shows it in JUnit and on the terminal (what the
plugin is there for)."""
from __future__ import annotations

import base64
import shutil
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]
CANARY = "Zq8-canary-Lm3tXw"

CHAIN = f'''
import json, pytest
from handover.core import redact

pytestmark = pytest.mark.chain("phase3")

STEPS = ["preconditions", "backup", "snapshot", "handover", "ready", "adopted", "finish",
         "record"]

def make(step, n):
    @pytest.mark.step(step)
    def t(component, record_property):
        if component.name == "storage" and step == "preconditions":
            redact.register_secret({{"stringData": {{"GREETING": "{CANARY}"}}}})
            record_property("values", "GREETING={CANARY}")
            echo = json.dumps({{"data": {{"url": "postgres://u:{CANARY}@db"}}}})
            assert False, f"kubectl failed: {{echo}}; env GREETING is {CANARY}"
    t.__name__ = f"test_{{n}}_{{step}}"
    return t

for n, step in enumerate(STEPS, 1):
    globals()[f"test_{{n}}_{{step}}"] = make(step, n)
'''


def _suite(pytester: pytest.Pytester, with_plugin: bool) -> pytest.RunResult:
    shutil.copy(ROOT / "examples" / "homelab" / "migration.yaml",
                pytester.path / "migration.yaml")
    plugins = ["plugins.safety", "plugins.runbook"]
    if with_plugin:
        plugins.insert(1, "plugins.redaction")
    pytester.makeconftest(f"pytest_plugins = {plugins!r}\n")
    pytester.makepyfile(test_chain=textwrap.dedent(CHAIN))
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--perform", f"--junitxml={pytester.path / 'junit.xml'}",
        "--report-dir", str(pytester.path / "reports"), "-k", "storage", "-rA")


def _written(pytester: pytest.Pytester, res: pytest.RunResult) -> dict[str, str]:
    out = {"terminal": res.stdout.str() + res.stderr.str(),
           "junit": (pytester.path / "junit.xml").read_text()}
    for p in list((pytester.path / "reports").glob("*")) + \
            list((pytester.path / "backups").rglob("journal.jsonl")):
        out[str(p.relative_to(pytester.path))] = p.read_text()
    return out


def test_no_value_in_junit_terminal_journal_or_report(pytester: pytest.Pytester):
    res = _suite(pytester, with_plugin=True)
    res.assert_outcomes(failed=1, skipped=7)
    written = _written(pytester, res)
    assert any(k.endswith("journal.jsonl") for k in written) and \
        any(k.startswith("reports") for k in written), written.keys()
    b64 = base64.b64encode(CANARY.encode()).decode()
    for where, text in written.items():
        assert CANARY not in text and b64 not in text, f"{where} holds the canary in clear"
    assert "kubectl failed: &lt;json sha256:" in written["junit"]
    assert "<sha256:" in written["terminal"]


def test_without_the_plugin_junit_and_terminal_would_carry_it(pytester: pytest.Pytester):
    res = _suite(pytester, with_plugin=False)
    written = _written(pytester, res)
    assert CANARY in written["junit"] and CANARY in written["terminal"]


def test_the_failure_message_stays_the_assertion_line(pytester: pytest.Pytester):
    """JUnit's failure message is still the crash line (scrubbed), not the whole traceback."""
    import xml.etree.ElementTree as ET
    _suite(pytester, with_plugin=True)
    [failure] = [tc.find("failure") for tc in
                 ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
                 if tc.find("failure") is not None]
    msg = failure.get("message")
    assert msg.startswith("AssertionError: kubectl failed: <json sha256:"), msg
    assert "def t(" not in msg and CANARY not in msg
