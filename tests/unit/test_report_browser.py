"""The HTML report in a real browser (headless Chromium, Debian's `chromium`): no console errors,
no blocked load, the components, step bars, probe strip, outage marks and rollback actions are in
the DOM; a screenshot goes to reports/. Skips only when Chromium is not installed.

This one renders the JSON fixtures (a halt and a rollback of loki); the rehearsal scenarios
(tests/scenarios/test_phase3_failures.py, test_phase3_handover.py) check the pages their real
runs leave the same way."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from handover.report import html as report_html
from tests.browser import Page, chromium_path, report_facts

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
COMPONENTS = ["storage", "envoy-gateway", "alloy", "tempo", "grafana", "llama-cpp",
              "log-analyzer", "loki"]

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="chromium is not installed (scripts/setup installs it)")


def test_report_with_halt_and_rollback_in_chromium(tmp_path):
    for p in DATA.glob("*.json"):
        shutil.copy(p, tmp_path / p.name)
    run = tmp_path / "20260901-101500-bbbbbb.json"
    html = report_html.write(report_html.parts_for(report_html.load(run), tmp_path),
                             run.with_suffix(".html"))
    shot = ROOT / "reports" / "report-fixture.png"
    facts, errors = report_facts(html, shot)
    assert errors == []
    assert facts["lanes"] == ["phase 1 checks", "phase 2 checks"] + COMPONENTS
    assert facts["rows"] == COMPONENTS
    assert facts["bars"] == 61 and facts["failedBars"] == 1
    assert facts["outages"] == 1 and facts["rollback"] == 4 and facts["probe"] >= 10
    assert "total downtime 5-7 minutes" in facts["totals"]
    assert "NOT safe to bootstrap" in facts["text"] and "CANARY" not in facts["text"]
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_browser_check_catches_errors_and_blocked_loads(tmp_path):
    """The error collection can fail: a script error and a network load are reported."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
                   "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
                   "<script>console.error('boom'); missingFunction();</script>"
                   "<img src=\"http://127.0.0.1:9/x.png\"></body></html>")
    with Page() as page:
        page.open(bad.as_uri())
        errors = page.errors()
    assert any(e == "console: boom" for e in errors), errors
    assert any(e.startswith("exception: ") for e in errors), errors
    assert any("127.0.0.1:9" in e for e in errors), errors
