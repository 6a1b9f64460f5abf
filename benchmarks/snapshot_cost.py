"""Snapshot cost against the number of pods, on a rehearsal cluster (real kube-apiserver).

    python benchmarks/snapshot_cost.py [--counts 1,10,100,1000,5000] [--state-dir DIR] [--keep]

Creates pods (labelled like one workload's pods, with a container status written through the
status subresource, so the list responses carry what a real pod list carries) in namespace
``bench``, and for each count takes ``handover.snapshot.component.take`` three times. It prints, per count:
the HTTP requests the snapshot made (counted at the API client, independently of the snapshot's
own counter), the snapshot's own count, and the median seconds. The calls must not grow with the
pod count: one list per namespace + selector. The pods carry a nodeSelector no node has, so the
rehearsal node agent leaves them alone (no responders for thousands of pods).

Starts its own cluster in a temporary state directory (or --state-dir) and stops it at the end.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handover.snapshot import component as snapshot
from handover.core.inventory import Component, Workload  # noqa: E402
from handover.core.kube import Kube  # noqa: E402
from handover.rehearsal.cluster import RehearsalCluster  # noqa: E402

NS = "bench"
SELECTOR = "app.kubernetes.io/name=bench"


def pod_body(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"bench-{i:05d}", "namespace": NS,
                         "labels": {"app.kubernetes.io/name": "bench"}},
            "spec": {"nodeSelector": {"flux-handover.io/benchmark": "no-such-node"},
                     "containers": [{"name": "app", "image": "bench:1",
                                     "ports": [{"containerPort": 8080}]}]}}


def status_body() -> dict:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"status": {"phase": "Running", "podIP": "198.18.0.1",
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0,
                                              "image": "bench:1", "imageID": "bench@sha256:0",
                                              "state": {"running": {"startedAt": now}}}]}}


def ensure_pods(kube: Kube, have: int, want: int) -> None:
    def make(i: int) -> None:
        kube.core.create_namespaced_pod(NS, pod_body(i))
        kube.core.patch_namespaced_pod_status(f"bench-{i:05d}", NS, status_body())
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(make, range(have, want)))


class CountingKube(Kube):
    """Counts every HTTP request the client sends."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.requests = 0
        orig = self.api.call_api

        def counted(*args, **kwargs):
            self.requests += 1
            return orig(*args, **kwargs)
        self.api.call_api = counted


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="1,10,100,1000,5000")
    ap.add_argument("--state-dir", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = ap.parse_args()
    counts = sorted(int(c) for c in args.counts.split(","))
    state = Path(args.state_dir or tempfile.mkdtemp(prefix="snapshot-bench-"))
    cluster = RehearsalCluster(state / "state")
    cluster.up()
    try:
        kube = CountingKube(kubeconfig=cluster.kubeconfig, context=cluster.context)
        if kube.core.list_namespace(field_selector=f"metadata.name={NS}").items == []:
            kube.core.create_namespace({"metadata": {"name": NS}})
        comp = Component("bench", "manifests", "low", "bench", namespaces=(NS,),
                         workloads=(Workload("Deployment", "bench", NS, SELECTOR),))
        print(f"{'pods':>6} {'http requests':>14} {'snapshot calls':>15} {'seconds (median)':>17}")
        have = 0
        rows = []
        for n in counts:
            t0 = time.monotonic()
            ensure_pods(kube, have, n)
            have = n
            made = time.monotonic() - t0
            secs, reqs, calls = [], set(), set()
            for _ in range(args.repeat):
                before = kube.requests
                t = time.monotonic()
                s = snapshot.take(kube, comp)
                secs.append(time.monotonic() - t)
                reqs.add(kube.requests - before)
                calls.add(s.api_calls)
                assert len(s.pods) == n, (len(s.pods), n)
            med = statistics.median(secs)
            rows.append((n, reqs, calls, med))
            print(f"{n:>6} {'/'.join(map(str, sorted(reqs))):>14} "
                  f"{'/'.join(map(str, sorted(calls))):>15} {med:>17.3f}   "
                  f"(created in {made:.1f} s)", flush=True)
        flat = len({r for row in rows for r in row[1]}) == 1
        print(f"requests per snapshot {'constant' if flat else 'NOT constant'} across "
              f"{counts[0]}..{counts[-1]} pods")
        return 0 if flat else 1
    finally:
        if not args.keep:
            cluster.down(purge=args.state_dir is None)


if __name__ == "__main__":
    raise SystemExit(main())
