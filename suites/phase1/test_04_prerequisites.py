"""Check 4: prerequisites as `flux check --pre` does them (no flux CLI): the server's Kubernetes
version against the minimum of the inventory's target Flux version, and kubectl present and new
enough.

On the rehearsal cluster (inventory cluster.rehearsalStateDir set) the API server is v1.20.2, the
newest that runs on the build machine, below every current Flux's minimum: the server-version
test is then an expected failure (xfail) that says so, never a lowered bar. Anywhere else an old
server fails the gate.
"""

import pytest

from handover.core.findings import report
from handover.gate import prerequisites


def test_kubernetes_version(inventory, kube, target):
    major, minor, git_version = kube.server_version()
    version = prerequisites.ServerVersion(major, minor, git_version)
    found = target.server_version_findings(version, inventory)
    expected_failure = target.version_bar_xfail(found, version, inventory)
    if expected_failure:
        pytest.xfail(expected_failure)
    assert not found, report(found)
    print(f"server {git_version} >= minimum for Flux {inventory.cluster.flux_version}")


def test_kubectl():
    found = prerequisites.check_kubectl()
    assert not found, report(found)
