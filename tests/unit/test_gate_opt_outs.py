"""The gate's named opt-outs (handover.gate.optouts, plugins.gate): a check that cannot run fails naming
what to configure and the opt-out; with the opt-out (--skip-check NAME or the inventory's
gate.skipChecks) it is reported as skipped by it, in the terminal verdict; an unknown name is a
usage error. And the OCI answers behind check 5 and 6: a 404 is a missing chart (an error), not
an unreachable registry."""
from __future__ import annotations

import io
import shutil
import textwrap
import urllib.error
from pathlib import Path

import pytest
import yaml

from handover.sources import chart_index
from handover.gate import optouts as gate
from handover.gate import helmrelease_refs
from handover.core import inventory
from handover.sources.chart_index import IndexCache

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "homelab" / "migration.yaml"


def test_inventory_gate_skip_checks(tmp_path):
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["gate"] = {"skipChecks": ["node-data", "server-dry-run"]}
    inv = inventory.parse(doc, tmp_path / "migration.yaml")
    assert inv.gate_skip_checks == ("node-data", "server-dry-run")
    doc["gate"] = {"skipChecks": ["node-dta"], "other": 1}
    with pytest.raises(inventory.InventoryError) as exc:
        inventory.parse(doc, tmp_path / "migration.yaml")
    assert any(p.startswith("gate.skipChecks[0]: unknown check 'node-dta'") and "node-data" in p
               for p in exc.value.problems), exc.value.problems
    assert any(p.startswith("gate.other: unknown key") for p in exc.value.problems)
    assert inventory.parse(yaml.safe_load(EXAMPLE.read_text()),
                           tmp_path / "m.yaml").gate_skip_checks == ()


def test_opt_outs_merge_cli_first_and_refuse_unknown_names():
    outs = gate.opt_outs(["node-data"], ["node-data", "chart-registry"])
    assert [(o.name, o.source) for o in outs] == [
        ("node-data", "--skip-check"), ("chart-registry", "inventory gate.skipChecks")]
    with pytest.raises(gate.UnknownCheck, match="unknown check.*'nodes'.*node-data"):
        gate.opt_outs(["nodes"], [])


CHECK = '''
import pytest
from plugins.gate import not_checked

def test_nodes(pytestconfig):
    not_checked(pytestconfig, "node-data", "loki-pv (/mnt/loki): no access to node '*'")

def test_fine():
    pass
'''


@pytest.fixture()
def suite(pytester: pytest.Pytester):
    shutil.copy(EXAMPLE, pytester.path / "migration.yaml")
    pytester.makeconftest('pytest_plugins = ["plugins.safety", "plugins.gate"]\n')
    pytester.makepyfile(test_check=CHECK)
    return pytester


def test_not_opted_out_fails_naming_what_to_configure_and_the_opt_out(suite):
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    res.assert_outcomes(passed=1, failed=1)
    out = res.stdout.str()
    assert "NOT CHECKED: loki-pv (/mnt/loki): no access to node '*'" in out
    assert "cluster.nodes" in out and "--skip-check node-data" in out
    assert "skipChecks: [node-data]" in out
    assert "gate opt-outs" not in out
    assert res.ret == 1


def test_cli_opt_out_is_a_named_skip_in_the_verdict(suite):
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "-rA", "--skip-check",
                                     "node-data")
    res.assert_outcomes(passed=1, skipped=1)
    out = res.stdout.str()
    assert "skipped by opt-out node-data (--skip-check): loki-pv" in out
    verdict = out[out.index("gate opt-outs (NOT checked)"):]
    assert "node-data (--skip-check): not checked: the data behind hostPath" in verdict
    assert "1 test(s) skipped by it" in verdict


def test_inventory_opt_out_is_a_named_skip(suite):
    doc = yaml.safe_load((suite.path / "migration.yaml").read_text())
    doc["gate"] = {"skipChecks": ["node-data"]}
    (suite.path / "migration.yaml").write_text(yaml.safe_dump(doc))
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    res.assert_outcomes(passed=1, skipped=1)
    assert "skipped by opt-out node-data (inventory gate.skipChecks)" in res.stdout.str()


def test_unknown_opt_out_is_a_usage_error(suite):
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "--skip-check", "node")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown check(s) ['node']" in res.stderr.str()


def _registry(monkeypatch, code: int) -> None:
    def get(url, timeout, headers=None):
        raise urllib.error.HTTPError(url, code, "Not Found" if code == 404 else "Bad Gateway",
                                     {}, io.BytesIO(b""))
    monkeypatch.setattr(chart_index, "_get", get)


OCI_REPO = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": {"name": "envoyproxy", "namespace": "flux-system"},
            "spec": {"type": "oci", "url": "oci://registry.example/envoyproxy"}}


def test_oci_404_is_a_missing_chart_not_an_unreachable_registry(monkeypatch):
    """Before: every OCI error skipped check 6 and was a note in check 5 (both passed)."""
    _registry(monkeypatch, 404)
    with pytest.raises(chart_index.ChartNotFound, match="no chart 'gatewy-helm'"):
        chart_index.oci_tags("oci://registry.example/envoyproxy", "gatewy-helm")
    use = helmrelease_refs.RepoUse(OCI_REPO, {"gatewy-helm": ["envoy-gateway-system/eg"]})
    res = helmrelease_refs.check_repository(use, IndexCache())
    assert [f.problem for f in res.findings] == [
        "chart 'gatewy-helm' (used by envoy-gateway-system/eg) is not in the repository at "
        "oci://registry.example/envoyproxy"]
    _registry(monkeypatch, 502)
    with pytest.raises(helmrelease_refs.Unreachable, match="did not answer"):
        helmrelease_refs.check_repository(use, IndexCache())


def test_check5_oci_404_is_a_finding(monkeypatch):
    _registry(monkeypatch, 404)
    doc = yaml.safe_load(EXAMPLE.read_text())
    inv = inventory.parse(doc, EXAMPLE)
    comp = inv.component("envoy-gateway")
    hr = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
          "metadata": {"name": "envoy-gateway", "namespace": "envoy-gateway-system"},
          "spec": {"chart": {"spec": {"chart": "gatewy-helm", "version": "1.2.3", "sourceRef": {
              "kind": "HelmRepository", "name": "envoyproxy", "namespace": "flux-system"}}}}}
    res = helmrelease_refs.check_helmrelease(comp, [hr], [hr, OCI_REPO],
                                             {"envoy-gateway-system", "flux-system"},
                                             "flux-system", IndexCache())
    assert len(res.findings) == 1 and "chart 'gatewy-helm' does not exist" in \
        res.findings[0].problem, res
