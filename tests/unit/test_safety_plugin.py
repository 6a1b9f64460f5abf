"""The safety interlocks (plugins/safety.py), exercised in a child pytest (pytester):
an invalid inventory stops the session before any test, the context guard fails every test that
touches the cluster naming both contexts, mutating steps skip without --perform saying what they
would do, and `component` tests carry the component name as id."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def suite(pytester: pytest.Pytester):
    shutil.copy(ROOT / "examples" / "homelab" / "migration.yaml",
                pytester.path / "migration.yaml")
    pytester.makeconftest('pytest_plugins = ["plugins.safety"]')
    kubeconfig = pytester.path / "kubeconfig"
    kubeconfig.write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Config
        clusters:
        - name: c
          cluster: {server: "https://127.0.0.1:1"}
        users:
        - name: u
          user: {token: "not-a-real-token"}
        contexts:
        - name: homelab
          context: {cluster: c, user: u}
        - name: production
          context: {cluster: c, user: u}
        current-context: production
        """))
    return pytester


def test_invalid_inventory_stops_the_session_with_every_problem(suite):
    (suite.path / "migration.yaml").write_text("apiVersion: flux-handover/v1\nkind: Migration\n")
    suite.makepyfile(test_x="def test_a(component):\n    pass\n")
    res = suite.runpytest("-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    err = res.stdout.str() + res.stderr.str()
    for line in ("cluster: required", "gitops: required", "backups: required",
                 "components: required"):
        assert line in err


def test_context_mismatch_fails_every_cluster_test_naming_both(suite):
    suite.makepyfile(test_x="""
        def test_one(kube):
            pass
        def test_two(kube):
            pass
        def test_offline(inventory):
            assert inventory.cluster.context == "homelab"
    """)
    res = suite.runpytest("-p", "no:cacheprovider", "--kube-context", "production",
                          "--kubeconfig", str(suite.path / "kubeconfig"))
    res.assert_outcomes(passed=1, errors=2)
    out = res.stdout.str()
    assert out.count("kube context in use is 'production' but the inventory's "
                     "cluster.context is 'homelab'") >= 2


def test_default_context_is_the_inventorys_not_the_kubeconfigs_current(suite):
    suite.makepyfile(test_x="""
        def test_ctx(kube):
            assert kube.context == "homelab"
    """)
    res = suite.runpytest("-p", "no:cacheprovider", "--kubeconfig",
                          str(suite.path / "kubeconfig"))
    res.assert_outcomes(passed=1)


def test_mutating_steps_skip_without_perform_naming_the_action(suite):
    suite.makepyfile(test_x="""
        from plugins.safety import skip_unless_perform
        def test_step(pytestconfig):
            skip_unless_perform(pytestconfig, "suspend HelmRelease logging/loki")
            assert False, "must not run without --perform"
    """)
    res = suite.runpytest("-p", "no:cacheprovider", "-rs")
    res.assert_outcomes(skipped=1)
    res.stdout.fnmatch_lines(["*dry run (no --perform): would suspend HelmRelease logging/loki*"])
    res = suite.runpytest("-p", "no:cacheprovider", "--perform")
    res.assert_outcomes(failed=1)


def test_component_ids_select_one_component(suite):
    suite.makepyfile(test_x="""
        import pytest
        def test_step(component):
            pass
        @pytest.mark.component_types("helm")
        def test_helm_only(component):
            assert component.type == "helm"
        @pytest.mark.component_with("pvs")
        def test_with_pvs(component):
            assert component.pvs
    """)
    res = suite.runpytest("-p", "no:cacheprovider", "-k", "envoy", "-v")
    res.assert_outcomes(passed=2)
    res.stdout.fnmatch_lines(["*test_step?envoy-gateway? PASSED*",
                              "*test_helm_only?envoy-gateway? PASSED*"])
    res = suite.runpytest("-p", "no:cacheprovider", "--collect-only", "-q")
    res.stdout.fnmatch_lines(["*test_helm_only?loki?*"])
    assert "test_helm_only[storage]" not in res.stdout.str()
    with_pvs = [line for line in res.stdout.lines if "test_with_pvs[" in line]
    assert [line.split("[")[1].rstrip("]") for line in with_pvs] == [
        "storage", "tempo", "llama-cpp", "loki"]
