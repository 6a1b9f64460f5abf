"""Hazard: the data behind a component's hostPath PVs is not where the PV says. Each PV's
directory must exist on its node, be a directory and hold data (node checks over
pytest-testinfra, nodes from the inventory's cluster.nodes). A node with no access configured
is a skip naming it: not checked is never reported as passed."""
import pytest

from fixtures.hazards import assert_no_hazards
from handover import node_storage


@pytest.mark.component_with("pvs")
def test_pv_host_paths(kube, inventory, component):
    checks = node_storage.check_component(kube, inventory, component)
    for c in checks:
        print(f"{c.pv} on node {c.node}: {c.status} ({c.detail})")
    assert_no_hazards(node_storage.findings(checks))
    unchecked = [c for c in checks if c.status == "no-access"]
    if unchecked:
        pytest.skip("not checked: " + "; ".join(f"{c.pv}: {c.detail}" for c in unchecked))
