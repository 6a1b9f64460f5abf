"""The stand-in CRDs (apiextensions.k8s.io/v1), generated from handover.flux.schema.

GitRepository and HelmRepository (source.toolkit.fluxcd.io/v1), Kustomization
(kustomize.toolkit.fluxcd.io/v1), HelmRelease (helm.toolkit.fluxcd.io/v2): spec typed, status
subresource on, status free-form. Upstream: each controller's config/crd/bases/*.yaml.
"""

from __future__ import annotations

from typing import Any

from handover.flux import schema as flux_schema

KINDS = ("GitRepository", "HelmRepository", "Kustomization", "HelmRelease")


def all_crds() -> list[dict[str, Any]]:
    return [flux_schema.crd(k) for k in KINDS]


def crd_names() -> list[str]:
    return [c["metadata"]["name"] for c in all_crds()]
