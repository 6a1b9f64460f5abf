"""What the adoption upgrade does besides patching the release's objects: the chart's hooks it
runs, and the chart's CRDs it leaves alone.

- Hooks: helm's upgrade runs every hook annotated ``pre-upgrade`` / ``post-upgrade`` (helm
  ``pkg/action/upgrade.go`` execHook), so the adoption of a release by helm-controller runs its
  migration Jobs, certificate generators ... unless ``spec.upgrade.disableHooks`` (helm-controller
  ``internal/action/upgrade.go`` DisableHooks). The hooks are read from the same render as the
  rollout prediction (``helm upgrade --dry-run=server``: its release JSON lists them).
- CRDs: helm installs ``crds/`` on install only and never upgrades them (helm docs "Custom
  Resource Definitions", ``pkg/action/install.go`` installCRDs, nothing in upgrade.go), so a CRD
  of the chart (subcharts included, ``helm show crds``) that differs from the live one stays as it
  is live after the handover, whatever Git says; a missing one is never created.

Read-only: ``helm show crds`` needs no cluster; live CRDs are read with a GET.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from handover.core import tools
from handover.core.findings import Finding
from handover.core.inventory import Component, Inventory
from handover.flux import render
from handover.gate.hazards.adoption import helm_release_of, hr_id, missing_hr_finding
from handover.tree_diff import against_live, describe_all

if TYPE_CHECKING:
    from handover.core.kube import Kube

HOOKS = "adoption-hooks"
CRDS = "chart-crds"
UPGRADE_EVENTS = ("pre-upgrade", "post-upgrade")


def upgrade_hooks(hooks: list[render.Hook]) -> list[render.Hook]:
    """The hooks an upgrade runs, in helm's order (weight, then name)."""
    return sorted(
        (h for h in hooks if set(h.events) & set(UPGRADE_EVENTS)),
        key=lambda h: (h.weight, h.kind, h.name),
    )


def check_hooks(
    kube: Kube, inventory: Inventory, component: Component, objects: list[dict[str, Any]]
) -> list[Finding]:
    """Error listing the pre-/post-upgrade hooks the adoption upgrade will run, unless the
    HelmRelease disables them (spec.upgrade.disableHooks)."""
    if component.type != "helm" or component.release is None:
        return []
    hr = helm_release_of(component, objects)
    if hr is None:
        return [missing_hr_finding(HOOKS, component)]
    if ((hr.get("spec") or {}).get("upgrade") or {}).get("disableHooks") is True:
        return []
    try:
        r = render.rendering(kube, inventory, component, objects)
    except render.RenderError as e:
        return [
            Finding(
                HOOKS,
                hr_id(hr),
                f"cannot render the chart, so its hooks are not known: {e}",
                "fix the chart source (see test_adopted_in_place)",
            )
        ]
    hooks = upgrade_hooks(r.hooks)
    if not hooks:
        return []
    listed = "; ".join(h.describe() for h in hooks)
    return [
        Finding(
            HOOKS,
            hr_id(hr),
            f"the adoption upgrade RUNS {len(hooks)} chart hook(s) (rendered by {r.how}): {listed}",
            f"set spec.upgrade.disableHooks: true in {hr_id(hr)} for the handover (the adoption "
            f"changes nothing the hooks are for) and remove it in a later commit; or run the hooks "
            f"knowingly (they run again at every upgrade)",
        )
    ]


# --- CRDs ------------------------------------------------------------------------------------------


def show_crds(src: render.ChartSource) -> list[dict[str, Any]]:
    """The chart's CRDs, subcharts' included (``helm show crds``), offline."""
    ref = f"{src.repo_url.rstrip('/')}/{src.chart}" if src.oci else src.chart
    argv = [str(tools.helm()), "show", "crds", ref]
    if not src.oci:
        argv += ["--repo", src.repo_url]
    if src.version:
        argv += ["--version", src.version]
    with tempfile.TemporaryDirectory(prefix="handover-helm-") as tmp:
        res = tools.run(argv, env=render._helm_env(Path(tmp), None))
    if not res.ok:
        raise render.RenderError(
            f"helm show crds {src.chart} {src.version} from "
            f"{src.repo_url} failed: {res.stderr.strip()}"
        )
    return [
        d
        for d in yaml.safe_load_all(res.stdout)
        if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"
    ]


def crd_differences(chart_crd: dict[str, Any], live: dict[str, Any] | None) -> list:
    """Fields of the chart's CRD spec that differ live (live-only defaults are no difference)."""
    return against_live(chart_crd.get("spec") or {}, (live or {}).get("spec") or {}, "spec")


def check_crds(
    kube: Kube, inventory: Inventory, component: Component, objects: list[dict[str, Any]]
) -> list[Finding]:
    """Error per CRD of the chart that is missing live or differs from the live one."""
    if component.type != "helm" or component.release is None:
        return []
    hr = helm_release_of(component, objects)
    if hr is None:
        return [missing_hr_finding(CRDS, component)]
    try:
        src = render.chart_source(hr, render.source_objects(inventory, objects))
        crds = show_crds(src)
    except render.RenderError as e:
        return [
            Finding(
                CRDS,
                hr_id(hr),
                f"cannot read the chart's CRDs: {e}",
                "fix the chart source (see test_adopted_in_place)",
            )
        ]
    found = []
    for crd in crds:
        name = (crd.get("metadata") or {}).get("name")
        if crd.get("apiVersion") != "apiextensions.k8s.io/v1":
            found.append(
                Finding(
                    CRDS,
                    f"CustomResourceDefinition {name}",
                    f"the chart's crds/ holds it as {crd.get('apiVersion')}: not "
                    f"compared with the live CRD",
                    "compare it by hand",
                    severity="warning",
                )
            )
            continue
        live = kube.get(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"]
        )
        if live is None:
            found.append(
                Finding(
                    CRDS,
                    f"CustomResourceDefinition {name}",
                    f"in crds/ of chart {src.chart} {src.version} but not in the cluster: Helm "
                    f"installs crds/ only at install, the adoption upgrade will not create it",
                    "apply it yourself (kubectl apply --server-side -f <the chart's crds/>), or "
                    "manage the CRDs in a Kustomization",
                )
            )
            continue
        diffs = crd_differences(crd, live)
        if diffs:
            found.append(
                Finding(
                    CRDS,
                    f"CustomResourceDefinition {name}",
                    f"differs from crds/ of chart {src.chart} {src.version} at {len(diffs)} "
                    f"field(s): {describe_all(diffs, 8)}; Helm never upgrades CRDs, so after the "
                    f"handover the cluster keeps the live one whatever the chart says",
                    "apply the chart's CRDs yourself (kubectl apply --server-side -f the chart's "
                    "crds/), or manage them in a Kustomization (with prune disabled)",
                )
            )
    return found
