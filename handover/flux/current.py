"""Rules of current Flux (2.5 .. 2.9) and Helm 4 for the inventory's ``cluster.fluxVersion``.

Each rule cites its upstream source (see ../shared/docs/flux-and-helm-facts.md, "Current Flux"):

- take ownership (``TAKE_OWNERSHIP``): on by default since Flux 2.4; ``spec.install`` /
  ``spec.upgrade.disableTakeOwnership`` exist from Flux 2.5 (helm-controller v1.2.0). On during
  the handover, a release-name / storage-namespace mismatch fails instead of silently installing
  a second release: recommended (warning) when missing; an error when set for a Flux that does
  not know it (it would do nothing), or set for install only (the adoption is an upgrade).
- upgrade remediation and strategy (``REMEDIATION``): ``spec.upgrade.remediation.strategy:
  uninstall`` uninstalls the adopted release when the adoption upgrade fails (error);
  ``spec.upgrade.strategy.name: RetryOnFailure`` (Flux 2.7) never rolls back, and retries 0 (the
  default) means no rollback either: said as a warning so nobody counts on one.
- apply method (``APPLY_METHOD``): Flux >= 2.8 runs Helm 4 (helm-controller v1.5.0, #1381).
  ``spec.upgrade.serverSideApply: auto`` (default) reuses the last revision's method, and a Helm 3
  CLI release recorded none, so the adoption upgrade is a client-side three-way merge (what the
  rollout prediction models). ``enabled`` forces server-side apply: fields the CLI's ``helm``
  manager owns and the chart no longer sets stay (only helm-controller's own manager is migrated,
  internal/action/upgrade.go) and the prediction does not model it (error).
- removed APIs (``REMOVED_APIS``): every apiVersion/kind of the release's stored manifest must
  still be served, else the upgrade cannot start ("unable to build kubernetes objects from current
  release manifest", helm-controller#530, #588); helm-mapkubeapis rewrites the stored release.
- kubectl field managers (``KUBECTL_MANAGERS``): kustomize-controller renames every ``kubectl*``
  managedFields entry to its own before the first apply (fluxcd/pkg ssa/manager_apply.go
  cleanupMetadata), so a field kubectl set that Git lacks is DELETED then; API-defaulted fields come
  back with their default and are no change. In a pod template: error (the pods roll), elsewhere a
  warning.
- ``kustomize.toolkit.fluxcd.io/ssa: IfNotPresent`` (``SSA_IF_NOT_PRESENT``): an existing object is
  skipped: never labelled, never pruned, its drift unmanaged (warning); kustomize-controller of
  Flux 2.8.0 .. 2.8.6 deleted and recreated cluster-scoped ones at every reconcile
  (kustomize-controller#1647, fixed in v1.8.5 / Flux 2.8.7): error.
Read-only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from handover.core.findings import Finding
from handover.core.inventory import Component, Inventory
from handover.flux import render
from handover.flux import rules as flux
from handover.gate.hazards.adoption import helm_release_of, hr_id
from handover.sources import helm_storage
from handover.tree_diff import join, show

if TYPE_CHECKING:
    from handover.core.kube import Kube

TAKE_OWNERSHIP = "flux-take-ownership"
REMEDIATION = "flux-upgrade-remediation"
APPLY_METHOD = "flux-apply-method"
REMOVED_APIS = "stored-apis-served"
KUBECTL_MANAGERS = "kubectl-field-managers"
SSA_IF_NOT_PRESENT = "flux-ssa-if-not-present"


def version_tuple(v: str) -> tuple[int, int, int]:
    parts = [int(p) for p in v.lstrip("v").split(".")[:3]]
    return tuple((parts + [0, 0, 0])[:3])  # type: ignore[return-value]


def _spec(hr: dict[str, Any], *keys: str) -> Any:
    cur: Any = hr.get("spec") or {}
    for k in keys:
        cur = cur.get(k) if isinstance(cur, dict) else None
    return cur


def check_helm_release_rules(
    inventory: Inventory, component: Component, objects: list[dict[str, Any]]
) -> list[Finding]:
    """Take ownership, upgrade remediation / strategy and apply method of the adopting
    HelmRelease, for the inventory's Flux version."""
    if component.type != "helm" or component.release is None:
        return []
    hr = helm_release_of(component, objects)
    if hr is None:
        return []
    fv = inventory.cluster.flux_version
    v = version_tuple(fv)
    found: list[Finding] = []
    subject = hr_id(hr)
    # take ownership
    set_where = [k for k in ("install", "upgrade") if _spec(hr, k, "disableTakeOwnership") is True]
    if v < (2, 5, 0):
        if set_where:
            found.append(
                Finding(
                    TAKE_OWNERSHIP,
                    subject,
                    f"spec.{set_where[0]}.disableTakeOwnership is set but Flux {fv} does not know it "
                    f"(added in Flux 2.5, helm-controller v1.2.0): it does nothing",
                    f"remove it, or set cluster.fluxVersion to 2.5 or later in {inventory.source}",
                )
            )
    elif set_where == ["install"]:
        found.append(
            Finding(
                TAKE_OWNERSHIP,
                subject,
                "spec.install.disableTakeOwnership is set but not spec.upgrade.disableTakeOwnership: "
                "the adoption of an existing release is an UPGRADE, so take-ownership stays on for it "
                "(a name mismatch still installs a second release silently)",
                "set spec.upgrade.disableTakeOwnership: true as well for the handover",
            )
        )
    elif "upgrade" not in set_where:
        found.append(
            Finding(
                TAKE_OWNERSHIP,
                subject,
                "take-ownership is on (Flux default since 2.4): a release-name or storage-namespace "
                "mismatch would silently install a second release over the CLI release's objects",
                "for the handover set spec.install.disableTakeOwnership: true and "
                "spec.upgrade.disableTakeOwnership: true (a mismatch then fails loudly); remove them "
                "after the adoption",
                severity="warning",
            )
        )
    # remediation and strategy
    if _spec(hr, "upgrade", "remediation", "strategy") == "uninstall":
        found.append(
            Finding(
                REMEDIATION,
                subject,
                "spec.upgrade.remediation.strategy: uninstall: if the adoption upgrade fails, "
                "helm-controller UNINSTALLS the adopted release (every object of it, data with it)",
                "remove the strategy (default rollback, to the CLI revision) for the handover",
            )
        )
    strategy = _spec(hr, "upgrade", "strategy", "name")
    retries = _spec(hr, "upgrade", "remediation", "retries") or 0
    if strategy == "RetryOnFailure":
        found.append(
            Finding(
                REMEDIATION,
                subject,
                "spec.upgrade.strategy.name: RetryOnFailure: a failed adoption upgrade is retried, "
                "never rolled back to the CLI revision",
                "roll back by hand (phase 3's rollback) "
                "if it fails, or use RemediateOnFailure with retries >= 1",
                severity="warning",
            )
        )
    elif retries == 0 and _spec(hr, "upgrade", "remediation", "strategy") != "uninstall":
        found.append(
            Finding(
                REMEDIATION,
                subject,
                "spec.upgrade.remediation.retries is 0 (the default): a failed adoption upgrade is "
                "left failed, not rolled back",
                "rely on phase 3's rollback, or set "
                "spec.upgrade.remediation.retries: 1 for a rollback to the CLI revision",
                severity="warning",
            )
        )
    # apply method (Helm 4 in helm-controller from Flux 2.8)
    ssa = _spec(hr, "upgrade", "serverSideApply")
    if v >= (2, 8, 0) and ssa == "enabled":
        found.append(
            Finding(
                APPLY_METHOD,
                subject,
                f"spec.upgrade.serverSideApply: enabled: Flux {fv} (Helm 4) upgrades the Helm 3 CLI "
                f"release with server-side apply, conflicts forced; fields the CLI's `helm` field "
                f"manager owns that the chart no longer sets stay co-owned and persist, and the "
                f"rollout prediction (a three-way merge) does not model it",
                "leave spec.upgrade.serverSideApply unset or `auto` for the handover (a release "
                "made by the Helm 3 CLI is then upgraded client-side, as predicted)",
            )
        )
    elif v < (2, 8, 0) and ssa is not None:
        found.append(
            Finding(
                APPLY_METHOD,
                subject,
                f"spec.upgrade.serverSideApply is set but Flux {fv} runs "
                f"Helm 3 (server-side apply came with Flux 2.8): it does nothing",
                "remove it",
                severity="warning",
            )
        )
    return found


def _served(kube: Kube, api_version: str, kind: str) -> bool:
    has = getattr(kube, "has_resource", None)
    if has is None:
        return True
    return bool(has(api_version, kind))


def check_stored_apis(kube: Kube, component: Component) -> list[Finding]:
    """Every apiVersion/kind in the release's stored manifest is served by the cluster."""
    if component.type != "helm" or component.release is None:
        return []
    rec = helm_storage.latest(kube, component.release.name, component.release.namespace)
    if rec is None:
        return []
    missing = sorted(
        {
            (o.get("apiVersion"), o.get("kind"))
            for o in render.parse_manifest(rec.manifest)
            if o.get("apiVersion")
            and o.get("kind")
            and not _served(kube, o["apiVersion"], o["kind"])
        }
    )
    if not missing:
        return []
    names = ", ".join(f"{a} {k}" for a, k in missing)
    return [
        Finding(
            REMOVED_APIS,
            f"Helm release {component.release.namespace}/{component.release.name}",
            f"revision {rec.revision}'s stored manifest holds {names}, not served by this cluster: "
            f'the adoption upgrade cannot start ("unable to build kubernetes objects from current '
            f'release manifest", helm-controller#530)',
            f"rewrite the stored release first: helm mapkubeapis {component.release.name} "
            f"--namespace {component.release.namespace} (helm-mapkubeapis plugin), then re-run the "
            f"gate",
        )
    ]


# --- kubectl field managers -----------------------------------------------------------------------

# Fields the API server defaults (k8s.io/kubernetes pkg/apis/*/v1/defaults.go): when Git omits
# them they come back with this value after the kubectl managers' fields are dropped.
DEFAULTS: dict[str, tuple[Any, ...]] = {
    "dnsPolicy": ("ClusterFirst",),
    "restartPolicy": ("Always",),
    "schedulerName": ("default-scheduler",),
    "terminationGracePeriodSeconds": (30,),
    "terminationMessagePath": ("/dev/termination-log",),
    "terminationMessagePolicy": ("File",),
    "imagePullPolicy": ("IfNotPresent", "Always"),
    "protocol": ("TCP",),
    "revisionHistoryLimit": (10,),
    "progressDeadlineSeconds": (600,),
    "securityContext": ({},),
    "type": ("RollingUpdate", "ClusterIP", "Opaque", ""),
    "maxSurge": ("25%", 1),
    "maxUnavailable": ("25%", 1, 0),
    "sessionAffinity": ("None",),
    "podManagementPolicy": ("OrderedReady",),
    "partition": (0,),
    "defaultMode": (420,),
    "volumeMode": ("Filesystem",),
    "successThreshold": (1,),
    "failureThreshold": (3,),
    "periodSeconds": (10,),
    "timeoutSeconds": (1,),
    "scheme": ("HTTP",),
    "enableServiceLinks": (True,),
    "internalTrafficPolicy": ("Cluster",),
    "ipFamilyPolicy": ("SingleStack",),
    "minReadySeconds": (0,),
    "finalizers": (["kubernetes"],),  # a Namespace's spec.finalizers
}
IGNORED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
# Fields the API server allocates or keeps when an update omits them (Service clusterIP and node
# ports, a bound claim's volumeName): dropping their owner changes nothing.
KEPT_WHEN_OMITTED = (
    "clusterIP",
    "clusterIPs",
    "ipFamilies",
    "ipFamilyPolicy",
    "nodePort",
    "healthCheckNodePort",
    "volumeName",
)


def _field(key: str) -> tuple[str, Any]:
    """('f', name) | ('k', {key fields}) | ('v', value) | ('.', None) of a fieldsV1 key."""
    if key == ".":
        return ".", None
    kind, _, rest = key.partition(":")
    if kind == "k" or kind == "v":
        return kind, json.loads(rest)
    return "f", rest


def _match(item: Any, keyfields: dict[str, Any]) -> bool:
    if not isinstance(item, dict):
        return False
    for k, want in keyfields.items():
        have = item.get(k)
        if have is None and k == "protocol":
            have = "TCP"
        if str(have) != str(want):
            return False
    return True


def owned_missing(
    fields: dict[str, Any], live: Any, git: Any, path: str = ""
) -> list[tuple[str, Any]]:
    """(path, live value) of leaf fields in a fieldsV1 tree that Git does not set."""
    out: list[tuple[str, Any]] = []
    for key, sub in (fields or {}).items():
        kind, val = _field(key)
        if kind == ".":
            continue
        if kind == "f":
            p = join(path, val)
            lv = live.get(val) if isinstance(live, dict) else None
            gv = git.get(val) if isinstance(git, dict) else None
            if isinstance(git, dict) and val not in git:
                if (
                    lv is None
                    or lv == {}
                    or lv == []
                    or val in IGNORED_ANNOTATIONS
                    or val in KEPT_WHEN_OMITTED
                ):
                    continue
                if val in DEFAULTS and lv in DEFAULTS[val]:
                    continue
                if (
                    val == "targetPort"
                    and isinstance(live, dict)
                    and str(lv) == str(live.get("port"))
                ):
                    continue  # a Service port's targetPort defaults to its port
                if isinstance(lv, dict) and sub:
                    out.extend(owned_missing(sub, lv, {}, p))
                else:
                    out.append((p, lv))
            elif sub:
                out.extend(owned_missing(sub, lv, gv, p))
        elif kind == "k":
            label = ",".join(f"{k}={v}" for k, v in val.items())
            p = f"{path}[{label}]"
            lv = (
                next((i for i in live or [] if _match(i, val)), None)
                if isinstance(live, list)
                else None
            )
            gv = (
                next((i for i in git or [] if _match(i, val)), None)
                if isinstance(git, list)
                else None
            )
            if lv is None:
                continue
            if gv is None:
                out.append((p, lv))
            else:
                out.extend(owned_missing(sub, lv, gv, p))
        # 'v' (set members): kept when Git has the list; not modelled further
    return out


def kubectl_owned_missing(live: dict[str, Any], git: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(manager, path, live value) per field a kubectl* manager owns that Git lacks."""
    out = []
    for mf in (live.get("metadata") or {}).get("managedFields") or []:
        manager = mf.get("manager") or ""
        if not manager.startswith("kubectl"):
            continue
        for path, value in owned_missing(mf.get("fieldsV1") or {}, live, git):
            if path.startswith("status"):
                continue
            out.append((manager, path, value))
    return out


def check_kubectl_managers(
    kube: Kube, component: Component, objects: list[dict[str, Any]]
) -> list[Finding]:
    """Per kubectl-applied object of the component: the fields kubectl* managers own that Git
    does not have (deleted at the first reconcile)."""
    if component.type != "manifests":
        return []
    found = []
    for o in objects:
        api, kind = o.get("apiVersion"), o.get("kind")
        m = o.get("metadata") or {}
        if not api or not kind or not m.get("name") or "toolkit.fluxcd.io" in api:
            continue
        try:
            live = kube.get(api, kind, m["name"], m.get("namespace"))
        except Exception:  # noqa: BLE001 - a kind not served: check 2 reports it
            continue
        if not live:
            continue
        missing = kubectl_owned_missing(live, o)
        if not missing:
            continue
        subject = f"{kind} {m['namespace'] + '/' if m.get('namespace') else ''}{m['name']}"
        in_template = [x for x in missing if x[1].startswith("spec.template")]
        listed = "; ".join(f"{p}: live {show(p, v)} (owned by {mgr})" for mgr, p, v in missing[:15])
        found.append(
            Finding(
                KUBECTL_MANAGERS,
                subject,
                f"{len(missing)} field(s) set by kubectl are not in Git and will be DELETED at the "
                f"first reconcile (kustomize-controller takes over the kubectl* field managers)"
                + (" - in the pod template, so the pods roll" if in_template else "")
                + f": {listed}",
                "add these fields to the object in Git (or drop them live knowingly)",
                severity="error" if in_template else "warning",
            )
        )
    return found


# --- ssa: IfNotPresent ----------------------------------------------------------------------------


def _cluster_scoped(kube: Kube, o: dict[str, Any]) -> bool:
    try:
        return not kube.resource(o["apiVersion"], o["kind"]).namespaced
    except Exception:  # noqa: BLE001 - fakes / unknown kinds: by the object itself
        return not (o.get("metadata") or {}).get("namespace")


def check_ssa_if_not_present(
    kube: Kube, inventory: Inventory, component: Component, objects: list[dict[str, Any]]
) -> list[Finding]:
    """Adopted objects annotated kustomize.toolkit.fluxcd.io/ssa: IfNotPresent."""
    found: list[Finding] = []
    for o in objects:
        m = o.get("metadata") or {}
        if (m.get("annotations") or {}).get(flux.SSA_ANNOTATION) != "IfNotPresent":
            continue
        fv = inventory.cluster.flux_version
        flapping = (2, 8, 0) <= version_tuple(fv) < (2, 8, 7)
        try:
            live = kube.get(o["apiVersion"], o["kind"], m["name"], m.get("namespace"))
        except Exception:  # noqa: BLE001
            live = None
        if live is None:
            continue
        subject = f"{o['kind']} {m['namespace'] + '/' if m.get('namespace') else ''}{m.get('name')}"
        if flapping and _cluster_scoped(kube, o):
            found.append(
                Finding(
                    SSA_IF_NOT_PRESENT,
                    subject,
                    f"cluster-scoped, exists live and is annotated {flux.SSA_ANNOTATION}: "
                    f"IfNotPresent: kustomize-controller of Flux {fv} deletes and recreates it at "
                    f"every reconcile (kustomize-controller#1647, fixed in Flux 2.8.7)",
                    "use Flux 2.8.7 or later (cluster.fluxVersion), or drop the annotation",
                )
            )
        else:
            found.append(
                Finding(
                    SSA_IF_NOT_PRESENT,
                    subject,
                    f"exists live and is annotated {flux.SSA_ANNOTATION}: IfNotPresent: Flux skips "
                    f"it: it never gets Flux's owner labels, is never pruned and its drift is not "
                    f"managed",
                    "drop the annotation if Flux should manage it",
                    severity="warning",
                )
            )
    return found
