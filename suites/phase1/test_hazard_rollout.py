"""Hazard: a surprise rollout at adoption. The chart is rendered with the real helm (the
HelmRelease's chart, version and values, from its HelmRepository) and each workload's pod template
is compared with the live one: "adopted in place", or "pods will be recreated" naming the fields."""
import pytest

from fixtures.hazards import assert_no_hazards, skip_unless_adopting
from handover import render


@pytest.mark.component_types("helm")
def test_adopted_in_place(kube, inventory, component, component_objects):
    skip_unless_adopting(component, component_objects)
    findings = render.check_rollout(kube, inventory, component, component_objects)
    if not any(f.severity == "error" for f in findings):
        for p in render.predictions(kube, inventory, component, component_objects):
            print(f"{p.subject}: {p.outcome}")
    assert_no_hazards(findings)
