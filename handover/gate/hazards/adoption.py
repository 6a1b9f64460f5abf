"""Adoption of a Helm CLI release by its HelmRelease: will Flux upgrade the SAME release, with the
same chart version and the same values?

- Target: the HelmRelease's effective release name, storage namespace and target namespace
  (handover.flux.rules rules, from helm-controller api/v2 GetReleaseName / GetStorageNamespace /
  GetReleaseNamespace) must resolve to the existing CLI release; otherwise helm-controller finds
  nothing in storage and installs a SECOND release over the same objects.
- Values: without preserveValues the adoption upgrade resets values to spec.values (+ valuesFrom),
  so they must equal the release's user values (``config``, what ``helm get values`` prints).
- Chart: ``spec.chart.spec.version`` must equal the deployed ``chart.metadata.version`` (and the
  chart name the deployed chart's name).

Each check: (kube, component, built objects) -> list[Finding]. Read-only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from handover.core import redact
from handover.core.findings import Finding
from handover.core.inventory import Component
from handover.flux import rules as flux
from handover.sources import helm_storage
from handover.sources.kustomize import find
from handover.tree_diff import Difference, describe_all, exact

if TYPE_CHECKING:
    from handover.core.kube import Kube

TARGET = "adoption-target"
VALUES = "adoption-values"
CHART = "adoption-chart-version"
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]*)?$")


def hr_id(hr: dict[str, Any]) -> str:
    m = hr.get("metadata") or {}
    return f"HelmRelease {m.get('namespace', 'default')}/{m.get('name')}"


def helm_release_of(component: Component, objects: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The component's HelmRelease in the built objects (None when the component has none)."""
    if component.helm_release is None:
        return None
    return find(
        objects, "HelmRelease", component.helm_release.name, component.helm_release.namespace
    )


def missing_hr_finding(check: str, component: Component) -> Finding:
    ref = component.helm_release
    assert ref is not None, "called only for a component with a helmRelease"
    return Finding(
        check,
        f"HelmRelease {ref.namespace}/{ref.name}",
        f"not found in the kustomize build of {component.path} (component {component.name})",
        f"add the HelmRelease to {component.path} or correct helmRelease in the inventory",
    )


@dataclass(frozen=True)
class AdoptionTarget:
    helm_release: str  # "HelmRelease ns/name"
    release_name: str
    storage_namespace: str
    target_namespace: str

    @classmethod
    def of(cls, hr: dict[str, Any]) -> AdoptionTarget:
        return cls(
            hr_id(hr),
            flux.helm_release_name(hr),
            flux.storage_namespace(hr),
            flux.target_namespace(hr),
        )


def _how_to_point(hr: dict[str, Any], name: str, namespace: str) -> str:
    spec = hr.get("spec") or {}
    steps = []
    if flux.helm_release_name(hr) != name:
        steps.append(f"spec.releaseName: {name}")
    if flux.storage_namespace(hr) != namespace:
        steps.append(f"spec.storageNamespace: {namespace}")
    if flux.target_namespace(hr) != namespace:
        steps.append(f"spec.targetNamespace: {namespace}")
    hint = ""
    if spec.get("targetNamespace") and not spec.get("releaseName"):
        hint = (
            " (with targetNamespace and no releaseName the release name gets the "
            "'<targetNamespace>-' prefix)"
        )
    return (
        f"set {', '.join(steps) or 'nothing'} in {hr_id(hr)}{hint}, or move the HelmRelease "
        f"into namespace {namespace} without releaseName/targetNamespace/storageNamespace"
    )


def target_mismatch(component: Component, hr: dict[str, Any]) -> str | None:
    """A sentence when the HelmRelease does not resolve to the component's CLI release (then a
    render of it predicts a different release, and check_target is the finding to fix)."""
    if component.release is None:
        return None
    t = AdoptionTarget.of(hr)
    want = component.release
    if (t.release_name, t.storage_namespace, t.target_namespace) == (
        want.name,
        want.namespace,
        want.namespace,
    ):
        return None
    return (
        f"{t.helm_release} resolves to release {t.storage_namespace}/{t.release_name} "
        f"(target namespace {t.target_namespace}), not the CLI release "
        f"{want.namespace}/{want.name}"
    )


def check_target(kube: Kube, component: Component, objects: list[dict[str, Any]]) -> list[Finding]:
    """The HelmRelease resolves to the CLI release named in the inventory, and that release is
    deployed (an uninstalled or missing release means install, pending-* an unlock)."""
    if component.type != "helm" or component.release is None:
        return []
    hr = helm_release_of(component, objects)
    if hr is None:
        return [missing_hr_finding(TARGET, component)]
    t = AdoptionTarget.of(hr)
    want = component.release
    found: list[Finding] = []
    mismatches = []
    if t.release_name != want.name:
        mismatches.append(f"release name {t.release_name!r} (CLI release: {want.name!r})")
    if t.storage_namespace != want.namespace:
        mismatches.append(
            f"storage namespace {t.storage_namespace!r} (CLI release stored in {want.namespace!r})"
        )
    if t.target_namespace != want.namespace:
        mismatches.append(
            f"target namespace {t.target_namespace!r} (CLI release in {want.namespace!r})"
        )
    existing = helm_storage.latest(kube, want.name, want.namespace)
    if mismatches:
        at = helm_storage.latest(kube, t.release_name, t.storage_namespace)
        consequence = (
            "finds no release there and INSTALLS A SECOND RELEASE over the objects of "
            f"release {want.namespace}/{want.name}"
            if at is None
            else f"adopts the OTHER release {t.storage_namespace}/{t.release_name} "
            f"(revision {at.revision}, chart {at.chart_name}-{at.chart_version})"
        )
        found.append(
            Finding(
                TARGET,
                t.helm_release,
                f"resolves to {'; '.join(mismatches)}: helm-controller looks for release "
                f"{t.release_name!r} in storage namespace {t.storage_namespace!r}, {consequence}",
                _how_to_point(hr, want.name, want.namespace),
            )
        )
    if existing is None:
        found.append(
            Finding(
                TARGET,
                f"Helm release {want.namespace}/{want.name}",
                f"no release {want.name!r} in storage namespace {want.namespace!r} (no Secret "
                f"sh.helm.release.v1.{want.name}.v*): {t.helm_release} would install, not adopt",
                "correct release in the inventory (helm list -A shows the CLI releases)",
            )
        )
    elif existing.status != "deployed":
        effect = {
            "uninstalled": "is treated as absent: Flux INSTALLS a new release",
            "uninstalling": "is treated as absent: Flux INSTALLS a new release",
            "failed": "is upgraded from a failed state; remediation may roll back or uninstall",
        }.get(existing.status, "is unlocked (marked failed) first, then upgraded")
        found.append(
            Finding(
                TARGET,
                f"Helm release {want.namespace}/{want.name}",
                f"latest revision {existing.revision} has status {existing.status!r} (expected "
                f"'deployed'): the release {effect}",
                f"bring the release to status deployed first (helm rollback {want.name} "
                f"<last good revision> -n {want.namespace}) and re-run the gate",
            )
        )
    return found


# --- values ---------------------------------------------------------------------------------------


def _lookup(kube: Kube, objects, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    obj = find(objects, kind, name, namespace)
    if obj is None and kube is not None:
        obj = kube.get("v1", kind, name, namespace)
    return obj


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def hr_values(
    kube: Kube, hr: dict[str, Any], objects: list[dict[str, Any]]
) -> tuple[dict, list[str]]:
    """The values helm-controller would pass: valuesFrom (in order) merged, then spec.values on
    top. Returns (values, problems) where problems name a valuesFrom that could not be read."""
    import base64

    spec = hr.get("spec") or {}
    ns = (hr.get("metadata") or {}).get("namespace", "default")
    merged: dict[str, Any] = {}
    problems: list[str] = []
    for i, ref in enumerate(spec.get("valuesFrom") or []):
        kind, name = ref.get("kind"), ref.get("name")
        key = ref.get("valuesKey") or "values.yaml"
        obj = _lookup(kube, objects, kind, name, ns)
        if obj is None:
            if not ref.get("optional"):
                problems.append(
                    f"spec.valuesFrom[{i}]: {kind} {ns}/{name} not found in Git or live"
                )
            continue
        if kind == "Secret":
            redact.register_secret(obj)  # its values are hashed wherever they turn up
            raw = (obj.get("data") or {}).get(key)
            text = (
                base64.b64decode(raw).decode()
                if raw is not None
                else (obj.get("stringData") or {}).get(key)
            )
        else:
            text = (obj.get("data") or {}).get(key)
        if text is None:
            if not ref.get("optional"):
                problems.append(f"spec.valuesFrom[{i}]: {kind} {ns}/{name} has no key {key!r}")
            continue
        if ref.get("targetPath"):
            value: Any = yaml.safe_load(text)
            cur = merged
            parts = ref["targetPath"].split(".")
            for p in parts[:-1]:
                cur = cur.setdefault(p, {})
            cur[parts[-1]] = value
        else:
            merged = _deep_merge(merged, yaml.safe_load(text) or {})
    return _deep_merge(merged, spec.get("values") or {}), problems


def values_diff(config: dict[str, Any], values: dict[str, Any]) -> list[Difference]:
    """Value paths where the HelmRelease values (Git) differ from the release's user values."""
    return exact(config or {}, values or {})


def _hr_and_release(
    kube: Kube, component: Component, objects: list[dict[str, Any]], check: str, what: str
):
    """(HelmRelease, latest release record, findings): findings when either is missing."""
    hr = helm_release_of(component, objects)
    if hr is None:
        return None, None, [missing_hr_finding(check, component)]
    want = component.release
    assert want is not None, "a component with a helmRelease has a release"
    rec = helm_storage.latest(kube, want.name, want.namespace)
    if rec is None:
        return (
            hr,
            None,
            [
                Finding(
                    check,
                    hr_id(hr),
                    f"no Helm release {want.namespace}/{want.name} to compare {what} with",
                    "correct release in the inventory",
                )
            ],
        )
    return hr, rec, []


def check_values(kube: Kube, component: Component, objects: list[dict[str, Any]]) -> list[Finding]:
    if component.type != "helm" or component.release is None:
        return []
    hr, rec, missing = _hr_and_release(kube, component, objects, VALUES, "values")
    if missing:
        return missing
    want = component.release
    values, problems = hr_values(kube, hr, objects)
    found = [
        Finding(VALUES, hr_id(hr), p, "create the referenced object or mark it optional")
        for p in problems
    ]
    diffs = values_diff(rec.config, values)
    if diffs:
        preserve = ((hr.get("spec") or {}).get("upgrade") or {}).get("preserveValues")
        found.append(
            Finding(
                VALUES,
                hr_id(hr),
                f"spec.values differ from the user values of release {want.namespace}/{want.name} "
                f"(revision {rec.revision}) at {len(diffs)} path(s): {describe_all(diffs)}. The "
                f"adoption upgrade {'merges' if preserve else 'RESETS the release to'} these values",
                f"make spec.values equal to `helm get values {want.name} -n {want.namespace}` "
                f"(values given once with --set are dropped unless they are in the HelmRelease), or "
                f"accept the change knowingly",
            )
        )
    return found


# --- chart version ----------------------------------------------------------------------------------


def chart_spec(hr: dict[str, Any]) -> dict[str, Any]:
    return (((hr.get("spec") or {}).get("chart") or {}).get("spec")) or {}


def check_chart_version(
    kube: Kube, component: Component, objects: list[dict[str, Any]]
) -> list[Finding]:
    if component.type != "helm" or component.release is None:
        return []
    hr, rec, missing = _hr_and_release(kube, component, objects, CHART, "the chart")
    if missing:
        return missing
    want = component.release
    cs = chart_spec(hr)
    found: list[Finding] = []
    chart, version = cs.get("chart"), cs.get("version")
    if hr.get("spec", {}).get("chartRef"):
        found.append(
            Finding(
                CHART,
                hr_id(hr),
                "uses spec.chartRef (OCIRepository/HelmChart): "
                "the chart version cannot be compared with the release offline",
                f"pin the chart to {rec.chart_version} in the referenced source",
                severity="warning",
            )
        )
        return found
    if chart and chart != rec.chart_name and not str(chart).endswith(f"/{rec.chart_name}"):
        found.append(
            Finding(
                CHART,
                hr_id(hr),
                f"spec.chart.spec.chart: Git {chart!r}, deployed chart {rec.chart_name!r} (release "
                f"{want.namespace}/{want.name} revision {rec.revision})",
                f"set spec.chart.spec.chart: {rec.chart_name}",
            )
        )
    if version is None or version == "*" or not EXACT_VERSION.match(str(version)):
        found.append(
            Finding(
                CHART,
                hr_id(hr),
                f"spec.chart.spec.version: Git {version!r} is not an exact version; deployed "
                f"{rec.chart_name} {rec.chart_version} (release {want.namespace}/{want.name} revision "
                f"{rec.revision}); a range resolves to the newest chart in the repository at "
                f"adoption",
                f'set spec.chart.spec.version: "{rec.chart_version}" for the handover',
            )
        )
    elif str(version).lstrip("v") != rec.chart_version.lstrip("v"):
        found.append(
            Finding(
                CHART,
                hr_id(hr),
                f"spec.chart.spec.version: Git {version!r}, deployed chart.metadata.version "
                f"{rec.chart_version!r} (release {want.namespace}/{want.name} revision "
                f"{rec.revision}): the adoption upgrade changes the chart, pods will likely be "
                f"recreated",
                f'set spec.chart.spec.version: "{rec.chart_version}"; upgrade the chart after the '
                f"handover",
            )
        )
    return found
