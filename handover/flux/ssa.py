"""Server-side apply as kustomize-controller does it: the one place that prepares an object the
way Flux does, dry-runs it against the API server, and normalises the result for comparison.

Used by the gate's check 2 (handover.gate.dryrun), by the native ``flux diff``
(handover.flux.diff) and by the rehearsal's kustomize-controller stand-in before it applies
(handover.rehearsal.flux.kustomize_controller), so the three agree on what Flux sends.

1. ``native_defaults`` / ``flux_defaults``: what kustomize-controller does to every object before
   applying it (fluxcd/pkg ``ssa/normalize/normalize.go``, ``UnstructuredWithScheme``; formerly
   ``ssa.SetNativeKindsDefaults``). Upstream converts the object to its typed client-go form and
   back, which

   - sets protocol TCP on Service ports (``normalizeServiceProtoDefault``, kubernetes#98576) and on
     container ports (``normalizePodProtoDefault``, structured-merge-diff#130) of a Pod and of the
     pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob: a
     Kubernetes < 1.22 server rejects an apply of a port without one. Upstream walks
     ``Containers``; the initContainers' ports are defaulted here too (the API server defaults
     them to TCP anyway, so the apply result is the same, and a 1.20 server's SSA has the same
     list-map-key bug for them);
   - writes numeric resource quantities as strings (the typed ``resource.Quantity`` round trip);
   - folds a Secret's ``stringData`` into ``data`` (``normalizeSecret``, kubernetes#108008; the
     typed form holds ``[]byte``, so the unstructured ``data`` is base64);
   - drops empty ``metadata.labels`` / ``metadata.annotations`` (``omitempty`` in the typed form).
2. ``dry_run_apply``: the server-side apply with ``dryRun=All``, field manager
   ``kustomize-controller`` and ``force`` (fluxcd/pkg ``ssa`` ``ResourceManager.Diff`` /
   ``ApplyAll``).
3. ``comparable``: a live object or a dry-run result without what every write changes
   (``status`` as upstream removes it, ``managedFields``, ``resourceVersion``, ``generation``,
   ``uid``, ``creationTimestamp``, ``selfLink``) and without empty labels/annotations maps, so
   that two of them compare equal when applying would change nothing.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from handover.flux.rules import KUSTOMIZE_FIELD_MANAGER

POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
VOLATILE_META = (
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
)
CONTAINER_LISTS = ("containers", "initContainers")


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec of a Pod, of a workload's pod template, or of a CronJob's job template."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod" and obj.get("apiVersion") == "v1":
        return spec
    if kind in POD_TEMPLATE_KINDS:
        return (spec.get("template") or {}).get("spec")
    if kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        return (job.get("template") or {}).get("spec")
    return None


def _default_ports(ports: Any) -> None:
    for port in ports or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def _quantities_as_strings(container: dict[str, Any]) -> None:
    resources = container.get("resources") or {}
    for section in ("limits", "requests"):
        values = resources.get(section) or {}
        for k, v in list(values.items()):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                values[k] = str(v)


def _fold_string_data(secret: dict[str, Any]) -> None:
    string_data = secret.pop("stringData", None)
    if not string_data:
        return
    data = secret.get("data") or {}
    for k, v in string_data.items():
        data[k] = base64.b64encode(str(v).encode()).decode()
    secret["data"] = data


def native_defaults(obj: dict[str, Any]) -> dict[str, Any]:
    """Flux's pre-apply normalisation (module docstring, point 1). Changes ``obj`` in place and
    returns it."""
    if obj.get("apiVersion") == "v1" and obj.get("kind") == "Service":
        _default_ports((obj.get("spec") or {}).get("ports"))
    spec = pod_spec(obj)
    if spec:
        for key in CONTAINER_LISTS:
            for c in spec.get(key) or []:
                if isinstance(c, dict):
                    _default_ports(c.get("ports"))
                    _quantities_as_strings(c)
    if obj.get("apiVersion") == "v1" and obj.get("kind") == "Secret":
        _fold_string_data(obj)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for k in ("labels", "annotations"):
            if k in meta and not meta[k]:
                meta.pop(k)
    return obj


def flux_defaults(obj: dict[str, Any]) -> dict[str, Any]:
    """``native_defaults`` on a copy (the input is not modified)."""
    return native_defaults(copy.deepcopy(obj))


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of a live object or dry-run result without the fields every write changes
    (module docstring, point 3)."""
    o = copy.deepcopy(obj)
    o.pop("status", None)
    meta = o.get("metadata") or {}
    for k in VOLATILE_META:
        meta.pop(k, None)
    for k in ("labels", "annotations"):
        if k in meta and not meta[k]:
            meta.pop(k)
    return o


def dry_run_apply(
    resource: Any,
    body: dict[str, Any],
    namespace: str | None = None,
    field_manager: str = KUSTOMIZE_FIELD_MANAGER,
) -> dict[str, Any]:
    """Server-side apply ``body`` with ``dryRun=All`` and forced conflicts, as kustomize-controller
    applies (``resource``: a kubernetes dynamic-client Resource). Returns the object the server
    would store; raises the client's DynamicApiError / ApiException when the server refuses it."""
    kwargs: dict[str, Any] = {
        "body": body,
        "field_manager": field_manager,
        "force_conflicts": True,
        "dry_run": "All",
    }
    if namespace:
        kwargs["namespace"] = namespace
    return resource.server_side_apply(**kwargs).to_dict()
