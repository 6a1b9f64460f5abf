"""Flux takes a component over, the seed's way: a temporary Kustomization for the component's repo
path (``handover-<name>``, ``prune: false``, sourceRef the flux-system GitRepository), a reconcile
request, and a wait (a watch, not polling) until it, and for Helm components the HelmRelease, is
Ready for its current generation.

``prune: false`` (and deletionPolicy Orphan) because removing the temporary Kustomization afterwards
must never garbage-collect what it applied (kustomize-controller deletes its inventory on deletion
unless prune is off, it is suspended or the policy is Orphan).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from handover.core import progress, wait
from handover.core.errors import HandoverError
from handover.core.inventory import Component, Inventory
from handover.flux import rules as flux

if TYPE_CHECKING:
    from handover.core.kube import Kube
    from handover.core.mutation import Mutator

SOURCES_KUSTOMIZATION = "handover-sources"


class NotReady(HandoverError):
    """An object did not become Ready for its current generation in time."""


@dataclass
class ReadyWait:
    object: str
    ready: bool
    seconds: float
    generation: int | None
    message: str  # the last Ready condition message
    events: int = 0  # watch events seen

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def temporary_kustomization(
    inventory: Inventory, name: str, path: str, interval: str = "10m"
) -> dict[str, Any]:
    """The temporary Kustomization that hands one repo path over to Flux."""
    ns = inventory.cluster.flux_namespace
    return {
        "apiVersion": flux.KUSTOMIZE_API,
        "kind": "Kustomization",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app.kubernetes.io/managed-by": "flux-handover"},
        },
        "spec": {
            "interval": interval,
            "path": "./" + path.strip("/"),
            "prune": False,  # removal must orphan, never garbage-collect
            "deletionPolicy": "Orphan",
            "sourceRef": {"kind": "GitRepository", "name": "flux-system", "namespace": ns},
            "timeout": "5m",
        },
    }


def for_component(inventory: Inventory, component: Component) -> dict[str, Any]:
    return temporary_kustomization(inventory, component.kustomization_name, component.path)


def for_sources(inventory: Inventory) -> dict[str, Any] | None:
    if not inventory.gitops.sources_path:
        return None
    return temporary_kustomization(inventory, SOURCES_KUSTOMIZATION, inventory.gitops.sources_path)


def request_token() -> str:
    """An RFC 3339 timestamp with nanoseconds, as `flux reconcile` writes it."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


def hand_over(mutator: Mutator, kustomization: dict[str, Any]) -> str:
    """Apply the temporary Kustomization (server-side, idempotent) and request a reconcile.
    Returns the reconcile token to wait for."""
    mutator.apply(kustomization)
    m = kustomization["metadata"]
    token = request_token()
    mutator.request_reconcile(flux.KUSTOMIZE_API, "Kustomization", m["name"], m["namespace"], token)
    return token


def _ready_state(obj: dict[str, Any], token: str | None) -> tuple[bool, str]:
    c = flux.condition(obj, "Ready") or {}
    msg = c.get("message", "no Ready condition yet")
    if c.get("reason"):
        msg = f"{c['reason']}: {msg}"
    if token and (obj.get("status") or {}).get("lastHandledReconcileAt") != token:
        return False, f"reconcile request {token} not handled yet; Ready: {msg}"
    return flux.is_ready(obj), msg


def wait_ready(
    kube: Kube,
    api_version: str,
    kind: str,
    name: str,
    namespace: str,
    timeout: float,
    token: str | None = None,
) -> ReadyWait:
    """Watch one object until Ready=True with observedGeneration == metadata.generation (and, with
    a token, the reconcile request acknowledged). Raises NotReady naming the object, the last
    Ready message and the timeout."""
    res = kube.resource(api_version, kind)
    what = f"{kind} {namespace}/{name}"
    deadline = wait.Deadline(timeout)
    with progress.wait(f"{what} Ready", timeout) as w:
        return _wait_ready_loop(
            kube, res, api_version, kind, name, namespace, timeout, token, what, deadline, w
        )


def _wait_ready_loop(
    kube,
    res,
    api_version: str,
    kind: str,
    name: str,
    namespace: str,
    timeout: float,
    token: str | None,
    what: str,
    deadline: wait.Deadline,
    w: progress.Wait,
) -> ReadyWait:
    msg, gen, events = "object not found", None, 0
    while True:
        obj = kube.get(api_version, kind, name, namespace)
        rv = None
        if obj is not None:
            gen = obj["metadata"].get("generation")
            ok, msg = _ready_state(obj, token)
            if ok:
                return ReadyWait(what, True, deadline.elapsed(), gen, msg, events)
            rv = obj["metadata"].get("resourceVersion")
        w.update(msg)
        left = deadline.left()
        if left <= 0:
            break
        try:
            kwargs: dict[str, Any] = {
                "namespace": namespace,
                "field_selector": f"metadata.name={name}",
                "timeout": max(1, int(min(left, 5))),
            }
            if rv:
                kwargs["resource_version"] = rv
            for ev in res.watch(**kwargs):
                events += 1
                o = ev["object"].to_dict() if hasattr(ev["object"], "to_dict") else ev["object"]
                if ev["type"] == "DELETED":
                    msg, gen = "object deleted", None
                    continue
                gen = o["metadata"].get("generation")
                ok, msg = _ready_state(o, token)
                if ok:
                    return ReadyWait(what, True, deadline.elapsed(), gen, msg, events)
                w.update(msg)
                if deadline.expired:
                    break
        except Exception:  # watch expired (410) or connection dropped: re-read and watch again
            time.sleep(0.2)
    raise NotReady(
        f"{what} not Ready for generation {gen} within {timeout:.0f} s "
        f"(inventory readyTimeout). Last Ready message: {msg}. "
        f"Look at `kubectl -n {namespace} describe {kind.lower()} {name}` and the "
        "controller's log; the component will be rolled back."
    )


def wait_gone(
    kube: Kube, api_version: str, kind: str, name: str, namespace: str, timeout: float
) -> bool:
    """Wait until an object is gone (finalizers done)."""
    return wait.until(
        f"{kind} {namespace}/{name} gone",
        lambda: kube.get(api_version, kind, name, namespace) is None,
        timeout=timeout,
        interval=0.2,
        message=lambda gone: "" if gone else "still present (finalizers)",
    )


def local_head(inventory: Inventory) -> str:
    from handover.core import tools

    res = tools.run(["git", "-C", str(inventory.gitops.path), "rev-parse", "HEAD"])
    if not res.ok:
        raise HandoverError(
            f"cannot read HEAD of the GitOps checkout {inventory.gitops.path}: {res.stderr.strip()}"
        )
    return res.stdout.strip()


def sync_source(
    kube: Kube, mutator: Mutator, inventory: Inventory, timeout: float | None = None
) -> str:
    """Make the flux-system GitRepository fetch now and wait until its artifact is the local
    checkout's HEAD, so the temporary Kustomization applies exactly what was checked (an
    unpushed local commit, or a remote that moved on, is reported, not applied)."""
    ns = inventory.cluster.flux_namespace
    head = local_head(inventory)
    token = request_token()
    mutator.request_reconcile(flux.SOURCE_API, "GitRepository", "flux-system", ns, token)

    def served() -> tuple[bool, str]:
        """(the reconcile request is handled and the source Ready, the revision served)"""
        repo = kube.get(flux.SOURCE_API, "GitRepository", "flux-system", ns) or {}
        st = repo.get("status") or {}
        return (
            st.get("lastHandledReconcileAt") == token and flux.is_ready(repo),
            (st.get("artifact") or {}).get("revision", ""),
        )

    # ends once the request is handled: at the checkout's HEAD, or at another revision (refused)
    handled, rev = wait.until(
        f"GitRepository {ns}/flux-system at {head[:12]}",
        served,
        timeout=timeout or inventory.ready_timeout,
        interval=0.3,
        done=lambda s: s[0],
        message=lambda s: f"serving {s[1] or 'no artifact'}",
    )
    if handled and rev.endswith(head):
        return rev
    raise HandoverError(
        f"GitRepository {ns}/flux-system serves {rev or 'no artifact'}, but the GitOps checkout "
        f"{inventory.gitops.path} is at {head}: push the checkout (or pull the remote) so that "
        "Flux applies exactly what the checks ran on"
    )


def ready_timeout(inventory: Inventory, component: Component | None) -> int:
    if component is not None and component.ready_timeout:
        return component.ready_timeout
    return inventory.ready_timeout


@dataclass
class SourcesHandover:
    done: bool
    already: bool
    objects: list[str] = field(default_factory=list)


def hand_over_sources(kube: Kube, mutator: Mutator, inventory: Inventory) -> SourcesHandover:
    """Hand the HelmRepositories of gitops.sourcesPath over with their own temporary
    Kustomization, wait Ready, then remove that Kustomization (orphaning). A no-op when every
    source object already carries the kustomize-controller owner labels."""
    from handover.sources import kustomize

    if not inventory.gitops.sources_path:
        return SourcesHandover(done=False, already=False)
    built = kustomize.build(inventory.gitops.path / inventory.gitops.sources_path)
    ids = [kustomize.object_id(o) for o in built]
    owned = True
    for o in built:
        m = o["metadata"]
        live = kube.get(
            o["apiVersion"],
            o["kind"],
            m["name"],
            m.get("namespace") or inventory.cluster.flux_namespace,
        )
        if live is None or flux.KUSTOMIZE_OWNER_NAME not in (live["metadata"].get("labels") or {}):
            owned = False
    if owned:
        return SourcesHandover(done=True, already=True, objects=ids)
    ks = for_sources(inventory)
    assert ks is not None
    token = hand_over(mutator, ks)
    wait_ready(
        kube,
        flux.KUSTOMIZE_API,
        "Kustomization",
        SOURCES_KUSTOMIZATION,
        inventory.cluster.flux_namespace,
        inventory.ready_timeout,
        token,
    )
    for o in built:
        if o["kind"] == "HelmRepository":
            m = o["metadata"]
            wait_ready(
                kube,
                o["apiVersion"],
                o["kind"],
                m["name"],
                m.get("namespace") or inventory.cluster.flux_namespace,
                inventory.ready_timeout,
            )
    remove(kube, mutator, inventory, SOURCES_KUSTOMIZATION, "HelmRepositories handed over")
    return SourcesHandover(done=True, already=False, objects=ids)


def remove(kube: Kube, mutator: Mutator, inventory: Inventory, name: str, reason: str) -> None:
    """Delete a temporary Kustomization WITHOUT pruning: the Mutator refuses when it would
    garbage-collect; then wait for its finalizer."""
    ns = inventory.cluster.flux_namespace
    if kube.get(flux.KUSTOMIZE_API, "Kustomization", name, ns) is None:
        return
    mutator.delete(flux.KUSTOMIZE_API, "Kustomization", name, ns, reason)
    if not wait_gone(kube, flux.KUSTOMIZE_API, "Kustomization", name, ns, 60):
        raise HandoverError(
            f"Kustomization {ns}/{name} still present 60 s after deletion "
            "(finalizer not removed): check kustomize-controller"
        )
