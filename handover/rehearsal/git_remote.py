"""The rehearsal's GitOps remote: a bare git repository in the state dir (what Flux's GitRepository
and ``git push`` talk to) and a working clone of it (the inventory's ``gitops.path``)::

    <state_dir>/git/homelab-gitops.git   the bare remote, branch main (URL file://...)
    <state_dir>/gitops/                  the working clone (remote origin)
    <state_dir>/git-remote.json          {"url", "bare", "clone", "branch"}

The first ``ensure()`` pushes the example GitOps tree as one commit, then a second commit that
points its HelmRepositories at the rehearsal chart repository (the only rehearsal-specific change,
so ``git log`` shows it). Later calls change nothing unless the chart repo moved to another URL,
which is committed and pushed the same way. Commits are made by the project's rehearsal author.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ruamel.yaml import YAML

from handover.core import tools
from handover.core.errors import HandoverError

if TYPE_CHECKING:
    from handover.rehearsal.cluster import RehearsalCluster

AUTHOR_NAME = "flux-handover rehearsal"
AUTHOR_EMAIL = "rehearsal@flux-handover.invalid"
BRANCH = "main"
EXAMPLE_TREE = Path(__file__).resolve().parents[2] / "examples" / "homelab" / "gitops"


@dataclass(frozen=True)
class GitRemote:
    url: str  # file:///.../homelab-gitops.git
    bare: str
    clone: str
    branch: str = BRANCH


def git_env() -> dict[str, str]:
    """Author and committer of every rehearsal commit, independent of the user's git config."""
    return {
        "GIT_AUTHOR_NAME": AUTHOR_NAME,
        "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
        "GIT_COMMITTER_NAME": AUTHOR_NAME,
        "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL,
        "GIT_TERMINAL_PROMPT": "0",
    }


def git(*args: str | Path, cwd: Path | None = None, check: bool = True) -> tools.Result:
    argv = ["git"] + (["-C", str(cwd)] if cwd else []) + [str(a) for a in args]
    return tools.run(argv, env=git_env(), check=check)


def record_path(state_dir: Path) -> Path:
    return Path(state_dir) / "git-remote.json"


def load(state_dir: Path) -> GitRemote | None:
    p = record_path(state_dir)
    if not p.exists():
        return None
    return GitRemote(**json.loads(p.read_text()))


def _yaml() -> YAML:
    y = YAML()  # round trip: keeps comments and key order
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def helm_repository_urls(tree: Path) -> dict[str, str]:
    """'path/of/file.yaml#name' -> spec.url of every HelmRepository in a tree."""
    out = {}
    y = _yaml()
    for f in sorted(Path(tree).rglob("*.yaml")):
        if ".git" in f.parts:
            continue
        for doc in y.load_all(f.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "HelmRepository":
                out[f"{f.relative_to(tree)}#{doc['metadata']['name']}"] = doc["spec"]["url"]
    return out


def point_helm_repositories(tree: Path, url: str) -> list[Path]:
    """Rewrite every HelmRepository of the tree to ``url`` (an HTTP chart repository: drops
    ``type: oci``), keeping comments. Returns the files changed."""
    changed = []
    y = _yaml()
    for f in sorted(Path(tree).rglob("*.yaml")):
        if ".git" in f.parts:
            continue
        docs = list(y.load_all(f.read_text()))
        touched = False
        for doc in docs:
            if not (isinstance(doc, dict) and doc.get("kind") == "HelmRepository"):
                continue
            spec = doc["spec"]
            if spec.get("url") != url or "type" in spec:
                spec["url"] = url
                spec.pop("type", None)
                touched = True
        if touched:
            buf = io.StringIO()
            y.dump_all(docs, buf)
            f.write_text(buf.getvalue())
            changed.append(f)
    return changed


def _has_branch(bare: Path, branch: str) -> bool:
    return git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=bare, check=False).ok


def _commit_push(clone: Path, message: str, branch: str) -> None:
    git("add", "-A", cwd=clone)
    if git("diff", "--cached", "--quiet", cwd=clone, check=False).ok:
        return  # nothing to commit
    git("commit", "-q", "-m", message, cwd=clone)
    git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=clone)


def ensure(
    state_dir: Path,
    tree: Path | None = None,
    chart_repo_url: str | None = None,
    branch: str = BRANCH,
) -> GitRemote:
    """The bare remote and its working clone, with ``tree`` pushed to ``branch`` and the
    HelmRepositories pointing at ``chart_repo_url`` (idempotent)."""
    state_dir = Path(state_dir).absolute()
    tree = Path(tree or EXAMPLE_TREE).resolve()
    if not tree.is_dir():
        raise HandoverError(f"GitOps tree {tree} does not exist")
    bare = state_dir / "git" / "homelab-gitops.git"
    clone = state_dir / "gitops"
    remote = GitRemote(url=f"file://{bare}", bare=str(bare), clone=str(clone), branch=branch)

    if not (bare / "HEAD").exists():
        bare.parent.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "--bare", f"--initial-branch={branch}", bare)
    if not (clone / ".git").exists():
        if clone.exists():
            shutil.rmtree(clone)  # a half-made clone from an interrupted run
        git("clone", "-q", remote.url, clone)
        git("config", "user.name", AUTHOR_NAME, cwd=clone)
        git("config", "user.email", AUTHOR_EMAIL, cwd=clone)
    if not _has_branch(bare, branch):
        git("checkout", "-q", "-B", branch, cwd=clone)
        shutil.copytree(tree, clone, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
        _commit_push(clone, "homelab GitOps repository as the seed lays it out", branch)

    if chart_repo_url:
        current = helm_repository_urls(clone)
        if any(u != chart_repo_url for u in current.values()):
            if git("status", "--porcelain", cwd=clone).stdout.strip():
                raise HandoverError(
                    f"the rehearsal chart repository is now {chart_repo_url} but the GitOps "
                    f"clone {clone} has uncommitted changes: commit or discard them, then run "
                    "up again so the HelmRepositories can be pointed at it"
                )
            git("pull", "-q", "--ff-only", "origin", branch, cwd=clone)
            point_helm_repositories(clone, chart_repo_url)
            _commit_push(
                clone,
                f"rehearsal: HelmRepositories point at the local chart repository {chart_repo_url}",
                branch,
            )
    record_path(state_dir).write_text(json.dumps(asdict(remote), indent=2) + "\n")
    return remote


HTTP_SERVICE = "git-http"


def http_url(state_dir: Path) -> str | None:
    """The HTTP URL of the bare remote when ``serve_http`` serves it, else None."""
    rec = Path(state_dir) / "git-http.json"
    return json.loads(rec.read_text())["url"] if rec.exists() else None


def serve_http(cluster: RehearsalCluster) -> str:
    """Serve the bare remote over git's dumb HTTP protocol on 127.0.0.1 (a cluster service, so
    ``down()`` stops it) and return its URL: Flux's GitRepository accepts only http(s)/ssh URLs
    (CRD pattern ``^(http|https|ssh)://``), not file://. A ``post-update`` hook runs
    ``git update-server-info`` after every push, as dumb HTTP needs. Idempotent."""
    import sys
    import urllib.request

    from handover.rehearsal.cluster import free_port, port_open

    state_dir = Path(cluster.state_dir)
    bare = state_dir / "git" / "homelab-gitops.git"
    if not (bare / "HEAD").exists():
        raise HandoverError(f"no rehearsal GitOps remote at {bare}: run the rehearsal up first")
    hook = bare / "hooks" / "post-update"
    hook.parent.mkdir(exist_ok=True)
    if not hook.exists():
        hook.write_text("#!/bin/sh\nexec git update-server-info\n")
        hook.chmod(0o755)
    git("update-server-info", cwd=bare)
    rec = state_dir / "git-http.json"
    port = json.loads(rec.read_text())["port"] if rec.exists() else None
    if port is None or (not cluster.service_running(HTTP_SERVICE) and port_open(port)):
        port = free_port()
    url = f"http://127.0.0.1:{port}/{bare.name}"

    def serving() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/info/refs", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    cluster.start_service(
        HTTP_SERVICE,
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(bare.parent),
        ],
        env={"PYTHONUNBUFFERED": "1"},
        ready=serving,
    )
    rec.write_text(json.dumps({"url": url, "port": port}, indent=2) + "\n")
    return url
