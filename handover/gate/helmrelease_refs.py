"""Checks 5 and 6: what the HelmReleases in Git reference.

Check 5 (per helm component): the component's HelmRelease is in Git under its path; its
``spec.chart.spec.sourceRef`` points to a HelmRepository defined in the repo (source-controller
would otherwise never produce a chart); namespaces are consistent (the HelmRelease, its
HelmRepository and its targetNamespace exist live or are created by Git, or are Flux's own
namespace, created by bootstrap); and the chart exists in that repository's index with a version
matching ``spec.chart.spec.version``. When the index cannot be read that last part is left to
check 6 (one cause, one failure).

Check 6 (per HelmRepository): its index is reachable over HTTP and parses, and every chart the
HelmReleases take from it is there; the chart versions deployed today are listed and a missing
one is a warning (a rollback uses the chart stored in the release, not the repository). OCI
repositories are read through the registry's tag list, or skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from handover.core.findings import Finding
from handover.core.inventory import Component
from handover.sources import chart_index
from handover.sources.chart_index import ChartIndexError, IndexCache

CHECK5 = "helmrelease-refs"
CHECK6 = "chart-availability"


def _meta(o: dict[str, Any]) -> dict[str, Any]:
    return o.get("metadata") or {}


def _ns(o: dict[str, Any]) -> str:
    return _meta(o).get("namespace") or "default"


def chart_spec(hr: dict[str, Any]) -> dict[str, Any]:
    return ((hr.get("spec") or {}).get("chart") or {}).get("spec") or {}


def source_ref(hr: dict[str, Any]) -> tuple[str, str, str]:
    """(kind, namespace, name) of a HelmRelease's chart source (namespace defaults to the HR's)."""
    ref = chart_spec(hr).get("sourceRef") or {}
    return str(ref.get("kind", "")), ref.get("namespace") or _ns(hr), str(ref.get("name", ""))


def helm_repositories(objects: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict]:
    return {
        (_ns(o), _meta(o).get("name", "")): o
        for o in objects
        if o.get("kind") == "HelmRepository"
        and str(o.get("apiVersion", "")).startswith("source.toolkit.fluxcd.io/")
    }


def git_namespaces(objects: Iterable[dict[str, Any]]) -> set[str]:
    return {_meta(o).get("name", "") for o in objects if o.get("kind") == "Namespace"}


class Incomplete(Exception):
    """A verdict needs objects from a path whose build failed (check 1 reports that)."""


@dataclass
class RefResult:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_helmrelease(
    component: Component,
    component_objects: list[dict[str, Any]],
    all_objects: list[dict[str, Any]],
    live_namespaces: set[str] | None,
    flux_namespace: str,
    cache: IndexCache,
    failed_builds: Iterable[str] = (),
) -> RefResult:
    """failed_builds: paths whose kustomize build failed; a HelmRepository missing from the
    other builds may live there, so that verdict raises Incomplete instead of failing."""
    out = RefResult()
    failed_builds = list(failed_builds)
    ref = component.helm_release
    assert ref is not None
    subject = f"HelmRelease {ref.namespace}/{ref.name}"
    hrs = [o for o in component_objects if o.get("kind") == "HelmRelease"]
    hr = next(
        (o for o in hrs if _meta(o).get("name") == ref.name and _ns(o) == ref.namespace), None
    )
    if hr is None:
        found = ", ".join(f"{_ns(o)}/{_meta(o).get('name')}" for o in hrs) or "none"
        out.findings.append(
            Finding(
                CHECK5,
                subject,
                f"not found in the build of {component.path} (HelmReleases there: {found})",
                f"add it under {component.path}, or fix components[{component.name}].helmRelease in "
                "the inventory",
            )
        )
        return out
    available_ns = (live_namespaces or set()) | git_namespaces(all_objects) | {flux_namespace}

    def ns_ok(ns: str, what: str) -> None:
        if live_namespaces is None:  # --offline: live namespaces not known, not checked
            return
        if ns not in available_ns:
            out.findings.append(
                Finding(
                    CHECK5,
                    subject,
                    f"{what} {ns!r} neither exists live nor is created by Git",
                    f"add a Namespace {ns} to Git or fix {what}",
                )
            )

    ns_ok(_ns(hr), "metadata.namespace")
    target = (hr.get("spec") or {}).get("targetNamespace")
    if target:
        ns_ok(target, "spec.targetNamespace")
    if (hr.get("spec") or {}).get("chartRef"):
        _check_chart_ref(hr, subject, all_objects, out, failed_builds)
        return out
    spec = chart_spec(hr)
    chart, constraint = spec.get("chart"), str(spec.get("version") or "*")
    kind, src_ns, src_name = source_ref(hr)
    if kind != "HelmRepository":
        out.notes.append(
            f"chart source is a {kind or '(no kind)'}; only HelmRepository sources "
            "are resolved here"
        )
        if not kind or not src_name:
            out.findings.append(
                Finding(
                    CHECK5,
                    subject,
                    "spec.chart.spec.sourceRef needs kind and name",
                    "set sourceRef",
                )
            )
        return out
    repos = helm_repositories(all_objects)
    repo = repos.get((src_ns, src_name))
    if repo is None and failed_builds:
        raise Incomplete(
            f"sourceRef HelmRepository {src_ns}/{src_name} not found in the builds "
            f"that succeeded; the build of {', '.join(failed_builds)} failed (see "
            "test_kustomize_build)"
        )
    if repo is None:
        defined = ", ".join(f"{n}/{m}" for n, m in sorted(repos)) or "none"
        out.findings.append(
            Finding(
                CHECK5,
                subject,
                f"spec.chart.spec.sourceRef points to HelmRepository {src_ns}/{src_name}, which is "
                f"not defined in the GitOps repo (defined: {defined}); Flux would never fetch the "
                "chart",
                "fix sourceRef.name/namespace or add that HelmRepository (e.g. under the sources "
                "path)",
            )
        )
        return out
    if not chart:
        out.findings.append(
            Finding(CHECK5, subject, "spec.chart.spec.chart is empty", "name the chart")
        )
        return out
    typ, url = chart_index.repo_spec(repo)
    try:
        versions = (
            chart_index.oci_tags(url, chart) if typ == "oci" else cache.get(url).versions(chart)
        )
    except chart_index.ChartNotFound as e:
        out.findings.append(
            Finding(
                CHECK5,
                subject,
                f"chart {chart!r} does not exist in HelmRepository "
                f"{src_ns}/{src_name} ({url}): {e}",
                "fix spec.chart.spec.chart (a misspelt chart?) or the repository URL",
            )
        )
        return out
    except ChartIndexError as e:
        out.notes.append(
            f"version {constraint} of chart {chart} not verified: repository "
            f"{src_ns}/{src_name} unreadable ({e}); see "
            f"test_chart_versions_available[{src_ns}/{src_name}]"
        )
        return out
    if not versions:
        out.notes.append(
            f"chart {chart} not in {src_ns}/{src_name}: see "
            f"test_chart_versions_available[{src_ns}/{src_name}]"
        )
        return out
    try:
        picked = chart_index.resolve(constraint, versions)
    except ValueError as e:
        out.findings.append(
            Finding(
                CHECK5,
                subject,
                f"spec.chart.spec.version {constraint!r} is not a valid semver constraint: {e}",
                "use a version such as 1.2.3 or a range such as >=1.2 <2",
            )
        )
        return out
    if picked is None:
        out.findings.append(
            Finding(
                CHECK5,
                subject,
                f"chart {chart} has no version matching spec.chart.spec.version {constraint!r} in "
                f"HelmRepository {src_ns}/{src_name} ({url}); newest there: "
                f"{', '.join(chart_index.latest(versions))}",
                "set spec.chart.spec.version to a published version (the one deployed today, for "
                "an in-place adoption)",
            )
        )
    else:
        out.notes.append(f"chart {chart} {constraint} resolves to {picked} in {src_ns}/{src_name}")
    return out


def _check_chart_ref(
    hr: dict[str, Any],
    subject: str,
    all_objects: list[dict[str, Any]],
    out: RefResult,
    failed_builds: list[str],
) -> None:
    """spec.chartRef (helm-controller api/v2 CrossNamespaceSourceReference): the OCIRepository or
    HelmChart it names is defined in Git; an OCIRepository's tag/semver resolves among the
    registry's tags where the registry answers (else a note saying it is not verified); an
    ExternalArtifact is named as not checked."""
    ref = (hr.get("spec") or {}).get("chartRef") or {}
    kind, name = ref.get("kind"), ref.get("name")
    ns = ref.get("namespace") or _ns(hr)
    if kind == "ExternalArtifact":
        out.notes.append(
            f"spec.chartRef is ExternalArtifact {ns}/{name}: its chart is produced "
            f"outside Git and is not checked here"
        )
        return
    src = next(
        (
            o
            for o in all_objects
            if o.get("kind") == kind and _ns(o) == ns and _meta(o).get("name") == name
        ),
        None,
    )
    if src is None:
        if failed_builds:
            raise Incomplete(
                f"spec.chartRef {kind} {ns}/{name} not found in the builds that "
                f"succeeded; the build of {', '.join(failed_builds)} failed"
            )
        out.findings.append(
            Finding(
                CHECK5,
                subject,
                f"spec.chartRef points to {kind} {ns}/{name}, which is not defined "
                f"in the GitOps repo: Flux would never fetch the chart",
                "fix spec.chartRef or add that source to Git",
            )
        )
        return
    if kind == "HelmChart":
        out.notes.append(
            f"spec.chartRef HelmChart {ns}/{name}: chart "
            f"{(src.get('spec') or {}).get('chart')} "
            f"{(src.get('spec') or {}).get('version') or '*'}"
        )
        return
    spec = src.get("spec") or {}
    url = str(spec.get("url", ""))
    sel = spec.get("layerSelector") or {}
    if sel and sel.get("mediaType") != "application/vnd.cncf.helm.chart.content.v1.tar+gzip":
        out.notes.append(
            f"OCIRepository {ns}/{name}: layerSelector.mediaType "
            f"{sel.get('mediaType')!r} is not the Helm chart layer"
        )
    if "://" not in url or url.count("/") < 3:
        out.findings.append(
            Finding(
                CHECK5,
                subject,
                f"OCIRepository {ns}/{name}: spec.url {url!r} names no chart",
                "use oci://host/path/<chart>",
            )
        )
        return
    base, chart = url.rsplit("/", 1)
    r = spec.get("ref") or {}
    constraint = r.get("tag") or r.get("semver") or "latest"
    if r.get("digest"):
        out.notes.append(f"OCIRepository {ns}/{name}: pinned by digest {r['digest']}")
        return
    try:
        tags = chart_index.oci_tags(base, chart)
    except ChartIndexError as e:
        out.notes.append(
            f"OCIRepository {ns}/{name} ({url}) {constraint}: not verified, the "
            f"registry did not answer ({e})"
        )
        return
    if r.get("tag") or constraint == "latest":
        if constraint not in tags:
            out.findings.append(
                Finding(
                    CHECK5,
                    subject,
                    f"OCIRepository {ns}/{name}: tag {constraint!r} not in {url}",
                    "use a published tag",
                )
            )
        return
    try:
        picked = chart_index.resolve(constraint, tags)
    except ValueError as e:
        out.findings.append(
            Finding(
                CHECK5,
                subject,
                f"OCIRepository {ns}/{name}: ref.semver {constraint!r} is not valid: {e}",
                "fix spec.ref.semver",
            )
        )
        return
    if picked is None:
        out.findings.append(
            Finding(
                CHECK5,
                subject,
                f"OCIRepository {ns}/{name}: no tag of {url} matches {constraint!r}",
                "fix spec.ref.semver",
            )
        )
    else:
        out.notes.append(f"OCIRepository {ns}/{name} {constraint} resolves to {picked}")


@dataclass
class RepoUse:
    repo: dict[str, Any]
    charts: dict[str, list[str]] = field(default_factory=dict)  # chart -> HelmReleases using it
    deployed: dict[str, set[str]] = field(default_factory=dict)  # chart -> deployed versions

    @property
    def id(self) -> str:
        return f"{_ns(self.repo)}/{_meta(self.repo).get('name')}"


def repository_uses(
    all_objects: list[dict[str, Any]], deployed: dict[str, dict[str, str]] | None = None
) -> list[RepoUse]:
    """Every HelmRepository in Git with the charts HelmReleases take from it.

    deployed: 'namespace/name' of a HelmRelease -> {'chart': name, 'version': deployed version}."""
    repos = helm_repositories(all_objects)
    uses = {k: RepoUse(v) for k, v in sorted(repos.items())}
    for o in all_objects:
        if o.get("kind") != "HelmRelease":
            continue
        kind, ns, name = source_ref(o)
        use = uses.get((ns, name)) if kind == "HelmRepository" else None
        chart = chart_spec(o).get("chart")
        if use is None or not chart:
            continue
        hr_id = f"{_ns(o)}/{_meta(o).get('name')}"
        use.charts.setdefault(chart, []).append(hr_id)
        d = (deployed or {}).get(hr_id)
        if d and d.get("chart") == chart and d.get("version"):
            use.deployed.setdefault(chart, set()).add(d["version"])
    return list(uses.values())


class Unreachable(Exception):
    """An OCI registry did not answer (not a 404): the caller fails naming the opt-out
    ``chart-registry``, or skips by that opt-out (plugins.gate)."""


def check_repository(use: RepoUse, cache: IndexCache) -> RefResult:
    out = RefResult()
    typ, url = chart_index.repo_spec(use.repo)
    subject = f"HelmRepository {use.id}"
    if not use.charts:
        out.notes.append(f"{subject}: no HelmRelease in Git takes a chart from it")
    if typ == "oci":
        listing: dict[str, list[str]] = {}
        for chart in use.charts:
            try:
                listing[chart] = chart_index.oci_tags(url, chart)
            except chart_index.ChartNotFound:
                listing[chart] = []  # the registry says it has no such chart: an error below
            except ChartIndexError as e:
                raise Unreachable(
                    f"{subject} is an OCI repository ({url}) and its registry's tag "
                    f"list did not answer ({e}): chart versions not checked "
                    "(no registry reachable from here)"
                ) from e
        versions_of: Callable[[str], list[str] | None] = listing.get
    else:
        try:
            index = cache.get(url)
        except ChartIndexError as e:
            out.findings.append(
                Finding(
                    CHECK6,
                    subject,
                    f"cannot read the repository index: {e}",
                    f"fix spec.url ({url}) or make the repository reachable; source-controller "
                    "would fail the same way",
                )
            )
            return out
        versions_of = index.versions
    for chart, users in sorted(use.charts.items()):
        versions = versions_of(chart) or []
        if not versions:
            out.findings.append(
                Finding(
                    CHECK6,
                    subject,
                    f"chart {chart!r} (used by {', '.join(users)}) is not in the "
                    f"repository at {url}",
                    "fix spec.chart.spec.chart or the repository URL",
                )
            )
            continue
        out.notes.append(
            f"{chart}: {len(versions)} version(s), newest "
            f"{', '.join(chart_index.latest(versions, 3))}"
        )
        for v in sorted(use.deployed.get(chart, ())):
            if v not in versions:
                out.findings.append(
                    Finding(
                        CHECK6,
                        subject,
                        f"chart {chart} {v} (deployed today) is no longer published at {url}",
                        "pin a published version in the HelmRelease knowing the adoption upgrade "
                        "will change the chart (pods may be recreated)",
                        severity="warning",
                    )
                )
    return out
