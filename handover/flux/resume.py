"""Phase 4's reads and waits: the entry-point Kustomizations resumed and reconciled by flux-system.

The suite (suites/phase4/test_resume.py) calls these; it holds no wait loop of its own.

- :func:`handed_over_state`: phase 3's journal verdict for a component;
- :func:`temporary_kustomizations`: the ``handover-*`` Kustomizations phase 3 left behind;
- :func:`reconciled`: flux-system applied the remote head, and the entry point is live, not
  suspended and Ready for its generation (nothing to do);
- :func:`request_sync`, :func:`wait_applied`, :func:`wait_reconciled`: ask flux-system to fetch
  and apply the head, wait until it did (with the entry point resumed), then wait until the entry
  point handled its own reconcile request and is Ready;
- :func:`not_ready`: every object of a Flux kind that is not Ready or is suspended, one line each.
"""

from __future__ import annotations

from typing import Any

from handover.core import journal as journal_mod
from handover.core import wait
from handover.core.inventory import Inventory
from handover.flux import rules as flux
from handover.flux.bootstrap import SYNC_NAME

Obj = dict[str, Any]
TEMPORARY_PREFIX = "handover-"


def handed_over_state(journal: journal_mod.Journal, component: str) -> str:
    """Phase 3's state for the component, from the journal (``done`` once it is handed over)."""
    return journal_mod.progress(journal, "phase3", component).state


def temporary_kustomizations(kube) -> list[str]:
    """``namespace/name`` of every Kustomization named ``handover-*`` (phase 3's temporary ones)."""
    return [
        f"{k['metadata']['namespace']}/{k['metadata']['name']}"
        for k in kube.list(flux.KUSTOMIZE_API, "Kustomization")
        if k["metadata"]["name"].startswith(TEMPORARY_PREFIX)
    ]


def _suspended(obj: Obj | None) -> bool:
    return bool(((obj or {}).get("spec") or {}).get("suspend"))


def entrypoint(kube, inventory: Inventory, name: str) -> Obj | None:
    """The live entry-point Kustomization (None when flux-system has not created it)."""
    return kube.get(flux.KUSTOMIZE_API, "Kustomization", name, inventory.cluster.flux_namespace)


def flux_system_applied(kube, inventory: Inventory, rhead: str) -> bool:
    """flux-system's Kustomization last applied the remote head ``rhead``."""
    fs = (
        kube.get(flux.KUSTOMIZE_API, "Kustomization", SYNC_NAME, inventory.cluster.flux_namespace)
        or {}
    )
    return ((fs.get("status") or {}).get("lastAppliedRevision") or "").endswith(rhead)


def reconciled(kube, inventory: Inventory, name: str, rhead: str) -> bool:
    """Nothing left to do: flux-system applied ``rhead`` and the entry point is live, not
    suspended and Ready for its generation."""
    live = entrypoint(kube, inventory, name)
    return bool(
        flux_system_applied(kube, inventory, rhead)
        and live
        and not _suspended(live)
        and flux.is_ready(live)
    )


def request_sync(mutator, inventory: Inventory, token: str) -> None:
    """Ask flux-system's GitRepository (fetch) and Kustomization (apply) to reconcile now."""
    ns = inventory.cluster.flux_namespace
    mutator.request_reconcile(flux.SOURCE_API, "GitRepository", SYNC_NAME, ns, token)
    mutator.request_reconcile(flux.KUSTOMIZE_API, "Kustomization", SYNC_NAME, ns, token)


def wait_applied(kube, inventory: Inventory, name: str, rhead: str, timeout: float) -> Obj | None:
    """Wait until flux-system applied ``rhead`` with the entry point ``name`` live and resumed;
    the entry point then, None at the timeout."""

    def applied() -> Obj | None:
        live = entrypoint(kube, inventory, name)
        ok = flux_system_applied(kube, inventory, rhead)
        return live if ok and live and not _suspended(live) else None

    return wait.until(
        f"Kustomization {inventory.cluster.flux_namespace}/{SYNC_NAME} applies "
        f"{rhead[:12]} with {name} resumed",
        applied,
        timeout=timeout,
    )


def wait_reconciled(
    kube, inventory: Inventory, name: str, token: str, timeout: float
) -> Obj | None:
    """Wait until the entry point handled the reconcile request ``token`` and is Ready for its
    generation; the entry point then, None at the timeout."""

    def handled() -> Obj | None:
        live = entrypoint(kube, inventory, name)
        return (
            live
            if live
            and flux.is_ready(live)
            and (live.get("status") or {}).get("lastHandledReconcileAt") == token
            else None
        )

    return wait.until(
        f"Kustomization {inventory.cluster.flux_namespace}/{name} reconciled",
        handled,
        timeout=timeout,
    )


def not_ready(kube, api_version: str, kind: str) -> list[str]:
    """One line per object of the kind that is suspended or not Ready for its generation."""
    out = []
    for o in kube.list(api_version, kind):
        if not flux.is_ready(o) or _suspended(o):
            c = flux.condition(o, "Ready") or {}
            why = (
                "suspended"
                if _suspended(o)
                else f"{c.get('reason', 'no Ready condition')}: {c.get('message', '')}"
            )
            out.append(
                f"{kind} {o['metadata']['namespace']}/{o['metadata']['name']} "
                f"(generation {o['metadata'].get('generation')}): {why}"
            )
    return out
