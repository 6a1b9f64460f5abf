"""The capture bundle: a directory (0700) of files (0600) that `handover capture` writes and
`handover rehearsal up --from-capture` reads::

    index.yaml                      first line: a warning (it holds the releases' values, which can
                                    include secrets) and where it came from (context, server
                                    version, time); then the source, the scope, what was captured,
                                    and a sha256 per file
    releases/<storage-ns>/<secret>.json   every revision Helm keeps in storage, as Helm stores it:
                                    the release Secret's name, namespace, type, labels and its
                                    ``data.release`` exactly as the API served it (the chart, the
                                    user-supplied config, the manifest, the hooks travel inside)
    helm/<storage-ns>/<release>.json    what real ``helm`` printed for it on the source cluster
                                    (``get manifest``, ``get values --all -o json``,
                                    ``history -o json``): the replay is checked against these
    applied/<ns or _cluster>/<kind>.<name>.json   kubectl-applied objects: their
                                    last-applied-configuration
    cluster/<kind>/<ns>.<name>.json     PVs, PVCs, StorageClasses, Namespaces and the CRDs the
                                    releases use, as the API served them

Reading a bundle checks every file against its sha256 in the index, and that no listed file is
missing and no file is there that the index does not list: a truncated or hand-edited bundle is
refused, naming the file.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from handover.sources import helm_storage
from handover.core.errors import HandoverError

INDEX = "index.yaml"
FORMAT = "flux-handover/capture-v1"
WARNING = ("# flux-handover capture bundle: it holds the Helm releases' values, which can include "
           "secrets (passwords, tokens): keep it as you keep those secrets.")


class BundleError(HandoverError):
    """A bundle that cannot be used as it is (names the file and what is wrong)."""


def first_line(context: str, server_version: str, captured_at: str) -> str:
    return (f"{WARNING} Captured from kube context {context!r} (server {server_version}) "
            f"at {captured_at}.")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_name(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in s)


class Writer:
    """Writes a bundle: files 0600 in directories 0700, recorded with their sha256."""

    def __init__(self, out: Path):
        self.out = Path(out)
        if self.out.exists() and any(self.out.iterdir()):
            raise BundleError(f"{self.out} exists and is not empty: capture into a new directory")
        old = os.umask(0o077)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        finally:
            os.umask(old)
        os.chmod(self.out, 0o700)
        self.files: dict[str, str] = {}

    def write(self, rel: str, data: Any) -> None:
        raw = (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()
        p = self.out / rel
        for d in reversed([q for q in p.relative_to(self.out).parents if str(q) != "."]):
            full = self.out / d
            if not full.exists():
                full.mkdir(mode=0o700)
                os.chmod(full, 0o700)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        self.files[rel] = sha256(raw)

    def finish(self, header: str, index: dict[str, Any]) -> Path:
        index = {**index, "format": FORMAT, "files": dict(sorted(self.files.items()))}
        text = header + "\n" + yaml.safe_dump(index, sort_keys=False)
        p = self.out / INDEX
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return p


@dataclass
class Revision:
    secret: dict[str, Any]  # name, namespace, type, labels, data.release (as the API served it)
    record: dict[str, Any]  # the decoded release JSON
    path: str

    @property
    def name(self) -> str:
        return self.record["name"]

    @property
    def revision(self) -> int:
        return int(self.record["version"])

    @property
    def status(self) -> str:
        return (self.record.get("info") or {}).get("status", "unknown")

    @property
    def storage_namespace(self) -> str:
        return self.secret["namespace"]

    @property
    def namespace(self) -> str:
        return self.record.get("namespace") or self.storage_namespace


@dataclass
class Release:
    name: str
    storage_namespace: str
    revisions: list[Revision]  # sorted by revision
    helm: dict[str, Any] = field(default_factory=dict)  # what helm printed on the source

    @property
    def key(self) -> str:
        return f"{self.storage_namespace}/{self.name}"

    @property
    def latest(self) -> Revision:
        return self.revisions[-1]

    @property
    def namespace(self) -> str:
        return self.latest.namespace


@dataclass
class Bundle:
    path: Path
    index: dict[str, Any]
    releases: list[Release]
    applied: list[dict[str, Any]]  # {"id", "lastApplied"}
    cluster: dict[str, list[dict[str, Any]]]  # kind -> objects

    @property
    def context(self) -> str:
        return self.index["source"]["context"]

    @property
    def namespaces(self) -> list[str] | None:
        return self.index["scope"].get("namespaces")


def _read_json(path: Path, rel: str) -> Any:
    try:
        return json.loads((path / rel).read_text())
    except ValueError as e:
        raise BundleError(f"bundle {path}: {rel} is not valid JSON ({e})") from e


def read(path: Path | str) -> Bundle:
    """Read and verify a bundle (sha256 of every file, nothing missing, nothing extra, every
    release record decodable). Raises BundleError naming what is wrong."""
    path = Path(path)
    idx_path = path / INDEX
    if not idx_path.is_file():
        raise BundleError(f"{path} is not a capture bundle: no {INDEX} (was the capture "
                          "interrupted, or is this the wrong directory?)")
    text = idx_path.read_text()
    if not text.startswith(WARNING):
        raise BundleError(f"{idx_path}: its first line is not the capture warning: not a bundle "
                          "written by `handover capture`, or hand-edited")
    try:
        index = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BundleError(f"{idx_path} is not valid YAML ({e}): truncated or hand-edited") from e
    if not isinstance(index, dict) or index.get("format") != FORMAT or \
            not isinstance(index.get("files"), dict) or "source" not in index or \
            not index.get("complete"):
        raise BundleError(f"{idx_path}: not a complete {FORMAT} index (truncated or hand-edited)")
    files: dict[str, str] = index["files"]
    problems = []
    for rel, digest in files.items():
        f = path / rel
        if not f.is_file():
            problems.append(f"{rel}: listed in the index but missing (truncated bundle)")
        elif sha256(f.read_bytes()) != digest:
            problems.append(f"{rel}: its sha256 is not the one in the index (the file was "
                            "changed after the capture, or truncated)")
    present = {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} - {INDEX}
    for rel in sorted(present - set(files)):
        problems.append(f"{rel}: not listed in the index (added after the capture)")
    if problems:
        raise BundleError(f"bundle {path} is not as captured:\n" +
                          "\n".join(f"  - {p}" for p in problems))

    releases: dict[tuple[str, str], Release] = {}
    applied: list[Any] = []
    cluster: dict[str, list[Any]] = {}
    for rel in sorted(files):
        data = _read_json(path, rel)
        top = rel.split("/", 1)[0]
        if top == "releases":
            try:
                record = helm_storage.decode_release(data["data"]["release"])
            except Exception as e:  # noqa: BLE001 - any decoding failure is a bad bundle
                raise BundleError(f"bundle {path}: {rel}: the release record does not decode "
                                  f"({type(e).__name__}: {e})") from e
            rev = Revision(secret=data, record=record, path=rel)
            key = (rev.storage_namespace, rev.name)
            releases.setdefault(key, Release(rev.name, rev.storage_namespace, [])) \
                .revisions.append(rev)
        elif top == "helm":
            pass
        elif top == "applied":
            applied.append(data)
        elif top == "cluster":
            cluster.setdefault(rel.split("/")[1], []).append(data)
    for r in releases.values():
        r.revisions.sort(key=lambda v: v.revision)
        helm_file = f"helm/{safe_name(r.storage_namespace)}/{safe_name(r.name)}.json"
        if helm_file in files:
            r.helm = _read_json(path, helm_file)
    for entry in index.get("releases") or []:
        key = (entry["storageNamespace"], entry["name"])
        if key not in releases:
            raise BundleError(f"bundle {path}: release {key[0]}/{key[1]} is in the index but "
                              "none of its revisions is in the bundle")
        have = [v.revision for v in releases[key].revisions]
        if have != list(entry["revisions"]):
            raise BundleError(f"bundle {path}: release {key[0]}/{key[1]}: the index lists "
                              f"revisions {entry['revisions']}, the bundle holds {have}")
    return Bundle(path, index, sorted(releases.values(), key=lambda r: r.key), applied, cluster)
