"""kustomize-controller stand-in (Kustomization, kustomize.toolkit.fluxcd.io/v1).

Behaviour, each from the upstream source:
- build (internal/controller/kustomization_controller.go build; fluxcd/pkg kustomize generator):
  spec.path of the GitRepository artifact with kustomize (the real ``kubectl kustomize``); a
  directory without kustomization.yaml gets one generated listing its manifests; targetNamespace,
  namePrefix, nameSuffix, patches, images, components are set on the kustomization;
- apply (kustomization_controller.go apply; fluxcd/pkg ssa manager_apply.go, patch.go,
  normalize): owner labels kustomize.toolkit.fluxcd.io/name and /namespace on metadata.labels;
  objects annotated/labelled kustomize.toolkit.fluxcd.io/reconcile: disabled or ssa: Ignore are
  skipped, ssa: IfNotPresent only created; before applying, on the live object, the
  kubectl.kubernetes.io/last-applied-configuration annotation is removed and the managed-field
  entries of ``kubectl`` (Apply, Update), ``before-first-apply`` (Update) and the controller's own
  Update entry are merged into the controller's Apply entry (PatchReplaceFieldsManagers), unless
  kustomize.toolkit.fluxcd.io/ssa: Merge; server-side apply with field manager
  kustomize-controller and force (ownership conflicts are always forced); CRDs and Namespaces first
  (staged); with spec.force or the kustomize.toolkit.fluxcd.io/force: enabled marker, any
  409/422 of the apply (fluxcd/pkg ssa/errors IsImmutableError) deletes and re-applies the object
  (it stays deleted when the re-apply fails); every object is normalised first as upstream's
  ssa/normalize UnstructuredWithScheme does (handover.flux.ssa.flux_defaults, shared with the
  gate and the flux diff: ports get protocol TCP, also needed for SSA on Kubernetes < 1.22,
  numeric quantities become strings, a Secret's stringData is folded into data);
- inventory (api/v1/inventory_types.go, fluxcd/pkg ssa ObjMetadata): status.inventory.entries[]
  ``{id: <namespace>_<name>_<group>_<kind>, v: <version>}``;
- prune (spec.prune): inventory objects missing from the new build are deleted when they carry
  this Kustomization's owner labels and no prune/reconcile: disabled (deleteObjects);
- deletion (finalize / finalizerShouldDeleteResources): not suspended, inventory not empty, and
  deletionPolicy MirrorPrune with prune true, or Delete / WaitForTermination: the inventory is
  garbage-collected; Orphan, suspended, or MirrorPrune with prune false: orphaned;
- dependsOn (dependencies Ready, else DependencyNotReady and requeue), suspend, wait/healthChecks
  (Deployments/StatefulSets/DaemonSets rolled out, Flux objects Ready) -> Healthy and Ready,
  requestedAt acknowledged.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes.dynamic.exceptions import ApiException

from handover.core import tools
from handover.flux import rules as flux
from handover.flux import ssa
from handover.rehearsal import fidelity
from handover.rehearsal.flux import varsub
from handover.rehearsal.flux.runtime import (
    Api,
    Obj,
    handled_reconcile_request,
    log,
    parse_duration,
    remove_condition,
    set_condition,
)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
FORCE_MARKER = "kustomize.toolkit.fluxcd.io/force"
STAGE_FIRST = {"CustomResourceDefinition", "Namespace"}

# Managed-field entries taken over before applying (kustomization_controller.go apply()).
TAKEOVER = [
    ("kubectl", "Apply"),
    ("kubectl", "Update"),
    ("before-first-apply", "Update"),
    (flux.KUSTOMIZE_FIELD_MANAGER, "Update"),
]


IMMUTABLE_MESSAGE = re.compile(r"is\simmutable|immutable\sfield")


def dependency_error(obj: Obj, dep: Obj | None, dep_id: str, revision: str) -> str | None:
    """kustomize-controller internal/controller/kustomization_controller.go checkDependencies:
    the dependency must exist, be Ready for its generation (status.observedGeneration), and,
    when it uses the same source (kind, name, namespace defaulted to each object's own), have
    applied the source's current artifact revision."""
    if dep is None:
        return f"dependency '{dep_id}' not found"
    st = dep.get("status") or {}
    if (
        not st.get("conditions")
        or dep["metadata"].get("generation") != st.get("observedGeneration")
        or not flux.is_ready(dep)
    ):
        return f"dependency '{dep_id}' is not ready"
    mine, theirs = (
        (obj.get("spec") or {}).get("sourceRef") or {},
        (dep.get("spec") or {}).get("sourceRef") or {},
    )
    if (
        mine.get("kind"),
        mine.get("name"),
        mine.get("namespace") or obj["metadata"].get("namespace"),
    ) == (
        theirs.get("kind"),
        theirs.get("name"),
        theirs.get("namespace") or dep["metadata"].get("namespace"),
    ) and st.get("lastAppliedRevision") != revision:
        return f"dependency '{dep_id}' revision is not up to date"
    return None


class BuildError(Exception):
    pass


# ---- pure helpers (unit-tested) -----------------------------------------------------------------
def inventory_id(obj: Obj) -> dict[str, str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    meta = obj["metadata"]
    return {"id": f"{meta.get('namespace', '')}_{meta['name']}_{group}_{obj['kind']}", "v": version}


def parse_inventory_id(entry: dict[str, str]) -> tuple[str, str, str, str, str]:
    """(namespace, name, group, kind, version) of an inventory entry."""
    # namespaces, names, groups and kinds cannot contain '_'
    parts = entry["id"].split("_")
    if len(parts) != 4:
        raise ValueError(f"malformed inventory id {entry['id']!r}")
    return parts[0], parts[1], parts[2], parts[3], entry.get("v", "v1")


def merge_fields(a: Any, b: Any) -> Any:
    """Union of two managedFields fieldsV1 trees (fieldpath.Set union)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return copy.deepcopy(a if a is not None else b)
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = merge_fields(out.get(k), v) if k in out else copy.deepcopy(v)
    return out


def takeover_managed_fields(
    entries: list[Obj],
    owner: str = flux.KUSTOMIZE_FIELD_MANAGER,
    managers: list[tuple[str, str]] = TAKEOVER,
) -> list[Obj] | None:
    """The managedFields list after folding the matching entries (manager name prefix and
    operation, no subresource) into ``owner``'s Apply entry; None when nothing matches.
    Behaviour of fluxcd/pkg ssa/patch.go PatchReplaceFieldsManagers."""
    prev = None
    for e in entries:
        if e.get("manager") == owner and e.get("operation") == "Apply":
            prev = copy.deepcopy(e)
    out: list[Obj] = []
    edited = False
    for e in entries:
        if prev is not None and e.get("manager") == owner and e.get("operation") == "Apply":
            continue
        match = any(
            e.get("operation") == op
            and not e.get("subresource")
            and str(e.get("manager", "")).startswith(name)
            for name, op in managers
        )
        if match:
            edited = True
            if prev is None:
                prev = copy.deepcopy(e)
                prev["manager"] = owner
                prev["operation"] = "Apply"
            else:
                prev["fieldsV1"] = merge_fields(prev.get("fieldsV1"), e.get("fieldsV1"))
            continue
        out.append(e)
    if not edited or prev is None:  # edited implies prev
        return None
    return out + [prev]


def _marked(obj: Obj | None, key: str, value: str) -> bool:
    if not obj:
        return False
    meta = obj.get("metadata") or {}
    return (meta.get("annotations") or {}).get(key) == value or (meta.get("labels") or {}).get(
        key
    ) == value


def kstatus_failed(obj: Obj | None) -> str | None:
    """kstatus (sigs.k8s.io/cli-utils pkg/kstatus/status core.go) FailedStatus for the kinds the
    migration uses: a Deployment whose Progressing condition is False with reason
    ProgressDeadlineExceeded ("Progress deadline exceeded"), a Job with condition Failed=True
    ("Job Failed"). None when not Failed."""
    if obj is None:
        return None
    conds = (obj.get("status") or {}).get("conditions") or []
    if obj.get("kind") == "Deployment" and any(
        c.get("type") == "Progressing"
        and c.get("status") == "False"
        and c.get("reason") == "ProgressDeadlineExceeded"
        for c in conds
    ):
        return "Progress deadline exceeded"
    if obj.get("kind") == "Job" and any(
        c.get("type") == "Failed" and c.get("status") == "True" for c in conds
    ):
        return "Job Failed"
    return None


def health(obj: Obj | None) -> tuple[bool, str]:
    """(healthy, why not) as kstatus computes "Current" for the kinds the migration uses."""
    if obj is None:
        return False, "not found"
    kind = obj["kind"]
    meta, spec, st = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    gen = meta.get("generation")
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        if gen is not None and st.get("observedGeneration", 0) < gen:
            return False, "generation not observed"
    if kind == "Deployment":
        want = spec.get("replicas", 1)
        if (
            st.get("updatedReplicas", 0) < want
            or st.get("availableReplicas", 0) < want
            or st.get("readyReplicas", 0) < want
            or st.get("replicas", 0) > want
        ):
            return False, (
                f"Deployment rollout: {st.get('readyReplicas', 0)}/{want} ready, "
                f"{st.get('updatedReplicas', 0)} updated"
            )
        return True, ""
    if kind == "StatefulSet":
        want = spec.get("replicas", 1)
        if st.get("readyReplicas", 0) < want or (
            st.get("updateRevision")
            and st.get("currentRevision") != st.get("updateRevision")
            and st.get("updatedReplicas", 0) < want
        ):
            return False, f"StatefulSet rollout: {st.get('readyReplicas', 0)}/{want} ready"
        return True, ""
    if kind == "DaemonSet":
        want = st.get("desiredNumberScheduled", 0)
        if st.get("numberReady", 0) < want or st.get("updatedNumberScheduled", 0) < want:
            return False, f"DaemonSet rollout: {st.get('numberReady', 0)}/{want} ready"
        return True, ""
    if kind == "PersistentVolumeClaim":
        return (st.get("phase") == "Bound", f"PVC phase {st.get('phase')}")
    if kind == "Job":
        done = any(
            c.get("type") == "Complete" and c.get("status") == "True"
            for c in st.get("conditions") or []
        )
        return done, "Job not complete"
    if any(c.get("type") == "Ready" for c in st.get("conditions") or []):
        return flux.is_ready(obj), "not Ready"
    return True, ""


# ---- the controller -----------------------------------------------------------------------------
class KustomizeController:
    def __init__(self, api: Api, state_dir: Path, kubeconfig: str, context: str | None, source):
        self.api = api
        self.state_dir = state_dir
        self.source = source
        self.kubectl = str(tools.kubectl())
        self._health_started: dict[tuple[str, str], tuple[str, float]] = {}

    def reconcile(self, ns: str, name: str) -> float | None:
        ks = self.api.get(flux.KUSTOMIZE_API, "Kustomization", name, ns)
        if ks is None:
            return None
        meta, spec = ks["metadata"], ks.get("spec") or {}
        fins = meta.get("finalizers") or []
        if meta.get("deletionTimestamp"):
            return self.finalize(ks)
        if spec.get("suspend"):
            log.info("Kustomization %s/%s suspended: skipping", ns, name)
            return None
        if flux.FINALIZER not in fins:
            ks = self.api.set_finalizers(ks, fins + [flux.FINALIZER])
            if ks is None:
                return None
        interval = parse_duration(spec.get("interval"), 600)
        retry = parse_duration(spec.get("retryInterval"), min(interval, 5.0))
        status = copy.deepcopy(ks.get("status") or {})
        handled_reconcile_request(ks, status)
        gen = meta.get("generation")

        def fail(reason: str, msg: str, after: float) -> float:
            set_condition(status, ks, "Ready", False, reason, msg)
            remove_condition(status, "Reconciling")
            status["observedGeneration"] = gen
            self.api.patch_status(ks, status)
            log.warning("Kustomization %s/%s: %s: %s", ns, name, reason, msg[:500])
            return after

        refused = fidelity.refusals(ks)
        if refused:
            return fail(fidelity.UNEMULATED_REASON, fidelity.refusal_message(refused), interval)

        src = spec.get("sourceRef") or {}
        if src.get("kind") != "GitRepository":
            return fail(
                "ArtifactFailed",
                f"sourceRef kind {src.get('kind')} is not supported "
                "by the rehearsal stand-in (GitRepository only)",
                interval,
            )
        src_ns = src.get("namespace") or ns
        repo = self.api.get(flux.SOURCE_API, "GitRepository", src["name"], src_ns)
        artifact = ((repo or {}).get("status") or {}).get("artifact")
        tarball = self.source.artifact_file(artifact)
        if repo is None or tarball is None:
            return fail(
                "ArtifactFailed", f"Source artifact not found, retrying in {retry:.0f}s", retry
            )
        assert artifact is not None  # artifact_file found its file
        revision = artifact["revision"]
        # dependsOn after the source, as kustomize-controller's reconcile (checkDependencies
        # gets the source artifact for its revision check)
        for dep in spec.get("dependsOn") or []:
            dns = dep.get("namespace") or ns
            d = self.api.get(flux.KUSTOMIZE_API, "Kustomization", dep["name"], dns)
            why = dependency_error(ks, d, f"{dns}/{dep['name']}", revision)
            if why:
                return fail("DependencyNotReady", why, retry)
        status["lastAttemptedRevision"] = revision

        work = Path(tempfile.mkdtemp(prefix="ks-", dir=self._tmp()))
        try:
            try:
                objects = self.build(ks, tarball, work)
                objects = varsub.substitute(
                    objects,
                    varsub.load_vars(ks, lambda kind, n, nsp: self.api.get("v1", kind, n, nsp)),
                )
            except (BuildError, varsub.SubstitutionError) as e:
                return fail("BuildFailed", str(e), retry)
            try:
                applied, entries = self.apply_all(ks, objects)
            except ApplyError as e:
                return fail("ReconciliationFailed", str(e), retry)
            old = ((status.get("inventory") or {}).get("entries")) or []
            new_ids = {e["id"] for e in entries}
            if spec.get("prune"):
                stale = [e for e in old if e["id"] not in new_ids]
                self.delete_entries(ks, stale)
            status["inventory"] = {"entries": sorted(entries, key=lambda e: e["id"])}
            status["lastAppliedRevision"] = revision
            status["observedGeneration"] = gen
            msg = f"Applied revision: {revision}"
            # health
            checks = []
            if spec.get("wait"):
                checks = [
                    (
                        o["apiVersion"],
                        o["kind"],
                        o["metadata"]["name"],
                        o["metadata"].get("namespace"),
                    )
                    for o in applied
                ]
            else:
                for hc in spec.get("healthChecks") or []:
                    checks.append(
                        (
                            hc.get("apiVersion") or "v1",
                            hc["kind"],
                            hc["name"],
                            hc.get("namespace") or ns,
                        )
                    )
            if checks:
                unhealthy, failed = [], []
                for av, kind, n, nsp in checks:
                    try:
                        live = self.api.get(
                            av, kind, n, nsp if self.api.namespaced(av, kind) else None
                        )
                    except Exception:  # noqa: BLE001
                        live = None
                    ok, why = health(live)
                    bad = kstatus_failed(live)
                    if bad:
                        failed.append(f"{kind}/{nsp + '/' if nsp else ''}{n}: {bad}")
                    elif not ok:
                        unhealthy.append(f"{kind}/{nsp + '/' if nsp else ''}{n}: {why}")
                if failed:
                    # fluxcd/pkg ssa WaitForSet with FailFast (kustomize-controller default,
                    # feature gate DisableFailFastBehavior off): a Failed object ends the wait
                    set_condition(
                        status,
                        ks,
                        "Healthy",
                        False,
                        "HealthCheckFailed",
                        "health check failed: " + "; ".join(failed[:5]),
                    )
                    return fail(
                        "HealthCheckFailed", "health check failed: " + "; ".join(failed[:5]), retry
                    )
                key = (ns, name)
                started_rev, started = self._health_started.get(key, (None, 0.0))
                if started_rev != f"{revision}/{gen}":
                    started = time.monotonic()
                    self._health_started[key] = (f"{revision}/{gen}", started)
                timeout = parse_duration(spec.get("timeout"), interval)
                if unhealthy:
                    if time.monotonic() - started < timeout:
                        set_condition(
                            status,
                            ks,
                            "Reconciling",
                            True,
                            "Progressing",
                            "Health check in progress: " + "; ".join(unhealthy[:5]),
                        )
                        set_condition(
                            status, ks, "Ready", None, "Progressing", "Reconciliation in progress"
                        )
                        set_condition(
                            status, ks, "Healthy", None, "Progressing", "Health check in progress"
                        )
                        self.api.patch_status(ks, status)
                        return 2.0
                    set_condition(
                        status,
                        ks,
                        "Healthy",
                        False,
                        "HealthCheckFailed",
                        "health check failed after "
                        + f"{timeout:.0f}s: "
                        + "; ".join(unhealthy[:5]),
                    )
                    return fail(
                        "HealthCheckFailed",
                        "health check failed: " + "; ".join(unhealthy[:5]),
                        retry,
                    )
                set_condition(status, ks, "Healthy", True, "Succeeded", "Health check passed")
            else:
                remove_condition(status, "Healthy")
            remove_condition(status, "Reconciling")
            set_condition(status, ks, "Ready", True, "ReconciliationSucceeded", msg)
            self.api.patch_status(ks, status)
            return interval
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _tmp(self) -> Path:
        p = self.state_dir / "tmp"
        p.mkdir(parents=True, exist_ok=True)
        return p

    # -- build ------------------------------------------------------------------------------------
    def build(self, ks: Obj, tarball: Path, work: Path) -> list[Obj]:
        spec = ks.get("spec") or {}
        src = work / "src"
        src.mkdir()
        with tarfile.open(tarball) as tar:
            tar.extractall(src, filter="data")
        rel = (spec.get("path") or "./").strip()
        root = (src / rel).resolve()
        if not str(root).startswith(str(src.resolve())) or not root.is_dir():
            raise BuildError(f"kustomization path not found: stat {rel}: no such file or directory")
        if not any(
            (root / n).exists()
            for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")
        ):
            generate_kustomization(root)
        # fluxcd/pkg kustomize/kustomize_generator.go Generator.WriteFile: the directory's own
        # kustomization is edited in place: namespace / namePrefix / nameSuffix replaced,
        # patches and components appended, images merged by name
        kfile = next(
            root / n
            for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")
            if (root / n).exists()
        )
        kz: dict[str, Any] = yaml.safe_load(kfile.read_text()) or {}
        if spec.get("targetNamespace"):
            kz["namespace"] = spec["targetNamespace"]
        if spec.get("namePrefix"):
            kz["namePrefix"] = spec["namePrefix"]
        if spec.get("nameSuffix"):
            kz["nameSuffix"] = spec["nameSuffix"]
        if spec.get("patches"):
            kz["patches"] = list(kz.get("patches") or []) + list(spec["patches"])
        for img in spec.get("images") or []:
            images = list(kz.get("images") or [])
            idx = next((i for i, x in enumerate(images) if x.get("name") == img.get("name")), None)
            if idx is None:
                images.append(img)
            else:
                images[idx] = img
            kz["images"] = images
        if spec.get("components"):
            kz["components"] = list(kz.get("components") or []) + list(spec["components"])
        kfile.write_text(yaml.safe_dump(kz, sort_keys=False))
        # krusty with LoadRestrictionsNone, as kustomize-controller builds
        res = tools.run(
            [self.kubectl, "kustomize", str(root), "--load-restrictor", "LoadRestrictionsNone"],
            timeout=120,
        )
        if not res.ok:
            raise BuildError(f"kustomize build failed: {res.stderr.strip()[-1500:]}")
        objs = [d for d in yaml.safe_load_all(res.stdout) if isinstance(d, dict) and d.get("kind")]
        cm = spec.get("commonMetadata") or {}
        for o in objs:
            meta = o.setdefault("metadata", {})
            if cm.get("labels"):
                meta["labels"] = {**(meta.get("labels") or {}), **cm["labels"]}
            if cm.get("annotations"):
                meta["annotations"] = {**(meta.get("annotations") or {}), **cm["annotations"]}
        return objs

    # -- apply ------------------------------------------------------------------------------------
    def apply_all(self, ks: Obj, objects: list[Obj]) -> tuple[list[Obj], list[dict[str, str]]]:
        ns, name = ks["metadata"]["namespace"], ks["metadata"]["name"]
        force_all = bool((ks.get("spec") or {}).get("force"))
        entries: list[dict[str, str]] = []
        applied: list[Obj] = []
        errors: list[str] = []
        first = [o for o in objects if o["kind"] in STAGE_FIRST]
        rest = [o for o in objects if o["kind"] not in STAGE_FIRST]
        for stage in (first, rest):
            prepared: list[Obj] = []
            for obj in stage:
                obj = ssa.flux_defaults(obj)
                meta = obj["metadata"]
                labels = meta.get("labels") or {}
                labels[flux.KUSTOMIZE_OWNER_NAME] = name
                labels[flux.KUSTOMIZE_OWNER_NAMESPACE] = ns
                meta["labels"] = labels
                try:
                    if self.api.namespaced(obj["apiVersion"], obj["kind"]):
                        meta.setdefault("namespace", "default")
                except Exception as e:  # noqa: BLE001 - unknown kind
                    errors.append(f"{obj['kind']}/{meta.get('name')}: {e}")
                    continue
                entries.append(inventory_id(obj))
                prepared.append(obj)
            # fluxcd/pkg ssa ResourceManager.ApplyAll: every object of the stage is dry-run
            # first; any failure (other than an immutable one on a live object under force)
            # fails the stage before anything of it is applied
            if errors:
                raise ApplyError("\n".join(errors))
            for obj in prepared:
                err = self.dry_run_one(obj, force_all)
                if err:
                    errors.append(err)
            if errors:
                raise ApplyError("\n".join(errors))
            for obj in prepared:
                meta = obj["metadata"]
                try:
                    if self.apply_one(obj, force_all):
                        applied.append(obj)
                except ApiException as e:
                    errors.append(
                        f"{obj['kind']}/{meta.get('namespace', '')}"
                        f"{'/' if meta.get('namespace') else ''}{meta['name']} "
                        f"apply failed: {_api_message(e)}"
                    )
            if stage is first and first:
                self._wait_crds(first)
        if errors:
            raise ApplyError("\n".join(errors))
        return applied, entries

    def _skipped(self, obj: Obj, live: Obj | None) -> bool:
        """reconcile: disabled, ssa: Ignore, or ssa: IfNotPresent on a live object."""
        return (
            _marked(obj, flux.RECONCILE_ANNOTATION, "disabled")
            or _marked(live, flux.RECONCILE_ANNOTATION, "disabled")
            or _marked(obj, flux.SSA_ANNOTATION, "Ignore")
            or _marked(live, flux.SSA_ANNOTATION, "Ignore")
            or (live is not None and _marked(obj, flux.SSA_ANNOTATION, "IfNotPresent"))
        )

    def dry_run_one(self, obj: Obj, force_all: bool) -> str | None:
        """The server-side dry-run of one object: an error line, or None."""
        meta = obj["metadata"]
        live = self.api.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if self._skipped(obj, live):
            return None
        try:
            self.api.apply(obj, flux.KUSTOMIZE_FIELD_MANAGER, force=True, dry_run=True)
        except ApiException as e:
            text = _api_message(e)
            immutable = e.status in (409, 422) or bool(IMMUTABLE_MESSAGE.search(text))
            if (
                live is not None
                and immutable
                and (
                    force_all
                    or _marked(obj, FORCE_MARKER, "enabled")
                    or _marked(live, FORCE_MARKER, "enabled")
                )
            ):
                return None  # apply_one deletes and re-applies it
            return (
                f"{obj['kind']}/{meta.get('namespace', '')}"
                f"{'/' if meta.get('namespace') else ''}{meta['name']} dry-run failed: "
                f"{text}"
            )
        return None

    def apply_one(self, obj: Obj, force_all: bool) -> bool:
        """Apply one object; False when skipped (reconcile disabled / ssa Ignore)."""
        meta = obj["metadata"]
        live = self.api.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if (
            _marked(obj, flux.RECONCILE_ANNOTATION, "disabled")
            or _marked(live, flux.RECONCILE_ANNOTATION, "disabled")
            or _marked(obj, flux.SSA_ANNOTATION, "Ignore")
            or _marked(live, flux.SSA_ANNOTATION, "Ignore")
        ):
            return False
        if live is not None and _marked(obj, flux.SSA_ANNOTATION, "IfNotPresent"):
            return False
        if live is not None and not (
            _marked(obj, flux.SSA_ANNOTATION, "Merge")
            or _marked(live, flux.SSA_ANNOTATION, "Merge")
        ):
            self.cleanup(live)
        try:
            self.api.apply(obj, flux.KUSTOMIZE_FIELD_MANAGER, force=True)
        except ApiException as e:
            text = _api_message(e)
            # fluxcd/pkg ssa/errors IsImmutableError: any Conflict (409) or Invalid (422), or a
            # message matching "is immutable" / "immutable field" (CEL, webhooks)
            immutable = e.status in (409, 422) or bool(IMMUTABLE_MESSAGE.search(text))
            if immutable and (
                force_all
                or _marked(obj, FORCE_MARKER, "enabled")
                or _marked(live, FORCE_MARKER, "enabled")
            ):
                log.info(
                    "recreating %s/%s (immutable field change, force)", obj["kind"], meta["name"]
                )
                self.api.delete(
                    obj["apiVersion"],
                    obj["kind"],
                    meta["name"],
                    meta.get("namespace"),
                    propagation="Background",
                )
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and self.api.get(
                    obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")
                ):
                    time.sleep(0.2)
                self.api.apply(obj, flux.KUSTOMIZE_FIELD_MANAGER, force=True)
            else:
                raise
        return True

    def cleanup(self, live: Obj) -> None:
        """Remove the last-applied annotation and take over kubectl's managed fields
        (fluxcd/pkg ssa manager_apply.go cleanupMetadata) in one JSON patch."""
        meta = live["metadata"]
        patches: list[Obj] = []
        if LAST_APPLIED in (meta.get("annotations") or {}):
            patches.append(
                {
                    "op": "remove",
                    "path": "/metadata/annotations/"
                    + LAST_APPLIED.replace("~", "~0").replace("/", "~1"),
                }
            )
        mf = takeover_managed_fields(meta.get("managedFields") or [])
        if mf is not None:
            patches.append({"op": "replace", "path": "/metadata/managedFields", "value": mf})
        if patches:
            self.api.patch(
                live["apiVersion"],
                live["kind"],
                meta["name"],
                meta.get("namespace"),
                patches,
                content_type="application/json-patch+json",
            )

    def _wait_crds(self, objs: list[Obj]) -> None:
        names = [o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition"]
        deadline = time.monotonic() + 30
        for n in names:
            while time.monotonic() < deadline:
                crd = self.api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", n)
                if any(
                    c.get("type") == "Established" and c.get("status") == "True"
                    for c in ((crd or {}).get("status") or {}).get("conditions") or []
                ):
                    break
                time.sleep(0.2)
        if names:
            with self.api._lock:
                self.api.dyn.resources.invalidate_cache()

    # -- prune / delete ---------------------------------------------------------------------------
    def delete_entries(self, ks: Obj, entries: list[dict[str, str]]) -> list[str]:
        ns, name = ks["metadata"]["namespace"], ks["metadata"]["name"]
        deleted = []
        for e in entries:
            ons, oname, group, kind, version = parse_inventory_id(e)
            api_version = f"{group}/{version}" if group else version
            try:
                live = self.api.get(api_version, kind, oname, ons or None)
            except Exception:  # noqa: BLE001 - kind no longer served
                continue
            if live is None:
                continue
            labels = live["metadata"].get("labels") or {}
            if (
                labels.get(flux.KUSTOMIZE_OWNER_NAME) != name
                or labels.get(flux.KUSTOMIZE_OWNER_NAMESPACE) != ns
            ):
                continue  # Inclusions: only objects that carry our owner labels
            if (
                _marked(live, flux.PRUNE_ANNOTATION, "disabled")
                or _marked(live, flux.RECONCILE_ANNOTATION, "disabled")
                or _marked(live, flux.SSA_ANNOTATION, "Ignore")
            ):
                continue
            self.api.delete(api_version, kind, oname, ons or None, propagation="Background")
            deleted.append(e["id"])
            log.info("Kustomization %s/%s: deleted %s", ns, name, e["id"])
        return deleted

    def finalize(self, ks: Obj) -> float | None:
        meta, spec = ks["metadata"], ks.get("spec") or {}
        fins = meta.get("finalizers") or []
        if flux.FINALIZER not in fins:
            return None
        entries = ((ks.get("status") or {}).get("inventory") or {}).get("entries") or []
        policy = spec.get("deletionPolicy") or "MirrorPrune"
        should = (
            not spec.get("suspend")
            and bool(entries)
            and (
                (policy == "MirrorPrune" and bool(spec.get("prune")))
                or policy in ("Delete", "WaitForTermination")
            )
        )
        if should:
            deleted = self.delete_entries(ks, entries)
            if policy == "WaitForTermination":
                deadline = time.monotonic() + parse_duration(spec.get("timeout"), 60)
                for e in entries:
                    if e["id"] not in deleted:
                        continue
                    ons, oname, group, kind, version = parse_inventory_id(e)
                    av = f"{group}/{version}" if group else version
                    while time.monotonic() < deadline and self.api.get(
                        av, kind, oname, ons or None
                    ):
                        time.sleep(0.5)
        else:
            log.info(
                "Kustomization %s/%s deleted: inventory orphaned (suspend=%s, policy=%s, prune=%s)",
                meta["namespace"],
                meta["name"],
                bool(spec.get("suspend")),
                policy,
                bool(spec.get("prune")),
            )
        self.api.set_finalizers(ks, [f for f in fins if f != flux.FINALIZER])
        return None

    @staticmethod
    def source_refs(ks: Obj) -> list[tuple[str, str, str]]:
        src = (ks.get("spec") or {}).get("sourceRef") or {}
        if not src:
            return []
        return [
            (src.get("kind", ""), src.get("namespace") or ks["metadata"]["namespace"], src["name"])
        ]


class ApplyError(Exception):
    pass


def _api_message(e: ApiException) -> str:
    try:
        return json.loads(e.body or "").get("message", str(e.body))
    except Exception:  # noqa: BLE001
        return str(getattr(e, "body", e))[:500]


def generate_kustomization(root: Path) -> None:
    """A kustomization.yaml listing the manifests under ``root`` (sub-directories that have their
    own kustomization are included as directories), as the controller's generator does."""
    resources: list[str] = []

    def walk(d: Path) -> None:
        for p in sorted(d.iterdir()):
            if p.name.startswith("."):
                continue
            if p.is_dir():
                if any(
                    (p / n).exists()
                    for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")
                ):
                    resources.append(os.path.relpath(p, root))
                else:
                    walk(p)
            elif p.suffix in (".yaml", ".yml"):
                try:
                    docs = [x for x in yaml.safe_load_all(p.read_text()) if x]
                except yaml.YAMLError:
                    continue
                if docs and all(
                    isinstance(x, dict) and "apiVersion" in x and "kind" in x for x in docs
                ):
                    resources.append(os.path.relpath(p, root))

    walk(root)
    (root / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": resources,
            }
        )
    )
