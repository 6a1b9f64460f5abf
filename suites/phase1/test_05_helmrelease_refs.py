"""Check 5: each component's HelmRelease: present in Git, sourceRef to a HelmRepository defined
in the repo, namespaces consistent, and a chart version matching spec.chart.spec.version in that
repository's index."""

import pytest

from handover.core.findings import report
from handover.gate import helmrelease_refs


@pytest.mark.offline_capable
@pytest.mark.component_types("helm")
def test_helmrelease_refs(
    component, inventory, entry_builds, all_git_objects, live_namespaces, chart_indexes
):
    try:
        result = helmrelease_refs.check_helmrelease(
            component,
            entry_builds.objects(component.path),
            all_git_objects,
            live_namespaces,
            inventory.cluster.flux_namespace,
            chart_indexes,
            failed_builds=entry_builds.failed(),
        )
    except helmrelease_refs.Incomplete as e:
        pytest.skip(str(e))
    if live_namespaces is None:
        print("--offline: namespaces that only exist live are not known (not checked)")
    for n in result.notes:
        print(n)
    assert not result.findings, report(result.findings)
