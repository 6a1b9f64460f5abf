"""Hazard: the data behind a component's hostPath PVs is not where the PV says. Each PV's
directory must exist on its node, be a directory and hold data (node checks over
pytest-testinfra, nodes from the inventory's cluster.nodes). A node with no access configured
FAILS naming cluster.nodes and the opt-out ``node-data`` (plugins.gate); with the opt-out it is
reported as skipped by it: not checked is never reported as passed."""

import pytest

from fixtures.hazards import assert_no_hazards
from handover.gate.hazards import node_storage
from plugins.gate import not_checked


@pytest.mark.component_with("pvs")
def test_pv_host_paths(kube, inventory, component, pytestconfig):
    checks = node_storage.check_component(kube, inventory, component)
    for c in checks:
        print(f"{c.pv} on node {c.node}: {c.status} ({c.detail})")
    assert_no_hazards(node_storage.findings(checks))
    unchecked = [c for c in checks if c.status == "no-access"]
    if unchecked:
        not_checked(
            pytestconfig,
            "node-data",
            f"{component.name}: " + "; ".join(f"{c.pv} ({c.path}): {c.detail}" for c in unchecked),
        )
