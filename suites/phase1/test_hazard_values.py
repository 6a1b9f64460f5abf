"""Hazard: the HelmRelease values (spec.values + valuesFrom) must equal the release's user values
(`helm get values`): the adoption upgrade resets the release to them. Differences are listed by
value path."""

import pytest

from fixtures.hazards import assert_no_hazards
from handover.gate.hazards import adoption


@pytest.mark.component_types("helm")
def test_values_match_release(kube, component, component_objects):
    assert_no_hazards(adoption.check_values(kube, component, component_objects))
