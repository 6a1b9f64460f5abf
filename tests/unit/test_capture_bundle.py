"""The capture bundle on its own (no cluster): modes 0700/0600, the warning first line, and a
truncated or hand-edited bundle refused naming the file; a static template renders its text."""
from __future__ import annotations

import json
import stat

import pytest
import yaml

from handover.sources import helm_storage
from handover.core import tools
from handover.capture import bundle, replay


def _release(name: str, rev: int, status: str = "deployed", chart: bool = True) -> dict:
    rec = {"name": name, "namespace": "apps", "version": rev, "info": {"status": status},
           "config": {"a": 1}, "manifest": "---\n# Source: c/templates/x.yaml\nkind: ConfigMap\n"}
    if chart:
        rec["chart"] = {"metadata": {"name": "c", "version": "1.0.0", "apiVersion": "v2"},
                        "templates": [], "values": {}}
    return {"name": f"sh.helm.release.v1.{name}.v{rev}", "namespace": "apps",
            "type": helm_storage.SECRET_TYPE, "labels": {"owner": "helm", "name": name},
            "data": {"release": helm_storage.encode_release(rec)}}


def make(tmp_path, revisions=((1, "superseded"), (2, "deployed")), chart=True):
    out = tmp_path / "bundle"
    w = bundle.Writer(out)
    for rev, status in revisions:
        w.write(f"releases/apps/sh.helm.release.v1.web.v{rev}.json",
                _release("web", rev, status, chart))
    w.write("applied/apps/.ConfigMap.x.json", {"id": "ConfigMap apps/x",
                                               "lastApplied": {"kind": "ConfigMap"}})
    w.finish(bundle.first_line("prod", "v1.29.1", "2026-01-01T00:00:00Z"), {
        "source": {"context": "prod"}, "scope": {"namespaces": ["apps"]},
        "releases": [{"name": "web", "storageNamespace": "apps",
                      "revisions": [r for r, _ in revisions]}], "complete": True})
    return out


def test_modes_and_first_line(tmp_path):
    out = make(tmp_path)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for p in out.rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p
    first = (out / bundle.INDEX).read_text().splitlines()[0]
    assert "values, which can include secrets" in first
    assert "'prod'" in first and "v1.29.1" in first and "2026-01-01T00:00:00Z" in first
    b = bundle.read(out)
    assert [(r.key, [v.revision for v in r.revisions]) for r in b.releases] == [("apps/web", [1, 2])]


def test_hand_edited_file_refused(tmp_path):
    out = make(tmp_path)
    f = out / "applied/apps/.ConfigMap.x.json"
    f.write_text(f.read_text().replace("ConfigMap", "Secret"))
    with pytest.raises(bundle.BundleError, match=r"applied/apps/.ConfigMap.x.json: its sha256"):
        bundle.read(out)


def test_truncated_bundle_refused(tmp_path):
    out = make(tmp_path)
    (out / "releases/apps/sh.helm.release.v1.web.v1.json").unlink()
    with pytest.raises(bundle.BundleError, match=r"sh.helm.release.v1.web.v1.json: listed in the "
                       r"index but missing"):
        bundle.read(out)


def test_truncated_index_refused(tmp_path):
    out = make(tmp_path)
    idx = out / bundle.INDEX
    idx.write_text(idx.read_text().split("files:")[0])
    with pytest.raises(bundle.BundleError, match="truncated or hand-edited"):
        bundle.read(out)


def test_added_file_refused(tmp_path):
    out = make(tmp_path)
    (out / "applied/apps/extra.json").write_text("{}")
    with pytest.raises(bundle.BundleError, match="extra.json: not listed in the index"):
        bundle.read(out)


def test_pending_upgrade_refused(tmp_path):
    out = make(tmp_path, revisions=((1, "deployed"), (2, "pending-upgrade")))
    with pytest.raises(replay.ReplayError, match=r"release apps/web: its newest revision 2 is "
                       r"'pending-upgrade'"):
        replay.validate(out)


def test_chart_missing_from_release_refused(tmp_path):
    out = make(tmp_path, chart=False)
    with pytest.raises(replay.ReplayError, match="the chart is missing from the release"):
        replay.validate(out)


def test_other_context_refused(tmp_path):
    out = make(tmp_path)
    inv = tmp_path / "migration.yaml"
    from tests.rehearsal_support import EXAMPLE_INVENTORY
    data = yaml.safe_load(EXAMPLE_INVENTORY.read_text())
    data["gitops"]["path"] = str(EXAMPLE_INVENTORY.parent / "gitops")
    inv.write_text(yaml.safe_dump(data))
    with pytest.raises(replay.ReplayError, match=r"captured from kube context 'prod' but the "
                       r"inventory .* is for context 'homelab'"):
        replay.validate(out, inv)


def test_static_template_renders_its_text_verbatim(tmp_path):
    text = 'a: "`x` {{ .Values.no }} ``"\nb: |\n  {{- end }} `'
    chart = tmp_path / "c"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (chart / "templates" / "x.yaml").write_text(replay._static_template(text))
    out = tools.run([str(tools.helm()), "template", "r", str(chart)], check=True).stdout
    assert out.split("# Source: c/templates/x.yaml\n", 1)[1].rstrip("\n") == text


def test_split_sources():
    m = "---\n# Source: p/templates/a.yaml\nkind: A\n---\n# Source: p/charts/s/templates/b.yaml\nkind: B\n"
    assert replay._split_sources(m) == [("p/templates/a.yaml", "kind: A"),
                                        ("p/charts/s/templates/b.yaml", "kind: B")]
    assert json.dumps(replay._split_sources(""))== "[]"


def test_a_chart_that_cannot_be_rebuilt_is_reported_by_release(tmp_path):
    """A template whose name escapes the chart directory: the release is named with the reason,
    the other release's chart is still rebuilt (nothing dropped silently)."""
    import base64
    out = tmp_path / "bundle"
    w = bundle.Writer(out)
    for name, tname in (("good", "templates/cm.yaml"), ("bad", "../../etc/evil.yaml")):
        rec = {"name": name, "namespace": "apps", "version": 1, "info": {"status": "deployed"},
               "config": {}, "manifest": "",
               "chart": {"metadata": {"name": f"c{name}", "version": "1.0.0", "apiVersion": "v2"},
                         "values": {}, "templates": [
                             {"name": tname, "data": base64.b64encode(
                                 b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
                             ).decode()}]}}
        w.write(f"releases/apps/sh.helm.release.v1.{name}.v1.json",
                {"name": f"sh.helm.release.v1.{name}.v1", "namespace": "apps",
                 "type": helm_storage.SECRET_TYPE, "labels": {"owner": "helm"},
                 "data": {"release": helm_storage.encode_release(rec)}})
    w.finish(bundle.first_line("prod", "v1", "t"), {"source": {"context": "prod"},
                                                    "scope": {}, "complete": True})
    b = replay.validate(out)
    report = replay.ReplayReport(bundle=str(out), context="prod")
    charts = replay.rebuild_all(b, tmp_path / "charts", report)
    assert charts == {"apps/good": "cgood-1.0.0"}
    assert report.charts == ["cgood-1.0.0"]
    assert len(report.problems) == 1
    assert report.problems[0].startswith("release apps/bad: its chart cbad-1.0.0 cannot be rebuilt")
    assert "escapes the chart directory" in report.problems[0]
    assert not (tmp_path / "etc").exists()


def test_capture_cli_refuses_to_guess_the_cluster(tmp_path, capsys):
    from handover import cli
    assert cli.main(["capture", "--out", str(tmp_path / "b")]) == 1
    assert "needs --inventory PATH or --kube-context C" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_capture_refuses_a_context_other_than_the_inventorys(tmp_path, capsys):
    from handover import cli
    from tests.rehearsal_support import EXAMPLE_INVENTORY
    rc = cli.main(["capture", "--out", str(tmp_path / "b"), "--inventory", str(EXAMPLE_INVENTORY),
                   "--kube-context", "someone-elses"])
    assert rc == 1
    assert "inventory's cluster.context is 'homelab'" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
