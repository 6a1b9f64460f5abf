"""Settings in Git that turn a routine reconcile into a deletion.

- HelmRelease ``spec.install.remediation.retries`` > 0: remediation of a failed install is an
  UNINSTALL (helm-controller internal/reconcile), and an adoption that misses its release is an
  install.
- HelmRelease ``spec.upgrade.preserveValues``: the adoption upgrade then merges the CLI values
  instead of making the release follow Git, and it triggers an upgrade on every reconcile
  (fluxcd/helm-controller#1371).
- Kustomization ``prune: true`` (an entry point, or a Kustomization it applies) whose build holds
  CustomResourceDefinitions or PersistentVolumeClaims without the annotation
  ``kustomize.toolkit.fluxcd.io/prune: disabled``: a path moved or removed in Git, or the
  Kustomization deleted, garbage-collects them: every custom resource of a CRD, the data of a PVC.
Read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from handover.core.findings import Finding
from handover.core.inventory import Component, EntryPoint, Inventory
from handover.flux import rules as flux
from handover.gate.hazards.adoption import helm_release_of, hr_id, missing_hr_finding
from handover.sources import kustomize

HELM_CHECK = "dangerous-helmrelease-settings"
PRUNE_CHECK = "dangerous-prune"
PRUNE_GUARDED_KINDS = ("CustomResourceDefinition", "PersistentVolumeClaim")


def check_helm_release_settings(
    component: Component, objects: list[dict[str, Any]]
) -> list[Finding]:
    if component.type != "helm" or component.helm_release is None:
        return []
    hr = helm_release_of(component, objects)
    if hr is None:
        return [missing_hr_finding(HELM_CHECK, component)]
    spec = hr.get("spec") or {}
    found: list[Finding] = []
    retries = ((spec.get("install") or {}).get("remediation") or {}).get("retries") or 0
    if isinstance(retries, int) and retries != 0:
        found.append(
            Finding(
                HELM_CHECK,
                hr_id(hr),
                f"spec.install.remediation.retries: Git {retries} (default 0): remediation of a "
                f"failed install UNINSTALLS the release, deleting the objects this HelmRelease is "
                f"meant to adopt",
                "remove spec.install.remediation.retries (or set 0) for the handover; add it back "
                "after the release is adopted",
            )
        )
    if (spec.get("upgrade") or {}).get("preserveValues"):
        found.append(
            Finding(
                HELM_CHECK,
                hr_id(hr),
                "spec.upgrade.preserveValues: Git true: the adoption upgrade keeps the CLI values "
                "instead of Git's, so Git does not describe the release, and it upgrades on every "
                "reconcile (fluxcd/helm-controller#1371)",
                "remove spec.upgrade.preserveValues and put the release's values "
                f"(helm get values {component.release.name if component.release else ''}) into "
                "spec.values",
            )
        )
    return found


@dataclass(frozen=True)
class PruneExposure:
    kustomization: str  # "Kustomization flux-system/infrastructure"
    defined_in: str  # repo-relative file (entry) or "build of <path>"
    path: str  # spec.path
    object_id: str  # "PersistentVolumeClaim llm/llama-models"
    kind: str


def _is_kustomization(o: dict[str, Any]) -> bool:
    return o.get("kind") == "Kustomization" and str(o.get("apiVersion", "")).startswith(
        flux.KUSTOMIZE_GROUP
    )


def entry_kustomization(repo: Path, entry: EntryPoint) -> dict[str, Any] | None:
    f = repo / entry.file
    if not f.is_file():
        return None
    for d in yaml.safe_load_all(f.read_text()):
        if (
            isinstance(d, dict)
            and _is_kustomization(d)
            and (d.get("metadata") or {}).get("name") == entry.name
        ):
            return d
    return None


def _guarded(o: dict[str, Any]) -> bool:
    ann = (o.get("metadata") or {}).get("annotations") or {}
    return ann.get(flux.PRUNE_ANNOTATION) == "disabled"


def prune_exposures(
    repo: Path, ks: dict[str, Any], defined_in: str, _seen: set | None = None
) -> list[PruneExposure]:
    """CRDs/PVCs without prune: disabled that a prune: true Kustomization (or a Kustomization it
    applies, recursively) owns."""
    seen = _seen if _seen is not None else set()
    m = ks.get("metadata") or {}
    kid = f"Kustomization {m.get('namespace', 'default')}/{m.get('name')}"
    spec = ks.get("spec") or {}
    from handover.sources import entry_paths

    path = entry_paths._ks_path(ks) or "."  # @artifact/path for an ExternalArtifact source
    if (kid, path) in seen:
        return []
    seen.add((kid, path))
    objs = entry_paths.build(repo, path)
    out: list[PruneExposure] = []
    if spec.get("prune"):
        for o in objs:
            if o.get("kind") in PRUNE_GUARDED_KINDS and not _guarded(o):
                out.append(PruneExposure(kid, defined_in, path, kustomize.object_id(o), o["kind"]))
    for o in objs:
        if _is_kustomization(o) and not (o.get("spec") or {}).get("suspend"):
            out.extend(prune_exposures(repo, o, f"build of {path or './'}", seen))
    return out


def _prune_message(ex: list[PruneExposure]) -> str:
    k = ex[0]
    what = ", ".join(e.object_id for e in ex)
    return (
        f"{k.kustomization} (in {k.defined_in}) has spec.prune: true and its build of "
        f"{k.path or './'} holds {what} without annotation {flux.PRUNE_ANNOTATION}: disabled:"
        f" removing them from that path or deleting the Kustomization garbage-collects them"
        f" (a CRD takes every custom resource of it along, a PVC its data)"
    )


PRUNE_FIX = (
    f"annotate each of them in Git with {flux.PRUNE_ANNOTATION}: disabled (or set "
    f"prune: false on that Kustomization)"
)


def check_entry_prune(inventory: Inventory, entry: EntryPoint) -> list[Finding]:
    repo = inventory.gitops.path
    ks = entry_kustomization(repo, entry)
    if ks is None:
        return [
            Finding(
                PRUNE_CHECK,
                f"entry point {entry.name}",
                f"no Kustomization named {entry.name!r} in {entry.file}",
                "correct gitops.entrypoints",
            )
        ]
    try:
        exposures = prune_exposures(repo, ks, entry.file)
    except kustomize.KustomizeError as e:
        return [
            Finding(
                PRUNE_CHECK,
                f"Kustomization {entry.name}",
                f"cannot build: {e}",
                "fix the kustomization (see the kustomize build check)",
            )
        ]
    by_ks: dict[str, list[PruneExposure]] = {}
    for x in exposures:
        by_ks.setdefault(x.kustomization, []).append(x)
    return [Finding(PRUNE_CHECK, k, _prune_message(ex), PRUNE_FIX) for k, ex in by_ks.items()]


def check_component_prune(
    inventory: Inventory, component: Component, objects: list[dict[str, Any]]
) -> list[Finding]:
    """The entry-point exposures restricted to this component's built objects."""
    ids = {kustomize.object_id(o) for o in objects if o.get("kind") in PRUNE_GUARDED_KINDS}
    if not ids:
        return []
    repo = inventory.gitops.path
    found: list[Finding] = []
    for entry in inventory.gitops.entrypoints:
        ks = entry_kustomization(repo, entry)
        if ks is None:
            continue
        try:
            ex = [e for e in prune_exposures(repo, ks, entry.file) if e.object_id in ids]
        except kustomize.KustomizeError:
            continue
        if ex:
            found.append(Finding(PRUNE_CHECK, ex[0].kustomization, _prune_message(ex), PRUNE_FIX))
    return found
