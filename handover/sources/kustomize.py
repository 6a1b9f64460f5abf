"""Kustomize builds of the GitOps repo (the real kustomize inside kubectl)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from handover.core import objects as object_ids
from handover.core import tools
from handover.core.errors import HandoverError


class KustomizeError(HandoverError):
    def __init__(self, path: Path, stderr: str):
        self.path = path
        self.stderr = stderr.strip()
        super().__init__(f"kustomize build of {path} failed:\n{self.stderr}")


def build(path: str | Path) -> list[dict[str, Any]]:
    """`kubectl kustomize PATH`: the objects, in kustomize's output order."""
    p = Path(path)
    if not p.is_dir():
        raise KustomizeError(p, f"no such directory: {p}")
    res = tools.run([str(tools.kubectl()), "kustomize", str(p)])
    if not res.ok:
        raise KustomizeError(p, res.stderr)
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def object_id(obj: dict[str, Any]) -> str:
    """`Kind namespace/name` (or `Kind name` for cluster-scoped objects): the printed form of
    handover.core.objects, for a manifest as written (its namespace, if any)."""
    meta = obj.get("metadata") or {}
    return object_ids.printed(str(obj.get("kind")), meta.get("namespace"), str(meta.get("name")))


def find(
    objects: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None
) -> dict[str, Any] | None:
    for o in objects:
        m = o.get("metadata") or {}
        if (
            o.get("kind") == kind
            and m.get("name") == name
            and (namespace is None or m.get("namespace") == namespace)
        ):
            return o
    return None
