"""The migration inventory (``migration.yaml``): one cluster's migration, described and validated.

Every problem in the file is reported at once, each with its key path
(``components[3].release: required``), before anything touches a cluster.

Relative paths in the file (``gitops.path``, ``backups.path``) are relative to the file itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from handover.core.errors import HandoverError

COMPONENT_TYPES = ("helm", "manifests", "storage")
RISKS = ("low", "medium", "high")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
FLUX_VERSION = re.compile(r"^v?(\d+)\.(\d+)(\.\d+)?$")
# valid `flux install --components-extra` values
FLUX_EXTRA_COMPONENTS = ("image-reflector-controller", "image-automation-controller")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


class InventoryError(HandoverError):
    """The inventory is invalid; ``problems`` lists every problem with its key path."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid inventory {source}: {len(problems)} problem(s)\n{lines}")


@dataclass(frozen=True)
class ObjectRef:
    name: str
    namespace: str


@dataclass(frozen=True)
class Workload:
    kind: str
    name: str
    namespace: str
    selector: str  # label selector of the workload's pods, e.g. "app.kubernetes.io/name=loki"


@dataclass(frozen=True)
class HealthCheck:
    service: str
    namespace: str
    port: int
    path: str = "/"
    expect: int = 200


@dataclass(frozen=True)
class Component:
    name: str
    type: str
    risk: str
    path: str  # repo path that a temporary Kustomization hands over
    namespaces: tuple[str, ...] = ()
    release: ObjectRef | None = None  # helm: the Helm CLI release
    helm_release: ObjectRef | None = None  # helm: the HelmRelease in the GitOps repo
    workloads: tuple[Workload, ...] = ()
    pvs: tuple[str, ...] = ()
    health: tuple[HealthCheck, ...] = ()
    ready_timeout: int | None = None

    @property
    def kustomization_name(self) -> str:
        """Name of the temporary Kustomization that hands this component over."""
        return f"handover-{self.name}"


@dataclass(frozen=True)
class EntryPoint:
    file: str  # relative to the GitOps repo root, e.g. clusters/homelab/infrastructure.yaml
    name: str  # the Kustomization's metadata.name, e.g. infrastructure


@dataclass(frozen=True)
class GitOps:
    path: Path  # local checkout of the GitOps repo (absolute)
    branch: str
    remote: str = "origin"
    url: str | None = None
    cluster_path: str = ""  # e.g. clusters/homelab
    sources_path: str | None = None  # e.g. infrastructure/sources (HelmRepositories)
    entrypoints: tuple[EntryPoint, ...] = ()


@dataclass(frozen=True)
class NodeAccess:
    """How to reach a node's filesystem for node checks (pytest-testinfra host spec)."""

    name: str  # the Kubernetes node name, or "*" for every node
    host: str  # testinfra host spec: local://, ssh://user@node, paramiko://...
    root: str = "/"  # path prefix of the node's filesystem (the rehearsal's node has its own)


@dataclass(frozen=True)
class Cluster:
    name: str
    context: str
    flux_version: str
    flux_namespace: str = "flux-system"
    # Set only in the rehearsal copy of an inventory (written by `handover rehearsal up`): the
    # rehearsal cluster's state directory, where Flux is played by the stand-in controllers.
    # Read by handover.target.of only (it picks the Target; nothing else branches on it).
    rehearsal_state_dir: Path | None = None
    nodes: tuple[NodeAccess, ...] = ()
    # `flux bootstrap/install --components-extra` (e.g. the image automation controllers)
    flux_components_extra: tuple[str, ...] = ()

    def node_access(self, node: str) -> NodeAccess | None:
        for n in self.nodes:
            if n.name == node:
                return n
        for n in self.nodes:
            if n.name == "*":
                return n
        return None


@dataclass(frozen=True)
class Inventory:
    source: Path
    cluster: Cluster
    gitops: GitOps
    backups: Path
    components: tuple[Component, ...]
    ready_timeout: int = 300
    # phase-1 checks the operator opted out of by name (gate.skipChecks; handover.gate.optouts)
    gate_skip_checks: tuple[str, ...] = ()

    def component(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(f"no component named {name!r} in {self.source}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, indent=2)


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, path: str, msg: str) -> None:
        self.problems.append(f"{path}: {msg}")

    def mapping(self, data: Any, path: str, required: bool = True) -> dict | None:
        if data is None:
            if required:
                self.problem(path, "required")
            return None
        if not isinstance(data, dict):
            self.problem(path, f"must be a mapping, got {type(data).__name__}")
            return None
        return data

    def string(
        self,
        data: dict,
        key: str,
        path: str,
        required: bool = True,
        pattern: re.Pattern | None = None,
        choices: tuple | None = None,
        default: str | None = None,
    ) -> str | None:
        p = f"{path}.{key}" if path else key
        if key not in data or data[key] is None or data[key] == "":
            if required:
                self.problem(p, "required")
            return default
        v = data[key]
        if not isinstance(v, str):
            self.problem(p, f"must be a string, got {type(v).__name__} {v!r}")
            return default
        if choices and v not in choices:
            self.problem(p, f"must be one of {', '.join(choices)}, got {v!r}")
            return default
        if pattern and not pattern.match(v):
            self.problem(p, f"{v!r} is not a valid name (lowercase letters, digits, '-')")
            return default
        return v

    def integer(
        self,
        data: dict,
        key: str,
        path: str,
        required: bool = True,
        minimum: int = 1,
        maximum: int | None = None,
        default: int | None = None,
    ) -> int | None:
        p = f"{path}.{key}" if path else key
        if key not in data or data[key] is None:
            if required:
                self.problem(p, "required")
            return default
        v = data[key]
        if isinstance(v, bool) or not isinstance(v, int):
            self.problem(p, f"must be an integer, got {v!r}")
            return default
        if v < minimum or (maximum is not None and v > maximum):
            rng = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            self.problem(p, f"must be {rng}, got {v}")
            return default
        return v

    def seq(self, data: dict, key: str, path: str, required: bool = False) -> list:
        p = f"{path}.{key}"
        v = data.get(key)
        if v is None:
            if required:
                self.problem(p, "required")
            return []
        if not isinstance(v, list):
            self.problem(p, f"must be a list, got {type(v).__name__}")
            return []
        return v

    def unknown(self, data: dict, allowed: set[str], path: str) -> None:
        for k in data:
            if k not in allowed:
                where = f"{path}.{k}" if path else str(k)
                self.problem(where, f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _ref(ck: _Checker, data: Any, path: str) -> ObjectRef | None:
    m = ck.mapping(data, path)
    if m is None:
        return None
    ck.unknown(m, {"name", "namespace"}, path)
    name = ck.string(m, "name", path, pattern=DNS_SUBDOMAIN)
    ns = ck.string(m, "namespace", path, pattern=DNS_LABEL)
    return ObjectRef(name, ns) if name and ns else None


def _component(ck: _Checker, data: Any, path: str) -> Component | None:
    m = ck.mapping(data, path)
    if m is None:
        return None
    ck.unknown(
        m,
        {
            "name",
            "type",
            "risk",
            "path",
            "namespaces",
            "release",
            "helmRelease",
            "workloads",
            "pvs",
            "health",
            "readyTimeout",
        },
        path,
    )
    name = ck.string(m, "name", path, pattern=DNS_LABEL)
    ctype = ck.string(m, "type", path, choices=COMPONENT_TYPES)
    risk = ck.string(m, "risk", path, choices=RISKS)
    repo_path = ck.string(m, "path", path)
    if repo_path and (repo_path.startswith("/") or ".." in Path(repo_path).parts):
        ck.problem(f"{path}.path", f"must be relative to the GitOps repo root, got {repo_path!r}")
    namespaces = []
    for i, ns in enumerate(ck.seq(m, "namespaces", path, required=ctype in ("helm", "manifests"))):
        if not isinstance(ns, str) or not DNS_LABEL.match(ns):
            ck.problem(f"{path}.namespaces[{i}]", f"{ns!r} is not a valid namespace name")
        else:
            namespaces.append(ns)
    release = helm_release = None
    if ctype == "helm":
        release = _ref(ck, m.get("release"), f"{path}.release")
        helm_release = _ref(ck, m.get("helmRelease"), f"{path}.helmRelease")
    else:
        for key in ("release", "helmRelease"):
            if key in m:
                ck.problem(f"{path}.{key}", f"only for type helm, this component is {ctype!r}")
    workloads = []
    for i, w in enumerate(ck.seq(m, "workloads", path, required=ctype in ("helm", "manifests"))):
        wp = f"{path}.workloads[{i}]"
        wm = ck.mapping(w, wp)
        if wm is None:
            continue
        ck.unknown(wm, {"kind", "name", "namespace", "selector"}, wp)
        kind = ck.string(wm, "kind", wp, choices=WORKLOAD_KINDS)
        wname = ck.string(wm, "name", wp, pattern=DNS_SUBDOMAIN)
        wns = ck.string(wm, "namespace", wp, pattern=DNS_LABEL)
        sel = ck.string(wm, "selector", wp)
        if wns and namespaces and wns not in namespaces:
            ck.problem(
                f"{wp}.namespace", f"{wns!r} is not one of the component's namespaces {namespaces}"
            )
        if kind and wname and wns and sel:
            workloads.append(Workload(kind, wname, wns, sel))
    if (
        ctype in ("helm", "manifests")
        and "workloads" in m
        and not workloads
        and not ck.seq(m, "workloads", path)
    ):
        ck.problem(f"{path}.workloads", "must name at least one workload")
    pvs = []
    for i, pv in enumerate(ck.seq(m, "pvs", path, required=ctype == "storage")):
        if not isinstance(pv, str) or not DNS_SUBDOMAIN.match(pv):
            ck.problem(f"{path}.pvs[{i}]", f"{pv!r} is not a valid PersistentVolume name")
        else:
            pvs.append(pv)
    health = []
    for i, h in enumerate(ck.seq(m, "health", path)):
        hp = f"{path}.health[{i}]"
        hm = ck.mapping(h, hp)
        if hm is None:
            continue
        ck.unknown(hm, {"service", "namespace", "port", "path", "expect"}, hp)
        svc = ck.string(hm, "service", hp, pattern=DNS_LABEL)
        hns = ck.string(hm, "namespace", hp, pattern=DNS_LABEL)
        port = ck.integer(hm, "port", hp, maximum=65535)
        hpath = ck.string(hm, "path", hp, required=False, default="/")
        if hpath and not hpath.startswith("/"):
            ck.problem(f"{hp}.path", f"must start with '/', got {hpath!r}")
        expect = ck.integer(hm, "expect", hp, required=False, minimum=100, maximum=599, default=200)
        if svc and hns and port:
            health.append(HealthCheck(svc, hns, port, hpath or "/", expect or 200))
    timeout = ck.integer(m, "readyTimeout", path, required=False)
    if not (name and ctype and risk and repo_path):
        return None
    return Component(
        name=name,
        type=ctype,
        risk=risk,
        path=repo_path.rstrip("/"),
        namespaces=tuple(namespaces),
        release=release,
        helm_release=helm_release,
        workloads=tuple(workloads),
        pvs=tuple(pvs),
        health=tuple(health),
        ready_timeout=timeout,
    )


def parse(data: Any, source: Path) -> Inventory:
    """Validate a loaded inventory document; raise InventoryError listing every problem."""
    ck = _Checker()
    base = source.parent
    top = ck.mapping(data, "(document)")
    if top is None:
        raise InventoryError(str(source), ck.problems)
    ck.unknown(
        top,
        {"apiVersion", "kind", "cluster", "gitops", "backups", "timeouts", "components", "gate"},
        "",
    )
    if top.get("apiVersion") != "flux-handover/v1":
        ck.problem("apiVersion", f"must be flux-handover/v1, got {top.get('apiVersion')!r}")
    if top.get("kind") != "Migration":
        ck.problem("kind", f"must be Migration, got {top.get('kind')!r}")

    cluster = None
    cm = ck.mapping(top.get("cluster"), "cluster")
    if cm is not None:
        ck.unknown(
            cm,
            {
                "name",
                "context",
                "fluxVersion",
                "fluxNamespace",
                "rehearsalStateDir",
                "nodes",
                "fluxComponentsExtra",
            },
            "cluster",
        )
        extra = cm.get("fluxComponentsExtra") or []
        if not isinstance(extra, list) or not all(isinstance(x, str) for x in extra):
            ck.problem("cluster.fluxComponentsExtra", f"must be a list of names, got {extra!r}")
            extra = []
        for x in extra:
            if x not in FLUX_EXTRA_COMPONENTS:
                ck.problem(
                    "cluster.fluxComponentsExtra",
                    f"unknown component {x!r}; one of {', '.join(FLUX_EXTRA_COMPONENTS)}",
                )
        extra = tuple(x for x in extra if x in FLUX_EXTRA_COMPONENTS)
        cname = ck.string(cm, "name", "cluster", pattern=DNS_LABEL)
        ctx = ck.string(cm, "context", "cluster")
        fv = cm.get("fluxVersion")
        if fv is None:
            ck.problem("cluster.fluxVersion", "required")
        elif not FLUX_VERSION.match(str(fv)):
            ck.problem("cluster.fluxVersion", f"must look like 2.4 or 2.4.0, got {fv!r}")
            fv = None
        fns = ck.string(
            cm, "fluxNamespace", "cluster", required=False, pattern=DNS_LABEL, default="flux-system"
        )
        rdir = ck.string(cm, "rehearsalStateDir", "cluster", required=False)
        nodes = []
        for i, n in enumerate(ck.seq(cm, "nodes", "cluster")):
            np_ = f"cluster.nodes[{i}]"
            nm = ck.mapping(n, np_)
            if nm is None:
                continue
            ck.unknown(nm, {"name", "host", "root"}, np_)
            nname = ck.string(nm, "name", np_)
            nhost = ck.string(nm, "host", np_)
            nroot = ck.string(nm, "root", np_, required=False, default="/")
            if nhost and "://" not in nhost:
                ck.problem(
                    f"{np_}.host",
                    f"must be a testinfra host spec such as local:// or "
                    f"ssh://user@node, got {nhost!r}",
                )
                nhost = None
            if nroot and not nroot.startswith("/"):
                nroot = str((base / nroot).resolve())
            if nname and nhost:
                nodes.append(NodeAccess(nname, nhost, nroot or "/"))
        if cname and ctx and fv:
            cluster = Cluster(
                cname,
                ctx,
                str(fv).lstrip("v"),
                fns or "flux-system",
                (base / rdir).resolve() if rdir else None,
                tuple(nodes),
                extra,
            )

    gitops = None
    gm = ck.mapping(top.get("gitops"), "gitops")
    if gm is not None:
        ck.unknown(
            gm,
            {"path", "remote", "url", "branch", "clusterPath", "sourcesPath", "entrypoints"},
            "gitops",
        )
        gpath = ck.string(gm, "path", "gitops")
        branch = ck.string(gm, "branch", "gitops")
        remote = ck.string(gm, "remote", "gitops", required=False, default="origin")
        url = ck.string(gm, "url", "gitops", required=False)
        cpath = ck.string(gm, "clusterPath", "gitops", required=False, default="")
        spath = ck.string(gm, "sourcesPath", "gitops", required=False)
        entries = []
        for i, e in enumerate(ck.seq(gm, "entrypoints", "gitops", required=True)):
            ep = f"gitops.entrypoints[{i}]"
            em = ck.mapping(e, ep)
            if em is None:
                continue
            ck.unknown(em, {"file", "name"}, ep)
            f = ck.string(em, "file", ep)
            n = ck.string(em, "name", ep, pattern=DNS_SUBDOMAIN)
            if f and n:
                entries.append(EntryPoint(f, n))
        if "entrypoints" in gm and isinstance(gm["entrypoints"], list) and not gm["entrypoints"]:
            ck.problem("gitops.entrypoints", "must name at least one entry-point Kustomization")
        if gpath and branch:
            gitops = GitOps(
                path=(base / gpath).resolve(),
                branch=branch,
                remote=remote or "origin",
                url=url,
                cluster_path=cpath or "",
                sources_path=spath,
                entrypoints=tuple(entries),
            )

    backups = None
    bm = ck.mapping(top.get("backups"), "backups")
    if bm is not None:
        ck.unknown(bm, {"path"}, "backups")
        bpath = ck.string(bm, "path", "backups")
        if bpath:
            backups = (base / bpath).resolve()

    ready_timeout = 300
    tm = ck.mapping(top.get("timeouts"), "timeouts", required=False)
    if tm is not None:
        ck.unknown(tm, {"ready"}, "timeouts")
        ready_timeout = ck.integer(tm, "ready", "timeouts", required=False, default=300) or 300

    skip_checks: list[str] = []
    gm_ = ck.mapping(top.get("gate"), "gate", required=False)
    if gm_ is not None:
        from handover.gate.optouts import SKIPPABLE

        ck.unknown(gm_, {"skipChecks"}, "gate")
        for i, n in enumerate(ck.seq(gm_, "skipChecks", "gate")):
            if n not in SKIPPABLE:
                ck.problem(
                    f"gate.skipChecks[{i}]",
                    f"unknown check {n!r} (checks that may be "
                    f"skipped: {', '.join(sorted(SKIPPABLE))})",
                )
            else:
                skip_checks.append(n)

    components: list[Component] = []
    raw = top.get("components")
    if raw is None:
        ck.problem("components", "required")
    elif not isinstance(raw, list):
        ck.problem("components", f"must be a list, got {type(raw).__name__}")
    elif not raw:
        ck.problem("components", "must list at least one component")
    else:
        seen: dict[str, int] = {}
        for i, c in enumerate(raw):
            comp = _component(ck, c, f"components[{i}]")
            if comp is None:
                continue
            if comp.name in seen:
                ck.problem(
                    f"components[{i}].name",
                    f"duplicate name {comp.name!r} (also components[{seen[comp.name]}])",
                )
            seen[comp.name] = i
            components.append(comp)

    if ck.problems:
        raise InventoryError(str(source), ck.problems)
    assert cluster and gitops and backups
    return Inventory(
        source=source.resolve(),
        cluster=cluster,
        gitops=gitops,
        backups=backups,
        components=tuple(components),
        ready_timeout=ready_timeout,
        gate_skip_checks=tuple(skip_checks),
    )


def load(path: str | Path) -> Inventory:
    """Read and validate an inventory file."""
    p = Path(path)
    if not p.exists():
        raise InventoryError(
            str(p),
            [
                f"(file): not found: {p.resolve()} "
                "(pass --inventory PATH or create ./migration.yaml)"
            ],
        )
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise InventoryError(str(p), [f"(file): not valid YAML: {e}"]) from e
    return parse(data, p)
