"""Backups of a component before anything changes, and reading them back for a rollback.

Written under ``<inventory.backups>/<component>/<run>/`` (directories 0700, files 0600):

- ``release.json``: the release summary (name, revision, chart, status; no values),
- ``values.yaml``: the release's user values (``config``, what ``helm get values`` prints),
- ``manifest.yaml``: the release's rendered manifest (``helm get manifest``),
  both decoded from the Helm release Secret (no helm CLI),
- ``live/<Kind>_<namespace>_<name>.yaml``: the live objects the component consists of (the release
  manifest's objects, the kustomize build of the component path, the workloads, the PVs), cleaned
  of server-set fields (uid, resourceVersion, managedFields, status) so they can be re-applied,
- ``index.json``: what was written (paths, object ids, sha256), the BackupRecord.

Values and Secrets may hold credentials: they are written only to these 0600 files, never printed,
never logged, never put in the journal or a report (the record only names the files).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from handover.core import redact
from handover.core.errors import HandoverError
from handover.core.inventory import Component, Inventory
from handover.sources import helm_storage

if TYPE_CHECKING:
    from handover.core.kube import Kube

SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "managedFields",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
)


class BackupError(HandoverError):
    pass


@dataclass
class BackupRecord:
    component: str
    directory: str
    created: float
    release: dict[str, Any] | None = None  # HelmReleaseRecord.summary() (no values)
    objects: list[str] = field(default_factory=list)  # "Kind ns/name" backed up
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackupRecord:
        return cls(**d)

    @property
    def revision(self) -> int | None:
        return self.release["revision"] if self.release else None


def _write_private(path: Path, text: str, root: Path | None = None) -> str:
    """A file 0600; every folder from ``root`` (the backups directory) down to it 0700."""
    redact.write_private(path, text, root)
    return hashlib.sha256(text.encode()).hexdigest()


def clean(obj: dict[str, Any]) -> dict[str, Any]:
    """A live object made re-appliable: without status and server-set metadata."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k not in SERVER_FIELDS and v is not None
    }
    out["metadata"] = meta
    return _drop_none(out)


def _drop_none(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: _drop_none(v) for k, v in o.items() if v is not None}
    if isinstance(o, list):
        return [_drop_none(v) for v in o]
    return o


def object_key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (
        obj.get("apiVersion", ""),
        obj.get("kind", ""),
        meta.get("namespace") or "",
        meta.get("name", ""),
    )


def _file_name(kind: str, ns: str, name: str) -> str:
    return f"live/{kind}_{ns or '_cluster'}_{name}.yaml"


def _objects_of(
    kube: Kube,
    inventory: Inventory,
    component: Component,
    release: helm_storage.HelmReleaseRecord | None,
) -> list[tuple[str, str, str, str]]:
    """(apiVersion, kind, namespace, name) of every object that makes up the component."""
    from handover.sources import kustomize

    refs: dict[tuple[str, str, str, str], None] = {}
    if release is not None:
        for d in yaml.safe_load_all(release.manifest):
            if d and d.get("kind"):
                m = d.get("metadata") or {}
                ns = m.get("namespace") or ""
                refs[(d["apiVersion"], d["kind"], ns, m["name"])] = None
    repo_dir = inventory.gitops.path / component.path
    if component.type != "helm" and repo_dir.is_dir():
        for d in kustomize.build(repo_dir):
            refs[object_key(d)] = None
    for w in component.workloads:
        refs[("apps/v1", w.kind, w.namespace, w.name)] = None
    for pv in component.pvs:
        refs[("v1", "PersistentVolume", "", pv)] = None
    return list(refs)


def _namespace_default(
    kube: Kube, api_version: str, kind: str, ns: str, release_ns: str | None
) -> str:
    if ns:
        return ns
    res = kube.resource(api_version, kind)
    return (release_ns or "default") if res.namespaced else ""


def take(kube: Kube, inventory: Inventory, component: Component, run: str) -> BackupRecord:
    """Back the component up (read-only on the cluster; writes only the backup files)."""
    directory = inventory.backups / component.name / run
    root = inventory.backups
    rec = BackupRecord(component=component.name, directory=str(directory), created=time.time())
    release = None
    if component.release is not None:
        release = helm_storage.latest(kube, component.release.name, component.release.namespace)
        if release is None:
            raise BackupError(
                f"{component.name}: no Helm release {component.release.namespace}/"
                f"{component.release.name} in storage: nothing to back up"
            )
        rec.release = release.summary()
        rec.files["release.json"] = _write_private(
            directory / "release.json", json.dumps(release.summary(), indent=2), root
        )
        rec.files["values.yaml"] = _write_private(
            directory / "values.yaml", yaml.safe_dump(release.config, sort_keys=True), root
        )
        rec.files["manifest.yaml"] = _write_private(
            directory / "manifest.yaml", release.manifest, root
        )
    seen: set[tuple[str, str, str]] = set()
    for api_version, kind, ns, name in _objects_of(kube, inventory, component, release):
        ns = _namespace_default(
            kube,
            api_version,
            kind,
            ns,
            release.namespace
            if release
            else (component.namespaces[0] if component.namespaces else None),
        )
        if (kind, ns, name) in seen:
            continue
        seen.add((kind, ns, name))
        live = kube.get(api_version, kind, name, ns or None)
        if live is None:
            continue  # in the manifest/build but not live (yet): nothing to restore
        rel = _file_name(kind, ns, name)
        if kind == "Secret":
            redact.register_secret(live)  # hashed wherever it turns up in free text
        rec.files[rel] = _write_private(
            directory / rel, yaml.safe_dump(clean(live), sort_keys=True), root
        )
        rec.objects.append(f"{kind} {ns + '/' if ns else ''}{name}")
    _write_private(directory / "index.json", json.dumps(rec.to_dict(), indent=2), root)
    return rec


def load_record(directory: str | Path) -> BackupRecord:
    p = Path(directory) / "index.json"
    if not p.exists():
        raise BackupError(f"no backup index at {p}")
    return BackupRecord.from_dict(json.loads(p.read_text()))


def verify(record: BackupRecord) -> list[str]:
    """Problems with a backup on disk: missing files, changed content, loose permissions."""
    problems = []
    d = Path(record.directory)
    for rel, digest in record.files.items():
        p = d / rel
        if not p.exists():
            problems.append(f"{p}: missing")
            continue
        mode = p.stat().st_mode & 0o777
        if mode != 0o600:
            problems.append(f"{p}: mode {oct(mode)}, expected 0o600")
        if hashlib.sha256(p.read_bytes()).hexdigest() != digest:
            problems.append(f"{p}: content changed since the backup")
    return problems


def live_objects(record: BackupRecord) -> list[dict[str, Any]]:
    """The backed-up live objects (for a re-apply). Contains Secrets: never print them."""
    d = Path(record.directory)
    out = []
    for rel in sorted(record.files):
        if rel.startswith("live/"):
            out.append(yaml.safe_load((d / rel).read_text()))
    return out


def release_values(record: BackupRecord) -> dict[str, Any]:
    p = Path(record.directory) / "values.yaml"
    return yaml.safe_load(p.read_text()) or {} if p.exists() else {}
