"""The real-everything rehearsal backend: a kind cluster (through pytest-kind-ng's ``KindCluster``,
import name ``pytest_kind``) with real Flux installed by ``flux install``.

For machines with a working container engine (Docker or Podman able to run privileged
containers, which kind's node containers are) and a reachable container registry (kind's node
image, Flux's controller images). Where that is missing, ``up()`` raises a HandoverError saying
which part is missing; nothing is half-created.

    handover rehearsal up --backend kind [--state-dir D]

The kubeconfig is written to ``<state_dir>/kubeconfig`` and its context renamed to
``flux-handover-rehearsal``, the same name as the process backend's, so an inventory made for one
works with the other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from handover.core import tools
from handover.core.errors import HandoverError
from handover.rehearsal.cluster import CONTEXT

CLUSTER_NAME = "flux-handover"


@dataclass
class KindResult:
    kubeconfig: Path
    context: str
    flux_installed: bool
    notes: list[str] = field(default_factory=list)


def container_engine() -> tuple[str | None, str]:
    """(engine, why): the first of docker/podman whose `info` answers, else (None, reason)."""
    reasons = []
    provider = os.environ.get("KIND_EXPERIMENTAL_PROVIDER")
    for engine in [provider] if provider else ["docker", "podman"]:
        path = shutil.which(engine)
        if not path:
            reasons.append(f"{engine}: not on PATH")
            continue
        try:
            p = subprocess.run([path, "info"], capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            reasons.append(f"{engine} info: timed out")
            continue
        if p.returncode == 0:
            return engine, ""
        last = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        reasons.append(f"`{engine} info` failed: {last}")
    return None, "; ".join(reasons)


def unavailable_reason() -> str | None:
    """Why the kind backend cannot run on this machine, or None when it may."""
    try:
        import pytest_kind  # noqa: F401
    except ImportError:
        return (
            "the kind backend needs pytest-kind-ng (pip install 'flux-handover[kind]'; "
            "import name pytest_kind)"
        )
    engine, why = container_engine()
    if engine is None:
        return (
            "no working container engine for kind (it runs each node as a privileged "
            f"container): {why}"
        )
    return None


def up(state_dir: Path, name: str = CLUSTER_NAME) -> KindResult:
    reason = unavailable_reason()
    if reason:
        raise HandoverError(
            f"rehearsal backend kind cannot run here: {reason}. Use the process "
            f"backend (`handover rehearsal up`), which needs no container engine."
        )
    from pytest_kind import KindCluster

    state_dir = Path(state_dir).absolute()
    state_dir.mkdir(parents=True, exist_ok=True)
    kubeconfig = state_dir / "kubeconfig"
    kw: dict = {"kubeconfig": kubeconfig, "kubectl_path": tools.kubectl()}
    if kind := shutil.which("kind"):
        kw["kind_path"] = Path(kind)
    cwd = os.getcwd()
    os.chdir(state_dir)  # KindCluster keeps its downloads under ./.pytest-kind
    try:
        cluster = KindCluster(name, **kw)
        try:
            cluster.create()
        except Exception as e:  # noqa: BLE001 - report whatever kind said
            raise HandoverError(
                f"creating kind cluster {name!r} failed: {e}. See "
                f"`kind create cluster --name {name}` output for the cause "
                f"(a privileged container and the kind node image are needed)"
            ) from e
    finally:
        os.chdir(cwd)
    kubectl = str(tools.kubectl())
    tools.run(
        [
            kubectl,
            "--kubeconfig",
            str(kubeconfig),
            "config",
            "rename-context",
            f"kind-{name}",
            CONTEXT,
        ],
        check=False,
    )
    notes = []
    flux = shutil.which("flux")
    installed = False
    if flux:
        tools.run(
            [flux, "install", "--kubeconfig", str(kubeconfig), "--context", CONTEXT],
            check=True,
            timeout=900,
        )
        installed = True
    else:
        notes.append(
            "flux CLI not on PATH: Flux was not installed (install the flux CLI and "
            "run `flux install --context flux-handover-rehearsal`)"
        )
    return KindResult(kubeconfig=kubeconfig, context=CONTEXT, flux_installed=installed, notes=notes)


def down(state_dir: Path, name: str = CLUSTER_NAME, purge: bool = False) -> None:
    kind = shutil.which("kind")
    if kind:
        tools.run([kind, "delete", "cluster", "--name", name], check=False)
    if purge and Path(state_dir).exists():
        shutil.rmtree(state_dir)
