"""Node checks of the data behind a component's PersistentVolumes, over pytest-testinfra.

A hostPath (or local) PV names a directory on a node's disk. K3S's hostPath PVs are usually
``type: DirectoryOrCreate``: when the directory is missing, the kubelet silently creates it EMPTY
the next time a pod mounts it, so a PV that points at the wrong place loses the data without an
error. Before a handover that may move pods, every such directory must exist on its node, be a
directory, and not be empty.

The nodes are reached with testinfra host specs from the inventory's ``cluster.nodes``
(``local://`` for a single-node cluster the suite runs on, ``ssh://user@node`` otherwise); a node
with no access configured is reported as not checked, never as passed. Read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from handover.core.findings import Finding
from handover.core.inventory import Component, Inventory, NodeAccess

if TYPE_CHECKING:
    from handover.core.kube import Kube

HOSTNAME_LABEL = "kubernetes.io/hostname"


@dataclass(frozen=True)
class PathCheck:
    pv: str
    node: str  # node name, or "*" when the PV is not pinned to a node
    path: str  # the path on the node, as the PV names it
    status: str  # ok | missing | not-a-directory | empty | no-access | not-host-path
    detail: str = ""


def pv_host_path(pv: dict[str, Any]) -> str | None:
    spec = pv.get("spec") or {}
    for key in ("hostPath", "local"):
        if (spec.get(key) or {}).get("path"):
            return spec[key]["path"]
    return None


def pv_nodes(pv: dict[str, Any]) -> list[str]:
    """Nodes the PV is pinned to by a required nodeAffinity on kubernetes.io/hostname."""
    terms = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get(
        "nodeSelectorTerms"
    ) or []
    nodes: list[str] = []
    for t in terms:
        for e in t.get("matchExpressions") or []:
            if e.get("key") == HOSTNAME_LABEL and e.get("operator") == "In":
                nodes.extend(e.get("values") or [])
    return nodes


def _host(access: NodeAccess):
    import testinfra  # imported here: only node checks need it

    return testinfra.get_host(access.host)


def check_path(access: NodeAccess, path: str) -> tuple[str, str]:
    """(status, detail) of one PV directory on a node."""
    full = access.root.rstrip("/") + "/" + path.lstrip("/") if access.root != "/" else path
    host = _host(access)
    f = host.file(full)
    if not f.exists:
        return "missing", f"{full} does not exist on {access.host}"
    if not f.is_directory:
        return "not-a-directory", f"{full} is not a directory on {access.host}"
    if not f.listdir():
        return "empty", f"{full} is an empty directory on {access.host}"
    return "ok", f"{full} on {access.host}"


def check_component(kube: Kube, inventory: Inventory, component: Component) -> list[PathCheck]:
    out: list[PathCheck] = []
    for name in component.pvs:
        pv = kube.get("v1", "PersistentVolume", name)
        if pv is None:
            out.append(PathCheck(name, "*", "", "missing", "the PersistentVolume does not exist"))
            continue
        path = pv_host_path(pv)
        if path is None:
            out.append(
                PathCheck(
                    name,
                    "*",
                    "",
                    "not-host-path",
                    "not a hostPath/local volume: nothing to check on a node",
                )
            )
            continue
        for node in pv_nodes(pv) or ["*"]:
            access = inventory.cluster.node_access(node)
            if access is None:
                out.append(
                    PathCheck(
                        name,
                        node,
                        path,
                        "no-access",
                        f"no access to node {node!r} configured (cluster.nodes)",
                    )
                )
                continue
            status, detail = check_path(access, path)
            out.append(PathCheck(name, node, path, status, detail))
    return out


def findings(checks: list[PathCheck]) -> list[Finding]:
    out = []
    for c in checks:
        subject = f"PersistentVolume {c.pv}"
        if c.status == "missing" and not c.path:
            out.append(
                Finding(
                    "pv-host-path",
                    subject,
                    c.detail,
                    "create the PV (the storage component) or fix the inventory's pvs",
                )
            )
        elif c.status in ("missing", "not-a-directory"):
            out.append(
                Finding(
                    "pv-host-path",
                    subject,
                    f"host path {c.path} on node {c.node}: {c.detail}; with DirectoryOrCreate the "
                    "kubelet would create it EMPTY the next time a pod mounts it",
                    "find where the data really is and fix the PV's path (or restore the data) "
                    "before the handover",
                )
            )
        elif c.status == "empty":
            out.append(
                Finding(
                    "pv-host-path",
                    subject,
                    f"host path {c.path} on node {c.node}: {c.detail}",
                    "check that the data is where the PV says (an empty directory is what a "
                    "wrong path looks like after the kubelet created it)",
                    severity="warning",
                )
            )
    return out
