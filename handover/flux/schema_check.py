"""Flux objects against their API schemas (handover.flux.schema).

An unknown or misspelt field (``spec.chart.spec.vesion``) passes kustomize and kubectl, and the
rehearsal API server (v1.20) prunes unknown fields of the CRDs without a word, so a server dry-run
cannot catch it; Flux would then reconcile with the field missing (here: the newest chart instead
of the pinned version). Every HelmRelease, Kustomization, HelmRepository and GitRepository in the
build is validated here, and each problem names its field path. Offline, read-only.
"""
from __future__ import annotations

from typing import Any

from handover.flux import rules as flux
from handover.flux import schema as flux_schema
from handover.sources import kustomize
from handover.core.findings import Finding

CHECK = "flux-schema"
FLUX_KINDS = {"HelmRelease": flux.HELM_GROUP, "Kustomization": flux.KUSTOMIZE_GROUP,
              "HelmRepository": flux.SOURCE_GROUP, "GitRepository": flux.SOURCE_GROUP,
              "OCIRepository": flux.SOURCE_GROUP, "HelmChart": flux.SOURCE_GROUP,
              "ExternalArtifact": flux.SOURCE_GROUP,
              "ArtifactGenerator": "source.extensions.fluxcd.io"}


def is_flux_object(obj: dict[str, Any]) -> bool:
    group = str(obj.get("apiVersion", "")).split("/")[0]
    return FLUX_KINDS.get(obj.get("kind", "")) == group


def flux_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if is_flux_object(o)]


def check_object(obj: dict[str, Any]) -> list[Finding]:
    subject = kustomize.object_id(obj)
    return [Finding(CHECK, subject, f"{p} (Flux {obj.get('kind')} schema "
                                    f"{obj.get('apiVersion')})",
                    "correct the field in Git: Flux ignores unknown fields, so the setting you "
                    "meant is not applied")
            for p in flux_schema.validate(obj)]


def check_objects(objects: list[dict[str, Any]]) -> list[Finding]:
    out: list[Finding] = []
    for o in flux_objects(objects):
        out.extend(check_object(o))
    return out
