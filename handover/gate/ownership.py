"""Check 3: who owns each object live today, and conflicts with what the migration will do.

Owners, in the order they are recognised on a live object:
- a Helm release: label ``app.kubernetes.io/managed-by: Helm`` with annotations
  ``meta.helm.sh/release-name`` / ``meta.helm.sh/release-namespace`` (helm pkg/action/validate.go);
- kubectl client-side apply: annotation ``kubectl.kubernetes.io/last-applied-configuration``;
- other field managers (``metadata.managedFields[].manager``);
- nobody (absent: Flux will create it).

Errors (the gate fails):
- an object that Git applies through a Kustomization (kustomize-controller) is owned live by a
  Helm release: two owners, and a later ``helm uninstall`` or HelmRelease deletion deletes it;
- an object of a component's Helm release whose ownership annotations name another release than
  the one the component's HelmRelease will adopt (helm-controller naming rules, handover.flux.rules):
  Flux would manage a different release over the same objects.
Warnings: objects in the inventory's namespaces that belong to nothing in the inventory (neither
built from Git nor part of a component's Helm release); they are left unmanaged after the handover.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from handover.core import objects as object_ids
from handover.core.findings import Finding
from handover.core.inventory import Component, Inventory
from handover.core.kube import Kube
from handover.core.objects import group_of
from handover.flux import rules as flux
from handover.sources import helm_storage
from handover.sources.kustomize import object_id

CHECK = "ownership"
MANAGED_BY = "app.kubernetes.io/managed-by"
RELEASE_NAME = "meta.helm.sh/release-name"
RELEASE_NAMESPACE = "meta.helm.sh/release-namespace"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
KUBECTL_MANAGERS = (
    "kubectl",
    "kubectl-client-side-apply",
    "kubectl-create",
    "kubectl-edit",
    "kubectl-patch",
    "kubectl-label",
    "kubectl-annotate",
    "before-first-apply",
    flux.KUSTOMIZE_FIELD_MANAGER,
)
SYSTEM_MANAGERS = (
    "kube-controller-manager",
    "kube-apiserver",
    "kube-scheduler",
    "k3s",
    "node-agent",
)
# Namespaced kinds listed when looking for objects that belong to nothing in the inventory.
LISTED_KINDS = (
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("batch/v1beta1", "CronJob"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("autoscaling/v1", "HorizontalPodAutoscaler"),
)


@dataclass
class Ownership:
    object: str
    owner: str  # helm | kubectl-apply | field-managers | nobody | not-served
    release: str | None = None  # "namespace/name" of the owning Helm release
    managers: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        s = f"{self.owner:<14} {self.object}"
        if self.release:
            s += f" (Helm release {self.release})"
        if self.managers:
            s += f" managers: {', '.join(self.managers)}"
        return s

    def to_dict(self) -> dict:
        return asdict(self)


def helm_owner(live: dict[str, Any]) -> str | None:
    """'namespace/name' of the Helm release that owns a live object, or None."""
    meta = live.get("metadata") or {}
    labels = meta.get("labels") or {}
    ann = meta.get("annotations") or {}
    if labels.get(MANAGED_BY) == "Helm" and ann.get(RELEASE_NAME):
        return f"{ann.get(RELEASE_NAMESPACE, '')}/{ann[RELEASE_NAME]}"
    return None


def managers(live: dict[str, Any]) -> list[str]:
    mf = (live.get("metadata") or {}).get("managedFields") or []
    return sorted({m.get("manager", "?") for m in mf})


def classify(oid: str, live: dict[str, Any] | None) -> Ownership:
    if live is None:
        return Ownership(oid, "nobody")
    mgrs = managers(live)
    rel = helm_owner(live)
    if rel:
        return Ownership(oid, "helm", rel, mgrs)
    if LAST_APPLIED in ((live.get("metadata") or {}).get("annotations") or {}):
        return Ownership(oid, "kubectl-apply", None, mgrs)
    if mgrs:
        return Ownership(oid, "field-managers", None, mgrs)
    return Ownership(oid, "nobody")


def key(obj: dict[str, Any], default_namespace: str | None = None) -> tuple[str, str, str, str]:
    """(group, kind, namespace, name) of an object (handover.core.objects.object_id)."""
    return object_ids.object_id(obj, default_namespace or "")


def _get_live(kube: Kube, obj: dict[str, Any], default_ns: str | None) -> tuple[bool, dict | None]:
    """(served, live object or None)."""
    av, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    if not kube.has_resource(av, kind):
        return False, None
    res = kube.resource(av, kind)
    meta = obj.get("metadata") or {}
    ns = (meta.get("namespace") or default_ns or "default") if res.namespaced else None
    return True, kube.get(av, kind, meta["name"], ns)


def manifest_objects(record: helm_storage.HelmReleaseRecord) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(record.manifest or "") if isinstance(d, dict)]


def hook_objects(record: helm_storage.HelmReleaseRecord) -> list[dict[str, Any]]:
    """The objects of the release's hooks (a hook Job or its ServiceAccount that outlives the
    hook is the release's, not an unmanaged leftover)."""
    return [d for m in record.hook_manifests for d in yaml.safe_load_all(m) if isinstance(d, dict)]


def find_helm_release(objects: Iterable[dict[str, Any]], component: Component) -> dict | None:
    if not component.helm_release:
        return None
    for o in objects:
        m = o.get("metadata") or {}
        if (
            o.get("kind") == "HelmRelease"
            and m.get("name") == component.helm_release.name
            and m.get("namespace", "default") == component.helm_release.namespace
        ):
            return o
    return None


@dataclass
class ComponentOwnership:
    component: str
    git: list[Ownership] = field(default_factory=list)  # objects built from the component path
    release: list[Ownership] = field(default_factory=list)  # objects of its Helm release
    findings: list[Finding] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"component {self.component}: objects from Git"]
        lines += [f"  {o}" for o in self.git] or ["  (none)"]
        if self.release:
            lines.append("objects of its Helm release")
            lines += [f"  {o}" for o in self.release]
        return "\n".join(lines)


def check_component(
    kube: Kube, component: Component, git_objects: list[dict[str, Any]], claimed_releases: set[str]
) -> ComponentOwnership:
    """Ownership of a component's Git objects and (type helm) of its release's objects.

    claimed_releases: 'namespace/name' of every Helm release the inventory hands over."""
    out = ComponentOwnership(component.name)
    hr = find_helm_release(git_objects, component)
    for obj in git_objects:
        oid = object_id(obj)
        served, live = _get_live(kube, obj, None)
        if not served:
            out.git.append(Ownership(oid, "not-served"))
            continue
        own = classify(oid, live)
        out.git.append(own)
        if own.owner == "helm":
            out.findings.append(
                Finding(
                    CHECK,
                    oid,
                    f"Git applies this object through Kustomization {component.kustomization_name} "
                    f"(kustomize-controller) but it is owned live by Helm release {own.release} "
                    f"(label {MANAGED_BY}=Helm, annotation {RELEASE_NAME}): two owners; a later helm "
                    "uninstall or HelmRelease deletion would delete it",
                    f"remove it from Git under {component.path} (let the chart own it), or remove it "
                    f"from the chart/release and strip the Helm labels and annotations live",
                )
            )
        else:
            others = [
                m
                for m in own.managers
                if m not in KUBECTL_MANAGERS and m not in SYSTEM_MANAGERS and m != "helm"
            ]
            if others:
                out.findings.append(
                    Finding(
                        CHECK,
                        oid,
                        f"fields are managed by {', '.join(others)} besides kubectl: "
                        "kustomize-controller applies with force and takes their fields",
                        "make sure that manager will not fight Flux (stop it, or let Flux not "
                        "manage those fields)",
                        severity="warning",
                    )
                )
    if component.type != "helm" or not component.release:
        return out
    rel = component.release
    record = helm_storage.latest(kube, rel.name, rel.namespace)
    if record is None:
        return out  # a missing release is the adoption-target hazard's finding
    adopt = None
    if hr is not None:
        adopt = f"{flux.target_namespace(hr)}/{flux.helm_release_name(hr)}"
    for obj in manifest_objects(record):
        oid = (
            object_id(obj)
            if (obj.get("metadata") or {}).get("namespace")
            else object_id(
                {**obj, "metadata": {**obj.get("metadata", {}), "namespace": record.namespace}}
            )
        )
        served, live = _get_live(kube, obj, record.namespace)
        if not served:
            continue
        own = classify(oid, live)
        out.release.append(own)
        if live is None:
            out.findings.append(
                Finding(
                    CHECK,
                    oid,
                    f"in the manifest of Helm release {rel.namespace}/{rel.name} "
                    f"(revision {record.revision}) but missing live",
                    "the adoption upgrade will re-create it; check why it was deleted",
                    severity="warning",
                )
            )
            continue
        if own.owner != "helm":
            out.findings.append(
                Finding(
                    CHECK,
                    oid,
                    f"in the manifest of Helm release {rel.namespace}/{rel.name} but "
                    f"carries no Helm ownership metadata live (owner: {own.owner})",
                    f"label it {MANAGED_BY}=Helm and annotate {RELEASE_NAME}={rel.name}, "
                    f"{RELEASE_NAMESPACE}={rel.namespace}, or the upgrade fails with 'invalid "
                    "ownership metadata'",
                    severity="warning",
                )
            )
            continue
        if own.release != f"{rel.namespace}/{rel.name}":
            what = (
                "another component's"
                if own.release in claimed_releases
                else "a release outside the inventory:"
            )
            out.findings.append(
                Finding(
                    CHECK,
                    oid,
                    f"in the manifest of Helm release {rel.namespace}/{rel.name} but "
                    f"owned live by {what} Helm release {own.release}",
                    "find out which release should own it; fix the ownership annotations or the "
                    "charts before the handover",
                )
            )
        elif adopt is not None and adopt != own.release:
            assert component.helm_release is not None  # adopt comes from its HelmRelease
            out.findings.append(
                Finding(
                    CHECK,
                    oid,
                    f"owned by Helm release {own.release}, but HelmRelease "
                    f"{component.helm_release.namespace}/{component.helm_release.name} will manage "
                    f"release {adopt}: that is not the release that owns it, so Flux would install "
                    "a second release over it",
                    "set spec.releaseName (and spec.storageNamespace/targetNamespace) so the "
                    f"HelmRelease resolves to {own.release}",
                )
            )
    return out


def unclaimed(
    kube: Kube, namespaces: Iterable[str], claimed: set[tuple[str, str, str, str]]
) -> list[Ownership]:
    """Objects in these namespaces that belong to nothing in the inventory."""
    out = []
    vct_claims = _statefulset_claims(kube, namespaces)
    claimed_sts = {(c[2], c[3]) for c in claimed if c[1] == "StatefulSet"}
    for av, kind in LISTED_KINDS:
        if not kube.has_resource(av, kind):
            continue
        for ns in sorted(set(namespaces)):
            for live in kube.list(av, kind, namespace=ns):
                meta = live.get("metadata") or {}
                if meta.get("ownerReferences"):
                    continue  # a child (Pod, ReplicaSet, token...) of something else
                if (meta.get("labels") or {}).get("owner") == "helm":
                    continue  # Helm's release storage
                if kind == "Secret" and live.get("type") in (
                    helm_storage.SECRET_TYPE,
                    "kubernetes.io/service-account-token",
                ):
                    continue
                if (kind, meta.get("name")) in (
                    ("ConfigMap", "kube-root-ca.crt"),
                    ("ServiceAccount", "default"),
                ):
                    continue
                k = (group_of(av), kind, ns, meta.get("name"))
                if k in claimed:
                    continue
                if kind == "PersistentVolumeClaim" and any(
                    sts_ns == ns and (sts_ns, sts) in claimed_sts and rx.match(meta["name"])
                    for (sts_ns, sts), rx in vct_claims.items()
                ):
                    continue  # made by a claimed StatefulSet from its volumeClaimTemplates
                oid = f"{kind} {ns}/{meta.get('name')}"
                out.append(classify(oid, live))
    return out


def _statefulset_claims(kube: Kube, namespaces: Iterable[str]) -> dict[tuple[str, str], Any]:
    """(namespace, StatefulSet) -> regex of the PVC names its volumeClaimTemplates make
    (`<template>-<statefulset>-<ordinal>`; such claims carry no ownerReference)."""
    import re

    out = {}
    for ns in sorted(set(namespaces)):
        for sts in kube.list("apps/v1", "StatefulSet", namespace=ns):
            name = sts["metadata"]["name"]
            tpls = [
                n
                for t in (sts.get("spec") or {}).get("volumeClaimTemplates") or []
                if (n := (t.get("metadata") or {}).get("name"))
            ]
            if tpls:
                out[(ns, name)] = re.compile(
                    rf"^(?:{'|'.join(re.escape(t) for t in tpls)})-{re.escape(name)}-\d+$"
                )
    return out


def claimed_keys(
    inv: Inventory, kube: Kube, builds: Iterable[list[dict[str, Any]]]
) -> set[tuple[str, str, str, str]]:
    """Keys of every object built from Git, and of every object of the components' releases."""
    keys: set[tuple[str, str, str, str]] = set()
    for objs in builds:
        keys.update(key(o) for o in objs)
    for c in inv.components:
        if c.release:
            rec = helm_storage.latest(kube, c.release.name, c.release.namespace)
            if rec:
                keys.update(key(o, rec.namespace) for o in manifest_objects(rec))
                keys.update(key(o, rec.namespace) for o in hook_objects(rec))
    return keys


UNCLAIMED_IS_ERROR = (
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "CronJob",
    "Job",
    "Service",
    "PersistentVolumeClaim",
    "Ingress",
)


def unclaimed_findings(items: Iterable[Ownership]) -> list[Finding]:
    """Unmanaged workloads, Services, claims and Ingresses are errors; the rest warnings."""
    return [
        Finding(
            CHECK,
            o.object,
            f"exists in a namespace the inventory hands over but belongs to nothing in "
            f"the inventory (owner: {o.owner}"
            + (f", managers {', '.join(o.managers)}" if o.managers else "")
            + "): "
            "after the handover nobody manages it",
            "add it to Git, or to a component's chart, or delete it if it is a leftover",
            severity="error" if o.object.split(" ")[0] in UNCLAIMED_IS_ERROR else "warning",
        )
        for o in items
    ]


def dumps(items: Iterable[Ownership]) -> str:
    return json.dumps([o.to_dict() for o in items], indent=2)
