"""Flux controller stand-ins for the rehearsal cluster (no Flux binary can be had on this machine).

``install(cluster_or_kubeconfig, state_dir)`` does what ``flux install`` does for the migration:
namespace ``flux-system``, the four CRDs (Established), the controller Deployments as API objects
(their pods are made Running by the rehearsal node agent), and starts the one daemon process that
runs the source, kustomize and helm controller stand-ins (``python -m handover.rehearsal.flux``).
Idempotent. ``uninstall`` stops the daemon and removes what install created (CRDs last; custom
resources go with them, as with ``flux uninstall``).

What is reproduced and what is not: docs/flux-standins.md.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from handover.core.errors import HandoverError
from handover.rehearsal.flux import crds
from handover.rehearsal.flux.runtime import Api

SERVICE = "flux-controllers"
NAMESPACE = "flux-system"
FIELD_MANAGER = "flux-install"
# Flux 2.4.0 component versions (the example inventory's fluxVersion).
FLUX_VERSION = "v2.4.0"
COMPONENTS = {
    "source-controller": "v1.4.1",
    "kustomize-controller": "v1.4.0",
    "helm-controller": "v1.1.0",
    "notification-controller": "v1.4.0",
}
# `flux install --components-extra` (Flux 2.4.0 versions): Deployments recorded like the others
# (their pods Running, they do nothing), so phase 2's controller check sees what the live
# bootstrap would install.
EXTRA_COMPONENTS = {
    "image-reflector-controller": "v0.33.0",
    "image-automation-controller": "v0.39.0",
}


def _target(cluster_or_kubeconfig: Any) -> tuple[str, str | None, Any]:
    if hasattr(cluster_or_kubeconfig, "kubeconfig") and hasattr(
        cluster_or_kubeconfig, "start_service"
    ):
        return (
            str(cluster_or_kubeconfig.kubeconfig),
            cluster_or_kubeconfig.context,
            cluster_or_kubeconfig,
        )
    return str(cluster_or_kubeconfig), None, None


def manifests(components_extra: tuple[str, ...] | list[str] = ()) -> list[dict[str, Any]]:
    """The non-CRD objects a ``flux install`` leaves in flux-system (the subset checks look for);
    ``components_extra`` as ``--components-extra``."""
    labels = {
        "app.kubernetes.io/instance": NAMESPACE,
        "app.kubernetes.io/part-of": "flux",
        "app.kubernetes.io/version": FLUX_VERSION,
    }
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": NAMESPACE,
                "labels": {**labels, "pod-security.kubernetes.io/warn": "restricted"},
            },
        }
    ]
    unknown = [c for c in components_extra if c not in EXTRA_COMPONENTS]
    if unknown:
        raise HandoverError(
            f"unknown extra Flux component(s) {', '.join(unknown)}; known: "
            f"{', '.join(EXTRA_COMPONENTS)}"
        )
    wanted = {**COMPONENTS, **{c: EXTRA_COMPONENTS[c] for c in components_extra}}
    for name, version in wanted.items():
        sel = {"app": name}
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            }
        )
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": name,
                    "namespace": NAMESPACE,
                    "labels": {
                        **labels,
                        "app.kubernetes.io/component": name,
                        "control-plane": "controller",
                    },
                },
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": sel},
                    "template": {
                        "metadata": {"labels": sel},
                        "spec": {
                            "serviceAccountName": name,
                            "containers": [
                                {
                                    "name": "manager",
                                    "image": f"ghcr.io/fluxcd/{name}:{version}",
                                    "args": [
                                        "--events-addr=http://notification-controller."
                                        f"{NAMESPACE}.svc.cluster.local./",
                                        "--watch-all-namespaces=true",
                                        "--log-level=info",
                                    ],
                                    "ports": [
                                        {
                                            "containerPort": 8080,
                                            "name": "http-prom",
                                            "protocol": "TCP",
                                        },
                                        {
                                            "containerPort": 9440,
                                            "name": "healthz",
                                            "protocol": "TCP",
                                        },
                                    ],
                                }
                            ],
                        },
                    },
                },
            }
        )
    out.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "source-controller",
                "namespace": NAMESPACE,
                "labels": {**labels, "control-plane": "controller"},
            },
            "spec": {
                "selector": {"app": "source-controller"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            },
        }
    )
    return out


def _wait_established(api: Api, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    pending = set(crds.crd_names())
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            crd = api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
            conds = {
                c["type"]: c["status"]
                for c in ((crd or {}).get("status") or {}).get("conditions") or []
            }
            if conds.get("Established") == "True":
                pending.discard(name)
        if pending:
            time.sleep(0.2)
    if pending:
        raise HandoverError(
            f"Flux stand-in CRDs not Established after {timeout:.0f}s: {', '.join(sorted(pending))}"
        )
    api.dyn.resources.invalidate_cache()


def controllers_argv(kubeconfig: str, context: str | None, state_dir: Path) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "handover.rehearsal.flux",
        "--kubeconfig",
        kubeconfig,
        "--state-dir",
        str(state_dir),
    ]
    if context:
        argv += ["--context", context]
    return argv


def _ready_file(state_dir: Path) -> Path:
    return state_dir / "ready"


def install(
    cluster_or_kubeconfig: Any,
    state_dir: str | Path,
    components_extra: tuple[str, ...] | list[str] = (),
) -> dict[str, Any]:
    """Install the Flux stand-ins (idempotent). ``state_dir``: where the controllers keep
    artifacts, charts and their ready marker; ``components_extra`` as ``flux install
    --components-extra`` (Deployments only). Returns what was installed."""
    kubeconfig, context, cluster = _target(cluster_or_kubeconfig)
    state_dir = Path(state_dir).absolute()
    state_dir.mkdir(parents=True, exist_ok=True)
    api = Api(kubeconfig, context)
    for crd in crds.all_crds():
        api.apply(crd, FIELD_MANAGER)
    _wait_established(api)
    for obj in manifests(components_extra):
        api.apply(obj, FIELD_MANAGER)
    argv = controllers_argv(kubeconfig, context, state_dir)
    ready = _ready_file(state_dir)

    if cluster is not None:

        def is_ready() -> bool:
            pid = cluster.pid(SERVICE)
            return ready.exists() and pid is not None and ready.read_text().strip() == str(pid)

        pid = cluster.start_service(
            SERVICE, argv, env={"PYTHONUNBUFFERED": "1"}, ready=is_ready, timeout=60.0
        )
    else:
        pid = _start_detached(argv, state_dir)
    return {
        "crds": crds.crd_names(),
        "namespace": NAMESPACE,
        "pid": pid,
        "deployments": list(COMPONENTS) + list(components_extra),
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _start_detached(argv: list[str], state_dir: Path) -> int:
    """Without a RehearsalCluster object: run the daemon ourselves (pid file in state_dir)."""
    pidfile = state_dir / "controllers.pid"
    if pidfile.exists():
        pid = int(pidfile.read_text())
        if _pid_alive(pid):
            return pid
    ready = _ready_file(state_dir)
    ready.unlink(missing_ok=True)
    with open(state_dir / "controllers.log", "ab") as logf:
        p = subprocess.Popen(
            argv,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    pidfile.write_text(str(p.pid))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text().strip() == str(p.pid):
            return p.pid
        if p.poll() is not None:
            raise HandoverError(
                f"Flux stand-ins exited ({p.returncode}); see {state_dir / 'controllers.log'}"
            )
        time.sleep(0.1)
    raise HandoverError(f"Flux stand-ins not ready after 60s; see {state_dir / 'controllers.log'}")


def uninstall(cluster_or_kubeconfig: Any, state_dir: str | Path) -> None:
    """Stop the daemon, delete the flux-system objects and the CRDs (like ``flux uninstall``,
    which also removes the finalizers of the custom resources first, so nothing is pruned)."""
    kubeconfig, context, cluster = _target(cluster_or_kubeconfig)
    state_dir = Path(state_dir).absolute()
    if cluster is not None:
        cluster.stop_service(SERVICE)
    else:
        pidfile = state_dir / "controllers.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text())
            if _pid_alive(pid):
                os.killpg(pid, signal.SIGTERM)
            pidfile.unlink()
    api = Api(kubeconfig, context)
    for kind in crds.KINDS:
        from handover.flux import schema as flux_schema

        info = flux_schema.KINDS[kind]
        try:
            items = api.list(info.api_version, kind)
        except Exception:  # noqa: BLE001 - CRD already gone
            items = []
        for it in items:
            if it["metadata"].get("finalizers"):
                api.set_finalizers(it, [])
    for obj in reversed(manifests()):
        if obj["kind"] != "Namespace":
            api.delete(
                obj["apiVersion"],
                obj["kind"],
                obj["metadata"]["name"],
                obj["metadata"].get("namespace"),
            )
    for name in crds.crd_names():
        api.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
    api.delete("v1", "Namespace", NAMESPACE)
