"""The hazard checks of one component, in one call: phase 1 gates on them for every component,
phase 3's precondition step re-runs them for the component about to be handed over.

``hazards_for_component(kube, inventory, component, built_objects)`` -> list[Finding], where
``built_objects`` is the kustomize build of ``component.path`` (what the temporary Kustomization
``handover-<name>`` applies). Read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from handover.core.findings import Finding
from handover.core.inventory import Component, Inventory
from handover.flux import current as flux_current
from handover.flux import render
from handover.flux import schema as flux_schema
from handover.gate.hazards import (
    adoption,
    dangerous_settings,
    data_safety,
    immutable,
    kubectl_workloads,
)
from handover.gate.hazards import hooks_crds as chart_hazards

if TYPE_CHECKING:
    from handover.core.kube import Kube

# name -> (component types it applies to, check(kube, inventory, component, objects))
Check = Callable[[Any, Inventory, Component, list[dict[str, Any]]], list[Finding]]
CHECKS: dict[str, tuple[tuple[str, ...], Check]] = {
    "flux-schema": (
        ("helm", "manifests", "storage"),
        lambda k, i, c, o: flux_schema.check_objects(o),
    ),
    adoption.TARGET: (("helm",), lambda k, i, c, o: adoption.check_target(k, c, o)),
    adoption.CHART: (("helm",), lambda k, i, c, o: adoption.check_chart_version(k, c, o)),
    adoption.VALUES: (("helm",), lambda k, i, c, o: adoption.check_values(k, c, o)),
    render.CHECK: (("helm",), render.check_rollout),
    chart_hazards.HOOKS: (("helm",), chart_hazards.check_hooks),
    chart_hazards.CRDS: (("helm",), chart_hazards.check_crds),
    flux_current.TAKE_OWNERSHIP: (
        ("helm",),
        lambda k, i, c, o: flux_current.check_helm_release_rules(i, c, o),
    ),
    flux_current.REMOVED_APIS: (("helm",), lambda k, i, c, o: flux_current.check_stored_apis(k, c)),
    flux_current.KUBECTL_MANAGERS: (
        ("manifests",),
        lambda k, i, c, o: flux_current.check_kubectl_managers(k, c, o),
    ),
    flux_current.SSA_IF_NOT_PRESENT: (
        ("helm", "manifests", "storage"),
        flux_current.check_ssa_if_not_present,
    ),
    immutable.CHECK: (("helm", "manifests"), immutable.check_immutable),
    immutable.COMMON_LABELS: (("manifests",), immutable.check_common_labels),
    data_safety.CHECK: (
        ("helm", "manifests", "storage"),
        lambda k, i, c, o: data_safety.check_data_safety(k, c, o),
    ),
    dangerous_settings.HELM_CHECK: (
        ("helm",),
        lambda k, i, c, o: dangerous_settings.check_helm_release_settings(c, o),
    ),
    dangerous_settings.PRUNE_CHECK: (
        ("helm", "manifests", "storage"),
        lambda k, i, c, o: dangerous_settings.check_component_prune(i, c, o),
    ),
    kubectl_workloads.RESTARTED_CHECK: (
        ("manifests",),
        lambda k, i, c, o: kubectl_workloads.check_restarted_at(k, c, o),
    ),
    kubectl_workloads.REPLICAS_CHECK: (
        ("manifests",),
        lambda k, i, c, o: kubectl_workloads.check_replicas_beside_hpa(k, c, o),
    ),
}


def checks_for(component: Component) -> list[str]:
    return [name for name, (types, _) in CHECKS.items() if component.type in types]


def hazards_for_component(
    kube: Kube, inventory: Inventory, component: Component, built_objects: list[dict[str, Any]]
) -> list[Finding]:
    """Every hazard check relevant to the component; a check that crashes is itself a finding
    (the gate never passes on an exception)."""
    found: list[Finding] = []
    for name in checks_for(component):
        try:
            found.extend(CHECKS[name][1](kube, inventory, component, built_objects))
        except Exception as e:  # noqa: BLE001 - reported, never swallowed
            found.append(
                Finding(
                    name,
                    f"component {component.name}",
                    f"the check could not run: {type(e).__name__}: {e}",
                    "fix the cause and re-run the gate",
                )
            )
    return found
