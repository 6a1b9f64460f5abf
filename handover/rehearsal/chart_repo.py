"""The rehearsal's Helm chart repository: the stand-in charts packaged with the real ``helm package``,
indexed with ``helm repo index`` and served over HTTP on 127.0.0.1, like any chart repository::

    <state_dir>/chart-repo/           index.yaml + <chart>-<version>.tgz (what is served)
    <state_dir>/chart-repo.json       {"url", "port", "source", "digest"}
    <state_dir>/logs/chart-repo.log   the HTTP server's log

The server is a cluster service (``RehearsalCluster.start_service``), so ``down()`` stops it.
``ensure()`` is idempotent: the charts are packaged again only when their sources changed, and the
server keeps its port across ``down``/``up`` while that port is free.
"""

from __future__ import annotations

import hashlib
import json
import sys
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from handover.core import tools
from handover.core.errors import HandoverError
from handover.rehearsal.cluster import RehearsalCluster, free_port, port_open

SERVICE = "chart-repo"
EXAMPLE_CHARTS = Path(__file__).resolve().parents[2] / "examples" / "homelab" / "charts"


@dataclass(frozen=True)
class ChartRepo:
    url: str  # http://127.0.0.1:<port>
    port: int
    directory: str  # what is served
    source: str  # the chart sources packaged into it
    digest: str  # sha256 over the chart sources


def helm_env(state_dir: Path) -> dict[str, str]:
    """Helm's cache/config/data homes inside the state dir: the rehearsal never touches the
    user's Helm repositories or cache."""
    base = Path(state_dir) / "helm"
    return {
        "HELM_CACHE_HOME": str(base / "cache"),
        "HELM_CONFIG_HOME": str(base / "config"),
        "HELM_DATA_HOME": str(base / "data"),
    }


def record_path(state_dir: Path) -> Path:
    return Path(state_dir) / "chart-repo.json"


def load(state_dir: Path) -> ChartRepo | None:
    """The chart repo recorded in a state dir, or None."""
    p = record_path(state_dir)
    if not p.exists():
        return None
    return ChartRepo(**json.loads(p.read_text()))


def chart_dirs(source: Path) -> list[Path]:
    """Every chart directory (one with a Chart.yaml) directly under ``source``, sorted."""
    dirs = sorted(p.parent for p in Path(source).glob("*/Chart.yaml"))
    if not dirs:
        raise HandoverError(f"no Helm charts (*/Chart.yaml) under {source}")
    return dirs


def sources_digest(source: Path) -> str:
    """sha256 over the relative paths and contents of every file of every chart."""
    h = hashlib.sha256()
    for chart in chart_dirs(source):
        for f in sorted(p for p in chart.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(source)).encode() + b"\0")
            h.update(f.read_bytes() + b"\0")
    return h.hexdigest()


def package(source: Path, out_dir: Path, env: dict[str, str] | None = None) -> list[Path]:
    """``helm package`` every chart of ``source`` into ``out_dir`` and ``helm repo index`` it
    (relative URLs, so the index stays valid whatever port serves it). Returns the .tgz files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.tgz"):
        old.unlink()
    helm = str(tools.helm())
    for chart in chart_dirs(source):
        tools.run([helm, "package", str(chart), "--destination", str(out_dir)], env=env, check=True)
    tools.run([helm, "repo", "index", str(out_dir)], env=env, check=True)
    return sorted(out_dir.glob("*.tgz"))


def index(directory: Path) -> dict:
    """The repository's index.yaml, parsed."""
    return yaml.safe_load((Path(directory) / "index.yaml").read_text())


def _serves_index(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/index.yaml", timeout=2) as r:
        return r.status == 200 and b"apiVersion" in r.read()


def ensure(cluster: RehearsalCluster, source: Path | None = None) -> ChartRepo:
    """Package (when the sources changed) and serve the charts; returns the repo (idempotent)."""
    state_dir = cluster.state_dir
    source = Path(source or EXAMPLE_CHARTS).resolve()
    directory = state_dir / "chart-repo"
    env = helm_env(state_dir)
    digest = sources_digest(source)
    old = load(state_dir)
    if not (
        old
        and old.digest == digest
        and old.source == str(source)
        and (directory / "index.yaml").exists()
    ):
        package(source, directory, env)

    port = old.port if old else None
    if port is None or (not cluster.service_running(SERVICE) and port_open(port)):
        port = free_port()  # the recorded port is taken by something else
    url = f"http://127.0.0.1:{port}"
    repo = ChartRepo(
        url=url, port=port, directory=str(directory), source=str(source), digest=digest
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    record_path(state_dir).write_text(json.dumps(asdict(repo), indent=2) + "\n")
    cluster.start_service(
        SERVICE,
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(directory),
        ],
        env={"PYTHONUNBUFFERED": "1"},
        ready=lambda: _serves_index(url),
    )
    return repo
