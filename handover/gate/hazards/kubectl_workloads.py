"""kubectl-applied workloads that the first Flux apply would roll.

kustomize-controller server-side applies with field manager ``kustomize-controller`` and takes over
the fields kubectl owned (client-side apply, ``kubectl rollout restart`` ...): fields Git does not
have are removed (fluxcd/pkg ssa, kustomize-controller PR #562). Two known rollout triggers:
- ``kubectl.kubernetes.io/restartedAt`` on the live pod template (left by
  ``kubectl rollout restart``) but not in Git: removing it changes the template -> new pods
  (fluxcd/flux2#2526);
- ``spec.replicas`` omitted in Git for a workload an HPA scales: the kubectl-owned replicas is
  removed, the workload falls back to 1 replica (fluxcd/flux2#2514).
Read-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handover.core.findings import Finding
from handover.core.inventory import Component

if TYPE_CHECKING:
    from handover.core.kube import Kube

RESTARTED_CHECK = "kubectl-restarted-at"
REPLICAS_CHECK = "kubectl-replicas-hpa"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def _template_annotations(obj: dict[str, Any]) -> dict[str, str]:
    return (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
        "annotations"
    ) or {}


def _workloads(component: Component, objects: list[dict[str, Any]]):
    default_ns = component.namespaces[0] if component.namespaces else "default"
    for o in objects:
        if o.get("kind") in WORKLOAD_KINDS:
            m = o.get("metadata") or {}
            yield o, m.get("namespace") or default_ns, m.get("name")


def check_restarted_at(
    kube: Kube, component: Component, objects: list[dict[str, Any]]
) -> list[Finding]:
    if component.type != "manifests":
        return []
    found: list[Finding] = []
    for obj, ns, name in _workloads(component, objects):
        live = kube.get("apps/v1", obj["kind"], name, ns)
        if live is None:
            continue
        live_v = _template_annotations(live).get(RESTARTED_AT)
        git_v = _template_annotations(obj).get(RESTARTED_AT)
        if live_v is not None and live_v != git_v:
            found.append(
                Finding(
                    RESTARTED_CHECK,
                    f"{obj['kind']} {ns}/{name}",
                    f'spec.template.metadata.annotations["{RESTARTED_AT}"]: live {live_v!r}, Git '
                    f"{'(absent)' if git_v is None else repr(git_v)} (left by kubectl rollout "
                    f"restart): the first Flux apply removes it and the pods are recreated "
                    f"(fluxcd/flux2#2526)",
                    f'add `{RESTARTED_AT}: "{live_v}"` to spec.template.metadata.annotations of '
                    f"{obj['kind']} {name} in {component.path}",
                )
            )
    return found


def _hpa_targets(kube: Kube, objects: list[dict[str, Any]], namespaces: set[str]) -> dict:
    """{(kind, namespace, name): 'HorizontalPodAutoscaler ns/name (live|Git)'}"""
    out = {}
    hpas = [
        (h, "live")
        for ns in sorted(namespaces)
        for h in kube.list("autoscaling/v1", "HorizontalPodAutoscaler", namespace=ns)
    ]
    hpas += [(o, "Git") for o in objects if o.get("kind") == "HorizontalPodAutoscaler"]
    for h, where in hpas:
        m = h.get("metadata") or {}
        ref = (h.get("spec") or {}).get("scaleTargetRef") or {}
        ns = m.get("namespace")
        out[(ref.get("kind"), ns, ref.get("name"))] = (
            f"HorizontalPodAutoscaler {ns}/{m.get('name')} ({where})"
        )
    return out


def check_replicas_beside_hpa(
    kube: Kube, component: Component, objects: list[dict[str, Any]]
) -> list[Finding]:
    if component.type != "manifests":
        return []
    work = [
        (o, ns, n)
        for o, ns, n in _workloads(component, objects)
        if o["kind"] in ("Deployment", "StatefulSet")
    ]
    if not work:
        return []
    targets = _hpa_targets(kube, objects, {ns for _, ns, _ in work})
    found: list[Finding] = []
    for obj, ns, name in work:
        hpa = targets.get((obj["kind"], ns, name))
        if hpa is None or "replicas" in (obj.get("spec") or {}):
            continue
        live = kube.get("apps/v1", obj["kind"], name, ns)
        live_r = ((live or {}).get("spec") or {}).get("replicas")
        found.append(
            Finding(
                REPLICAS_CHECK,
                f"{obj['kind']} {ns}/{name}",
                f"spec.replicas: Git (absent), live {live_r} scaled by {hpa}: the first Flux apply "
                f"drops the kubectl-owned replicas and the workload falls back to 1 replica, "
                f"terminating pods (fluxcd/flux2#2514)",
                f"set spec.replicas: {live_r if live_r is not None else '<current>'} in Git for the "
                f"handover, or annotate the {obj['kind']} with kustomize.toolkit.fluxcd.io/ssa: "
                f"Merge so fields kubectl set are kept",
            )
        )
    return found
