"""Adopted by Flux: who owns a component after the handover.

- kustomize-controller labels every object it applies with ``kustomize.toolkit.fluxcd.io/name`` and
  ``/namespace`` (here the temporary Kustomization ``handover-<name>`` in the Flux namespace);
- helm-controller's post-renderer labels every rendered object of the release with
  ``helm.toolkit.fluxcd.io/name`` and ``/namespace`` (the HelmRelease);
- the adoption upgrade is made by helm-controller: the newest revision is the one the HelmRelease
  records first in ``status.history`` and its manifest carries the origin labels (only the
  controller's post-renderer puts them there).
Source: fluxcd/pkg ssa (owner labels), helm-controller internal/postrender/origin_labels.go,
api/v2 HelmReleaseStatus.History.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from handover.core.inventory import Component, Inventory
from handover.flux import rules as flux
from handover.sources import helm_storage

if TYPE_CHECKING:
    from handover.core.kube import Kube


def _labels(obj: dict[str, Any] | None) -> dict[str, str]:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def missing_kustomize_labels(
    kube: Kube, inventory: Inventory, component: Component, built: list[dict[str, Any]]
) -> list[str]:
    """Objects of the component path that are not labelled as applied by handover-<name>."""
    problems = []
    want = {
        flux.KUSTOMIZE_OWNER_NAME: component.kustomization_name,
        flux.KUSTOMIZE_OWNER_NAMESPACE: inventory.cluster.flux_namespace,
    }
    for o in built:
        m = o["metadata"]
        res = kube.resource(o["apiVersion"], o["kind"])
        ns = (m.get("namespace") or "default") if res.namespaced else None
        live = kube.get(o["apiVersion"], o["kind"], m["name"], ns)
        what = f"{o['kind']} {ns + '/' if ns else ''}{m['name']}"
        if live is None:
            problems.append(f"{what}: not in the cluster")
            continue
        labels = _labels(live)
        for k, v in want.items():
            if labels.get(k) != v:
                problems.append(f"{what}: label {k}={labels.get(k)!r}, expected {v!r}")
    return problems


def missing_helm_labels(kube: Kube, component: Component) -> list[str]:
    """Workloads of a Helm component without helm-controller's origin labels."""
    if component.helm_release is None:
        return []
    hr = component.helm_release
    problems = []
    for w in component.workloads:
        live = kube.get("apps/v1", w.kind, w.name, w.namespace)
        what = f"{w.kind} {w.namespace}/{w.name}"
        if live is None:
            problems.append(f"{what}: not in the cluster")
            continue
        labels = _labels(live)
        for k, v in ((flux.HELM_ORIGIN_NAME, hr.name), (flux.HELM_ORIGIN_NAMESPACE, hr.namespace)):
            if labels.get(k) != v:
                problems.append(f"{what}: label {k}={labels.get(k)!r}, expected {v!r}")
    return problems


def release_made_by_controller(kube: Kube, component: Component, before_revision: int) -> list[str]:
    """The newest revision is before+1, deployed, recorded by the HelmRelease as its own and
    rendered through the controller's post-renderer."""
    if component.release is None or component.helm_release is None:
        return []
    rel = helm_storage.latest(kube, component.release.name, component.release.namespace)
    what = f"Helm release {component.release.namespace}/{component.release.name}"
    if rel is None:
        return [f"{what}: gone from storage (uninstalled)"]
    problems = []
    if rel.revision != before_revision + 1:
        problems.append(
            f"{what}: revision {before_revision} -> {rel.revision}, expected exactly "
            f"{before_revision + 1} (one adoption upgrade)"
        )
    if rel.status != "deployed":
        problems.append(f"{what}: revision {rel.revision} status {rel.status!r}, expected deployed")
    hr = kube.get(
        flux.HELM_API, "HelmRelease", component.helm_release.name, component.helm_release.namespace
    )
    hist = ((hr or {}).get("status") or {}).get("history") or []
    if not hist:
        problems.append(
            f"HelmRelease {component.helm_release.namespace}/"
            f"{component.helm_release.name}: no status.history: the controller "
            "recorded no release of its own"
        )
    elif int(hist[0].get("version", -1)) != rel.revision or hist[0].get("name") != rel.name:
        problems.append(
            f"HelmRelease status.history[0] is {hist[0].get('name')} "
            f"v{hist[0].get('version')}, the newest stored revision is {rel.name} "
            f"v{rel.revision}: that revision was not made by the controller"
        )
    if not any(d and flux.HELM_ORIGIN_NAME in _labels(d) for d in yaml.safe_load_all(rel.manifest)):
        problems.append(
            f"{what} v{rel.revision}: manifest has no {flux.HELM_ORIGIN_NAME} "
            "labels: not rendered by helm-controller"
        )
    return problems
