"""Hazard: a surprise rollout at adoption. The chart is rendered as the adoption upgrade will
render it (real helm, `helm upgrade --dry-run=server` of the CLI release with the HelmRelease's
chart, version and values: lookup, capabilities and version from the cluster; read-only), twice,
and each workload's pod template is compared with the live one: "adopted in place", or "pods will
be recreated" naming each field and its cause (non-deterministic, a chart-computed checksum, the
values), with the postRenderers patch offered when only computed annotations differ."""

import pytest

from fixtures.hazards import assert_no_hazards, skip_unless_adopting
from handover.flux import render


@pytest.mark.component_types("helm")
def test_adopted_in_place(kube, inventory, component, component_objects):
    skip_unless_adopting(component, component_objects)
    findings = render.check_rollout(kube, inventory, component, component_objects)
    if not any(f.severity == "error" for f in findings):
        for p in render.predictions(kube, inventory, component, component_objects):
            print(f"{p.subject}: {p.outcome}")
    assert_no_hazards(findings)
