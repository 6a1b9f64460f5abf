"""The scale benchmark's core (benchmarks/capture_scale.py, :func:`one_size`) at N=3: every figure
is produced, and the path it measures is correct end to end. ``handover inventory init`` drafts one
helm component per synthetic release, ``handover capture`` takes all three, the peer sees the same
three, ``rehearsal up --from-capture`` replays them with no problem, and ``pytest suites/phase1``
against that replay passes under the audited identity with only reads and dry-runs in the audit
log. Nothing here is about speed (the figures at 10/50/200 are the benchmark's, README
"Benchmarks")."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from benchmarks.capture_scale import METRICS, growth, line, one_size

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]
N = 3
NAMES = [f"r{i:03d}" for i in range(N)]


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> tuple[dict, Path]:
    base = tmp_path_factory.mktemp("capture-scale")
    return one_size(N, base), base


def test_every_figure_is_produced(figures):
    r, _ = figures
    for m in METRICS:
        assert isinstance(r[m], (int, float)) and r[m] > 0, (m, r[m])
    text = line(r)
    assert f"N={N:4d}" in text and "phase 1" in text and "peer helm list + get all" in text
    assert "x1.00" in growth(r, r)  # a size against itself grows by exactly 1


def test_inventory_init_drafts_one_helm_component_per_release(figures):
    _, base = figures
    draft = yaml.safe_load((base / f"migration-{N}.yaml").read_text())
    comps = {c["name"]: c for c in draft["components"]}
    assert sorted(comps) == NAMES
    for name, c in comps.items():
        assert c["type"] == "helm" and c["release"] == {"name": name, "namespace": "bench"}
        assert c["workloads"][0]["kind"] == "Deployment"


def test_capture_peer_and_replay_agree_on_the_releases(figures):
    r, _ = figures
    assert r["captured"] == r["peer_releases"] == r["replayed"] == N
    assert r["replay_problems"] == []


def test_phase1_on_the_replay_passes_and_only_reads(figures):
    r, _ = figures
    assert r["phase1_rc"] == 0, r["phase1_tail"]
    assert r["phase1_cases"]["failed"] == 0, r["phase1_tail"]
    outcome = {}
    for tc in ET.parse(r["phase1_junit"]).getroot().iter("testcase"):
        bad = [t for t in ("failure", "error", "skipped") if tc.find(t) is not None]
        outcome[tc.get("name")] = bad[0] if bad else "passed"
    for name in NAMES:  # each synthetic component went through the gate's per-component checks
        for check in ("test_ownership", "test_helmrelease_refs"):
            assert outcome.get(f"{check}[{name}]") == "passed", (check, name, outcome)
    assert r["phase1_writes"] == [], r["phase1_writes"]
