"""Scale of the path a person takes before any ``--perform`` on their own cluster, against the peer
a person would otherwise script, on synthetic clusters of N Helm releases (default 10, 50, 200).

For each size N, a fresh rehearsal cluster (the "live" one) gets N Helm releases of a small chart
(a Deployment, a ConfigMap, and a Secret whose password is generated once and kept with lookup),
and a GitOps tree is written for them (one HelmRelease per release, its HelmRepository, a
Namespace, two Flux Kustomizations as the cluster's entry points). Then, each step a whole
process (what a person runs), each under the rehearsal's AUDITED identity where it reads the
cluster (so its API requests are counted from the API server's audit log):

- ``handover inventory init --gitops TREE --kube-context ...``: the draft inventory;
- ``handover capture --inventory DRAFT --out BUNDLE``: wall time, API requests, peak RSS;
- peer: ``helm list -A`` + ``helm get all`` of every release, in the same run, same identity;
- ``handover rehearsal up --from-capture BUNDLE --gitops TREE --inventory DRAFT`` into a second
  fresh rehearsal (cluster start included; the live cluster's own start is printed beside it);
  the live cluster is stopped first (one cluster at a time on a small machine);
- ``pytest suites/phase1`` against that replay (its rehearsal inventory, pointed at the audited
  identity): wall time, API requests, peak RSS, and its testcases passed/failed/skipped;

and, per metric, the growth ratio from one size to the next beside the ratio of the sizes. Peak
RSS is the largest resident set of any process in the step's process tree (``wait4``'s rusage).

    .venv/bin/python benchmarks/capture_scale.py [--sizes 10,50,200] [--keep DIR]

Prints figures; asserts nothing about speed (speed targets belong here, never in timed tests).
tests/scenarios/test_capture_scale.py runs :func:`one_size` at N=3 and checks its correctness.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handover.core import audit, tools  # noqa: E402
from handover.rehearsal import chart_repo  # noqa: E402
from handover.rehearsal.cluster import (AUDITED_CONTEXT, AUDITED_USER,  # noqa: E402
                                        RehearsalCluster)
from handover.rehearsal.seed import REHEARSAL_INVENTORY  # noqa: E402

NS = "bench"
CHART_VERSION = "0.1.0"
REPO_URL = "https://charts.bench.example/stable"  # the rehearsal points it at its chart repo
CHART = {
    "Chart.yaml": f"apiVersion: v2\nname: benchapp\nversion: {CHART_VERSION}\n",
    "values.yaml": "greeting: hello\n",
    "templates/cm.yaml": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                          "  name: {{ .Release.Name }}\n"
                          "data:\n  greeting: {{ .Values.greeting | quote }}\n"),
    "templates/secret.yaml": (
        '{{- $old := lookup "v1" "Secret" .Release.Namespace .Release.Name }}\n'
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n"
        "  password: {{ if $old }}{{ index $old.data \"password\" }}{{ else }}"
        "{{ randAlphaNum 24 | b64enc }}{{ end }}\n"),
    "templates/deployment.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n"
        "  labels:\n    app.kubernetes.io/name: benchapp\n"
        "    app.kubernetes.io/instance: {{ .Release.Name }}\n"
        "spec:\n  replicas: 1\n  selector:\n    matchLabels:\n"
        "      app.kubernetes.io/instance: {{ .Release.Name }}\n"
        "  template:\n    metadata:\n      labels:\n"
        "        app.kubernetes.io/name: benchapp\n"
        "        app.kubernetes.io/instance: {{ .Release.Name }}\n"
        "    spec:\n      containers:\n        - name: app\n"
        "          image: registry.example/benchapp:0.1.0\n"
        "          env:\n            - name: GREETING\n"
        "              valueFrom: {configMapKeyRef: {name: {{ .Release.Name }}, key: greeting}}\n"),
}
METRICS = ("init_s", "init_calls", "capture_s", "capture_calls", "capture_mb", "peer_s",
           "peer_calls", "replay_s", "replay_mb", "phase1_s", "phase1_calls", "phase1_mb")


@dataclass
class Proc:
    seconds: float
    peak_mb: float
    rc: int
    output: str


def run_process(argv: list[str], env: dict | None = None, timeout: float = 7200) -> Proc:
    """Run one whole process; its wall time, the peak RSS (MiB) of the largest process of its tree
    (``os.wait4``), its exit status and output (stdout + stderr)."""
    with tempfile.TemporaryFile("w+") as out:
        t = time.perf_counter()
        p = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                             env={**os.environ, **(env or {})})
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        secs = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return Proc(secs, ru.ru_maxrss / 1024, p.returncode, out.read())


def handover_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "handover.cli", *args]


def write_chart(dest: Path) -> Path:
    for rel, text in CHART.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    return dest


def write_gitops(dest: Path, n: int) -> Path:
    """The GitOps tree of the N releases: clusters/bench/{sources,apps}.yaml (Flux
    Kustomizations), sources/ (the HelmRepository), apps/ (the Namespace and one directory per
    HelmRelease, adopting release r<i> in namespace bench with the values it was installed with)."""
    def put(rel: str, obj) -> None:
        p = dest / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(yaml.safe_dump(obj, sort_keys=False) if not isinstance(obj, str) else obj)

    if dest.exists():
        shutil.rmtree(dest)
    git_ref = {"kind": "GitRepository", "name": "flux-system"}
    put("clusters/bench/sources.yaml", {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "sources", "namespace": "flux-system"},
        "spec": {"interval": "10m", "path": "./sources", "prune": True, "sourceRef": git_ref}})
    put("clusters/bench/apps.yaml", {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system"},
        "spec": {"interval": "10m", "path": "./apps", "prune": True, "wait": True,
                 "timeout": "5m", "dependsOn": [{"name": "sources"}], "sourceRef": git_ref}})
    put("sources/kustomization.yaml", {"apiVersion": "kustomize.config.k8s.io/v1beta1",
                                       "kind": "Kustomization", "resources": ["bench.yaml"]})
    put("sources/bench.yaml", {
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
        "metadata": {"name": "bench", "namespace": "flux-system"},
        "spec": {"interval": "1h", "url": REPO_URL}})
    names = [f"r{i:03d}" for i in range(n)]
    put("apps/kustomization.yaml", {"apiVersion": "kustomize.config.k8s.io/v1beta1",
                                    "kind": "Kustomization",
                                    "resources": ["namespace.yaml", *names]})
    put("apps/namespace.yaml", {"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": NS}})
    for i, name in enumerate(names):
        put(f"apps/{name}/kustomization.yaml", {"apiVersion": "kustomize.config.k8s.io/v1beta1",
                                                "kind": "Kustomization",
                                                "resources": ["helmrelease.yaml"]})
        put(f"apps/{name}/helmrelease.yaml", {
            "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"interval": "30m",
                     "chart": {"spec": {"chart": "benchapp", "version": CHART_VERSION,
                                        "sourceRef": {"kind": "HelmRepository", "name": "bench",
                                                      "namespace": "flux-system"}}},
                     "values": {"greeting": f"hello-{i}"}}})
    return dest


def install_releases(cluster: RehearsalCluster, chart: Path, n: int, state: Path) -> None:
    env = chart_repo.helm_env(state)

    def one(i: int) -> None:
        tools.run([str(tools.helm()), "install", f"r{i:03d}", str(chart), "-n", NS,
                   "--set", f"greeting=hello-{i}", "--kubeconfig", str(cluster.kubeconfig),
                   "--kube-context", cluster.context], env=env, check=True)

    tools.run([str(tools.kubectl()), "create", "namespace", NS, "--kubeconfig",
               str(cluster.kubeconfig), "--context", cluster.context], check=True)
    with ThreadPoolExecutor(8) as pool:  # setup, not measured
        list(pool.map(one, range(n)))


def audited_calls(cluster: RehearsalCluster, start: int) -> int:
    return len(audit.requests(cluster.audit_log, AUDITED_USER, {cluster.audit_log: start}))


def _must(step: str, p: Proc) -> Proc:
    if p.rc != 0:
        raise RuntimeError(f"{step} exited {p.rc}:\n{p.output[-4000:]}")
    return p


def junit_outcomes(path: Path) -> dict[str, int]:
    out = {"passed": 0, "failed": 0, "skipped": 0}
    if not path.exists():
        return out
    for tc in ET.parse(path).getroot().iter("testcase"):
        kind = "passed"
        for tag, k in (("failure", "failed"), ("error", "failed"), ("skipped", "skipped")):
            if tc.find(tag) is not None:
                kind = k
                break
        out[kind] += 1
    return out


def one_size(n: int, base: Path, replay: bool = True) -> dict:
    """The figures for N releases (see the module doc). Raises when a step fails. With
    ``replay=False``, only the live side: inventory init, capture and the peer."""
    src_state, dst_state = base / f"src-{n}", base / f"dst-{n}"
    chart = write_chart(base / "benchapp")
    gitops = write_gitops(base / f"gitops-{n}", n)
    draft, bundle = base / f"migration-{n}.yaml", base / f"bundle-{n}"
    for p in (draft, bundle):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    r: dict = {"n": n}
    t = time.perf_counter()
    src = RehearsalCluster(src_state).up()
    r["cluster_up_s"] = time.perf_counter() - t
    try:
        install_releases(src, chart, n, src_state)
        kc = str(src.audited_kubeconfig)
        start = audit.line_count(src.audit_log)
        p = _must("inventory init", run_process(handover_cli(
            "inventory", "init", "--gitops", str(gitops), "--kube-context", AUDITED_CONTEXT,
            "--kubeconfig", kc, "--out", str(draft))))
        r["init_s"], r["init_calls"] = p.seconds, audited_calls(src, start)
        start = audit.line_count(src.audit_log)
        p = _must("capture", run_process(handover_cli(
            "capture", "--inventory", str(draft), "--kubeconfig", kc, "--out", str(bundle))))
        r["capture_s"], r["capture_mb"] = p.seconds, p.peak_mb
        r["capture_calls"] = audited_calls(src, start)
        r["captured"] = sum(1 for line in p.output.splitlines()
                            if line.startswith("  release "))
        # the peer: what a person would otherwise script to save the releases
        tail = ["--kubeconfig", kc, "--kube-context", AUDITED_CONTEXT]
        h = str(tools.helm())
        start = audit.line_count(src.audit_log)
        t = time.perf_counter()
        rels = json.loads(_must("helm list", run_process(
            [h, "list", "-A", "-o", "json", "--max", "0", *tail])).output)
        for rel in rels:
            _must("helm get all", run_process(
                [h, "get", "all", rel["name"], "-n", rel["namespace"], *tail]))
        r["peer_s"], r["peer_calls"] = time.perf_counter() - t, audited_calls(src, start)
        r["peer_releases"] = len(rels)
    finally:
        src.down(purge=True)
    if not replay:
        return r
    try:
        p = run_process(handover_cli(
            "rehearsal", "up", "--from-capture", str(bundle), "--gitops", str(gitops),
            "--inventory", str(draft), "--state-dir", str(dst_state)))
        r["replay_s"], r["replay_mb"] = p.seconds, p.peak_mb
        r["replay_problems"] = [line.strip() for line in p.output.splitlines()
                                if line.strip().startswith("PROBLEM:")]
        r["replayed"] = sum(1 for line in p.output.splitlines()
                            if line.startswith("  replayed release "))
        _must("rehearsal up --from-capture", p)
        dst = RehearsalCluster(dst_state)
        rehearsal_inv = dst_state / REHEARSAL_INVENTORY
        data = yaml.safe_load(rehearsal_inv.read_text())
        data["cluster"]["context"] = AUDITED_CONTEXT  # phase 1 under the audited identity
        audited_inv = base / f"migration-{n}.audited.yaml"
        audited_inv.write_text(yaml.safe_dump(data, sort_keys=False))
        junit = base / f"phase1-{n}.xml"
        start = audit.line_count(dst.audit_log)
        p = run_process([sys.executable, "-m", "pytest", "suites/phase1", "--inventory",
                         str(audited_inv), "--kubeconfig", str(dst.audited_kubeconfig),
                         f"--junitxml={junit}", "-p", "no:cacheprovider", "-q",
                         "--report-dir", str(base / f"reports-{n}"),
                         "--journal", str(base / f"journal-{n}.jsonl")])
        r["phase1_s"], r["phase1_mb"], r["phase1_rc"] = p.seconds, p.peak_mb, p.rc
        r["phase1_calls"] = audited_calls(dst, start)
        r["phase1_cases"] = junit_outcomes(junit)
        r["phase1_junit"] = str(junit)
        r["phase1_tail"] = p.output[-3000:]
        r["phase1_writes"] = [str(q) for q in audit.requests(
            dst.audit_log, AUDITED_USER, {dst.audit_log: start}) if q.persisted_write]
    finally:
        RehearsalCluster(dst_state).down(purge=True)
    return r


def line(r: dict) -> str:
    live = (f"N={r['n']:4d} | inventory init {r['init_s']:6.1f}s {r['init_calls']:5d} calls | "
            f"capture {r['capture_s']:6.1f}s {r['capture_calls']:5d} calls "
            f"{r['capture_mb']:4.0f} MiB ({r['captured']} releases) | peer helm list + get all "
            f"{r['peer_s']:6.1f}s {r['peer_calls']:5d} calls")
    if "replay_s" not in r:
        return live + " | replay and phase 1 not run (--live-only)"
    c = r["phase1_cases"]
    return (live + f" | replay {r['replay_s']:6.1f}s "
            f"{r['replay_mb']:4.0f} MiB ({r['replayed']} releases, "
            f"{len(r['replay_problems'])} problems; a cluster start alone "
            f"{r['cluster_up_s']:.1f}s) | phase 1 {r['phase1_s']:6.1f}s {r['phase1_calls']:5d} "
            f"calls {r['phase1_mb']:4.0f} MiB, exit {r['phase1_rc']}, "
            f"{c['passed']}/{c['failed']}/{c['skipped']} passed/failed/skipped")


def growth(prev: dict, cur: dict) -> str:
    k = cur["n"] / prev["n"]
    return (f"growth {prev['n']}->{cur['n']} (sizes x{k:.1f}): "
            + ", ".join(f"{m} x{cur[m] / prev[m]:.2f}" for m in METRICS
                         if prev.get(m) and m in cur))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,50,200")
    ap.add_argument("--keep", type=Path, help="work directory to keep (default: a temp dir)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--previous", type=Path, help="the --json of an earlier run: growth is "
                    "also printed from its sizes to this run's")
    ap.add_argument("--live-only", action="store_true",
                    help="only inventory init, capture and the peer (no replay, no phase 1)")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    base = (a.keep or Path(tempfile.mkdtemp(prefix="capture-scale-"))).absolute()
    base.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    try:
        for n in sizes:
            rows.append(one_size(n, base, replay=not a.live_only))
            print(line(rows[-1]), flush=True)
            for p in rows[-1].get("replay_problems", []):
                print(f"   replay {p}", flush=True)
            if rows[-1].get("phase1_rc", 0) != 0:
                print(rows[-1]["phase1_tail"], flush=True)
            if a.json:
                a.json.write_text(json.dumps(rows, indent=1))
        earlier = json.loads(a.previous.read_text()) if a.previous else []
        for prev, cur in zip(earlier[-1:] + rows, rows[1:] if not earlier else rows):
            print(growth(prev, cur))
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
