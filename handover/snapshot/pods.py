"""The one record of a pod as a snapshot keeps it (handover.snapshot.component for one component's
pods, handover.snapshot.cluster for every covered pod), and the one reader of a live pod into it.

What a snapshot must see of a pod to tell "adopted in place" from "recreated" or "restarted": its
UID, creation time, phase, readiness, owner, and per container the restartCount and containerID.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PodState:
    namespace: str
    name: str
    uid: str
    workload: str = ""  # "Deployment logging/grafana": the inventory workload selecting it
    created: str = ""  # metadata.creationTimestamp (RFC 3339)
    phase: str = ""
    ready: bool = False
    restarts: dict[str, int] = field(default_factory=dict)  # container name -> restartCount
    owner: str = ""  # first ownerReference: "ReplicaSet loki-abc", "StatefulSet loki", or ""
    container_ids: dict[str, str] = field(default_factory=dict)  # container name -> containerID

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def total_restarts(self) -> int:
        return sum(self.restarts.values())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PodState:
        """From ``dataclasses.asdict``; also reads the cluster snapshots written before the two
        pod records were one (``containers``: ``[{name, restart_count, container_id}]``)."""
        d = dict(d)
        containers = d.pop("containers", None)
        if containers is not None:
            d.setdefault(
                "restarts", {c["name"]: int(c.get("restart_count") or 0) for c in containers}
            )
            d.setdefault(
                "container_ids", {c["name"]: c.get("container_id") or "" for c in containers}
            )
        return cls(**d)


def from_pod(pod: dict[str, Any], workload: str = "") -> PodState:
    """A live pod (plain JSON) as a PodState."""
    meta, status = pod["metadata"], pod.get("status") or {}
    owners = meta.get("ownerReferences") or []
    statuses = status.get("containerStatuses") or []
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return PodState(
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
        workload=workload,
        created=meta.get("creationTimestamp") or "",
        phase=status.get("phase") or "",
        ready=ready,
        restarts={cs["name"]: int(cs.get("restartCount") or 0) for cs in statuses},
        owner=f"{owners[0]['kind']} {owners[0]['name']}" if owners else "",
        container_ids={cs["name"]: cs.get("containerID") or "" for cs in statuses},
    )
