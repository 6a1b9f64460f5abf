"""Hazard: fields the API server refuses to change in place (StatefulSet selector, serviceName,
volumeClaimTemplates, podManagementPolicy; Deployment/DaemonSet selector) differ between Git (or
the chart render) and live; kustomize commonLabels injected into selectors."""

import pytest

from fixtures.hazards import assert_no_hazards, skip_unless_adopting
from handover.gate.hazards import immutable


@pytest.mark.component_types("helm", "manifests")
def test_immutable_fields_unchanged(kube, inventory, component, component_objects):
    skip_unless_adopting(component, component_objects)
    assert_no_hazards(immutable.check_immutable(kube, inventory, component, component_objects))


@pytest.mark.component_types("manifests")
def test_common_labels_keep_selectors(kube, inventory, component, component_objects):
    assert_no_hazards(immutable.check_common_labels(kube, inventory, component, component_objects))
