"""Hazard: rules of current Flux (2.5 .. 2.9, Helm 4 from 2.8) for the inventory's
cluster.fluxVersion: take ownership (disableTakeOwnership recommended for the handover),
upgrade remediation / strategy (uninstall on failure, no rollback), the apply method of a Helm 3
CLI release adopted by Helm 4, apiVersions of the stored release the cluster no longer serves
(helm-mapkubeapis), fields kubectl managers own that Git lacks (deleted at the first reconcile),
and kustomize.toolkit.fluxcd.io/ssa: IfNotPresent on adopted objects."""

import pytest

from fixtures.hazards import assert_no_hazards
from handover.flux import current as flux_current


@pytest.mark.component_types("helm")
def test_helmrelease_flux_rules(inventory, component, component_objects):
    assert_no_hazards(
        flux_current.check_helm_release_rules(inventory, component, component_objects)
    )


@pytest.mark.component_types("helm")
def test_stored_apis_served(kube, component):
    assert_no_hazards(flux_current.check_stored_apis(kube, component))


@pytest.mark.component_types("manifests")
def test_kubectl_fields_in_git(kube, component, component_objects):
    assert_no_hazards(flux_current.check_kubectl_managers(kube, component, component_objects))


def test_ssa_if_not_present(kube, inventory, component, component_objects):
    assert_no_hazards(
        flux_current.check_ssa_if_not_present(kube, inventory, component, component_objects)
    )
