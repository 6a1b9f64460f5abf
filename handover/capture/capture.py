"""`handover capture`: read a live cluster's Helm releases and kubectl-applied objects into a
bundle (handover.capture.bundle), for a rehearsal of that very cluster.

Read-only, by construction: every API request goes through GET/LIST (the kubernetes client's
list/get and the real ``helm get`` / ``helm history``, which only read release storage); nothing
is created, patched or deleted. tests/scenarios/test_capture_readonly.py proves it from the API
server's audit log under the audited identity, as phase 1 is proved.

Scope: ``--namespace NS`` (repeatable), else the namespaces of an inventory's components and
releases, else every namespace. In scope:
- every revision of every Helm release stored (Secret driver) in a namespace in scope;
- every object of a namespace in scope that carries ``kubectl.kubernetes.io/last-applied-
  configuration`` (its last-applied configuration);
- the Namespaces in scope, every StorageClass, the PVs claimed from a namespace in scope (or not
  claimed at all, or named by the inventory's storage components), the PVCs of the namespaces in
  scope, the CRDs the releases and the kubectl-applied objects use.
A release kept in ConfigMaps (HELM_DRIVER=configmap) is not captured: it is listed by name under
``notCaptured`` in the index (never silently dropped).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from handover.capture import bundle
from handover.core import tools
from handover.core.errors import HandoverError
from handover.core.kube import Kube, check_context
from handover.core.objects import group_of
from handover.sources import helm_storage

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SKIP_KINDS = {
    "Event",
    "Lease",
    "EndpointSlice",
    "Endpoints",
    "Pod",
    "ReplicaSet",
    "ControllerRevision",
    "TokenReview",
    "SubjectAccessReview",
    "LocalSubjectAccessReview",
    "SelfSubjectAccessReview",
    "SelfSubjectRulesReview",
    "ComponentStatus",
    "Binding",
}
CLUSTER_KINDS = (
    "Namespace",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
)


@dataclass
class CaptureResult:
    out: Path
    context: str
    server_version: str
    releases: list[str] = field(default_factory=list)  # storage-ns/name (revisions)
    applied: list[str] = field(default_factory=list)
    not_captured: list[str] = field(default_factory=list)


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    meta.pop("managedFields", None)
    return obj


def _helm_outputs(kubeconfig: str | None, context: str, name: str, ns: str) -> dict[str, Any]:
    """What real helm prints for the release (reads release storage only)."""
    base = [str(tools.helm())]
    tail = ["-n", ns, "--kube-context", context] + (
        ["--kubeconfig", kubeconfig] if kubeconfig else []
    )
    manifest = tools.run(base + ["get", "manifest", name] + tail, check=True).stdout
    values = json.loads(
        tools.run(base + ["get", "values", name, "--all", "-o", "json"] + tail, check=True).stdout
        or "null"
    )
    history = json.loads(
        tools.run(base + ["history", name, "-o", "json", "--max", "1000"] + tail, check=True).stdout
        or "[]"
    )
    return {"manifest": manifest, "valuesAll": values, "history": history}


def _kinds_in_manifest(text: str) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return out
    for d in docs:
        if isinstance(d, dict) and d.get("apiVersion") and d.get("kind"):
            out.add((group_of(d["apiVersion"]), d["kind"]))
            if d["kind"] == "CustomResourceDefinition":
                spec = d.get("spec") or {}
                out.add((spec.get("group", ""), (spec.get("names") or {}).get("kind", "")))
    return out


def _chart_crd_kinds(record: dict[str, Any]) -> set[tuple[str, str]]:
    import base64

    out = set()
    for f in (record.get("chart") or {}).get("files") or []:
        if f.get("name", "").startswith("crds/"):
            out |= _kinds_in_manifest(
                base64.b64decode(f.get("data") or "").decode(errors="replace")
            )
    return out


def scope_from_inventory(inventory_path: Path) -> tuple[str, list[str], set[str]]:
    """(context, namespaces, PV names) an inventory puts in scope."""
    from handover.core.inventory import load

    inv = load(inventory_path)
    nss: set[str] = set()
    pvs: set[str] = set()
    for c in inv.components:
        nss |= set(c.namespaces)
        if c.release:
            nss.add(c.release.namespace)
        pvs |= set(c.pvs)
    return inv.cluster.context, sorted(nss), pvs


def capture(
    out: Path | str,
    *,
    kubeconfig: str | Path | None = None,
    context: str | None = None,
    namespaces: list[str] | None = None,
    inventory: Path | str | None = None,
) -> CaptureResult:
    """Write a bundle of the cluster at (kubeconfig, context) into ``out`` (a new directory)."""
    out = Path(out)
    named_pvs: set[str] = set()
    if inventory is not None:
        inv_context, inv_nss, named_pvs = scope_from_inventory(Path(inventory))
        if context is not None:
            check_context(context, inv_context)
        context = inv_context
        namespaces = namespaces or inv_nss
    if context is None:
        raise HandoverError(
            "capture needs --inventory or --kube-context: it never guesses which cluster to read"
        )
    kubeconfig = str(kubeconfig) if kubeconfig else None
    kube = Kube(kubeconfig, context)
    if out.exists() and any(out.iterdir()):
        raise bundle.BundleError(f"{out} exists and is not empty: capture into a new directory")
    _, _, server_version = kube.server_version()
    captured_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    scoped = sorted(set(namespaces)) if namespaces else None
    all_nss = [n["metadata"]["name"] for n in kube.list("v1", "Namespace")]
    if scoped:
        missing = [n for n in scoped if n not in all_nss]
        if missing:
            raise HandoverError(f"namespaces {missing} do not exist in context {context!r}")
    in_scope = scoped or all_nss
    w = bundle.Writer(out)
    result = CaptureResult(out, context, server_version)

    # -- Helm releases (Secret storage) --------------------------------------------------------
    used: set[tuple[str, str]] = set()
    releases: dict[tuple[str, str], list[tuple[int, str]]] = {}
    latest_records: dict[tuple[str, str], dict[str, Any]] = {}
    for ns in in_scope:
        secrets = kube.core.list_namespaced_secret(ns, label_selector="owner=helm")
        for s in secrets.items:
            if s.type != helm_storage.SECRET_TYPE:
                continue
            d = kube.api.sanitize_for_serialization(s)
            meta = d["metadata"]
            entry = {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "type": d["type"],
                "labels": meta.get("labels") or {},
                "data": {"release": d["data"]["release"]},
            }
            record = helm_storage.decode_release(entry["data"]["release"])
            key = (ns, record["name"])
            releases.setdefault(key, []).append((int(record["version"]), record["info"]["status"]))
            w.write(f"releases/{bundle.safe_name(ns)}/{bundle.safe_name(meta['name'])}.json", entry)
            if key not in latest_records or int(record["version"]) > int(
                latest_records[key]["version"]
            ):
                latest_records[key] = record
            used |= _kinds_in_manifest(record.get("manifest") or "")
            for h in record.get("hooks") or []:
                used |= _kinds_in_manifest(h.get("manifest") or "")
            used |= _chart_crd_kinds(record)
        cms: Any = kube.core.list_namespaced_config_map(ns, label_selector="owner=helm")
        for cm in cms.items:
            result.not_captured.append(
                f"ConfigMap {ns}/{cm.metadata.name}: a Helm release kept in ConfigMaps "
                "(HELM_DRIVER=configmap); only Secret storage is captured"
            )
    index_releases = []
    for (ns, name), revs in sorted(releases.items()):
        revs.sort()
        w.write(
            f"helm/{bundle.safe_name(ns)}/{bundle.safe_name(name)}.json",
            _helm_outputs(kubeconfig, context, name, ns),
        )
        rec = latest_records[(ns, name)]
        cmeta = (rec.get("chart") or {}).get("metadata") or {}
        index_releases.append(
            {
                "name": name,
                "storageNamespace": ns,
                "namespace": rec.get("namespace", ns),
                "revisions": [r for r, _ in revs],
                "status": revs[-1][1],
                "chart": cmeta.get("name"),
                "chartVersion": cmeta.get("version"),
            }
        )
        result.releases.append(f"{ns}/{name} (revisions {', '.join(str(r) for r, _ in revs)})")

    # -- kubectl-applied objects ---------------------------------------------------------------
    seen_uids: set[str] = set()
    seen_kinds: set[tuple[str, str]] = set()
    for res in kube.dynamic.resources.search():
        if (
            type(res).__name__ == "ResourceList"
            or "/" in res.name
            or "list" not in (getattr(res, "verbs", None) or [])
        ):
            continue
        if res.kind in SKIP_KINDS or (res.group, res.kind) in seen_kinds:
            continue
        if not res.namespaced and (scoped or res.kind in CLUSTER_KINDS):
            continue  # cluster-scoped objects: the kinds below, or everything when unscoped
        seen_kinds.add((res.group, res.kind))
        for ns in in_scope if res.namespaced else [None]:
            try:
                items = (
                    res.get(namespace=ns).to_dict().get("items", [])
                    if ns
                    else res.get().to_dict().get("items", [])
                )
            except Exception:  # noqa: BLE001 - a kind this identity may not list is skipped
                continue
            for item in items:
                meta = item["metadata"]
                ann = (meta.get("annotations") or {}).get(LAST_APPLIED)
                if not ann or meta.get("uid") in seen_uids:
                    continue
                seen_uids.add(meta.get("uid"))
                try:
                    last = json.loads(ann)
                except ValueError:
                    result.not_captured.append(
                        f"{item['kind']} {ns}/{meta['name']}: its {LAST_APPLIED} is not JSON"
                    )
                    continue
                oid = f"{item['kind']} {ns + '/' if ns else ''}{meta['name']}"
                used |= _kinds_in_manifest(json.dumps(last))
                w.write(
                    f"applied/{bundle.safe_name(ns or '_cluster')}/"
                    f"{bundle.safe_name(res.group + '.' + item['kind'])}."
                    f"{bundle.safe_name(meta['name'])}.json",
                    {"id": oid, "namespace": ns, "lastApplied": last},
                )
                result.applied.append(oid)

    # -- storage, namespaces, CRDs -------------------------------------------------------------
    counts: dict[str, int] = {}

    def keep(kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        rel = (
            f"cluster/{kind}/{bundle.safe_name(meta.get('namespace') or '_')}."
            f"{bundle.safe_name(meta['name'])}.json"
        )
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", kind)
        w.write(rel, _clean(obj))
        counts[kind] = counts.get(kind, 0) + 1

    for ns in kube.list("v1", "Namespace"):
        if ns["metadata"]["name"] in in_scope:
            keep("Namespace", ns)
    for sc in kube.list("storage.k8s.io/v1", "StorageClass"):
        keep("StorageClass", {**sc, "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass"})
    for pv in kube.list("v1", "PersistentVolume"):
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if (
            not scoped
            or not ref
            or ref.get("namespace") in in_scope
            or pv["metadata"]["name"] in named_pvs
        ):
            keep("PersistentVolume", pv)
    for ns in in_scope:
        for pvc in kube.list("v1", "PersistentVolumeClaim", ns):
            keep("PersistentVolumeClaim", pvc)
    crds = kube.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    for crd in crds:
        spec = crd.get("spec") or {}
        if (spec.get("group", ""), (spec.get("names") or {}).get("kind", "")) in used:
            keep(
                "CustomResourceDefinition",
                {
                    **crd,
                    "apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "CustomResourceDefinition",
                },
            )

    header = bundle.first_line(context, server_version, captured_at)
    w.finish(
        header,
        {
            "source": {
                "context": context,
                "server": kube.server,
                "serverVersion": server_version,
                "capturedAt": captured_at,
            },
            "scope": {
                "namespaces": scoped,
                "inventory": str(Path(inventory).resolve()) if inventory else None,
            },
            "releases": index_releases,
            "applied": len(result.applied),
            "cluster": counts,
            "notCaptured": result.not_captured,
            "complete": True,
        },
    )
    return result
