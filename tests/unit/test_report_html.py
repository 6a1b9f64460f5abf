"""handover.report.html from JSON fixtures (two sessions of one migration: the phase-1 gate and
phase-2 diff, then a phase-3 run in which loki halts at `ready` and is rolled back), the
`handover report` command, and the privacy rule (names, numbers, paths, hashes; never values)."""
from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from handover import cli
from handover.report import html as report_html
from handover.report import estimates as runbook_estimates

DATA = Path(__file__).parent / "data"
GATE, PHASE3 = DATA / "20260901-100000-aaaaaa.json", DATA / "20260901-101500-bbbbbb.json"
COMPONENTS = ["storage", "envoy-gateway", "alloy", "tempo", "grafana", "llama-cpp",
              "log-analyzer", "loki"]


@pytest.fixture()
def parts() -> list[dict]:
    return [json.loads(GATE.read_text()), json.loads(PHASE3.read_text())]


def lanes(page: str) -> list[str]:
    return re.findall(r'<g class="lane" data-lane="([^"]+)"', page)


def test_timeline_has_a_lane_per_component_and_per_check_phase(parts):
    page = report_html.render(parts)
    assert lanes(page) == ["phase 1 checks", "phase 2 checks"] + COMPONENTS
    # 7 components x 8 steps + loki's 5 (halted at ready)
    assert page.count('class="step-bar"') == 7 * 8 + 5
    assert page.count('class="step-bar" ') == page.count("data-step=")
    assert 'data-step="ready" data-outcome="failed"' in page
    assert page.count('class="outage"') == 1 and page.count('class="probe-down"') == 1
    assert page.count('class="rollback-action"') == 4
    # the rollback markers sit on loki's lane, nowhere else
    loki_lane = page.split('data-lane="loki"')[1].split("</g>")[0]
    assert loki_lane.count("rollback-action") == 4 and "outage" in loki_lane
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page


def test_downtime_against_the_runbook_estimates_and_the_budget(parts):
    page = report_html.render(parts)
    rows = dict(re.findall(r'<tr class="component-row" data-component="([^"]+)">(.*?)</tr>',
                           page, re.S))
    assert set(rows) == set(COMPONENTS)
    assert "<td>2-3 min</td>" in rows["loki"] and "<td>4.0 s</td>" in rows["loki"]
    assert "<td>10 s</td>" in rows["envoy-gateway"] and "<td>0 s</td>" in rows["storage"]
    assert "3 -&gt; 4 (by helm-controller, HelmRelease ns/grafana)" in rows["grafana"]
    assert "1 kept / " in rows["grafana"] and "0 kept / " in rows["loki"]
    assert "rolled back" in rows["loki"]
    assert "total downtime 5-7 minutes" in page and "4.0 s (8 component(s) measured)" in page


def test_estimates_are_data_not_rendering_logic(parts, monkeypatch):
    monkeypatch.setitem(runbook_estimates.ESTIMATES, "loki",
                        runbook_estimates.Estimate(1, 2, "2 s (edited)"))
    page = report_html.render(parts)
    row = page.split('data-component="loki"')[1].split("</tr>")[0]
    assert "2 s (edited)" in row and "over the estimate, within budget" in row


def test_over_budget_is_flagged(parts):
    parts[1]["components"][-1]["downtime_seconds"] = 301.0
    row = report_html.render(parts).split('data-component="loki"')[1].split("</tr>")[0]
    assert "over the &lt; 5 min budget" in row


def test_phase1_gate_and_phase2_diff(parts):
    page = report_html.render(parts)
    assert 'id="gate-verdict">NOT safe to bootstrap: 1 check(s) failed' in page
    p1 = page.split('id="phase1"')[1].split("</table>")[0]
    assert p1.index("test_hazard_values[grafana]") < p1.index("test_kustomize_build")  # failed 1st
    assert "accepted hazard" in p1 and "<b>fix:</b> copy the release&#x27;s user values" in p1
    p2 = page.split('id="phase2"')[1].split("</table>")[0]
    cells = re.findall(r"<td[^>]*>(\d+)</td>", p2)
    assert cells == ["2", "6", "1", "20"]  # created, configured, deleted, unchanged
    assert p2.index("deleted: ") < p2.index("configured: ")  # deletions first
    gate_passes = copy.deepcopy(parts)
    gate_passes[0]["checks"] = [c for c in gate_passes[0]["checks"] if c["outcome"] != "failed"]
    assert 'id="gate-verdict">safe to bootstrap' in report_html.render(gate_passes)


def test_privacy_canary_in_a_step_detail_shows_only_path_and_hash(parts):
    canary = "CANARY-VALUE-7f3a"
    assert canary in PHASE3.read_text()  # the fixture really carries it
    comp = next(c for c in parts[1]["components"] if c["name"] == "grafana")
    comp["steps"][0]["message"] = f"values differ: adminPassword: {canary}-2"
    comp["notes"].append(f"token={canary}-3")
    page = report_html.render(parts)
    assert canary not in page
    snap = next(s for s in comp["steps"] if s["step"] == "snapshot")
    digest = "sha256:" + hashlib.sha256(json.dumps(snap["detail"]["leak"]).encode()).hexdigest()[:12]
    assert digest in page and "/var/backups/homelab/grafana/snap.json" in page
    assert report_html.safe_detail("/a/b.json") == "/a/b.json"
    assert report_html.safe_detail(42) == "42"
    assert report_html.safe_detail("20261129-202323-c5a0f9") == "20261129-202323-c5a0f9"
    assert report_html.safe_detail("a value with spaces").startswith("sha256:")


def test_fidelity_gaps_are_shown_when_present(parts):
    parts[1]["components"][0]["proof_gaps"] = ["the node agent does not run containers"]
    assert "the node agent does not run containers" in report_html.render(parts)


def test_resumed_run_shows_both_parts_on_one_lane(parts):
    """A killed part (steps 1-5 of loki) and the resumed part (steps 6-8, earlier ones skipped)
    merge into one lane with the steps of both runs."""
    first = parts[1]
    second = copy.deepcopy(first)
    second["run"], second["started"] = "20260901-120000-cccccc", first["started"] + 3600
    loki = next(c for c in second["components"] if c["name"] == "loki")
    t = first["started"] + 3610
    loki["steps"] = [{"step": s, "outcome": "passed", "seconds": 1.0, "message": "",
                      "start": t + i, "end": t + i + 1, "run": "", "detail": {}}
                     for i, s in enumerate(("adopted", "finish", "record"))]
    loki["status"], loki["rollback"], loki["rollback_events"] = "handed over", [], []
    second["components"] = [loki]
    view = report_html.merge([first, second])
    lane = next(c for c in view["components"] if c["name"] == "loki")
    assert [s["run"] for s in lane["steps"]] == [first["run"]] * 5 + [second["run"]] * 3
    assert lane["status"] == "handed over" and lane["runs"] == [first["run"], second["run"]]
    page = report_html.render([first, second])
    assert lanes(page).count("loki") == 1
    assert page.count('class="part-start"') == 2 and 'class="gap"' in page


def test_parts_for_finds_the_same_migration_from_the_latest_gate(tmp_path, parts):
    for p in (GATE, PHASE3):
        shutil.copy(p, tmp_path / p.name)
    other = dict(parts[0], run="20260901-090000-zzzzzz", journal="/elsewhere/journal.jsonl")
    (tmp_path / "other.json").write_text(json.dumps(other))
    old_gate = dict(parts[0], run="20260801-000000-oooooo", started=parts[0]["started"] - 9e5)
    (tmp_path / "old.json").write_text(json.dumps(old_gate))
    (tmp_path / "MIGRATION_STATE.json").write_text(json.dumps({"order": []}))
    found = report_html.parts_for(parts[1], tmp_path)
    assert [p["run"] for p in found] == [parts[0]["run"], parts[1]["run"]]


def test_cli_rebuilds_the_page_from_the_json(tmp_path, capsys):
    for p in (GATE, PHASE3):
        shutil.copy(p, tmp_path / p.name)
    assert cli.main(["report", str(tmp_path / PHASE3.name)]) == 0
    out = tmp_path / PHASE3.with_suffix(".html").name
    assert "2 session(s)" in capsys.readouterr().out
    page = out.read_text()
    assert lanes(page)[:2] == ["phase 1 checks", "phase 2 checks"]
    assert out.stat().st_mode & 0o777 == 0o600
    assert cli.main(["report", str(tmp_path / PHASE3.name), "--alone",
                     "--out", str(tmp_path / "alone.html")]) == 0
    assert "phase 1 checks" not in lanes((tmp_path / "alone.html").read_text())
    (tmp_path / "state.json").write_text('{"order": []}')
    assert cli.main(["report", str(tmp_path / "state.json")]) == 1
    assert "is not a run report" in capsys.readouterr().err


def test_lanes_follow_the_newest_part_order(parts):
    """`-k envoy` first, then the whole homelab: envoy-gateway keeps its inventory place."""
    envoy_only = copy.deepcopy(parts[1])
    envoy_only["run"], envoy_only["started"] = "20260901-101000-eeeeee", parts[1]["started"] - 60
    envoy_only["components"] = [c for c in envoy_only["components"]
                                if c["name"] == "envoy-gateway"]
    view = report_html.merge([envoy_only, parts[1]])
    assert [c["name"] for c in view["components"]] == COMPONENTS


def test_values_of_field_differences_are_hashed(parts):
    gate = parts[0]["checks"][2]
    gate["message"] = ("[adoption-values] HelmRelease logging/grafana: spec.values differ at 1 "
                       "path(s): grafana.ini.analytics.check_for_updates: live false, Git "
                       "\"VALUE-CANARY-9\". The adoption upgrade RESETS the release\n"
                       "    fix: make spec.values equal")
    page = report_html.render(parts)
    assert "VALUE-CANARY-9" not in page
    assert "grafana.ini.analytics.check_for_updates: live sha256:" in page
