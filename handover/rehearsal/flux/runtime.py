"""The controller runtime of the Flux stand-ins: API access, status conditions, and a work queue fed
by watches with a periodic resync (what controller-runtime gives the real controllers).

This runs INSIDE the rehearsal cluster as one of its components (like the real controllers run in
flux-system), so it writes to the API directly; the suite's own mutations still go through
handover.core.mutation.
"""

from __future__ import annotations

import builtins
import heapq
import json
import logging
import re
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes.dynamic.exceptions import ApiException, NotFoundError, ResourceNotFoundError

from handover.core.kube import Kube

log = logging.getLogger("flux-standins")

Obj = dict[str, Any]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(text: str | None, default: float) -> float:
    """Go duration ('1m30s', '500ms', '10m') -> seconds."""
    if not text:
        return default
    total = 0.0
    for num, unit in re.findall(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)", text):
        total += float(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total or default


class Api:
    """Thin REST access over the official client (dynamic discovery for paths)."""

    def __init__(self, kubeconfig: str, context: str | None = None):
        self.kube = Kube(kubeconfig, context)
        self.dyn = self.kube.dynamic
        self._lock = threading.Lock()

    def resource(self, api_version: str, kind: str):
        with self._lock:
            try:
                return self.dyn.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                self.dyn.resources.invalidate_cache()
                return self.dyn.resources.get(api_version=api_version, kind=kind)

    def path(
        self,
        api_version: str,
        kind: str,
        name: str | None = None,
        namespace: str | None = None,
        sub: str | None = None,
    ) -> str:
        res = self.resource(api_version, kind)
        p = res.path(name=name, namespace=namespace if res.namespaced else None)
        return p + (f"/{sub}" if sub else "")

    def namespaced(self, api_version: str, kind: str) -> bool:
        return bool(self.resource(api_version, kind).namespaced)

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Obj | None:
        try:
            return self.dyn.request("GET", self.path(api_version, kind, name, namespace)).to_dict()
        except NotFoundError:
            return None

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Obj]:
        res = self.resource(api_version, kind)
        path = res.path(namespace=namespace if res.namespaced else None)
        out = self.dyn.request("GET", path, label_selector=label_selector).to_dict()
        items = out.get("items") or []
        for it in items:  # list items carry no apiVersion/kind
            it.setdefault("apiVersion", api_version)
            it.setdefault("kind", kind)
        return items

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        body: Any,
        content_type: str = "application/merge-patch+json",
        sub: str | None = None,
        **params,
    ) -> Obj:
        return self.dyn.request(
            "PATCH",
            self.path(api_version, kind, name, namespace, sub),
            body=body,
            content_type=content_type,
            **params,
        ).to_dict()

    def apply(self, obj: Obj, field_manager: str, force: bool = True, dry_run: bool = False) -> Obj:
        """Server-side apply (PATCH application/apply-patch+yaml)."""
        meta = obj["metadata"]
        params: dict[str, Any] = {"field_manager": field_manager, "force_conflicts": force}
        if dry_run:
            params["dry_run"] = "All"
        return self.patch(
            obj["apiVersion"],
            obj["kind"],
            meta["name"],
            meta.get("namespace"),
            json.dumps(obj),
            content_type="application/apply-patch+yaml",
            **params,
        )

    def create(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        return self.dyn.request(
            "POST",
            self.path(obj["apiVersion"], obj["kind"], namespace=meta.get("namespace")),
            body=obj,
        ).to_dict()

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        propagation: str = "Background",
    ) -> bool:
        try:
            self.dyn.request(
                "DELETE",
                self.path(api_version, kind, name, namespace),
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": propagation,
                },
            )
            return True
        except NotFoundError:
            return False

    def patch_status(self, obj: Obj, status: Obj) -> Obj | None:
        """Merge-patch the status subresource (None when the object is gone)."""
        meta = obj["metadata"]
        try:
            return self.patch(
                obj["apiVersion"],
                obj["kind"],
                meta["name"],
                meta.get("namespace"),
                {"status": status},
                sub="status",
            )
        except NotFoundError:
            return None

    def set_finalizers(self, obj: Obj, finalizers: builtins.list[str]) -> Obj | None:
        meta = obj["metadata"]
        body = {
            "metadata": {
                "finalizers": finalizers or None,
                "resourceVersion": meta["resourceVersion"],
            }
        }
        try:
            return self.patch(
                obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"), body
            )
        except NotFoundError:
            return None


# ---- conditions (metav1.Condition, as fluxcd/pkg runtime/conditions sets them) ----------------------
def set_condition(
    status: Obj, obj: Obj, ctype: str, ok: bool | None, reason: str, message: str
) -> None:
    """Set/replace one condition; lastTransitionTime changes only when the status flips."""
    conds = status.setdefault("conditions", [])
    value = "Unknown" if ok is None else ("True" if ok else "False")
    gen = obj["metadata"].get("generation")
    for c in conds:
        if c["type"] == ctype:
            if c.get("status") != value:
                c["lastTransitionTime"] = now_rfc3339()
            c.update(status=value, reason=reason, message=message[:32000], observedGeneration=gen)
            break
    else:
        conds.append(
            {
                "type": ctype,
                "status": value,
                "reason": reason,
                "message": message[:32000],
                "observedGeneration": gen,
                "lastTransitionTime": now_rfc3339(),
            }
        )
    # Ready first, like the Flux CLI/kstatus read them.
    conds.sort(key=lambda c: (c["type"] != "Ready", c["type"]))


def remove_condition(status: Obj, ctype: str) -> None:
    status["conditions"] = [c for c in status.get("conditions", []) if c["type"] != ctype]


def handled_reconcile_request(obj: Obj, status: Obj) -> None:
    """Acknowledge reconcile.fluxcd.io/requestedAt in status.lastHandledReconcileAt
    (fluxcd/pkg apis/meta ReconcileRequestStatus)."""
    token = (obj["metadata"].get("annotations") or {}).get("reconcile.fluxcd.io/requestedAt")
    if token:
        status["lastHandledReconcileAt"] = token


# ---- work queue + watches -----------------------------------------------------------------------
Key = tuple[str, str]  # (namespace, name)


class Controller:
    """One reconciler for one kind: watch -> de-duplicating delayed queue -> reconcile(key).

    reconcile(ns, name) returns the seconds until the next reconcile (None: only on events)."""

    def __init__(
        self,
        api: Api,
        api_version: str,
        kind: str,
        reconcile: Callable[[str, str], float | None],
        resync: float = 60.0,
        source_refs: Callable[[Obj], list[tuple[str, str, str]]] | None = None,
    ):
        self.api, self.api_version, self.kind = api, api_version, kind
        self.source_refs = source_refs
        self.reconcile_fn = reconcile
        self.resync = resync
        self._heap: list[tuple[float, Key]] = []
        self._due: dict[Key, float] = {}
        self._cv = threading.Condition()
        self._seen: dict[Key, tuple] = {}
        self.stopping = threading.Event()

    def enqueue(self, ns: str, name: str, delay: float = 0.0) -> None:
        key = (ns, name)
        at = time.monotonic() + max(0.0, delay)
        with self._cv:
            if key in self._due and self._due[key] <= at:
                return
            self._due[key] = at
            heapq.heappush(self._heap, (at, key))
            self._cv.notify()

    def enqueue_all(self) -> None:
        try:
            for o in self.api.list(self.api_version, self.kind):
                self.enqueue(o["metadata"]["namespace"], o["metadata"]["name"])
        except Exception:  # noqa: BLE001 - logged; the next resync retries
            log.exception("%s: list failed", self.kind)

    def enqueue_sources(self, kind: str, ns: str, name: str) -> None:
        """Requeue the objects that consume the source kind/ns/name (a new artifact)."""
        if self.source_refs is None:
            return
        try:
            for o in self.api.list(self.api_version, self.kind):
                if (kind, ns, name) in self.source_refs(o):
                    self.enqueue(o["metadata"]["namespace"], o["metadata"]["name"])
        except Exception:  # noqa: BLE001
            log.exception("%s: requeue on source change failed", self.kind)

    def _event_key(self, obj: Obj) -> tuple:
        meta = obj["metadata"]
        ann = meta.get("annotations") or {}
        return (
            meta.get("generation"),
            meta.get("deletionTimestamp"),
            tuple(meta.get("finalizers") or []),
            ann.get("reconcile.fluxcd.io/requestedAt"),
            ann.get("reconcile.fluxcd.io/forceAt"),
            ann.get("reconcile.fluxcd.io/resetAt"),
        )

    def _watch(self) -> None:
        while not self.stopping.is_set():
            try:
                res = self.api.resource(self.api_version, self.kind)
                for ev in self.api.dyn.watch(res, timeout=50):
                    obj = ev["raw_object"]
                    meta = obj["metadata"]
                    key = (meta.get("namespace", ""), meta["name"])
                    if ev["type"] == "DELETED":
                        self._seen.pop(key, None)
                        continue
                    marker = self._event_key(obj)
                    # Only spec/metadata changes trigger (our own status writes do not loop).
                    if self._seen.get(key) != marker:
                        self._seen[key] = marker
                        self.enqueue(*key)
                    if self.stopping.is_set():
                        return
            except Exception:  # noqa: BLE001 - reconnect
                log.warning(
                    "%s: watch interrupted: %s",
                    self.kind,
                    traceback.format_exc(limit=1).strip().splitlines()[-1],
                )
                time.sleep(1)

    def _resync_loop(self) -> None:
        while not self.stopping.wait(self.resync):
            self.enqueue_all()

    def _next(self) -> Key | None:
        with self._cv:
            while not self.stopping.is_set():
                if self._heap:
                    at, key = self._heap[0]
                    if self._due.get(key) != at:
                        heapq.heappop(self._heap)
                        continue
                    wait = at - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(self._heap)
                        del self._due[key]
                        return key
                    self._cv.wait(min(wait, 1.0))
                else:
                    self._cv.wait(1.0)
        return None

    def _work(self) -> None:
        while not self.stopping.is_set():
            key = self._next()
            if key is None:
                return
            ns, name = key
            try:
                after = self.reconcile_fn(ns, name)
            except ApiException as e:
                log.error(
                    "%s %s/%s: API error %s: %s",
                    self.kind,
                    ns,
                    name,
                    getattr(e, "status", "?"),
                    str(getattr(e, "body", e))[:500],
                )
                after = 5.0
            except Exception:  # noqa: BLE001 - one object's error never stops the others
                log.error(
                    "%s %s/%s: reconcile failed:\n%s", self.kind, ns, name, traceback.format_exc()
                )
                after = 5.0
            if after is not None:
                self.enqueue(ns, name, after)

    def start(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=t, name=f"{self.kind}-{t.__name__}", daemon=True)
            for t in (self._watch, self._resync_loop, self._work)
        ]
        self.enqueue_all()
        for t in threads:
            t.start()
        return threads
