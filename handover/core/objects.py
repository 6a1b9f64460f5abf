"""Object identity, once: an object's API group, its kind/namespace/name key, its printed name.

Every module that keys, compares or prints Kubernetes objects uses these, so two modules never
disagree on what "the same object" is (the core group is "", a namespaced object's key carries
its namespace, a cluster-scoped one's carries "").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


def group_of(api_version: str) -> str:
    """``apps/v1`` -> ``apps``; ``v1`` (the core group) -> ``""``."""
    return api_version.rpartition("/")[0]


def version_of(api_version: str) -> str:
    """``apps/v1`` -> ``v1``; ``v1`` -> ``v1``."""
    return api_version.rpartition("/")[2]


class ObjectId(NamedTuple):
    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return printed(self.kind, self.namespace, self.name)


def printed(kind: str, namespace: str | None, name: str) -> str:
    """How messages name an object: ``Kind namespace/name``, or ``Kind name`` when
    cluster-scoped (the group is left out: a person reads the kind)."""
    return f"{kind} {namespace + '/' if namespace else ''}{name}"


def object_id(obj: Mapping[str, Any], default_namespace: str = "") -> ObjectId:
    """The identity of a manifest or live object: API group (not version: the same object is
    served at several versions), kind, namespace (``default_namespace`` when the manifest leaves
    it out; pass "" for cluster-scoped kinds), name."""
    meta = obj.get("metadata") or {}
    return ObjectId(
        group_of(str(obj.get("apiVersion", ""))),
        str(obj.get("kind", "")),
        str(meta.get("namespace") or default_namespace),
        str(meta.get("name", "")),
    )
