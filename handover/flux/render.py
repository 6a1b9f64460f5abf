"""Render a HelmRelease's chart the way the adoption upgrade will, and predict per workload
whether its pods are recreated.

The chart is rendered with the real helm binary as the adoption upgrade renders it: ``helm upgrade
<release> <chart> --version V --values <HelmRelease values> --reset-values --dry-run=server
--output json`` against the live cluster (``lookup`` answered by the cluster, its capabilities and
version; nothing stored: helm pkg/action/upgrade.go returns before Releases.Create), in a
throw-away HELM_* home so nothing of the user's helm configuration is read or written. Without a
real cluster connection (tests' fakes) it falls back to ``helm template --is-upgrade``. Each render
is done twice: fields that differ are non-deterministic (``unstable_fields``).

Prediction per workload: the Helm upgrade patches each object with a three-way merge of the old
manifest (the CLI release's), the new render and the live object. The pods roll when that patch
touches the pod template: a field of the rendered template that differs from the live one, or a
field the old manifest set and the new render drops. Live-only fields (API defaults, a
restartedAt annotation) are kept by the merge and are no change.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from handover.core import tools
from handover.core.errors import HandoverError
from handover.core.findings import Finding
from handover.core.inventory import Component, Inventory
from handover.flux import rules as flux
from handover.gate.hazards.adoption import (
    chart_spec,
    helm_release_of,
    hr_id,
    hr_values,
    missing_hr_finding,
)
from handover.sources import helm_storage, kustomize
from handover.tree_diff import MISSING, Difference, against_live, exact, removed_fields

if TYPE_CHECKING:
    from handover.core.kube import Kube

CHECK = "adoption-rollout"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
IN_PLACE = "adopted in place"
RECREATED = "pods will be recreated"
CREATED = "will be created"
DELETED = "will be DELETED"


class RenderError(HandoverError):
    pass


@dataclass(frozen=True)
class ChartSource:
    release_name: str
    namespace: str
    chart: str
    version: str | None
    repo_url: str
    oci: bool = False

    def argv(self) -> list[str]:
        ref = f"{self.repo_url.rstrip('/')}/{self.chart}" if self.oci else self.chart
        out = ["template", self.release_name, ref, "--namespace", self.namespace]
        if not self.oci:
            out += ["--repo", self.repo_url]
        if self.version:
            out += ["--version", self.version]
        return out


def find_helm_repository(
    ref: dict[str, Any], hr_namespace: str, objects: list[dict[str, Any]]
) -> dict[str, Any] | None:
    return kustomize.find(
        objects,
        ref.get("kind", "HelmRepository"),
        ref.get("name", ""),
        ref.get("namespace") or hr_namespace,
    )


_SOURCES: dict[tuple, list[dict[str, Any]]] = {}


def source_objects(inventory: Inventory, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The built objects plus the build of the inventory's sources path (HelmRepositories),
    built once per state of its files."""
    extra: list[dict[str, Any]] = []
    sp = inventory.gitops.sources_path
    d = inventory.gitops.path / sp if sp else None
    if d is not None and d.is_dir():
        key = (
            str(d),
            tuple(sorted((str(f), f.stat().st_mtime_ns) for f in d.rglob("*") if f.is_file())),
        )
        if key not in _SOURCES:
            _SOURCES[key] = kustomize.build(d)
        extra = _SOURCES[key]
    return list(objects) + extra


def _chart_ref_source(hr: dict[str, Any], sources: list[dict[str, Any]]) -> ChartSource:
    """spec.chartRef: an OCIRepository (oci://host/path/<chart>, ref.tag or ref.semver) or a
    HelmChart (its chart, version and HelmRepository)."""
    ns = (hr.get("metadata") or {}).get("namespace", "default")
    ref = (hr.get("spec") or {}).get("chartRef") or {}
    kind, name, rns = ref.get("kind"), ref.get("name"), ref.get("namespace") or ns
    src = kustomize.find(sources, kind or "", name or "", rns)
    if src is None:
        raise RenderError(
            f"{hr_id(hr)}: spec.chartRef {kind} {rns}/{name} is not in the GitOps repo build"
        )
    spec = src.get("spec") or {}
    if kind == "HelmChart":
        fake = {"metadata": {"namespace": rns}, "spec": {"chart": {"spec": spec}}}
        inner = chart_source(fake, sources)
        return ChartSource(
            flux.helm_release_name(hr),
            flux.target_namespace(hr),
            inner.chart,
            inner.version,
            inner.repo_url,
            inner.oci,
        )
    if kind != "OCIRepository":
        raise RenderError(
            f"{hr_id(hr)}: spec.chartRef kind {kind!r} is not rendered (only "
            f"OCIRepository and HelmChart)"
        )
    if spec.get("secretRef") or (spec.get("ref") or {}).get("digest"):
        raise RenderError(
            f"OCIRepository {rns}/{name}: credentials or a digest ref are not read by the gate"
        )
    url = str(spec.get("url", ""))
    base, chart = url.rsplit("/", 1)
    r = spec.get("ref") or {}
    return ChartSource(
        flux.helm_release_name(hr),
        flux.target_namespace(hr),
        chart,
        r.get("tag") or r.get("semver"),
        base,
        True,
    )


def chart_source(hr: dict[str, Any], sources: list[dict[str, Any]]) -> ChartSource:
    if (hr.get("spec") or {}).get("chartRef"):
        return _chart_ref_source(hr, sources)
    spec = chart_spec(hr)
    ns = (hr.get("metadata") or {}).get("namespace", "default")
    ref = spec.get("sourceRef") or {}
    if ref.get("kind", "HelmRepository") != "HelmRepository":
        raise RenderError(
            f"{hr_id(hr)}: spec.chart.spec.sourceRef.kind {ref.get('kind')!r}: "
            f"only HelmRepository charts are rendered"
        )
    repo = find_helm_repository(ref, ns, sources)
    if repo is None:
        raise RenderError(
            f"{hr_id(hr)}: HelmRepository {ref.get('namespace') or ns}/"
            f"{ref.get('name')} (spec.chart.spec.sourceRef) is not in the GitOps "
            f"repo build"
        )
    rspec = repo.get("spec") or {}
    if rspec.get("secretRef"):
        raise RenderError(
            f"HelmRepository {ref.get('name')} needs credentials (spec.secretRef):"
            f" the gate does not read them"
        )
    return ChartSource(
        flux.helm_release_name(hr),
        flux.target_namespace(hr),
        spec.get("chart", ""),
        spec.get("version"),
        rspec.get("url", ""),
        rspec.get("type") == "oci",
    )


SERVER = "server"  # helm upgrade --dry-run=server: lookup, capabilities, version from the cluster
CLIENT = "client"  # helm template: no cluster (every lookup returns nothing)
HOOK_ANNOTATION = "helm.sh/hook"
HOOK_DELETE_POLICY = "helm.sh/hook-delete-policy"
POD_TEMPLATE_PATHS = ("spec.template", "spec.jobTemplate.spec.template")


@dataclass(frozen=True)
class Hook:
    """A chart hook the upgrade runs (helm pkg/release/hook.go: events, delete policies)."""

    kind: str
    name: str
    events: tuple[str, ...]
    delete_policies: tuple[str, ...]
    weight: int = 0

    def describe(self) -> str:
        policies = ", ".join(self.delete_policies) or "before-hook-creation (default)"
        return (
            f"{self.kind} {self.name} ({', '.join(self.events)}; weight {self.weight}; "
            f"delete policy {policies})"
        )


@dataclass(frozen=True)
class Unstable:
    """A field that differed between two renders of the same inputs."""

    subject: str  # "Kind ns/name"
    path: str

    @property
    def in_pod_template(self) -> bool:
        return any(self.path == p or self.path.startswith(p + ".") for p in POD_TEMPLATE_PATHS)

    def describe(self) -> str:
        where = (
            "in the pod template: the pods roll on EVERY upgrade"
            if self.in_pod_template
            else "not in a pod template: the object changes on every upgrade, no pod rolls"
        )
        return f"{self.subject} {self.path} ({where})"


@dataclass
class Rendering:
    objects: list[dict[str, Any]]  # the release manifest (hooks excluded)
    hooks: list[Hook]
    mode: str  # SERVER or CLIENT
    unstable: list[Unstable] = field(default_factory=list)
    post_rendered: bool = False  # the HelmRelease's spec.postRenderers applied to objects

    @property
    def how(self) -> str:
        how = (
            "helm upgrade --dry-run=server (lookup, capabilities and version answered by the "
            "cluster)"
            if self.mode == SERVER
            else "helm template (no cluster: every lookup returned nothing)"
        )
        return how + (" + the HelmRelease's spec.postRenderers" if self.post_rendered else "")


def _hook_of(obj: dict[str, Any]) -> Hook | None:
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    if HOOK_ANNOTATION not in ann:
        return None
    events = tuple(e.strip() for e in str(ann[HOOK_ANNOTATION]).split(",") if e.strip())
    policies = tuple(
        p.strip() for p in str(ann.get(HOOK_DELETE_POLICY) or "").split(",") if p.strip()
    )
    try:
        weight = int(ann.get("helm.sh/hook-weight") or 0)
    except ValueError:
        weight = 0
    return Hook(
        obj.get("kind", "?"), (obj.get("metadata") or {}).get("name", "?"), events, policies, weight
    )


def split_hooks(objs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Hook]]:
    """(manifest objects, hooks): helm template prints hooks in the same stream."""
    manifest, hooks = [], []
    for o in objs:
        h = _hook_of(o)
        if h is None:
            manifest.append(o)
        else:
            hooks.append(h)
    return manifest, hooks


def object_key(o: dict[str, Any], namespace: str) -> str:
    m = o.get("metadata") or {}
    return f"{o.get('kind')} {m.get('namespace') or namespace}/{m.get('name')}"


def unstable_fields(
    first: list[dict[str, Any]], second: list[dict[str, Any]], namespace: str
) -> list[Unstable]:
    """Fields that differ between two renders of the same inputs: random values (randAlphaNum,
    uuidv4, now ...) without a lookup of the existing object, and their checksums."""
    a = {object_key(o, namespace): o for o in first}
    b = {object_key(o, namespace): o for o in second}
    out = []
    for k in sorted(set(a) & set(b)):
        for d in exact(a[k], b[k]):
            out.append(Unstable(k, d.path))
    return out


def _helm_env(t: Path, cluster: tuple[str | None, str] | None) -> dict[str, str]:
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(t / "cache"),
        "HELM_CONFIG_HOME": str(t / "config"),
        "HELM_DATA_HOME": str(t / "data"),
    }
    if cluster is None:
        env["KUBECONFIG"] = str(t / "no-kubeconfig")
    elif cluster[0]:
        env["KUBECONFIG"] = cluster[0]
    return env


_CACHE: dict[str, Any] = {}


def _run_helm(
    src: ChartSource,
    values: dict[str, Any],
    kube_version: str | None,
    cluster: tuple[str | None, str] | None,
) -> tuple[list[dict[str, Any]], list[Hook]]:
    with tempfile.TemporaryDirectory(prefix="handover-helm-") as tmp:
        t = Path(tmp)
        vf = t / "values.yaml"
        vf.write_text(yaml.safe_dump(values or {}))
        if cluster is None:
            argv = [
                str(tools.helm()),
                *src.argv(),
                "--values",
                str(vf),
                "--is-upgrade",
                "--skip-tests",
            ]
            if kube_version:
                argv += ["--kube-version", kube_version]
        else:
            # the adoption upgrade as helm-controller runs it (ResetValues = !preserveValues),
            # dry-run on the server: nothing is stored (helm pkg/action/upgrade.go returns before
            # Releases.Create), lookup reads the live objects
            argv = [
                str(tools.helm()),
                "upgrade",
                *src.argv()[1:],
                "--values",
                str(vf),
                "--reset-values",
                "--dry-run=server",
                "--output",
                "json",
                "--kube-context",
                cluster[1],
            ]
            if cluster[0]:
                argv += ["--kubeconfig", cluster[0]]
        res = tools.run(argv, env=_helm_env(t, cluster))
    what = "helm template" if cluster is None else "helm upgrade --dry-run=server"
    if not res.ok:
        raise RenderError(
            f"{what} {src.chart} {src.version} from {src.repo_url} failed: {res.stderr.strip()}"
        )
    if cluster is None:
        return split_hooks([d for d in yaml.safe_load_all(res.stdout) if isinstance(d, dict)])
    try:
        rel = json.loads(res.stdout)
    except ValueError as e:
        raise RenderError(f"{what} {src.chart}: unreadable output ({e})") from None
    hooks = []
    for h in rel.get("hooks") or []:
        for doc in yaml.safe_load_all(h.get("manifest") or ""):
            if isinstance(doc, dict) and (hk := _hook_of(doc)) is not None:
                hooks.append(hk)
    return parse_manifest(rel.get("manifest") or ""), hooks


def render_chart(
    src: ChartSource,
    values: dict[str, Any],
    kube_version: str | None = None,
    cluster: tuple[str | None, str] | None = None,
) -> Rendering:
    """Render twice (same inputs): the objects, hooks and the fields that differed. With
    ``cluster`` = (kubeconfig or None, context): ``helm upgrade --dry-run=server`` of the release
    (read-only); without: ``helm template --is-upgrade``. Cached per input."""
    key = json.dumps([src.__dict__, values, kube_version, cluster], sort_keys=True, default=str)
    if key not in _CACHE:
        first, hooks = _run_helm(src, values, kube_version, cluster)
        second, _ = _run_helm(src, values, kube_version, cluster)
        _CACHE[key] = Rendering(
            first,
            hooks,
            SERVER if cluster else CLIENT,
            unstable_fields(first, second, src.namespace),
        )
    return _CACHE[key]


def helm_template(
    src: ChartSource, values: dict[str, Any], kube_version: str | None = None
) -> list[dict[str, Any]]:
    """The rendered objects (helm template ... --is-upgrade), hooks included, cached per input."""
    key = json.dumps(["template", src.__dict__, values, kube_version], sort_keys=True, default=str)
    if key not in _CACHE:
        objs, _ = _run_helm(src, values, kube_version, None)
        _CACHE[key] = objs
    return _CACHE[key]


def cluster_access(kube: Kube) -> tuple[str | None, str] | None:
    """(kubeconfig, context) of a real cluster connection, None for anything else (tests' fakes)."""
    from handover.core.kube import Kube

    if isinstance(kube, Kube):
        return kube.kubeconfig, kube.context
    return None


def parse_manifest(manifest: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(manifest or "") if isinstance(d, dict)]


def _workloads(objs: list[dict[str, Any]], namespace: str) -> dict[tuple, dict[str, Any]]:
    out = {}
    for o in objs:
        if o.get("kind") in WORKLOAD_KINDS:
            m = o.get("metadata") or {}
            out[(o["kind"], m.get("namespace") or namespace, m.get("name"))] = o
    return out


@dataclass
class WorkloadPrediction:
    kind: str
    namespace: str
    name: str
    outcome: str  # adopted in place | pods will be recreated | will be created | will be DELETED
    changes: list[Difference] = field(default_factory=list)
    # whether the chart's render sets metadata.namespace on the object (most charts do not: the
    # namespace is given when helm applies it, after the post-renderers ran)
    namespace_rendered: bool = False

    @property
    def subject(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def to_dict(self) -> dict:
        return {
            "workload": self.subject,
            "outcome": self.outcome,
            "changes": [c.to_dict() for c in self.changes],
        }


def template_changes(
    desired: dict[str, Any], live: dict[str, Any], previous: dict[str, Any] | None = None
) -> list[Difference]:
    """Pod-template fields a three-way merge of previous -> desired would change live."""
    d = (desired.get("spec") or {}).get("template") or {}
    lv = (live.get("spec") or {}).get("template") or {}
    p = ((previous or {}).get("spec") or {}).get("template") or {}
    return against_live(d, lv, "spec.template") + removed_fields(p, d, lv, "spec.template")


def predict(
    rendered: list[dict[str, Any]],
    previous: list[dict[str, Any]],
    live_of: Callable[[str, str, str], dict[str, Any] | None],
    namespace: str,
) -> list[WorkloadPrediction]:
    """Per workload of the render (and of the previous manifest): the predicted outcome.
    ``live_of(kind, namespace, name)`` returns the live object or None."""
    new = _workloads(rendered, namespace)
    old = _workloads(previous, namespace)
    out = []
    for (kind, ns, name), obj in new.items():
        live = live_of(kind, ns, name)
        if live is None:
            out.append(WorkloadPrediction(kind, ns, name, CREATED))
            continue
        changes = template_changes(obj, live, old.get((kind, ns, name)))
        out.append(
            WorkloadPrediction(
                kind,
                ns,
                name,
                RECREATED if changes else IN_PLACE,
                changes,
                bool((obj.get("metadata") or {}).get("namespace")),
            )
        )
    for kind, ns, name in old:
        if (kind, ns, name) not in new and live_of(kind, ns, name) is not None:
            out.append(WorkloadPrediction(kind, ns, name, DELETED))
    return out


def kube_version(kube: Kube) -> str | None:
    try:
        return kube.server_version()[2].split("+")[0]
    except Exception:  # noqa: BLE001 - the render still works without it
        return None


def rendering(
    kube: Kube, inventory: Inventory, component: Component, objects: list[dict[str, Any]]
) -> Rendering:
    """The component's HelmRelease rendered as the adoption upgrade will, twice (RenderError if
    not): on the live cluster when there is one (helm upgrade --dry-run=server of the CLI
    release), else offline (helm template)."""
    hr = helm_release_of(component, objects)
    if hr is None:
        raise RenderError(
            f"HelmRelease {component.helm_release} not in the build of {component.path}"
        )
    src = chart_source(hr, source_objects(inventory, objects))
    values, problems = hr_values(kube, hr, objects)
    if problems:
        raise RenderError("; ".join(problems))
    return with_post_renderers(
        render_chart(src, values, kube_version(kube), cluster_access(kube)), hr
    )


def with_post_renderers(r: Rendering, hr: dict[str, Any]) -> Rendering:
    """The render as helm-controller hands it to the upgrade: its spec.postRenderers applied
    (each kustomize post-renderer in turn, then commonMetadata: helm-controller
    internal/postrender/build.go BuildPostRenderers, kustomize.go), by the real kustomize of
    kubectl. The origin labels it adds go on metadata only, never on a pod template."""
    spec = hr.get("spec") or {}
    if not spec.get("postRenderers"):
        return r
    import copy

    from handover.flux.postrender import post_render

    try:
        objs = post_render(
            copy.deepcopy(r.objects),
            {"postRenderers": spec["postRenderers"], "commonMetadata": spec.get("commonMetadata")},
            str(tools.kubectl()),
        )
    except SystemExit as e:  # post_render's own failure (kustomize refused the patches)
        raise RenderError(f"{hr_id(hr)}: spec.postRenderers: {e}") from None
    return Rendering(objs, r.hooks, r.mode, r.unstable, post_rendered=True)


def rendered_objects(
    kube: Kube, inventory: Inventory, component: Component, objects: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rendered release manifest (hooks excluded)."""
    return rendering(kube, inventory, component, objects).objects


def predictions(
    kube: Kube, inventory: Inventory, component: Component, objects: list[dict[str, Any]]
) -> list[WorkloadPrediction]:
    hr = helm_release_of(component, objects)
    rendered = rendered_objects(kube, inventory, component, objects)
    assert hr is not None  # rendered_objects raises RenderError without the HelmRelease
    rec = (
        helm_storage.latest(kube, component.release.name, component.release.namespace)
        if component.release
        else None
    )
    previous = parse_manifest(rec.manifest) if rec else []

    def live_of(kind: str, ns: str, name: str) -> dict[str, Any] | None:
        return kube.get("apps/v1", kind, name, ns)

    return predict(rendered, previous, live_of, flux.target_namespace(hr))


# --- why a pod template changes, and what can help -----------------------------------------------

ANNOTATIONS = "spec.template.metadata.annotations"


def annotation_key(path: str) -> str | None:
    """The annotation key of a pod-template annotation path (None for any other path)."""
    if not path.startswith(ANNOTATIONS):
        return None
    rest = path[len(ANNOTATIONS) :]
    if rest.startswith("."):
        return rest[1:] if rest[1:] and "." not in rest[1:] else None
    if rest.startswith('["') and rest.endswith('"]'):
        return rest[2:-2]
    return None


def cause(subject: str, d: Difference, unstable: set[tuple[str, str]]) -> str:
    """One field's change and its cause."""
    if (subject, d.path) in unstable:
        return (
            f"{d.describe()} [non-deterministic: it differs between two renders of the same "
            f"inputs (a random value the chart does not keep through lookup), so the pods "
            f"roll on every upgrade]"
        )
    key = annotation_key(d.path)
    if key is not None and key.startswith("checksum/"):
        return (
            f"{d.describe()} [computed by the chart: a checksum of content that renders "
            f"differently from the deployed one]"
        )
    return d.describe()


def _json_pointer(key: str) -> str:
    return "/" + "/".join(
        p.replace("~", "~0").replace("/", "~1")
        for p in ("spec", "template", "metadata", "annotations", key)
    )


def keep_live_patch(p: WorkloadPrediction) -> dict[str, Any] | None:
    """The HelmRelease spec.postRenderers entry that keeps the live pod-template annotations of
    this workload, when annotations are ALL the adoption upgrade would change in its template
    (helm-controller applies spec.postRenderers[].kustomize.patches to the rendered manifest
    before the upgrade: internal/postrender/kustomize.go). None otherwise."""
    ops = []
    for d in p.changes:
        key = annotation_key(d.path)
        if key is None:
            return None
        if d.live is MISSING:
            ops.append({"op": "remove", "path": _json_pointer(key)})
        elif d.git is MISSING:
            ops.append({"op": "add", "path": _json_pointer(key), "value": d.live})
        else:
            ops.append({"op": "replace", "path": _json_pointer(key), "value": d.live})
    if not ops:
        return None
    # The target names the namespace only when the render sets it: helm runs the post-renderer
    # on the rendered manifest before it gives objects their namespace (helm pkg/action
    # install.go/upgrade.go renderResources -> PostRenderer.Run, then the kube client sets the
    # release namespace on objects without one), and a kustomize target with a namespace does
    # not match an object that has none, so such a patch would silently apply to nothing.
    target = {"kind": p.kind, "name": p.name}
    if p.namespace_rendered:
        target["namespace"] = p.namespace
    return {"target": target, "patch": yaml.safe_dump(ops, sort_keys=False)}


def post_renderers_offer(hr: dict[str, Any], patches: list[dict[str, Any]]) -> str:
    """The exact HelmRelease fragment to add for the handover (YAML)."""
    doc = {"spec": {"postRenderers": [{"kustomize": {"patches": patches}}]}}
    return yaml.safe_dump(doc, sort_keys=False, width=1000)


def redacted_patch(patch: dict[str, Any]) -> dict[str, Any]:
    """The patch as it may be printed: each op's value (a live checksum) as its short hash
    (handover/core/redact.py), paths and ops in clear."""
    from handover.core import redact

    ops = yaml.safe_load(patch["patch"]) or []
    shown = [{**op, "value": redact.hashed(op["value"])} if "value" in op else op for op in ops]
    return {**patch, "patch": yaml.safe_dump(shown, sort_keys=False)}


def offer_path(inventory: Inventory, hr: dict[str, Any]) -> Path:
    """Where the exact offer for a HelmRelease is written (0600, under the backups folder)."""
    m = hr.get("metadata") or {}
    return (
        inventory.backups
        / "offers"
        / f"{m.get('namespace', 'default')}.{m.get('name')}.postRenderers.yaml"
    )


def write_offer(inventory: Inventory, hr: dict[str, Any], patches: list[dict[str, Any]]) -> Path:
    """Write the exact spec.postRenderers fragment (live values in it) to a 0600 file in a 0700
    folder under the backups folder; the path is what the finding prints."""
    from handover.core import redact

    path = offer_path(inventory, hr)
    redact.write_private(
        path,
        "# flux-handover: add to " + hr_id(hr) + " for the handover "
        "(keeps the live pod-template annotations)\n" + post_renderers_offer(hr, patches),
        root=inventory.backups,
    )
    return path


def read_offer(path: Path | str) -> dict[str, Any]:
    """The offered fragment as written by ``write_offer`` ({"spec": {"postRenderers": ...}})."""
    return yaml.safe_load(Path(path).read_text())


def _values_equal(
    kube, component: Component, hr: dict[str, Any], objects: list[dict[str, Any]]
) -> bool | None:
    """Whether the HelmRelease values and chart version already equal the release's (None when
    unknown)."""
    from handover.gate.hazards.adoption import values_diff

    assert component.release is not None, "a component with a helmRelease has a release"
    rec = helm_storage.latest(kube, component.release.name, component.release.namespace)
    if rec is None:
        return None
    values, problems = hr_values(kube, hr, objects)
    if problems:
        return None
    same_chart = str(chart_spec(hr).get("version") or "") == str(rec.chart_version)
    return same_chart and not values_diff(rec.config or {}, values)


def check_rollout(
    kube: Kube, inventory: Inventory, component: Component, objects: list[dict[str, Any]]
) -> list[Finding]:
    """Error per workload whose pods the adoption upgrade would recreate (naming the fields and
    their causes) or that it would delete."""
    if component.type != "helm" or component.release is None:
        return []
    hr = helm_release_of(component, objects)
    if hr is None:
        return [missing_hr_finding(CHECK, component)]
    found: list[Finding] = []
    try:
        r = rendering(kube, inventory, component, objects)
        preds = predictions(kube, inventory, component, objects)
    except (RenderError, kustomize.KustomizeError) as e:
        fix = "fix the HelmRelease's chart source so that the render works"
        if "from current release manifest" in str(e):
            fix = (
                "the stored release holds an apiVersion this cluster no longer serves, so "
                "the adoption upgrade cannot start either: rewrite it with helm mapkubeapis "
                "(see the stored-apis-served check)"
            )
        return found + [Finding(CHECK, hr_id(hr), f"cannot render the chart: {e}", fix)]
    unstable = {(u.subject, u.path) for u in r.unstable}
    same_inputs = None
    if any(p.outcome == RECREATED for p in preds):
        # Pinning a checksum is only safe when the checksummed content is the live one: with
        # the release's own values and chart version. With other values the content changes
        # too, and the pinned annotation would hide the restart it needs.
        same_inputs = _values_equal(kube, component, hr, objects)
    patches = {
        p.subject: keep_live_patch(p) for p in preds if p.outcome == RECREATED and same_inputs
    }
    patches = {s: x for s, x in patches.items() if x is not None}
    # The exact offer carries the live checksums: written to a 0600 file, printed redacted.
    offer_file = (
        write_offer(inventory, hr, [x for x in patches.values() if x is not None])
        if patches
        else None
    )
    for p in preds:
        if p.outcome == RECREATED:
            random = [d for d in p.changes if (p.subject, d.path) in unstable]
            patch = patches.get(p.subject)
            if patch is not None:
                fix = (
                    "only annotations the chart computes differ: keep the live ones for the "
                    "handover with a HelmRelease spec.postRenderers patch (adoption in "
                    f"place). The exact fragment to add to {hr_id(hr)} is in {offer_file} "
                    "(0600: it holds the live values); shown here with each value as its "
                    "hash:\n"
                    + post_renderers_offer(hr, [redacted_patch(patch)])
                    + "drop it later in a commit of its own, when one rollout of "
                    f"{p.subject} is acceptable (that commit's upgrade rolls the pods once)"
                )
                if random:
                    fix += (
                        "; while the patch is there the pods stay put, without it they roll "
                        "at every upgrade (the value is random)"
                    )
            elif random:
                fix = (
                    "the chart generates these values anew at each render: give them in "
                    "spec.values (an existing Secret / fixed value), or plan the rollout at "
                    "every upgrade knowingly"
                )
            elif same_inputs:
                fix = (
                    "the HelmRelease values and chart version already equal the release's: "
                    "the change comes from the chart's render itself; plan this rollout "
                    "knowingly (or pin the fields with a spec.postRenderers patch)"
                )
            else:
                fix = (
                    "make the HelmRelease values / chart version render the live pod template "
                    "(compare `helm get values`), or plan this rollout knowingly"
                )
                if keep_live_patch(p) is not None:
                    fix += (
                        "; no spec.postRenderers patch is offered: the values differ from "
                        "the release's, so the checksummed content changes too and keeping "
                        "the live checksum would hide the restart it needs"
                    )
            found.append(
                Finding(
                    CHECK,
                    p.subject,
                    f"{RECREATED} at adoption by {hr_id(hr)} (rendered by {r.how}): the rendered "
                    f"pod template differs from the live one at {len(p.changes)} field(s): "
                    + "; ".join(cause(p.subject, d, unstable) for d in p.changes[:20]),
                    fix,
                )
            )
        elif p.outcome == DELETED:
            found.append(
                Finding(
                    CHECK,
                    p.subject,
                    f"{DELETED} at adoption by {hr_id(hr)}: it is in the release's "
                    f"manifest but not in the new render",
                    "render it again (chart version / values) before the handover",
                )
            )
    for u in r.unstable:
        if not u.in_pod_template:
            found.append(
                Finding(
                    CHECK,
                    u.subject,
                    f"non-deterministic field {u.path}: it differs between two "
                    f"renders of the same inputs ({u.describe()})",
                    "give the value in spec.values, or accept that this object changes at every "
                    "upgrade",
                    severity="warning",
                )
            )
    return found
