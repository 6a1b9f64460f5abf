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

A *seed file* (:func:`read_seed`; ``examples/homelab/seed.yaml``) is the hand-written subset of a
bundle that describes a cluster by how a person made it, read into the same :class:`Bundle`:

    apiVersion: flux-handover/v1
    kind: Seed
    applied: [PATH, ...]            kustomize directories (relative to the file) a person applied
                                    with client-side ``kubectl apply``: each object becomes an
                                    ``applied/`` entry, its last-applied configuration the object
    releases:                       Helm release records, only these fields of Helm's record:
      - name, namespace             the release (stored in its namespace, as ``helm install -n``)
        version: 1                  the revision (a seed holds one: ``helm install`` makes 1)
        info: {status: deployed}
        chart: {metadata: {name, version}}   the chart; its files come from the rehearsal chart
                                    repository (a repo file carries no chart), not the record
        config: {...}               the user-supplied values (``helm get values``)

Its releases carry no stored Secret (:attr:`Revision.stored` is False): the replay installs each
with real ``helm install`` from the rehearsal chart repository instead of writing its Secret.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from handover.core.errors import HandoverError
from handover.sources import helm_storage

INDEX = "index.yaml"
FORMAT = "flux-handover/capture-v1"
SEED_FORMAT = "flux-handover/seed-v1"  # a seed file read as a bundle (its index's format)
SEED_KIND = "Seed"
WARNING = (
    "# flux-handover capture bundle: it holds the Helm releases' values, which can include "
    "secrets (passwords, tokens): keep it as you keep those secrets."
)


class BundleError(HandoverError):
    """A bundle that cannot be used as it is (names the file and what is wrong)."""


def first_line(context: str, server_version: str, captured_at: str) -> str:
    return (
        f"{WARNING} Captured from kube context {context!r} (server {server_version}) "
        f"at {captured_at}."
    )


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
        return self.secret.get("namespace") or self.record["namespace"]

    @property
    def stored(self) -> bool:
        """As Helm stored it (a captured Secret); False for a seed file's record, which the replay
        installs with real helm."""
        return bool((self.secret.get("data") or {}).get("release"))

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
    def context(self) -> str | None:
        """The kube context it was captured from (None for a seed file)."""
        return self.index["source"].get("context")

    @property
    def is_seed(self) -> bool:
        return self.index.get("format") == SEED_FORMAT

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
    release record decodable), or a seed file (:func:`read_seed`). Raises BundleError naming what
    is wrong."""
    path = Path(path)
    if path.is_file():
        return read_seed(path)
    idx_path = path / INDEX
    if not idx_path.is_file():
        raise BundleError(
            f"{path} is not a capture bundle: no {INDEX} (was the capture "
            "interrupted, or is this the wrong directory?)"
        )
    text = idx_path.read_text()
    if not text.startswith(WARNING):
        raise BundleError(
            f"{idx_path}: its first line is not the capture warning: not a bundle "
            "written by `handover capture`, or hand-edited"
        )
    try:
        index = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BundleError(f"{idx_path} is not valid YAML ({e}): truncated or hand-edited") from e
    if (
        not isinstance(index, dict)
        or index.get("format") != FORMAT
        or not isinstance(index.get("files"), dict)
        or "source" not in index
        or not index.get("complete")
    ):
        raise BundleError(f"{idx_path}: not a complete {FORMAT} index (truncated or hand-edited)")
    files: dict[str, str] = index["files"]
    problems = []
    for rel, digest in files.items():
        f = path / rel
        if not f.is_file():
            problems.append(f"{rel}: listed in the index but missing (truncated bundle)")
        elif sha256(f.read_bytes()) != digest:
            problems.append(
                f"{rel}: its sha256 is not the one in the index (the file was "
                "changed after the capture, or truncated)"
            )
    present = {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} - {INDEX}
    for rel in sorted(present - set(files)):
        problems.append(f"{rel}: not listed in the index (added after the capture)")
    if problems:
        raise BundleError(
            f"bundle {path} is not as captured:\n" + "\n".join(f"  - {p}" for p in problems)
        )

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
                raise BundleError(
                    f"bundle {path}: {rel}: the release record does not decode "
                    f"({type(e).__name__}: {e})"
                ) from e
            rev = Revision(secret=data, record=record, path=rel)
            key = (rev.storage_namespace, rev.name)
            releases.setdefault(key, Release(rev.name, rev.storage_namespace, [])).revisions.append(
                rev
            )
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
            raise BundleError(
                f"bundle {path}: release {key[0]}/{key[1]} is in the index but "
                "none of its revisions is in the bundle"
            )
        have = [v.revision for v in releases[key].revisions]
        if have != list(entry["revisions"]):
            raise BundleError(
                f"bundle {path}: release {key[0]}/{key[1]}: the index lists "
                f"revisions {entry['revisions']}, the bundle holds {have}"
            )
    return Bundle(path, index, sorted(releases.values(), key=lambda r: r.key), applied, cluster)


# -- seed files ------------------------------------------------------------------------------------
def read_seed(path: Path | str) -> Bundle:
    """Read a seed file (module doc) as a :class:`Bundle` whose releases are not stored (installed
    by the replay with real helm) and whose ``applied`` entries are the objects of its kustomize
    directories. Raises BundleError naming the file and the entry when malformed."""
    from handover.sources import kustomize

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no seed file {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise BundleError(f"{path} is not valid YAML ({e})") from e
    if (
        not isinstance(data, dict)
        or data.get("kind") != SEED_KIND
        or not isinstance(data.get("releases", []), list)
        or not isinstance(data.get("applied", []), list)
    ):
        raise BundleError(
            f"{path}: not a seed file (kind: {SEED_KIND} with a releases list and an applied list)"
        )
    releases: dict[tuple[str, str], Release] = {}
    for i, r in enumerate(data.get("releases") or []):
        try:
            meta = r["chart"]["metadata"]
            chart = {"metadata": {"name": str(meta["name"]), "version": str(meta["version"])}}
            earlier = r.get("earlierRevisions") or []
            if not isinstance(earlier, list) or not all(isinstance(e, dict) for e in earlier):
                raise TypeError("earlierRevisions")
            # the install, each earlier upgrade, then the deployed revision: `helm install`
            # makes revision 1, each `helm upgrade` the next
            configs = [dict(e.get("config") or {}) for e in earlier] + [dict(r.get("config") or {})]
            latest = int(r.get("version", len(configs)))  # the replay checks 1, 2, .. n
            records = [
                {
                    "name": str(r["name"]),
                    "namespace": str(r["namespace"]),
                    "version": n + 1 if n + 1 < len(configs) else latest,
                    "info": {
                        "status": "superseded"
                        if n + 1 < len(configs)
                        else str((r.get("info") or {}).get("status", "deployed"))
                    },
                    "chart": chart,
                    "config": config,
                }
                for n, config in enumerate(configs)
            ]
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BundleError(
                f"{path}: releases[{i}] lacks {e} (needs name, namespace, "
                "chart.metadata.name/version, config; earlierRevisions is a "
                "list of {config: ...})"
            ) from e
        revs = [
            Revision(secret={}, record=rec, path=f"{path.name}:releases[{i}]") for rec in records
        ]
        key = (revs[-1].storage_namespace, revs[-1].name)
        if key in releases:
            raise BundleError(
                f"{path}: releases[{i}]: release {key[0]}/{key[1]} twice (a seed "
                "holds one entry per release; earlier upgrades go in its "
                "earlierRevisions)"
            )
        releases[key] = Release(revs[-1].name, revs[-1].storage_namespace, revs)
    applied = []
    for i, rel in enumerate(data.get("applied") or []):
        d = (path.parent / str(rel)).resolve()
        if not d.is_dir():
            raise BundleError(f"{path}: applied[{i}] {rel}: no such directory beside the seed file")
        try:
            objects = kustomize.build(d)
        except HandoverError as e:
            raise BundleError(f"{path}: applied[{i}] {rel}: {e}") from e
        for obj in objects:
            ns = (obj.get("metadata") or {}).get("namespace")
            applied.append({"id": kustomize.object_id(obj), "namespace": ns, "lastApplied": obj})
    charts = (path.parent / str(data.get("charts") or "charts")).resolve()
    served = set()
    for f in sorted(charts.glob("*/Chart.yaml")) if charts.is_dir() else []:
        meta = yaml.safe_load(f.read_text()) or {}
        served.add((str(meta.get("name")), str(meta.get("version"))))
    for r in releases.values():
        meta = r.latest.record["chart"]["metadata"]
        if (meta["name"], meta["version"]) not in served:
            raise BundleError(
                f"{path}: release {r.key} ({r.latest.path}) asks for chart "
                f"{meta['name']} {meta['version']}, which is not among the chart "
                f"sources {charts} (its `charts`): the rehearsal chart repository "
                "could not install it"
            )
    index = {
        "format": SEED_FORMAT,
        "source": {"seed": str(path.resolve())},
        "scope": {},
        "charts": str(charts),
    }
    # in the file's order: the order a person installed them in
    return Bundle(path, index, list(releases.values()), applied, {})
