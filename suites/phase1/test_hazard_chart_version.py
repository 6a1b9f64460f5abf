"""Hazard: spec.chart.spec.version (and chart name) must equal the deployed chart's
chart.metadata.version: the adoption upgrade otherwise changes the chart."""

import pytest

from fixtures.hazards import assert_no_hazards
from handover.gate.hazards import adoption


@pytest.mark.component_types("helm")
def test_chart_version_matches_release(kube, component, component_objects):
    assert_no_hazards(adoption.check_chart_version(kube, component, component_objects))
