"""Check 8: the migration state snapshot, MIGRATION_STATE.md and MIGRATION_STATE.json.

Built from the live cluster and the inventory before anything changes: date, cluster, Git branch
and commit, Helm releases (chart, version, revision, status), the YAML (kubectl-applied)
workloads, the migration order with risk, PersistentVolumes with their reclaim policy, and the
rollback plan per component. It is phase 1's only write, and only to local files.

No secrets: no Secret data and no Helm values are written at all (the release is named by chart,
version and revision, which is what a rollback needs); remote URLs lose their credentials.
``leaks()`` double-checks a written report against every Secret value in the covered namespaces
and every secret-looking Helm value.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from handover.core.inventory import Component, Inventory
from handover.core.kube import Kube
from handover.gate import git_preflight
from handover.sources import helm_storage

SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|api[-_]?key|private[-_]?key|credential", re.I)
MIN_LEAK_LEN = 6  # shorter values ("true", "admin") are too common to mean a leak


@dataclass
class ReleaseState:
    name: str
    namespace: str
    chart: str
    chart_version: str
    app_version: str | None
    revision: int
    status: str
    component: str | None  # the inventory component handing it over, or None


@dataclass
class WorkloadState:
    component: str
    kind: str
    namespace: str
    name: str
    exists: bool
    replicas: str  # "ready/desired"
    managed_by: str  # kubectl-apply | helm | field managers


@dataclass
class PVState:
    name: str
    reclaim_policy: str | None
    storage_class: str | None
    claim: str | None
    phase: str | None
    capacity: str | None
    in_inventory: bool
    exists: bool = True


@dataclass
class Step:
    order: int
    component: str
    type: str
    risk: str
    path: str
    kustomization: str
    rollback: list[str] = field(default_factory=list)


@dataclass
class MigrationState:
    date: str
    cluster: str
    context: str
    server_version: str
    flux_version: str
    gitops_path: str
    branch: str
    commit: str | None
    remote: str | None
    helm_releases: list[ReleaseState]
    workloads: list[WorkloadState]
    order: list[Step]
    pvs: list[PVState]
    # phase-1 checks opted out of by name (handover.gate.optouts): {"check", "source", "not_checked"}
    gate_opt_outs: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


def _replicas(obj: dict[str, Any]) -> str:
    st, spec = obj.get("status") or {}, obj.get("spec") or {}
    if obj.get("kind") == "DaemonSet":
        return f"{st.get('numberReady', 0)}/{st.get('desiredNumberScheduled', 0)}"
    return f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}"


def rollback_plan(inv: Inventory, comp: Component, release: ReleaseState | None) -> list[str]:
    b = inv.backups / comp.name
    if comp.type == "helm":
        hr = comp.helm_release
        assert hr is not None  # the inventory requires helmRelease for a helm component
        steps = [
            f"suspend HelmRelease {hr.namespace}/{hr.name} (spec.suspend: true) BEFORE "
            "deleting it: deleting an unsuspended HelmRelease uninstalls the release",
            f"delete the suspended HelmRelease (finalizer removed, release kept) and the "
            f"temporary Kustomization {comp.kustomization_name} (prune: false)",
        ]
        if release:
            steps.append(
                f"if the adoption upgrade changed anything: helm rollback {release.name} "
                f"{release.revision} -n {release.namespace} (revision {release.revision}"
                f" = chart {release.chart} {release.chart_version}, today's state)"
            )
        steps.append("never `helm uninstall` a release Flux has adopted")
    elif comp.type == "manifests":
        steps = [
            f"suspend and delete the temporary Kustomization {comp.kustomization_name} "
            "(prune: false, so its objects stay)",
            f"kubectl apply --server-side the objects backed up under {b}",
        ]
    else:
        steps = [
            f"suspend and delete the temporary Kustomization {comp.kustomization_name} "
            "(prune: false); PVs stay (reclaim policy Retain required)"
        ]
    return steps


def collect(inv: Inventory, kube: Kube, now: datetime | None = None) -> MigrationState:
    repo = inv.gitops.path
    major, minor, git_version = kube.server_version()
    release_of = {
        f"{c.release.namespace}/{c.release.name}": c.name for c in inv.components if c.release
    }
    releases = []
    for r in sorted(helm_storage.list_releases(kube), key=lambda r: (r.namespace, r.name)):
        releases.append(
            ReleaseState(
                r.name,
                r.namespace,
                r.chart_name,
                r.chart_version,
                r.app_version,
                r.revision,
                r.status,
                release_of.get(f"{r.storage_namespace}/{r.name}"),
            )
        )
    by_key = {(r.namespace, r.name): r for r in releases}
    workloads = []
    for c in inv.components:
        if c.type != "manifests":
            continue
        for w in c.workloads:
            live = kube.get("apps/v1", w.kind, w.name, w.namespace)
            mgr = "-"
            if live:
                meta = live.get("metadata") or {}
                if "kubectl.kubernetes.io/last-applied-configuration" in (
                    meta.get("annotations") or {}
                ):
                    mgr = "kubectl-apply"
                else:
                    mgr = (
                        ", ".join(
                            sorted({m.get("manager", "?") for m in meta.get("managedFields") or []})
                        )
                        or "-"
                    )
            workloads.append(
                WorkloadState(
                    c.name,
                    w.kind,
                    w.namespace,
                    w.name,
                    live is not None,
                    _replicas(live) if live else "0/0",
                    mgr,
                )
            )
    order = []
    for i, c in enumerate(inv.components, 1):
        rel = by_key.get((c.release.namespace, c.release.name)) if c.release else None
        order.append(
            Step(
                i, c.name, c.type, c.risk, c.path, c.kustomization_name, rollback_plan(inv, c, rel)
            )
        )
    wanted = {pv for c in inv.components for pv in c.pvs}
    pvs = []
    for pv in kube.list("v1", "PersistentVolume"):
        spec, st = pv.get("spec") or {}, pv.get("status") or {}
        ref = spec.get("claimRef") or {}
        name = pv["metadata"]["name"]
        pvs.append(
            PVState(
                name,
                spec.get("persistentVolumeReclaimPolicy"),
                spec.get("storageClassName"),
                f"{ref.get('namespace')}/{ref.get('name')}" if ref else None,
                st.get("phase"),
                (spec.get("capacity") or {}).get("storage"),
                name in wanted,
            )
        )
    for name in sorted(wanted - {p.name for p in pvs}):
        pvs.append(PVState(name, None, None, None, None, None, True, exists=False))
    pvs.sort(key=lambda p: p.name)
    return MigrationState(
        date=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        cluster=inv.cluster.name,
        context=kube.context,
        server_version=git_version,
        flux_version=inv.cluster.flux_version,
        gitops_path=str(repo),
        branch=inv.gitops.branch,
        commit=git_preflight.head_commit(repo),
        remote=git_preflight.remote_url(repo, inv.gitops.remote),
        helm_releases=releases,
        workloads=workloads,
        order=order,
        pvs=pvs,
    )


def _table(headers: list[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        out.append("| " + " | ".join("" if v is None else str(v) for v in r) + " |")
    return out


def to_markdown(s: MigrationState) -> str:
    L = [
        f"# Migration state: {s.cluster}",
        "",
        f"- Date: {s.date}",
        f"- Kube context: {s.context} (server {s.server_version})",
        f"- Target Flux: {s.flux_version}",
        f"- GitOps checkout: {s.gitops_path}",
        f"- Branch: {s.branch}",
        f"- Commit: {s.commit}",
        f"- Remote: {s.remote}",
        "",
    ]
    L += _gate_section(s)
    L += ["## Helm releases", ""]
    L += _table(
        [
            "release",
            "namespace",
            "chart",
            "chart version",
            "app version",
            "revision",
            "status",
            "component",
        ],
        [
            (
                r.name,
                r.namespace,
                r.chart,
                r.chart_version,
                r.app_version,
                r.revision,
                r.status,
                r.component or "(not in inventory)",
            )
            for r in s.helm_releases
        ],
    )
    L += ["", "## YAML workloads (kubectl-applied)", ""]
    L += _table(
        ["component", "kind", "namespace", "name", "exists", "ready", "managed by"],
        [
            (
                w.component,
                w.kind,
                w.namespace,
                w.name,
                "yes" if w.exists else "NO",
                w.replicas,
                w.managed_by,
            )
            for w in s.workloads
        ],
    )
    L += ["", "## Migration order", ""]
    L += _table(
        ["#", "component", "type", "risk", "path", "temporary Kustomization"],
        [(o.order, o.component, o.type, o.risk, o.path, o.kustomization) for o in s.order],
    )
    L += ["", "## PersistentVolumes", ""]
    L += _table(
        ["PV", "reclaim policy", "storage class", "claim", "phase", "capacity", "in inventory"],
        [
            (
                p.name,
                p.reclaim_policy or "(missing)",
                p.storage_class,
                p.claim,
                p.phase,
                p.capacity,
                "yes" if p.in_inventory else "no",
            )
            for p in s.pvs
        ],
    )
    L += ["", "## Rollback plan", ""]
    for o in s.order:
        L.append(f"### {o.order}. {o.component} ({o.type}, risk {o.risk})")
        L += [f"- {step}" for step in o.rollback] + [""]
    L += ["No Secret data and no Helm values are recorded here.", ""]
    return "\n".join(L)


def _gate_section(s: MigrationState) -> list[str]:
    L = ["## Gate checks skipped by opt-out (NOT checked)", ""]
    if not s.gate_opt_outs:
        return L + ["None: every gate check ran.", ""]
    L += _table(
        ["check", "opted out by", "not checked"],
        [(o["check"], o["source"], o["not_checked"]) for o in s.gate_opt_outs],
    )
    return L + [""]


def write(state: MigrationState, directory: Path) -> tuple[Path, Path]:
    from handover.core import redact

    md, js = directory / "MIGRATION_STATE.md", directory / "MIGRATION_STATE.json"
    redact.write_private(md, to_markdown(state))
    redact.write_private(js, state.to_json() + "\n")
    return md, js


def secret_looking_values(values: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, value) of Helm values whose key looks like a secret (password, token...)."""
    out = []
    if isinstance(values, dict):
        for k, v in values.items():
            p = f"{path}.{k}" if path else str(k)
            if isinstance(v, (str, int)) and not isinstance(v, bool) and SECRET_KEY.search(str(k)):
                out.append((p, str(v)))
            else:
                out.extend(secret_looking_values(v, p))
    elif isinstance(values, list):
        for i, v in enumerate(values):
            out.extend(secret_looking_values(v, f"{path}[{i}]"))
    return out


def sensitive_values(kube: Kube, namespaces: Iterable[str]) -> dict[str, str]:
    """value -> where it comes from, for every Secret value in these namespaces and every
    secret-looking value of the Helm releases stored there."""
    out: dict[str, str] = {}
    for ns in sorted(set(namespaces)):
        for s in kube.list("v1", "Secret", namespace=ns):
            if s.get("type") in (helm_storage.SECRET_TYPE, "kubernetes.io/service-account-token"):
                continue  # Helm storage is checked through its values below; SA tokens hold
                # the namespace name and the cluster CA, which are not secrets
            for k, v in (s.get("data") or {}).items():
                try:
                    val = base64.b64decode(v).decode()
                except (ValueError, UnicodeDecodeError):
                    continue
                if len(val) >= MIN_LEAK_LEN:
                    out[val] = f"Secret {ns}/{s['metadata']['name']} key {k}"
        for r in helm_storage.list_releases(kube, ns):
            for p, val in secret_looking_values(r.config):
                if len(val) >= MIN_LEAK_LEN:
                    out[val] = f"Helm release {ns}/{r.name} value {p}"
    return out


def leaks(texts: Iterable[str], sensitive: dict[str, str]) -> list[str]:
    """Where each sensitive value appears in the texts (never the value itself)."""
    blob = "\n".join(texts)
    return sorted({where for val, where in sensitive.items() if val in blob})
