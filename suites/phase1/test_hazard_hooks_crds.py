"""Hazard: what the adoption upgrade does besides patching objects. It RUNS the chart's
pre-upgrade / post-upgrade hooks (listed with kinds, weights and delete policies; fix:
spec.upgrade.disableHooks for the handover), and it never upgrades the chart's CRDs: a CRD under
crds/ (subcharts included) that differs from the live one, or is missing, is reported."""

import pytest

from fixtures.hazards import assert_no_hazards, skip_unless_adopting
from handover.gate.hazards import hooks_crds as chart_hazards


@pytest.mark.component_types("helm")
def test_upgrade_hooks(kube, inventory, component, component_objects):
    skip_unless_adopting(component, component_objects)
    assert_no_hazards(chart_hazards.check_hooks(kube, inventory, component, component_objects))


@pytest.mark.component_types("helm")
def test_chart_crds_match_live(kube, inventory, component, component_objects):
    assert_no_hazards(chart_hazards.check_crds(kube, inventory, component, component_objects))
