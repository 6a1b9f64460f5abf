"""Where the runbook runs: a live cluster or the rehearsal cluster, chosen once.

:func:`of` picks the variant from the inventory (a rehearsal inventory, written by ``handover
rehearsal up``, names the rehearsal cluster's state directory in ``cluster.rehearsalStateDir``);
callers then ask the :class:`Target` and never branch on which one it is (the shape of
pytest-testinfra's ``backend/__init__.py``: pick the backend once, the modules call it).

What differs, one method or attribute each:

==================  ===============================  ======================================
                    :class:`Live`                     :class:`Rehearsal`
==================  ===============================  ======================================
probe_mode          ``proxy`` (API server's service   ``endpoints`` (pods answer on addresses
                    proxy: pod IPs are usually        local to this machine)
                    unreachable from a workstation)
pod_fallback        no                                yes (a Service without Endpoints is
                                                      probed through its selected pods)
bootstrap           the flux CLI: ``flux bootstrap    the Flux stand-ins installed, the GitOps
                    github`` or ``flux install`` +    remote served over HTTP, flux-system's
                    kubectl (handover.flux.bootstrap) GitRepository and Kustomization applied
Flux running        each controller Deployment        that, and the stand-ins' and the git
                    Available                         remote's processes running
sync URL checked    no (any URL flux bootstrap wrote) the rehearsal remote's HTTP URL
remove Flux         ``flux uninstall --silent``       the stand-ins uninstalled
                    (handover.chain.abort)
version bar         an old API server fails the gate  an expected failure (xfail) that says
                                                      the rehearsal's API server is v1.20
proof gaps          none                              Flux features in use that the stand-ins
                                                      do not reproduce (rehearsal.fidelity)
fidelity notes      none                              CRD adaptations, capture-replay notes
==================  ===============================  ======================================

This module and the CLI are the only places outside ``handover/rehearsal`` (and the capture /
replay code) that import it (tests/unit/test_imports.py holds that).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handover.core.findings import Finding
from handover.gate import prerequisites

if TYPE_CHECKING:
    from handover.core.inventory import Component, Inventory
    from handover.flux.bootstrap import BootstrapPlan
    from handover.sources.gitops import GitOpsRepo


@dataclass(frozen=True)
class ProofGaps:
    """What "adopted in place" on this target does not prove for the real cluster."""

    items: list[str]
    summary: str = ""


class Target:
    """The variant-independent face; :class:`Live` and :class:`Rehearsal` fill it in."""

    name = ""
    probe_mode = "proxy"
    pod_fallback = False
    describes_server_as_rehearsal = False  # findings name "the rehearsal cluster"

    # -- phase 1: the Kubernetes version bar ---------------------------------------------------
    def server_version_findings(
        self, version: prerequisites.ServerVersion, inventory: Inventory
    ) -> list[Finding]:
        return prerequisites.server_version_findings(
            version,
            inventory.cluster.flux_version,
            inventory.cluster.name,
            rehearsal=self.describes_server_as_rehearsal,
        )

    def version_bar_xfail(
        self, found: list[Finding], version: prerequisites.ServerVersion, inventory: Inventory
    ) -> str | None:
        """The reason an API server below the bar is an expected failure here, or None when it
        fails the gate (always, on a live cluster)."""
        return None

    # -- phase 2: Flux bootstrap ---------------------------------------------------------------
    def bootstrap_plan(self, inventory: Inventory, repo: GitOpsRepo) -> BootstrapPlan:
        raise NotImplementedError

    def bootstrap(
        self, plan: BootstrapPlan, mutator: Any, kube: Any, inventory: Inventory, repo: GitOpsRepo
    ) -> list[str]:
        raise NotImplementedError

    def flux_processes_running(self, inventory: Inventory) -> bool:
        """Beyond the controller Deployments: whatever else Flux needs here is running."""
        return True

    def expected_sync_url(self, inventory: Inventory, repo: GitOpsRepo) -> str | None:
        """The URL flux-system's GitRepository must clone for the cluster to count as
        bootstrapped, or None when any URL does."""
        return None

    def sync_url(self, inventory: Inventory, repo: GitOpsRepo) -> str | None:
        """The URL flux-system's GitRepository clones."""
        return inventory.gitops.url or repo.remote_url()

    # -- abort: removing Flux ------------------------------------------------------------------
    def remove_flux(self, kube: Any, mutator: Any, inventory: Inventory) -> str:
        """Remove Flux's controllers and CRDs (through the mutator); the action done."""
        raise NotImplementedError

    # -- the report ----------------------------------------------------------------------------
    def proof_gaps(self, inventory: Inventory, component: Component) -> ProofGaps:
        return ProofGaps([])

    def fidelity_notes(self) -> list[str]:
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Live(Target):
    """A real cluster: the flux CLI bootstraps and removes Flux; probes go through the API
    server."""

    name = "live"

    def bootstrap_plan(self, inventory: Inventory, repo: GitOpsRepo) -> BootstrapPlan:
        from handover.flux import bootstrap

        return bootstrap.live_plan(inventory, repo)

    def bootstrap(
        self, plan: BootstrapPlan, mutator: Any, kube: Any, inventory: Inventory, repo: GitOpsRepo
    ) -> list[str]:
        from handover.flux import bootstrap

        return bootstrap.live_bootstrap(plan, mutator, kube, inventory, repo)

    def remove_flux(self, kube: Any, mutator: Any, inventory: Inventory) -> str:
        from handover.chain import abort

        return abort.flux_uninstall(kube, mutator, inventory)


class Rehearsal(Target):
    """The rehearsal cluster of ``state_dir``: Flux is played by the stand-in controllers."""

    name = "rehearsal"
    probe_mode = "endpoints"
    pod_fallback = True
    describes_server_as_rehearsal = True

    def __init__(self, state_dir: Path | str):
        self.state_dir = Path(state_dir)

    def __repr__(self) -> str:
        return f"Rehearsal({str(self.state_dir)!r})"

    def _cluster(self) -> Any:
        from handover.rehearsal.cluster import RehearsalCluster

        return RehearsalCluster(self.state_dir)

    def version_bar_xfail(
        self, found: list[Finding], version: prerequisites.ServerVersion, inventory: Inventory
    ) -> str | None:
        if not found:
            return None
        from handover.core.findings import report
        from handover.flux import rules as flux

        need = flux.min_kubernetes(inventory.cluster.flux_version)
        return (
            f"rehearsal cluster {inventory.cluster.name!r}: the rehearsal API server is "
            f"{version.git_version}, below Flux {inventory.cluster.flux_version}'s minimum "
            f"{need[0]}.{need[1]} (expected failure on the rehearsal only; {report(found)})"
        )

    def bootstrap_plan(self, inventory: Inventory, repo: GitOpsRepo) -> BootstrapPlan:
        from handover.flux.bootstrap import SYNC_NAME, BootstrapPlan

        ns = inventory.cluster.flux_namespace
        url = repo.remote_url()
        return BootstrapPlan(
            "rehearsal",
            [
                f"install the Flux stand-ins (namespace {ns}, CRDs, controllers"
                + "".join(f", {c}" for c in inventory.cluster.flux_components_extra)
                + ") of "
                f"{self.state_dir}",
                f"serve the GitOps remote {url} over HTTP on 127.0.0.1 (GitRepository URLs must be "
                "http(s)/ssh)",
                f"apply GitRepository {ns}/{SYNC_NAME} (url: that HTTP URL, branch "
                f"{inventory.gitops.branch})",
                f"apply Kustomization {ns}/{SYNC_NAME} (path ./{inventory.gitops.cluster_path}, "
                "prune: true)",
            ],
        )

    def bootstrap(
        self, plan: BootstrapPlan, mutator: Any, kube: Any, inventory: Inventory, repo: GitOpsRepo
    ) -> list[str]:
        from handover.flux.bootstrap import SYNC_NAME, sync_manifests
        from handover.rehearsal import flux as standins
        from handover.rehearsal import git_remote

        cluster = self._cluster()
        ns = inventory.cluster.flux_namespace
        done: list[str] = []
        mutator.call(
            plan.actions[0],
            lambda: standins.install(
                cluster, self.state_dir / "flux", inventory.cluster.flux_components_extra
            ),
        )
        kube.dynamic.resources.invalidate_cache()  # the CRDs are new: rediscover
        done.append(plan.actions[0])
        url = mutator.call(plan.actions[1], lambda: git_remote.serve_http(cluster))
        done.append(plan.actions[1])
        for obj in sync_manifests(inventory, url):
            mutator.apply(obj)
            done.append(f"applied {obj['kind']} {ns}/{SYNC_NAME}")
        return done

    def flux_processes_running(self, inventory: Inventory) -> bool:
        from handover.rehearsal import flux as standins
        from handover.rehearsal import git_remote

        cluster = self._cluster()
        return bool(
            cluster.service_running(standins.SERVICE)
            and cluster.service_running(git_remote.HTTP_SERVICE)
        )

    def expected_sync_url(self, inventory: Inventory, repo: GitOpsRepo) -> str | None:
        return self.sync_url(inventory, repo)

    def sync_url(self, inventory: Inventory, repo: GitOpsRepo) -> str | None:
        """The rehearsal remote's HTTP URL (None until it is served)."""
        from handover.rehearsal import git_remote

        return git_remote.http_url(self.state_dir)

    def remove_flux(self, kube: Any, mutator: Any, inventory: Inventory) -> str:
        from handover.rehearsal import flux as standins

        action = (
            f"uninstall the Flux stand-ins (controllers, CRDs, namespace "
            f"{inventory.cluster.flux_namespace}) of {self.state_dir}"
        )
        mutator.call(action, lambda: standins.uninstall(self._cluster(), self.state_dir / "flux"))
        return action

    def proof_gaps(self, inventory: Inventory, component: Component) -> ProofGaps:
        from handover.rehearsal import fidelity

        gaps = fidelity.gaps_for(inventory, component)
        return ProofGaps([str(g) for g in gaps], fidelity.summary(gaps) if gaps else "")

    def fidelity_notes(self) -> list[str]:
        return rehearsal_fidelity_notes(self.state_dir)


def rehearsal_fidelity_notes(state_dir: Path | str) -> list[str]:
    """The run-level fidelity notes of a rehearsal: every CRD adaptation the rehearsal's API
    server needed (handover.rehearsal.crd_adapter.load_notes, by CRD and field) and the notes of
    a replay of a capture (``<state_dir>/capture-replay.json``: subcharts not stored, frozen
    charts, volume data...), each once, in that order. Empty for a state dir with neither."""
    from handover.rehearsal import crd_adapter

    out = [f"CRD adapted: {n.line()}" for n in crd_adapter.load_notes(state_dir)]
    try:
        replay = json.loads((Path(state_dir) / "capture-replay.json").read_text())
    except (OSError, ValueError):
        replay = {}
    for n in replay.get("notes") or []:
        line = n if str(n).startswith("CRD adapted: ") else f"capture replay: {n}"
        if line not in out:
            out.append(line)
    return out


def of(inventory: Any) -> Target:
    """The target of this inventory: the rehearsal cluster when the inventory names its state
    directory (``cluster.rehearsalStateDir``), else the live cluster. The one place that
    decides."""
    state_dir = getattr(inventory.cluster, "rehearsal_state_dir", None)
    return Live() if state_dir is None else Rehearsal(state_dir)
