"""source-controller stand-in: GitRepository and HelmRepository (source.toolkit.fluxcd.io/v1).

Behaviour from source-controller internal/controller/gitrepository_controller.go and
helmrepository_controller.go:
- GitRepository: fetch spec.url at spec.ref (branch, default ``master``; tag; commit), store the
  tree as a tarball artifact, status.artifact.revision ``<branch>@sha1:<sha>`` (``<tag>@sha1:`` /
  ``sha1:<sha>`` for a commit), digest/path/url/size/lastUpdateTime, Ready and ArtifactInStorage
  conditions with observedGeneration; a fetch failure keeps the last artifact and sets Ready False
  (reason GitOperationFailed) with FetchFailed True; requeue after spec.interval; suspend stops it;
  reconcile.fluxcd.io/requestedAt -> status.lastHandledReconcileAt; finalizer finalizers.fluxcd.io
  (delete removes the stored artifacts).
- HelmRepository (type default): fetch ``<url>/index.yaml`` over HTTP, store it as the artifact
  (revision = sha256 digest of the index), status.url, Ready. type ``oci``: a static object, the
  controller resets its status and removes its finalizer (migrationToStatic); no registry is used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from handover.flux import rules as flux
from handover.rehearsal import fidelity
from handover.rehearsal.flux.runtime import (
    Api,
    Obj,
    handled_reconcile_request,
    log,
    now_rfc3339,
    parse_duration,
    remove_condition,
    set_condition,
)

ARTIFACT_HOST = "http://source-controller.flux-system.svc.cluster.local."


class Unemulated(Exception):
    """A feature in use that the stand-in refuses (Ready False UnemulatedFeature)."""


def sourceignore_files(paths: str | list[str]) -> list[str]:
    """The ``.sourceignore`` files of a tree listing (one path a line)."""
    lines = paths.splitlines() if isinstance(paths, str) else paths
    return [p for p in lines if p.rsplit("/", 1)[-1] == ".sourceignore"]


def commit_revision(label: str, sha: str) -> str:
    """source-controller gitrepository_controller.go commitReference: ``ref.name`` ->
    Commit.AbsoluteReference (the full ref, ``refs/pull/1/head@sha1:<sha>``); otherwise
    Commit.String (``<branch>@sha1:<sha>``, ``<tag>@sha1:<sha>``, a bare commit
    ``sha1:<sha>``). ``label`` is what _fetch returns: the full ref name for ``ref.name``, the
    branch / tag name otherwise, '' for a bare commit."""
    return f"{label}@sha1:{sha}" if label else f"sha1:{sha}"


class SourceController:
    def __init__(
        self, api: Api, state_dir: Path, on_artifact: Callable[[str, str, str], None] | None = None
    ):
        self.api = api
        self.storage = state_dir / "artifacts"
        self.git_cache = state_dir / "git"
        self.on_artifact = on_artifact or (lambda kind, ns, name: None)

    # -- artifact lookup for the other controllers ------------------------------------------------
    def artifact_file(self, artifact: Obj | None) -> Path | None:
        if not artifact or not artifact.get("path"):
            return None
        p = self.storage / artifact["path"]
        return p if p.exists() else None

    # -- GitRepository ---------------------------------------------------------------------------
    def reconcile_git(self, ns: str, name: str) -> float | None:
        obj = self.api.get(flux.SOURCE_API, "GitRepository", name, ns)
        if obj is None:
            return None
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            shutil.rmtree(self.storage / "gitrepository" / ns / name, ignore_errors=True)
            shutil.rmtree(self.git_cache / ns / name, ignore_errors=True)
            fins = [f for f in meta.get("finalizers") or [] if f != flux.FINALIZER]
            if fins != (meta.get("finalizers") or []):
                self.api.set_finalizers(obj, fins)
            return None
        spec = obj.get("spec") or {}
        if spec.get("suspend"):
            log.info("GitRepository %s/%s suspended", ns, name)
            return None
        if flux.FINALIZER not in (meta.get("finalizers") or []):
            obj = self.api.set_finalizers(obj, (meta.get("finalizers") or []) + [flux.FINALIZER])
            if obj is None:
                return None
        interval = parse_duration(spec.get("interval"), 60)
        status = dict(obj.get("status") or {})
        handled_reconcile_request(obj, status)
        old_rev = (status.get("artifact") or {}).get("revision")
        try:
            label, sha, ref_desc = self._fetch(ns, name, spec)
            revision = commit_revision(label, sha)
            ignores = sourceignore_files(
                self._git("ls-tree", "-r", "--name-only", sha, cwd=self.git_cache / ns / name)
            )
            if ignores:
                raise Unemulated(
                    "the rehearsal's source-controller stand-in does not emulate "
                    f".sourceignore ({', '.join(ignores[:5])}; source-controller "
                    "internal/controller/gitrepository_controller.go, fluxcd/pkg sourceignore): "
                    "the artifact would hold files the real one excludes"
                )
            if old_rev != revision or self.artifact_file(status.get("artifact")) is None:
                status["artifact"] = self._store_git(ns, name, sha, revision)
            remove_condition(status, "FetchFailed")
            set_condition(
                status,
                obj,
                "ArtifactInStorage",
                True,
                "Succeeded",
                f"stored artifact for revision '{revision}'",
            )
            set_condition(
                status,
                obj,
                "Ready",
                True,
                "Succeeded",
                f"stored artifact for revision '{revision}'",
            )
        except Unemulated as e:
            set_condition(status, obj, "Ready", False, fidelity.UNEMULATED_REASON, str(e))
            log.warning("GitRepository %s/%s: %s", ns, name, e)
        except GitError as e:
            set_condition(status, obj, "FetchFailed", True, "GitOperationFailed", str(e))
            set_condition(status, obj, "Ready", False, "GitOperationFailed", str(e))
            log.warning("GitRepository %s/%s: %s", ns, name, e)
        status["observedGeneration"] = meta.get("generation")
        self.api.patch_status(obj, status)
        new_rev = (status.get("artifact") or {}).get("revision")
        if new_rev and new_rev != old_rev:
            log.info("GitRepository %s/%s: stored artifact %s", ns, name, new_rev)
            self.on_artifact("GitRepository", ns, name)
        return interval

    def _git(self, *args: str, cwd: Path | None = None, timeout: float = 60) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        p = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
        )
        if p.returncode != 0:
            raise GitError(f"git {' '.join(args[:2])} failed: {p.stderr.strip()[-500:]}")
        return p.stdout.strip()

    def _fetch(self, ns: str, name: str, spec: Obj) -> tuple[str, str, str]:
        url = spec.get("url", "")
        ref = spec.get("ref") or {}
        timeout = parse_duration(spec.get("timeout"), 60)
        mirror = self.git_cache / ns / name
        if (mirror / "HEAD").exists():
            current = self._git("config", "--get", "remote.origin.url", cwd=mirror)
            if current != url:
                shutil.rmtree(mirror)
        if not (mirror / "HEAD").exists():
            mirror.parent.mkdir(parents=True, exist_ok=True)
            self._git("clone", "--mirror", "--quiet", url, str(mirror), timeout=timeout)
        else:
            self._git("fetch", "--prune", "--quiet", "origin", cwd=mirror, timeout=timeout)
        if ref.get("commit"):
            sha = self._git("rev-parse", "--verify", f"{ref['commit']}^{{commit}}", cwd=mirror)
            label = ref.get("branch") or ""
            return label, sha, "commit"
        if ref.get("name"):
            sha = self._git("rev-parse", "--verify", f"{ref['name']}^{{commit}}", cwd=mirror)
            return ref["name"], sha, "name"
        if ref.get("tag"):
            sha = self._git(
                "rev-parse", "--verify", f"refs/tags/{ref['tag']}^{{commit}}", cwd=mirror
            )
            return ref["tag"], sha, "tag"
        if ref.get("semver"):
            raise GitError("spec.ref.semver is not supported by the rehearsal stand-in")
        branch = ref.get("branch") or "master"
        try:
            sha = self._git("rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}", cwd=mirror)
        except GitError as e:
            raise GitError(f"unable to checkout branch '{branch}': no such branch in {url}") from e
        return branch, sha, "branch"

    def _store_git(self, ns: str, name: str, sha: str, revision: str) -> Obj:
        rel = Path("gitrepository") / ns / name / f"{sha}.tar.gz"
        dest = self.storage / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            p = subprocess.run(
                ["git", "archive", "--format=tar.gz", sha],
                cwd=self.git_cache / ns / name,
                stdout=out,
                stderr=subprocess.PIPE,
                timeout=120,
            )
        if p.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise GitError(f"git archive failed: {p.stderr.decode()[-300:]}")
        tmp.replace(dest)
        # keep only the current artifact (upstream garbage-collects old ones)
        for old in dest.parent.glob("*.tar.gz"):
            if old != dest:
                old.unlink(missing_ok=True)
        return {
            "path": str(rel),
            "url": f"{ARTIFACT_HOST}/{rel}",
            "revision": revision,
            "digest": "sha256:" + _sha256(dest),
            "lastUpdateTime": now_rfc3339(),
            "size": dest.stat().st_size,
        }

    # -- HelmRepository --------------------------------------------------------------------------
    def reconcile_helm(self, ns: str, name: str) -> float | None:
        obj = self.api.get(flux.SOURCE_API, "HelmRepository", name, ns)
        if obj is None:
            return None
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        fins = meta.get("finalizers") or []
        if meta.get("deletionTimestamp"):
            shutil.rmtree(self.storage / "helmrepository" / ns / name, ignore_errors=True)
            if flux.FINALIZER in fins:
                self.api.set_finalizers(obj, [f for f in fins if f != flux.FINALIZER])
            return None
        if spec.get("type") == "oci":
            # Static object upstream: reset status, drop the finalizer, nothing to fetch.
            if spec.get("suspend"):
                return None
            if flux.FINALIZER in fins:
                self.api.set_finalizers(obj, [f for f in fins if f != flux.FINALIZER])
            if obj.get("status"):
                self.api.patch(
                    flux.SOURCE_API,
                    "HelmRepository",
                    name,
                    ns,
                    [{"op": "remove", "path": "/status"}],
                    content_type="application/json-patch+json",
                    sub="status",
                )
            return None
        if spec.get("suspend"):
            return None
        if flux.FINALIZER not in fins:
            obj = self.api.set_finalizers(obj, fins + [flux.FINALIZER])
            if obj is None:
                return None
        interval = parse_duration(spec.get("interval"), 600)
        status = dict(obj.get("status") or {})
        handled_reconcile_request(obj, status)
        old_rev = (status.get("artifact") or {}).get("revision")
        url = spec["url"].rstrip("/")
        try:
            timeout = parse_duration(spec.get("timeout"), 60)
            with urllib.request.urlopen(f"{url}/index.yaml", timeout=timeout) as resp:
                body = resp.read()
            index = yaml.safe_load(body)
            if not isinstance(index, dict) or "entries" not in index:
                raise ValueError("index.yaml has no 'entries'")
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            rel = Path("helmrepository") / ns / name / f"index-{digest[7:]}.yaml"
            dest = self.storage / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                dest.write_bytes(body)
                for old in dest.parent.glob("index-*.yaml"):
                    if old != dest:
                        old.unlink(missing_ok=True)
            status["artifact"] = {
                "path": str(rel),
                "url": f"{ARTIFACT_HOST}/{rel}",
                "revision": digest,
                "digest": digest,
                "size": len(body),
                "lastUpdateTime": (status.get("artifact") or {}).get("lastUpdateTime")
                if old_rev == digest
                else now_rfc3339(),
            }
            status["url"] = f"{ARTIFACT_HOST}/helmrepository/{ns}/{name}/index.yaml"
            remove_condition(status, "FetchFailed")
            msg = f"stored artifact: revision '{digest}'"
            set_condition(status, obj, "ArtifactInStorage", True, "Succeeded", msg)
            set_condition(status, obj, "Ready", True, "Succeeded", msg)
        except Exception as e:  # noqa: BLE001 - any fetch/parse failure is a status
            msg = f"failed to fetch Helm repository index: {e}"
            set_condition(status, obj, "FetchFailed", True, "IndexationFailed", msg)
            set_condition(status, obj, "Ready", False, "IndexationFailed", msg)
        status["observedGeneration"] = meta.get("generation")
        self.api.patch_status(obj, status)
        if (status.get("artifact") or {}).get("revision") != old_rev:
            self.on_artifact("HelmRepository", ns, name)
        return interval


class GitError(Exception):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
