"""Small builders for the stand-ins' own tests: a local Helm chart repository over HTTP, charts
made in a temp dir, a bare git remote served over (dumb) HTTP, and polling. No pytest here."""

from __future__ import annotations

import functools
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from handover.core import tools


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # noqa: D401 - silence
        pass


class HttpDir:
    """Serve a directory on 127.0.0.1 (random port) from a thread."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  labels: {app: {{ .Release.Name }}}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
      annotations: {greeting: {{ .Values.greeting | quote }}}
    spec:
      containers:
        - name: app
          image: "{{ .Values.image }}"
          ports: [{containerPort: 8080, protocol: TCP}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  greeting: {{ .Values.greeting | quote }}
"""

BROKEN = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-Not_A_Valid_Name
data: {}
"""


class ChartRepo:
    """A Helm chart repository over HTTP with charts made on the fly (helm package + repo index)."""

    def __init__(self, root: Path):
        self.root = root
        self.http = HttpDir(root / "repo")
        self.url = self.http.url

    def add(
        self,
        name: str,
        version: str,
        values: dict[str, Any] | None = None,
        broken: bool = False,
        templates: dict[str, str] | None = None,
        chart_label: bool = False,
        files: dict[str, str] | None = None,
    ) -> None:
        """``broken``: a ConfigMap with an invalid name (the API server refuses it: helm writes
        a failed release); ``templates``: extra template files; ``chart_label``: the pod template
        carries ``helm.sh/chart: <name>-<version>`` as many upstream charts do."""
        src = self.root / "src" / f"{name}-{version}"
        (src / "templates").mkdir(parents=True, exist_ok=True)
        (src / "Chart.yaml").write_text(
            yaml.safe_dump(
                {"apiVersion": "v2", "name": name, "version": version, "appVersion": version}
            )
        )
        (src / "values.yaml").write_text(
            yaml.safe_dump(
                values or {"replicas": 1, "greeting": "hello", "image": "example/app:1.0"}
            )
        )
        app = DEPLOYMENT
        if chart_label:
            app = app.replace(
                "labels: {app: {{ .Release.Name }}}\n      annotations",
                "labels: {app: {{ .Release.Name }}, helm.sh/chart: "
                '{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" '
                '"_" | trunc 63 | quote }}}\n      annotations',
            )
            assert app != DEPLOYMENT
        (src / "templates" / "app.yaml").write_text(app)
        for fname, text in (files or {}).items():
            (src / fname).parent.mkdir(parents=True, exist_ok=True)
            (src / fname).write_text(text)
        for fname, text in (templates or {}).items():
            (src / "templates" / fname).write_text(text)
        if broken:
            (src / "templates" / "broken.yaml").write_text(BROKEN)
        helm = str(tools.helm())
        subprocess.run(
            [helm, "package", str(src), "-d", str(self.http.root)], check=True, capture_output=True
        )
        subprocess.run(
            [helm, "repo", "index", str(self.http.root), "--url", self.url],
            check=True,
            capture_output=True,
        )

    def close(self) -> None:
        self.http.close()


class GitRemote:
    """A bare git repository served over dumb HTTP, with a work tree to commit from."""

    def __init__(self, root: Path, branch: str = "main"):
        self.root = root
        self.branch = branch
        self.bare = root / "srv" / "repo.git"
        self.work = root / "work"
        self.bare.parent.mkdir(parents=True, exist_ok=True)
        self._git("init", "--bare", "-q", "-b", branch, str(self.bare))
        self._git("init", "-q", "-b", branch, str(self.work))
        self._git("-C", str(self.work), "remote", "add", "origin", str(self.bare))
        self.http = HttpDir(root / "srv")
        self.url = f"{self.http.url}/repo.git"

    @staticmethod
    def _git(*args: str) -> str:
        return subprocess.run(
            [
                "git",
                "-c",
                "user.name=rehearsal",
                "-c",
                "user.email=rehearsal@example.invalid",
                *args,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def write(self, files: dict[str, str | None], message: str = "update") -> str:
        """Write (or delete, value None) files, commit, push; returns the commit sha."""
        for rel, text in files.items():
            p = self.work / rel
            if text is None:
                p.unlink(missing_ok=True)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(text)
        self._git("-C", str(self.work), "add", "-A")
        self._git("-C", str(self.work), "commit", "-q", "--allow-empty", "-m", message)
        self._git("-C", str(self.work), "push", "-q", "origin", self.branch)
        self._git("-C", str(self.bare), "update-server-info")
        return self._git("-C", str(self.work), "rev-parse", "HEAD")

    def close(self) -> None:
        self.http.close()


def wait_for(
    fn: Callable[[], Any], timeout: float = 60.0, interval: float = 0.3, what: str = "condition"
) -> Any:
    """Poll ``fn`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as e:  # noqa: BLE001 - not there yet
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
