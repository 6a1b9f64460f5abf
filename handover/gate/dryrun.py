"""Check 2: server-side dry-run of built objects against the live cluster.

Each object is server-side applied with ``dryRun=All``, field manager ``kustomize-controller`` and
``force`` (what kustomize-controller does, fluxcd/pkg ``ssa``), in dependency order: CRDs, then
Namespaces, then other cluster-scoped objects, then the rest. The result per object:

- ``created``: does not exist live; the server accepted it.
- ``unchanged`` / ``configured``: exists live; the dry-run result equals the live object or differs
  (the differing field paths are given). Flux's owner labels are NOT added, so "configured" means
  that Git differs from the live object, not merely that Flux will label it.
- ``rejected``: the API server refused it; its message is given.
- ``not-served``: the server does not serve the kind yet. Flux's own kinds (HelmRelease,
  Kustomization, HelmRepository, GitRepository...) are not served before `flux bootstrap` installs
  their CRDs: they are checked offline against the Flux schema instead (the hazard check
  ``flux-schema``), never silently ignored. A kind whose CRD is defined in the same build is
  reported likewise. Any other unserved kind is ``rejected``: the apply would fail.
- ``forbidden``: the identity may not create/patch (a get/list/watch-only identity); dry-run
  requests are authorised like real ones.

A namespaced object whose namespace does not exist live but is created by Git cannot be dry-run
in its own namespace (a dry-run create of the namespace persists nothing). It is dry-run CREATED
in the substitute namespace ``default`` instead, which runs the server's validation and admission
of the object itself, and reported as ``created (validated in namespace default ...)``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

from handover import tree_diff
from handover.core.findings import Finding
from handover.core.kube import Kube
from handover.core.objects import group_of
from handover.flux import ssa
from handover.flux.rules import KUSTOMIZE_FIELD_MANAGER
from handover.sources.kustomize import object_id

CHECK = "server-dry-run"
SUBSTITUTE_NAMESPACE = "default"
FLUX_GROUP_SUFFIX = ".toolkit.fluxcd.io"
NOT_SERVED_FLUX = (
    "not served before bootstrap: checked offline against the Flux schema (flux-schema check)"
)
MAX_PATHS = 8


@dataclass
class DryRunResult:
    object: str  # "Kind namespace/name"
    result: str  # created | unchanged | configured | rejected | not-served | forbidden
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.result:<10} {self.object}" + (f": {self.detail}" if self.detail else "")

    def to_dict(self) -> dict:
        return asdict(self)


def _rank(obj: dict[str, Any]) -> int:
    kind = obj.get("kind")
    if kind == "CustomResourceDefinition":
        return 0
    if kind == "Namespace":
        return 1
    if kind in (
        "StorageClass",
        "PersistentVolume",
        "ClusterRole",
        "ClusterRoleBinding",
        "PriorityClass",
    ):
        return 2
    if kind in (
        "ServiceAccount",
        "Secret",
        "ConfigMap",
        "ResourceQuota",
        "LimitRange",
        "Role",
        "RoleBinding",
    ):
        return 3
    if kind == "PersistentVolumeClaim":
        return 4
    return 5


def order(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dependency order (stable): CRDs, Namespaces, cluster-scoped, config, claims, the rest."""
    return sorted(objects, key=_rank)


def changed_paths(live: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The field paths a dry-run apply changes on the live object (Flux's comparison
    normalisation, handover.flux.ssa.comparable; one path per field set or removed whole)."""
    return [
        d.path for d in tree_diff.exact(ssa.comparable(live), ssa.comparable(after), subtrees=True)
    ]


def api_message(e: DynamicApiError) -> str:
    body = getattr(e, "body", None)
    try:
        data = json.loads(body) if body else {}
        msg = data.get("message")
    except (ValueError, TypeError, AttributeError):
        msg = None
    return msg or getattr(e, "summary", lambda: str(e))() or str(e)


def _crd_kinds(objects: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(group, kind) -> CRD name for CRDs defined in the build."""
    out = {}
    for o in objects:
        if o.get("kind") == "CustomResourceDefinition":
            spec = o.get("spec") or {}
            kind = (spec.get("names") or {}).get("kind")
            if spec.get("group") and kind:
                out[(spec["group"], kind)] = (o.get("metadata") or {}).get("name", "")
    return out


class DryRunner:
    """Dry-runs objects against one cluster (live namespaces are read once)."""

    def __init__(self, kube: Kube, field_manager: str = KUSTOMIZE_FIELD_MANAGER):
        self.kube = kube
        self.field_manager = field_manager
        self._namespaces: set[str] | None = None

    @property
    def live_namespaces(self) -> set[str]:
        if self._namespaces is None:
            self._namespaces = {n["metadata"]["name"] for n in self.kube.list("v1", "Namespace")}
        return self._namespaces

    def run(self, objects: list[dict[str, Any]]) -> list[DryRunResult]:
        ordered = order(objects)
        crds = _crd_kinds(ordered)
        git_namespaces: dict[str, DryRunResult] = {}
        results = []
        for obj in ordered:
            r = self.one(ssa.flux_defaults(obj), crds, git_namespaces)
            if obj.get("kind") == "Namespace":
                git_namespaces[obj["metadata"]["name"]] = r
            results.append(r)
        return results

    def one(
        self,
        obj: dict[str, Any],
        crds: dict[tuple[str, str], str],
        git_namespaces: dict[str, DryRunResult],
    ) -> DryRunResult:
        oid = object_id(obj)
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        group = group_of(api_version)
        try:
            res = self.kube.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            if group.endswith(FLUX_GROUP_SUFFIX):
                return DryRunResult(oid, "not-served", NOT_SERVED_FLUX)
            if (group, kind) in crds:
                return DryRunResult(
                    oid,
                    "not-served",
                    f"its CRD {crds[(group, kind)]} is created by Git in the same "
                    "apply; the object is validated once that CRD is established",
                )
            return DryRunResult(
                oid,
                "rejected",
                f"the server does not serve {kind} in {api_version} and no CRD in "
                "Git defines it: the apply would fail (install the CRD first or "
                "fix apiVersion/kind)",
            )
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        namespace = (meta.get("namespace") or "default") if res.namespaced else None
        if namespace and namespace not in self.live_namespaces:
            ns_result = git_namespaces.get(namespace)
            if ns_result is None:
                return DryRunResult(
                    oid,
                    "rejected",
                    f"namespace {namespace!r} does not exist and Git does not "
                    "create it: add a Namespace object to Git or fix "
                    "metadata.namespace",
                )
            if ns_result.result in ("rejected", "forbidden"):
                return DryRunResult(
                    oid,
                    ns_result.result,
                    f"its namespace {namespace!r} (created by Git) was "
                    f"{ns_result.result}: {ns_result.detail}",
                )
            return self._substitute(res, obj, oid, namespace)
        if not name:
            return DryRunResult(oid, "rejected", "it has no metadata.name: the apply would fail")
        try:
            live = self.kube.get(api_version, kind, name, namespace)
            body = copy.deepcopy(obj)
            if namespace:
                body.setdefault("metadata", {})["namespace"] = namespace
            after = ssa.dry_run_apply(res, body, namespace, self.field_manager)
        except DynamicApiError as e:
            return self._error(oid, e)
        if live is None:
            return DryRunResult(oid, "created")
        paths = changed_paths(live, after)
        if not paths:
            return DryRunResult(oid, "unchanged")
        more = f" (+{len(paths) - MAX_PATHS} more)" if len(paths) > MAX_PATHS else ""
        return DryRunResult(oid, "configured", "changes " + ", ".join(paths[:MAX_PATHS]) + more)

    def _substitute(self, res, obj: dict[str, Any], oid: str, namespace: str) -> DryRunResult:
        body = copy.deepcopy(obj)
        body["metadata"]["namespace"] = SUBSTITUTE_NAMESPACE
        try:
            self.kube.dynamic.create(
                res,
                body=body,
                namespace=SUBSTITUTE_NAMESPACE,
                dry_run="All",
                field_manager=self.field_manager,
            )
        except DynamicApiError as e:
            if e.status == 409:
                return DryRunResult(
                    oid,
                    "created",
                    f"namespace {namespace!r} is created by Git; not validated by "
                    f"the server (a {obj.get('kind')} of that name exists in the "
                    f"substitute namespace {SUBSTITUTE_NAMESPACE!r})",
                )
            return self._error(
                oid,
                e,
                f" (dry-run in namespace {SUBSTITUTE_NAMESPACE!r}, since "
                f"{namespace!r} is only created by Git)",
            )
        return DryRunResult(
            oid,
            "created",
            f"namespace {namespace!r} is created by Git: validated by a dry-run "
            f"create in namespace {SUBSTITUTE_NAMESPACE!r}",
        )

    @staticmethod
    def _error(oid: str, e: DynamicApiError, where: str = "") -> DryRunResult:
        msg = api_message(e)
        if e.status == 403:
            return DryRunResult(oid, "forbidden", msg + where)
        return DryRunResult(oid, "rejected", f"{e.status}: {msg}{where}")


def findings(results: Iterable[DryRunResult], path: str) -> list[Finding]:
    out = []
    for r in results:
        if r.result == "rejected":
            out.append(
                Finding(
                    CHECK,
                    r.object,
                    f"rejected by the API server (path {path}): {r.detail}",
                    f"fix the object in Git under {path} and re-run the gate",
                )
            )
        elif r.result == "forbidden":
            out.append(
                Finding(
                    CHECK,
                    r.object,
                    f"dry-run forbidden for this identity: {r.detail}",
                    "run the gate with an identity that may create/patch (a dry-run "
                    "persists nothing), or accept that check 2 is skipped",
                )
            )
    return out


def table(results: Iterable[DryRunResult]) -> str:
    return "\n".join(str(r) for r in results)
