"""The seed: the cluster as a person made it before the migration, on the rehearsal cluster.

An inventory's cluster is described by data: its *seed file*, ``seed.yaml`` beside the inventory
(the example's is examples/homelab/seed.yaml), in the subset of the capture bundle format that
:func:`handover.capture.bundle.read_seed` reads (kubectl-applied kustomize directories and Helm
release records: name, namespace, revision, status, chart name and version, config). The seed
replays it through the same module as a capture bundle (:func:`handover.capture.replay.replay`):
the kubectl-applied objects applied client-side (each carries the
``kubectl.kubernetes.io/last-applied-configuration`` annotation), PVs before what claims them, each
release installed with a real ``helm install`` from the rehearsal chart repository with its
values, each hostPath PV's directory made on the node, then it waits until every workload is
Running and Ready. Nothing here knows a release or an object of any particular cluster.

Idempotent: an object that exists is left as it is, a release that is deployed is not installed
again, so a second seed changes nothing (no new revision, the same pod UIDs).

Finally it writes the rehearsal copy of the inventory (``<state_dir>/migration.yaml``): the same
migration pointed at the rehearsal cluster's context, the GitOps working clone and backups in the
state dir, with ``cluster.rehearsalStateDir`` set.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from handover.capture import bundle as bundle_mod
from handover.capture import replay as replay_mod
from handover.core.errors import HandoverError
from handover.core.inventory import Inventory, Workload, load
from handover.core.kube import Kube
from handover.rehearsal import chart_repo, git_remote
from handover.rehearsal.cluster import RehearsalCluster
from handover.rehearsal.node_disk import NODE_ROOT, node_root  # noqa: F401 - re-exported

REHEARSAL_INVENTORY = "migration.yaml"
HEADER_MARK = "# Rehearsal copy of"


SEED_FILE = "seed.yaml"


@dataclass(frozen=True)
class SeedRelease:
    """One release of a seed file, as ``helm install NAME CHART --version VERSION --namespace
    NAMESPACE -f <config>`` takes it (a view of its release record). No secret is ever given
    here."""

    name: str
    namespace: str
    chart: str
    version: str
    config: dict[str, Any] = field(default_factory=dict)
    # the configs of the release's earlier revisions, oldest first (seed key earlierRevisions:
    # [{config: ...}]): the first is the install, each next one and then ``config`` a
    # ``helm upgrade -f`` of the same chart version
    earlier: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(cls, r: bundle_mod.Release) -> SeedRelease:
        rec = r.latest.record
        meta = rec["chart"]["metadata"]
        return cls(
            r.name,
            r.namespace,
            meta["name"],
            meta["version"],
            dict(rec.get("config") or {}),
            tuple(dict(v.record.get("config") or {}) for v in r.revisions[:-1]),
        )


def seed_file(inventory_path: Path | str) -> Path:
    """The seed file that describes an inventory's cluster: ``seed.yaml`` beside the inventory
    (beside the original one for a rehearsal copy, whose first line names it)."""
    p = Path(inventory_path)
    first = p.read_text().split("\n", 1)[0] if p.is_file() else ""
    if first.startswith(HEADER_MARK):
        original = first[len(HEADER_MARK) :].strip().split(" written by", 1)[0]
        return Path(original).parent / SEED_FILE
    return p.parent / SEED_FILE


def read(path: Path | str) -> bundle_mod.Bundle:
    """The seed file as a bundle (a clear error naming the file and the entry when malformed)."""
    path = Path(path)
    if not path.is_file():
        raise HandoverError(
            f"no seed file {path}: the seed does not know how the inventory's "
            "Helm releases were installed nor which directories were "
            "kubectl-applied. Write one (see examples/homelab/seed.yaml, "
            "docs/capture.md), or capture the cluster (`handover capture`) and "
            "use `handover rehearsal up --from-capture`"
        )
    return bundle_mod.read_seed(path)


def chart_sources(inventory_path: Path | str) -> Path | None:
    """The chart sources the inventory's seed file names (``charts``, relative to it; default
    ``charts`` beside it): what the rehearsal chart repository serves for it. None without a seed
    file."""
    import yaml

    path = seed_file(inventory_path)
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    return (
        path.parent / str((data if isinstance(data, dict) else {}).get("charts") or "charts")
    ).resolve()


def load_seed(path: Path | str) -> tuple[SeedRelease, ...]:
    """The releases of a seed file."""
    return tuple(SeedRelease.of(r) for r in read(path).releases)


def seed_release(name: str, namespace: str, path: Path | str) -> SeedRelease:
    releases = load_seed(path)
    for r in releases:
        if (r.name, r.namespace) == (name, namespace):
            return r
    known = ", ".join(f"{r.namespace}/{r.name}" for r in releases)
    raise HandoverError(
        f"the seed does not know how Helm release {namespace}/{name} was "
        f"installed (it knows {known}): add it to the seed file {path}"
    )


@dataclass
class SeedResult:
    applied: list[str]  # objects created with kubectl apply
    present: list[str]  # objects that already existed (left alone)
    installed: list[str]  # releases installed now
    deployed: list[str]  # releases that were already deployed (left alone)
    inventory_path: Path


# -- readiness --------------------------------------------------------------------------------------
def _pod_ready(pod: dict[str, Any]) -> bool:
    if (
        pod["metadata"].get("deletionTimestamp")
        or (pod.get("status") or {}).get("phase") != "Running"
    ):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def workload_pods_ready(kube: Kube, w: Workload) -> tuple[bool, str]:
    """(all desired pods Running and Ready, a description of what is missing)."""
    obj = kube.get("apps/v1", w.kind, w.name, w.namespace)
    if obj is None:
        return False, f"{w.kind} {w.namespace}/{w.name} does not exist"
    if w.kind == "DaemonSet":
        desired = (obj.get("status") or {}).get("desiredNumberScheduled") or 0
    else:
        desired = (obj.get("spec") or {}).get("replicas", 1)
    pods = [
        p
        for p in kube.list("v1", "Pod", w.namespace, label_selector=w.selector)
        if not p["metadata"].get("deletionTimestamp")
    ]
    ready = [p for p in pods if _pod_ready(p)]
    if desired < 1:
        return False, f"{w.kind} {w.namespace}/{w.name}: no pod desired yet"
    if len(ready) < desired or len(pods) != len(ready):
        states = (
            ", ".join(
                f"{p['metadata']['name']}={(p.get('status') or {}).get('phase')}" for p in pods
            )
            or "no pods"
        )
        return False, (
            f"{w.kind} {w.namespace}/{w.name}: {len(ready)}/{desired} pods Running "
            f"and Ready ({states})"
        )
    # ...and the workload's own status has caught up (its controller writes it a moment after
    # the pods are Ready): the seeded cluster is at rest, so a later "nothing moved" snapshot
    # does not see the controller's last status write.
    status = obj.get("status") or {}
    counted = status.get("numberReady") if w.kind == "DaemonSet" else status.get("readyReplicas")
    if (counted or 0) < desired or status.get("observedGeneration") != obj["metadata"].get(
        "generation"
    ):
        return False, (
            f"{w.kind} {w.namespace}/{w.name}: status not settled "
            f"({counted or 0}/{desired} ready in its status)"
        )
    available = status.get("numberAvailable" if w.kind == "DaemonSet" else "availableReplicas")
    if w.kind != "StatefulSet" and (available or 0) < desired:
        return False, f"{w.kind} {w.namespace}/{w.name}: status not settled (availability)"
    return True, ""


def wait_ready(kube: Kube, workloads: list[Workload], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    waiting: list[str] = []
    while time.monotonic() < deadline:
        waiting = [msg for ok, msg in (workload_pods_ready(kube, w) for w in workloads) if not ok]
        if not waiting:
            return
        time.sleep(0.5)
    raise HandoverError(
        "seeded workloads not Running and Ready after "
        f"{timeout:.0f}s:\n" + "\n".join(f"  - {m}" for m in waiting)
    )


# -- the rehearsal inventory ------------------------------------------------------------------------
def write_rehearsal_inventory(
    inventory_path: Path, state_dir: Path, context: str, remote: git_remote.GitRemote
) -> Path:
    """Copy the inventory into the state dir, pointed at the rehearsal (comments kept)."""
    y = YAML()
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    data = y.load(Path(inventory_path).read_text())
    data["cluster"]["context"] = context
    data["cluster"]["rehearsalStateDir"] = str(state_dir)
    data["gitops"]["path"] = remote.clone
    data["gitops"]["url"] = remote.url
    data["gitops"]["branch"] = remote.branch
    data["backups"]["path"] = str(Path(state_dir) / "backups")
    # The rehearsal node's filesystem is the local machine under <state>/node-root.
    data["cluster"]["nodes"] = [
        {"name": "*", "host": "local://", "root": str(node_root(state_dir))}
    ]
    buf = io.StringIO()
    y.dump(data, buf)
    text = buf.getvalue()
    if not text.startswith(HEADER_MARK):  # not when re-seeding from a rehearsal copy
        text = (
            f"{HEADER_MARK} {Path(inventory_path).resolve()} written by the seed:\n"
            "# the same migration, pointed at the rehearsal cluster in this state dir.\n" + text
        )
    out = Path(state_dir) / REHEARSAL_INVENTORY
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text)
    load(tmp)  # refuse to leave an invalid copy behind
    tmp.replace(out)
    return out


# -- the seed ---------------------------------------------------------------------------------------
def seed(
    cluster: RehearsalCluster,
    inventory_path: Path | str,
    state_dir: Path | str,
    timeout: float = 180.0,
) -> SeedResult:
    """Make the cluster the inventory's seed file describes on the rehearsal cluster (see module
    doc). Needs the chart repo and the git remote of ``state_dir`` (stack.up makes them)."""
    state_dir = Path(state_dir).absolute()
    inv: Inventory = load(inventory_path)
    repo = chart_repo.load(state_dir)
    remote = git_remote.load(state_dir)
    if repo is None or remote is None:
        raise HandoverError(
            f"no chart repository or git remote in {state_dir}: run "
            "handover.rehearsal.stack.up (it makes them before seeding)"
        )
    path = seed_file(inventory_path)
    b = replay_mod.validate(read(path), None)
    known = {r.key for r in b.releases}
    for c in inv.components:  # unknown releases fail here, before any change
        if (
            c.type == "helm"
            and c.release is not None
            and f"{c.release.namespace}/{c.release.name}" not in known
        ):
            raise HandoverError(
                f"the seed does not know how Helm release {c.release.namespace}/"
                f"{c.release.name} was installed (it knows {', '.join(sorted(known))}): add it "
                f"to the seed file {path}"
            )
    report = replay_mod.ReplayReport(bundle=str(path.resolve()), context=cluster.context)
    replay_mod.replay(cluster, b, report, timeout=timeout, repo_url=repo.url)
    if report.problems:
        raise HandoverError(
            f"the seed {path} did not replay as described:\n"
            + "\n".join(f"  - {p}" for p in report.problems)
        )
    kube = Kube(cluster.kubeconfig, cluster.context)
    wait_ready(kube, [w for c in inv.components for w in c.workloads], timeout)
    out = write_rehearsal_inventory(Path(inventory_path), state_dir, cluster.context, remote)
    return SeedResult(
        report.applied + report.created, report.present, report.installed, report.deployed, out
    )
