"""Flux bootstrap of the inventory's cluster, and its state.

Three ways, chosen by :func:`plan`:

- rehearsal (``inventory.cluster.is_rehearsal``): the Flux stand-ins are installed
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handover.flux import rules as flux
from handover.core import progress
from handover.core import tools
from handover.core.errors import HandoverError
from handover.sources.gitops import GitOpsRepo
from handover.core.inventory import Inventory

if TYPE_CHECKING:
    from handover.core.kube import Kube
    from handover.core.mutation import Mutator

SYNC_NAME = "flux-system"
GITHUB_URL = re.compile(r"^(?:https://github\.com/|ssh://git@github\.com/|git@github\.com:)"
                        r"(?P<owner>[^/]+)/(?P<repo>[^/]+?)(?:\.git)?/?$")


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
        return bool(self.git_repository and self.kustomization and
                    flux.is_ready(self.git_repository) and flux.is_ready(self.kustomization))

    def revision(self) -> str:
        art = ((self.git_repository or {}).get("status") or {}).get("artifact") or {}
        return art.get("revision", "")

    def problems(self) -> list[str]:
        out = []
        for what, obj in (("GitRepository", self.git_repository),
                          ("Kustomization", self.kustomization)):
            if obj is None:
                out.append(f"{what} {SYNC_NAME} does not exist")
            elif not flux.is_ready(obj):
                c = flux.condition(obj, "Ready") or {}
                reason = c.get("reason", "no Ready condition")
                out.append(f"{what} {SYNC_NAME} is not Ready for generation "
                           f"{obj['metadata'].get('generation')}: {reason}: "
                           f"{c.get('message', '')}".rstrip(": "))
        return out


def sync_manifests(inventory: Inventory, url: str) -> list[dict[str, Any]]:
    """The flux-system GitRepository and Kustomization that ``flux bootstrap`` writes
    (gotk-sync.yaml), pointing at the GitOps remote, branch and cluster path."""
    ns = inventory.cluster.flux_namespace
    path = "./" + inventory.gitops.cluster_path.strip("/").removeprefix("./")
    return [
        {"apiVersion": flux.SOURCE_API, "kind": "GitRepository",
         "metadata": {"name": SYNC_NAME, "namespace": ns},
         "spec": {"interval": "1m0s", "url": url, "ref": {"branch": inventory.gitops.branch}}},
        {"apiVersion": flux.KUSTOMIZE_API, "kind": "Kustomization",
         "metadata": {"name": SYNC_NAME, "namespace": ns},
         "spec": {"interval": "10m0s", "path": path, "prune": True,
                  "sourceRef": {"kind": "GitRepository", "name": SYNC_NAME}}},
    ]


def flux_cli() -> Path | None:
    explicit = os.environ.get("HANDOVER_FLUX")
    if explicit:
        return Path(explicit) if Path(explicit).exists() else None
    found = shutil.which("flux")
    return Path(found) if found else None


DEFAULT_CONTROLLERS = ("source-controller", "kustomize-controller", "helm-controller",
                       "notification-controller")
_CLI_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def flux_cli_version(cli: Path) -> str:
    """The local flux CLI's version (``flux --version``: ``flux version 2.4.0``)."""
    res = tools.run([str(cli), "--version"], timeout=60)
    m = _CLI_VERSION.search(res.stdout if res.ok else "")
    if not m:
        raise BootstrapError(f"cannot read the flux CLI's version from `{cli} --version` "
                             f"(exit {res.returncode}: {(res.stdout + res.stderr).strip()[:200]})."
                             " Nothing was applied.")
    return ".".join(m.groups())


def check_cli_version(inventory: Inventory, cli: Path) -> str:
    """The version to install (``v2.4.0``): the inventory's fluxVersion, which the local CLI must
    match (a CLI installs its own release's manifests)."""
    want = inventory.cluster.flux_version.lstrip("v")
    have = flux_cli_version(cli)
    if have.split(".")[:len(want.split("."))] != want.split("."):
        raise BootstrapError(
            f"the flux CLI {cli} is version {have}, the inventory's cluster.fluxVersion is "
            f"{want}: phase 2 would install a Flux version phase 1 did not check. Install the "
            f"flux CLI {want} (https://fluxcd.io/flux/installation/) or change "
            "cluster.fluxVersion and run phase 1 again. Nothing was applied.")
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
            out.append(f"Deployment {ns}/{name} is not Available"
                       + (f": {avail.get('reason')}: {avail.get('message')}" if avail else ""))
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
    ns = inventory.cluster.flux_namespace
    cpath = inventory.gitops.cluster_path
    if inventory.cluster.is_rehearsal:
        url = repo.remote_url()
        return BootstrapPlan("rehearsal", [
            f"install the Flux stand-ins (namespace {ns}, CRDs, controllers"
            + "".join(f", {c}" for c in inventory.cluster.flux_components_extra) + ") of "
            f"{inventory.cluster.rehearsal_state_dir}",
            f"serve the GitOps remote {url} over HTTP on 127.0.0.1 (GitRepository URLs must be "
            "http(s)/ssh)",
            f"apply GitRepository {ns}/{SYNC_NAME} (url: that HTTP URL, branch "
            f"{inventory.gitops.branch})",
            f"apply Kustomization {ns}/{SYNC_NAME} (path ./{cpath}, prune: true)"])
    cli = flux_cli()
    if cli is None:
        raise BootstrapError(
            "the flux CLI is not installed (not on PATH, HANDOVER_FLUX unset): phase 2 needs it to "
            f"bootstrap Flux {inventory.cluster.flux_version} on {inventory.cluster.context}. "
            "Install the flux CLI of that version (https://fluxcd.io/flux/installation/), then run "
            "phase 2 again. Nothing was applied.")
    version = check_cli_version(inventory, cli)
    extra = " ".join(_version_args(inventory, version))
    gh = _github(inventory.gitops.url)
    if os.environ.get("GITHUB_TOKEN") and gh:
        owner, name = gh
        return BootstrapPlan("flux-bootstrap-github", [
            f"{cli} bootstrap github --owner {owner} --repository {name} --branch "
            f"{inventory.gitops.branch} --path {cpath} --personal {extra} (token from "
            "GITHUB_TOKEN)"], version)
    fs_dir = repo.path / cpath / "flux-system"
    if not (fs_dir / "kustomization.yaml").exists():
        why = "GITHUB_TOKEN is not set" if gh else \
            f"gitops.url {inventory.gitops.url!r} is not a GitHub repository URL"
        raise BootstrapError(
            f"cannot bootstrap: {why}, and {fs_dir}/kustomization.yaml does not exist for "
            "`flux install` + kubectl apply. Either export GITHUB_TOKEN (and set gitops.url to "
            "https://github.com/<owner>/<repo>) or commit the flux-system manifests "
            "(gotk-components.yaml, gotk-sync.yaml, kustomization.yaml) there. Nothing was "
            "applied.")
    return BootstrapPlan("flux-install", [
        f"{cli} install --namespace {ns} {extra}",
        f"kubectl apply -k {fs_dir}"], version)


def state(kube: Kube, inventory: Inventory) -> FluxState:
    ns = inventory.cluster.flux_namespace
    served = kube.has_resource(flux.KUSTOMIZE_API, "Kustomization") and \
        kube.has_resource(flux.SOURCE_API, "GitRepository")
    if not served:
        return FluxState(False, None, None, {ep.name: None for ep in inventory.gitops.entrypoints})
    return FluxState(
        True,
        kube.get(flux.SOURCE_API, "GitRepository", SYNC_NAME, ns),
        kube.get(flux.KUSTOMIZE_API, "Kustomization", SYNC_NAME, ns),
        {ep.name: kube.get(flux.KUSTOMIZE_API, "Kustomization", ep.name, ns)
         for ep in inventory.gitops.entrypoints})


def _controllers_running(kube: Kube, inventory: Inventory) -> bool:
    if controller_problems(kube, inventory):
        return False
    if not inventory.cluster.is_rehearsal:
        return True
    from handover.rehearsal import flux as standins
    from handover.rehearsal import git_remote
    from handover.rehearsal.cluster import RehearsalCluster
    cluster = RehearsalCluster(inventory.cluster.rehearsal_dir)
    return cluster.service_running(standins.SERVICE) and \
        cluster.service_running(git_remote.HTTP_SERVICE)


def sync_url(inventory: Inventory, repo: GitOpsRepo) -> str | None:
    """The URL flux-system's GitRepository clones: the rehearsal remote's HTTP URL (None until it
    is served), else gitops.url, else the checkout's remote URL."""
    if inventory.cluster.is_rehearsal:
        from handover.rehearsal import git_remote
        return git_remote.http_url(inventory.cluster.rehearsal_dir)
    return inventory.gitops.url or repo.remote_url()


def already_bootstrapped(kube: Kube, inventory: Inventory, repo: GitOpsRepo) -> bool:
    """Flux runs, and flux-system syncs this repository's branch and cluster path."""
    st = state(kube, inventory)
    if not (st.git_repository and st.kustomization and _controllers_running(kube, inventory)):
        return False
    gspec, kspec = st.git_repository.get("spec") or {}, st.kustomization.get("spec") or {}
    if inventory.cluster.is_rehearsal and gspec.get("url") != sync_url(inventory, repo):
        return False
    return (gspec.get("ref") or {}).get("branch") == inventory.gitops.branch and \
        str(kspec.get("path", "")).strip("./") == inventory.gitops.cluster_path.strip("./")


def bootstrap(mutator: Mutator, kube: Kube, inventory: Inventory, repo: GitOpsRepo) -> list[str]:
    """Bootstrap Flux (no-op when already bootstrapped). Returns what was done."""
    if already_bootstrapped(kube, inventory, repo):
        return []
    p = plan(inventory, repo, kube)
    ns = inventory.cluster.flux_namespace
    done: list[str] = []
    if p.mode == "rehearsal":
        from handover.rehearsal import flux as standins
        from handover.rehearsal.cluster import RehearsalCluster
        state_dir = inventory.cluster.rehearsal_dir
        cluster = RehearsalCluster(state_dir)
        from handover.rehearsal import git_remote
        mutator.call(p.actions[0], lambda: standins.install(
            cluster, state_dir / "flux", inventory.cluster.flux_components_extra))
        kube.dynamic.resources.invalidate_cache()  # the CRDs are new: rediscover
        done.append(p.actions[0])
        url = mutator.call(p.actions[1], lambda: git_remote.serve_http(cluster))
        done.append(p.actions[1])
        for obj in sync_manifests(inventory, url):
            mutator.apply(obj)
            done.append(f"applied {obj['kind']} {ns}/{SYNC_NAME}")
    elif p.mode == "flux-bootstrap-github":
        owner, name = _github(inventory.gitops.url)  # type: ignore[misc]
        argv = [str(flux_cli()), "bootstrap", "github", "--owner", owner, "--repository", name,
                "--branch", inventory.gitops.branch, "--path", inventory.gitops.cluster_path,
                "--personal", "--namespace", ns, *_version_args(inventory, p.version),
                *_kube_args(kube)]
        # the token stays in the environment flux inherits; argv and journal never carry it
        mutator.call(p.actions[0], lambda: tools.run(argv, check=True, timeout=900))
        done.append(p.actions[0])
    else:
        argv = [str(flux_cli()), "install", "--namespace", ns,
                *_version_args(inventory, p.version), *_kube_args(kube)]
        mutator.call(p.actions[0], lambda: tools.run(argv, check=True, timeout=900))
        fs_dir = repo.path / inventory.gitops.cluster_path / "flux-system"
        mutator.kubectl(["apply", "-k", str(fs_dir)], "the repository's flux-system manifests")
        done += p.actions
    kube.dynamic.resources.invalidate_cache()
    return done


def wait_ready(kube: Kube, inventory: Inventory, timeout: float | None = None,
               interval: float = 1.0) -> FluxState:
    """Wait until flux-system's GitRepository and Kustomization are Ready for their generation."""
    deadline = time.monotonic() + (timeout or inventory.ready_timeout)
    with progress.wait(f"Flux {inventory.cluster.flux_namespace}/flux-system Ready",
                       timeout or inventory.ready_timeout) as w:
        while True:
            st = state(kube, inventory)
            if st.ready or time.monotonic() >= deadline:
                if not st.ready:
                    w.finish(False, "; ".join(st.problems()))
                return st
            w.update("; ".join(st.problems()))
            time.sleep(interval)


def wait_controllers(kube: Kube, inventory: Inventory, timeout: float | None = None,
                     interval: float = 1.0) -> list[str]:
    """Wait until every controller Deployment is Available; the problems left at the timeout."""
    deadline = time.monotonic() + (timeout or inventory.ready_timeout)
    while True:
        problems = controller_problems(kube, inventory)
        if not problems or time.monotonic() >= deadline:
            return problems
        time.sleep(interval)
