"""``handover inventory init``: a draft ``migration.yaml`` from the GitOps repository and the live
cluster (read-only), for a person to review. Every guess is a comment in the file.

What comes from where:

- **entry points**: the Flux Kustomizations (``kustomize.toolkit.fluxcd.io``) of the cluster
  path (the directory that holds them, ``flux-system/`` excluded); ``gitops.sourcesPath``: the
  directory of the HelmRepositories;
- **helm** components: one per HelmRelease of the repository, matched to a live Helm release by
  helm-controller's *effective* release name and storage namespace (``spec.releaseName``, else
  ``<targetNamespace>-<name>``, else the name; ``spec.storageNamespace``, else the HelmRelease's
  namespace: helm-controller ``api/v2/helmrelease_types.go``). A HelmRelease whose effective
  name/namespace has no live release while a live release of its chart or name exists elsewhere
  is the second-release trap: written with the live release and a comment naming the trap,
  never matched silently;
- **manifests** components: one per repository directory holding workloads that live on the
  cluster as kubectl-applied objects (``kubectl.kubernetes.io/last-applied-configuration``);
- **storage**: the repository directory of the PersistentVolumes, with the PVs found both there
  and live;
- **workloads** and their selectors: the live Deployments / StatefulSets / DaemonSets (of the
  release's manifest, or of the directory) and their ``spec.selector.matchLabels``;
- **pvs** of a component: the volumes bound to the claims its pods mount;
- **health**: a live Service selecting the workload's pods, on the port that targets the pods'
  readiness probe, with the probe's path;
- **order and risk**: storage first, then stateless Helm controllers, then workloads, stateful
  (PersistentVolume-backed StatefulSets) last. Risk is a guess, always commented.

Nothing here writes to the cluster: it lists and gets.
"""

from __future__ import annotations

import io
import os
import subprocess
import textwrap
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from handover.core.errors import HandoverError
from handover.core.objects import group_of
from handover.flux import rules as flux
from handover.sources import helm_storage

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
SOURCE_KINDS = ("HelmRepository", "OCIRepository")
DEFAULT_FLUX_VERSION = "2.4.0"


class InitError(HandoverError):
    """The draft cannot be written (bad input: named in the message)."""


# -- the GitOps repository ----------------------------------------------------------------------
@dataclass(frozen=True)
class RepoObject:
    file: str  # relative to the repo root
    obj: dict[str, Any]

    @property
    def dir(self) -> str:
        return os.path.dirname(self.file)

    @property
    def kind(self) -> str:
        return self.obj.get("kind", "")

    @property
    def name(self) -> str:
        return (self.obj.get("metadata") or {}).get("name", "")

    @property
    def namespace(self) -> str | None:
        return (self.obj.get("metadata") or {}).get("namespace")

    @property
    def group(self) -> str:
        return group_of(self.obj.get("apiVersion", ""))


def scan_repo(root: Path) -> list[RepoObject]:
    """Every Kubernetes object in the repository's YAML files (kustomization.yaml files and
    unparsable files left out), in path order."""
    out: list[RepoObject] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(p.startswith(".") for p in rel.parts) or path.suffix not in (".yaml", ".yml"):
            continue
        if path.name in ("kustomization.yaml", "kustomization.yml"):
            continue
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            continue
        for d in docs:
            if isinstance(d, dict) and d.get("kind") and isinstance(d.get("metadata"), dict):
                out.append(RepoObject(str(rel), d))
    return out


def _git(repo: Path, *args: str) -> str | None:
    try:
        p = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30
        )
    except OSError:
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def _most_common(items: Iterable[str]) -> tuple[str | None, list[str]]:
    counts: dict[str, int] = {}
    for i in items:
        counts[i] = counts.get(i, 0) + 1
    if not counts:
        return None, []
    best = max(counts, key=lambda k: counts[k])
    return best, sorted(k for k in counts if k != best)


# -- the live cluster ---------------------------------------------------------------------------
class LiveCluster:
    """What init reads from a live cluster (lists and gets only)."""

    def __init__(self, kubeconfig: str | Path | None, context: str, kube: Any = None):
        if kube is None:
            from handover.core.kube import Kube

            kube = Kube(kubeconfig, context)
        self.kube = kube
        self.context = context
        self._cache: dict[tuple[str, str], list[dict]] = {}

    def releases(self) -> list[helm_storage.HelmReleaseRecord]:
        return helm_storage.list_releases(self.kube)

    def list(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        key = (api_version, kind)
        if key not in self._cache:
            self._cache[key] = self.kube.list(api_version, kind)
        return self._cache[key]

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> dict[str, Any] | None:
        for o in self.list(api_version, kind):
            m = o["metadata"]
            if m["name"] == name and m.get("namespace") == namespace:
                return o
        return None


class BundleCluster:
    """The same reads, from a bundle written by ``handover capture`` (``handover.capture.bundle``,
    read and verified there): Helm releases as stored, the workloads and Services of their
    latest manifests and of the kubectl-applied objects (their last-applied configuration),
    PersistentVolumes and claims. Pods are not captured: a component's PVs come from its
    workloads' claims."""

    pods_captured = False

    def __init__(self, path: Path):
        try:
            from handover.capture import bundle as capture_bundle
        except ImportError as e:
            raise InitError(
                f"--from-capture {path}: this installation has no capture bundle "
                f"reader (handover.capture): use --kube-context"
            ) from e
        self.bundle = capture_bundle.read(path)  # refuses a truncated or hand-edited bundle
        self.context = self.bundle.context
        self._objects: list[dict] | None = None

    def releases(self) -> list[helm_storage.HelmReleaseRecord]:
        out = []
        for r in self.bundle.releases:
            sec = r.latest.secret
            out.append(
                helm_storage.record_from_secret(
                    {
                        "metadata": {
                            "name": sec["name"],
                            "namespace": sec["namespace"],
                            "labels": sec.get("labels") or {},
                        },
                        "data": {"release": sec["data"]["release"]},
                    }
                )
            )
        return out

    def _all(self) -> list[dict]:
        if self._objects is None:
            objs: list[dict] = []
            for rec in self.releases():
                for doc in yaml.safe_load_all(rec.manifest or ""):
                    if isinstance(doc, dict) and doc.get("kind"):
                        doc.setdefault("metadata", {}).setdefault("namespace", rec.namespace)
                        objs.append(doc)
            for entry in self.bundle.applied:
                obj = dict(entry.get("lastApplied") or {})
                meta = obj.setdefault("metadata", {})
                if entry.get("namespace"):
                    meta.setdefault("namespace", entry["namespace"])
                meta.setdefault("annotations", {})[LAST_APPLIED] = "(captured)"
                objs.append(obj)
            for kind, items in self.bundle.cluster.items():
                objs += [dict(o, kind=o.get("kind") or kind) for o in items]
            self._objects = objs
        return self._objects

    def list(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        return [
            o
            for o in self._all()
            if o.get("kind") == kind
            and group_of(o.get("apiVersion", "v1")) == group_of(api_version)
        ]

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> dict[str, Any] | None:
        for o in self.list(api_version, kind):
            m = o.get("metadata") or {}
            if m.get("name") == name and m.get("namespace") == namespace:
                return o
        return None


def _meta(o: dict) -> dict:
    return o.get("metadata") or {}


def _selector_string(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# -- the draft ----------------------------------------------------------------------------------
@dataclass
class Draft:
    """One component of the draft, with the comments (guesses and warnings) that go with it."""

    name: str
    type: str
    path: str
    risk: str = "medium"
    namespaces: list[str] = field(default_factory=list)
    release: dict | None = None
    helm_release: dict | None = None
    workloads: list[dict] = field(default_factory=list)
    pvs: list[str] = field(default_factory=list)
    health: list[dict] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    stateful: bool = False

    def order_key(self) -> int:
        """The runbook's order of risk: storage, stateless controllers, workloads, stateful."""
        if self.type == "storage":
            return 0
        if self.stateful:
            return 3
        if self.type == "helm" and not self.pvs:
            return 1
        return 2


def _workload(live: LiveCluster, kind: str, name: str, ns: str, d: Draft) -> dict | None:
    obj = live.get("apps/v1", kind, name, ns)
    if obj is None:
        d.comments.append(
            f"WARNING: {kind} {ns}/{name} is in the repo/release but not on the "
            f"cluster: left out of workloads"
        )
        return None
    sel = (obj.get("spec") or {}).get("selector") or {}
    labels = sel.get("matchLabels") or {}
    if sel.get("matchExpressions"):
        d.comments.append(
            f"GUESS: {kind} {ns}/{name} also selects by matchExpressions, which a "
            f"label selector string cannot hold here: only its matchLabels are used"
        )
    if not labels:
        d.comments.append(f"WARNING: {kind} {ns}/{name} has no matchLabels: left out")
        return None
    return {
        "kind": kind,
        "name": name,
        "namespace": ns,
        "selector": _selector_string(labels),
        "_obj": obj,
    }


def _pods_of(live: LiveCluster, w: dict) -> list[dict]:
    sel = w["_obj"]["spec"]["selector"]["matchLabels"]
    return [
        p
        for p in live.list("v1", "Pod")
        if _meta(p).get("namespace") == w["namespace"]
        and _matches(sel, _meta(p).get("labels") or {})
    ]


def _claims_of(live: Any, w: dict) -> list[str]:
    """The claims a workload's pods mount: from the pods when the source has them, else from
    the pod template and (StatefulSet) the claim templates' <template>-<name>-<ordinal> claims."""
    if getattr(live, "pods_captured", True):
        pods = _pods_of(live, w)
        if pods:
            return [
                v["persistentVolumeClaim"]["claimName"]
                for p in pods
                for v in (p.get("spec") or {}).get("volumes") or []
                if (v.get("persistentVolumeClaim") or {}).get("claimName")
            ]
    spec = w["_obj"].get("spec") or {}
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in ((spec.get("template") or {}).get("spec") or {}).get("volumes") or []
        if (v.get("persistentVolumeClaim") or {}).get("claimName")
    ]
    for t in spec.get("volumeClaimTemplates") or []:
        prefix = f"{_meta(t).get('name')}-{w['name']}-"
        claims += [
            _meta(c)["name"]
            for c in live.list("v1", "PersistentVolumeClaim")
            if _meta(c).get("namespace") == w["namespace"]
            and _meta(c)["name"].startswith(prefix)
            and _meta(c)["name"][len(prefix) :].isdigit()
        ]
    return claims


def _pvs_of(live: LiveCluster, w: dict) -> list[str]:
    out = []
    for claim in _claims_of(live, w):
        pvc = live.get("v1", "PersistentVolumeClaim", claim, w["namespace"])
        name = ((pvc or {}).get("spec") or {}).get("volumeName")
        if name and name not in out:
            out.append(name)
    return out


def _probe_port(container: dict, port: Any) -> tuple[int | None, str | None]:
    """(number, name) of a probe's port in a container."""
    for p in container.get("ports") or []:
        if port in (p.get("name"), p.get("containerPort")):
            return p.get("containerPort"), p.get("name")
    return (port, None) if isinstance(port, int) else (None, port)


def _health(live: LiveCluster, w: dict, d: Draft) -> list[dict]:
    tmpl = (w["_obj"].get("spec") or {}).get("template") or {}
    pod_labels = _meta(tmpl).get("labels") or {}
    probes = []
    for c in (tmpl.get("spec") or {}).get("containers") or []:
        http = (c.get("readinessProbe") or {}).get("httpGet") or {}
        if http:
            num, name = _probe_port(c, http.get("port"))
            probes.append((num, name, http.get("path") or "/"))
    services = [
        s
        for s in live.list("v1", "Service")
        if _meta(s).get("namespace") == w["namespace"]
        and _matches((s.get("spec") or {}).get("selector") or {}, pod_labels)
    ]
    services.sort(
        key=lambda s: ((s.get("spec") or {}).get("clusterIP") == "None", _meta(s)["name"])
    )
    for svc in services:
        for sp in (svc.get("spec") or {}).get("ports") or []:
            if sp.get("protocol", "TCP") != "TCP":
                continue
            target = sp.get("targetPort", sp.get("port"))
            for num, name, path in probes:
                if target in (num, name) and target is not None:
                    return [
                        {
                            "service": _meta(svc)["name"],
                            "namespace": w["namespace"],
                            "port": sp["port"],
                            "path": path,
                        }
                    ]
    if services:
        svc = services[0]
        ports = (svc.get("spec") or {}).get("ports") or []
        if ports:
            d.comments.append(
                f"GUESS: health of {w['kind']} {w['name']}: Service {_meta(svc)['name']} port "
                f"{ports[0]['port']}, path / (no readiness probe on a port the Service targets)"
            )
            return [
                {
                    "service": _meta(svc)["name"],
                    "namespace": w["namespace"],
                    "port": ports[0]["port"],
                    "path": "/",
                }
            ]
    d.comments.append(
        f"no Service selects the pods of {w['kind']} {w['namespace']}/{w['name']}: no health check"
    )
    return []


def _fill_workloads(live: LiveCluster, d: Draft, refs: list[tuple[str, str, str]]) -> None:
    for kind, name, ns in refs:
        w = _workload(live, kind, name, ns, d)
        if w is None:
            continue
        d.workloads.append(w)
        for pv in _pvs_of(live, w):
            if pv not in d.pvs:
                d.pvs.append(pv)
        if kind == "StatefulSet" and _pvs_of(live, w):
            d.stateful = True
        for h in _health(live, w, d):
            if h not in d.health:
                d.health.append(h)


def _manifest_workloads(manifest: str, default_ns: str) -> list[tuple[str, str, str]]:
    out = []
    for doc in yaml.safe_load_all(manifest or ""):
        if (
            isinstance(doc, dict)
            and doc.get("kind") in WORKLOAD_KINDS
            and doc.get("apiVersion", "").startswith("apps/")
        ):
            m = doc.get("metadata") or {}
            out.append((doc["kind"], m.get("name", ""), m.get("namespace") or default_ns))
    return out


def _manifest_namespaces(manifest: str, default_ns: str) -> list[str]:
    nss = {default_ns}
    for doc in yaml.safe_load_all(manifest or ""):
        if isinstance(doc, dict):
            ns = (doc.get("metadata") or {}).get("namespace")
            if ns:
                nss.add(ns)
    return sorted(nss)


def _helm_components(
    objs: list[RepoObject], live: LiveCluster, top: list[str]
) -> tuple[list[Draft], set[tuple[str, str]]]:
    releases = live.releases()
    by_key = {(r.storage_namespace, r.name): r for r in releases}
    used: set[tuple[str, str]] = set()
    drafts = []
    for ro in objs:
        if ro.kind != "HelmRelease" or not ro.group.startswith("helm.toolkit.fluxcd.io"):
            continue
        hr = ro.obj
        hr_ns = ro.namespace or "default"
        name, storage = flux.helm_release_name(hr), flux.storage_namespace(hr)
        target = flux.target_namespace(hr)
        d = Draft(
            name=ro.name,
            type="helm",
            path=ro.dir,
            helm_release={"name": ro.name, "namespace": hr_ns},
        )
        rel = by_key.get((storage, name))
        if rel is None:
            chart = ((hr.get("spec") or {}).get("chart") or {}).get("spec", {}).get("chart")
            cands = [
                r
                for r in releases
                if (r.storage_namespace, r.name) not in used
                and (
                    r.name in (ro.name, name)
                    or (chart and r.chart_name == chart and r.namespace == target)
                )
            ]
            if not cands:
                d.comments.append(
                    f"WARNING: HelmRelease {hr_ns}/{ro.name} would manage release {name!r} "
                    f"stored in {storage!r}; there is no such release on the cluster and no "
                    f"candidate: Flux would INSTALL it (nothing to adopt). Left out of the "
                    f"inventory."
                )
                top.extend(d.comments)
                continue
            rel = cands[0]
            d.comments.append(
                f"TRAP (second release): HelmRelease {hr_ns}/{ro.name} resolves to release "
                f"{name!r} in storage namespace {storage!r} (helm-controller: spec.releaseName, "
                f"else <targetNamespace>-<name>, else the name; spec.storageNamespace, else the "
                f"HelmRelease's namespace), but the live release is {rel.name!r} in "
                f"{rel.storage_namespace!r}. As written, Flux installs a SECOND release over "
                f"the same objects. Set spec.releaseName: {rel.name} and put the HelmRelease in "
                f"(or set spec.storageNamespace:) {rel.storage_namespace}. Phase 1 fails until "
                f"then."
            )
        used.add((rel.storage_namespace, rel.name))
        if rel.status != "deployed":
            d.comments.append(
                f"WARNING: release {rel.storage_namespace}/{rel.name} is "
                f"{rel.status!r} (revision {rel.revision}), not deployed"
            )
        d.release = {"name": rel.name, "namespace": rel.storage_namespace}
        d.namespaces = _manifest_namespaces(rel.manifest, rel.namespace)
        _fill_workloads(live, d, _manifest_workloads(rel.manifest, rel.namespace))
        drafts.append(d)
    for (ns, name), r in sorted(by_key.items()):
        if (ns, name) not in used:
            top.append(
                f"live Helm release {ns}/{name} (chart {r.chart_name} "
                f"{r.chart_version}) has no HelmRelease in the repo: not in this "
                f"inventory"
            )
    return drafts, used


def _manifests_components(
    objs: list[RepoObject], live: LiveCluster, helm_dirs: set[str], top: list[str]
) -> list[Draft]:
    by_dir: dict[str, list[RepoObject]] = {}
    for ro in objs:
        if ro.kind in WORKLOAD_KINDS and ro.group.startswith("apps") and ro.dir not in helm_dirs:
            by_dir.setdefault(ro.dir, []).append(ro)
    drafts = []
    for dirname, workloads in by_dir.items():
        d = Draft(name=os.path.basename(dirname) or "root", type="manifests", path=dirname)
        refs = []
        for ro in workloads:
            ns = ro.namespace or "default"
            obj = live.get("apps/v1", ro.kind, ro.name, ns)
            if obj is None:
                d.comments.append(
                    f"WARNING: {ro.kind} {ns}/{ro.name} ({ro.file}) is not on the "
                    f"cluster: Flux would create it"
                )
                continue
            if LAST_APPLIED not in (_meta(obj).get("annotations") or {}):
                d.comments.append(
                    f"GUESS: {ro.kind} {ns}/{ro.name} has no last-applied-"
                    f"configuration: not made by kubectl apply (helm? a "
                    f"controller?); taken as a manifests workload anyway"
                )
            refs.append((ro.kind, ro.name, ns))
        if not refs:
            top.extend(d.comments)
            continue
        nss = {ro.namespace for ro in objs if ro.dir == dirname and ro.namespace}
        nss |= {ro.name for ro in objs if ro.dir == dirname and ro.kind == "Namespace"}
        nss |= {ns for _, _, ns in refs}
        d.namespaces = sorted(nss)
        _fill_workloads(live, d, refs)
        drafts.append(d)
    return drafts


def _storage_components(objs: list[RepoObject], live: LiveCluster, top: list[str]) -> list[Draft]:
    live_pvs = {_meta(p)["name"]: p for p in live.list("v1", "PersistentVolume")}
    by_dir: dict[str, list[str]] = {}
    for ro in objs:
        if ro.kind == "PersistentVolume" and ro.obj.get("apiVersion") == "v1":
            by_dir.setdefault(ro.dir, []).append(ro.name)
    drafts = []
    for dirname, names in by_dir.items():
        d = Draft(
            name="storage" if len(by_dir) == 1 else f"storage-{os.path.basename(dirname)}",
            type="storage",
            path=dirname,
            risk="low",
        )
        for n in names:
            pv = live_pvs.get(n)
            if pv is None:
                d.comments.append(
                    f"WARNING: PersistentVolume {n} is in {dirname} but not on "
                    f"the cluster: left out of pvs"
                )
                continue
            policy = (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy")
            if policy != "Retain":
                d.comments.append(
                    f"WARNING: PersistentVolume {n} has reclaim policy {policy}: "
                    f"phase 1 refuses it until it is Retain"
                )
            d.pvs.append(n)
        if d.pvs:
            drafts.append(d)
        else:
            top.extend(d.comments)
    in_repo = {n for names in by_dir.values() for n in names}
    for n in sorted(set(live_pvs) - in_repo):
        top.append(f"live PersistentVolume {n} is not in the repo: not in this inventory")
    return drafts


def _risk(d: Draft) -> tuple[str, str]:
    if d.type == "storage":
        return "low", "storage: PersistentVolumes only (no pods)"
    if d.stateful:
        return "high", "a StatefulSet on PersistentVolumes: its data is at stake"
    if d.type == "helm" and not d.pvs:
        return "low", "a Helm release without PersistentVolumes (a stateless controller)"
    return "medium", (
        "a workload with PersistentVolumes"
        if d.pvs
        else "a kubectl-applied workload without PersistentVolumes"
    )


def build(gitops: Path, live: LiveCluster) -> tuple[dict, list[Draft], list[str]]:
    """The draft inventory as plain data, its components (with comments), and the comments that
    belong at the top of the file."""
    root = Path(gitops).expanduser().absolute()
    if not root.is_dir():
        raise InitError(f"--gitops {gitops}: not a directory")
    objs = scan_repo(root)
    top: list[str] = []
    ks = [
        ro
        for ro in objs
        if ro.kind == "Kustomization"
        and ro.group.startswith("kustomize.toolkit.fluxcd.io")
        and "flux-system" not in Path(ro.file).parts
        and ro.name != "flux-system"
    ]
    if not ks:
        raise InitError(
            f"--gitops {gitops}: no Flux Kustomization (kustomize.toolkit.fluxcd.io)"
            f" in the repository: there is no cluster path to hand over to"
        )
    cluster_path, others = _most_common(ro.dir for ro in ks)
    if others:
        top.append(
            f"GUESS: cluster path {cluster_path} (most Flux Kustomizations); also found "
            f"in {', '.join(others)}"
        )
    entry = [ro for ro in ks if ro.dir == cluster_path]
    sources, more = _most_common(
        ro.dir
        for ro in objs
        if ro.kind in SOURCE_KINDS and ro.group.startswith("source.toolkit.fluxcd.io")
    )
    helm, _ = _helm_components(objs, live, top)
    helm_dirs = {d.path for d in helm}
    manifests = _manifests_components(objs, live, helm_dirs, top)
    storage = _storage_components(objs, live, top)
    components = storage + helm + manifests
    for d in components:
        d.risk, why = _risk(d)
        d.comments.insert(0, f"GUESS: risk {d.risk}: {why}")
    components.sort(key=Draft.order_key)  # stable: repo order within a group
    names = [d.name for d in components]
    for d in components:
        if names.count(d.name) > 1:
            d.comments.append(f"GUESS: renamed from {d.name} (two components had that name)")
            d.name = f"{d.name}-{d.type}"
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD") or "main"
    url = _git(root, "remote", "get-url", "origin")
    data = {
        "cluster": {
            "name": os.path.basename(cluster_path or "") or live.context,
            "context": live.context,
            "fluxVersion": DEFAULT_FLUX_VERSION,
            "fluxNamespace": "flux-system",
        },
        "gitops": {
            "path": str(root),
            "remote": "origin",
            "branch": branch,
            **({"url": url} if url else {}),
            "clusterPath": cluster_path,
            **({"sourcesPath": sources} if sources else {}),
            "entrypoints": [{"file": ro.file, "name": ro.name} for ro in entry],
        },
        "backups": {"path": "./backups"},
        "timeouts": {"ready": 300},
    }
    if more:
        top.append(f"GUESS: sourcesPath {sources}; HelmRepositories also in {', '.join(more)}")
    return data, components, top


# -- writing ------------------------------------------------------------------------------------
def _flow(d: dict) -> CommentedMap:
    m = CommentedMap((k, v) for k, v in d.items() if not k.startswith("_"))
    m.fa.set_flow_style()
    return m


def _component_map(d: Draft) -> CommentedMap:
    m = CommentedMap()
    m["name"] = d.name
    m["type"] = d.type
    m["risk"] = d.risk
    m["path"] = d.path
    if d.type != "storage":
        m["namespaces"] = _flow_seq(d.namespaces)
    if d.release:
        m["release"] = _flow(d.release)
        m["helmRelease"] = _flow(d.helm_release or {})
    if d.workloads:
        m["workloads"] = CommentedSeq(_flow(w) for w in d.workloads)
    if d.pvs:
        m["pvs"] = _flow_seq(d.pvs)
    if d.health:
        m["health"] = CommentedSeq(_flow(h) for h in d.health)
    return m


def _flow_seq(items: list) -> CommentedSeq:
    s = CommentedSeq(items)
    s.fa.set_flow_style()
    return s


def _wrap(comments: list[str], width: int) -> list[str]:
    out = []
    for c in comments:
        out += textwrap.wrap(c, width, subsequent_indent="  ") or [""]
    return out


def render(data: dict, components: list[Draft], top: list[str], source: str, out: Path) -> str:
    """The draft as YAML text with its comments (ruamel.yaml)."""
    doc = CommentedMap()
    doc["apiVersion"] = "flux-handover/v1"
    doc["kind"] = "Migration"
    cluster = CommentedMap(data["cluster"])
    cluster.yaml_add_eol_comment("GUESS: from the cluster path's name", "name")
    cluster.yaml_add_eol_comment(
        "GUESS: the Flux version you will bootstrap (sets the minimum Kubernetes version)",
        "fluxVersion",
    )
    doc["cluster"] = cluster
    g = dict(data["gitops"])
    entry = g.pop("entrypoints")
    gm = CommentedMap(g)
    rel = os.path.relpath(g["path"], out.parent.absolute())
    gm["path"] = rel
    gm.yaml_add_eol_comment(f"the repository given as --gitops ({g['path']})", "path")
    gm["entrypoints"] = CommentedSeq(_flow(e) for e in entry)
    gm.yaml_add_eol_comment("the Flux Kustomizations of the cluster path", "entrypoints")
    doc["gitops"] = gm
    bm = CommentedMap(data["backups"])
    bm.yaml_add_eol_comment(
        "GUESS: backups, the journal and the migration state (files 0600)", "path"
    )
    doc["backups"] = bm
    doc["timeouts"] = CommentedMap(data["timeouts"])
    comps = CommentedSeq()
    for i, d in enumerate(components):
        comps.append(_component_map(d))
        if d.comments:
            comps.yaml_set_comment_before_after_key(
                i, before="\n".join(_wrap(d.comments, 94)), indent=2
            )
    doc["components"] = comps
    doc.yaml_set_comment_before_after_key(
        "components",
        before="in handover order: storage first, stateless controllers, then "
        "workloads, stateful last (GUESS: review the order)",
    )
    head = [
        f"Draft written by `handover inventory init` from {source}",
        f"at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}. Review every GUESS,",
        "WARNING and TRAP comment, then: handover inventory check <this file>.",
        "Reference for every key: docs/inventory.md.",
    ]
    head += _wrap(top, 96)
    doc.yaml_set_start_comment("\n".join(head))
    y = YAML()
    y.width = 100
    y.indent(mapping=2, sequence=4, offset=2)
    buf = io.StringIO()
    y.dump(doc, buf)
    return buf.getvalue()


def init(
    gitops: Path,
    out: Path,
    *,
    kube_context: str | None = None,
    kubeconfig: Path | None = None,
    from_capture: Path | None = None,
) -> tuple[Path, list]:
    """Write the draft inventory to ``out`` (validated first); returns (path, components)."""
    from handover.core import inventory

    live: Any
    if from_capture is not None:
        if kube_context:
            raise InitError("give --kube-context or --from-capture, not both")
        live = BundleCluster(Path(from_capture))
        source = f"{gitops} and the capture {from_capture} (context {live.context})"
    elif kube_context:
        live = LiveCluster(kubeconfig, kube_context)
        source = f"{gitops} and context {kube_context}"
    else:
        raise InitError(
            "inventory init needs --kube-context (the live cluster, read-only) or "
            "--from-capture BUNDLE"
        )
    data, components, top = build(gitops, live)
    if not components:
        raise InitError(
            f"no component found: none of the repository's HelmReleases, workloads "
            f"or PersistentVolumes in {gitops} matches {source}"
        )
    if from_capture is not None:
        top.insert(
            0,
            "from a capture: pods are not captured, so each component's pvs come "
            "from its workloads' claims",
        )
    text = render(data, components, top, source, Path(out))
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    try:
        inventory.load(tmp)  # never leave a draft that `inventory check` refuses
    except inventory.InventoryError:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    return out, components
