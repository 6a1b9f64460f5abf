"""Scale of `handover capture` and of its replay, against the peer a person would script.

For each size N (default 10, 50, 200): a fresh rehearsal cluster gets N Helm releases of a small
chart (a ConfigMap and a Secret whose password is generated once and kept with lookup), then:

- capture: ``handover.capture.capture`` under the audited identity: wall time, API requests (the
  API server's audit log), peak RSS of the process that ran it;
- peer: ``helm list -A`` + ``helm get all`` of every release (what a person would otherwise
  script to save the releases), wall time and API requests, in the same run;
- replay: ``handover.capture.replay.up_from_capture`` into a second fresh rehearsal: wall time
  (cluster start included, printed apart) and peak RSS;
and, per metric, the growth ratio from one size to the next next to the ratio of the sizes.
Phase 1 needs an inventory of the N components and a GitOps tree for them: not measured here.

    .venv/bin/python benchmarks/capture_scale.py [--sizes 10,50,200] [--keep DIR]

Prints figures; asserts nothing (speed targets belong here, never in timed tests).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handover.core import audit
from handover.core import tools
from handover.rehearsal import chart_repo  # noqa: E402
from handover.rehearsal.cluster import AUDITED_CONTEXT, AUDITED_USER, RehearsalCluster  # noqa: E402

NS = "bench"
CHART = {
    "Chart.yaml": "apiVersion: v2\nname: benchapp\nversion: 0.1.0\n",
    "values.yaml": "greeting: hello\n",
    "templates/cm.yaml": ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
                          "data:\n  greeting: {{ .Values.greeting | quote }}\n"),
    "templates/secret.yaml": (
        '{{- $old := lookup "v1" "Secret" .Release.Namespace .Release.Name }}\n'
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n"
        "  password: {{ if $old }}{{ index $old.data \"password\" }}{{ else }}"
        "{{ randAlphaNum 24 | b64enc }}{{ end }}\n"),
}


def _in_child(fn, *args):
    """Run fn(*args) in a child process: (result, seconds, peak RSS in MiB of that child)."""
    q: mp.Queue = mp.Queue()

    def target():
        t = time.perf_counter()
        res = fn(*args)
        q.put((res, time.perf_counter() - t,
               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    p = mp.get_context("fork").Process(target=target)
    p.start()
    out = q.get()
    p.join()
    return out


def _capture(out: str, kubeconfig: str) -> int:
    from handover.capture.capture import capture
    return len(capture(out, kubeconfig=kubeconfig, context=AUDITED_CONTEXT,
                       namespaces=[NS]).releases)


def _replay(state: str, bundle: str, gitops: str) -> int:
    from handover.capture.replay import up_from_capture
    r = up_from_capture(state, bundle, gitops)
    return len(r.report.problems)


def _peer(cluster: RehearsalCluster) -> int:
    tail = ["--kubeconfig", str(cluster.audited_kubeconfig), "--kube-context", AUDITED_CONTEXT]
    h = str(tools.helm())
    rels = json.loads(tools.run([h, "list", "-A", "-o", "json", "--max", "0"] + tail,
                                check=True).stdout)
    for r in rels:
        tools.run([h, "get", "all", r["name"], "-n", r["namespace"]] + tail, check=True)
    return len(rels)


def audited_calls(cluster: RehearsalCluster, start: int) -> int:
    return len(audit.requests(cluster.audit_log, AUDITED_USER, {cluster.audit_log: start}))


def one_size(n: int, base: Path) -> dict:
    src_state, dst_state = base / f"src-{n}", base / f"dst-{n}"
    chart = base / "benchapp"
    if not chart.exists():
        for rel, text in CHART.items():
            (chart / rel).parent.mkdir(parents=True, exist_ok=True)
            (chart / rel).write_text(text)
    gitops = base / "gitops"
    gitops.mkdir(exist_ok=True)
    (gitops / "README.md").write_text("benchmark: no HelmRelease\n")
    src = RehearsalCluster(src_state).up()
    try:
        env = chart_repo.helm_env(src_state)
        for i in range(n):
            tools.run([str(tools.helm()), "install", f"r{i:03d}", str(chart), "-n", NS,
                       "--create-namespace", "--set", f"greeting=hello-{i}", "--kubeconfig",
                       str(src.kubeconfig), "--kube-context", src.context], env=env, check=True)
        start = audit.line_count(src.audit_log)
        out = base / f"bundle-{n}"
        got, cap_s, cap_mb = _in_child(_capture, str(out), str(src.audited_kubeconfig))
        cap_calls = audited_calls(src, start)
        start = audit.line_count(src.audit_log)
        t = time.perf_counter()
        _peer(src)
        peer_s = time.perf_counter() - t
        peer_calls = audited_calls(src, start)
    finally:
        src.down(purge=True)
    t = time.perf_counter()
    RehearsalCluster(dst_state).up()
    up_s = time.perf_counter() - t
    try:
        problems, rep_s, rep_mb = _in_child(_replay, str(dst_state), str(out), str(gitops))
    finally:
        RehearsalCluster(dst_state).down(purge=True)
    return {"n": n, "captured": got, "capture_s": cap_s, "capture_calls": cap_calls,
            "capture_mb": cap_mb, "peer_s": peer_s, "peer_calls": peer_calls,
            "replay_s": rep_s, "replay_cluster_up_s": up_s, "replay_mb": rep_mb,
            "replay_problems": problems}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,50,200")
    ap.add_argument("--keep", type=Path, help="work directory to keep (default: a temp dir)")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    base = a.keep or Path(tempfile.mkdtemp(prefix="capture-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in sizes:
            rows.append(one_size(n, base))
            r = rows[-1]
            print(f"N={n:4d} capture {r['capture_s']:7.2f}s {r['capture_calls']:6d} calls "
                  f"{r['capture_mb']:6.0f} MiB | peer (helm list + get all) {r['peer_s']:7.2f}s "
                  f"{r['peer_calls']:6d} calls | replay {r['replay_s']:7.2f}s "
                  f"(cluster up {r['replay_cluster_up_s']:.1f}s) {r['replay_mb']:6.0f} MiB, "
                  f"{r['replay_problems']} problems; {r['captured']} releases captured",
                  flush=True)
        for prev, cur in zip(rows, rows[1:]):
            k = cur["n"] / prev["n"]
            print(f"growth {prev['n']}->{cur['n']} (x{k:.1f}): "
                  + ", ".join(f"{m} x{cur[m] / prev[m]:.2f}" for m in
                              ("capture_s", "capture_calls", "capture_mb", "peer_s",
                               "peer_calls", "replay_s", "replay_mb") if prev[m]))
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
