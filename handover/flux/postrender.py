"""helm-controller's post-rendering, shared Flux behaviour: phase 1's render predictions
(handover.flux.render.with_post_renderers) call :func:`post_render`, and the helm-controller
stand-in's helm --post-renderer runs this module as a small executable script written into the
state dir (it reads the rendered manifest on stdin and writes the result on stdout).

- Origin labels ``helm.toolkit.fluxcd.io/name`` and ``helm.toolkit.fluxcd.io/namespace`` on
  ``metadata.labels`` of every rendered object, not on pod templates or selectors (so they cause no
  rollout). Upstream: helm-controller internal/postrender/origin_labels.go (a kustomize label
  transformer with includeSelectors false / no template fields).
- ``--release-namespace NS --storage-namespace SNS``: only when the storage namespace differs from
  the release namespace. The helm CLI keeps both in one namespace (``-n``), the controller's SDK use
  does not; the stand-in runs helm with ``-n <storage ns>`` and moves the namespaced objects that
  landed in the storage namespace to the release namespace (see docs/flux-standins.md).

- ``--spec FILE``: a JSON file with the HelmRelease's ``postRenderers`` and ``commonMetadata``.
  Upstream order (internal/postrender/build.go BuildPostRenderers): each ``kustomize``
  post-renderer in turn (kustomize.go: the output as ``helm-output.yaml`` in a kustomization with
  ``patches``, ``patchesStrategicMerge``, ``patchesJson6902``, ``images``, built by kustomize, here
  ``kubectl kustomize``), then ``commonMetadata`` labels/annotations (common_renderer.go), then the
  origin labels.

    python -m handover.flux.postrender --name N --namespace NS [--release-namespace RN
        --storage-namespace SN] [--spec FILE] < manifest.yaml
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml


class Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans (only true/false), as Helm and kustomize (Go yaml) read them: PyYAML's
    1.1 resolver would turn ``y``/``yes``/``on`` strings into booleans."""


Yaml12Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_all(text: str) -> list:
    return list(yaml.load_all(text, Loader=Yaml12Loader))


NAME_LABEL = "helm.toolkit.fluxcd.io/name"
NAMESPACE_LABEL = "helm.toolkit.fluxcd.io/namespace"

# Kinds that are cluster-scoped in the charts the rehearsal renders (no namespace to move).
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "APIService",
    "RuntimeClass",
    "CSIDriver",
    "VolumeSnapshotClass",
}


def transform(
    docs: list,
    name: str,
    namespace: str,
    release_namespace: str | None = None,
    storage_namespace: str | None = None,
) -> list:
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
        if (
            release_namespace
            and storage_namespace
            and release_namespace != storage_namespace
            and doc["kind"] not in CLUSTER_SCOPED
            and meta.get("namespace") in (None, "", storage_namespace)
        ):
            meta["namespace"] = release_namespace
        out.append(doc)
    return out


def kustomize(docs: list, renderer: dict[str, Any], kubectl: str) -> list:
    """internal/postrender/kustomize.go Kustomize.Run with kustomize's own build."""
    with tempfile.TemporaryDirectory(prefix="flux-postrender-") as tmp:
        d = Path(tmp)
        (d / "helm-output.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
        k: dict[str, Any] = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["helm-output.yaml"],
        }
        if renderer.get("images"):
            k["images"] = renderer["images"]
        if renderer.get("patches"):
            k["patches"] = renderer["patches"]
        if renderer.get("patchesStrategicMerge"):
            k["patchesStrategicMerge"] = [
                yaml.safe_dump(p) for p in renderer["patchesStrategicMerge"]
            ]
        if renderer.get("patchesJson6902"):
            k["patchesJson6902"] = [
                {"target": p["target"], "patch": json.dumps(p["patch"])}
                for p in renderer["patchesJson6902"]
            ]
        (d / "kustomization.yaml").write_text(yaml.safe_dump(k, sort_keys=False))
        res = subprocess.run(
            [kubectl, "kustomize", str(d), "--load-restrictor", "LoadRestrictionsNone"],
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            raise SystemExit(f"post-renderer kustomize failed: {res.stderr.strip()}")
        return [x for x in load_all(res.stdout) if x]


def common_metadata(docs: list, meta: dict[str, Any]) -> list:
    """internal/postrender/common_renderer.go CommonRenderer: labels and annotations on
    metadata of every object (not on templates or selectors)."""
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        m = doc.setdefault("metadata", {}) or {}
        doc["metadata"] = m
        for field in ("labels", "annotations"):
            if meta.get(field):
                m[field] = {**(m.get(field) or {}), **meta[field]}
    return docs


def post_render(docs: list, spec: dict[str, Any], kubectl: str) -> list:
    docs = [d for d in docs if isinstance(d, dict) and "kind" in d]
    for r in spec.get("postRenderers") or []:
        if r.get("kustomize"):
            docs = kustomize(docs, r["kustomize"], kubectl)
    if spec.get("commonMetadata"):
        docs = common_metadata(docs, spec["commonMetadata"])
    return docs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--release-namespace")
    p.add_argument("--storage-namespace")
    p.add_argument("--spec")
    a = p.parse_args(argv)
    docs = load_all(sys.stdin.read())
    if a.spec:
        spec = json.loads(Path(a.spec).read_text())
        docs = post_render(docs, spec, spec["kubectl"])
    out = transform(docs, a.name, a.namespace, a.release_namespace, a.storage_namespace)
    sys.stdout.write(yaml.safe_dump_all(out, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
