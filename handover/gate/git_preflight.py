"""Check 7: the GitOps checkout is ready for `flux bootstrap` (real git, real remote).

- the working tree is clean (`git status --porcelain`): kustomize builds the working tree, Flux
  builds the pushed commit, so uncommitted changes make the gate check something Flux never sees;
- the checkout is on the inventory's branch;
- the remote is reachable (`git ls-remote`, no prompt);
- the branch exists on the remote and local head == remote head (pushed).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from handover.core.findings import Finding

CHECK = "git-preflight"
TIMEOUT = 30


@dataclass
class GitResult:
    ok: bool
    out: str
    err: str


def git(repo: Path, *args: str, timeout: float = TIMEOUT) -> GitResult:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "LC_ALL": "C"}
    try:
        p = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return GitResult(False, "", f"git {' '.join(args)} timed out after {timeout}s")
    except FileNotFoundError:
        return GitResult(False, "", "git is not installed")
    return GitResult(p.returncode == 0, p.stdout, p.stderr.strip())


def redact_url(url: str) -> str:
    """Remove credentials from a URL (https://user:token@host -> https://***@host)."""
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", url)


def remote_url(repo: Path, remote: str) -> str | None:
    r = git(repo, "remote", "get-url", remote)
    return redact_url(r.out.strip()) if r.ok else None


def head_commit(repo: Path) -> str | None:
    r = git(repo, "rev-parse", "HEAD")
    return r.out.strip() if r.ok else None


def working_tree(repo: Path) -> list[Finding]:
    if not (repo / ".git").exists():
        r = git(repo, "rev-parse", "--git-dir")
        if not r.ok:
            return [
                Finding(
                    CHECK,
                    f"GitOps checkout {repo}",
                    f"not a git repository: {r.err}",
                    "point gitops.path in the inventory at a clone of the GitOps repo",
                )
            ]
    r = git(repo, "status", "--porcelain", "--untracked-files=all")
    if not r.ok:
        return [
            Finding(
                CHECK, f"GitOps checkout {repo}", f"git status failed: {r.err}", "fix the checkout"
            )
        ]
    changes = [ln for ln in r.out.splitlines() if ln.strip()]
    if not changes:
        return []
    shown = "; ".join(changes[:10]) + (f" (+{len(changes) - 10} more)" if len(changes) > 10 else "")
    return [
        Finding(
            CHECK,
            f"GitOps checkout {repo}",
            f"working tree not clean ({len(changes)} change(s)): {shown}",
            "commit and push (or discard) the changes: Flux applies the pushed commit, "
            "the gate checks the working tree",
        )
    ]


def branch(repo: Path, expected: str) -> list[Finding]:
    r = git(repo, "symbolic-ref", "--short", "-q", "HEAD")
    current = r.out.strip() if r.ok else "(detached HEAD)"
    if current != expected:
        return [
            Finding(
                CHECK,
                f"GitOps checkout {repo}",
                f"checked out branch is {current}, the inventory's gitops.branch is {expected}",
                f"git -C {repo} checkout {expected}",
            )
        ]
    return []


def remote_heads(repo: Path, remote: str) -> tuple[dict[str, str] | None, str]:
    """(branch -> commit on the remote, or None when unreachable; error text)."""
    r = git(repo, "ls-remote", "--heads", remote)
    if not r.ok:
        return None, r.err
    heads = {}
    for ln in r.out.splitlines():
        sha, _, ref = ln.partition("\t")
        if ref.startswith("refs/heads/"):
            heads[ref[len("refs/heads/") :]] = sha
    return heads, ""


def remote_reachable(repo: Path, remote: str) -> list[Finding]:
    heads, err = remote_heads(repo, remote)
    if heads is None:
        url = remote_url(repo, remote) or "(no such remote)"
        return [
            Finding(
                CHECK,
                f"remote {remote} ({url})",
                f"not reachable: {err}",
                "fix the remote URL/credentials or the network; Flux bootstrap and "
                "every reconcile need it",
            )
        ]
    return []


def pushed(repo: Path, remote: str, branch_name: str) -> list[Finding]:
    heads, err = remote_heads(repo, remote)
    if heads is None:
        return [
            Finding(
                CHECK,
                f"branch {branch_name}",
                f"remote {remote} not reachable ({err}): cannot tell whether it is pushed",
                "see test_remote_reachable",
            )
        ]
    subject = f"branch {branch_name} on remote {remote}"
    local = git(repo, "rev-parse", "-q", "--verify", f"refs/heads/{branch_name}")
    if not local.ok:
        return [
            Finding(
                CHECK,
                subject,
                f"no local branch {branch_name}",
                f"git -C {repo} checkout {branch_name}",
            )
        ]
    lsha = local.out.strip()
    if branch_name not in heads:
        return [
            Finding(
                CHECK,
                subject,
                f"the branch does not exist on the remote "
                f"(remote branches: {', '.join(sorted(heads)) or 'none'})",
                f"git -C {repo} push {remote} {branch_name}",
            )
        ]
    rsha = heads[branch_name]
    if rsha == lsha:
        return []
    ahead = git(repo, "rev-list", "--count", f"{rsha}..{lsha}")
    detail = f"local head {lsha[:12]} != remote head {rsha[:12]}"
    if ahead.ok:
        detail += f" (local is {ahead.out.strip()} commit(s) ahead"
        behind = git(repo, "rev-list", "--count", f"{lsha}..{rsha}")
        detail += f", {behind.out.strip()} behind)" if behind.ok else ")"
    else:
        detail += " (remote commit not fetched locally: the remote has commits you do not have)"
    return [
        Finding(
            CHECK,
            subject,
            detail,
            f"git -C {repo} pull --rebase {remote} {branch_name} && git -C {repo} push "
            f"{remote} {branch_name}: Flux deploys what is on the remote",
        )
    ]
