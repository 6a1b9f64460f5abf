"""Hazard: the first Flux apply of kubectl-applied workloads rolls pods: a
kubectl.kubernetes.io/restartedAt pod-template annotation live but not in Git (flux2#2526), or
spec.replicas omitted in Git beside an HPA (flux2#2514)."""

import pytest

from fixtures.hazards import assert_no_hazards
from handover.gate.hazards import kubectl_workloads


@pytest.mark.component_types("manifests")
def test_no_restarted_at_drift(kube, component, component_objects):
    assert_no_hazards(kubectl_workloads.check_restarted_at(kube, component, component_objects))


@pytest.mark.component_types("manifests")
def test_replicas_kept_beside_hpa(kube, component, component_objects):
    assert_no_hazards(
        kubectl_workloads.check_replicas_beside_hpa(kube, component, component_objects)
    )
