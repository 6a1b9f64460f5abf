"""Hazard: data loss on a deleted PVC. Every PV bound to a component's PVCs, and every PV the
inventory names, must exist with reclaim policy Retain; StorageClasses with reclaimPolicy Delete
behind component PVCs are reported (warning)."""

from fixtures.hazards import assert_no_hazards
from handover.gate.hazards import data_safety


def test_volumes_retained(kube, component, component_objects):
    assert_no_hazards(data_safety.check_data_safety(kube, component, component_objects))
