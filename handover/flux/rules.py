"""Flux domain rules the migration depends on (see docs/flux-and-helm-facts in shared docs).

Each rule names its upstream source.
"""

from __future__ import annotations

import hashlib
from typing import Any

SOURCE_GROUP = "source.toolkit.fluxcd.io"
SOURCE_API = f"{SOURCE_GROUP}/v1"
KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"
KUSTOMIZE_API = f"{KUSTOMIZE_GROUP}/v1"
HELM_GROUP = "helm.toolkit.fluxcd.io"
HELM_API = f"{HELM_GROUP}/v2"

FINALIZER = "finalizers.fluxcd.io"
RECONCILE_REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
HELM_ORIGIN_NAME = "helm.toolkit.fluxcd.io/name"
HELM_ORIGIN_NAMESPACE = "helm.toolkit.fluxcd.io/namespace"
KUSTOMIZE_OWNER_NAME = "kustomize.toolkit.fluxcd.io/name"
KUSTOMIZE_OWNER_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"
KUSTOMIZE_FIELD_MANAGER = "kustomize-controller"
HELM_FIELD_MANAGER = "helm-controller"
PRUNE_ANNOTATION = "kustomize.toolkit.fluxcd.io/prune"
SSA_ANNOTATION = "kustomize.toolkit.fluxcd.io/ssa"
RECONCILE_ANNOTATION = "kustomize.toolkit.fluxcd.io/reconcile"

# Minimum Kubernetes minor version (1.x) per Flux minor version (2.x).
# Source: flux2 cmd/flux/check.go (kubernetesConstraints), per release.
MIN_KUBERNETES = {0: 24, 1: 24, 2: 26, 3: 28, 4: 28, 5: 30, 6: 31, 7: 32, 8: 33, 9: 33}


def min_kubernetes(flux_version: str) -> tuple[int, int]:
    """(1, minor) minimum Kubernetes version for a Flux 2.x version string such as '2.4.0'."""
    parts = flux_version.lstrip("v").split(".")
    major, minor = int(parts[0]), int(parts[1])
    if major != 2:
        raise ValueError(f"Flux version {flux_version!r}: only Flux 2.x is supported")
    if minor not in MIN_KUBERNETES:
        minor_known = max(MIN_KUBERNETES)
        if minor > minor_known:
            return 1, MIN_KUBERNETES[minor_known]
        raise ValueError(f"unknown Flux version {flux_version!r}")
    return 1, MIN_KUBERNETES[minor]


def _spec(hr: dict[str, Any]) -> dict[str, Any]:
    return hr.get("spec") or {}


def _shorten(name: str) -> str:
    """Release names over 53 characters: first 40 + '-' + 12 hex of sha256.
    Source: helm-controller api/v2 helmrelease_types.go (GetReleaseName / shortenName)."""
    if len(name) <= 53:
        return name
    return f"{name[:40]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def helm_release_name(hr: dict[str, Any]) -> str:
    """spec.releaseName, else '<targetNamespace>-<name>' when targetNamespace is set, else the
    HelmRelease's name. Source: helm-controller api/v2 helmrelease_types.go GetReleaseName."""
    spec = _spec(hr)
    if spec.get("releaseName"):
        return _shorten(spec["releaseName"])
    name = hr["metadata"]["name"]
    if spec.get("targetNamespace"):
        return _shorten(f"{spec['targetNamespace']}-{name}")
    return _shorten(name)


def storage_namespace(hr: dict[str, Any]) -> str:
    """spec.storageNamespace, else the HelmRelease's namespace (GetStorageNamespace)."""
    return _spec(hr).get("storageNamespace") or hr["metadata"].get("namespace", "default")


def target_namespace(hr: dict[str, Any]) -> str:
    """spec.targetNamespace, else the HelmRelease's namespace (GetReleaseNamespace)."""
    return _spec(hr).get("targetNamespace") or hr["metadata"].get("namespace", "default")


def condition(obj: dict[str, Any], ctype: str = "Ready") -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def is_ready(obj: dict[str, Any]) -> bool:
    """Ready=True for the current generation (observedGeneration == metadata.generation)."""
    c = condition(obj, "Ready")
    if not c or c.get("status") != "True":
        return False
    gen = obj["metadata"].get("generation")
    observed = c.get("observedGeneration", (obj.get("status") or {}).get("observedGeneration"))
    return gen is None or observed == gen
