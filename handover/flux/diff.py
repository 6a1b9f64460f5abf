"""What applying an entry-point Kustomization would change, computed as ``flux diff kustomization``
does it, natively (flux2 ``cmd/flux/diff_kustomization.go`` / ``internal/build``, fluxcd/pkg
``ssa`` ``ResourceManager.Diff``):

1. build ``spec.path`` of the GitOps checkout with kustomize (the real one, in kubectl);
2. add the owner labels ``kustomize.toolkit.fluxcd.io/name`` / ``.../namespace`` to every object's
   metadata (and ``spec.targetNamespace`` / ``spec.commonMetadata`` as kustomize-controller does);
3. server-side apply each object with ``dryRun=All``, field manager ``kustomize-controller``,
   forcing conflicts; no live object -> ``created``; the dry-run result differs from the live object
   (metadata noise such as managedFields, resourceVersion, generation and status ignored) ->
   ``modified`` with the field paths that change, or ``owner-labels`` when the only change is the
   two owner labels (what the first apply by Flux always does: not drift); else ``unchanged``;
4. objects in the live Kustomization's ``status.inventory`` that the build no longer has are
   ``deleted`` (prune candidates) when ``spec.prune`` is true, unless the live object carries
   ``kustomize.toolkit.fluxcd.io/prune: disabled``.

Values never appear in a diff: Secret data is ``(hidden)``, every other value is shown by its
path and a short hash (handover.core.redact), so HelmRelease spec.values or a ConfigMap's connection
URL are not written in clear into JUnit properties or phase2-diff-*.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import DynamicApiError

from handover import tree_diff
from handover.core import redact
from handover.core.errors import HandoverError
from handover.core.objects import group_of
from handover.flux import rules as flux
from handover.flux import ssa
from handover.sources import kustomize
from handover.tree_diff import MISSING, Difference

if TYPE_CHECKING:
    from handover.core.kube import Kube

CREATED, MODIFIED, OWNER_LABELS, UNCHANGED, DELETED, ERROR = (
    "created",
    "modified",
    "owner-labels",
    "unchanged",
    "deleted",
    "error",
)
UNSUPPORTED_SPEC = (
    "postBuild",
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "images",
    "components",
    "namePrefix",
    "nameSuffix",
)
HIDDEN = "(hidden)"


class FluxDiffError(HandoverError):
    pass


@dataclass
class ObjectDiff:
    kustomization: str
    subject: str  # "Deployment llm/llama-cpp"
    action: str  # created | modified | owner-labels | unchanged | deleted | error
    changes: list[Difference] = field(default_factory=list)  # values already redacted
    note: str = ""

    def __str__(self) -> str:
        head = f"{self.subject}: {self.action}" + (f" ({self.note})" if self.note else "")
        return "\n".join([head] + [f"    {c.arrow()}" for c in self.changes])


@dataclass
class KustomizationDiff:
    name: str
    namespace: str
    path: str
    objects: list[ObjectDiff] = field(default_factory=list)

    def by_action(self, action: str) -> list[ObjectDiff]:
        return [o for o in self.objects if o.action == action]

    @property
    def deleted(self) -> list[ObjectDiff]:
        return self.by_action(DELETED)

    @property
    def modified(self) -> list[ObjectDiff]:
        return self.by_action(MODIFIED)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.objects:
            out[o.action] = out.get(o.action, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "path": self.path,
            "objects": [
                {**asdict(o), "changes": [c.as_json() for c in o.changes]} for o in self.objects
            ],
        }

    def report(self) -> str:
        counts = ", ".join(f"{n} {a}" for a, n in sorted(self.counts().items())) or "no objects"
        lines = [f"Kustomization {self.namespace}/{self.name} (path {self.path}): {counts}"]
        lines += [f"  {o}".replace("\n", "\n  ") for o in self.objects if o.action != UNCHANGED]
        return "\n".join(lines)


def inventory_id(obj: dict[str, Any]) -> str:
    """kustomize-controller's inventory id: ``<namespace>_<name>_<group>_<kind>``."""
    m = obj.get("metadata") or {}
    group = group_of(str(obj.get("apiVersion", "")))
    return f"{m.get('namespace') or ''}_{m.get('name')}_{group}_{obj.get('kind')}"


def parse_inventory_id(entry_id: str) -> tuple[str, str, str, str]:
    """(namespace, name, group, kind) of an inventory id (names cannot contain '_')."""
    parts = entry_id.split("_")
    if len(parts) != 4:
        raise FluxDiffError(f"unexpected inventory id {entry_id!r}")
    return parts[0], parts[1], parts[2], parts[3]


def subject_of(kind: str, name: str, namespace: str | None) -> str:
    return f"{kind} {namespace + '/' if namespace else ''}{name}"


OWNER_LABEL_KEYS = (flux.KUSTOMIZE_OWNER_NAME, flux.KUSTOMIZE_OWNER_NAMESPACE)


def is_owner_label_change(c: Difference) -> bool:
    """The change only adds or sets a Flux owner label (also: a labels map that appears holding
    only the owner labels)."""
    if c.path in (f'metadata.labels["{k}"]' for k in OWNER_LABEL_KEYS):
        return True
    return (
        c.path == "metadata.labels"
        and c.live is MISSING
        and isinstance(c.git, dict)
        and set(c.git) <= set(OWNER_LABEL_KEYS)
    )


def field_changes(live: Any, git: Any) -> list[Difference]:
    """Field-level differences between a live object and a dry-run result, as ``flux diff``
    lists them: a field on one side only is one change, lists are compared index by index
    (handover.tree_diff.exact)."""
    return tree_diff.exact(live, git, subtrees=True, by_index=True)


def classify(
    live: dict[str, Any] | None, dry_run: dict[str, Any], kustomization: str, subject: str
) -> ObjectDiff:
    """created / modified / owner-labels / unchanged for one built object."""
    if live is None or not (dry_run.get("metadata") or {}).get("resourceVersion"):
        return ObjectDiff(kustomization, subject, CREATED)
    changes = field_changes(ssa.comparable(live), ssa.comparable(dry_run))
    if not changes:
        return ObjectDiff(kustomization, subject, UNCHANGED)
    if dry_run.get("kind") == "Secret":
        changes = [
            Difference(
                c.path,
                HIDDEN if c.live is not MISSING else MISSING,
                HIDDEN if c.git is not MISSING else MISSING,
            )
            if c.path.startswith(("data", "stringData"))
            else c
            for c in changes
        ]
    owner_only = all(is_owner_label_change(c) for c in changes)
    changes = [redacted(c) for c in changes]
    if owner_only:
        return ObjectDiff(
            kustomization,
            subject,
            OWNER_LABELS,
            changes,
            "only the Flux owner labels are added: not drift",
        )
    return ObjectDiff(kustomization, subject, MODIFIED, changes)


def redacted(c: Difference) -> Difference:
    """The change with its values as handover.core.redact shows them (path + hash; the values of
    HelmRelease spec.values, ConfigMap data, env... never in clear)."""

    def one(v: Any) -> Any:
        if v is MISSING or v is None or v == HIDDEN or redact.clear_ok(c.path, v):
            return v
        return redact.show(c.path, v)

    return Difference(c.path, one(c.live), one(c.git))


def prepare(
    objects: list[dict[str, Any]],
    ks_name: str,
    ks_namespace: str,
    spec: dict[str, Any],
    namespaced: Callable[[str, str], bool | None],
) -> list[dict[str, Any]]:
    """What kustomize-controller applies: owner labels, targetNamespace, commonMetadata.
    ``namespaced(api_version, kind)`` -> True / False / None (kind not served)."""
    out = []
    common = spec.get("commonMetadata") or {}
    for src in objects:
        o = ssa.flux_defaults(src)
        m = o.setdefault("metadata", {})
        if spec.get("targetNamespace") and namespaced(o["apiVersion"], o["kind"]):
            m["namespace"] = spec["targetNamespace"]
        if common.get("labels"):
            m.setdefault("labels", {}).update(common["labels"])
        if common.get("annotations"):
            m.setdefault("annotations", {}).update(common["annotations"])
        labels = m.setdefault("labels", {})
        labels[flux.KUSTOMIZE_OWNER_NAME] = ks_name
        labels[flux.KUSTOMIZE_OWNER_NAMESPACE] = ks_namespace
        out.append(o)
    return out


def _api_message(e: Exception) -> str:
    body = getattr(e, "body", None) or getattr(e, "summary", lambda: "")()
    try:
        return redact.scrub(json.loads(body).get("message") or str(body))
    except (TypeError, ValueError):
        return redact.scrub(str(body or e))


def diff_kustomization(
    kube: Kube, repo_path: str | Path, ks: dict[str, Any], live_ks: dict[str, Any] | None = None
) -> KustomizationDiff:
    """Diff one Kustomization (``ks``: its manifest from Git) against the cluster.

    ``live_ks``: the live Kustomization (its ``status.inventory`` and ``spec.prune`` give the
    prune candidates); None when it does not exist yet (then nothing can be pruned)."""
    meta = ks["metadata"]
    name, namespace = meta["name"], meta.get("namespace") or "flux-system"
    spec = ks.get("spec") or {}
    bad = [k for k in UNSUPPORTED_SPEC if spec.get(k)]
    if bad:
        raise FluxDiffError(
            f"Kustomization {namespace}/{name} uses {', '.join(bad)}, which this "
            "native diff does not reproduce: run `flux diff kustomization "
            f"{name} --path <dir>` with the flux CLI instead."
        )
    rel = str(spec.get("path") or ".")
    path = (Path(repo_path) / rel).resolve()
    if not path.is_relative_to(Path(repo_path).resolve()):
        raise FluxDiffError(f"Kustomization {name}: spec.path {rel!r} leaves the repository")
    result = KustomizationDiff(name, namespace, rel)
    built = kustomize.build(path)

    served: dict[tuple[str, str], Any] = {}

    def resource(api_version: str, kind: str):
        if (api_version, kind) not in served:
            served[(api_version, kind)] = (
                kube.resource(api_version, kind) if kube.has_resource(api_version, kind) else None
            )
        return served[(api_version, kind)]

    def namespaced(api_version: str, kind: str) -> bool | None:
        res = resource(api_version, kind)
        return None if res is None else bool(res.namespaced)

    objects = prepare(built, name, namespace, spec, namespaced)
    in_build: set[str] = set()
    for obj in objects:
        m = obj["metadata"]
        ns_flag = namespaced(obj["apiVersion"], obj["kind"])
        if ns_flag is False:
            m.pop("namespace", None)
        subj = subject_of(obj["kind"], m["name"], m.get("namespace"))
        in_build.add(inventory_id(obj))
        if ns_flag is None:
            result.objects.append(
                ObjectDiff(
                    name,
                    subj,
                    CREATED,
                    note=f"{obj['apiVersion']} {obj['kind']} is not "
                    "served yet (its CRD is not installed)",
                )
            )
            continue
        if ns_flag and not m.get("namespace"):
            result.objects.append(
                ObjectDiff(
                    name,
                    subj,
                    ERROR,
                    note="namespaced object without a namespace and no "
                    "spec.targetNamespace: kustomize-controller "
                    "rejects it",
                )
            )
            continue
        res = resource(obj["apiVersion"], obj["kind"])
        live = kube.get(obj["apiVersion"], obj["kind"], m["name"], m.get("namespace"))
        try:
            dry = ssa.dry_run_apply(res, obj, m["namespace"] if ns_flag else None)
        except (DynamicApiError, ApiException) as e:
            msg = _api_message(e)
            if live is None and getattr(e, "status", None) == 404:
                # the namespace itself is created by this same build
                result.objects.append(ObjectDiff(name, subj, CREATED, note=msg))
            else:
                result.objects.append(
                    ObjectDiff(name, subj, ERROR, note=f"server-side dry-run rejected it: {msg}")
                )
            continue
        result.objects.append(classify(live, dry, name, subj))

    if live_ks is not None and (live_ks.get("spec") or {}).get("prune"):
        entries = ((live_ks.get("status") or {}).get("inventory") or {}).get("entries") or []
        for entry in entries:
            eid = entry.get("id", "")
            if eid in in_build:
                continue
            ns, oname, group, kind = parse_inventory_id(eid)
            subj = subject_of(kind, oname, ns or None)
            api_version = f"{group}/{entry.get('v')}" if group else str(entry.get("v") or "v1")
            live = (
                kube.get(api_version, kind, oname, ns or None)
                if resource(api_version, kind) is not None
                else None
            )
            if live is None:
                continue  # already gone: nothing to prune
            ann = (live.get("metadata") or {}).get("annotations") or {}
            if ann.get(flux.PRUNE_ANNOTATION) == "disabled":
                result.objects.append(
                    ObjectDiff(name, subj, UNCHANGED, note="dropped from Git, prune disabled")
                )
                continue
            result.objects.append(
                ObjectDiff(
                    name,
                    subj,
                    DELETED,
                    note=f"in the live inventory of Kustomization {namespace}/{name}, not in the "
                    f"build of {rel}: prune: true would delete it",
                )
            )
    return result
