"""Hazard: the HelmRelease must adopt the existing CLI release. Its effective release name,
storage namespace and target namespace (spec.releaseName / storageNamespace / targetNamespace
rules of helm-controller) must resolve to that release, which must be deployed; otherwise Flux
installs a second release over the same objects."""

import pytest

from fixtures.hazards import assert_no_hazards
from handover.gate.hazards import adoption


@pytest.mark.component_types("helm")
def test_adoption_target(kube, component, component_objects):
    assert_no_hazards(adoption.check_target(kube, component, component_objects))
