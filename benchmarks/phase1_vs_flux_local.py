#!/usr/bin/env python3
"""Benchmark (a script, not a test): phase 1's offline part vs flux-local 3.2.0 `flux-local test`
on the same GitOps repository, in one run; prints both times and the ratio.

Phase 1 offline = what needs no cluster: entry-path discovery, kustomize builds of every entry
and component path (as kustomize-controller builds them), the Flux schema check of every Flux
object, and the HelmRelease reference checks (sourceRef to a HelmRepository defined in the repo,
namespaces; chart indexes are not fetched: no network in an offline run).

flux-local 3.2.0 (the last release that needs only kustomize, Python >= 3.11) is installed into
its own venv under the cache dir (`pip install flux-local==3.2.0`). It calls a `kustomize` CLI
(`kustomize build`, `kustomize cfg grep`); the standalone kustomize binary is not available from
the registries this project may use, so the script gives it a shim on PATH: `build` runs
`kubectl kustomize` (kustomize 5.5.0 inside the pinned kubectl), `cfg grep` is a small Python
filter with kustomize's semantics for `path.to.field=regex` and `--invert-match`.

Usage: python benchmarks/phase1_vs_flux_local.py [--repo examples/homelab/gitops]
       [--cluster-path clusters/homelab] [--runs 3]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handover import entry_paths, helmrelease_refs, schema_check, tools  # noqa: E402
from handover.chart_index import ChartIndexError  # noqa: E402
from handover.inventory import Component, EntryPoint, GitOps, ObjectRef  # noqa: E402
from handover.kustomize import KustomizeError  # noqa: E402

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


class _Offline:
    def get(self, url: str):
        raise ChartIndexError("offline run: chart indexes not fetched")


def phase1_offline(repo: Path, cluster_path: str, entrypoints: list[EntryPoint]) -> dict:
    """Phase 1's offline part; returns counts so the work is visible."""

    class _Inv:  # the inventory fields discovery needs
        gitops = GitOps(path=repo, branch="main", cluster_path=cluster_path,
                        entrypoints=tuple(entrypoints))
        components: tuple = ()
    paths, problems = entry_paths.discover(_Inv)  # type: ignore[arg-type]
    objects, errors = [], []
    for p in paths:
        try:
            objects.extend(entry_paths.build(repo, p.path))
        except KustomizeError as e:
            errors.append(f"{p.path}: {e.stderr.splitlines()[0] if e.stderr else e}")
    findings = schema_check.check_objects(objects)
    hrs = [o for o in objects if o.get("kind") == "HelmRelease"]
    nss = {(o.get("metadata") or {}).get("name") for o in objects if o.get("kind") == "Namespace"}
    for hr in {(o["metadata"].get("namespace", "default"), o["metadata"]["name"]): o
               for o in hrs}.values():
        m = hr["metadata"]
        comp = Component(name=m["name"], type="helm", risk="low", path=".",
                         helm_release=ObjectRef(m["name"], m.get("namespace", "default")))
        findings += helmrelease_refs.check_helmrelease(comp, [hr], objects, nss, "flux-system",
                                                       _Offline()).findings  # type: ignore
    return {"paths": len(paths), "objects": len(objects), "build_errors": errors,
            "findings": len(findings) + len(problems)}


def entrypoints_in(repo: Path, cluster_path: str) -> list[EntryPoint]:
    import yaml
    out = []
    for f in sorted((repo / cluster_path).glob("*.y*ml")):
        for d in yaml.safe_load_all(f.read_text()):
            if isinstance(d, dict) and d.get("kind") == "Kustomization" and \
                    str(d.get("apiVersion", "")).startswith("kustomize.toolkit.fluxcd.io/"):
                out.append(EntryPoint(str(f.relative_to(repo)), d["metadata"]["name"]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", default=str(ROOT / "examples/homelab/gitops"))
    ap.add_argument("--cluster-path", default="clusters/homelab")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cache-dir", default=str(tools.cache_dir() / "flux-local-3.2.0"))
    a = ap.parse_args()
    cache = Path(a.cache_dir)
    exe = ensure_flux_local(cache)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        repo = git_copy(Path(a.repo).resolve(), Path(tmp) / "repo")
        bindir = Path(tmp) / "bin"
        kustomize_shim(bindir, exe.parent / "python")
        eps = entrypoints_in(repo, a.cluster_path)
        env = {"PATH": f"{bindir}:{exe.parent}:/usr/bin:/bin", "HOME": tmp}
        argv = [str(exe), "test", "--path", a.cluster_path]
        p1_times, fl_times, summary, fl_out = [], [], {}, None
        for _ in range(a.runs):
            t = time.perf_counter()
            summary = phase1_offline(repo, a.cluster_path, eps)
            p1_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            fl_out = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True)
            fl_times.append(time.perf_counter() - t)
        p1, fl = statistics.median(p1_times), statistics.median(fl_times)
        print(f"repository: {a.repo} (cluster path {a.cluster_path}), {a.runs} run(s), medians")
        print(f"phase1 offline : {p1:6.2f} s  ({summary['paths']} paths, {summary['objects']} "
              f"objects built, schema + HelmRelease checks, {summary['findings']} finding(s))")
        print(f"flux-local test: {fl:6.2f} s  (exit {fl_out.returncode}; "
              f"{(fl_out.stdout.strip().splitlines() or ['no output'])[-1]})")
        print(f"ratio phase1/flux-local: {p1 / fl:.2f}")
        if fl_out.returncode != 0:
            print("flux-local output (tail):\n" + (fl_out.stdout + fl_out.stderr)[-2000:])
        if summary["build_errors"]:
            print("phase1 build errors:", *summary["build_errors"], sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
