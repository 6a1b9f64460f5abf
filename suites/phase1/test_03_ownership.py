"""Check 3: who owns every object live today (a Helm release, kubectl client-side apply, other
field managers, or nobody), conflicts with the handover, and objects in the handed-over
namespaces that belong to nothing in the inventory (reported as warnings)."""

import pytest

from fixtures.hazards import assert_no_hazards
from handover.gate import ownership


@pytest.fixture(scope="module")
def claimed(inventory, kube, entry_builds):
    return ownership.claimed_keys(inventory, kube, entry_builds.all_objects().values())


def test_ownership(component, inventory, kube, entry_builds):
    objects = entry_builds.objects(component.path)
    claimed_releases = {
        f"{c.release.namespace}/{c.release.name}" for c in inventory.components if c.release
    }
    result = ownership.check_component(kube, component, objects, claimed_releases)
    print(result.table())
    assert_no_hazards(result.findings, result.table())


def _namespaces(inventory):
    return sorted({ns for c in inventory.components for ns in c.namespaces})


def pytest_generate_tests(metafunc):
    if "handed_namespace" in metafunc.fixturenames:
        from plugins.safety import load_inventory

        nss = _namespaces(load_inventory(metafunc.config))
        metafunc.parametrize("handed_namespace", nss, ids=nss)


def test_objects_outside_inventory(handed_namespace, kube, claimed):
    """Workloads, Services, claims... that nothing in the inventory describes fail (after the
    handover nobody would manage them); ConfigMaps, Secrets and RBAC are warnings (often made by
    hand on purpose, e.g. an admin password Secret kept out of Git)."""
    items = ownership.unclaimed(kube, [handed_namespace], claimed)
    print(f"namespace {handed_namespace}: {len(items)} object(s) outside the inventory")
    for o in items:
        print(f"  {o}")
    assert_no_hazards(ownership.unclaimed_findings(items))
