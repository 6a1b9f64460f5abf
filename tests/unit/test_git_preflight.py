import subprocess

import pytest

from handover.gate import git_preflight


def sh(*args, cwd=None):
    subprocess.run(args, cwd=cwd, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x.invalid",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x.invalid",
                        "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"})


@pytest.fixture
def clone(tmp_path):
    bare, work = tmp_path / "remote.git", tmp_path / "clone"
    sh("git", "init", "-q", "--bare", "-b", "main", str(bare))
    sh("git", "clone", "-q", str(bare), str(work))
    sh("git", "checkout", "-q", "-b", "main", cwd=work)
    (work / "a.yaml").write_text("a: 1\n")
    sh("git", "add", "a.yaml", cwd=work)
    sh("git", "commit", "-q", "-m", "one", cwd=work)
    sh("git", "push", "-q", "origin", "main", cwd=work)
    return work


def test_clean_pushed_clone_passes(clone):
    assert git_preflight.working_tree(clone) == []
    assert git_preflight.branch(clone, "main") == []
    assert git_preflight.remote_reachable(clone, "origin") == []
    assert git_preflight.pushed(clone, "origin", "main") == []


def test_dirty_tree_lists_files(clone):
    (clone / "new.yaml").write_text("x: 1\n")
    (f,) = git_preflight.working_tree(clone)
    assert "working tree not clean" in f.problem and "new.yaml" in f.problem


def test_unpushed_commit(clone):
    (clone / "a.yaml").write_text("a: 2\n")
    sh("git", "commit", "-qam", "two", cwd=clone)
    (f,) = git_preflight.pushed(clone, "origin", "main")
    assert "local is 1 commit(s) ahead" in f.problem and "git -C" in f.fix


def test_branch_missing_on_remote(clone):
    (f,) = git_preflight.pushed(clone, "origin", "other")
    assert "no local branch other" in f.problem
    sh("git", "checkout", "-q", "-b", "other", cwd=clone)
    (f,) = git_preflight.pushed(clone, "origin", "other")
    assert "does not exist on the remote" in f.problem
    (f,) = git_preflight.branch(clone, "main")
    assert "checked out branch is other" in f.problem


def test_unreachable_remote(clone, tmp_path):
    sh("git", "remote", "set-url", "origin", str(tmp_path / "gone.git"), cwd=clone)
    (f,) = git_preflight.remote_reachable(clone, "origin")
    assert "not reachable" in f.problem


def test_redact_url():
    assert git_preflight.redact_url("https://user:tok@example.invalid/r.git") == \
        "https://***@example.invalid/r.git"
