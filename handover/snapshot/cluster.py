"""A snapshot of every object the inventory covers, and the comparison of two snapshots.

Covered: in each component namespace, the objects of ``NAMESPACED_KINDS`` (workloads, their
ReplicaSets, pods, Services, ConfigMaps, Secrets (including the Helm release storage Secrets, so a
new Helm revision shows), ServiceAccounts, PersistentVolumeClaims); cluster-wide, the component
Namespaces and the PersistentVolumes the inventory names or that are bound to a covered claim.

Recorded per object: uid, resourceVersion, generation and a content digest (sha256 of its labels,
annotations, spec and data: everything but status and managedFields); per pod also its owner and
every container's restartCount and containerID. One list call per kind and namespace.

Comparison (``compare``):
- ``deleted`` / ``created``: present on one side only;
- ``recreated``: same name, another uid (deleted and created again);
- ``changed``: same uid, another content digest or generation (only when
  ``resource_versions=True``: phase 2 expects not a single write; after Flux takes over, writes
  such as owner labels are expected). A new resourceVersion with the same content is a status
  update by the object's own controller (a DaemonSet's numberReady settling, say): it happens on
  any live cluster at any time and is not a change anyone made, so it is not reported;
- ``restarted``: a container's restartCount grew or its containerID changed.

Never recorded: Secret data, ConfigMap data (only identities and versions), so a snapshot file is
safe to keep next to the journal.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handover.core.inventory import Inventory
from handover.snapshot import pods as pods_mod
from handover.snapshot.pods import PodState

if TYPE_CHECKING:
    pass

NAMESPACED_KINDS: tuple[tuple[str, str], ...] = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "ReplicaSet"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
)
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"  # written continuously: not covered


@dataclass(frozen=True)
class ObjectState:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    generation: int | None = None
    content: str = ""  # digest of labels, annotations, spec, data ("" in old snapshots)

    @property
    def key(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


@dataclass(frozen=True)
class Change:
    subject: str  # "Pod logging/loki-0"
    change: str  # deleted | created | recreated | changed | restarted
    detail: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.change} ({self.detail})"


@dataclass
class ClusterSnapshot:
    context: str
    taken_at: float
    namespaces: tuple[str, ...]
    objects: list[ObjectState] = field(default_factory=list)
    pods: list[PodState] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClusterSnapshot:
        return cls(
            context=d["context"],
            taken_at=d["taken_at"],
            namespaces=tuple(d["namespaces"]),
            objects=[ObjectState(**o) for o in d["objects"]],
            pods=[PodState.from_dict(p) for p in d["pods"]],
        )

    def save(self, path: str | Path) -> Path:
        from handover.core import redact

        p = Path(path)
        tmp = p.with_suffix(p.suffix + ".tmp")
        redact.write_private(tmp, self.to_json())
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> ClusterSnapshot:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def summary(self) -> str:
        return (
            f"{len(self.objects)} objects and {len(self.pods)} pods in {', '.join(self.namespaces)}"
        )


def covered_namespaces(inventory: Inventory) -> tuple[str, ...]:
    seen: list[str] = []
    for c in inventory.components:
        for ns in (*c.namespaces, *(w.namespace for w in c.workloads)):
            if ns not in seen:
                seen.append(ns)
    return tuple(seen)


CONTENT_FIELDS = ("spec", "data", "stringData", "binaryData", "type", "immutable")


def content_digest(obj: dict[str, Any]) -> str:
    """sha256 of what a person or a controller other than the object's own status writer would
    change: labels, annotations, spec and data. Never stored in clear (Secret data)."""
    m = obj.get("metadata") or {}
    doc = {
        "labels": m.get("labels") or {},
        "annotations": m.get("annotations") or {},
        **{k: obj[k] for k in CONTENT_FIELDS if k in obj},
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _state(obj: dict[str, Any], api_version: str, kind: str) -> ObjectState:
    m = obj["metadata"]
    return ObjectState(
        api_version,
        kind,
        m.get("namespace") or "",
        m["name"],
        m["uid"],
        m["resourceVersion"],
        m.get("generation"),
        content_digest(obj),
    )


def take(kube, inventory: Inventory) -> ClusterSnapshot:
    """Snapshot every object the inventory covers (read-only)."""
    namespaces = covered_namespaces(inventory)
    snap = ClusterSnapshot(context=kube.context, taken_at=time.time(), namespaces=namespaces)
    claims: set[tuple[str, str]] = set()
    for ns_obj in kube.list("v1", "Namespace"):
        if ns_obj["metadata"]["name"] in namespaces:
            snap.objects.append(_state(ns_obj, "v1", "Namespace"))
    for ns in namespaces:
        for api_version, kind in NAMESPACED_KINDS:
            for obj in kube.list(api_version, kind, namespace=ns):
                if LEADER_ANNOTATION in ((obj["metadata"].get("annotations")) or {}):
                    continue
                snap.objects.append(_state(obj, api_version, kind))
                if kind == "PersistentVolumeClaim":
                    claims.add((ns, obj["metadata"]["name"]))
        snap.pods.extend(pods_mod.from_pod(p) for p in kube.list("v1", "Pod", namespace=ns))
    pv_names = {pv for c in inventory.components for pv in c.pvs}
    for pv in kube.list("v1", "PersistentVolume"):
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if pv["metadata"]["name"] in pv_names or (ref.get("namespace"), ref.get("name")) in claims:
            snap.objects.append(_state(pv, "v1", "PersistentVolume"))
    snap.objects.sort(key=lambda o: (o.kind, o.namespace, o.name))
    snap.pods.sort(key=lambda p: (p.namespace, p.name))
    return snap


def compare(
    before: ClusterSnapshot, after: ClusterSnapshot, resource_versions: bool = True
) -> list[Change]:
    """What moved between two snapshots (empty: nothing)."""
    changes: list[Change] = []
    a = {o.key: o for o in before.objects}
    b = {o.key: o for o in after.objects}
    for key, old in a.items():
        new = b.get(key)
        if new is None:
            changes.append(Change(key, "deleted", f"uid {old.uid} is gone"))
        elif new.uid != old.uid:
            changes.append(Change(key, "recreated", f"uid {old.uid} -> {new.uid}"))
        elif resource_versions and new.resource_version != old.resource_version:
            content_known = bool(old.content and new.content)
            if content_known and new.content == old.content and new.generation == old.generation:
                continue  # a status update by the object's own controller
            gen = (
                ""
                if new.generation == old.generation
                else f", generation {old.generation} -> {new.generation} (spec changed)"
            )
            what = ", labels/annotations/spec/data changed" if content_known else ""
            changes.append(
                Change(
                    key,
                    "changed",
                    f"resourceVersion {old.resource_version} -> {new.resource_version}{gen}{what}",
                )
            )
    for key, new in b.items():
        if key not in a:
            changes.append(Change(key, "created", f"uid {new.uid}"))
    pa = {f"Pod {p.key}": p for p in before.pods}
    pb = {f"Pod {p.key}": p for p in after.pods}
    for key, old_pod in pa.items():
        new_pod = pb.get(key)
        if new_pod is None:
            changes.append(
                Change(
                    key, "deleted", f"pod uid {old_pod.uid} ({old_pod.owner or 'no owner'}) is gone"
                )
            )
            continue
        if new_pod.uid != old_pod.uid:
            changes.append(Change(key, "recreated", f"pod uid {old_pod.uid} -> {new_pod.uid}"))
            continue
        for name, count in new_pod.restarts.items():
            if name not in old_pod.restarts:
                continue
            old_id, new_id = old_pod.container_ids.get(name), new_pod.container_ids.get(name)
            if count > old_pod.restarts[name] or (old_id and new_id and new_id != old_id):
                changes.append(
                    Change(
                        key,
                        "restarted",
                        f"container {name}: restartCount {old_pod.restarts[name]} -> {count}",
                    )
                )
    for key, new_pod in pb.items():
        if key not in pa:
            changes.append(
                Change(key, "created", f"pod uid {new_pod.uid} ({new_pod.owner or 'no owner'})")
            )
    return changes


def report(changes: list[Change], before: ClusterSnapshot, after: ClusterSnapshot) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(before.taken_at))
    lines = [f"{len(changes)} change(s) since the snapshot of {when} ({before.summary()}):"]
    lines += [f"  - {c}" for c in changes]
    return "\n".join(lines)
