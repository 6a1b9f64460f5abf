"""handover.report.migration: per-component Markdown/JSON, refusals and rollback actions, no secrets."""
from __future__ import annotations

import json

from handover.core.redact import hashed
from handover.report.migration import MigrationReport, StepResult, redact


def test_redact_hides_credentials_in_messages():
    # the one rule (handover.core.redact): a value by its short hash, never in clear
    assert redact("password: hunter2 and token=abc") == \
        f"password: {hashed('hunter2')} and token={hashed('abc')}"


def test_report_renders_components_rollback_and_refusals(tmp_path):
    r = MigrationReport("run1", "/inv.yaml", "ctx", True)
    c = r.component("loki", "helm", "high")
    c.started, c.finished = 10.0, 22.5
    # restarts during the handover = after - before: 1 -> 3 is 2 (1 and 1 would pass with any
    # subtraction, or with a constant 0)
    c.downtime_seconds, c.restarts_before, c.restarts_after = 0.0, 1, 3
    c.revision_before, c.revision_after = 1, 2
    c.steps.append(StepResult("ready", "failed", 3.0, "not Ready; adminPassword: hunter2"))
    c.failed_step, c.failure = "ready", "timeout"
    c.rollback.append({"action": "suspend HelmRelease logging/loki", "result": "done",
                       "detail": ""})
    c.refused.append({"command": "helm uninstall loki -n logging", "why": "Flux manages it"})
    r.component("grafana", "helm", "medium")
    md, js = r.write(tmp_path)
    text = md.read_text()
    assert "| loki | not started | 0.00 s | 2 | 1 -> 2 | 12.5 s | 1 |" in text
    assert "HALTED at step ready" in text and "1. suspend HelmRelease logging/loki: **done**" in text
    assert "refused runbook step `helm uninstall loki -n logging`: Flux manages it" in text
    assert "hunter2" not in text and "hunter2" not in js.read_text()
    data = json.loads(js.read_text())
    assert data["components"][0]["restarts"] == 2 and data["components"][1]["name"] == "grafana"
    assert data["components"][1]["restarts"] is None  # not measured is not 0
    assert md.stat().st_mode & 0o777 == 0o600
