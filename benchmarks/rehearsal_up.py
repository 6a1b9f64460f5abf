#!/usr/bin/env python3
"""Benchmark: how long `handover rehearsal up` takes once the binaries are cached, against its
floor measured in the same run (the kube-apiserver's own start, until /readyz answers).

Prints, over N rounds (default 3) of down -> up on one state directory:
  up (cold, state kept)   the whole cluster: etcd, apiserver, controller manager, netns pod
                          network, pod responder, node agent, Node Ready
  apiserver /readyz       from the same up's start until the apiserver answered /readyz
  ratio                   up / apiserver: what the rehearsal adds on top of the API server
  up (already up)         the idempotent second up
  down                    stop everything, remove the pod network
The target (issue 2): up under 15 s once binaries are cached.

Usage: .venv/bin/python benchmarks/rehearsal_up.py [--rounds N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handover.rehearsal.cluster import RehearsalCluster  # noqa: E402


def watch_readyz(cluster: RehearsalCluster, started: float, out: list[float],
                 stop: threading.Event) -> None:
    port = cluster.config["ports"]["kube-apiserver"]
    while not stop.is_set():
        try:
            if cluster._http_ok(f"https://127.0.0.1:{port}/readyz", verify=False):
                out.append(time.monotonic() - started)
                return
        except Exception:
            pass
        time.sleep(0.05)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fh-bench-up-") as tmp:
        cluster = RehearsalCluster(Path(tmp) / "state")
        cluster.up()  # first up: certificates, ports, etcd data (not measured)
        ups, readyz, again, downs = [], [], [], []
        try:
            for _ in range(args.rounds):
                t = time.monotonic()
                cluster.down()
                downs.append(time.monotonic() - t)
                seen: list[float] = []
                stop = threading.Event()
                t = time.monotonic()
                w = threading.Thread(target=watch_readyz, args=(cluster, t, seen, stop))
                w.start()
                cluster.up()
                ups.append(time.monotonic() - t)
                stop.set()
                w.join()
                readyz.append(seen[0] if seen else float("nan"))
                t = time.monotonic()
                cluster.up()
                again.append(time.monotonic() - t)
        finally:
            cluster.down(purge=True)
    med = statistics.median
    print(f"rounds: {args.rounds} (medians)")
    print(f"up (cold, state kept):  {med(ups):6.2f} s   (target < 15 s)")
    print(f"apiserver /readyz:      {med(readyz):6.2f} s   (the floor, same runs)")
    print(f"ratio up / apiserver:   {med(ups) / med(readyz):6.2f}")
    print(f"up (already up):        {med(again):6.2f} s")
    print(f"down:                   {med(downs):6.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
