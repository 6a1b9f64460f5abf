"""Where the rehearsal cluster's server binaries come from.

- ``kube-apiserver`` and ``kube-controller-manager`` (v1.20.2, the newest API server that builds
  here from a Debian source package): from ``KUBEBUILDER_ASSETS`` when that directory holds both
  (the envtest convention), else from the cache ``<cache>/kube/v1.20.2``, built there once by
  ``scripts/build-kube-binaries.sh`` when absent (``ensure_kube_binaries``).
- ``etcd``: from ``HANDOVER_ETCD``, else ``PATH`` (Debian package ``etcd-server``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from handover.core import progress, tools
from handover.core.errors import HandoverError, ToolNotFound

KUBE_VERSION = "v1.20.2"
KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager")
BUILD_SCRIPT = Path(__file__).parent / "scripts" / "build-kube-binaries.sh"


def _has_all(d: Path) -> bool:
    return all((d / b).is_file() and os.access(d / b, os.X_OK) for b in KUBE_BINARIES)


def cache_kube_dir() -> Path:
    return tools.cache_dir() / "kube" / KUBE_VERSION


def kube_binaries() -> Path:
    """Directory holding kube-apiserver and kube-controller-manager; raises ToolNotFound."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and _has_all(Path(assets)):
        return Path(assets)
    cached = cache_kube_dir()
    if _has_all(cached):
        return cached
    where = f"KUBEBUILDER_ASSETS={assets} has no {' + '.join(KUBE_BINARIES)}; " if assets else ""
    raise ToolNotFound(
        f"{where}kube-apiserver/kube-controller-manager {KUBE_VERSION} not found in {cached}: "
        f"build them once with `{BUILD_SCRIPT} {cached}` (about 5 minutes on 2 cores, needs the "
        f"Debian source package, see docs/rehearsal.md), or point KUBEBUILDER_ASSETS at a "
        f"directory that has both binaries"
    )


def ensure_kube_binaries(log: Path | None = None) -> Path:
    """Like kube_binaries(), but builds into the cache when they are missing."""
    try:
        return kube_binaries()
    except ToolNotFound:
        pass
    out = cache_kube_dir()
    log = log or (tools.cache_dir() / "kube" / f"build-{KUBE_VERSION}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log, "ab") as f,
        progress.wait(
            f"building kube-apiserver/kube-controller-manager {KUBE_VERSION} (log {log})"
        ) as w,
    ):
        p = subprocess.Popen(
            ["bash", str(BUILD_SCRIPT), str(out)], stdout=f, stderr=subprocess.STDOUT
        )
        while p.poll() is None:
            w.update(_last_line(log))
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        if p.returncode != 0:
            w.finish(False, f"exit {p.returncode}")
    if p.returncode != 0 or not _has_all(out):
        raise HandoverError(
            f"building kube binaries {KUBE_VERSION} into {out} failed (exit {p.returncode}); "
            f"see {log}"
        )
    return out


def _last_line(log: Path) -> str:
    """The build log's last line (what the build does now), for the progress line."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 400))
            lines = f.read().decode(errors="replace").strip().splitlines()
        return lines[-1][:160] if lines else ""
    except OSError:
        return ""


def etcd() -> Path:
    env = os.environ.get("HANDOVER_ETCD")
    if env:
        if not Path(env).is_file():
            raise ToolNotFound(f"HANDOVER_ETCD={env} does not exist")
        return Path(env)
    found = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").is_file() else None)
    if not found:
        raise ToolNotFound(
            "etcd not found on PATH: install it with `apt-get install -y etcd-server` "
            "(Debian 12 ships etcd 3.4), or set HANDOVER_ETCD to an etcd binary"
        )
    return Path(found)


def openssl() -> Path:
    found = shutil.which("openssl")
    if not found:
        raise ToolNotFound(
            "openssl not found on PATH: `apt-get install -y openssl` (used to make "
            "the rehearsal cluster's CA, serving certificate and service-account keys)"
        )
    return Path(found)
