"""Helm release storage, read without the helm CLI.

One Secret per revision: ``sh.helm.release.v1.<release>.v<revision>``, type ``helm.sh/release.v1``,
labels ``name``, ``owner=helm``, ``status``, ``version``. ``data.release`` is
base64(gzip(JSON)) and the Secret API base64-encodes it once more.
Source: helm pkg/storage/driver/secrets.go, pkg/storage/driver/util.go (encodeRelease/decodeRelease).
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from handover.core import redact

if TYPE_CHECKING:
    from handover.core.kube import Kube

SECRET_TYPE = "helm.sh/release.v1"
GZIP_MAGIC = b"\x1f\x8b\x08"


def secret_name(release: str, revision: int) -> str:
    return f"sh.helm.release.v1.{release}.v{revision}"


def decode_release(data_release: str) -> dict[str, Any]:
    """Decode the ``data.release`` field of a release Secret as returned by the API (base64 text).

    Base64 twice (the API's and Helm's), then gunzip when the gzip magic is present."""
    raw = base64.b64decode(base64.b64decode(data_release))
    if raw[:3] == GZIP_MAGIC:
        raw = gzip.decompress(raw)
    return json.loads(raw)


def encode_release(release: dict[str, Any]) -> str:
    """The inverse of decode_release (as the API would return it); used by tests."""
    inner = base64.b64encode(gzip.compress(json.dumps(release).encode()))
    return base64.b64encode(inner).decode()


@dataclass
class HelmReleaseRecord:
    """One revision of a Helm release, as stored."""

    name: str
    namespace: str  # the release (target) namespace
    storage_namespace: str  # where the Secret lives
    revision: int
    status: str
    chart_name: str
    chart_version: str
    app_version: str | None
    config: dict[str, Any]  # user-supplied values (what `helm get values` prints)
    manifest: str
    chart_values: dict[str, Any] = field(repr=False, default_factory=dict)
    last_deployed: str | None = None
    secret_name: str = ""
    # the manifests of the chart's hooks (Helm keeps them apart from ``manifest``): objects a
    # hook left behind (delete policy before-hook-creation, the default) belong to the release
    hook_manifests: list[str] = field(repr=False, default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.storage_namespace}/{self.name}"

    def summary(self) -> dict[str, Any]:
        """Plain data without values or manifest (safe for reports: no secrets)."""
        return {
            "name": self.name,
            "namespace": self.namespace,
            "storageNamespace": self.storage_namespace,
            "revision": self.revision,
            "status": self.status,
            "chart": self.chart_name,
            "chartVersion": self.chart_version,
            "appVersion": self.app_version,
            "lastDeployed": self.last_deployed,
        }


def record_from_secret(secret: dict[str, Any]) -> HelmReleaseRecord:
    meta = secret["metadata"]
    rel = decode_release(secret["data"]["release"])
    chart = rel.get("chart") or {}
    cmeta = chart.get("metadata") or {}
    info = rel.get("info") or {}
    redact.register_values(rel.get("config") or {})  # never repeated in clear in free text
    return HelmReleaseRecord(
        name=rel["name"],
        namespace=rel.get("namespace", meta["namespace"]),
        storage_namespace=meta["namespace"],
        revision=int(rel["version"]),
        status=info.get("status", meta.get("labels", {}).get("status", "unknown")),
        chart_name=cmeta.get("name", ""),
        chart_version=cmeta.get("version", ""),
        app_version=cmeta.get("appVersion"),
        config=rel.get("config") or {},
        manifest=rel.get("manifest", ""),
        chart_values=chart.get("values") or {},
        last_deployed=info.get("last_deployed"),
        secret_name=meta["name"],
        hook_manifests=[
            str(h.get("manifest") or "") for h in rel.get("hooks") or [] if isinstance(h, dict)
        ],
    )


def list_revisions(
    kube: Kube, name: str | None = None, namespace: str | None = None
) -> list[HelmReleaseRecord]:
    """Every stored revision (optionally of one release / in one storage namespace),
    sorted by (namespace, name, revision)."""
    selector = "owner=helm" + (f",name={name}" if name else "")
    if namespace:
        secrets = kube.core.list_namespaced_secret(namespace, label_selector=selector)
    else:
        secrets = kube.core.list_secret_for_all_namespaces(label_selector=selector)
    out = []
    for s in secrets.items:
        if s.type != SECRET_TYPE:
            continue
        out.append(record_from_secret(kube.api.sanitize_for_serialization(s)))
    out.sort(key=lambda r: (r.storage_namespace, r.name, r.revision))
    return out


def latest(kube: Kube, name: str, storage_namespace: str) -> HelmReleaseRecord | None:
    """The newest revision of a release (what `helm status` shows), or None."""
    revs = list_revisions(kube, name=name, namespace=storage_namespace)
    return revs[-1] if revs else None


def list_releases(kube: Kube, namespace: str | None = None) -> list[HelmReleaseRecord]:
    """The newest revision of every release (what `helm list -A --all` shows)."""
    newest: dict[tuple[str, str], HelmReleaseRecord] = {}
    for r in list_revisions(kube, namespace=namespace):
        newest[(r.storage_namespace, r.name)] = r
    return list(newest.values())
