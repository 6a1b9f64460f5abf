"""An in-memory stand-in for handover.core.kube.Kube (get/list/server_version and the Helm release
Secret listing helm_storage uses), for the offline unit tests of the hazard checks."""
from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

from handover.sources import helm_storage


def release_secret(name: str, namespace: str, revision: int = 1, chart: str = "loki",
                   version: str = "6.21.0", config: dict | None = None, manifest: str = "",
                   status: str = "deployed", storage_namespace: str | None = None) -> dict:
    rel = {"name": name, "namespace": namespace, "version": revision, "manifest": manifest,
           "config": config or {}, "info": {"status": status},
           "chart": {"metadata": {"name": chart, "version": version, "appVersion": "1"},
                     "values": {}}}
    return {"apiVersion": "v1", "kind": "Secret", "type": helm_storage.SECRET_TYPE,
            "metadata": {"name": helm_storage.secret_name(name, revision),
                         "namespace": storage_namespace or namespace,
                         "labels": {"owner": "helm", "name": name, "status": status,
                                    "version": str(revision)}},
            "data": {"release": helm_storage.encode_release(rel)}}


def _matches(obj: dict, selector: str | None) -> bool:
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in (p.split("=", 1) for p in selector.split(",")))


class _Core:
    def __init__(self, kube: "FakeKube"):
        self.kube = kube

    def _secrets(self, ns, label_selector):
        items = [SimpleNamespace(type=o.get("type"), raw=o)
                 for o in self.kube.objects if o["kind"] == "Secret"
                 and (ns is None or o["metadata"].get("namespace") == ns)
                 and _matches(o, label_selector)]
        return SimpleNamespace(items=items)

    def list_namespaced_secret(self, namespace, label_selector=None):
        return self._secrets(namespace, label_selector)

    def list_secret_for_all_namespaces(self, label_selector=None):
        return self._secrets(None, label_selector)


class FakeKube:
    def __init__(self, *objects: dict, version: str = "v1.20.2"):
        self.objects = [copy.deepcopy(o) for o in objects]
        self.version = version
        self.context = "fake"
        self.core = _Core(self)
        self.api = SimpleNamespace(sanitize_for_serialization=lambda s: s.raw)
        self.calls: list[tuple] = []

    def add(self, *objects: dict) -> "FakeKube":
        self.objects.extend(copy.deepcopy(o) for o in objects)
        return self

    def server_version(self):
        return 1, int(self.version.split(".")[1]), self.version

    def get(self, api_version: str, kind: str, name: str,
            namespace: str | None = None) -> dict[str, Any] | None:
        self.calls.append(("get", kind, name, namespace))
        for o in self.objects:
            m = o.get("metadata") or {}
            if o.get("kind") == kind and m.get("name") == name and \
                    (namespace is None or m.get("namespace") in (None, namespace)):
                return copy.deepcopy(o)
        return None

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self.objects if o.get("kind") == kind and
                (namespace is None or (o.get("metadata") or {}).get("namespace") == namespace)
                and _matches(o, label_selector)]
