"""helm-controller stand-in (HelmRelease, helm.toolkit.fluxcd.io/v2) driving the real ``helm``.

Behaviour, each from the upstream helm-controller source:
- names (api/v2/helmrelease_types.go via handover.flux): release name, storage namespace, release
  (target) namespace;
- state (internal/reconcile/state.go DetermineReleaseState): no release -> install; pending-* ->
  unlock (mark failed) first; release in storage and no status.history -> "unmanaged" -> upgrade
  (adoption, revision N+1); uninstalled -> install; latest release differs from the last observed
  snapshot -> unmanaged -> upgrade; deployed and chart name/version or config digest changed ->
  out of sync -> upgrade; otherwise in sync, nothing runs;
- identity change (internal/action/verify.go): a changed release name / namespaces after the first
  release uninstalls the old release first;
- values (internal/chartutil/values.go ChartValuesFromReferences): valuesFrom in order
  (ConfigMap/Secret, valuesKey default values.yaml, targetPath, optional), then spec.values;
  upgrade resets values (``--reset-values``) unless spec.upgrade.preserveValues (``--reuse-values``);
- post-renderer origin labels (internal/postrender/origin_labels.go), take-ownership on by default
  (spec.install/upgrade.disableTakeOwnership);
- status (api/v2 HelmReleaseStatus, internal/reconcile/atomic_release.go): history snapshots
  (newest first, digest + configDigest), lastAttemptedRevision / ConfigDigest / Generation /
  ReleaseAction, storageNamespace, helmChart, failure counters, Ready / Released / Remediated
  conditions with observedGeneration, requestedAt -> lastHandledReconcileAt, forceAt / resetAt;
- remediation (internal/reconcile/install.go, upgrade.go, rollback_remediation.go,
  uninstall_remediation.go): a failed install is uninstalled while installFailures <= retries
  (default retries 0: no remediation); a failed upgrade is rolled back (strategy rollback, the
  default) or uninstalled (strategy uninstall) while upgradeFailures <= retries;
- chart errors (the HelmChart of source-controller): a chart version that does not exist -> Ready
  False, reason ArtifactFailed, and no release action;
- suspend stops reconciling; finalizer finalizers.fluxcd.io: deleting uninstalls the release unless
  the object is suspended or never reconciled (status.storageNamespace empty)
  (internal/controller/helmrelease_controller.go reconcileDelete).
"""
from __future__ import annotations

import copy
import hashlib
import json
import shlex
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from handover import flux, helm_storage, tools
from handover.rehearsal.flux.runtime import (Api, Obj, handled_reconcile_request, log,
                                             parse_duration, remove_condition, set_condition)

MAX_HISTORY = 5  # snapshots kept in status.history (upstream default maxHistory 5)


class ChartError(Exception):
    """The chart cannot be had (source not ready, version not found): no release action."""


class ValuesError(Exception):
    pass


def config_digest(values: dict[str, Any]) -> str:
    """Digest of the composed values (upstream: digest of the canonical values, sha256)."""
    raw = json.dumps(values or {}, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_path(values: dict, path: str, value: Any) -> None:
    """targetPath: dot-separated path (helm strvals style, without list indexes)."""
    parts = [p for p in path.split(".") if p]
    cur = values
    for p in parts[:-1]:
        if not isinstance(cur.get(p), dict):
            cur[p] = {}
        cur = cur[p]
    cur[parts[-1]] = value


class HelmController:
    def __init__(self, api: Api, state_dir: Path, kubeconfig: str, context: str | None,
                 source):
        self.api = api
        self.state_dir = state_dir
        self.kubeconfig = kubeconfig
        self.context = context
        self.source = source
        self.helm = str(tools.helm())
        self.home = state_dir / "helm"
        self.postrenderer = state_dir / "bin" / "flux-postrender"
        self._write_postrenderer()

    def _write_postrenderer(self) -> None:
        self.postrenderer.parent.mkdir(parents=True, exist_ok=True)
        root = Path(__file__).resolve().parents[3]
        self.postrenderer.write_text(
            "#!/bin/sh\n"
            f"PYTHONPATH={shlex.quote(str(root))}${{PYTHONPATH:+:$PYTHONPATH}} "
            f"exec {shlex.quote(sys.executable)} -m handover.rehearsal.flux.postrender \"$@\"\n")
        self.postrenderer.chmod(0o755)

    # -- helm ------------------------------------------------------------------------------------
    def run_helm(self, *args: str, timeout: float = 600) -> tools.Result:
        env = {"KUBECONFIG": self.kubeconfig,
               "HELM_CACHE_HOME": str(self.home / "cache"),
               "HELM_CONFIG_HOME": str(self.home / "config"),
               "HELM_DATA_HOME": str(self.home / "data")}
        argv = [self.helm, *args]
        if self.context:
            argv += ["--kube-context", self.context]
        res = tools.run(argv, env=env, timeout=timeout + 30)
        log.info("helm %s -> %s%s", " ".join(args[:3]), res.returncode,
                 f": {res.stderr.strip()[-300:]}" if not res.ok else "")
        return res

    # -- inputs ----------------------------------------------------------------------------------
    def compose_values(self, hr: Obj) -> dict[str, Any]:
        ns = hr["metadata"]["namespace"]
        spec = hr.get("spec") or {}
        values: dict[str, Any] = {}
        for ref in spec.get("valuesFrom") or []:
            kind, name = ref["kind"], ref["name"]
            key = ref.get("valuesKey") or "values.yaml"
            obj = self.api.get("v1", kind, name, ns)
            data = None
            if obj is not None:
                if kind == "Secret":
                    import base64
                    raw = (obj.get("data") or {}).get(key)
                    data = base64.b64decode(raw).decode() if raw is not None else None
                else:
                    data = (obj.get("data") or {}).get(key)
            if data is None:
                if ref.get("optional"):
                    continue
                what = f"{kind} '{ns}/{name}'" if obj is None else \
                    f"missing key '{key}' in {kind} '{ns}/{name}'"
                raise ValuesError(f"could not find {what}")
            if ref.get("targetPath"):
                set_path(values, ref["targetPath"], data)
            else:
                loaded = yaml.safe_load(data) or {}
                if not isinstance(loaded, dict):
                    raise ValuesError(f"unable to read values from key '{key}' in {kind} "
                                      f"'{ns}/{name}': not a map")
                values = deep_merge(values, loaded)
        return deep_merge(values, spec.get("values") or {})

    def fetch_chart(self, hr: Obj, workdir: Path) -> tuple[Path, dict[str, Any]]:
        """The chart archive/dir and its Chart.yaml metadata."""
        cspec = ((hr.get("spec") or {}).get("chart") or {}).get("spec")
        if not cspec:
            raise ChartError("spec.chartRef is not supported by the rehearsal stand-in; "
                             "use spec.chart")
        src = cspec["sourceRef"]
        kind = src.get("kind", "HelmRepository")
        src_ns = src.get("namespace") or hr["metadata"]["namespace"]
        chart_obj = f"{src_ns}/{hr['metadata']['namespace']}-{hr['metadata']['name']}"
        repo = self.api.get(flux.SOURCE_API, kind, src["name"], src_ns)
        if repo is None:
            raise ChartError(f"HelmChart '{chart_obj}' is not ready: {kind} "
                             f"'{src_ns}/{src['name']}' not found")
        if kind == "HelmRepository":
            if (repo.get("spec") or {}).get("type") == "oci":
                raise ChartError(f"HelmChart '{chart_obj}' is not ready: OCI HelmRepository "
                                 f"'{src_ns}/{src['name']}': no OCI registry in the rehearsal")
            if not flux.is_ready(repo):
                raise ChartError(f"HelmChart '{chart_obj}' is not ready: HelmRepository "
                                 f"'{src_ns}/{src['name']}' is not ready")
            args = ["pull", cspec["chart"], "--repo", repo["spec"]["url"].rstrip("/"),
                    "--destination", str(workdir)]
            version = cspec.get("version") or "*"
            if version != "*":
                args += ["--version", version]
            res = self.run_helm(*args, timeout=60)
            if not res.ok:
                err = res.stderr.strip().replace("Error: ", "")
                raise ChartError(f"HelmChart '{chart_obj}' is not ready: chart pull error: "
                                 f"{err}")
            archives = list(workdir.glob("*.tgz"))
            if len(archives) != 1:
                raise ChartError(f"HelmChart '{chart_obj}': expected one chart archive")
            with tarfile.open(archives[0]) as tar:
                member = next(m for m in tar.getmembers()
                              if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml"))
                meta = yaml.safe_load(tar.extractfile(member).read())
            return archives[0], meta
        if kind == "GitRepository":
            artifact = self.source.artifact_file((repo.get("status") or {}).get("artifact"))
            if artifact is None or not flux.is_ready(repo):
                raise ChartError(f"HelmChart '{chart_obj}' is not ready: GitRepository "
                                 f"'{src_ns}/{src['name']}' has no artifact")
            with tarfile.open(artifact) as tar:
                tar.extractall(workdir / "src", filter="data")
            chart_dir = (workdir / "src" / cspec["chart"]).resolve()
            if not (chart_dir / "Chart.yaml").exists():
                raise ChartError(f"HelmChart '{chart_obj}' is not ready: no chart at path "
                                 f"'{cspec['chart']}' in GitRepository '{src_ns}/{src['name']}'")
            return chart_dir, yaml.safe_load((chart_dir / "Chart.yaml").read_text())
        raise ChartError(f"HelmChart '{chart_obj}' is not ready: sourceRef kind {kind} is not "
                         f"supported by the rehearsal stand-in")

    # -- storage ---------------------------------------------------------------------------------
    def release_raw(self, name: str, storage_ns: str, revision: int) -> dict[str, Any] | None:
        s = self.api.get("v1", "Secret", helm_storage.secret_name(name, revision), storage_ns)
        if s is None:
            return None
        return helm_storage.decode_release(s["data"]["release"])

    def latest(self, name: str, storage_ns: str) -> dict[str, Any] | None:
        secrets = self.api.list("v1", "Secret", storage_ns,
                                label_selector=f"owner=helm,name={name}")
        best = None
        for s in secrets:
            if s.get("type") != helm_storage.SECRET_TYPE:
                continue
            rel = helm_storage.decode_release(s["data"]["release"])
            if best is None or int(rel["version"]) > int(best["version"]):
                best = rel
        return best

    def unlock(self, rel: dict[str, Any], storage_ns: str) -> None:
        """A pending-* release is marked failed so that the next action may run
        (upstream: internal/reconcile/unlock.go)."""
        sname = helm_storage.secret_name(rel["name"], int(rel["version"]))
        rel = copy.deepcopy(rel)
        rel["info"]["description"] = (f"Release unlocked from stale '{rel['info']['status']}' "
                                      "state")
        rel["info"]["status"] = "failed"
        self.api.patch("v1", "Secret", sname, storage_ns,
                       {"metadata": {"labels": {"status": "failed"}},
                        "data": {"release": helm_storage.encode_release(rel)}})

    @staticmethod
    def digest(rel: dict[str, Any]) -> str:
        chart_meta = (rel.get("chart") or {}).get("metadata") or {}
        raw = json.dumps({"name": rel["name"], "namespace": rel.get("namespace"),
                          "version": rel["version"], "status": rel["info"]["status"],
                          "chart": [chart_meta.get("name"), chart_meta.get("version")],
                          "config": rel.get("config") or {}, "manifest": rel.get("manifest")},
                         sort_keys=True).encode()
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def snapshot(self, rel: dict[str, Any], cfg_digest: str) -> dict[str, Any]:
        chart_meta = (rel.get("chart") or {}).get("metadata") or {}
        info = rel.get("info") or {}
        snap = {"name": rel["name"], "namespace": rel.get("namespace"),
                "version": int(rel["version"]), "status": info.get("status"),
                "chartName": chart_meta.get("name"), "chartVersion": chart_meta.get("version"),
                "configDigest": cfg_digest, "digest": self.digest(rel),
                "firstDeployed": info.get("first_deployed"),
                "lastDeployed": info.get("last_deployed")}
        if chart_meta.get("appVersion"):
            snap["appVersion"] = chart_meta["appVersion"]
        if info.get("deleted"):
            snap["deleted"] = info["deleted"]
        return snap

    # -- reconcile -------------------------------------------------------------------------------
    def reconcile(self, ns: str, name: str) -> float | None:
        hr = self.api.get(flux.HELM_API, "HelmRelease", name, ns)
        if hr is None:
            return None
        meta = hr["metadata"]
        spec = hr.get("spec") or {}
        fins = meta.get("finalizers") or []
        if meta.get("deletionTimestamp"):
            return self.reconcile_delete(hr)
        if spec.get("suspend"):
            log.info("HelmRelease %s/%s suspended: skipping", ns, name)
            return None
        if flux.FINALIZER not in fins:
            hr = self.api.set_finalizers(hr, fins + [flux.FINALIZER])
            if hr is None:
                return None
        interval = parse_duration(spec.get("interval"), 600)
        status: dict[str, Any] = copy.deepcopy(hr.get("status") or {})
        handled_reconcile_request(hr, status)
        gen = meta.get("generation")
        ann = meta.get("annotations") or {}
        # resetAt resets the failure counters; a new generation does too.
        if status.get("lastAttemptedGeneration") != gen or (
                ann.get("reconcile.fluxcd.io/resetAt")
                and ann.get("reconcile.fluxcd.io/resetAt") != status.get("lastHandledResetAt")):
            for k in ("failures", "installFailures", "upgradeFailures"):
                status.pop(k, None)
            if ann.get("reconcile.fluxcd.io/resetAt"):
                status["lastHandledResetAt"] = ann["reconcile.fluxcd.io/resetAt"]
        force = bool(ann.get("reconcile.fluxcd.io/forceAt")) and \
            ann.get("reconcile.fluxcd.io/forceAt") == ann.get(flux.RECONCILE_REQUESTED_AT) and \
            ann.get("reconcile.fluxcd.io/forceAt") != status.get("lastHandledForceAt")

        # dependsOn: wait for Ready of each dependency
        for dep in spec.get("dependsOn") or []:
            dns = dep.get("namespace") or ns
            d = self.api.get(flux.HELM_API, "HelmRelease", dep["name"], dns)
            if d is None or not flux.is_ready(d):
                set_condition(status, hr, "Ready", False, "DependencyNotReady",
                              f"dependency '{dns}/{dep['name']}' is not ready")
                self.api.patch_status(hr, status)
                return 5.0

        rel_name = flux.helm_release_name(hr)
        storage_ns = flux.storage_namespace(hr)
        target_ns = flux.target_namespace(hr)
        workdir = Path(tempfile.mkdtemp(prefix="hr-", dir=self._tmp()))
        try:
            try:
                chart_ref, chart_meta = self.fetch_chart(hr, workdir)
                values = self.compose_values(hr)
            except (ChartError, ValuesError) as e:
                reason = "ArtifactFailed" if isinstance(e, ChartError) else "InitFailed"
                set_condition(status, hr, "Ready", False, reason, str(e))
                status["observedGeneration"] = gen
                self.api.patch_status(hr, status)
                log.warning("HelmRelease %s/%s: %s", ns, name, e)
                return min(interval, 10.0)
            status["helmChart"] = (f"{(spec['chart']['spec']['sourceRef'].get('namespace') or ns)}"
                                   f"/{ns}-{name}")
            cfg_digest = config_digest(values)
            values_file = workdir / "values.yaml"
            values_file.write_text(yaml.safe_dump(values))
            after = self._release(hr, status, rel_name, storage_ns, target_ns, chart_ref,
                                  chart_meta, values_file, cfg_digest, force)
            if force:
                status["lastHandledForceAt"] = ann["reconcile.fluxcd.io/forceAt"]
            status["observedGeneration"] = gen
            self.api.patch_status(hr, status)
            return after if after is not None else interval
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _tmp(self) -> Path:
        p = self.state_dir / "tmp"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def _state(self, hr: Obj, status: Obj, rel: dict | None, chart_meta: dict,
               cfg_digest: str) -> tuple[str, str]:
        """(state, reason) as DetermineReleaseState decides it."""
        if rel is None:
            return "absent", "no release in storage for object"
        rstatus = rel["info"]["status"]
        if rstatus.startswith("pending-"):
            return "locked", f"release with status '{rstatus}'"
        history = status.get("history") or []
        if not history:
            if rstatus == "uninstalled":
                return "absent", "found uninstalled release in storage"
            return "unmanaged", "found existing release in storage"
        cur = history[0]
        if (cur.get("name"), cur.get("namespace"), cur.get("version")) != \
                (rel["name"], rel.get("namespace"), int(rel["version"])):
            return "unmanaged", "release not observed to be made for object"
        if cur.get("digest") != self.digest(rel):
            return "unmanaged", "release digest verification error"
        if rstatus == "failed":
            return "failed", "release is in a failed state"
        if rstatus == "uninstalled":
            return "absent", "found uninstalled release in storage"
        if rstatus != "deployed":
            return "unknown", f"unable to determine state for release with status '{rstatus}'"
        rchart = (rel.get("chart") or {}).get("metadata") or {}
        if (rchart.get("name"), rchart.get("version")) != \
                (chart_meta.get("name"), str(chart_meta.get("version"))):
            return "out-of-sync", "release chart changed"
        if cur.get("configDigest") != cfg_digest:
            return "out-of-sync", "release config digest changed"
        return "in-sync", "release in-sync with desired state"

    def _release(self, hr: Obj, status: Obj, rel_name: str, storage_ns: str, target_ns: str,
                 chart_ref: Path, chart_meta: dict, values_file: Path, cfg_digest: str,
                 force: bool) -> float | None:
        ns, name = hr["metadata"]["namespace"], hr["metadata"]["name"]
        spec = hr.get("spec") or {}
        history = status.get("history") or []
        # identity change: uninstall the release made under the old name/namespace first
        if history and status.get("storageNamespace") and (
                history[0].get("name") != rel_name
                or status["storageNamespace"] != storage_ns):
            old = history[0]
            log.info("HelmRelease %s/%s: release identity changed (%s/%s -> %s/%s): "
                     "uninstalling the old release", ns, name, status["storageNamespace"],
                     old.get("name"), storage_ns, rel_name)
            self.run_helm("uninstall", old["name"], "--namespace", status["storageNamespace"],
                          "--wait", "--timeout", "5m")
            status["history"] = history = []
        status["storageNamespace"] = storage_ns
        rel = self.latest(rel_name, storage_ns)
        state, reason = self._state(hr, status, rel, chart_meta, cfg_digest)
        if state == "locked":
            log.info("HelmRelease %s/%s: unlocking %s (%s)", ns, name, rel_name, reason)
            self.unlock(rel, storage_ns)
            rel = self.latest(rel_name, storage_ns)
            state, reason = self._state(hr, status, rel, chart_meta, cfg_digest)
        log.info("HelmRelease %s/%s: release %s/%s state %s (%s)", ns, name, storage_ns,
                 rel_name, state, reason)
        chart_version = str(chart_meta.get("version"))
        gen = hr["metadata"].get("generation")
        same_attempt = (status.get("lastAttemptedGeneration") == gen
                        and status.get("lastAttemptedRevision") == chart_version
                        and status.get("lastAttemptedConfigDigest") == cfg_digest)

        if state == "in-sync" and not force:
            cur = history[0]
            msg = (f"Helm {status.get('lastAttemptedReleaseAction', 'install')} succeeded for "
                   f"release {target_ns}/{rel_name}.v{cur['version']} with chart "
                   f"{cur['chartName']}@{cur['chartVersion']}")
            c = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
            set_condition(status, hr, "Ready", True, "UpgradeSucceeded"
                          if status.get("lastAttemptedReleaseAction") == "upgrade"
                          else "InstallSucceeded", c["message"] if c and c["status"] == "True"
                          else msg)
            set_condition(status, hr, "Released", True, next(
                (x["reason"] for x in status.get("conditions", []) if x["type"] == "Released"),
                "InstallSucceeded"), next((x["message"] for x in status.get("conditions", [])
                                           if x["type"] == "Released"), msg))
            return None
        if state == "unknown":
            set_condition(status, hr, "Ready", False, "ReconcileError", reason)
            return 10.0

        action = "install" if state == "absent" else "upgrade"
        if same_attempt and not force:
            # retries of the active remediation exhausted for this generation/revision/values:
            # no new attempt (whatever the release state now is, e.g. uninstalled by remediation)
            failed_action = status.get("lastAttemptedReleaseAction", "upgrade")
            retries = self._retries(spec, failed_action)
            counter = status.get(f"{failed_action}Failures", 0)
            if counter > 0 and counter > retries:
                set_condition(status, hr, "Ready", False, f"{failed_action.capitalize()}Failed",
                              f"Helm {failed_action} failed and retries are exhausted "
                              f"({counter - 1}/{retries}); change the spec or request a reset")
                return None
        if action == "install" and state != "absent":
            action = "upgrade"

        status["lastAttemptedRevision"] = chart_version
        status["lastAttemptedConfigDigest"] = cfg_digest
        status["lastAttemptedGeneration"] = gen
        status["lastAttemptedReleaseAction"] = action
        status.pop("lastAttemptedValuesChecksum", None)
        started = time.monotonic()
        res = self._run_action(action, spec, rel_name, storage_ns, target_ns, chart_ref,
                               values_file, ns, name)
        status["lastAttemptedReleaseActionDuration"] = f"{time.monotonic() - started:.3f}s"
        new = self.latest(rel_name, storage_ns)
        if res.ok:
            snap = self.snapshot(new, cfg_digest)
            self._push_history(status, snap, spec)
            msg = (f"Helm {action} succeeded for release {target_ns}/{rel_name}.v{snap['version']}"
                   f" with chart {snap['chartName']}@{snap['chartVersion']}")
            reason = "InstallSucceeded" if action == "install" else "UpgradeSucceeded"
            set_condition(status, hr, "Released", True, reason, msg)
            set_condition(status, hr, "Ready", True, reason, msg)
            remove_condition(status, "Remediated")
            status["lastReleaseRevision"] = snap["version"]
            return None
        # failure
        err = res.stderr.strip().replace("Error: ", "")[-2000:]
        status["failures"] = status.get("failures", 0) + 1
        counter_key = f"{action}Failures"
        status[counter_key] = status.get(counter_key, 0) + 1
        reason = "InstallFailed" if action == "install" else "UpgradeFailed"
        msg = f"Helm {action} failed for release {target_ns}/{rel_name} with chart " \
              f"{chart_meta.get('name')}@{chart_version}: {err}"
        if new is not None:
            self._push_history(status, self.snapshot(new, cfg_digest), spec)
        set_condition(status, hr, "Released", False, reason, msg)
        set_condition(status, hr, "Ready", False, reason, msg)
        retries = self._retries(spec, action)
        remediation = ((spec.get(action) or {}).get("remediation") or {})
        # remediateLastFailure defaults to true when retries > 0 (api/v2 InstallRemediation)
        if status[counter_key] <= retries or remediation.get("remediateLastFailure",
                                                             retries > 0):
            self._remediate(hr, status, action, spec, rel_name, storage_ns, target_ns,
                            cfg_digest)
            return 5.0 if status[counter_key] <= retries else None
        return None

    @staticmethod
    def _retries(spec: Obj, action: str) -> int:
        r = ((spec.get(action) or {}).get("remediation") or {}).get("retries", 0)
        return r if r >= 0 else 1 << 30  # negative: retry forever

    def _push_history(self, status: Obj, snap: Obj, spec: Obj) -> None:
        hist = [h for h in status.get("history") or [] if h.get("version") != snap["version"]
                or h.get("name") != snap["name"]]
        status["history"] = ([snap] + hist)[:max(1, spec.get("maxHistory") or MAX_HISTORY)]

    def _remediate(self, hr: Obj, status: Obj, action: str, spec: Obj, rel_name: str,
                   storage_ns: str, target_ns: str, cfg_digest: str) -> None:
        ns, name = hr["metadata"]["namespace"], hr["metadata"]["name"]
        strategy = "uninstall" if action == "install" else (
            ((spec.get("upgrade") or {}).get("remediation") or {}).get("strategy") or "rollback")
        if strategy == "rollback":
            res = self.run_helm("rollback", rel_name, "--namespace", storage_ns, "--wait",
                                "--timeout", self._timeout(spec, "rollback"))
            ok_reason, fail_reason = "RollbackSucceeded", "RollbackFailed"
        else:
            res = self.run_helm("uninstall", rel_name, "--namespace", storage_ns, "--wait",
                                "--timeout", self._timeout(spec, "uninstall"))
            ok_reason, fail_reason = "UninstallSucceeded", "UninstallFailed"
        new = self.latest(rel_name, storage_ns)
        if new is not None:
            self._push_history(status, self.snapshot(new, cfg_digest), spec)
        if res.ok:
            msg = f"Helm {strategy} succeeded for release {target_ns}/{rel_name}" + (
                f".v{new['version']}" if new else "")
            set_condition(status, hr, "Remediated", True, ok_reason, msg)
        else:
            set_condition(status, hr, "Remediated", False, fail_reason,
                          f"Helm {strategy} failed: {res.stderr.strip()[-1000:]}")
        log.info("HelmRelease %s/%s: remediation %s -> %s", ns, name, strategy, res.ok)

    @staticmethod
    def _timeout(spec: Obj, action: str) -> str:
        t = (spec.get(action) or {}).get("timeout") or spec.get("timeout") or "5m"
        return t

    def _run_action(self, action: str, spec: Obj, rel_name: str, storage_ns: str,
                    target_ns: str, chart_ref: Path, values_file: Path, hr_ns: str,
                    hr_name: str) -> tools.Result:
        aspec = spec.get(action) or {}
        args = [action, rel_name, str(chart_ref), "--namespace", storage_ns,
                "-f", str(values_file), "--timeout", self._timeout(spec, action),
                "--post-renderer", str(self.postrenderer),
                "--post-renderer-args", f"--name={hr_name}",
                "--post-renderer-args", f"--namespace={hr_ns}"]
        if storage_ns != target_ns:
            args += ["--post-renderer-args", f"--release-namespace={target_ns}",
                     "--post-renderer-args", f"--storage-namespace={storage_ns}"]
        if not aspec.get("disableTakeOwnership"):
            args.append("--take-ownership")
        if not aspec.get("disableWait"):
            args.append("--wait")
            if not aspec.get("disableWaitForJobs"):
                args.append("--wait-for-jobs")
        if aspec.get("disableHooks"):
            args.append("--no-hooks")
        if aspec.get("disableOpenAPIValidation"):
            args.append("--disable-openapi-validation")
        if action == "install":
            if aspec.get("createNamespace"):
                args.append("--create-namespace")
            if aspec.get("replace"):
                args.append("--replace")
            if aspec.get("skipCRDs") or aspec.get("crds") == "Skip":
                args.append("--skip-crds")
        else:
            args += ["--history-max", str(spec.get("maxHistory", MAX_HISTORY))]
            args.append("--reuse-values" if aspec.get("preserveValues") else "--reset-values")
            if aspec.get("force"):
                args.append("--force")
            if aspec.get("cleanupOnFail"):
                args.append("--cleanup-on-fail")
        return self.run_helm(*args, timeout=parse_duration(self._timeout(spec, action), 300))

    def reconcile_delete(self, hr: Obj) -> float | None:
        meta = hr["metadata"]
        ns, name = meta["namespace"], meta["name"]
        fins = meta.get("finalizers") or []
        if flux.FINALIZER not in fins:
            return None
        spec = hr.get("spec") or {}
        status = hr.get("status") or {}
        if spec.get("suspend"):
            log.info("HelmRelease %s/%s deleted while suspended: release orphaned", ns, name)
        elif not status.get("storageNamespace"):
            log.info("HelmRelease %s/%s deleted before any reconcile: nothing to uninstall",
                     ns, name)
        else:
            history = status.get("history") or []
            rel_name = history[0]["name"] if history else flux.helm_release_name(hr)
            rel = self.latest(rel_name, status["storageNamespace"])
            if rel is not None and rel["info"]["status"] != "uninstalled":
                uspec = spec.get("uninstall") or {}
                args = ["uninstall", rel_name, "--namespace", status["storageNamespace"],
                        "--timeout", uspec.get("timeout") or spec.get("timeout") or "5m"]
                if not uspec.get("disableWait"):
                    args.append("--wait")
                if uspec.get("keepHistory"):
                    args.append("--keep-history")
                if uspec.get("disableHooks"):
                    args.append("--no-hooks")
                if uspec.get("deletionPropagation"):
                    args += ["--cascade", uspec["deletionPropagation"]]
                res = self.run_helm(*args)
                if not res.ok and "not found" not in res.stderr:
                    st = copy.deepcopy(status)
                    set_condition(st, hr, "Ready", False, "UninstallFailed",
                                  f"Helm uninstall failed: {res.stderr.strip()[-1000:]}")
                    self.api.patch_status(hr, st)
                    return 10.0
            log.info("HelmRelease %s/%s deleted: release %s/%s uninstalled", ns, name,
                     status["storageNamespace"], rel_name)
        self.api.set_finalizers(hr, [f for f in fins if f != flux.FINALIZER])
        return None

    @staticmethod
    def source_refs(hr: Obj) -> list[tuple[str, str, str]]:
        cspec = ((hr.get("spec") or {}).get("chart") or {}).get("spec") or {}
        src = cspec.get("sourceRef") or {}
        if not src:
            return []
        return [(src.get("kind", "HelmRepository"),
                 src.get("namespace") or hr["metadata"]["namespace"], src["name"])]

