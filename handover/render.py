"""Render a HelmRelease's chart the way the adoption upgrade will, and predict per workload
whether its pods are recreated.

The chart is rendered with the real helm binary (``helm template`` from the HelmRepository's URL,
the HelmRelease's chart, version and values, ``--is-upgrade``, the live server's version), in a
throw-away HELM_* home so nothing of the user's helm configuration is read or written.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from handover import flux, helm_storage, kustomize, tools
from handover.adoption import chart_spec, helm_release_of, hr_id, hr_values, missing_hr_finding
from handover.errors import HandoverError
from handover.findings import Finding
from handover.inventory import Component, Inventory
from handover.tree_diff import Difference, against_live, describe_all, removed_fields

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


def find_helm_repository(ref: dict[str, Any], hr_namespace: str,
                         objects: list[dict[str, Any]]) -> dict[str, Any] | None:
    return kustomize.find(objects, ref.get("kind", "HelmRepository"), ref.get("name"),
                          ref.get("namespace") or hr_namespace)


_SOURCES: dict[tuple, list[dict[str, Any]]] = {}


def source_objects(inventory: Inventory, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The built objects plus the build of the inventory's sources path (HelmRepositories),
    built once per state of its files."""
    extra: list[dict[str, Any]] = []
    sp = inventory.gitops.sources_path
    d = inventory.gitops.path / sp if sp else None
    if d is not None and d.is_dir():
        key = (str(d), tuple(sorted((str(f), f.stat().st_mtime_ns) for f in d.rglob("*")
                                    if f.is_file())))
        if key not in _SOURCES:
            _SOURCES[key] = kustomize.build(d)
        extra = _SOURCES[key]
    return list(objects) + extra


def chart_source(hr: dict[str, Any], sources: list[dict[str, Any]]) -> ChartSource:
    spec = chart_spec(hr)
    ns = (hr.get("metadata") or {}).get("namespace", "default")
    ref = spec.get("sourceRef") or {}
    if ref.get("kind", "HelmRepository") != "HelmRepository":
        raise RenderError(f"{hr_id(hr)}: spec.chart.spec.sourceRef.kind {ref.get('kind')!r}: "
                          f"only HelmRepository charts are rendered")
    repo = find_helm_repository(ref, ns, sources)
    if repo is None:
        raise RenderError(f"{hr_id(hr)}: HelmRepository {ref.get('namespace') or ns}/"
                          f"{ref.get('name')} (spec.chart.spec.sourceRef) is not in the GitOps "
                          f"repo build")
    rspec = repo.get("spec") or {}
    if rspec.get("secretRef"):
        raise RenderError(f"HelmRepository {ref.get('name')} needs credentials (spec.secretRef):"
                          f" the gate does not read them")
    return ChartSource(flux.helm_release_name(hr), flux.target_namespace(hr), spec.get("chart"),
                       spec.get("version"), rspec.get("url", ""), rspec.get("type") == "oci")


_CACHE: dict[str, list[dict[str, Any]]] = {}


def helm_template(src: ChartSource, values: dict[str, Any],
                  kube_version: str | None = None) -> list[dict[str, Any]]:
    """The rendered objects (helm template ... --is-upgrade), cached per input."""
    key = json.dumps([src.__dict__, values, kube_version], sort_keys=True, default=str)
    if key in _CACHE:
        return _CACHE[key]
    with tempfile.TemporaryDirectory(prefix="handover-helm-") as tmp:
        t = Path(tmp)
        vf = t / "values.yaml"
        vf.write_text(yaml.safe_dump(values or {}))
        argv = [str(tools.helm()), *src.argv(), "--values", str(vf), "--is-upgrade",
                "--skip-tests"]
        if kube_version:
            argv += ["--kube-version", kube_version]
        env = {**os.environ, "HELM_CACHE_HOME": str(t / "cache"),
               "HELM_CONFIG_HOME": str(t / "config"), "HELM_DATA_HOME": str(t / "data"),
               "KUBECONFIG": str(t / "no-kubeconfig")}
        res = tools.run(argv, env=env)
    if not res.ok:
        raise RenderError(f"helm template {src.chart} {src.version} from {src.repo_url} failed: "
                          f"{res.stderr.strip()}")
    objs = [d for d in yaml.safe_load_all(res.stdout) if isinstance(d, dict)]
    _CACHE[key] = objs
    return objs


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

    @property
    def subject(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def to_dict(self) -> dict:
        return {"workload": self.subject, "outcome": self.outcome,
                "changes": [c.to_dict() for c in self.changes]}


def template_changes(desired: dict[str, Any], live: dict[str, Any],
                     previous: dict[str, Any] | None = None) -> list[Difference]:
    """Pod-template fields a three-way merge of previous -> desired would change live."""
    d = (desired.get("spec") or {}).get("template") or {}
    lv = (live.get("spec") or {}).get("template") or {}
    p = ((previous or {}).get("spec") or {}).get("template") or {}
    return against_live(d, lv, "spec.template") + removed_fields(p, d, lv, "spec.template")


def predict(rendered: list[dict[str, Any]], previous: list[dict[str, Any]],
            live_of, namespace: str) -> list[WorkloadPrediction]:
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
        out.append(WorkloadPrediction(kind, ns, name, RECREATED if changes else IN_PLACE,
                                      changes))
    for (kind, ns, name) in old:
        if (kind, ns, name) not in new and live_of(kind, ns, name) is not None:
            out.append(WorkloadPrediction(kind, ns, name, DELETED))
    return out


def kube_version(kube) -> str | None:
    try:
        return kube.server_version()[2].split("+")[0]
    except Exception:  # noqa: BLE001 - the render still works without it
        return None


def rendered_objects(kube, inventory: Inventory, component: Component,
                     objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The component's HelmRelease rendered as the adoption upgrade will (RenderError if not)."""
    hr = helm_release_of(component, objects)
    if hr is None:
        raise RenderError(f"HelmRelease {component.helm_release} not in the build of "
                          f"{component.path}")
    src = chart_source(hr, source_objects(inventory, objects))
    values, problems = hr_values(kube, hr, objects)
    if problems:
        raise RenderError("; ".join(problems))
    return helm_template(src, values, kube_version(kube))


def predictions(kube, inventory: Inventory, component: Component,
                objects: list[dict[str, Any]]) -> list[WorkloadPrediction]:
    hr = helm_release_of(component, objects)
    rendered = rendered_objects(kube, inventory, component, objects)
    rec = helm_storage.latest(kube, component.release.name, component.release.namespace) \
        if component.release else None
    previous = parse_manifest(rec.manifest) if rec else []

    def live_of(kind, ns, name):
        return kube.get("apps/v1", kind, name, ns)

    return predict(rendered, previous, live_of, flux.target_namespace(hr))


def check_rollout(kube, inventory: Inventory, component: Component,
                  objects: list[dict[str, Any]]) -> list[Finding]:
    """Error per workload whose pods the adoption upgrade would recreate (naming the fields) or
    that it would delete."""
    if component.type != "helm" or component.release is None:
        return []
    hr = helm_release_of(component, objects)
    if hr is None:
        return [missing_hr_finding(CHECK, component)]
    found: list[Finding] = []
    if (hr.get("spec") or {}).get("postRenderers"):
        found.append(Finding(CHECK, hr_id(hr), "spec.postRenderers are not applied to the "
                             "prediction", "check the post-renderers' effect on pod templates "
                             "by hand", severity="warning"))
    try:
        preds = predictions(kube, inventory, component, objects)
    except (RenderError, kustomize.KustomizeError) as e:
        return found + [Finding(CHECK, hr_id(hr), f"cannot render the chart: {e}",
                                "fix the HelmRelease's chart source so that helm template "
                                "works")]
    for p in preds:
        if p.outcome == RECREATED:
            found.append(Finding(
                CHECK, p.subject,
                f"{RECREATED} at adoption by {hr_id(hr)}: the rendered pod template differs "
                f"from the live one at {len(p.changes)} field(s): {describe_all(p.changes)}",
                "make the HelmRelease values / chart version render the live pod template "
                "(compare `helm get values`), or plan this rollout knowingly"))
        elif p.outcome == DELETED:
            found.append(Finding(
                CHECK, p.subject, f"{DELETED} at adoption by {hr_id(hr)}: it is in the release's "
                f"manifest but not in the new render",
                "render it again (chart version / values) before the handover"))
    return found
