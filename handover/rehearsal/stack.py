"""The rehearsal stack: cluster + chart repository + GitOps remote (+ the seeded homelab).

``up(state_dir, inventory)`` composes, in order and idempotently:
1. ``RehearsalCluster(state_dir).up()`` (etcd, kube-apiserver, kube-controller-manager, node agent);
2. the chart repository (``chart_repo.ensure``: the stand-in charts over HTTP);
3. the GitOps remote (``git_remote.ensure``: the inventory's GitOps tree pushed to a bare repo,
   HelmRepositories pointed at the chart repository, a working clone);
4. with an inventory: the seed (``seed.seed``) and the rehearsal copy of the inventory.

The Flux stand-ins are not started here: like Flux on a live cluster, Phase 2 bootstraps them
(``handover.rehearsal.flux``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from handover.core.inventory import load
from handover.rehearsal import chart_repo, git_remote
from handover.rehearsal.cluster import RehearsalCluster
from handover.rehearsal.seed import SeedResult, chart_sources, seed


@dataclass
class RehearsalStack:
    cluster: RehearsalCluster
    inventory_path: Path | None  # the rehearsal copy of the inventory (None without inventory)
    chart_repo_url: str
    git_remote_url: str
    gitops_clone: Path | None = None
    seed_result: SeedResult | None = None

    @property
    def state_dir(self) -> Path:
        return self.cluster.state_dir


def up(
    state_dir: Path | str, inventory: Path | str | None = None, timeout: float = 180.0
) -> RehearsalStack:
    """Bring the rehearsal stack up (idempotent); seed it when an inventory is given."""
    cluster = RehearsalCluster(state_dir).up()
    tree = charts = None
    if inventory is not None:
        inv = load(inventory)  # an invalid inventory stops here, before anything is made
        tree = inv.gitops.path
        charts = chart_sources(inventory)  # the seed file's charts (None: the default)
    repo = chart_repo.ensure(cluster, charts)
    remote = git_remote.ensure(cluster.state_dir, tree, repo.url)
    result = None
    if inventory is not None:
        result = seed(cluster, inventory, cluster.state_dir, timeout=timeout)
    return RehearsalStack(
        cluster=cluster,
        inventory_path=result.inventory_path if result else None,
        chart_repo_url=repo.url,
        git_remote_url=remote.url,
        gitops_clone=Path(remote.clone),
        seed_result=result,
    )


def down(state_dir: Path | str, purge: bool = False) -> None:
    """Stop every process of the stack (services first, then the cluster); purge deletes the
    state dir."""
    RehearsalCluster(state_dir).down(purge=purge)
