"""The run-level "rehearsal fidelity notes" of the migration report: the rehearsal's CRD
adaptations (handover.rehearsal.crd_adapter.load_notes) and a capture replay's notes
(<state>/capture-replay.json) reach the .md, the .json and the HTML page, only on a rehearsal."""
from __future__ import annotations

import json
from types import SimpleNamespace

from handover.report import html as report_html
from handover.rehearsal import crd_adapter
from handover.report.migration import MigrationReport
from handover.target import rehearsal_fidelity_notes
from plugins import report as report_plugin

CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "routes.example.test"},
       "spec": {"group": "example.test", "versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
           "type": "object", "properties": {"spec": {
               "type": "object",
               "x-kubernetes-validations": [{"rule": "self.a <= 5", "message": "a <= 5"}],
               "properties": {"group": {"type": "string", "default": ""},
                              "a": {"type": "integer"}}}}}}}]}}


def _state(tmp_path, replay_notes=None):
    _, notes = crd_adapter.adapt(CRD)
    crd_adapter.record_notes(tmp_path, "routes.example.test", notes)
    if replay_notes is not None:
        (tmp_path / "capture-replay.json").write_text(json.dumps({"notes": replay_notes}))
    return notes


def test_notes_from_the_crd_adapter_and_the_replay(tmp_path):
    notes = _state(tmp_path, ["chart appstack-0.3.1: subchart cache is not stored in the release",
                              f"CRD adapted: {crd_adapter.adapt(CRD)[1][0].line()}"])
    got = rehearsal_fidelity_notes(tmp_path)
    crd_lines = [f"CRD adapted: {n.line()}" for n in crd_adapter.load_notes(tmp_path)]
    assert len(crd_lines) == len(notes) == 2  # the CEL rule and the "" default, by field
    assert any("properties.spec: dropped 1 CEL rule(s): self.a <= 5" in x for x in crd_lines)
    assert any("properties.spec.properties.group: nullable: true added, default \"\" kept" in x
               for x in crd_lines)
    # CRD notes first, each once (the replay's copy of a CRD note is not doubled), then the
    # replay's own notes
    assert got == crd_lines + ["capture replay: chart appstack-0.3.1: subchart cache is not "
                               "stored in the release"]


def test_no_notes_for_a_state_dir_with_neither(tmp_path):
    assert rehearsal_fidelity_notes(tmp_path) == []
    (tmp_path / "capture-replay.json").write_text("{not json")
    assert rehearsal_fidelity_notes(tmp_path) == []


def test_report_renders_the_notes_in_md_json_and_html(tmp_path):
    _state(tmp_path / "state", ["hostPath PV data is not reproduced: <empty dir>"])
    r = MigrationReport("run1", "/inv.yaml", "ctx", False)
    r.component("loki", "helm", "high")
    r.fidelity_notes = rehearsal_fidelity_notes(tmp_path / "state")
    md, js = r.write(tmp_path / "out", html=True)
    text = md.read_text()
    assert "## Rehearsal fidelity notes" in text
    for n in r.fidelity_notes:
        assert f"- {n}" in text
    assert json.loads(js.read_text())["fidelity_notes"] == r.fidelity_notes
    page = (tmp_path / "out" / "run1.html").read_text()
    assert '<h2>Rehearsal fidelity notes</h2>' in page and 'id="fidelity"' in page
    assert "&lt;empty dir&gt;" in page and "<empty dir>" not in page  # escaped
    assert page.count("<li>") >= 3


def test_no_section_without_notes(tmp_path):
    r = MigrationReport("run1", "/inv.yaml", "ctx", False)
    md, _ = r.write(tmp_path, html=True)
    assert "fidelity" not in md.read_text().lower()
    assert "Rehearsal fidelity notes" not in (tmp_path / "run1.html").read_text()


def test_plugin_fills_the_notes_only_on_a_rehearsal(tmp_path, monkeypatch):
    _state(tmp_path, ["chart x-1.0.0: frozen"])
    import plugins.safety
    for state_dir, expected in ((tmp_path, rehearsal_fidelity_notes(tmp_path)), (None, [])):
        inv = SimpleNamespace(cluster=SimpleNamespace(rehearsal_state_dir=state_dir))
        monkeypatch.setattr(plugins.safety, "load_inventory", lambda config, inv=inv: inv)
        rep = MigrationReport("run1", "/inv.yaml", "ctx", False)
        report_plugin._fidelity_notes(object(), rep)
        assert rep.fidelity_notes == expected
    assert len(rehearsal_fidelity_notes(tmp_path)) == 3
