"""Phase 3, step 1: is this component ready to be handed over? (read-only)

- Flux is there: the flux-system GitRepository exists and is Ready (phase 2 bootstrapped it);
- helm: the CLI release exists in storage and its newest revision is ``deployed``;
- every workload exists and has its desired number of pods Running and Ready;
- the hazard checks of phase 1 pass for this component (handover.gate.hazards.registry, the same functions, on
  the kustomize build of the component path); the data-safety check among them proves every PV
  behind the component is Retain.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

from handover.core.findings import Finding
from handover.core.inventory import Component, Inventory
from handover.flux import rules as flux
from handover.gate.hazards import registry as hazards
from handover.sources import helm_storage

if TYPE_CHECKING:
    from handover.core.kube import Kube


def flux_problems(kube: Kube, inventory: Inventory) -> list[str]:
    ns = inventory.cluster.flux_namespace
    if not kube.has_resource(flux.SOURCE_API, "GitRepository") or not kube.has_resource(
        flux.KUSTOMIZE_API, "Kustomization"
    ):
        return ["Flux is not installed (no GitRepository / Kustomization API): run phase 2 first"]
    repo = kube.get(flux.SOURCE_API, "GitRepository", "flux-system", ns)
    if repo is None:
        return [f"GitRepository {ns}/flux-system missing: run phase 2 (bootstrap) first"]
    if not flux.is_ready(repo):
        c = flux.condition(repo) or {}
        return [f"GitRepository {ns}/flux-system not Ready: {c.get('message', 'no condition')}"]
    return []


def release_problems(kube: Kube, component: Component) -> list[str]:
    if component.release is None:
        return []
    r = component.release
    rec = helm_storage.latest(kube, r.name, r.namespace)
    if rec is None:
        return [
            f"Helm release {r.namespace}/{r.name}: not in storage (no "
            f"sh.helm.release.v1.{r.name}.v* Secret in {r.namespace})"
        ]
    if rec.status != "deployed":
        return [
            f"Helm release {r.namespace}/{r.name} revision {rec.revision} is {rec.status!r}, "
            "expected deployed: fix the release before handing it over"
        ]
    return []


def workload_problems(kube: Kube, component: Component) -> list[str]:
    """Workloads missing or with fewer Running+Ready pods than desired."""
    out = []
    for w in component.workloads:
        live = kube.get("apps/v1", w.kind, w.name, w.namespace)
        if live is None:
            out.append(f"{w.kind} {w.namespace}/{w.name}: missing")
            continue
        if w.kind == "DaemonSet":
            want = (live.get("status") or {}).get("desiredNumberScheduled", 1)
        else:
            want = (live.get("spec") or {}).get("replicas", 1)
        # client models type every field Optional; a served Pod has metadata and status
        listed: list[Any] = kube.core.list_namespaced_pod(
            w.namespace, label_selector=w.selector
        ).items
        pods = [p for p in listed if not p.metadata.deletion_timestamp]
        ready = [
            p.metadata.name
            for p in pods
            if p.status.phase == "Running"
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]
        if len(ready) < (want or 0) or not pods:
            out.append(
                f"{w.kind} {w.namespace}/{w.name}: {len(ready)}/{want} pods Running and "
                f"Ready (selector {w.selector})"
            )
    return out


def pv_problems(kube: Kube, component: Component) -> list[str]:
    out = []
    for name in component.pvs:
        pv = kube.get("v1", "PersistentVolume", name)
        if pv is None:
            out.append(f"PersistentVolume {name}: missing")
        elif (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") != "Retain":
            out.append(
                f"PersistentVolume {name}: reclaim policy "
                f"{pv['spec'].get('persistentVolumeReclaimPolicy')!r}, must be Retain "
                f"(kubectl patch pv {name} -p "
                '\'{"spec":{"persistentVolumeReclaimPolicy":"Retain"}}\')'
            )
    return out


def hazard_findings(
    kube: Kube,
    inventory: Inventory,
    component: Component,
    built: list[dict[str, Any]],
    accepted: AbstractSet[str] = frozenset(),
) -> tuple[list[Finding], list[Finding]]:
    """(blocking errors, accepted errors) of phase 1's hazard checks for this component."""
    found = [
        f
        for f in hazards.hazards_for_component(kube, inventory, component, built)
        if f.severity == "error"
    ]
    return (
        [f for f in found if f.check not in accepted],
        [f for f in found if f.check in accepted],
    )
