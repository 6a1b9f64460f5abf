"""Abort the migration: hand components back from Flux to the Helm CLI and kubectl, in place.

The hand-written runbook's "Rollback Flux Entirely" (suspend the entry Kustomizations,
``flux uninstall``, ``helm install`` every release again, ``kubectl apply`` the YAML) is unsafe:
``helm install`` of a release that still exists fails ("cannot re-use a name that is still in
use") or, forced, recreates the pods; deleting an unsuspended HelmRelease uninstalls its release;
deleting a Kustomization that would garbage-collect deletes the workloads being kept. The safe way
keeps every object and the Helm release where they are and only takes Flux's hands off them:

1. ``state``: which components Flux manages now, read from the cluster (the HelmRelease of the
   release, Flux owner labels on the component's objects); the journal is only a hint;
2. ``freeze``: suspend the entry-point Kustomizations (cluster, and Git through the phase 2/4 edit
   helper) and every Kustomization / HelmRelease that owns the component;
3. ``orphan``: delete the suspended HelmRelease (helm-controller skips the uninstall of a suspended
   object), delete the component's own temporary Kustomization only when it has nothing to
   garbage-collect (the Mutator refuses otherwise), leave the Helm release in storage at its
   revision (an ordinary release: ``helm list`` shows it, ``helm upgrade`` works), remove Flux's
   owner labels from the live objects, and give kubectl-managed objects their
   ``last-applied-configuration`` back from the phase-3 backup;
4. ``prove`` (the suite): same pod UIDs, no restarts, release deployed at the same revision, the
   workloads answer;
5. ``remove_flux`` (optional): controllers and CRDs, only when no Flux object left has a finalizer
   that would act.

Every mutation goes through :class:`handover.core.mutation.Mutator` (journal first, --perform, context
guard). Every action checks the live state first, so running it again (a resumed abort) repeats
nothing that is done.
"""

from __future__ import annotations

import glob
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from handover import target as targets
from handover.chain import backup as backup_mod
from handover.core import tools, wait
from handover.core.errors import HandoverError
from handover.core.inventory import Component, Inventory
from handover.core.objects import ObjectId, group_of, object_id
from handover.flux import rules as flux
from handover.sources import helm_storage

if TYPE_CHECKING:
    from handover.core.kube import Kube
    from handover.core.mutation import Mutator

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
FLUX_LABEL_PREFIXES = ("kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/")
FLUX_KINDS = {
    ("helm.toolkit.fluxcd.io", "HelmRelease"),
    ("kustomize.toolkit.fluxcd.io", "Kustomization"),
    ("source.toolkit.fluxcd.io", "GitRepository"),
    ("source.toolkit.fluxcd.io", "HelmRepository"),
    ("source.toolkit.fluxcd.io", "HelmChart"),
    ("source.toolkit.fluxcd.io", "OCIRepository"),
    ("source.toolkit.fluxcd.io", "Bucket"),
}


class AbortError(HandoverError):
    """The abort cannot go on safely; the message says what is wrong and what to do."""


def _flux_labels(obj: dict[str, Any] | None) -> dict[str, str]:
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return {k: v for k, v in labels.items() if k.startswith(FLUX_LABEL_PREFIXES)}


def _what(kind: str, name: str, ns: str | None) -> str:
    return f"{kind} {ns + '/' if ns else ''}{name}"


# -- 1. which components Flux manages now -----------------------------------------------------
@dataclass
class ComponentState:
    """What the cluster says about one component (plain data: journaled and reported)."""

    name: str
    type: str
    managed: bool  # Flux manages (part of) it now
    evidence: list[str] = field(default_factory=list)  # why "managed", object by object
    helm_release: str = ""  # "ns/name" of the live HelmRelease, "" when none
    kustomizations: list[str] = field(default_factory=list)  # "ns/name" owning its objects
    release_revision: int | None = None
    release_status: str = ""
    journal_hint: str = ""  # phase 3's journal state for it (fresh, done, rolled-back, ...)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ComponentState:
        return cls(**d)

    def describe(self) -> str:
        who = "managed by Flux" if self.managed else "with the Helm CLI / kubectl (not Flux)"
        ev = "; ".join(self.evidence) if self.evidence else "no Flux owner label, no HelmRelease"
        return f"{self.name}: {who} ({ev}); phase 3 journal: {self.journal_hint or 'no entry'}"


def component_objects(
    kube: Kube, inventory: Inventory, component: Component
) -> list[tuple[str, str, str | None, str]]:
    """(apiVersion, kind, namespace or None, name) of the component's live objects: the release
    manifest's objects (newest revision), the component path's kustomize build (Flux kinds
    left out: they are handled by name), its workloads and PVs."""
    from handover.sources import kustomize

    refs: dict[tuple[str, str, str | None, str], None] = {}

    def add(api_version: str, kind: str, ns: str | None, name: str, default_ns: str) -> None:
        if (group_of(api_version), kind) in FLUX_KINDS:
            return
        try:
            namespaced = kube.resource(api_version, kind).namespaced
        except Exception:  # noqa: BLE001 - a kind the server does not serve: nothing live
            return
        refs[(api_version, kind, (ns or default_ns) if namespaced else None, name)] = None

    if component.release is not None:
        rel = helm_storage.latest(kube, component.release.name, component.release.namespace)
        if rel is not None:
            for d in yaml.safe_load_all(rel.manifest):
                if d and d.get("kind"):
                    m = d.get("metadata") or {}
                    add(d["apiVersion"], d["kind"], m.get("namespace"), m["name"], rel.namespace)
    path = inventory.gitops.path / component.path
    if path.is_dir():
        for d in kustomize.build(path):
            m = d.get("metadata") or {}
            add(d["apiVersion"], d["kind"], m.get("namespace"), m["name"], "default")
    for w in component.workloads:
        add("apps/v1", w.kind, w.namespace, w.name, w.namespace)
    for pv in component.pvs:
        add("v1", "PersistentVolume", None, pv, "")
    return list(refs)


def state(
    kube: Kube, inventory: Inventory, component: Component, journal_hint: str = ""
) -> ComponentState:
    """Read from the cluster whether Flux manages the component now (read-only)."""
    st = ComponentState(component.name, component.type, False, journal_hint=journal_hint)
    flux_served = kube.has_resource(flux.HELM_API, "HelmRelease")
    if component.release is not None:
        rel = helm_storage.latest(kube, component.release.name, component.release.namespace)
        if rel is not None:
            st.release_revision, st.release_status = rel.revision, rel.status
    if component.helm_release is not None and flux_served:
        hr = component.helm_release
        live = kube.get(flux.HELM_API, "HelmRelease", hr.name, hr.namespace)
        if live is not None:
            st.helm_release = f"{hr.namespace}/{hr.name}"
            st.evidence.append(
                f"HelmRelease {hr.namespace}/{hr.name} exists (suspend: "
                f"{bool((live.get('spec') or {}).get('suspend'))})"
            )
    if component.release is not None and flux_served:
        for live_hr in kube.list(flux.HELM_API, "HelmRelease"):
            m = live_hr["metadata"]
            if (
                flux.helm_release_name(live_hr) == component.release.name
                and flux.storage_namespace(live_hr) == component.release.namespace
                and f"{m['namespace']}/{m['name']}" != st.helm_release
            ):
                raise AbortError(
                    f"{component.name}: HelmRelease {m['namespace']}/{m['name']} also manages "
                    f"release {component.release.namespace}/{component.release.name} and is not "
                    "the inventory's helmRelease: fix the inventory (components[].helmRelease) "
                    "so the abort hands back the right object; nothing was changed."
                )
    owners: dict[str, None] = {}
    for api_version, kind, ns, name in component_objects(kube, inventory, component):
        live = kube.get(api_version, kind, name, ns)
        labels = _flux_labels(live)
        if not labels:
            continue
        if flux.KUSTOMIZE_OWNER_NAME in labels:
            owners[
                f"{labels.get(flux.KUSTOMIZE_OWNER_NAMESPACE, '')}/"
                f"{labels[flux.KUSTOMIZE_OWNER_NAME]}"
            ] = None
        st.evidence.append(
            f"{_what(kind, name, ns)} labelled "
            + ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        )
    if st.helm_release and flux_served:
        ref = component.helm_release
        assert ref is not None, "st.helm_release is set only from the inventory's helmRelease"
        live = kube.get(flux.HELM_API, "HelmRelease", ref.name, ref.namespace)
        labels = _flux_labels(live)
        if flux.KUSTOMIZE_OWNER_NAME in labels:
            owners[
                f"{labels.get(flux.KUSTOMIZE_OWNER_NAMESPACE, '')}/"
                f"{labels[flux.KUSTOMIZE_OWNER_NAME]}"
            ] = None
    if flux_served:
        tmp = kube.get(
            flux.KUSTOMIZE_API,
            "Kustomization",
            component.kustomization_name,
            inventory.cluster.flux_namespace,
        )
        if tmp is not None:
            owners[f"{inventory.cluster.flux_namespace}/{component.kustomization_name}"] = None
            st.evidence.append(
                f"temporary Kustomization {inventory.cluster.flux_namespace}/"
                f"{component.kustomization_name} exists"
            )
    st.kustomizations = list(owners)
    st.managed = bool(st.evidence)
    return st


# -- 2. freeze ---------------------------------------------------------------------------------
def suspend(kube: Kube, mutator: Mutator, api_version: str, kind: str, name: str, ns: str) -> str:
    """Suspend one Flux object (no-op when it is gone or already suspended). Returns what was
    done."""
    live = kube.get(api_version, kind, name, ns)
    if live is None:
        return f"{kind} {ns}/{name}: not present"
    if (live.get("spec") or {}).get("suspend"):
        return f"{kind} {ns}/{name}: already suspended"
    mutator.suspend(api_version, kind, name, ns, True)
    return f"{kind} {ns}/{name}: suspended"


def entry_kustomizations(inventory: Inventory) -> list[str]:
    return [ep.name for ep in inventory.gitops.entrypoints]


def freeze_cluster(
    kube: Kube, mutator: Mutator, inventory: Inventory, st: ComponentState
) -> list[str]:
    """Suspend the entry-point Kustomizations, the component's owning Kustomizations and its
    HelmRelease in the cluster. Returns one line per object."""
    ns = inventory.cluster.flux_namespace
    done = []
    if not kube.has_resource(flux.KUSTOMIZE_API, "Kustomization"):
        return ["Flux is not installed: nothing to suspend"]
    for name in entry_kustomizations(inventory):
        done.append(suspend(kube, mutator, flux.KUSTOMIZE_API, "Kustomization", name, ns))
    for ref in st.kustomizations:
        kns, name = ref.split("/", 1)
        if name in entry_kustomizations(inventory) and kns == ns:
            continue
        done.append(suspend(kube, mutator, flux.KUSTOMIZE_API, "Kustomization", name, kns))
    if st.helm_release:
        hns, name = st.helm_release.split("/", 1)
        done.append(suspend(kube, mutator, flux.HELM_API, "HelmRelease", name, hns))
    return done


def _ns_name(ref: str) -> tuple[str, str]:
    """ "namespace/name" (as ComponentState records it) split in two."""
    ns, name = ref.split("/", 1)
    return ns, name


def not_suspended(kube: Kube, inventory: Inventory, st: ComponentState) -> list[str]:
    """Objects of the freeze that are live and not suspended (the freeze's assertion)."""
    ns = inventory.cluster.flux_namespace
    refs = [(flux.KUSTOMIZE_API, "Kustomization", ns, n) for n in entry_kustomizations(inventory)]
    refs += [(flux.KUSTOMIZE_API, "Kustomization", *_ns_name(r)) for r in st.kustomizations]
    if st.helm_release:
        refs.append((flux.HELM_API, "HelmRelease", *_ns_name(st.helm_release)))
    out: list[str] = []
    if not kube.has_resource(flux.KUSTOMIZE_API, "Kustomization"):
        return out
    for api_version, kind, rns, name in refs:
        live = kube.get(api_version, kind, name, rns)
        if live is not None and not (live.get("spec") or {}).get("suspend"):
            out.append(f"{kind} {rns}/{name}")
    return out


# -- 3. orphan ---------------------------------------------------------------------------------
def find_backup(
    inventory: Inventory, component: str, journal_dir: str | None
) -> backup_mod.BackupRecord | None:
    """The phase-3 backup of the component: the one the journal names (``journal_dir``), else
    the newest ``<backups>/<component>/<run>/index.json`` on disk."""
    if journal_dir:
        try:
            return backup_mod.load_record(journal_dir)
        except (backup_mod.BackupError, OSError):
            pass
    found = sorted(
        glob.glob(str(inventory.backups / component / "*" / "index.json")),
        key=lambda p: Path(p).stat().st_mtime,
    )
    for index in reversed(found):
        try:
            return backup_mod.load_record(Path(index).parent)
        except (backup_mod.BackupError, OSError):
            continue
    return None


def delete_helmrelease(
    kube: Kube, mutator: Mutator, st: ComponentState, timeout: float = 60
) -> str:
    """Delete the component's HelmRelease, which must be suspended (the Mutator refuses an
    unsuspended one: it would uninstall the release); wait for its finalizer."""
    from handover.flux.takeover import wait_gone

    if not st.helm_release:
        return "no HelmRelease"
    ns, name = st.helm_release.split("/", 1)
    if (
        not kube.has_resource(flux.HELM_API, "HelmRelease")
        or kube.get(flux.HELM_API, "HelmRelease", name, ns) is None
    ):
        return f"HelmRelease {ns}/{name}: already gone"
    mutator.delete(
        flux.HELM_API,
        "HelmRelease",
        name,
        ns,
        "abort: suspended, so the release is orphaned, not uninstalled",
    )
    if not wait_gone(kube, flux.HELM_API, "HelmRelease", name, ns, timeout):
        raise AbortError(
            f"HelmRelease {ns}/{name} still present {timeout:.0f} s after its "
            "deletion (finalizer not removed): check helm-controller"
        )
    return f"HelmRelease {ns}/{name}: deleted while suspended (release orphaned)"


def delete_own_kustomization(
    kube: Kube, mutator: Mutator, inventory: Inventory, component: Component
) -> str:
    """Delete the component's temporary Kustomization (``handover-<name>``) when it is left; the
    Mutator refuses when deleting it would garbage-collect (not suspended, prune, no Orphan)."""
    from handover.flux.takeover import remove

    ns, name = inventory.cluster.flux_namespace, component.kustomization_name
    if (
        not kube.has_resource(flux.KUSTOMIZE_API, "Kustomization")
        or kube.get(flux.KUSTOMIZE_API, "Kustomization", name, ns) is None
    ):
        return f"Kustomization {ns}/{name}: not present"
    remove(kube, mutator, inventory, name, "abort: suspended/orphaning, nothing garbage-collected")
    return f"Kustomization {ns}/{name}: deleted without garbage collection"


def migration_owners(inventory: Inventory) -> frozenset[str]:
    """Names of the Flux objects this migration makes (besides every ``handover-*``
    Kustomization): the entry points, flux-system's sync Kustomization, the HelmReleases."""
    names = {"flux-system"} | {ep.name for ep in inventory.gitops.entrypoints}
    names |= {c.helm_release.name for c in inventory.components if c.helm_release is not None}
    return frozenset(names)


def _owned_by_migration(labels: dict[str, Any], prefix: str, owners: frozenset[str]) -> bool:
    name = labels.get(prefix + "name")
    return isinstance(name, str) and (name.startswith("handover-") or name in owners)


def metadata_patch(
    live: dict[str, Any],
    backup_obj: dict[str, Any] | None,
    kubectl_managed: bool,
    owners: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Merge patch that takes Flux's hands off one live object: its Flux owner labels removed
    (unless the backup from before the handover had the same label, written by a Flux object that
    is not this migration's: a backup of an object shared by two components, e.g. a PV of storage
    and of Loki, taken when the earlier component's handover had already labelled it, does not
    count as "before"), and for kubectl-managed objects the backup's last-applied-configuration
    put back."""
    before = (backup_obj or {}).get("metadata") or {}
    before_labels = dict(before.get("labels") or {})
    for prefix in FLUX_LABEL_PREFIXES:
        if _owned_by_migration(before_labels, prefix, owners):
            before_labels = {k: v for k, v in before_labels.items() if not k.startswith(prefix)}
    patch: dict[str, Any] = {}
    labels = {k: None for k, v in _flux_labels(live).items() if before_labels.get(k) != v}
    if labels:
        patch["labels"] = labels
    if kubectl_managed:
        want = (before.get("annotations") or {}).get(LAST_APPLIED)
        have = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
        if want is not None and want != have:
            patch["annotations"] = {LAST_APPLIED: want}
    return patch


def release_labels(
    kube: Kube,
    mutator: Mutator,
    inventory: Inventory,
    component: Component,
    record: backup_mod.BackupRecord | None,
) -> list[str]:
    """Remove Flux owner labels from the component's live objects; kubectl-managed objects
    (components of type manifests / storage) get their last-applied-configuration back from the
    backup. Returns one line per object patched."""
    by_key: dict[ObjectId, dict[str, Any]] = {}
    if record is not None:
        for obj in backup_mod.live_objects(record):
            by_key[object_id(obj)] = obj
    kubectl_managed = component.type != "helm"
    owners = migration_owners(inventory)
    done = []
    for api_version, kind, ns, name in component_objects(kube, inventory, component):
        live = kube.get(api_version, kind, name, ns)
        if live is None:
            continue
        b = by_key.get(ObjectId(group_of(api_version), kind, ns or "", name))
        patch = metadata_patch(live, b, kubectl_managed, owners)
        if not patch:
            continue
        what = _what(kind, name, ns)
        desc = []
        if "labels" in patch:
            desc.append("remove Flux owner labels " + ", ".join(sorted(patch["labels"])))
        if "annotations" in patch:
            desc.append(
                f"restore {LAST_APPLIED} from the backup {record.directory}"
                if record
                else f"restore {LAST_APPLIED}"
            )
        mutator.patch(
            api_version,
            kind,
            name,
            ns,
            {"metadata": patch},
            description="abort: " + "; ".join(desc),
        )
        done.append(f"{what}: " + "; ".join(desc))
    return done


def labels_left(kube: Kube, inventory: Inventory, component: Component) -> list[str]:
    """The component's live objects that still carry a Flux owner label."""
    out = []
    for api_version, kind, ns, name in component_objects(kube, inventory, component):
        labels = _flux_labels(kube.get(api_version, kind, name, ns))
        if labels:
            out.append(f"{_what(kind, name, ns)}: " + ", ".join(sorted(labels)))
    return out


def last_applied_missing(
    kube: Kube, inventory: Inventory, component: Component, record: backup_mod.BackupRecord | None
) -> list[str]:
    """kubectl-managed objects whose last-applied-configuration is not the backup's."""
    if component.type == "helm" or record is None:
        return []
    out = []
    for obj in backup_mod.live_objects(record):
        m = obj["metadata"]
        want = (m.get("annotations") or {}).get(LAST_APPLIED)
        if want is None:
            continue
        res = kube.resource(obj["apiVersion"], obj["kind"])
        ns = m.get("namespace") if res.namespaced else None
        live = kube.get(obj["apiVersion"], obj["kind"], m["name"], ns)
        if live is None:
            continue
        have = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
        if have != want:
            out.append(
                f"{_what(obj['kind'], m['name'], ns)}: {LAST_APPLIED} "
                f"{'missing' if have is None else 'differs'} (backup {record.directory})"
            )
    return out


# -- 4. proof helpers ------------------------------------------------------------------------
def helm_list(kube: Kube, release: str, namespace: str) -> dict[str, Any] | None:
    """What the real ``helm list`` says about one release (read-only), or None."""
    argv = [
        str(tools.helm()),
        "list",
        "--namespace",
        namespace,
        "--filter",
        f"^{release}$",
        "--all",
        "--output",
        "json",
        "--kube-context",
        kube.context,
    ]
    if kube.kubeconfig:
        argv += ["--kubeconfig", str(kube.kubeconfig)]
    res = tools.run(argv)
    if not res.ok:
        raise AbortError(f"helm list -n {namespace} failed: {res.stderr.strip()[-500:]}")
    rows = json.loads(res.stdout or "[]")
    return next((r for r in rows if r.get("name") == release), None)


# -- 5. remove Flux ----------------------------------------------------------------------------
FLUX_CR_KINDS = (
    (flux.KUSTOMIZE_API, "Kustomization"),
    (flux.HELM_API, "HelmRelease"),
    (flux.SOURCE_API, "GitRepository"),
    (flux.SOURCE_API, "HelmRepository"),
)


def flux_objects(kube: Kube) -> list[dict[str, Any]]:
    out = []
    for api_version, kind in FLUX_CR_KINDS:
        if kube.has_resource(api_version, kind):
            out += kube.list(api_version, kind)
    return out


def acting_finalizers(kube: Kube, mutator: Mutator) -> list[str]:
    """Flux objects whose finalizer would act on deletion: a HelmRelease that would uninstall its
    release, a Kustomization that would garbage-collect its inventory (the Mutator's deletion
    rules, reused). Sources' finalizers only remove their own artifacts."""
    out = []
    for obj in flux_objects(kube):
        m = obj["metadata"]
        if flux.FINALIZER not in (m.get("finalizers") or []):
            continue
        if obj["kind"] not in ("HelmRelease", "Kustomization"):
            continue
        why = mutator.delete_safety(obj["apiVersion"], obj["kind"], m["name"], m["namespace"])
        if why:
            out.append(why)
    return out


def suspend_all(kube: Kube, mutator: Mutator) -> list[str]:
    """Suspend every Kustomization and HelmRelease left (before removing Flux)."""
    done = []
    for api_version, kind in FLUX_CR_KINDS[:2]:
        if not kube.has_resource(api_version, kind):
            continue
        for obj in kube.list(api_version, kind):
            m = obj["metadata"]
            line = suspend(kube, mutator, api_version, kind, m["name"], m["namespace"])
            if line.endswith(": suspended"):
                done.append(line)
    return done


def foreign_objects_in_flux_namespace(kube: Kube, inventory: Inventory) -> list[str]:
    """Workloads, Services, claims and Helm releases in the Flux namespace that are not Flux's
    own: removing Flux (its namespace) would delete them."""
    ns = inventory.cluster.flux_namespace
    out = []
    for api_version, kind in (
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("v1", "Service"),
        ("v1", "PersistentVolumeClaim"),
    ):
        for obj in kube.list(api_version, kind, ns):
            labels = obj["metadata"].get("labels") or {}
            if labels.get("app.kubernetes.io/part-of") != "flux":
                out.append(_what(kind, obj["metadata"]["name"], ns))
    for rel in helm_storage.list_releases(kube, ns):
        out.append(f"Helm release {ns}/{rel.name}")
    return out


def flux_uninstall(kube, mutator, inventory: Inventory) -> str:
    """A live cluster's Flux removal: ``flux uninstall --silent`` (which removes the custom
    resources' finalizers before the CRDs, so nothing is pruned), through the mutator."""
    from handover.flux.bootstrap import flux_cli

    cli = flux_cli()
    if cli is None:
        raise AbortError(
            "the flux CLI is not installed (not on PATH, HANDOVER_FLUX unset): "
            "it is needed to remove Flux (`flux uninstall`); nothing was "
            "removed. Everything is suspended and orphaned: Flux can stay."
        )
    argv = [
        str(cli),
        "uninstall",
        "--silent",
        "--namespace",
        inventory.cluster.flux_namespace,
        "--context",
        kube.context,
    ]
    if kube.kubeconfig:
        argv += ["--kubeconfig", str(kube.kubeconfig)]
    action = f"flux uninstall --silent --namespace {inventory.cluster.flux_namespace}"
    mutator.call(action, lambda: tools.run(argv, check=True, timeout=900))
    return action


def remove_flux(kube, mutator, inventory: Inventory) -> list[str]:
    """Remove the Flux controllers and CRDs. Refused (AbortError, nothing removed) while a Flux
    object has a finalizer that would act, or when the Flux namespace holds objects that are not
    Flux's own. On the rehearsal cluster the stand-ins are uninstalled; on a live cluster
    ``flux uninstall --silent`` (which removes the custom resources' finalizers before the CRDs,
    so nothing is pruned)."""
    if not kube.has_resource(flux.KUSTOMIZE_API, "Kustomization"):
        return ["Flux is not installed: nothing to remove"]
    done = suspend_all(kube, mutator)
    acting = acting_finalizers(kube, mutator)
    if acting:
        raise AbortError(
            "refusing to remove Flux: these objects' finalizers would act:\n- "
            + "\n- ".join(acting)
        )
    foreign = foreign_objects_in_flux_namespace(kube, inventory)
    if foreign:
        raise AbortError(
            "refusing to remove Flux: the namespace "
            f"{inventory.cluster.flux_namespace} holds objects that are not Flux's "
            "own and would be deleted with it: "
            + ", ".join(foreign)
            + ". Move them first; nothing was removed."
        )
    action = targets.of(inventory).remove_flux(kube, mutator, inventory)
    done.append(action)

    def still_served() -> list[str]:
        kube.dynamic.resources.invalidate_cache()
        served = [k for a, k in FLUX_CR_KINDS if kube.has_resource(a, k)]
        if kube.get("v1", "Namespace", inventory.cluster.flux_namespace) is not None:
            served.append(f"namespace {inventory.cluster.flux_namespace} (terminating)")
        return served

    # CRDs go once their custom resources are gone (asynchronous)
    served = wait.until(
        "Flux CRDs and namespace gone",
        still_served,
        timeout=120,
        interval=1,
        done=lambda s: not s,
        report=False,
    )
    if served:
        raise AbortError(
            f"Flux removed, but {', '.join(served)} still served 120 s later: "
            "look at `kubectl get crd | grep fluxcd` (a custom resource with a "
            "finalizer left?)"
        )
    return done
