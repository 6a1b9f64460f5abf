"""The GitOps repository: reading the entry-point Kustomizations, editing them without touching
anything else, and committing + pushing through the Mutator.

Edits are minimal text edits located with ruamel.yaml's round-trip parser (line/column marks): the
``suspend`` line is replaced, inserted right under ``spec:`` at the indentation of the spec's own
keys, or removed. Every other byte of the file stays as it was (comments, quotes, key order,
indentation, other documents of a multi-document file). After an edit the file is parsed again and
must equal the original with only ``spec.suspend`` changed; otherwise the edit is refused.

Reads of the remote (``git ls-remote``, ``git fetch``) do not change the repository's files or the
remote; commits and pushes go through :class:`handover.core.mutation.Mutator`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from handover.core import tools
from handover.core.errors import HandoverError
from handover.core.inventory import EntryPoint, GitOps
from handover.flux import rules as flux

if TYPE_CHECKING:
    from handover.core.mutation import Mutator

GIT_IDENTITY = ("flux-handover", "flux-handover@localhost")
_BOOL_TOKEN = re.compile(r"(?:true|false|True|False|TRUE|FALSE|yes|no|Yes|No|on|off|On|Off)\b")


class GitOpsError(HandoverError):
    """The GitOps repository is not in a state the step can work with."""


@dataclass(frozen=True)
class EntryState:
    """What Git says about one entry-point Kustomization."""

    name: str
    file: str
    suspended: bool  # spec.suspend is true in the file at that revision
    revision: str  # "worktree", or the commit the file was read at

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "suspended": self.suspended,
            "revision": self.revision,
        }


# -- pure YAML edits --------------------------------------------------------------------------
def _rt() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    return y


def _is_kustomization(doc: Any, name: str) -> bool:
    return (
        isinstance(doc, dict)
        and doc.get("kind") == "Kustomization"
        and str(doc.get("apiVersion", "")).startswith(flux.KUSTOMIZE_GROUP + "/")
        and (doc.get("metadata") or {}).get("name") == name
    )


def find_kustomization(text: str, name: str, source: str = "<text>") -> dict[str, Any]:
    """The Flux Kustomization ``name`` among the documents of a YAML file (plain data)."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise GitOpsError(f"{source}: not valid YAML: {e}") from e
    for d in docs:
        if _is_kustomization(d, name):
            return d
    kinds = (
        ", ".join(
            f"{d.get('kind')}/{(d.get('metadata') or {}).get('name')}"
            for d in docs
            if isinstance(d, dict)
        )
        or "no documents"
    )
    raise GitOpsError(
        f"{source}: no Flux Kustomization named {name!r} "
        f"({flux.KUSTOMIZE_GROUP}) in this file (found: {kinds}). Fix "
        "gitops.entrypoints in the inventory or the file."
    )


def is_suspended(text: str, name: str, source: str = "<text>") -> bool:
    return bool((find_kustomization(text, name, source).get("spec") or {}).get("suspend"))


def set_suspend(
    text: str, name: str, suspend: bool, source: str = "<text>", remove_when_false: bool = True
) -> str:
    """Return ``text`` with ``spec.suspend`` of the Kustomization ``name`` set to ``suspend``.

    ``suspend=True`` replaces an existing value or inserts ``suspend: true`` as the first key of
    ``spec``. ``suspend=False`` removes a ``suspend:`` line that carries no comment (Flux's default
    is false, so the file returns to how it was before phase 2) or else sets it to ``false``.
    Nothing else in the file changes; an already-correct file is returned unchanged.
    """
    current = (find_kustomization(text, name, source).get("spec") or {}).get("suspend")
    if (suspend and current is True) or (not suspend and current in (None, False)):
        return text
    docs = list(_rt().load_all(text))
    doc = next((d for d in docs if _is_kustomization(d, name)), None)
    assert doc is not None  # find_kustomization found it
    spec = doc.get("spec")
    lines = text.splitlines(keepends=True)
    if not isinstance(spec, CommentedMap) or spec.fa.flow_style():
        raise GitOpsError(
            f"{source}: Kustomization {name}: spec is not a block mapping; edit "
            f"spec.suspend by hand (set it to {str(suspend).lower()})."
        )
    if "suspend" in spec:
        kline, _ = spec.lc.key("suspend")
        vline, vcol = spec.lc.value("suspend")
        if vline != kline:
            raise GitOpsError(
                f"{source}:{kline + 1}: spec.suspend's value is not on its key's "
                "line; edit it by hand."
            )
        line = lines[kline]
        m = _BOOL_TOKEN.match(line, vcol)
        if not m:
            raise GitOpsError(
                f"{source}:{kline + 1}: spec.suspend is {line[vcol:].strip()!r}, "
                "not a boolean; edit it by hand."
            )
        rest = line[m.end() :]
        if not suspend and remove_when_false and "#" not in rest:
            del lines[kline]
        else:
            lines[kline] = line[:vcol] + ("true" if suspend else "false") + rest
    else:
        if not suspend:
            return text
        if not spec:
            raise GitOpsError(f"{source}: Kustomization {name} has an empty spec")
        first = next(iter(spec))
        fline, fcol = spec.lc.key(first)
        sline, _ = doc.lc.key("spec")
        if fline == sline:
            raise GitOpsError(
                f"{source}:{sline + 1}: spec's first key is on the spec: line; "
                "edit spec.suspend by hand."
            )
        newline = "\r\n" if lines[sline].endswith("\r\n") else "\n"
        lines.insert(sline + 1, " " * fcol + "suspend: true" + newline)
    out = "".join(lines)
    _check_only_suspend_changed(text, out, name, suspend, source)
    return out


def _check_only_suspend_changed(old: str, new: str, name: str, suspend: bool, source: str) -> None:
    """The edited file must parse to the same data as before except spec.suspend."""
    try:
        a = [d for d in yaml.safe_load_all(old) if d is not None]
        b = [d for d in yaml.safe_load_all(new) if d is not None]
    except yaml.YAMLError as e:
        raise GitOpsError(
            f"{source}: the suspend edit produced invalid YAML ({e}); file left "
            "unchanged, edit it by hand."
        ) from e
    expected = copy.deepcopy(a)
    for d in expected:
        if _is_kustomization(d, name):
            spec = d.setdefault("spec", {})
            if suspend:
                spec["suspend"] = True
            else:
                spec.pop("suspend", None)
    for d in b:
        if _is_kustomization(d, name) and not suspend:
            if (d.get("spec") or {}).get("suspend") is False:
                d["spec"].pop("suspend")
    if expected != b:
        raise GitOpsError(
            f"{source}: the suspend edit would change more than spec.suspend; file "
            "left unchanged, edit it by hand."
        )


# -- the repository ---------------------------------------------------------------------------
class GitOpsRepo:
    """The local checkout of the GitOps repository named by the inventory (``gitops``)."""

    def __init__(self, gitops: GitOps):
        self.gitops = gitops
        self.path = Path(gitops.path)
        self.branch = gitops.branch
        self.remote = gitops.remote

    def __repr__(self) -> str:
        return f"GitOpsRepo({self.path}, {self.remote}/{self.branch})"

    # read-only git
    def _git(self, *args: str, check: bool = True) -> tools.Result:
        res = tools.run(["git", "-C", str(self.path), *args])
        if check and not res.ok:
            raise GitOpsError(
                f"git {' '.join(args)} in {self.path} failed: "
                f"{res.stderr.strip() or res.stdout.strip()}"
            )
        return res

    def check(self) -> None:
        """The checkout exists, is a git work tree, and is on the inventory's branch."""
        if not self.path.is_dir():
            raise GitOpsError(
                f"gitops.path {self.path} does not exist: clone the GitOps "
                "repository there or fix the inventory."
            )
        if self._git("rev-parse", "--is-inside-work-tree", check=False).stdout.strip() != "true":
            raise GitOpsError(f"gitops.path {self.path} is not a git work tree")
        branch = self._git("rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
        if branch != self.branch:
            raise GitOpsError(
                f"{self.path} is on branch {branch!r}, the inventory's gitops.branch "
                f"is {self.branch!r}: git switch {self.branch}"
            )

    def remote_url(self) -> str:
        return self._git("remote", "get-url", self.remote).stdout.strip()

    def head(self) -> str:
        return self._git("rev-parse", "HEAD").stdout.strip()

    def remote_head(self) -> str | None:
        """The commit the remote branch points at (``git ls-remote``), None when it has none."""
        res = self._git("ls-remote", self.remote, f"refs/heads/{self.branch}")
        line = res.stdout.strip().splitlines()
        return line[0].split()[0] if line else None

    def fetch(self) -> None:
        """Update the remote-tracking branch (changes no file and nothing on the remote)."""
        self._git("fetch", "--quiet", self.remote, self.branch)

    def show(self, revision: str, file: str) -> str:
        res = self._git("show", f"{revision}:{file}", check=False)
        if not res.ok:
            raise GitOpsError(
                f"{file} does not exist at {revision[:12]} in {self.path}: {res.stderr.strip()}"
            )
        return res.stdout

    def dirty(self, files: list[str]) -> list[str]:
        """Files among ``files`` with uncommitted changes (staged or not)."""
        out = self._git("status", "--porcelain", "--", *files).stdout
        return [line[3:] for line in out.splitlines() if line.strip()]

    def file(self, ep: EntryPoint) -> Path:
        return self.path / ep.file

    def text(self, ep: EntryPoint) -> str:
        p = self.file(ep)
        if not p.exists():
            raise GitOpsError(
                f"entry point {ep.name}: {p} does not exist (gitops.entrypoints in the inventory)"
            )
        return p.read_text()

    def entry_state(self, ep: EntryPoint, revision: str | None = None) -> EntryState:
        """spec.suspend of an entry point in the work tree (revision None) or at a commit."""
        if revision is None:
            text, where = self.text(ep), "worktree"
        else:
            text, where = self.show(revision, ep.file), revision
        return EntryState(
            ep.name, ep.file, is_suspended(text, ep.name, f"{ep.file}@{where[:12]}"), where
        )

    def remote_states(self) -> tuple[str | None, list[EntryState]]:
        """(remote head, state of every entry point at the remote head)."""
        rhead = self.remote_head()
        if rhead is None:
            raise GitOpsError(f"the remote {self.remote} has no branch {self.branch}")
        if self._git("cat-file", "-e", f"{rhead}^{{commit}}", check=False).returncode != 0:
            self.fetch()
        return rhead, [self.entry_state(ep, rhead) for ep in self.gitops.entrypoints]

    def _is_ancestor(self, a: str, b: str) -> bool:
        return self._git("merge-base", "--is-ancestor", a, b, check=False).returncode == 0

    # mutations (through the Mutator)
    def _identity(self) -> list[str]:
        if self._git("config", "user.email", check=False).stdout.strip():
            return []
        return ["-c", f"user.name={GIT_IDENTITY[0]}", "-c", f"user.email={GIT_IDENTITY[1]}"]

    def plan_suspend(self, suspend: bool) -> dict[str, str]:
        """Files whose text would change: {relative file: new text}."""
        changes: dict[str, str] = {}
        for ep in self.gitops.entrypoints:
            old = changes.get(ep.file) or self.text(ep)
            new = set_suspend(old, ep.name, suspend, ep.file)
            if new != (self.path / ep.file).read_text() or ep.file in changes:
                changes[ep.file] = new
        return {f: t for f, t in changes.items() if t != (self.path / f).read_text()}

    def set_entrypoints_suspended(self, mutator: Mutator, suspend: bool, message: str) -> list[str]:
        """Edit every entry point's spec.suspend, commit and push. Returns what was done (empty
        when Git already had it, committed and pushed: a no-op)."""
        self.check()
        done: list[str] = []
        files = [ep.file for ep in self.gitops.entrypoints]
        for rel in self.dirty(files):
            # an uncommitted change is accepted only when it is exactly this step's edit (a run
            # interrupted between the write and the commit); anything else is someone's work
            try:
                head_text = self.show("HEAD", rel)
            except GitOpsError:
                head_text = None
            expected = head_text
            for ep in self.gitops.entrypoints:
                if ep.file == rel and expected is not None:
                    expected = set_suspend(expected, ep.name, suspend, rel)
            if expected is None or (self.path / rel).read_text() != expected:
                raise GitOpsError(
                    f"{rel} has uncommitted changes other than spec.suspend: "
                    "commit or discard them first (this step commits only its own "
                    "edit); nothing was changed."
                )
        rhead = self.remote_head()
        if rhead and rhead != self.head():
            self.fetch()
            if self._is_ancestor(self.head(), rhead):
                mutator.git(
                    ["merge", "--ff-only", "--quiet", rhead],
                    f"fast-forward to {self.remote}/{self.branch} {rhead[:12]}",
                )
                done.append(f"fast-forwarded to {rhead[:12]}")
            elif not self._is_ancestor(rhead, self.head()):
                raise GitOpsError(
                    f"{self.path} and {self.remote}/{self.branch} have diverged (local "
                    f"{self.head()[:12]}, remote {rhead[:12]}): pull --rebase and resolve by hand; "
                    "nothing was changed."
                )
        changes = self.plan_suspend(suspend)
        for rel, new in changes.items():
            mutator.write_file(
                self.path / rel, new, f"spec.suspend: {str(suspend).lower()} in {rel}"
            )
            done.append(f"edited {rel}")
        pending = self.dirty(files)
        if pending:
            mutator.git([*self._identity(), "add", "--", *pending], "stage the entry points")
            mutator.git(
                [*self._identity(), "commit", "--quiet", "-m", message, "--", *pending], message
            )
            done.append(f"committed {self.head()[:12]}")
        if self.remote_head() != self.head():
            mutator.git(
                ["push", "--quiet", self.remote, f"HEAD:refs/heads/{self.branch}"],
                f"push {self.branch} to {self.remote}",
            )
            done.append(f"pushed {self.head()[:12]} to {self.remote}/{self.branch}")
        return done


def suspend_plan_text(repo: GitOpsRepo, suspend: bool) -> str:
    """A one-line description of what set_entrypoints_suspended would do (for dry runs)."""
    names = ", ".join(ep.name for ep in repo.gitops.entrypoints)
    value = str(suspend).lower()
    return (
        f"set spec.suspend: {value} in {', '.join(ep.file for ep in repo.gitops.entrypoints)} "
        f"(Kustomizations {names}), commit and push to {repo.remote}/{repo.branch}"
    )
