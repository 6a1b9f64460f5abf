"""Data safety: the volumes behind a component survive a deleted PVC.

K3S's ``local-path`` StorageClass has reclaimPolicy Delete: when a PVC bound to such a PV is
deleted (a pruned Kustomization, an uninstalled release, a recreated StatefulSet), the PV and its
data go with it. Before any step that can delete a PVC, every PV behind a migrated component must
be Retain. Reported here:
- error: a PV bound to one of the component's PVCs with reclaim policy other than Retain;
- error: a PV named in the inventory (``pvs``) that does not exist or is not Retain;
- error: a PV in Git whose persistentVolumeReclaimPolicy is not Retain (the apply would set it);
- warning: a StorageClass with reclaimPolicy Delete behind a component PVC (new volumes from it
  will not be Retain).
Read-only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from handover.core.findings import Finding
from handover.core.inventory import Component

if TYPE_CHECKING:
    from handover.core.kube import Kube

CHECK = "data-safety"


def _pod_claims(obj: dict[str, Any]) -> list[str]:
    vols = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []
    return [
        v["persistentVolumeClaim"]["claimName"]
        for v in vols
        if (v.get("persistentVolumeClaim") or {}).get("claimName")
    ]


def component_pvcs(
    kube: Kube, component: Component, objects: list[dict[str, Any]]
) -> dict[tuple[str, str], str]:
    """{(namespace, pvc name): why it belongs to the component} for the live PVCs of the
    component's workloads (pod volumes, StatefulSet claim templates) and its built PVCs."""
    out: dict[tuple[str, str], str] = {}
    for w in component.workloads:
        live = kube.get("apps/v1", w.kind, w.name, w.namespace)
        if live is None:
            continue
        for claim in _pod_claims(live):
            out[(w.namespace, claim)] = f"volume of {w.kind} {w.namespace}/{w.name}"
        if w.kind == "StatefulSet":
            vcts = [
                n
                for v in (live.get("spec") or {}).get("volumeClaimTemplates") or []
                if (n := (v.get("metadata") or {}).get("name"))
            ]
            if vcts:
                for pvc in kube.list("v1", "PersistentVolumeClaim", namespace=w.namespace):
                    name = pvc["metadata"]["name"]
                    for v in vcts:
                        if re.fullmatch(rf"{re.escape(v)}-{re.escape(w.name)}-\d+", name):
                            out[(w.namespace, name)] = (
                                f"claim template {v} of StatefulSet {w.namespace}/{w.name}"
                            )
    default_ns = component.namespaces[0] if component.namespaces else "default"
    for o in objects:
        if o.get("kind") == "PersistentVolumeClaim":
            m = o.get("metadata") or {}
            out[(m.get("namespace") or default_ns, m["name"])] = "in Git"
    return out


def _retain_fix(pv: str) -> str:
    return (
        f'kubectl patch pv {pv} -p \'{{"spec":{{"persistentVolumeReclaimPolicy":'
        f'"Retain"}}}}\' (and set persistentVolumeReclaimPolicy: Retain where the PV is '
        f"defined in Git)"
    )


def check_data_safety(
    kube: Kube, component: Component, objects: list[dict[str, Any]]
) -> list[Finding]:
    found: list[Finding] = []
    seen_pvs: set[str] = set()
    seen_sc: set[str] = set()
    for (ns, name), why in sorted(component_pvcs(kube, component, objects).items()):
        pvc = kube.get("v1", "PersistentVolumeClaim", name, ns)
        if pvc is None:
            continue
        spec = pvc.get("spec") or {}
        pv_name = spec.get("volumeName")
        if pv_name and pv_name not in seen_pvs:
            seen_pvs.add(pv_name)
            pv = kube.get("v1", "PersistentVolume", pv_name)
            policy = ((pv or {}).get("spec") or {}).get("persistentVolumeReclaimPolicy")
            if pv is not None and policy != "Retain":
                found.append(
                    Finding(
                        CHECK,
                        f"PersistentVolume {pv_name}",
                        f"spec.persistentVolumeReclaimPolicy is {policy!r} (live), bound to PVC "
                        f"{ns}/{name} ({why}, component {component.name}): deleting that PVC "
                        f"destroys the data",
                        _retain_fix(pv_name),
                    )
                )
        sc_name = spec.get("storageClassName")
        if sc_name and sc_name not in seen_sc:
            seen_sc.add(sc_name)
            sc = kube.get("storage.k8s.io/v1", "StorageClass", sc_name)
            if sc is not None and (sc.get("reclaimPolicy") or "Delete") == "Delete":
                found.append(
                    Finding(
                        CHECK,
                        f"StorageClass {sc_name}",
                        f"reclaimPolicy Delete behind PVC {ns}/{name} (component {component.name}):"
                        f" volumes it provisions are deleted with their PVC",
                        f"keep the PVs of component {component.name} on Retain (checked above); "
                        f"for new volumes use a StorageClass with reclaimPolicy: Retain",
                        severity="warning",
                    )
                )
    for pv_name in component.pvs:
        pv = kube.get("v1", "PersistentVolume", pv_name)
        if pv is None:
            found.append(
                Finding(
                    CHECK,
                    f"PersistentVolume {pv_name}",
                    f"named in the inventory (component {component.name}, pvs) but "
                    f"does not exist live",
                    "correct pvs in the inventory",
                )
            )
            continue
        policy = (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy")
        if policy != "Retain" and pv_name not in seen_pvs:
            claim = (pv.get("spec") or {}).get("claimRef") or {}
            bound = f", bound to PVC {claim.get('namespace')}/{claim.get('name')}" if claim else ""
            found.append(
                Finding(
                    CHECK,
                    f"PersistentVolume {pv_name}",
                    f"spec.persistentVolumeReclaimPolicy is {policy!r} (live){bound}, named in the "
                    f"inventory for component {component.name}: a deleted PVC destroys the data",
                    _retain_fix(pv_name),
                )
            )
    for o in objects:
        if o.get("kind") == "PersistentVolume":
            policy = (o.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Retain"
            if policy != "Retain":
                name = o["metadata"]["name"]
                found.append(
                    Finding(
                        CHECK,
                        f"PersistentVolume {name}",
                        f"spec.persistentVolumeReclaimPolicy: Git {policy!r} (in {component.path}): "
                        f"the apply would set it",
                        "set persistentVolumeReclaimPolicy: Retain in Git",
                    )
                )
    return found
