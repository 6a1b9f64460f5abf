"""handover.sources.gitops: entry-point suspend edits keep every other byte; commit + push through the
Mutator; a second run is a no-op. Real git, a local bare remote."""
from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from handover.sources import gitops
from handover.core.errors import UnsafeActionRefused
from handover.core.inventory import EntryPoint, GitOps
from handover.core.journal import Journal
from handover.core.mutation import Mutator

INFRA = """\
# Entry point: everything under ./infrastructure
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: infrastructure   # keep this name
  namespace: flux-system
spec:
  # how often
  interval: 10m
  path: "./infrastructure"
  prune: true    # GC
  sourceRef: {kind: GitRepository, name: flux-system}
"""


def test_suspend_inserted_under_spec_keeps_everything_else():
    out = gitops.set_suspend(INFRA, "infrastructure", True)
    assert out.splitlines() == (INFRA.splitlines()[:7] + ["  suspend: true"]
                                + INFRA.splitlines()[7:])
    assert gitops.is_suspended(out, "infrastructure")


def test_suspend_already_true_is_unchanged():
    once = gitops.set_suspend(INFRA, "infrastructure", True)
    assert gitops.set_suspend(once, "infrastructure", True) == once


def test_resume_removes_the_inserted_line_and_restores_the_file():
    once = gitops.set_suspend(INFRA, "infrastructure", True)
    assert gitops.set_suspend(once, "infrastructure", False) == INFRA
    assert gitops.set_suspend(INFRA, "infrastructure", False) == INFRA


def test_existing_value_replaced_in_place_with_its_comment():
    text = INFRA.replace("  prune: true    # GC\n", "  prune: true    # GC\n  suspend: false  # x\n")
    out = gitops.set_suspend(text, "infrastructure", True)
    assert "  suspend: true  # x\n" in out
    assert out.replace("suspend: true", "suspend: false") == text
    back = gitops.set_suspend(out, "infrastructure", False)
    assert back == text  # a commented line is kept, set to false


def test_four_space_indent_and_multi_document_file():
    other = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n    name: infrastructure\n"
    ks = ("apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n"
          "    name: workloads\nspec:\n    interval: 5m\n    path: ./workloads\n")
    text = other + "---\n" + ks
    out = gitops.set_suspend(text, "workloads", True)
    assert out == other + "---\n" + ks.replace("spec:\n", "spec:\n    suspend: true\n")


def test_missing_kustomization_names_what_was_found():
    with pytest.raises(gitops.GitOpsError, match=r"no Flux Kustomization named 'apps'.*"
                                                 r"Kustomization/infrastructure"):
        gitops.set_suspend(INFRA, "apps", True, "clusters/x.yaml")


def test_flow_style_spec_refused_not_rewritten():
    text = ("apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
            "metadata: {name: a}\nspec: {interval: 1m, path: ./a}\n")
    with pytest.raises(gitops.GitOpsError, match="not a block mapping"):
        gitops.set_suspend(text, "a", True)


def test_non_boolean_suspend_refused():
    text = INFRA.replace("  prune: true    # GC\n", "  prune: true\n  suspend: maybe\n")
    with pytest.raises(gitops.GitOpsError, match="not a boolean"):
        gitops.set_suspend(text, "infrastructure", True)


# -- the repository ---------------------------------------------------------------------------
def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> gitops.GitOpsRepo:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
    work = tmp_path / "gitops"
    subprocess.run(["git", "clone", "--quiet", str(bare), str(work)], check=True,
                   capture_output=True)
    (work / "clusters").mkdir()
    (work / "clusters" / "infrastructure.yaml").write_text(INFRA)
    (work / "clusters" / "workloads.yaml").write_text(
        INFRA.replace("infrastructure", "workloads"))
    _git(work, "checkout", "--quiet", "-b", "main")
    _git(work, "add", ".")
    _git(work, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "--quiet", "-m",
         "seed")
    _git(work, "push", "--quiet", "origin", "main")
    g = GitOps(path=work, branch="main", entrypoints=(
        EntryPoint("clusters/infrastructure.yaml", "infrastructure"),
        EntryPoint("clusters/workloads.yaml", "workloads")))
    return gitops.GitOpsRepo(g)


def _mutator(repo: gitops.GitOpsRepo, tmp_path: Path, perform: bool = True) -> Mutator:
    inv = SimpleNamespace(cluster=SimpleNamespace(context="ctx"), gitops=repo.gitops)
    return Mutator(SimpleNamespace(context="ctx"), inv, Journal(tmp_path / "journal.jsonl"),
                   perform)


def test_suspend_commit_push_then_noop(repo, tmp_path):
    m = _mutator(repo, tmp_path)
    done = repo.set_entrypoints_suspended(m, True, "Suspend the entry points")
    assert [d.split()[0] for d in done] == ["edited", "edited", "committed", "pushed"]
    rhead, states = repo.remote_states()
    assert rhead == repo.head()
    assert [(s.name, s.suspended) for s in states] == [("infrastructure", True),
                                                       ("workloads", True)]
    journal = [e.action for e in m.journal.entries() if e.kind == "intent"]
    assert any(a.startswith("git push") for a in journal)
    # second run: nothing to do, nothing journaled
    n = len(list(m.journal.entries()))
    assert repo.set_entrypoints_suspended(m, True, "again") == []
    assert len(list(m.journal.entries())) == n
    # resume restores the seed text
    repo.set_entrypoints_suspended(m, False, "Resume")
    assert repo.text(repo.gitops.entrypoints[0]) == INFRA
    assert not any(s.suspended for s in repo.remote_states()[1])


def test_committed_but_unpushed_is_pushed(repo, tmp_path):
    f = repo.path / "clusters" / "infrastructure.yaml"
    f.write_text(gitops.set_suspend(INFRA, "infrastructure", True))
    _git(repo.path, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "x")
    m = _mutator(repo, tmp_path)
    done = repo.set_entrypoints_suspended(m, True, "Suspend")
    assert done[0] == "edited clusters/workloads.yaml" and done[-1].startswith("pushed")
    assert all(s.suspended for s in repo.remote_states()[1])


def test_without_perform_nothing_is_written(repo, tmp_path):
    m = _mutator(repo, tmp_path, perform=False)
    with pytest.raises(UnsafeActionRefused, match="would write .*infrastructure.yaml"):
        repo.set_entrypoints_suspended(m, True, "Suspend")
    assert repo.text(repo.gitops.entrypoints[0]) == INFRA


def test_unrelated_uncommitted_change_refused(repo, tmp_path):
    f = repo.path / "clusters" / "workloads.yaml"
    f.write_text(gitops.set_suspend(f.read_text(), "workloads", True) + "# local note\n")
    m = _mutator(repo, tmp_path)
    with pytest.raises(gitops.GitOpsError, match="workloads.yaml has uncommitted changes other "
                                                 "than spec.suspend.*nothing was changed"):
        repo.set_entrypoints_suspended(m, True, "Suspend")
    assert repo.text(repo.gitops.entrypoints[0]) == INFRA  # no partial edit
    assert list(m.journal.entries()) == []


def test_interrupted_run_own_uncommitted_edit_is_committed(repo, tmp_path):
    f = repo.path / "clusters" / "workloads.yaml"
    f.write_text(gitops.set_suspend(f.read_text(), "workloads", True))
    done = repo.set_entrypoints_suspended(_mutator(repo, tmp_path), True, "Suspend")
    assert done[0] == "edited clusters/infrastructure.yaml"
    assert all(s.suspended for s in repo.remote_states()[1])


def test_wrong_branch_named(repo, tmp_path):
    _git(repo.path, "checkout", "-q", "-b", "feature")
    with pytest.raises(gitops.GitOpsError, match="on branch 'feature'.*git switch main"):
        repo.set_entrypoints_suspended(_mutator(repo, tmp_path), True, "x")


def test_remote_moved_ahead_is_fast_forwarded_then_suspended(repo, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", repo.remote_url(), str(other)], check=True)
    (other / "README").write_text("x\n")
    _git(other, "add", "README")
    _git(other, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "teammate")
    _git(other, "push", "-q", "origin", "main")
    done = repo.set_entrypoints_suspended(_mutator(repo, tmp_path), True, "Suspend")
    assert done[0].startswith("fast-forwarded")
    assert (repo.path / "README").exists()
    assert all(s.suspended for s in repo.remote_states()[1])


def test_diverged_refused(repo, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", repo.remote_url(), str(other)], check=True)
    for where, name in ((other, "A"), (repo.path, "B")):
        (where / name).write_text("x\n")
        _git(where, "add", name)
        _git(where, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", name)
    _git(other, "push", "-q", "origin", "main")
    with pytest.raises(gitops.GitOpsError, match="have diverged.*nothing was changed"):
        repo.set_entrypoints_suspended(_mutator(repo, tmp_path), True, "Suspend")
    assert repo.text(repo.gitops.entrypoints[0]) == INFRA
