#!/usr/bin/env python3
"""Benchmark (a script, not a test): phase 1's offline gate vs flux-local 3.2.0 `flux-local test`
on the same GitOps repository, in one run, WHOLE PROCESSES against whole processes; prints both
times and the ratio.

Phase 1 offline = `python -m pytest suites/phase1 --offline --inventory <inventory>` (a fresh
interpreter each run, like `flux-local test`): the kustomize builds of every entry and component
path (ExternalArtifacts assembled, Kustomization patches / components / postBuild applied), the
Flux schemas, HelmRelease references, chart availability where the repository answers, and the
Flux rules that need no cluster; everything that needs the cluster is skipped.

flux-local 3.2.0 (the last release that needs only kustomize, Python >= 3.11) is installed into
its own venv under the cache dir (`pip install flux-local==3.2.0`). It calls a `kustomize` CLI
(`kustomize build`, `kustomize cfg grep`); the standalone kustomize binary is not available from
the registries this project may use, so the script gives it a shim on PATH: `build` runs
`kubectl kustomize` (kustomize 5.5.0 inside the pinned kubectl), `cfg grep` is a small Python
filter with kustomize's semantics for `path.to.field=regex` and `--invert-match`.

Usage: python benchmarks/phase1_vs_flux_local.py [--inventory examples/homelab/migration.yaml]
       [--runs 3]   (the repository and cluster path are the inventory's gitops.path / clusterPath)
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handover.core import tools

FLUX_LOCAL = "flux-local==3.2.0"

GREP_SHIM = r'''
import pathlib, re, sys, yaml
args = [a for a in sys.argv[1:] if not a.startswith("--")]
invert = "--invert-match" in sys.argv
expr = args[0]
path, _, rx = expr.partition("=")
keys = path.split(".")
out = []
if len(args) > 1:  # `cfg grep EXPR DIR`: the resource files under DIR
    docs = []
    for f in sorted(pathlib.Path(args[1]).rglob("*")):
        if f.suffix in (".yaml", ".yml") and f.is_file():
            docs.extend(yaml.safe_load_all(f.read_text()))
else:
    docs = yaml.safe_load_all(sys.stdin)
for doc in docs:
    if not doc:
        continue
    v = doc
    for k in keys:
        v = v.get(k) if isinstance(v, dict) else None
    hit = v is not None and re.search(rx, str(v)) is not None
    if hit != invert:
        out.append(doc)
sys.stdout.write(yaml.safe_dump_all(out, sort_keys=False) if out else "")
'''


def ensure_flux_local(cache: Path) -> Path:
    venv = cache / "venv"
    exe = venv / "bin" / "flux-local"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", FLUX_LOCAL], check=True)
    return exe


def kustomize_shim(bindir: Path, python: Path) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    (bindir / "grep_shim.py").write_text(GREP_SHIM)
    kubectl = tools.kubectl()
    shim = bindir / "kustomize"
    shim.write_text(f"""#!/bin/sh
if [ "$1" = build ]; then shift; exec {kubectl} kustomize "$@"; fi
if [ "$1" = cfg ] && [ "$2" = grep ]; then shift 2; exec {python} {bindir}/grep_shim.py "$@"; fi
echo "kustomize shim: unsupported: $*" >&2; exit 2
""")
    shim.chmod(0o755)


def git_copy(repo: Path, dest: Path) -> Path:
    """flux-local wants a git work tree: a committed copy of the repository."""
    shutil.copytree(repo, dest)
    env = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@x.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@x.invalid",
           "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", "-C", str(dest), *args], check=True, env=env,
                       capture_output=True)
    return dest


def phase1_offline_argv(inventory: Path, junit: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", "suites/phase1", "--offline", "--inventory",
            str(inventory), "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]


def inventory_for(src: Path, repo: Path, tmp: Path) -> Path:
    """A copy of the inventory pointing at the repository copy (backups in tmp)."""
    import yaml
    doc = yaml.safe_load(src.read_text())
    doc["gitops"]["path"] = str(repo)
    doc.setdefault("backups", {})["path"] = str(tmp / "backups")
    out = tmp / "inventory.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def junit_summary(junit: Path) -> dict:
    import xml.etree.ElementTree as ET
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    failed = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    return {"cases": len(cases), "failed": len(failed), "skipped": len(skipped),
            "passed": len(cases) - len(failed) - len(skipped)}


def main() -> int:
    import yaml
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inventory", default=str(ROOT / "examples/homelab/migration.yaml"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cache-dir", default=str(tools.cache_dir() / "flux-local-3.2.0"))
    a = ap.parse_args()
    inv_src = Path(a.inventory).resolve()
    doc = yaml.safe_load(inv_src.read_text())
    src_repo = (inv_src.parent / doc["gitops"]["path"]).resolve()
    cluster_path = doc["gitops"].get("clusterPath") or "."
    cache = Path(a.cache_dir)
    exe = ensure_flux_local(cache)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        t_dir = Path(tmp)
        repo = git_copy(src_repo, t_dir / "repo")
        inv = inventory_for(inv_src, repo, t_dir)
        bindir = t_dir / "bin"
        kustomize_shim(bindir, exe.parent / "python")
        env = {"PATH": f"{bindir}:{exe.parent}:/usr/bin:/bin", "HOME": tmp}
        argv = [str(exe), "test", "--path", cluster_path]
        p1_env = {**os.environ, "KUBECONFIG": str(t_dir / "no-kubeconfig")}
        p1_times, fl_times, summary, fl_out, p1_out = [], [], {}, None, None
        for i in range(a.runs):
            junit = t_dir / f"junit-{i}.xml"
            t = time.perf_counter()
            p1_out = subprocess.run(phase1_offline_argv(inv, junit), cwd=ROOT, env=p1_env,
                                    capture_output=True, text=True)
            p1_times.append(time.perf_counter() - t)
            summary = junit_summary(junit) if junit.exists() else {}
            t = time.perf_counter()
            fl_out = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True)
            fl_times.append(time.perf_counter() - t)
        p1, fl = statistics.median(p1_times), statistics.median(fl_times)
        print(f"repository: {src_repo} (cluster path {cluster_path}), {a.runs} run(s), medians, "
              f"whole processes")
        print(f"pytest suites/phase1 --offline: {p1:6.2f} s  (exit {p1_out.returncode}; "
              f"{summary.get('passed')} passed, {summary.get('skipped')} skipped (need the "
              f"cluster), {summary.get('failed')} failed)")
        print(f"flux-local test               : {fl:6.2f} s  (exit {fl_out.returncode}; "
              f"{(fl_out.stdout.strip().splitlines() or ['no output'])[-1]})")
        print(f"ratio phase1/flux-local: {p1 / fl:.2f}")
        if fl_out.returncode != 0:
            print("flux-local output (tail):\n" + (fl_out.stdout + fl_out.stderr)[-2000:])
        if p1_out.returncode != 0:
            print("phase 1 output (tail):\n" + (p1_out.stdout + p1_out.stderr)[-2000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
