"""The seed: the homelab as a person made it before the migration, on the rehearsal cluster.

- kubectl-applied YAML (client-side ``kubectl apply``, so each object carries the
  ``kubectl.kubernetes.io/last-applied-configuration`` annotation): the inventory's ``storage``
  components (the PVs) first, then its ``manifests`` components, each from its path in the
  inventory's GitOps tree;
- Helm CLI releases: a real ``helm install`` from the rehearsal chart repository of every ``helm``
  component, with the chart, version and values (``config``) its seed file gives (``seed.yaml``
  beside the inventory: the fields of Helm's release record a capture holds; the example's is
  examples/homelab/seed.yaml, and the GitOps tree's HelmReleases are written to match it). A
  cluster described by a whole capture bundle is replayed instead (``handover.capture.replay``);
- then it waits until every workload of the inventory has all its pods Running and Ready.

Idempotent: an object that exists is left as it is, a release that is deployed is not installed
again, so a second seed changes nothing (no new revision, the same pod UIDs).

Finally it writes the rehearsal copy of the inventory (``<state_dir>/migration.yaml``): the same
migration pointed at the rehearsal cluster's context, the GitOps working clone and backups in the
state dir, with ``cluster.rehearsalStateDir`` set.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from handover.sources import helm_storage
from handover.sources import kustomize
from handover.core import tools
from handover.core.errors import HandoverError
from handover.core.inventory import Component, Inventory, Workload, load
from handover.core.kube import Kube
from handover.rehearsal import chart_repo, git_remote
from handover.rehearsal.cluster import RehearsalCluster

REHEARSAL_INVENTORY = "migration.yaml"
HEADER_MARK = "# Rehearsal copy of"


SEED_FILE = "seed.yaml"


@dataclass(frozen=True)
class SeedRelease:
    """How one Helm CLI release was installed: ``helm install NAME CHART --version VERSION
    --namespace NAMESPACE -f <config>``, read from a seed file (the fields of Helm's release
    record that a capture holds: name, namespace, chart.metadata name/version, config). No
    secret is ever given here."""

    name: str
    namespace: str
    chart: str
    version: str
    config: dict[str, Any] = field(default_factory=dict)


def seed_file(inventory_path: Path | str) -> Path:
    """The seed file that describes an inventory's cluster: ``seed.yaml`` beside the inventory
    (beside the original one for a rehearsal copy, whose first line names it)."""
    p = Path(inventory_path)
    first = p.read_text().split("\n", 1)[0] if p.is_file() else ""
    if first.startswith(HEADER_MARK):
        original = first[len(HEADER_MARK):].strip().split(" written by", 1)[0]
        return Path(original).parent / SEED_FILE
    return p.parent / SEED_FILE


def load_seed(path: Path | str) -> tuple[SeedRelease, ...]:
    """The releases of a seed file (a clear error naming the file and the entry when malformed)."""
    path = Path(path)
    if not path.is_file():
        raise HandoverError(f"no seed file {path}: the seed does not know how the inventory's "
                            "Helm releases were installed. Write one (see examples/homelab/"
                            "seed.yaml), or capture the cluster (`handover capture`) and use "
                            "`handover rehearsal up --from-capture`")
    data = yaml.safe_load(path.read_text()) or {}
    if data.get("kind") != "Seed" or not isinstance(data.get("releases"), list):
        raise HandoverError(f"{path}: not a seed file (kind: Seed with a releases list)")
    out = []
    for i, r in enumerate(data["releases"]):
        try:
            meta = r["chart"]["metadata"]
            out.append(SeedRelease(str(r["name"]), str(r["namespace"]), str(meta["name"]),
                                   str(meta["version"]), dict(r.get("config") or {})))
        except (KeyError, TypeError) as e:
            raise HandoverError(f"{path}: releases[{i}] lacks {e} (needs name, namespace, "
                                "chart.metadata.name/version, config)") from e
    return tuple(out)


def seed_release(name: str, namespace: str, path: Path | str) -> SeedRelease:
    releases = load_seed(path)
    for r in releases:
        if (r.name, r.namespace) == (name, namespace):
            return r
    known = ", ".join(f"{r.namespace}/{r.name}" for r in releases)
    raise HandoverError(f"the seed does not know how Helm release {namespace}/{name} was "
                        f"installed (it knows {known}): add it to the seed file {path}")


@dataclass
class SeedResult:
    applied: list[str]  # objects created with kubectl apply
    present: list[str]  # objects that already existed (left alone)
    installed: list[str]  # releases installed now
    deployed: list[str]  # releases that were already deployed (left alone)
    inventory_path: Path


# -- kubectl-applied YAML ---------------------------------------------------------------------------
def _exists(kube: Kube, obj: dict[str, Any]) -> bool:
    meta = obj["metadata"]
    return kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")) is not None


def apply_manifests(cluster: RehearsalCluster, kube: Kube, path: Path) -> tuple[list[str], list[str]]:
    """``kubectl apply`` (client-side) the objects of ``path`` that do not exist yet.
    Returns (applied, present) object ids."""
    objects = kustomize.build(path)
    missing = [o for o in objects if not _exists(kube, o)]
    present = [kustomize.object_id(o) for o in objects if o not in missing]
    if missing:
        tools.run([str(tools.kubectl()), "--kubeconfig", str(cluster.kubeconfig),
                   "--context", cluster.context, "apply", "-f", "-"],
                  input=yaml.safe_dump_all(missing, sort_keys=False), check=True)
    return [kustomize.object_id(o) for o in missing], present


# -- Helm CLI releases ------------------------------------------------------------------------------
def install_release(cluster: RehearsalCluster, kube: Kube, release: SeedRelease,
                    repo_url: str) -> bool:
    """``helm install`` the release unless it is already deployed; True when installed now."""
    latest = helm_storage.latest(kube, release.name, release.namespace)
    if latest is not None:
        if latest.status == "deployed":
            return False
        raise HandoverError(
            f"Helm release {release.namespace}/{release.name} exists with status "
            f"{latest.status!r} (revision {latest.revision}): the seed installs only missing "
            f"releases. Inspect it with helm history, or start from a fresh state dir.")
    values = Path(cluster.state_dir) / f".seed-values-{release.name}.json"
    values.write_text(json.dumps(release.config))
    values.chmod(0o600)
    argv = [str(tools.helm()), "install", release.name, release.chart,
            "--repo", repo_url, "--version", release.version,
            "--namespace", release.namespace, "--create-namespace", "-f", str(values),
            "--kubeconfig", str(cluster.kubeconfig), "--kube-context", cluster.context]
    try:
        tools.run(argv, env=chart_repo.helm_env(cluster.state_dir), check=True)
    finally:
        values.unlink(missing_ok=True)
    return True


# -- readiness --------------------------------------------------------------------------------------
def _pod_ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp") or (pod.get("status") or {}).get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def workload_pods_ready(kube: Kube, w: Workload) -> tuple[bool, str]:
    """(all desired pods Running and Ready, a description of what is missing)."""
    obj = kube.get("apps/v1", w.kind, w.name, w.namespace)
    if obj is None:
        return False, f"{w.kind} {w.namespace}/{w.name} does not exist"
    if w.kind == "DaemonSet":
        desired = (obj.get("status") or {}).get("desiredNumberScheduled") or 0
    else:
        desired = (obj.get("spec") or {}).get("replicas", 1)
    pods = [p for p in kube.list("v1", "Pod", w.namespace, label_selector=w.selector)
            if not p["metadata"].get("deletionTimestamp")]
    ready = [p for p in pods if _pod_ready(p)]
    if desired < 1:
        return False, f"{w.kind} {w.namespace}/{w.name}: no pod desired yet"
    if len(ready) < desired or len(pods) != len(ready):
        states = ", ".join(f"{p['metadata']['name']}={(p.get('status') or {}).get('phase')}"
                           for p in pods) or "no pods"
        return False, (f"{w.kind} {w.namespace}/{w.name}: {len(ready)}/{desired} pods Running "
                       f"and Ready ({states})")
    # ...and the workload's own status has caught up (its controller writes it a moment after
    # the pods are Ready): the seeded cluster is at rest, so a later "nothing moved" snapshot
    # does not see the controller's last status write.
    status = obj.get("status") or {}
    counted = status.get("numberReady") if w.kind == "DaemonSet" else status.get("readyReplicas")
    if (counted or 0) < desired or \
            status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False, (f"{w.kind} {w.namespace}/{w.name}: status not settled "
                       f"({counted or 0}/{desired} ready in its status)")
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
    raise HandoverError("seeded workloads not Running and Ready after "
                        f"{timeout:.0f}s:\n" + "\n".join(f"  - {m}" for m in waiting))


# -- the node's disk --------------------------------------------------------------------------------
NODE_ROOT = "node-root"


def node_root(state_dir: Path) -> Path:
    """Where the rehearsal node's filesystem lives (hostPath volumes resolve below it)."""
    return Path(state_dir) / NODE_ROOT


def create_host_paths(kube: Kube, inv: Inventory, state_dir: Path) -> list[str]:
    """Make each hostPath PV's directory on the rehearsal node, with some data in it, the way a
    person prepared the node's disk before creating the PVs. Existing data is left alone."""
    made = []
    for c in inv.components:
        for name in c.pvs:
            pv = kube.get("v1", "PersistentVolume", name) or {}
            path = ((pv.get("spec") or {}).get("hostPath") or {}).get("path")
            if not path:
                continue
            d = node_root(state_dir) / path.lstrip("/")
            if not d.exists():
                d.mkdir(parents=True)
                (d / "DATA").write_text(f"data of {name}: kept across the handover\n")
                made.append(str(d))
    return made


# -- the rehearsal inventory ------------------------------------------------------------------------
def write_rehearsal_inventory(inventory_path: Path, state_dir: Path, context: str,
                              remote: git_remote.GitRemote) -> Path:
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
    data["cluster"]["nodes"] = [{"name": "*", "host": "local://",
                                 "root": str(node_root(state_dir))}]
    buf = io.StringIO()
    y.dump(data, buf)
    text = buf.getvalue()
    if not text.startswith(HEADER_MARK):  # not when re-seeding from a rehearsal copy
        text = (f"{HEADER_MARK} {Path(inventory_path).resolve()} written by the seed:\n"
                "# the same migration, pointed at the rehearsal cluster in this state dir.\n"
                + text)
    out = Path(state_dir) / REHEARSAL_INVENTORY
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text)
    load(tmp)  # refuse to leave an invalid copy behind
    tmp.replace(out)
    return out


# -- the seed ---------------------------------------------------------------------------------------
def seed(cluster: RehearsalCluster, inventory_path: Path | str, state_dir: Path | str,
         timeout: float = 180.0) -> SeedResult:
    """Make the imperative homelab the inventory describes on the rehearsal cluster (see module
    doc). Needs the chart repo and the git remote of ``state_dir`` (stack.up makes them)."""
    state_dir = Path(state_dir).absolute()
    inv: Inventory = load(inventory_path)
    repo = chart_repo.load(state_dir)
    remote = git_remote.load(state_dir)
    if repo is None or remote is None:
        raise HandoverError(f"no chart repository or git remote in {state_dir}: run "
                            "handover.rehearsal.stack.up (it makes them before seeding)")
    helm_components = [c for c in inv.components if c.type == "helm"]
    if helm_components:
        path = seed_file(inventory_path)
        releases = {c.name: seed_release(c.release.name, c.release.namespace, path)
                    for c in helm_components if c.release is not None}  # unknown releases fail here, before any change
    else:
        releases = {}
    kube = Kube(cluster.kubeconfig, cluster.context)

    applied: list[str] = []
    present: list[str] = []
    installed: list[str] = []
    deployed: list[str] = []

    def manifests(c: Component) -> None:
        a, p = apply_manifests(cluster, kube, inv.gitops.path / c.path)
        applied.extend(a)
        present.extend(p)

    for c in inv.components:  # the PVs before anything that claims them
        if c.type == "storage":
            manifests(c)
    for c in inv.components:
        if c.type == "manifests":
            manifests(c)
        elif c.type == "helm":
            r = releases[c.name]
            (installed if install_release(cluster, kube, r, repo.url) else deployed).append(
                f"{r.namespace}/{r.name}")
    create_host_paths(kube, inv, state_dir)
    wait_ready(kube, [w for c in inv.components for w in c.workloads], timeout)
    path = write_rehearsal_inventory(Path(inventory_path), state_dir, cluster.context, remote)
    return SeedResult(applied, present, installed, deployed, path)
