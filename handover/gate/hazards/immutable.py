"""Immutable workload fields: what Git (or the chart render) would change that the API server
refuses to change in place.

- StatefulSet: only replicas, template, updateStrategy, persistentVolumeClaimRetentionPolicy,
  minReadySeconds, ordinals may change; so selector, serviceName, volumeClaimTemplates and
  podManagementPolicy must stay (k8s pkg/apis/apps/validation ValidateStatefulSetUpdate).
- Deployment and DaemonSet: spec.selector is immutable in apps/v1.
- kustomize ``commonLabels`` (and ``labels`` with ``includeSelectors: true``) injects its labels
  into every selector and pod template it builds, so adding it in front of live workloads changes
  their selectors.

Desired objects: the kustomize build (kubectl-applied components) or the chart render (Helm
components, see handover.flux.render). Read-only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from handover.core.findings import Finding
from handover.core.inventory import Component, Inventory
from handover.flux import rules as flux
from handover.tree_diff import MISSING, Difference, against_live, describe_all

if TYPE_CHECKING:
    from handover.core.kube import Kube

CHECK = "immutable-fields"
COMMON_LABELS = "kustomize-common-labels"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def _selector(obj: dict[str, Any]) -> dict[str, Any]:
    sel = (obj.get("spec") or {}).get("selector") or {}
    out: dict[str, Any] = {}
    if sel.get("matchLabels"):
        out["matchLabels"] = dict(sel["matchLabels"])
    if sel.get("matchExpressions"):
        out["matchExpressions"] = [
            {
                "key": e.get("key"),
                "operator": e.get("operator"),
                "values": sorted(e.get("values") or []),
            }
            for e in sel["matchExpressions"]
        ]
    return out


def immutable_changes(desired: dict[str, Any], live: dict[str, Any]) -> list[Difference]:
    """Immutable fields of a StatefulSet / Deployment / DaemonSet that differ desired vs live."""
    kind = desired.get("kind")
    out: list[Difference] = []
    ds, ls = _selector(desired), _selector(live)
    if ds != ls:
        out.append(Difference("spec.selector", ls or MISSING, ds or MISSING))
    if kind != "StatefulSet":
        return out
    dspec, lspec = desired.get("spec") or {}, live.get("spec") or {}
    if (dspec.get("serviceName") or "") != (lspec.get("serviceName") or ""):
        out.append(
            Difference(
                "spec.serviceName",
                lspec.get("serviceName") or MISSING,
                dspec.get("serviceName") or MISSING,
            )
        )
    dp = dspec.get("podManagementPolicy") or "OrderedReady"
    lp = lspec.get("podManagementPolicy") or "OrderedReady"
    if dp != lp:
        out.append(Difference("spec.podManagementPolicy", lp, dp))
    dv = {
        ((v.get("metadata") or {}).get("name")): v for v in dspec.get("volumeClaimTemplates") or []
    }
    lv = {
        ((v.get("metadata") or {}).get("name")): v for v in lspec.get("volumeClaimTemplates") or []
    }
    for name in sorted(set(dv) | set(lv), key=str):
        p = f"spec.volumeClaimTemplates[name={name}]"
        if name not in lv:
            out.append(Difference(p, MISSING, dv[name]))
        elif name not in dv:
            out.append(Difference(p, lv[name], MISSING))
        else:
            want = {
                "metadata": {"labels": (dv[name].get("metadata") or {}).get("labels")},
                "spec": dv[name].get("spec"),
            }
            out.extend(against_live(want, lv[name], p))
    return out


def _kustomization_file(d: Path) -> Path | None:
    for n in KUSTOMIZATION_FILES:
        if (d / n).is_file():
            return d / n
    return None


def selector_labels_in(path: Path) -> dict[str, str]:
    """Labels a kustomization file injects into selectors: commonLabels, and labels entries with
    includeSelectors: true."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    out = dict(doc.get("commonLabels") or {})
    for entry in doc.get("labels") or []:
        if isinstance(entry, dict) and entry.get("includeSelectors"):
            out.update(entry.get("pairs") or {})
    return out


def common_label_sources(repo: Path, component_path: str) -> dict[str, dict[str, str]]:
    """Kustomization files, in the component's directory tree and its ancestors up to the repo
    root, that inject labels into selectors: {relative file: labels}."""
    out: dict[str, dict[str, str]] = {}
    base = repo / component_path
    dirs = [p for p in base.rglob("*") if p.is_dir()] + [base]
    cur = base
    while cur != repo and repo in cur.parents:
        cur = cur.parent
        dirs.append(cur)
    for d in dirs:
        f = _kustomization_file(d)
        if f:
            labels = selector_labels_in(f)
            if labels:
                out[str(f.relative_to(repo))] = labels
    return out


def desired_workloads(
    kube: Kube, inventory: Inventory, component: Component, objects: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], str, str]:
    """(workloads, default namespace, origin) for the component: the render for Helm components,
    the build for the others."""
    if component.type == "helm":
        from handover.flux import render
        from handover.gate.hazards.adoption import helm_release_of

        objs = render.rendered_objects(kube, inventory, component, objects)
        hr = helm_release_of(component, objects)
        assert hr is not None  # rendered_objects raises RenderError without the HelmRelease
        return (
            [o for o in objs if o.get("kind") in render.WORKLOAD_KINDS],
            flux.target_namespace(hr),
            "the chart render",
        )
    ns = component.namespaces[0] if component.namespaces else "default"
    return (
        [o for o in objects if o.get("kind") in ("Deployment", "StatefulSet", "DaemonSet")],
        ns,
        f"the build of {component.path}",
    )


def check_immutable(
    kube: Kube, inventory: Inventory, component: Component, objects: list[dict[str, Any]]
) -> list[Finding]:
    if component.type not in ("helm", "manifests"):
        return []
    try:
        desired, default_ns, origin = desired_workloads(kube, inventory, component, objects)
    except Exception as e:  # noqa: BLE001 - RenderError / KustomizeError, reported as a finding
        return [
            Finding(
                CHECK,
                f"component {component.name}",
                f"cannot build the desired workloads: {e}",
                "fix the chart source / kustomization first",
            )
        ]
    sources = (
        common_label_sources(inventory.gitops.path, component.path)
        if inventory.gitops.path.is_dir()
        else {}
    )
    found: list[Finding] = []
    for obj in desired:
        m = obj.get("metadata") or {}
        ns = m.get("namespace") or default_ns
        live = kube.get("apps/v1", obj["kind"], m["name"], ns)
        if live is None:
            continue
        changes = immutable_changes(obj, live)
        if not changes:
            continue
        why = ""
        if any(c.path == "spec.selector" for c in changes) and sources:
            why = (
                " (selector labels injected by "
                + ", ".join(f"commonLabels {labels} in {f}" for f, labels in sources.items())
                + ")"
            )
        found.append(
            Finding(
                CHECK,
                f"{obj['kind']} {ns}/{m.get('name')}",
                f"immutable field(s) differ between {origin} and live: {describe_all(changes)}"
                f"{why}. The apply would be rejected (field is immutable) and the handover halts",
                "keep these fields in Git exactly as live"
                + (
                    "; use `labels: [{pairs: ..., includeSelectors: false}]` instead of commonLabels"
                    if why
                    else ""
                )
                + "; changing them needs the workload deleted and recreated, "
                "which is a separate, planned step",
            )
        )
    return found


def check_common_labels(
    kube: Kube, inventory: Inventory, component: Component, objects: list[dict[str, Any]]
) -> list[Finding]:
    """Kustomization files (the component's own and those of ancestor directories, which apply
    when an entry Kustomization builds them) that inject labels into the selectors of this
    component's live workloads that the live selectors do not have."""
    if component.type != "manifests":
        return []
    sources = common_label_sources(inventory.gitops.path, component.path)
    if not sources:
        return []
    default_ns = component.namespaces[0] if component.namespaces else "default"
    found: list[Finding] = []
    for obj in objects:
        if obj.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        m = obj.get("metadata") or {}
        ns = m.get("namespace") or default_ns
        live = kube.get("apps/v1", obj["kind"], m["name"], ns)
        if live is None:
            continue
        live_labels = _selector(live).get("matchLabels") or {}
        for f, labels in sources.items():
            extra = {k: v for k, v in labels.items() if live_labels.get(k) != v}
            if extra:
                found.append(
                    Finding(
                        COMMON_LABELS,
                        f"{obj['kind']} {ns}/{m.get('name')}",
                        f"{f} injects commonLabels {extra} into spec.selector.matchLabels (live "
                        f"selector {live_labels}): the selector is immutable, the apply would be "
                        f"rejected",
                        f"remove them from commonLabels in {f}; use `labels: [{{pairs: ..., "
                        f"includeSelectors: false}}]` for labels on metadata only",
                    )
                )
    return found
