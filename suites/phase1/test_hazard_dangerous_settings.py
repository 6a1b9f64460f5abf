"""Hazard: settings that turn a reconcile into a deletion: install.remediation.retries > 0 and
upgrade.preserveValues on an adopting HelmRelease; entry Kustomizations (and the Kustomizations
they apply) with prune: true owning CRDs or PVCs without kustomize.toolkit.fluxcd.io/prune:
disabled."""

import pytest

from fixtures.hazards import assert_no_hazards
from handover.gate.hazards import dangerous_settings
from plugins.safety import load_inventory


def pytest_generate_tests(metafunc):
    if "entry_point" in metafunc.fixturenames:
        entries = list(load_inventory(metafunc.config).gitops.entrypoints)
        metafunc.parametrize("entry_point", entries, ids=[e.name for e in entries])


@pytest.mark.component_types("helm")
def test_helmrelease_settings(component, component_objects):
    assert_no_hazards(dangerous_settings.check_helm_release_settings(component, component_objects))


def test_entry_prune_guards(inventory, entry_point):
    assert_no_hazards(dangerous_settings.check_entry_prune(inventory, entry_point))
