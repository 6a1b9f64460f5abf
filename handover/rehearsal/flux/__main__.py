"""The Flux stand-ins daemon: one process running the controllers, watch-based with a periodic
resync; logs to stdout (the rehearsal cluster's logs/flux-controllers.log).

    python -m handover.rehearsal.flux --kubeconfig K [--context C] --state-dir D
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from handover.flux import rules as flux
from handover.rehearsal.flux.helm_controller import HelmController
from handover.rehearsal.flux.kustomize_controller import KustomizeController
from handover.rehearsal.flux.runtime import Api, Controller
from handover.rehearsal.flux.source import SourceController


def build(
    api: Api, state_dir: Path, resync: float, kubeconfig: str, context: str | None
) -> list[Controller]:
    """The controllers and their cross-wiring (a new source artifact requeues its consumers, as
    the upstream controllers' watches on sources do)."""
    controllers: dict[str, Controller] = {}

    def on_artifact(kind: str, ns: str, name: str) -> None:
        for ctl_kind in ("Kustomization", "HelmRelease"):
            ctl = controllers.get(ctl_kind)
            if ctl is not None:
                ctl.enqueue_sources(kind, ns, name)

    source = SourceController(api, state_dir, on_artifact)
    controllers["GitRepository"] = Controller(
        api, flux.SOURCE_API, "GitRepository", source.reconcile_git, resync
    )
    controllers["HelmRepository"] = Controller(
        api, flux.SOURCE_API, "HelmRepository", source.reconcile_helm, resync
    )
    helm = HelmController(api, state_dir, kubeconfig, context, source)
    controllers["HelmRelease"] = Controller(
        api, flux.HELM_API, "HelmRelease", helm.reconcile, resync, source_refs=helm.source_refs
    )
    kust = KustomizeController(api, state_dir, kubeconfig, context, source)
    controllers["Kustomization"] = Controller(
        api,
        flux.KUSTOMIZE_API,
        "Kustomization",
        kust.reconcile,
        resync,
        source_refs=kust.source_refs,
    )
    return list(controllers.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m handover.rehearsal.flux")
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--context")
    p.add_argument("--state-dir", required=True, type=Path)
    p.add_argument(
        "--resync",
        type=float,
        default=60.0,
        help="seconds between full relists (besides watches and spec.interval)",
    )
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(threadName)s %(message)s"
    )
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    state_dir = args.state_dir.absolute()
    state_dir.mkdir(parents=True, exist_ok=True)
    api = Api(args.kubeconfig, args.context)
    controllers = build(api, state_dir, args.resync, args.kubeconfig, args.context)
    for c in controllers:
        c.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    (state_dir / "ready").write_text(str(os.getpid()))
    logging.info("flux stand-ins running: %s", ", ".join(c.kind for c in controllers))
    stop.wait()
    for c in controllers:
        c.stopping.set()
    logging.info("flux stand-ins stopping")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
