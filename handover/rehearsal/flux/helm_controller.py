"""helm-controller stand-in (HelmRelease, helm.toolkit.fluxcd.io/v2) driving the real ``helm``.

Behaviour, each from the upstream helm-controller source:
- names (api/v2/helmrelease_types.go via handover.flux.rules): release name, storage namespace, release
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
- the release loop (internal/reconcile/atomic_release.go Reconcile + actionForState, the
  cleanReleaseStrategy): install / upgrade / unlock / rollback or uninstall remediation chosen from
  the state and the active remediation (retries, remediateLastFailure, strategy), Stalled
  RetriesExceeded / MissingRollbackTarget; only failures that wrote a release are counted
  (install.go / upgrade.go); status.history holds only the releases written during an action, with
  the digest of their own config (release.go observeRelease, internal/release/observation.go);
  Ready summarized from Remediated / Released (release.go summarize);
- chart build (source-controller): valuesFiles, reconcileStrategy Revision version metadata;
- post-renderers (internal/postrender/build.go): kustomize patches/images, commonMetadata, origin
  labels; refusals (handover/rehearsal/fidelity.py): RetryOnFailure, explicit server-side apply / kstatus wait ->
  Ready False UnemulatedFeature;
- chart errors (the HelmChart of source-controller): a chart version that does not exist -> Ready
  False, reason SourceNotReady, and no release action; release target changes
  (ReleaseTargetChanged) uninstall the old release first;
- suspend stops reconciling; finalizer finalizers.fluxcd.io: deleting uninstalls the release unless
  the object is suspended or never reconciled (status.storageNamespace empty)
  (internal/controller/helmrelease_controller.go reconcileDelete).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shlex
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from handover.core import tools
from handover.flux import rules as flux
from handover.rehearsal import fidelity
from handover.rehearsal.flux.runtime import (
    Api,
    Obj,
    handled_reconcile_request,
    log,
    parse_duration,
    remove_condition,
    set_condition,
)
from handover.sources import helm_storage

MAX_HISTORY = 5  # snapshots kept in status.history (upstream default maxHistory 5)


class ChartError(Exception):
    """The chart cannot be had: no release action. Reason as helm-controller's
    helmrelease_controller.go reconcileRelease: the HelmChart (the chart source) not ready
    (version not found, pull error, values file missing, source not ready) -> ``SourceNotReady``
    (isSourceReady); the source object cannot be had at all -> ``ArtifactFailed``."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or (
            "SourceNotReady" if "is not ready" in message else "ArtifactFailed"
        )


class ValuesError(Exception):
    pass


class _Failed:
    """A Helm action that failed before helm ran (e.g. the upgrade's CRD apply)."""

    def __init__(self, stderr: str):
        self.ok, self.stdout, self.stderr = False, "", stderr


def _canonical(v: Any) -> Any:
    # Helm reads values through JSON (float64): 1.0 and 1 are the same value
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, dict):
        return {str(k): _canonical(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_canonical(x) for x in v]
    return v


def config_digest(values: dict[str, Any]) -> str:
    """Digest of values (upstream chartutil.DigestValues: sha256 of the canonical JSON)."""
    raw = json.dumps(_canonical(values or {}), sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def postrenderers_digest(hr: Obj) -> str:
    """postrender.Digest over spec.postRenderers (and the stand-in also covers commonMetadata,
    which upstream renders with them)."""
    spec = hr.get("spec") or {}
    return config_digest(
        {
            "postRenderers": spec.get("postRenderers") or [],
            "commonMetadata": spec.get("commonMetadata") or {},
        }
    )


class Stall(Exception):
    """ErrExceededMaxRetries / ErrMissingRollbackTarget of actionForState: Stalled=True."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


# ReconcilerType of each action (internal/reconcile/action.go)
ACTION_TYPES = {
    "install": "release",
    "upgrade": "release",
    "unlock": "unlock",
    "rollback": "remediate",
    "uninstall": "remediate",
}


def remediation_of(spec: Obj, action: str) -> dict[str, Any]:
    """api/v2 InstallRemediation / UpgradeRemediation with their defaults."""
    r = (spec.get(action) or {}).get("remediation") or {}
    retries = int(r.get("retries", 0) or 0)
    if action == "install":
        # InstallRemediation.MustRemediateLastFailure: default false
        last = bool(r.get("remediateLastFailure", False))
        strategy = "uninstall"
    else:
        # UpgradeRemediation.MustRemediateLastFailure: default Retries > 0
        last = (
            bool(r["remediateLastFailure"])
            if r.get("remediateLastFailure") is not None
            else retries > 0
        )
        strategy = r.get("strategy") or "rollback"
    return {
        "action": action,
        "retries": retries,
        "remediateLastFailure": last,
        "strategy": strategy,
    }


def active_remediation(spec: Obj, status: Obj) -> dict[str, Any] | None:
    """HelmRelease.GetActiveRemediation: by status.lastAttemptedReleaseAction."""
    action = status.get("lastAttemptedReleaseAction")
    return remediation_of(spec, action) if action in ("install", "upgrade") else None


def failure_count(rem: dict[str, Any], status: Obj) -> int:
    return int(status.get(f"{rem['action']}Failures", 0) or 0)


def retries_exhausted(rem: dict[str, Any], status: Obj) -> bool:
    """RetriesExhausted: Retries >= 0 && failures > Retries (negative: unlimited)."""
    return rem["retries"] >= 0 and failure_count(rem, status) > rem["retries"]


def must_remediate_last_failure(rem: dict[str, Any]) -> bool:
    return bool(rem["remediateLastFailure"])


def _successful(snap: Obj) -> bool:
    return snap.get("status") in ("deployed", "superseded")


def truncate_history(status: Obj) -> None:
    """api/v2 Snapshots.Truncate: keep the latest and everything up to the first earlier
    successful (deployed/superseded) snapshot."""
    hist = status.get("history") or []
    for i in range(1, len(hist)):
        if _successful(hist[i]):
            status["history"] = hist[: i + 1]
            return


def previous_snapshot(status: Obj) -> dict[str, Any] | None:
    """api/v2 Snapshots.Previous: the first successful snapshot after the latest."""
    return next((h for h in (status.get("history") or [])[1:] if _successful(h)), None)


def full_name(snap: Obj) -> str:
    return f"{snap.get('namespace')}/{snap.get('name')}.v{snap.get('version')}"


def summarize(hr: Obj, status: Obj) -> None:
    """internal/reconcile/release.go summarize: Ready from Remediated (a remediated state is
    never Ready) or Released, whichever has the higher priority for the newest generation;
    conditionallyDeleteRemediated first. Ready=True removes Stalled."""
    conds = {c["type"]: c for c in status.get("conditions", [])}
    rem, rel = conds.get("Remediated"), conds.get("Released")
    if (
        rem
        and rel
        and rel["status"] == "True"
        and (rel.get("observedGeneration") or 0) >= (rem.get("observedGeneration") or 0)
    ):
        remove_condition(status, "Remediated")
        rem = None
    if rem and (
        rel is None or (rem.get("observedGeneration") or 0) >= (rel.get("observedGeneration") or 0)
    ):
        top, ok = rem, False
    elif rel:
        top, ok = rel, rel["status"] == "True"
    elif rem:
        top, ok = rem, False
    else:
        return
    set_condition(status, hr, "Ready", ok, top["reason"], top["message"])
    if ok:
        remove_condition(status, "Stalled")


def uninstall_target(status: Obj) -> str | None:
    """The release a deleted HelmRelease uninstalls (helm-controller internal/controller/
    helmrelease_controller.go reconcileReleaseDeletion -> internal/reconcile/uninstall.go
    Uninstall.Reconcile): none before any reconcile (no storage namespace) or with an empty
    history (ErrNoLatest, ignored); else the latest snapshot's release name."""
    history = status.get("history") or []
    if not status.get("storageNamespace") or not history:
        return None
    return history[0].get("name")


def release_target_changed(hr: Obj, status: Obj, chart_name: str) -> str | None:
    """helm-controller internal/action/verify.go ReleaseTargetChanged: the reason ("storage
    namespace", "release namespace", "release name", "chart name") when the release target
    differs from the one recorded in status (storageNamespace, latest snapshot), else None.
    The release namespace of a snapshot is ``releaseNamespace`` (the stand-in records it: its
    Helm CLI stores the release in the storage namespace, so ``namespace`` is that one)."""
    history = status.get("history") or []
    if not status.get("storageNamespace") or not history:
        return None
    cur = history[0]
    if flux.storage_namespace(hr) != status["storageNamespace"]:
        return "storage namespace"
    if cur.get("releaseNamespace") and flux.target_namespace(hr) != cur["releaseNamespace"]:
        return "release namespace"
    if flux.helm_release_name(hr) != cur.get("name"):
        return "release name"
    if chart_name != cur.get("chartName"):
        return "chart name"
    return None


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def strvals_typed(value: str) -> Any:
    """Helm strvals typedVal (pkg/strvals/parser.go), as fluxcd/pkg chartutil ReplacePathValue
    applies it to a ``targetPath`` value: ``true``/``false`` -> bool, ``null`` -> None, ``0`` and
    integers without a leading zero -> int; a value quoted with ' or " is a string (quotes
    trimmed, strvals.ParseIntoString)."""
    for q in ("'", '"'):
        if value.startswith(q) and value.endswith(q):
            return value.strip("'\"")
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    if value == "0":
        return 0
    if value and value[0] != "0" and re.fullmatch(r"[+-]?\d+", value):
        n = int(value)
        if -(2**63) <= n < 2**63:
            return n
    return value


def set_path(values: dict, path: str, value: Any) -> None:
    """targetPath: dot-separated path (``\\.`` escapes a dot in a key), the value typed as
    strvals does (fluxcd/pkg chartutil/values.go ReplacePathValue -> strvals.ParseInto). An
    unquoted value with a comma is an error there (``key has no value``), and so here; list
    indexes are not supported by the stand-in (ValuesError naming it)."""
    if isinstance(value, str):
        quoted = len(value) > 1 and value[0] == value[-1] and value[0] in "'\""
        if "," in value and not quoted:
            raise ValuesError(
                f"targetPath '{path}': the value contains a comma, which Helm's "
                "strvals parser splits (quote the value)"
            )
        value = strvals_typed(value)
    parts = [p.replace("\x00", ".") for p in path.replace("\\.", "\x00").split(".") if p]
    if any("[" in p for p in parts):
        raise ValuesError(
            f"targetPath '{path}': list indexes are not emulated by the rehearsal stand-in"
        )
    cur = values
    for p in parts[:-1]:
        if not isinstance(cur.get(p), dict):
            cur[p] = {}
        cur = cur[p]
    cur[parts[-1]] = value


POSTRENDER_PLUGIN = "flux-postrender"


def helm_major(helm: str) -> int:
    """The major version of a helm binary (``helm version --short``: v3.17.2+g..., v4.1.4+g...)."""
    res = tools.run([helm, "version", "--short"], timeout=30)
    m = re.match(r"v(\d+)\.", res.stdout.strip())
    return int(m[1]) if m else 3


class HelmController:
    def __init__(self, api: Api, state_dir: Path, kubeconfig: str, context: str | None, source):
        self.api = api
        self.state_dir = state_dir
        self.kubeconfig = kubeconfig
        self.context = context
        self.source = source
        # tools.standin_helm: HANDOVER_STANDIN_HELM=helm4 runs the pinned Helm 4 (opt-in)
        self.helm = str(tools.standin_helm())
        self.helm_major = helm_major(self.helm)
        self.home = state_dir / "helm"
        self.postrenderer = state_dir / "bin" / "flux-postrender"
        self._write_postrenderer()
        log.info("helm-controller stand-in runs %s (Helm %s)", self.helm, self.helm_major)

    def _write_postrenderer(self) -> None:
        self.postrenderer.parent.mkdir(parents=True, exist_ok=True)
        root = Path(__file__).resolve().parents[3]
        self.postrenderer.write_text(
            "#!/bin/sh\n"
            f"PYTHONPATH={shlex.quote(str(root))}${{PYTHONPATH:+:$PYTHONPATH}} "
            f'exec {shlex.quote(sys.executable)} -m handover.flux.postrender "$@"\n'
        )
        self.postrenderer.chmod(0o755)
        if self.helm_major >= 4:
            # Helm 4 takes only post-renderer plugins (type postrenderer/v1, subprocess runtime)
            plugin = self.home / "data" / "plugins" / POSTRENDER_PLUGIN
            plugin.mkdir(parents=True, exist_ok=True)
            (plugin / "plugin.yaml").write_text(
                yaml.safe_dump(
                    {
                        "apiVersion": "v1",
                        "type": "postrenderer/v1",
                        "name": POSTRENDER_PLUGIN,
                        "version": "0.1.0",
                        "runtime": "subprocess",
                        "runtimeConfig": {"platformCommand": [{"command": str(self.postrenderer)}]},
                    },
                    sort_keys=False,
                )
            )

    @property
    def postrenderer_ref(self) -> str:
        """The --post-renderer argument: the script (Helm 3) or the plugin's name (Helm 4)."""
        return POSTRENDER_PLUGIN if self.helm_major >= 4 else str(self.postrenderer)

    # -- helm ------------------------------------------------------------------------------------
    def run_helm(self, *args: str, timeout: float = 600) -> tools.Result:
        env = {
            "KUBECONFIG": self.kubeconfig,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        argv = [self.helm, *args]
        if self.context:
            argv += ["--kube-context", self.context]
        res = tools.run(argv, env=env, timeout=timeout + 30)
        log.info(
            "helm %s -> %s%s",
            " ".join(args[:3]),
            res.returncode,
            f": {res.stderr.strip()[-300:]}" if not res.ok else "",
        )
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
                what = (
                    f"{kind} '{ns}/{name}'"
                    if obj is None
                    else f"missing key '{key}' in {kind} '{ns}/{name}'"
                )
                raise ValuesError(f"could not find {what}")
            if ref.get("targetPath"):
                set_path(values, ref["targetPath"], data)
            else:
                loaded = yaml.safe_load(data) or {}
                if not isinstance(loaded, dict):
                    raise ValuesError(
                        f"unable to read values from key '{key}' in {kind} '{ns}/{name}': not a map"
                    )
                values = deep_merge(values, loaded)
        return deep_merge(values, spec.get("values") or {})

    def fetch_chart(self, hr: Obj, workdir: Path) -> tuple[Path, dict[str, Any]]:
        """The chart as source-controller's HelmChart artifact: pulled, then built with the
        HelmChart's valuesFiles and version metadata (build_chart)."""
        ref, meta, revision = self._pull_chart(hr, workdir)
        return self.build_chart(hr, workdir, ref, meta, revision)

    def helmchart_generation(self, hr: Obj) -> int:
        """The generation of the HelmChart helm-controller keeps for this HelmRelease
        (internal/reconcile/helmchart_template.go): 1 when made, +1 on each change of its spec
        (chart, version, sourceRef, reconcileStrategy, valuesFiles, ...). The stand-in has no
        HelmChart object; it keeps the template and its generation in the state dir."""
        cspec = ((hr.get("spec") or {}).get("chart") or {}).get("spec") or {}
        tmpl = {
            k: cspec.get(k)
            for k in (
                "chart",
                "version",
                "sourceRef",
                "interval",
                "reconcileStrategy",
                "valuesFiles",
                "ignoreMissingValuesFiles",
                "verify",
            )
        }
        path = self.state_dir / "helmcharts.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        key = f"{hr['metadata']['namespace']}/{hr['metadata']['name']}"
        cur = data.get(key)
        if cur is None or cur.get("uid") != hr["metadata"].get("uid"):
            cur = {"uid": hr["metadata"].get("uid"), "spec": tmpl, "generation": 1}
        elif cur["spec"] != tmpl:
            cur = {"uid": cur["uid"], "spec": tmpl, "generation": cur["generation"] + 1}
        data[key] = cur
        path.write_text(json.dumps(data, sort_keys=True))
        return int(cur["generation"])

    def build_chart(
        self, hr: Obj, workdir: Path, ref: Path, meta: dict[str, Any], revision: str | None
    ) -> tuple[Path, dict[str, Any]]:
        """source-controller chart build (internal/helm/chart/builder_remote.go /
        builder_local.go Build, mergeChartValues; internal/controller/helmchart_controller.go
        buildFromHelmRepository / buildFromTarballArtifact):
        - valuesFiles: merged in order (``values.yaml`` = the chart's defaults, any other path a
          file inside the chart; missing -> error unless ignoreMissingValuesFiles) and the result
          REPLACES the chart's values.yaml;
        - version metadata: reconcileStrategy Revision (source chart) -> ``+<commit sha[:12]>``;
          valuesFiles -> ``+<HelmChart generation>`` (``.<generation>`` after a revision);
          SemVer SetMetadata replaces metadata the chart version had. The mutated version is the
          chart's ``.Chart.Version`` (so it reaches helm.sh/chart labels)."""
        cspec = hr["spec"]["chart"]["spec"]
        files = cspec.get("valuesFiles") or []
        metadata = ""
        if cspec.get("reconcileStrategy") == "Revision" and revision:
            # git.ExtractHashFromRevision, first 12 hex characters (label length limits)
            metadata = revision.rsplit(":", 1)[-1].rsplit("/", 1)[-1][:12]
        if files:
            gen = self.helmchart_generation(hr)
            metadata = f"{metadata}.{gen}" if metadata else str(gen)
        else:
            self.helmchart_generation(hr)
        if not metadata and not files:
            return ref, meta
        chart_dir = ref
        if ref.is_file():
            out = workdir / "built"
            with tarfile.open(ref) as tar:
                tar.extractall(out, filter="data")
            chart_dir = next(p.parent for p in out.glob("*/Chart.yaml"))
        if files:
            merged: dict[str, Any] = {}
            for f in files:
                clean = str(Path(f))
                if clean == "values.yaml":
                    p = chart_dir / "values.yaml"
                    add = yaml.safe_load(p.read_text()) if p.exists() else {}
                else:
                    p = (chart_dir / clean).resolve()
                    if not p.is_relative_to(chart_dir.resolve()) or not p.is_file():
                        if cspec.get("ignoreMissingValuesFiles"):
                            continue
                        raise ChartError(
                            f"HelmChart '{hr['metadata']['namespace']}/"
                            f"{hr['metadata']['namespace']}-{hr['metadata']['name']}'"
                            f" is not ready: no values file found at path '{f}'"
                        )
                    add = yaml.safe_load(p.read_text())
                merged = deep_merge(merged, add or {})
            (chart_dir / "values.yaml").write_text(yaml.safe_dump(merged))
        if metadata:
            base = str(meta["version"]).split("+", 1)[0]
            meta = {**meta, "version": f"{base}+{metadata}"}
            (chart_dir / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
        return chart_dir, meta

    def _pull_chart(self, hr: Obj, workdir: Path) -> tuple[Path, dict[str, Any], str | None]:
        """The chart archive/dir, its Chart.yaml metadata and the source revision."""
        cspec = ((hr.get("spec") or {}).get("chart") or {}).get("spec")
        if not cspec:
            raise ChartError(
                "spec.chartRef is not supported by the rehearsal stand-in; use spec.chart"
            )
        src = cspec["sourceRef"]
        kind = src.get("kind", "HelmRepository")
        src_ns = src.get("namespace") or hr["metadata"]["namespace"]
        chart_obj = f"{src_ns}/{hr['metadata']['namespace']}-{hr['metadata']['name']}"
        repo = self.api.get(flux.SOURCE_API, kind, src["name"], src_ns)
        if repo is None:
            raise ChartError(
                f"HelmChart '{chart_obj}' is not ready: {kind} '{src_ns}/{src['name']}' not found"
            )
        if kind == "HelmRepository":
            if (repo.get("spec") or {}).get("type") == "oci":
                raise ChartError(
                    f"HelmChart '{chart_obj}' is not ready: OCI HelmRepository "
                    f"'{src_ns}/{src['name']}': no OCI registry in the rehearsal"
                )
            if not flux.is_ready(repo):
                raise ChartError(
                    f"HelmChart '{chart_obj}' is not ready: HelmRepository "
                    f"'{src_ns}/{src['name']}' is not ready"
                )
            args = [
                "pull",
                cspec["chart"],
                "--repo",
                repo["spec"]["url"].rstrip("/"),
                "--destination",
                str(workdir),
            ]
            version = cspec.get("version") or "*"
            if version != "*":
                args += ["--version", version]
            res = self.run_helm(*args, timeout=60)
            if not res.ok:
                err = res.stderr.strip().replace("Error: ", "")
                raise ChartError(f"HelmChart '{chart_obj}' is not ready: chart pull error: {err}")
            archives = list(workdir.glob("*.tgz"))
            if len(archives) != 1:
                raise ChartError(f"HelmChart '{chart_obj}': expected one chart archive")
            with tarfile.open(archives[0]) as tar:
                member = next(
                    m
                    for m in tar.getmembers()
                    if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml")
                )
                f = tar.extractfile(member)
                if f is None:
                    raise ChartError(f"HelmChart '{chart_obj}': {member.name} is not a file")
                meta = yaml.safe_load(f.read())
            return archives[0], meta, None
        if kind == "GitRepository":
            artifact = self.source.artifact_file((repo.get("status") or {}).get("artifact"))
            if artifact is None or not flux.is_ready(repo):
                raise ChartError(
                    f"HelmChart '{chart_obj}' is not ready: GitRepository "
                    f"'{src_ns}/{src['name']}' has no artifact"
                )
            with tarfile.open(artifact) as tar:
                tar.extractall(workdir / "src", filter="data")
            chart_dir = (workdir / "src" / cspec["chart"]).resolve()
            if not (chart_dir / "Chart.yaml").exists():
                raise ChartError(
                    f"HelmChart '{chart_obj}' is not ready: no chart at path "
                    f"'{cspec['chart']}' in GitRepository '{src_ns}/{src['name']}'"
                )
            return (
                chart_dir,
                yaml.safe_load((chart_dir / "Chart.yaml").read_text()),
                ((repo.get("status") or {}).get("artifact") or {}).get("revision"),
            )
        raise ChartError(
            f"HelmChart '{chart_obj}' is not ready: sourceRef kind {kind} is not "
            f"supported by the rehearsal stand-in"
        )

    # -- storage ---------------------------------------------------------------------------------
    def release_raw(self, name: str, storage_ns: str, revision: int) -> dict[str, Any] | None:
        s = self.api.get("v1", "Secret", helm_storage.secret_name(name, revision), storage_ns)
        if s is None:
            return None
        return helm_storage.decode_release(s["data"]["release"])

    def latest(self, name: str, storage_ns: str) -> dict[str, Any] | None:
        secrets = self.api.list(
            "v1", "Secret", storage_ns, label_selector=f"owner=helm,name={name}"
        )
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
        rel["info"]["description"] = f"Release unlocked from stale '{rel['info']['status']}' state"
        rel["info"]["status"] = "failed"
        self.api.patch(
            "v1",
            "Secret",
            sname,
            storage_ns,
            {
                "metadata": {"labels": {"status": "failed"}},
                "data": {"release": helm_storage.encode_release(rel)},
            },
        )

    @staticmethod
    def digest(rel: dict[str, Any]) -> str:
        chart_meta = (rel.get("chart") or {}).get("metadata") or {}
        raw = json.dumps(
            {
                "name": rel["name"],
                "namespace": rel.get("namespace"),
                "version": rel["version"],
                "status": rel["info"]["status"],
                "chart": [chart_meta.get("name"), chart_meta.get("version")],
                "config": rel.get("config") or {},
                "manifest": rel.get("manifest"),
                "deployed": [
                    (rel.get("info") or {}).get("first_deployed"),
                    (rel.get("info") or {}).get("last_deployed"),
                ],
            },
            sort_keys=True,
        ).encode()
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def snapshot(self, rel: dict[str, Any]) -> dict[str, Any]:
        """A history snapshot of a stored release; configDigest is the digest of the release's
        own config (internal/release/observation.go ObserveRelease / ObservedToSnapshot)."""
        chart_meta = (rel.get("chart") or {}).get("metadata") or {}
        info = rel.get("info") or {}
        snap = {
            "name": rel["name"],
            "namespace": rel.get("namespace"),
            "version": int(rel["version"]),
            "status": info.get("status"),
            "chartName": chart_meta.get("name"),
            "chartVersion": chart_meta.get("version"),
            "configDigest": config_digest(rel.get("config") or {}),
            "digest": self.digest(rel),
            "firstDeployed": info.get("first_deployed"),
            "lastDeployed": info.get("last_deployed"),
        }
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
        refused = fidelity.refusals(hr)
        if refused:
            set_condition(
                status,
                hr,
                "Ready",
                False,
                fidelity.UNEMULATED_REASON,
                fidelity.refusal_message(refused),
            )
            status["observedGeneration"] = gen
            self.api.patch_status(hr, status)
            return interval
        # resetAt resets the failure counters; a new generation does too.
        if status.get("lastAttemptedGeneration") != gen or (
            ann.get("reconcile.fluxcd.io/resetAt")
            and ann.get("reconcile.fluxcd.io/resetAt") != status.get("lastHandledResetAt")
        ):
            for k in ("failures", "installFailures", "upgradeFailures"):
                status.pop(k, None)
            if ann.get("reconcile.fluxcd.io/resetAt"):
                status["lastHandledResetAt"] = ann["reconcile.fluxcd.io/resetAt"]
        force = (
            bool(ann.get("reconcile.fluxcd.io/forceAt"))
            and ann.get("reconcile.fluxcd.io/forceAt") == ann.get(flux.RECONCILE_REQUESTED_AT)
            and ann.get("reconcile.fluxcd.io/forceAt") != status.get("lastHandledForceAt")
        )

        # dependsOn: wait for Ready of each dependency
        for dep in spec.get("dependsOn") or []:
            dns = dep.get("namespace") or ns
            d = self.api.get(flux.HELM_API, "HelmRelease", dep["name"], dns)
            if d is None or not flux.is_ready(d):
                set_condition(
                    status,
                    hr,
                    "Ready",
                    False,
                    "DependencyNotReady",
                    f"dependency '{dns}/{dep['name']}' is not ready",
                )
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
                reason = e.reason if isinstance(e, ChartError) else "ValuesError"
                set_condition(status, hr, "Ready", False, reason, str(e))
                status["observedGeneration"] = gen
                self.api.patch_status(hr, status)
                log.warning("HelmRelease %s/%s: %s", ns, name, e)
                return min(interval, 10.0)
            status["helmChart"] = (
                f"{(spec['chart']['spec']['sourceRef'].get('namespace') or ns)}/{ns}-{name}"
            )
            cfg_digest = config_digest(values)
            values_file = workdir / "values.yaml"
            values_file.write_text(yaml.safe_dump(values))
            after = self._release(
                hr,
                status,
                rel_name,
                storage_ns,
                target_ns,
                chart_ref,
                chart_meta,
                values_file,
                cfg_digest,
                force,
            )
            if force:
                status["lastHandledForceAt"] = ann["reconcile.fluxcd.io/forceAt"]
            if flux.is_ready({"status": status, "metadata": hr["metadata"]}):
                status["observedPostRenderersDigest"] = postrenderers_digest(hr)
            status["observedGeneration"] = gen
            self.api.patch_status(hr, status)
            return after if after is not None else interval
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _tmp(self) -> Path:
        p = self.state_dir / "tmp"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def _state(
        self, hr: Obj, status: Obj, rel: dict | None, chart_meta: dict, cfg_digest: str
    ) -> tuple[str, str]:
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
        if (cur.get("name"), cur.get("namespace"), cur.get("version")) != (
            rel["name"],
            rel.get("namespace"),
            int(rel["version"]),
        ):
            return "unmanaged", "release not observed to be made for object"
        if cur.get("digest") != self.digest(rel):
            return "unmanaged", "release digest verification error"
        if rstatus == "failed":
            return "failed", "release is in a failed state"
        if rstatus == "uninstalled":
            return "absent", "found uninstalled release in storage"
        if rstatus != "deployed":
            return "unknown", f"unable to determine state for release with status '{rstatus}'"
        # post-renderers changed in a new generation (state.go: ObservedPostRenderersDigest)
        if (
            status.get("observedPostRenderersDigest")
            and hr["metadata"].get("generation") != status.get("observedGeneration")
            and status["observedPostRenderersDigest"] != postrenderers_digest(hr)
        ):
            return "out-of-sync", "postrenderers digest has changed"
        rchart = (rel.get("chart") or {}).get("metadata") or {}
        if (rchart.get("name"), rchart.get("version")) != (
            chart_meta.get("name"),
            str(chart_meta.get("version")),
        ):
            return "out-of-sync", "release chart changed"
        if cur.get("configDigest") != cfg_digest:
            return "out-of-sync", "release config digest changed"
        return "in-sync", "release in-sync with desired state"

    def _release(
        self,
        hr: Obj,
        status: Obj,
        rel_name: str,
        storage_ns: str,
        target_ns: str,
        chart_ref: Path,
        chart_meta: dict,
        values_file: Path,
        cfg_digest: str,
        force: bool,
    ) -> float | None:
        """The AtomicRelease loop (internal/reconcile/atomic_release.go Reconcile with the
        cleanReleaseStrategy): determine the state, pick the action for it (actionForState), run
        each action type at most once per reconcile, stop after a remediation."""
        ns, name = hr["metadata"]["namespace"], hr["metadata"]["name"]
        spec = hr.get("spec") or {}
        history = status.get("history") or []
        # release target changed (internal/action/verify.go ReleaseTargetChanged): uninstall
        # the release made for the old target, clear history/failures, then install anew
        changed = release_target_changed(hr, status, str(chart_meta.get("name")))
        if changed:
            old = history[0]
            log.info(
                "HelmRelease %s/%s: release target configuration changed (%s): running "
                "uninstall for current release %s/%s",
                ns,
                name,
                changed,
                status["storageNamespace"],
                old.get("name"),
            )
            self.run_helm(
                "uninstall",
                old["name"],
                "--namespace",
                status["storageNamespace"],
                "--wait",
                "--timeout",
                "5m",
            )
            status["history"] = history = []
            for k in ("failures", "installFailures", "upgradeFailures"):
                status.pop(k, None)
        status["storageNamespace"] = storage_ns
        chart_version = str(chart_meta.get("version"))
        gen = hr["metadata"].get("generation")
        # a new chart revision or new values reset the failure counters (helmrelease_controller.go)
        if (status.get("lastAttemptedRevision"), status.get("lastAttemptedConfigDigest")) != (
            chart_version,
            cfg_digest,
        ):
            for k in ("failures", "installFailures", "upgradeFailures"):
                status.pop(k, None)
        status["lastAttemptedRevision"] = chart_version
        status["lastAttemptedConfigDigest"] = cfg_digest
        status["lastAttemptedGeneration"] = gen
        status.pop("lastAttemptedValuesChecksum", None)
        remove_condition(status, "Stalled")
        done: set[str] = set()
        while True:
            rel = self.latest(rel_name, storage_ns)
            state, reason = self._state(hr, status, rel, chart_meta, cfg_digest)
            log.info(
                "HelmRelease %s/%s: release %s/%s state %s (%s)",
                ns,
                name,
                storage_ns,
                rel_name,
                state,
                reason,
            )
            try:
                action = self.action_for_state(hr, status, state, force, storage_ns)
            except Stall as e:
                set_condition(status, hr, "Stalled", True, e.reason, e.message)
                summarize(hr, status)
                return None
            if action is None:
                summarize(hr, status)
                return None
            kind = ACTION_TYPES[action]
            if kind in done:
                # cleanReleaseStrategy.MustContinue: requeue while retries remain
                rem = active_remediation(spec, status)
                if rem is None or not retries_exhausted(rem, status):
                    return 5.0
                return None
            if action == "unlock":
                log.info("HelmRelease %s/%s: unlocking %s (%s)", ns, name, rel_name, reason)
                assert rel is not None  # "locked" is a state of a stored release
                self.unlock(rel, storage_ns)
            elif action in ("install", "upgrade"):
                ok = self._release_action(
                    hr,
                    status,
                    action,
                    spec,
                    rel_name,
                    storage_ns,
                    target_ns,
                    chart_ref,
                    chart_meta,
                    values_file,
                )
                force = False
                if ok is None:
                    # failed without writing a release: not counted, retried (upgrade.go)
                    return 10.0
            else:
                self._remediate(hr, status, action, spec, rel_name, storage_ns, target_ns)
                # cleanReleaseStrategy.MustStop after a remediation
                rem = active_remediation(spec, status)
                if rem is not None and retries_exhausted(rem, status):
                    set_condition(
                        status,
                        hr,
                        "Stalled",
                        True,
                        "RetriesExceeded",
                        f"Failed to {status.get('lastAttemptedReleaseAction')} after "
                        f"{failure_count(rem, status)} attempt(s)",
                    )
                    return None
                return 5.0
            done.add(kind)

    def action_for_state(
        self, hr: Obj, status: Obj, state: str, force: bool, storage_ns: str
    ) -> str | None:
        """internal/reconcile/atomic_release.go actionForState; raises Stall for
        ErrExceededMaxRetries / ErrMissingRollbackTarget."""
        spec = hr.get("spec") or {}
        if state == "in-sync":
            truncate_history(status)
            if force:
                return "upgrade"
            rem = next((c for c in status.get("conditions", []) if c["type"] == "Remediated"), None)
            if not any(
                c["type"] in ("Released", "Remediated") for c in status.get("conditions", [])
            ):
                # no condition to summarize (status written by an older controller): the
                # history's newest snapshot was observed from this controller's own action
                cur = status["history"][0]
                action = status.get("lastAttemptedReleaseAction") or "install"
                set_condition(
                    status,
                    hr,
                    "Released",
                    True,
                    f"{action.capitalize()}Succeeded",
                    f"Helm {action} succeeded for release {full_name(cur)} with chart "
                    f"{cur['chartName']}@{cur['chartVersion']}",
                )
            if rem and rem["status"] == "True":
                cur = status["history"][0]
                remove_condition(status, "Remediated")
                set_condition(
                    status,
                    hr,
                    "Released",
                    True,
                    "UpgradeSucceeded",
                    f"Upgraded release {full_name(cur)} with chart "
                    f"{cur['chartName']}@{cur['chartVersion']}",
                )
            return None
        if state == "locked":
            return "unlock"
        if state == "absent":
            if retries_exhausted(remediation_of(spec, "install"), status) and not force:
                raise Stall(
                    "RetriesExceeded",
                    f"Failed to install after "
                    f"{status.get('installFailures', 0)} attempt(s): cannot install "
                    "release",
                )
            return "install"
        if state == "unmanaged":
            status["history"] = []
            return "upgrade"
        if state == "out-of-sync":
            if retries_exhausted(remediation_of(spec, "upgrade"), status) and not force:
                raise Stall(
                    "RetriesExceeded",
                    f"Failed to upgrade after "
                    f"{status.get('upgradeFailures', 0)} attempt(s): cannot upgrade "
                    "release",
                )
            return "upgrade"
        if state == "failed":
            rem = active_remediation(spec, status)
            if rem is None or failure_count(rem, status) <= 0 or force:
                return "upgrade"
            if retries_exhausted(rem, status) and not must_remediate_last_failure(rem):
                raise Stall(
                    "RetriesExceeded",
                    f"Failed to {rem['action']} after "
                    f"{failure_count(rem, status)} attempt(s): cannot remediate failed "
                    "release",
                )
            truncate_history(status)
            if rem["strategy"] == "rollback":
                prev = previous_snapshot(status)
                stored = (
                    None
                    if prev is None
                    else self.release_raw(prev["name"], storage_ns, int(prev["version"]))
                )
                if prev is None or stored is None:
                    raise Stall(
                        "MissingRollbackTarget",
                        "Failed to perform remediation: "
                        "missing target release for rollback: cannot remediate failed "
                        "release",
                    )
                if self.digest(stored) != prev.get("digest"):
                    return "upgrade"
                return "rollback"
            return "uninstall"
        raise Stall("ReconcileError", f"unknown release status {state!r}")

    def _release_action(
        self,
        hr: Obj,
        status: Obj,
        action: str,
        spec: Obj,
        rel_name: str,
        storage_ns: str,
        target_ns: str,
        chart_ref: Path,
        chart_meta: dict,
        values_file: Path,
    ) -> bool | None:
        """internal/reconcile/install.go / upgrade.go Reconcile: the releases written during the
        action are observed into status.history; a failure counts for the active remediation
        only when it wrote a release. Returns True (success), False (failure that wrote a
        release), None (failure that wrote none)."""
        ns, name = hr["metadata"]["namespace"], hr["metadata"]["name"]
        chart_version = str(chart_meta.get("version"))
        status["lastAttemptedReleaseAction"] = action
        before = self.releases(rel_name, storage_ns)
        started = time.monotonic()
        crd_err = (
            self.apply_crds(hr, spec, chart_ref, values_file.parent)
            if action == "upgrade"
            else None
        )
        res: _Failed | tools.Result
        if crd_err:
            res = _Failed(crd_err)
        else:
            res = self._run_action(
                action, spec, rel_name, storage_ns, target_ns, chart_ref, values_file, ns, name
            )
        status["lastAttemptedReleaseActionDuration"] = f"{time.monotonic() - started:.3f}s"
        after = self.releases(rel_name, storage_ns)
        wrote = any(
            v not in before or self.digest(before[v]) != self.digest(r) for v, r in after.items()
        )
        self.observe(status, before, after, spec, target_ns)
        cur = (status.get("history") or [None])[0]
        if res.ok and cur is not None:
            msg = (
                f"Helm {action} succeeded for release {target_ns}/{rel_name}.v{cur['version']}"
                f" with chart {cur['chartName']}@{cur['chartVersion']}"
            )
            reason = "InstallSucceeded" if action == "install" else "UpgradeSucceeded"
            set_condition(status, hr, "Released", True, reason, msg)
            status["lastReleaseRevision"] = cur["version"]
            summarize(hr, status)
            return True
        err = (
            res.stderr.strip().replace("Error: ", "")[-2000:]
            if not res.ok
            else "no release was written"
        )
        status["failures"] = status.get("failures", 0) + 1
        reason = "InstallFailed" if action == "install" else "UpgradeFailed"
        set_condition(
            status,
            hr,
            "Released",
            False,
            reason,
            f"Helm {action} failed for release {target_ns}/{rel_name} with chart "
            f"{chart_meta.get('name')}@{chart_version}: {err}",
        )
        summarize(hr, status)
        if not wrote:
            return None
        key = f"{action}Failures"
        status[key] = status.get(key, 0) + 1
        return False

    def releases(self, name: str, storage_ns: str) -> dict[int, dict[str, Any]]:
        out = {}
        for s in self.api.list(
            "v1", "Secret", storage_ns, label_selector=f"owner=helm,name={name}"
        ):
            if s.get("type") == helm_storage.SECRET_TYPE:
                rel = helm_storage.decode_release(s["data"]["release"])
                out[int(rel["version"])] = rel
        return out

    def observe(
        self,
        status: Obj,
        before: dict[int, dict],
        after: dict[int, dict],
        spec: Obj,
        release_ns: str | None = None,
    ) -> None:
        """internal/reconcile/release.go observeRelease: only the releases written during the
        action reach status.history: a new revision becomes the newest snapshot, a rewritten
        revision already in the history (e.g. superseded) has its snapshot updated. Snapshots
        digest the release's own config (internal/release/observation.go ObserveRelease)."""
        hist = list(status.get("history") or [])
        for version in sorted(after):
            rel = after[version]
            old = before.get(version)
            if old is not None and self.digest(old) == self.digest(rel):
                continue  # not written during the action
            snap = self.snapshot(rel)
            if release_ns:
                snap["releaseNamespace"] = release_ns
            idx = next(
                (
                    i
                    for i, h in enumerate(hist)
                    if h.get("name") == rel["name"] and int(h.get("version", -1)) == version
                ),
                None,
            )
            if idx is not None:
                hist[idx] = snap
            elif old is None:
                hist.insert(0, snap)
        hist.sort(key=lambda h: -int(h.get("version", 0)))
        status["history"] = hist[: max(1, spec.get("maxHistory") or MAX_HISTORY)]

    def _remediate(
        self,
        hr: Obj,
        status: Obj,
        action: str,
        spec: Obj,
        rel_name: str,
        storage_ns: str,
        target_ns: str,
    ) -> None:
        """rollback_remediation.go (to the previous snapshot's version) /
        uninstall_remediation.go; Remediated condition."""
        ns, name = hr["metadata"]["namespace"], hr["metadata"]["name"]
        before = self.releases(rel_name, storage_ns)
        if action == "rollback":
            prev = previous_snapshot(status)
            assert prev is not None  # rollback remediation is chosen only with a previous one
            rspec = spec.get("rollback") or {}
            args = [
                "rollback",
                rel_name,
                str(prev["version"]),
                "--namespace",
                storage_ns,
                "--timeout",
                self._timeout(spec, "rollback"),
            ]
            if not rspec.get("disableWait"):
                args.append("--wait")
                if not rspec.get("disableWaitForJobs"):
                    args.append("--wait-for-jobs")
            for flag, opt in (
                ("disableHooks", "--no-hooks"),
                ("recreate", "--recreate-pods"),
                ("force", "--force"),
                ("cleanupOnFail", "--cleanup-on-fail"),
            ):
                if rspec.get(flag):
                    args.append(opt)
            res = self.run_helm(*args)
            ok_reason, fail_reason = "RollbackSucceeded", "RollbackFailed"
        else:
            uspec = spec.get("uninstall") or {}
            args = [
                "uninstall",
                rel_name,
                "--namespace",
                storage_ns,
                "--timeout",
                self._timeout(spec, "uninstall"),
            ]
            if not uspec.get("disableWait"):
                args.append("--wait")
            if uspec.get("keepHistory"):
                args.append("--keep-history")
            if uspec.get("disableHooks"):
                args.append("--no-hooks")
            res = self.run_helm(*args)
            ok_reason, fail_reason = "UninstallSucceeded", "UninstallFailed"
        self.observe(status, before, self.releases(rel_name, storage_ns), spec, target_ns)
        cur = (status.get("history") or [None])[0]
        if res.ok:
            msg = f"Helm {action} succeeded for release {target_ns}/{rel_name}" + (
                f".v{cur['version']}" if cur and action == "rollback" else ""
            )
            set_condition(status, hr, "Remediated", True, ok_reason, msg)
        else:
            set_condition(
                status,
                hr,
                "Remediated",
                False,
                fail_reason,
                f"Helm {action} failed: {res.stderr.strip()[-1000:]}",
            )
        summarize(hr, status)
        log.info("HelmRelease %s/%s: remediation %s -> %s", ns, name, action, res.ok)

    @staticmethod
    def _timeout(spec: Obj, action: str) -> str:
        t = (spec.get(action) or {}).get("timeout") or spec.get("timeout") or "5m"
        return t

    @staticmethod
    def chart_crds(chart_ref: Path, workdir: Path) -> list[Obj]:
        """The CustomResourceDefinitions of ``crds/`` of the chart and of its subcharts (Helm
        chart.CRDObjects: files of each chart's crds/ directory, dependencies included)."""
        root = chart_ref
        if chart_ref.is_file():
            root = workdir / "crd-scan"
            with tarfile.open(chart_ref) as tar:
                tar.extractall(root, filter="data")
        # subchart archives under charts/
        for tgz in list(root.rglob("charts/*.tgz")):
            with tarfile.open(tgz) as tar:
                tar.extractall(tgz.parent / (tgz.name + ".d"), filter="data")
        out: list[Obj] = []
        for f in sorted(root.rglob("*")):
            if (
                f.is_file()
                and f.parent.name == "crds"
                and (f.parent.parent / "Chart.yaml").exists()
                and f.suffix in (".yaml", ".yml", ".json")
            ):
                out += [
                    d
                    for d in yaml.safe_load_all(f.read_text())
                    if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"
                ]
        return out

    def apply_crds(self, hr: Obj, spec: Obj, chart_ref: Path, workdir: Path) -> str | None:
        """internal/action/upgrade.go Upgrade -> crds.go applyCRDs with crdPolicyOrDefault
        (unset -> Create): before the upgrade, each CRD of the chart is created with the
        origin labels (setOriginVisitor), an existing one is skipped; then waited for
        (Established). Returns an error message or None. ``Skip`` does nothing;
        ``CreateReplace`` is not emulated (fidelity hr-crds-replace)."""
        policy = (spec.get("upgrade") or {}).get("crds") or "Create"
        if policy != "Create":
            return None
        created = []
        for crd in self.chart_crds(chart_ref, workdir):
            crd = copy.deepcopy(crd)
            labels = crd.setdefault("metadata", {}).setdefault("labels", {}) or {}
            labels.update(
                {
                    flux.HELM_ORIGIN_NAME: hr["metadata"]["name"],
                    flux.HELM_ORIGIN_NAMESPACE: hr["metadata"]["namespace"],
                }
            )
            crd["metadata"]["labels"] = labels
            name = crd["metadata"].get("name")
            if (
                self.api.get(
                    crd.get("apiVersion", "apiextensions.k8s.io/v1"),
                    "CustomResourceDefinition",
                    name,
                )
                is not None
            ):
                log.info("CustomResourceDefinition %s is already present. Skipping.", name)
                continue
            try:
                self.api.create(crd)
            except Exception as e:  # noqa: BLE001 - reported as the upgrade's failure
                if "AlreadyExists" in str(e) or "already exists" in str(e):
                    continue
                return (
                    f"failed to apply CustomResourceDefinitions: failed to create "
                    f"CustomResourceDefinition {name}: {e}"
                )
            created.append(crd)
        deadline = time.monotonic() + 60
        for crd in created:
            while True:
                cur = (
                    self.api.get(
                        crd.get("apiVersion", "apiextensions.k8s.io/v1"),
                        "CustomResourceDefinition",
                        crd["metadata"]["name"],
                    )
                    or {}
                )
                if any(
                    c.get("type") == "Established" and c.get("status") == "True"
                    for c in (cur.get("status") or {}).get("conditions") or []
                ):
                    break
                if time.monotonic() > deadline:
                    return (
                        "failed to apply CustomResourceDefinitions: failed to wait for "
                        f"CustomResourceDefinition {crd['metadata']['name']}"
                    )
                time.sleep(0.5)
        return None

    def _run_action(
        self,
        action: str,
        spec: Obj,
        rel_name: str,
        storage_ns: str,
        target_ns: str,
        chart_ref: Path,
        values_file: Path,
        hr_ns: str,
        hr_name: str,
    ) -> tools.Result:
        aspec = spec.get(action) or {}
        args = [
            action,
            rel_name,
            str(chart_ref),
            "--namespace",
            storage_ns,
            "-f",
            str(values_file),
            "--timeout",
            self._timeout(spec, action),
            "--post-renderer",
            self.postrenderer_ref,
            "--post-renderer-args",
            f"--name={hr_name}",
            "--post-renderer-args",
            f"--namespace={hr_ns}",
        ]
        if spec.get("postRenderers") or spec.get("commonMetadata"):
            pr = values_file.parent / "postrender.json"
            pr.write_text(
                json.dumps(
                    {
                        "postRenderers": spec.get("postRenderers") or [],
                        "commonMetadata": spec.get("commonMetadata") or {},
                        "kubectl": str(tools.kubectl()),
                    }
                )
            )
            args += ["--post-renderer-args", f"--spec={pr}"]
        if storage_ns != target_ns:
            args += [
                "--post-renderer-args",
                f"--release-namespace={target_ns}",
                "--post-renderer-args",
                f"--storage-namespace={storage_ns}",
            ]
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
                args.append("--force-replace" if self.helm_major >= 4 else "--force")
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
            log.info(
                "HelmRelease %s/%s deleted before any reconcile: nothing to uninstall", ns, name
            )
        elif uninstall_target(status) is None:
            # internal/reconcile/uninstall.go Uninstall.Reconcile: no latest snapshot ->
            # ErrNoLatest, which reconcileReleaseDeletion ignores: the release is left
            log.info(
                "HelmRelease %s/%s deleted with an empty history: no release uninstalled", ns, name
            )
        else:
            rel_name = uninstall_target(status)
            assert rel_name is not None  # the elif above
            rel = self.latest(rel_name, status["storageNamespace"])
            if rel is not None and rel["info"]["status"] != "uninstalled":
                uspec = spec.get("uninstall") or {}
                args = [
                    "uninstall",
                    rel_name,
                    "--namespace",
                    status["storageNamespace"],
                    "--timeout",
                    uspec.get("timeout") or spec.get("timeout") or "5m",
                ]
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
                    set_condition(
                        st,
                        hr,
                        "Ready",
                        False,
                        "UninstallFailed",
                        f"Helm uninstall failed: {res.stderr.strip()[-1000:]}",
                    )
                    self.api.patch_status(hr, st)
                    return 10.0
            log.info(
                "HelmRelease %s/%s deleted: release %s/%s uninstalled",
                ns,
                name,
                status["storageNamespace"],
                rel_name,
            )
        self.api.set_finalizers(hr, [f for f in fins if f != flux.FINALIZER])
        return None

    @staticmethod
    def source_refs(hr: Obj) -> list[tuple[str, str, str]]:
        cspec = ((hr.get("spec") or {}).get("chart") or {}).get("spec") or {}
        src = cspec.get("sourceRef") or {}
        if not src:
            return []
        return [
            (
                src.get("kind", "HelmRepository"),
                src.get("namespace") or hr["metadata"]["namespace"],
                src["name"],
            )
        ]
