"""The helm post-renderer of the helm-controller stand-in (helm --post-renderer runs it as a
small executable script written into the state dir; it reads the rendered manifest on stdin and
writes the result on stdout).

- Origin labels ``helm.toolkit.fluxcd.io/name`` and ``helm.toolkit.fluxcd.io/namespace`` on
  ``metadata.labels`` of every rendered object, not on pod templates or selectors (so they cause no
  rollout). Upstream: helm-controller internal/postrender/origin_labels.go (a kustomize label
  transformer with includeSelectors false / no template fields).
- ``--release-namespace NS --storage-namespace SNS``: only when the storage namespace differs from
  the release namespace. The helm CLI keeps both in one namespace (``-n``), the controller's SDK use
  does not; the stand-in runs helm with ``-n <storage ns>`` and moves the namespaced objects that
  landed in the storage namespace to the release namespace (see docs/flux-standins.md).

    python -m handover.rehearsal.flux.postrender --name N --namespace NS [--release-namespace RN
        --storage-namespace SN] < manifest.yaml
"""
from __future__ import annotations

import argparse
import sys

import yaml

NAME_LABEL = "helm.toolkit.fluxcd.io/name"
NAMESPACE_LABEL = "helm.toolkit.fluxcd.io/namespace"

# Kinds that are cluster-scoped in the charts the rehearsal renders (no namespace to move).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
                  "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
                  "APIService", "RuntimeClass", "CSIDriver", "VolumeSnapshotClass"}


def transform(docs: list, name: str, namespace: str, release_namespace: str | None = None,
              storage_namespace: str | None = None) -> list:
    out = []
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc:
            continue
        meta = doc.setdefault("metadata", {}) or {}
        doc["metadata"] = meta
        labels = meta.get("labels") or {}
        labels[NAME_LABEL] = name
        labels[NAMESPACE_LABEL] = namespace
        meta["labels"] = labels
        if (release_namespace and storage_namespace and release_namespace != storage_namespace
                and doc["kind"] not in CLUSTER_SCOPED
                and meta.get("namespace") in (None, "", storage_namespace)):
            meta["namespace"] = release_namespace
        out.append(doc)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--release-namespace")
    p.add_argument("--storage-namespace")
    a = p.parse_args(argv)
    docs = list(yaml.safe_load_all(sys.stdin.read()))
    out = transform(docs, a.name, a.namespace, a.release_namespace, a.storage_namespace)
    sys.stdout.write(yaml.safe_dump_all(out, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
