"""Flux bootstrap of the inventory's cluster, and its state.

Three ways, chosen by :func:`plan` through the inventory's :class:`handover.target.Target`:

- rehearsal (``handover.target.Rehearsal.bootstrap``): the Flux stand-ins are installed
  (``handover.rehearsal.flux.install``: flux-system, the CRDs, the controllers), then the
  ``flux-system`` GitRepository (url: the GitOps checkout's remote, ``gitops.branch``) and the
  ``flux-system`` Kustomization (path: ``gitops.clusterPath``, prune) are server-side applied;
- live, with the ``flux`` CLI and ``GITHUB_TOKEN`` in the environment and a GitHub ``gitops.url``:
  ``flux bootstrap github --owner --repository --branch --path --personal`` (the seed's flags; the
  token reaches flux through the environment only and is never printed nor journaled);
- live, with the ``flux`` CLI but no token: ``flux install``, then the repository's
  ``<clusterPath>/flux-system`` manifests applied with kubectl (``kubectl apply -k``).

Live, both ways pass ``--version v<cluster.fluxVersion>`` and ``--components-extra`` from
``cluster.fluxComponentsExtra``; the local flux CLI's own version (``flux --version``) must match
``cluster.fluxVersion`` (major.minor, and the patch when the inventory names one) or nothing is
applied. Flux counts as running when each controller Deployment (the four defaults and the extra
components) is Available, as ``flux check`` reads them.

A live cluster without the flux CLI gets an error naming what is missing; nothing is applied.
Every mutation goes through the Mutator (journal first, --perform, context guard).

Bootstrapping an already bootstrapped cluster is a no-op (:func:`already_bootstrapped`).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handover import target as targets
from handover.core import tools, wait
from handover.core.errors import HandoverError
from handover.core.inventory import Inventory
from handover.flux import rules as flux
from handover.sources.gitops import GitOpsRepo

if TYPE_CHECKING:
    from handover.core.kube import Kube
    from handover.core.mutation import Mutator

SYNC_NAME = "flux-system"
GITHUB_URL = re.compile(
    r"^(?:https://github\.com/|ssh://git@github\.com/|git@github\.com:)"
    r"(?P<owner>[^/]+)/(?P<repo>[^/]+?)(?:\.git)?/?$"
)


class BootstrapError(HandoverError):
    pass


@dataclass
class BootstrapPlan:
    mode: str  # rehearsal | flux-bootstrap-github | flux-install
    actions: list[str] = field(default_factory=list)  # what it would do, in order
    version: str = ""  # the Flux version installed live (v2.4.0)

    def describe(self) -> str:
        return f"bootstrap Flux ({self.mode}): " + "; ".join(self.actions)


@dataclass
class FluxState:
    """What is live in the Flux namespace (read-only)."""

    crds_served: bool
    git_repository: dict[str, Any] | None
    kustomization: dict[str, Any] | None
    entrypoints: dict[str, dict[str, Any] | None]  # name -> live Kustomization

    @property
    def ready(self) -> bool:
        return bool(
            self.git_repository
            and self.kustomization
            and flux.is_ready(self.git_repository)
            and flux.is_ready(self.kustomization)
        )

    def revision(self) -> str:
        art = ((self.git_repository or {}).get("status") or {}).get("artifact") or {}
        return art.get("revision", "")

    def problems(self) -> list[str]:
        out = []
        for what, obj in (
            ("GitRepository", self.git_repository),
            ("Kustomization", self.kustomization),
        ):
            if obj is None:
                out.append(f"{what} {SYNC_NAME} does not exist")
            elif not flux.is_ready(obj):
                c = flux.condition(obj, "Ready") or {}
                reason = c.get("reason", "no Ready condition")
                out.append(
                    f"{what} {SYNC_NAME} is not Ready for generation "
                    f"{obj['metadata'].get('generation')}: {reason}: "
                    f"{c.get('message', '')}".rstrip(": ")
                )
        return out


def sync_manifests(inventory: Inventory, url: str) -> list[dict[str, Any]]:
    """The flux-system GitRepository and Kustomization that ``flux bootstrap`` writes
    (gotk-sync.yaml), pointing at the GitOps remote, branch and cluster path."""
    ns = inventory.cluster.flux_namespace
    path = "./" + inventory.gitops.cluster_path.strip("/").removeprefix("./")
    return [
        {
            "apiVersion": flux.SOURCE_API,
            "kind": "GitRepository",
            "metadata": {"name": SYNC_NAME, "namespace": ns},
            "spec": {"interval": "1m0s", "url": url, "ref": {"branch": inventory.gitops.branch}},
        },
        {
            "apiVersion": flux.KUSTOMIZE_API,
            "kind": "Kustomization",
            "metadata": {"name": SYNC_NAME, "namespace": ns},
            "spec": {
                "interval": "10m0s",
                "path": path,
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": SYNC_NAME},
            },
        },
    ]


def flux_cli() -> Path | None:
    explicit = os.environ.get("HANDOVER_FLUX")
    if explicit:
        return Path(explicit) if Path(explicit).exists() else None
    found = shutil.which("flux")
    return Path(found) if found else None


DEFAULT_CONTROLLERS = (
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
)
_CLI_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def flux_cli_version(cli: Path) -> str:
    """The local flux CLI's version (``flux --version``: ``flux version 2.4.0``)."""
    res = tools.run([str(cli), "--version"], timeout=60)
    m = _CLI_VERSION.search(res.stdout if res.ok else "")
    if not m:
        raise BootstrapError(
            f"cannot read the flux CLI's version from `{cli} --version` "
            f"(exit {res.returncode}: {(res.stdout + res.stderr).strip()[:200]})."
            " Nothing was applied."
        )
    return ".".join(m.groups())


def check_cli_version(inventory: Inventory, cli: Path) -> str:
    """The version to install (``v2.4.0``): the inventory's fluxVersion, which the local CLI must
    match (a CLI installs its own release's manifests)."""
    want = inventory.cluster.flux_version.lstrip("v")
    have = flux_cli_version(cli)
    if have.split(".")[: len(want.split("."))] != want.split("."):
        raise BootstrapError(
            f"the flux CLI {cli} is version {have}, the inventory's cluster.fluxVersion is "
            f"{want}: phase 2 would install a Flux version phase 1 did not check. Install the "
            f"flux CLI {want} (https://fluxcd.io/flux/installation/) or change "
            "cluster.fluxVersion and run phase 1 again. Nothing was applied."
        )
    return "v" + (want if want.count(".") == 2 else have)


def _version_args(inventory: Inventory, version: str) -> list[str]:
    args = ["--version", version]
    if inventory.cluster.flux_components_extra:
        args.append("--components-extra=" + ",".join(inventory.cluster.flux_components_extra))
    return args


def controllers(inventory: Inventory) -> tuple[str, ...]:
    return DEFAULT_CONTROLLERS + tuple(inventory.cluster.flux_components_extra)


def controller_problems(kube: Kube, inventory: Inventory) -> list[str]:
    """``flux check``-style: each controller Deployment in the Flux namespace exists and is
    Available (condition Available=True); one line per one that is not."""
    ns = inventory.cluster.flux_namespace
    out = []
    for name in controllers(inventory):
        dep = kube.get("apps/v1", "Deployment", name, ns)
        if dep is None:
            out.append(f"Deployment {ns}/{name} does not exist")
            continue
        conds = {c.get("type"): c for c in (dep.get("status") or {}).get("conditions") or []}
        avail = conds.get("Available") or {}
        if avail.get("status") != "True":
            out.append(
                f"Deployment {ns}/{name} is not Available"
                + (f": {avail.get('reason')}: {avail.get('message')}" if avail else "")
            )
    return out


def _github(url: str | None) -> tuple[str, str] | None:
    m = GITHUB_URL.match(url or "")
    return (m["owner"], m["repo"]) if m else None


def _kube_args(kube: Kube) -> list[str]:
    args = ["--context", kube.context]
    if kube.kubeconfig:
        args += ["--kubeconfig", kube.kubeconfig]
    return args


def plan(inventory: Inventory, repo: GitOpsRepo, kube: Kube | None = None) -> BootstrapPlan:
    """How this cluster would be bootstrapped, or a BootstrapError naming what is missing."""
    return targets.of(inventory).bootstrap_plan(inventory, repo)


def live_plan(inventory: Inventory, repo: GitOpsRepo) -> BootstrapPlan:
    """A live cluster's plan: the flux CLI (bootstrap github with a token, else install)."""
    ns = inventory.cluster.flux_namespace
    cpath = inventory.gitops.cluster_path
    cli = flux_cli()
    if cli is None:
        raise BootstrapError(
            "the flux CLI is not installed (not on PATH, HANDOVER_FLUX unset): phase 2 needs it to "
            f"bootstrap Flux {inventory.cluster.flux_version} on {inventory.cluster.context}. "
            "Install the flux CLI of that version (https://fluxcd.io/flux/installation/), then run "
            "phase 2 again. Nothing was applied."
        )
    version = check_cli_version(inventory, cli)
    extra = " ".join(_version_args(inventory, version))
    gh = _github(inventory.gitops.url)
    if os.environ.get("GITHUB_TOKEN") and gh:
        owner, name = gh
        return BootstrapPlan(
            "flux-bootstrap-github",
            [
                f"{cli} bootstrap github --owner {owner} --repository {name} --branch "
                f"{inventory.gitops.branch} --path {cpath} --personal {extra} (token from "
                "GITHUB_TOKEN)"
            ],
            version,
        )
    fs_dir = repo.path / cpath / "flux-system"
    if not (fs_dir / "kustomization.yaml").exists():
        why = (
            "GITHUB_TOKEN is not set"
            if gh
            else f"gitops.url {inventory.gitops.url!r} is not a GitHub repository URL"
        )
        raise BootstrapError(
            f"cannot bootstrap: {why}, and {fs_dir}/kustomization.yaml does not exist for "
            "`flux install` + kubectl apply. Either export GITHUB_TOKEN (and set gitops.url to "
            "https://github.com/<owner>/<repo>) or commit the flux-system manifests "
            "(gotk-components.yaml, gotk-sync.yaml, kustomization.yaml) there. Nothing was "
            "applied."
        )
    return BootstrapPlan(
        "flux-install",
        [f"{cli} install --namespace {ns} {extra}", f"kubectl apply -k {fs_dir}"],
        version,
    )


def state(kube: Kube, inventory: Inventory) -> FluxState:
    ns = inventory.cluster.flux_namespace
    served = kube.has_resource(flux.KUSTOMIZE_API, "Kustomization") and kube.has_resource(
        flux.SOURCE_API, "GitRepository"
    )
    if not served:
        return FluxState(False, None, None, {ep.name: None for ep in inventory.gitops.entrypoints})
    return FluxState(
        True,
        kube.get(flux.SOURCE_API, "GitRepository", SYNC_NAME, ns),
        kube.get(flux.KUSTOMIZE_API, "Kustomization", SYNC_NAME, ns),
        {
            ep.name: kube.get(flux.KUSTOMIZE_API, "Kustomization", ep.name, ns)
            for ep in inventory.gitops.entrypoints
        },
    )


def _controllers_running(kube: Kube, inventory: Inventory) -> bool:
    if controller_problems(kube, inventory):
        return False
    return targets.of(inventory).flux_processes_running(inventory)


def sync_url(inventory: Inventory, repo: GitOpsRepo) -> str | None:
    """The URL flux-system's GitRepository clones: the rehearsal remote's HTTP URL (None until it
    is served), else gitops.url, else the checkout's remote URL."""
    return targets.of(inventory).sync_url(inventory, repo)


def already_bootstrapped(kube: Kube, inventory: Inventory, repo: GitOpsRepo) -> bool:
    """Flux runs, and flux-system syncs this repository's branch and cluster path."""
    st = state(kube, inventory)
    if not (st.git_repository and st.kustomization and _controllers_running(kube, inventory)):
        return False
    gspec, kspec = st.git_repository.get("spec") or {}, st.kustomization.get("spec") or {}
    want_url = targets.of(inventory).expected_sync_url(inventory, repo)
    if want_url is not None and gspec.get("url") != want_url:
        return False
    return (gspec.get("ref") or {}).get("branch") == inventory.gitops.branch and str(
        kspec.get("path", "")
    ).strip("./") == inventory.gitops.cluster_path.strip("./")


def bootstrap(mutator: Mutator, kube: Kube, inventory: Inventory, repo: GitOpsRepo) -> list[str]:
    """Bootstrap Flux (no-op when already bootstrapped). Returns what was done."""
    if already_bootstrapped(kube, inventory, repo):
        return []
    done = targets.of(inventory).bootstrap(
        plan(inventory, repo, kube), mutator, kube, inventory, repo
    )
    kube.dynamic.resources.invalidate_cache()
    return done


def live_bootstrap(
    p: BootstrapPlan, mutator, kube, inventory: Inventory, repo: GitOpsRepo
) -> list[str]:
    """Run a live plan (:func:`live_plan`) with the flux CLI, through the mutator."""
    ns = inventory.cluster.flux_namespace
    done: list[str] = []
    if p.mode == "flux-bootstrap-github":
        owner, name = _github(inventory.gitops.url)  # type: ignore[misc]
        argv = [
            str(flux_cli()),
            "bootstrap",
            "github",
            "--owner",
            owner,
            "--repository",
            name,
            "--branch",
            inventory.gitops.branch,
            "--path",
            inventory.gitops.cluster_path,
            "--personal",
            "--namespace",
            ns,
            *_version_args(inventory, p.version),
            *_kube_args(kube),
        ]
        # the token stays in the environment flux inherits; argv and journal never carry it
        mutator.call(p.actions[0], lambda: tools.run(argv, check=True, timeout=900))
        done.append(p.actions[0])
    else:
        argv = [
            str(flux_cli()),
            "install",
            "--namespace",
            ns,
            *_version_args(inventory, p.version),
            *_kube_args(kube),
        ]
        mutator.call(p.actions[0], lambda: tools.run(argv, check=True, timeout=900))
        fs_dir = repo.path / inventory.gitops.cluster_path / "flux-system"
        mutator.kubectl(["apply", "-k", str(fs_dir)], "the repository's flux-system manifests")
        done += p.actions
    return done


def wait_ready(
    kube: Kube, inventory: Inventory, timeout: float | None = None, interval: float = 1.0
) -> FluxState:
    """Wait until flux-system's GitRepository and Kustomization are Ready for their generation."""
    return wait.until(
        f"Flux {inventory.cluster.flux_namespace}/flux-system Ready",
        lambda: state(kube, inventory),
        timeout=timeout or inventory.ready_timeout,
        interval=interval,
        done=lambda st: st.ready,
        message=lambda st: "; ".join(st.problems()),
    )


def wait_controllers(
    kube: Kube, inventory: Inventory, timeout: float | None = None, interval: float = 1.0
) -> list[str]:
    """Wait until every controller Deployment is Available; the problems left at the timeout."""
    return wait.until(
        "Flux controllers Available",
        lambda: controller_problems(kube, inventory),
        timeout=timeout or inventory.ready_timeout,
        interval=interval,
        done=lambda problems: not problems,
        report=False,
    )
