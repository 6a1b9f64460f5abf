"""Check 6: every HelmRepository in Git answers: its index.yaml over HTTP (no helm CLI), or for
OCI the registry's tag list, and lists the charts the HelmReleases use; chart versions deployed
today that are no longer published are warnings. A chart the registry does not have (HTTP 404) is
an error; a registry that does not answer FAILS naming the opt-out ``chart-registry``
(plugins.gate); with it, the check is reported as skipped by it."""

import pytest

from handover.core import findings as findings_mod
from handover.gate import helmrelease_refs
from handover.sources import helm_storage
from plugins.gate import not_checked

REPO_USES_KEY = pytest.StashKey[list]()


def _repo_uses(config):
    from fixtures.gitops import builds_for

    if REPO_USES_KEY not in config.stash:
        config.stash[REPO_USES_KEY] = helmrelease_refs.repository_uses(
            builds_for(config).unique_objects()
        )
    return config.stash[REPO_USES_KEY]


def pytest_generate_tests(metafunc):
    if "repo_use" in metafunc.fixturenames:
        uses = _repo_uses(metafunc.config)
        metafunc.parametrize("repo_use", uses, ids=[u.id for u in uses])


@pytest.fixture(scope="module")
def deployed(inventory, request, offline):
    """HelmRelease 'ns/name' -> chart and version deployed today by the release it adopts
    (none under --offline: deployed versions are not checked)."""
    out: dict = {}
    if offline:
        return out
    kube = request.getfixturevalue("kube")
    for c in inventory.components:
        if c.release and c.helm_release:
            rec = helm_storage.latest(kube, c.release.name, c.release.namespace)
            if rec:
                out[f"{c.helm_release.namespace}/{c.helm_release.name}"] = {
                    "chart": rec.chart_name,
                    "version": rec.chart_version,
                }
    return out


@pytest.mark.offline_capable
def test_chart_versions_available(repo_use, deployed, chart_indexes, offline, pytestconfig):
    use = helmrelease_refs.RepoUse(repo_use.repo, dict(repo_use.charts))
    for hr, d in deployed.items():
        for chart, users in use.charts.items():
            if hr in users and d["chart"] == chart:
                use.deployed.setdefault(chart, set()).add(d["version"])
    try:
        result = helmrelease_refs.check_repository(use, chart_indexes)
    except helmrelease_refs.Unreachable as e:
        if offline:  # the offline gate checks availability where the repository answers
            pytest.skip(f"--offline: not checked, repository unreachable from here: {e}")
        not_checked(pytestconfig, "chart-registry", str(e))
    for n in result.notes:
        print(n)
    failure = findings_mod.gate(result.findings)  # warnings shown here, never failing
    errs = findings_mod.errors(result.findings)
    if offline and errs and all("cannot read the repository index" in f.problem for f in errs):
        pytest.skip(f"--offline: not checked, repository unreachable from here: {errs[0].problem}")
    if failure:
        pytest.fail(failure, pytrace=False)
