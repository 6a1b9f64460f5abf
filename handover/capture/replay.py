"""Replay a capture bundle into the rehearsal cluster (``handover rehearsal up --from-capture``).

What a real ``helm`` then sees is what it saw on the captured cluster: every release Secret is
written as captured (``sh.helm.release.v1.<name>.v<rev>``, type ``helm.sh/release.v1``, its labels,
its ``data.release`` byte for byte), so ``helm get manifest``, ``helm get values --all`` and ``helm
history`` print the same, and generated passwords are the captured ones (nothing is installed
anew). The objects of each release's newest revision are created from its manifest, with the
ownership metadata Helm puts on live objects; the kubectl-applied objects are applied client-side
from their last-applied configuration; Namespaces, StorageClasses, CRDs, PVs and PVCs are made as
captured (a PV keeps its claimRef, a PVC its volumeName, so they bind as captured).

The chart of each release is rebuilt from the release record (Chart.yaml from the metadata,
values.yaml from the chart's default values, templates, files (crds/ among them), schema, lock) and
served by the rehearsal chart repository under its name and version. Helm does not store subcharts
in the release (``dependencies`` is an unexported field of helm's ``chart.Chart``, so it is not in
the JSON): a dependency is rebuilt as a *static* subchart holding what it rendered at the captured
revision (the same manifest for the same values; it does not follow value changes), and that is
listed as a fidelity note. A chart that cannot be rebuilt, or whose rebuilt chart does not render
the captured manifest (``helm upgrade --dry-run=server`` with the captured values), is reported by
release name with the reason, never dropped silently.

A seed file (:func:`handover.capture.bundle.read_seed`, e.g. ``examples/homelab/seed.yaml``) is
replayed by the same code: its kubectl-applied objects as a capture's, and each of its release
records, which carry no stored Secret, installed with real ``helm install`` from the rehearsal chart
repository (the same chart, version and values; Helm makes the Secret, the generated passwords, the
objects), after the storage tiers and before the other objects (a person's CRs need the CRDs of
the charts). This is how ``handover rehearsal up --inventory`` seeds the example
(``handover.rehearsal.seed``).

Everything is validated before the first write: a bad bundle (:mod:`handover.capture.bundle`), a
bundle from another context than the inventory's, a release whose newest revision is pending-*,
a release record without its chart: an error naming what is wrong, and the rehearsal is left as it
was.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from handover.capture import bundle as bundle_mod
from handover.capture.bundle import Bundle, Release
from handover.core import tools, wait
from handover.core.errors import HandoverError
from handover.core.kube import Kube
from handover.flux import rules as flux

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
REPORT = "capture-replay.json"
CHARTS_DIR = "capture-charts"
TIER = {
    "Namespace": 0,
    "CustomResourceDefinition": 1,
    "StorageClass": 2,
    "PriorityClass": 2,
    "PersistentVolume": 3,
    "PersistentVolumeClaim": 4,
    "ServiceAccount": 5,
    "ConfigMap": 5,
    "Secret": 5,
    "ClusterRole": 5,
    "Role": 5,
    "ClusterRoleBinding": 6,
    "RoleBinding": 6,
}
OTHER_TIER = 7


class ReplayError(HandoverError):
    """Bad input for a replay: nothing was written."""


class RebuildError(Exception):
    """A chart that cannot be rebuilt from its release record (the reason)."""


@dataclass
class ReplayReport:
    bundle: str
    context: str | None
    releases: list[str] = field(default_factory=list)  # replayed: storage-ns/name
    charts: list[str] = field(default_factory=list)  # served: name-version
    problems: list[str] = field(default_factory=list)  # by release / object, with the reason
    notes: list[str] = field(default_factory=list)  # fidelity notes
    applied: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)  # existed already: left as they are
    installed: list[str] = field(default_factory=list)  # seed releases: helm install now
    deployed: list[str] = field(default_factory=list)  # seed releases deployed already

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


# -- validation ------------------------------------------------------------------------------------
def validate(bundle_path: Path | str | Bundle, inventory: Path | str | None = None) -> Bundle:
    """Read the bundle (or take one read already) and refuse what cannot be replayed (raises
    ReplayError / BundleError)."""
    b = bundle_path if isinstance(bundle_path, Bundle) else bundle_mod.read(bundle_path)
    problems = []
    if inventory is not None:
        from handover.core.inventory import load

        inv = load(inventory)
        if b.context is not None and inv.cluster.context != b.context:
            problems.append(
                f"the bundle was captured from kube context {b.context!r} but the "
                f"inventory {inventory} is for context {inv.cluster.context!r}: "
                "capture the inventory's cluster, or use its inventory"
            )
    for r in b.releases:
        st = r.latest.status
        if not r.latest.stored:
            if [v.revision for v in r.revisions] != list(
                range(1, len(r.revisions) + 1)
            ) or st != "deployed":
                made = (
                    "revision 1, status deployed"
                    if len(r.revisions) == 1
                    else (
                        f"revision 1, then one `helm upgrade` per earlierRevisions entry: revision "
                        f"{len(r.revisions)}, status deployed"
                    )
                )
                problems.append(
                    f"release {r.key} ({r.latest.path}): a seed release is made by "
                    f"`helm install`: {made} (it says revision "
                    f"{r.latest.revision}, status {st!r})"
                )
            continue
        if st.startswith("pending-"):
            problems.append(
                f"release {r.key}: its newest revision {r.latest.revision} is "
                f"{st!r} (an operation was interrupted or is still running on the "
                "source cluster): resolve it there (helm history / helm rollback), "
                "then capture again"
            )
        for v in r.revisions:
            chart = v.record.get("chart")
            meta = (chart or {}).get("metadata") or {}
            if (
                not chart
                or not meta.get("name")
                or not meta.get("version")
                or chart.get("templates") is None
            ):
                problems.append(
                    f"release {r.key} revision {v.revision} ({v.path}): the release "
                    "record holds no chart (metadata and templates): the chart is "
                    "missing from the release"
                )
            if (
                v.secret.get("type") != "helm.sh/release.v1"
                or v.secret.get("name") != f"sh.helm.release.v1.{v.name}.v{v.revision}"
            ):
                problems.append(
                    f"release {r.key} revision {v.revision}: {v.path} is not a Helm "
                    "release Secret (name/type)"
                )
    if problems:
        raise ReplayError(
            f"cannot replay bundle {b.path}:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return b


# -- chart rebuild ---------------------------------------------------------------------------------
def _b64(data: str | None) -> bytes:
    return base64.b64decode(data or "")


def _safe_rel(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise RebuildError(f"file name {name!r} in the chart escapes the chart directory")
    return p


def _static_template(text: str) -> str:
    """A template that renders exactly ``text`` (Go raw strings cannot hold a backtick)."""
    return '{{ "`" }}'.join("{{`" + part + "`}}" if part else "" for part in text.split("`"))


def _split_sources(manifest: str) -> list[tuple[str, str]]:
    """(source path, document text) of a Helm manifest ('---\\n# Source: path\\n...')."""
    out = []
    for chunk in manifest.split("\n---"):
        chunk = chunk.lstrip("-").strip("\n")
        if not chunk.strip():
            continue
        lines = chunk.split("\n")
        src = ""
        if lines[0].startswith("# Source: "):
            src = lines[0][len("# Source: ") :].strip()
            lines = lines[1:]
        out.append((src, "\n".join(lines)))
    return out


def _exact_version(dep: dict[str, Any], lock: dict[str, Any] | None) -> str:
    for d in (lock or {}).get("dependencies") or []:
        if d.get("name") == dep.get("name"):
            return str(d.get("version"))
    v = str(dep.get("version") or "0.0.0").strip()
    for op in ("^", "~", ">=", "<=", "=", ">", "<", "v"):
        v = v.removeprefix(op)
    v = v.split()[0].replace("x", "0").replace("*", "0")
    return v or "0.0.0"


def rebuild_chart(
    record: dict[str, Any], dest: Path, frozen: bool = False
) -> tuple[Path, list[str]]:
    """Write the chart held by ``record`` under ``dest``; (chart dir, fidelity notes).

    ``frozen``: every template is replaced by what the release rendered (manifest and hooks), for
    a chart whose own templates cannot render without what Helm did not store (a library
    subchart's definitions): the same manifest for the same values, no value changes followed."""
    chart = record.get("chart") or {}
    meta = dict(chart.get("metadata") or {})
    if frozen:
        meta.pop("dependencies", None)
    name, version = meta.get("name"), meta.get("version")
    if not name or not version:
        raise RebuildError("the release record's chart has no name/version")
    d = dest / f"{name}-{version}"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    notes: list[str] = []
    (d / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (d / "values.yaml").write_text(yaml.safe_dump(chart.get("values") or {}, sort_keys=False))
    if chart.get("schema"):
        (d / "values.schema.json").write_bytes(_b64(chart["schema"]))
    if chart.get("lock") and not frozen:
        (d / "Chart.lock").write_text(yaml.safe_dump(chart["lock"], sort_keys=False))
    if frozen:
        rendered = _split_sources(record.get("manifest") or "")
        rendered += [(h.get("path", ""), h.get("manifest", "")) for h in record.get("hooks") or []]
        (d / "templates").mkdir()
        for n, (src, text) in enumerate(rendered, 1):
            base = src.split("/templates/", 1)[-1].replace("/", "_") or "doc.yaml"
            (d / "templates" / f"{n:03d}-{base}").write_text(_static_template(text) + "\n")
        notes.append(
            f"chart {name}-{version}: frozen: its templates cannot render without what "
            "Helm does not store in the release (a library or subchart's templates): "
            f"rebuilt as the {len(rendered)} document(s) the release rendered; it "
            "renders the same for the same values and does not follow value changes"
        )
    for kind in ("files",) if frozen else ("templates", "files"):
        for f in chart.get(kind) or []:
            rel = _safe_rel(f["name"])
            if rel.parts[0] == "charts":
                raise RebuildError(f"{f['name']}: a packaged subchart archive in the files")
            p = d / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(_b64(f.get("data")))
    deps = meta.get("dependencies") or []
    if deps and not frozen:
        rendered = _split_sources(record.get("manifest") or "")
        for h in record.get("hooks") or []:
            rendered.append((h.get("path", ""), h.get("manifest", "")))
        for dep in deps:
            sub = dep.get("alias") or dep["name"]
            sd = d / "charts" / sub
            (sd / "templates").mkdir(parents=True)
            sub_meta = {
                "apiVersion": "v2",
                "name": dep["name"],
                "version": _exact_version(dep, chart.get("lock")),
                "description": f"static stand-in for subchart {dep['name']}, rebuilt "
                "from what it rendered at the captured revision",
            }
            (sd / "Chart.yaml").write_text(yaml.safe_dump(sub_meta, sort_keys=False))
            (sd / "values.yaml").write_text("{}\n")
            prefixes = (f"{name}/charts/{sub}/", f"{name}/charts/{dep['name']}/")
            n = 0
            for src, text in rendered:
                if src.startswith(prefixes):
                    n += 1
                    base = src.split("/templates/", 1)[-1].replace("/", "_")
                    (sd / "templates" / f"{n:03d}-{base}").write_text(_static_template(text) + "\n")
            notes.append(
                f"chart {name}-{version}: subchart {sub} is not stored in the release "
                f"(Helm keeps the parent chart only): rebuilt as the {n} document(s) it "
                "rendered at the captured revision; it does not follow value changes"
            )
    return d, notes


def _render_check(chart_dir: Path, record: dict[str, Any], work: Path) -> str | None:
    """``helm template`` the rebuilt chart offline with the release's values: None when it
    renders, else helm's error (lookup answers nothing offline: that is not an error)."""
    values = work / "values.json"
    values.write_text(json.dumps(record.get("config") or {}))
    values.chmod(0o600)
    try:
        res = tools.run(
            [
                str(tools.helm()),
                "template",
                record["name"],
                str(chart_dir),
                "-n",
                record.get("namespace") or "default",
                "-f",
                str(values),
                "--is-upgrade",
            ],
            env=_helm_home(work),
        )
    finally:
        values.unlink(missing_ok=True)
    return None if res.ok else res.stderr.strip()


def _helm_home(work: Path) -> dict[str, str]:
    return {
        "HELM_CACHE_HOME": str(work / "h" / "cache"),
        "HELM_CONFIG_HOME": str(work / "h" / "c"),
        "HELM_DATA_HOME": str(work / "h" / "d"),
    }


def _package_check(chart_dir: Path, work: Path) -> None:
    out = work / "pkg"
    out.mkdir(exist_ok=True)
    env = {
        "HELM_CACHE_HOME": str(work / "h" / "cache"),
        "HELM_CONFIG_HOME": str(work / "h" / "c"),
        "HELM_DATA_HOME": str(work / "h" / "d"),
    }
    res = tools.run(
        [str(tools.helm()), "package", str(chart_dir), "--destination", str(out)], env=env
    )
    if not res.ok:
        raise RebuildError(f"helm package refuses the rebuilt chart: {res.stderr.strip()}")


def rebuild_all(b: Bundle, dest: Path, report: ReplayReport) -> dict[str, str]:
    """Rebuild the chart of every release's newest revision (and of older revisions with another
    chart version) into ``dest``. Returns release key -> 'name-version' of what was rebuilt."""
    dest.mkdir(parents=True, exist_ok=True)
    built: dict[str, str] = {}  # name-version -> release key that provided it
    by_release: dict[str, str] = {}
    work = Path(tempfile.mkdtemp(prefix="rebuild-", dir=dest.parent))
    try:
        for r in b.releases:
            for v in reversed(r.revisions):  # newest first: it wins a shared name-version
                if not v.stored:
                    continue  # a seed's release: its chart is in the rehearsal chart repository
                meta = v.record["chart"]["metadata"]
                nv = f"{meta['name']}-{meta['version']}"
                if nv in built:
                    if v is r.latest:
                        by_release[r.key] = nv
                    continue
                try:
                    d, notes = rebuild_chart(v.record, dest)
                    _package_check(d, work)
                    err = _render_check(d, v.record, work)
                    if err:
                        d, notes = rebuild_chart(v.record, dest, frozen=True)
                        notes = [
                            f"{n} (it failed to render as rebuilt: {err[:300]})" for n in notes
                        ]
                        _package_check(d, work)
                        err = _render_check(d, v.record, work)
                        if err:
                            raise RebuildError(f"it does not render even frozen: {err[:400]}")
                except RebuildError as e:
                    shutil.rmtree(dest / nv, ignore_errors=True)
                    if v is r.latest:
                        report.problems.append(
                            f"release {r.key}: its chart {nv} cannot be "
                            f"rebuilt from the release record: {e}"
                        )
                    else:
                        report.notes.append(
                            f"release {r.key} revision {v.revision}: chart {nv} not rebuilt: {e}"
                        )
                    continue
                built[nv] = r.key
                report.notes.extend(notes)
                if v is r.latest:
                    by_release[r.key] = nv
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.charts = sorted(built)
    return by_release


# -- the cluster side ------------------------------------------------------------------------------
def _strip(obj: dict[str, Any]) -> dict[str, Any]:
    """A captured object as something to create: no status, no server-set metadata."""
    meta = obj.get("metadata") or {}
    keep = {
        k: meta[k]
        for k in ("name", "namespace", "labels", "annotations", "finalizers")
        if meta.get(k)
    }
    ann = {
        k: v
        for k, v in (keep.get("annotations") or {}).items()
        if not k.startswith(
            ("pv.kubernetes.io/", "volume.beta.kubernetes.io/", "volume.kubernetes.io/")
        )
    }
    if ann:
        keep["annotations"] = ann
    else:
        keep.pop("annotations", None)
    out = {
        "apiVersion": obj.get("apiVersion") or obj.get("api_version"),
        "kind": obj["kind"],
        "metadata": keep,
    }
    for k, v in obj.items():
        if k not in ("apiVersion", "api_version", "kind", "metadata", "status"):
            out[k] = v
    if obj["kind"] == "PersistentVolume":
        ref = (out.get("spec") or {}).get("claimRef")
        if ref:
            out["spec"]["claimRef"] = {
                k: ref[k] for k in ("apiVersion", "kind", "name", "namespace") if ref.get(k)
            }
    if obj["kind"] == "Namespace":
        out.pop("spec", None)
    return out


def _oid(obj: dict[str, Any]) -> str:
    m = obj.get("metadata") or {}
    return f"{obj.get('kind')} {m['namespace'] + '/' if m.get('namespace') else ''}{m.get('name')}"


class _Cluster:
    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.kube = Kube(cluster.kubeconfig, cluster.context)

    def refresh(self) -> None:
        self.kube = Kube(self.cluster.kubeconfig, self.cluster.context)

    def kubectl(self, *args: str, input: str | None = None) -> tools.Result:
        return tools.run(
            [
                str(tools.kubectl()),
                "--kubeconfig",
                str(self.cluster.kubeconfig),
                "--context",
                self.cluster.context,
                *args,
            ],
            input=input,
        )

    def namespaced(self, obj: dict[str, Any]) -> bool | None:
        for _attempt in range(10):
            try:
                return self.kube.dynamic.resources.get(
                    api_version=obj["apiVersion"], kind=obj["kind"]
                ).namespaced
            except Exception:  # noqa: BLE001 - not served (yet: a CRD made a moment ago)
                time.sleep(0.5)
                self.refresh()
        return None

    def exists(self, obj: dict[str, Any]) -> bool:
        m = obj["metadata"]
        try:
            return (
                self.kube.get(obj["apiVersion"], obj["kind"], m["name"], m.get("namespace"))
                is not None
            )
        except HandoverError:
            return False


def _helm_ownership(obj: dict[str, Any], name: str, namespace: str) -> None:
    """What Helm sets on every object it creates (helm pkg/action/install.go setMetadataVisitor)."""
    meta = obj.setdefault("metadata", {})
    meta.setdefault("labels", {})
    meta["labels"] = {**(meta["labels"] or {}), "app.kubernetes.io/managed-by": "Helm"}
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        "meta.helm.sh/release-name": name,
        "meta.helm.sh/release-namespace": namespace,
    }


def _release_objects(r: Release) -> list[dict[str, Any]]:
    rec = r.latest.record
    if r.latest.status not in ("deployed", "failed") or not r.latest.stored:
        return []  # uninstalled / superseded-only: the objects do not exist on the source
    out = []
    for _, text in _split_sources(rec.get("manifest") or ""):
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, dict) and doc.get("kind") and doc.get("metadata", {}).get("name"):
                if doc["kind"] == "List":
                    continue
                _helm_ownership(doc, r.name, r.namespace)
                out.append(doc)
    return out


def install_release(cluster, kube: Kube, r: Release, repo_url: str) -> bool:
    """``helm install NAME CHART --repo URL --version V -n NS --create-namespace -f <config>`` of
    a release that has no stored record (a seed's), unless it is deployed already; True when
    installed now. Raises HandoverError naming the release when it exists in another state or
    helm fails."""
    from handover.rehearsal import chart_repo
    from handover.sources import helm_storage

    rec = r.latest.record
    meta = rec["chart"]["metadata"]
    latest = helm_storage.latest(kube, r.name, r.storage_namespace)
    if latest is not None:
        if latest.status == "deployed":
            return False
        raise HandoverError(
            f"Helm release {r.key} exists with status {latest.status!r} (revision "
            f"{latest.revision}): the replay installs only missing releases. Inspect it with "
            "helm history, or start from a fresh state dir."
        )
    sd = Path(cluster.state_dir)
    values = sd / f".seed-values-{bundle_mod.safe_name(r.name)}.json"
    try:
        for v in r.revisions:  # the install, then each upgrade, in order
            values.write_text(json.dumps(v.record.get("config") or {}))
            values.chmod(0o600)
            action = (
                ["install", "--create-namespace"]
                if v is r.revisions[0]
                else ["upgrade", "--reset-values"]
            )
            argv = [
                str(tools.helm()),
                action[0],
                r.name,
                meta["name"],
                "--repo",
                repo_url,
                "--version",
                meta["version"],
                "--namespace",
                r.namespace,
                action[1],
                "-f",
                str(values),
                "--kubeconfig",
                str(cluster.kubeconfig),
                "--kube-context",
                cluster.context,
            ]
            res = tools.run(argv, env=chart_repo.helm_env(sd))
            if not res.ok:
                raise HandoverError(
                    f"helm {action[0]} of release {r.key} (chart {meta['name']} "
                    f"{meta['version']}, revision {v.revision}) failed: "
                    f"{res.stderr.strip()[:400]}"
                )
    finally:
        values.unlink(missing_ok=True)
    return True


def _install_unstored(
    cluster, c: _Cluster, b: Bundle, report: ReplayReport, repo_url: str | None
) -> None:
    for r in b.releases:
        if r.latest.stored:
            continue
        if repo_url is None:
            report.problems.append(
                f"release {r.key}: no stored record and no chart repository to install it from"
            )
            continue
        try:
            done = install_release(cluster, c.kube, r, repo_url)
        except HandoverError as e:
            report.problems.append(f"release {r.key}: {e}")
            continue
        (report.installed if done else report.deployed).append(r.key)
    c.refresh()  # the charts' CRDs: serve their kinds to what follows


def replay(
    cluster, b: Bundle, report: ReplayReport, timeout: float = 180.0, repo_url: str | None = None
) -> None:
    """Make the captured cluster on the rehearsal cluster (idempotent: what exists is left).
    ``repo_url``: the chart repository that installs the releases without a stored record."""
    c = _Cluster(cluster)
    # (tier, object, how): how = "apply" (client-side, from last-applied) or "create"
    plan: list[tuple[int, dict[str, Any], str, str]] = []
    for entry in b.applied:
        obj = entry["lastApplied"]
        ns = entry.get("namespace")
        plan.append(
            (
                TIER.get(obj.get("kind"), OTHER_TIER),
                obj,
                "apply",
                f"kubectl-applied in {ns}" if ns else "kubectl-applied",
            )
        )
    for kind, objs in b.cluster.items():
        for obj in objs:
            ann = (obj.get("metadata") or {}).get("annotations") or {}
            if kind in ("PersistentVolumeClaim",) and ann.get(LAST_APPLIED):
                continue  # it is in applied/ already
            if ann.get(LAST_APPLIED):
                try:
                    plan.append(
                        (
                            TIER.get(kind, OTHER_TIER),
                            json.loads(ann[LAST_APPLIED]),
                            "apply",
                            "kubectl-applied",
                        )
                    )
                    continue
                except ValueError:
                    pass
            plan.append((TIER.get(kind, OTHER_TIER), _strip(obj), "create", "captured"))
    stored = [r for r in b.releases if r.latest.stored]  # helm install makes the others' ns
    needed_ns = {r.storage_namespace for r in stored} | {r.namespace for r in stored}
    have_ns = {o["metadata"]["name"] for t, o, _, _ in plan if o.get("kind") == "Namespace"}
    for ns in sorted(needed_ns - have_ns):
        plan.append(
            (
                0,
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                "create",
                "release namespace",
            )
        )
    for r in b.releases:
        for obj in _release_objects(r):
            plan.append(
                (max(TIER.get(obj["kind"], OTHER_TIER), 4), obj, "create", f"release {r.key}")
            )
    plan.sort(key=lambda t: t[0])

    crds_waited = installed = False
    for tier, obj, how, origin in plan + [(OTHER_TIER + 1, {}, "", "")]:
        if tier >= 2 and not crds_waited:  # CRDs made: serve their kinds before any object
            _wait_crds(c, report)
            c.refresh()
            crds_waited = True
        if tier >= TIER["ServiceAccount"] and not installed:  # storage made: the seed's helm
            _install_unstored(cluster, c, b, report, repo_url)
            installed = True
        if not obj:
            break
        ns_flag: list[str] = []
        if not obj.get("metadata", {}).get("namespace") and c.namespaced(obj):
            if origin.startswith("release "):
                rel = next(r for r in b.releases if f"release {r.key}" == origin)
                obj["metadata"]["namespace"] = rel.namespace
            elif origin.startswith("kubectl-applied in "):
                # applied with `kubectl apply -n NS`: do the same, so the last-applied
                # annotation comes out as captured (without a namespace)
                ns_flag = ["-n", origin.split(" in ", 1)[1]]
            else:
                obj["metadata"]["namespace"] = "default"
        probe = (
            obj
            if not ns_flag
            else {**obj, "metadata": {**obj["metadata"], "namespace": ns_flag[1]}}
        )
        if c.exists(probe):
            report.present.append(_oid(probe))
            continue
        text = yaml.safe_dump(obj, sort_keys=False)
        res = c.kubectl("apply" if how == "apply" else "create", *ns_flag, "-f", "-", input=text)
        if not res.ok:
            report.problems.append(
                f"{_oid(obj)} ({origin}): {how} failed: {res.stderr.strip()[:400]}"
            )
        else:
            (report.applied if how == "apply" else report.created).append(_oid(obj))

    # the release storage, as captured
    for r in b.releases:
        for v in r.revisions:
            if not v.stored:
                continue  # installed by helm above
            s = v.secret
            obj = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": s["type"],
                "metadata": {
                    "name": s["name"],
                    "namespace": s["namespace"],
                    "labels": s.get("labels") or {},
                },
                "data": {"release": s["data"]["release"]},
            }
            if c.exists(obj):
                live = c.kube.get("v1", "Secret", s["name"], s["namespace"])
                if ((live or {}).get("data") or {}).get("release") != s["data"]["release"]:
                    report.problems.append(
                        f"release {r.key} revision {v.revision}: Secret "
                        f"{s['namespace']}/{s['name']} exists with other "
                        "content: left as it is (start from a fresh state "
                        "dir)"
                    )
                continue
            res = c.kubectl("create", "-f", "-", input=json.dumps(obj))
            if not res.ok:
                report.problems.append(
                    f"release {r.key} revision {v.revision}: writing its "
                    f"Secret failed: {res.stderr.strip()[:400]}"
                )
        report.releases.append(r.key)
    _host_paths(c, cluster.state_dir)
    _wait_workloads(c, b, report, timeout)


def _wait_crds(c: _Cluster, report: ReplayReport, timeout: float = 30.0) -> None:
    def pending_crds() -> list[str]:
        return [
            x["metadata"]["name"]
            for x in c.kube.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
            if not any(
                cd.get("type") == "Established" and cd.get("status") == "True"
                for cd in (x.get("status") or {}).get("conditions") or []
            )
        ]

    pending = wait.until(
        "CRDs Established",
        pending_crds,
        timeout=timeout,
        interval=0.3,
        done=lambda p: not p,
        report=False,
    )
    if not pending:
        return
    report.problems.append(f"CRDs not Established after {timeout:.0f}s: {pending}")


def _host_paths(c: _Cluster, state_dir: Path) -> None:
    """Each hostPath PV's directory on the rehearsal node (the data itself is not captured)."""
    from handover.rehearsal.node_disk import create_host_paths

    create_host_paths(c.kube.list("v1", "PersistentVolume"), state_dir)


def _wait_workloads(c: _Cluster, b: Bundle, report: ReplayReport, timeout: float) -> None:
    from handover.core.inventory import Workload
    from handover.rehearsal.seed import workload_pods_ready

    nss = {r.namespace for r in b.releases} | {
        (e["lastApplied"].get("metadata") or {}).get("namespace") for e in b.applied
    } - {None}
    workloads = []
    for ns in sorted(n for n in nss if n):
        for kind in ("Deployment", "StatefulSet", "DaemonSet"):
            for o in c.kube.list("apps/v1", kind, ns):
                ml = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
                if ml:
                    workloads.append(
                        Workload(
                            kind,
                            o["metadata"]["name"],
                            ns,
                            ",".join(f"{k}={v}" for k, v in ml.items()),
                        )
                    )
    waiting = wait.until(
        "replayed workloads Running and Ready",
        lambda: [m for ok, m in (workload_pods_ready(c.kube, w) for w in workloads) if not ok],
        timeout=timeout,
        interval=0.5,
        done=lambda w: not w,
        report=False,
    )
    report.problems.extend(f"not Running and Ready after the replay: {m}" for m in waiting)


# -- verification ----------------------------------------------------------------------------------
def helm_outputs(cluster, name: str, ns: str) -> dict[str, Any]:
    from handover.rehearsal import chart_repo

    env = chart_repo.helm_env(cluster.state_dir)
    tail = ["-n", ns, "--kubeconfig", str(cluster.kubeconfig), "--kube-context", cluster.context]
    h = str(tools.helm())
    m = tools.run([h, "get", "manifest", name] + tail, env=env)
    v = tools.run([h, "get", "values", name, "--all", "-o", "json"] + tail, env=env)
    hi = tools.run([h, "history", name, "-o", "json", "--max", "1000"] + tail, env=env)
    if not (m.ok and v.ok and hi.ok):
        raise HandoverError(
            f"helm cannot read release {ns}/{name} on the rehearsal: "
            f"{(m.stderr or v.stderr or hi.stderr).strip()}"
        )
    return {
        "manifest": m.stdout,
        "valuesAll": json.loads(v.stdout or "null"),
        "history": json.loads(hi.stdout or "[]"),
    }


def _docs(text: str) -> list[Any]:
    return sorted(json.dumps(d, sort_keys=True) for d in yaml.safe_load_all(text) if d)


def verify(cluster, b: Bundle, charts: dict[str, str], repo_url: str, report: ReplayReport) -> None:
    """helm get manifest / values --all / history equal the captured ones, and the rebuilt chart
    renders the captured manifest for the captured values (``helm upgrade --dry-run=server``)."""
    from handover.rehearsal import chart_repo

    for r in b.releases:
        try:
            got = helm_outputs(cluster, r.name, r.storage_namespace)
        except HandoverError as e:
            report.problems.append(f"release {r.key}: {e}")
            continue
        for k, what in (
            ("manifest", "helm get manifest"),
            ("valuesAll", "helm get values --all"),
            ("history", "helm history"),
        ):
            if r.helm and got[k] != r.helm.get(k):
                report.problems.append(
                    f"release {r.key}: {what} after the replay differs from the captured one"
                )
        nv = charts.get(r.key)
        if nv is None or r.latest.status != "deployed":
            continue
        meta = r.latest.record["chart"]["metadata"]
        sd = Path(cluster.state_dir)
        values = sd / f".values-{bundle_mod.safe_name(r.name)}.json"
        values.write_text(json.dumps(r.latest.record.get("config") or {}))
        values.chmod(0o600)
        try:
            res = tools.run(
                [
                    str(tools.helm()),
                    "upgrade",
                    r.name,
                    meta["name"],
                    "--repo",
                    repo_url,
                    "--version",
                    meta["version"],
                    "-n",
                    r.namespace,
                    "-f",
                    str(values),
                    "--dry-run=server",
                    "--kubeconfig",
                    str(cluster.kubeconfig),
                    "--kube-context",
                    cluster.context,
                ],
                env=chart_repo.helm_env(sd),
            )
        finally:
            values.unlink(missing_ok=True)
        if not res.ok:
            report.problems.append(
                f"release {r.key}: the rebuilt chart {nv} does not render "
                f"for an upgrade: {res.stderr.strip()[:400]}"
            )
            continue
        rendered = res.stdout.split("MANIFEST:", 1)[-1].split("\nNOTES:", 1)[0]
        if _docs(rendered) != _docs(r.latest.record.get("manifest") or ""):
            want = {_oid(d) for d in yaml.safe_load_all(r.latest.record.get("manifest") or "") if d}
            have = {_oid(d) for d in yaml.safe_load_all(rendered) if d}
            report.problems.append(
                f"release {r.key}: the rebuilt chart {nv} renders a manifest that does not match "
                f"the captured one for the captured values (missing {sorted(want - have)}, extra "
                f"{sorted(have - want)}, and/or changed content: random values without lookup, "
                "or a subchart that depends on values)"
            )


def check_helmreleases(
    b: Bundle, charts: dict[str, str], gitops: Path, report: ReplayReport
) -> None:
    """The user's HelmReleases: which captured release each one adopts, and whether the chart
    name and version it asks for are the ones served."""
    for f in sorted(Path(gitops).rglob("*.y*ml")):
        if ".git" in f.parts:
            continue
        try:
            docs = list(yaml.safe_load_all(f.read_text()))
        except yaml.YAMLError:
            continue
        for hr in docs:
            if not isinstance(hr, dict) or hr.get("kind") != "HelmRelease":
                continue
            hr.setdefault("metadata", {}).setdefault("namespace", "default")
            key = f"{flux.storage_namespace(hr)}/{flux.helm_release_name(hr)}"
            spec = ((hr.get("spec") or {}).get("chart") or {}).get("spec") or {}
            rel = next((r for r in b.releases if r.key == key), None)
            where = f"HelmRelease {hr['metadata']['namespace']}/{hr['metadata']['name']} ({f})"
            if rel is None:
                report.notes.append(
                    f"{where} adopts release {key}, which is not in the bundle: "
                    "Flux would install it anew"
                )
                continue
            nv = charts.get(key)
            want = f"{spec.get('chart')}-{spec.get('version')}"
            exact = spec.get("version") and not any(
                ch in str(spec["version"]) for ch in "<>=~^*x| "
            )
            if nv and exact and want != nv:
                report.problems.append(
                    f"{where} asks for chart {spec.get('chart')} version "
                    f"{spec.get('version')}; release {key} runs {nv}, the "
                    "only version the rehearsal repository serves for it"
                )


# -- the whole `rehearsal up --from-capture` -------------------------------------------------------
@dataclass
class ReplayResult:
    report: ReplayReport
    report_path: Path
    kubeconfig: Path
    context: str
    chart_repo_url: str
    git_remote_url: str
    gitops_clone: Path
    inventory_path: Path | None = None


def crd_fidelity_notes(b: Bundle, state_dir: Path, report: ReplayReport) -> None:
    """List, in the report and in the rehearsal's CRD notes (crd_adapter.load_notes), every
    adaptation the rehearsal's CRDs carry: the admission webhook's notes for the CRDs it changed
    during the replay, plus each CRD in the crds/ of a replayed release's chart compared with its
    original text there (a capture of a cluster whose CRDs were adapted already, a rehearsal,
    holds adapted CRDs that the webhook lets through unchanged: they are noted all the same)."""
    from handover.rehearsal import crd_adapter

    for r in b.releases:
        if not r.latest.stored:
            continue  # a seed's release: helm installed its crds/ (the webhook noted them)
        try:
            crds = crd_adapter.crds_of_release_secret(r.latest.secret)
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            report.problems.append(f"release {r.key}: its chart's crds/ cannot be read: {e}")
            continue
        for crd in crds:
            _, notes = crd_adapter.adapt(crd)
            if notes:
                crd_adapter.record_notes(
                    state_dir,
                    (crd.get("metadata") or {}).get("name", "?"),
                    notes,
                    "captured",
                    f"crds/ of release {r.key} revision {r.latest.revision}",
                )
    report.notes += [f"CRD adapted: {n.line()}" for n in crd_adapter.load_notes(state_dir)]


def up_from_capture(
    state_dir: Path | str,
    bundle_path: Path | str,
    gitops: Path | str,
    inventory: Path | str | None = None,
    timeout: float = 180.0,
) -> ReplayResult:
    """Validate the bundle (and inventory), rebuild the charts, THEN start the rehearsal stack and
    replay into it; write the report (``<state_dir>/capture-replay.json``) and, with an inventory,
    the rehearsal copy of it."""
    from handover.rehearsal import chart_repo, git_remote
    from handover.rehearsal.cluster import RehearsalCluster
    from handover.rehearsal.seed import write_rehearsal_inventory

    state_dir = Path(state_dir).expanduser().absolute()
    gitops = Path(gitops).expanduser().resolve()
    if not gitops.is_dir():
        raise ReplayError(f"--gitops {gitops} is not a directory")
    b = validate(bundle_path, inventory)
    report = ReplayReport(bundle=str(Path(bundle_path).resolve()), context=b.context)
    staging = Path(tempfile.mkdtemp(prefix="capture-charts-"))
    try:
        charts = rebuild_all(b, staging / "charts", report)
        check_helmreleases(b, charts, gitops, report)
        # -- first write --------------------------------------------------------------------------
        cluster = RehearsalCluster(state_dir).up()
        source = state_dir / CHARTS_DIR
        if source.exists():
            shutil.rmtree(source)
        shutil.copytree(staging / "charts", source)
        if b.is_seed:  # its releases are installed from the chart sources it names
            source = Path(b.index["charts"])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not any(source.glob("*/Chart.yaml")):
        raise HandoverError(
            "no chart of the bundle could be rebuilt:\n"
            + "\n".join(f"  - {p}" for p in report.problems)
        )
    repo = chart_repo.ensure(cluster, source)
    remote = git_remote.ensure(state_dir, gitops, repo.url)
    replay(cluster, b, report, timeout=timeout, repo_url=repo.url)
    verify(cluster, b, charts, repo.url, report)
    crd_fidelity_notes(b, state_dir, report)
    inv_path = None
    if inventory is not None:
        inv_path = write_rehearsal_inventory(Path(inventory), state_dir, cluster.context, remote)
    rp = state_dir / REPORT
    rp.write_text(report.to_json())
    return ReplayResult(
        report,
        rp,
        cluster.kubeconfig,
        cluster.context,
        repo.url,
        remote.url,
        Path(remote.clone),
        inv_path,
    )
