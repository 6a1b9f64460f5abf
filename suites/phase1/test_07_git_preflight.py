"""Check 7: Git pre-flight on the inventory's GitOps checkout: working tree clean, on the
inventory's branch, remote reachable, branch pushed (local head == remote head)."""

from handover.core.findings import report
from handover.gate import git_preflight


def test_working_tree_clean(inventory):
    found = git_preflight.working_tree(inventory.gitops.path)
    found += git_preflight.branch(inventory.gitops.path, inventory.gitops.branch)
    assert not found, report(found)


def test_remote_reachable(inventory):
    found = git_preflight.remote_reachable(inventory.gitops.path, inventory.gitops.remote)
    assert not found, report(found)


def test_branch_pushed(inventory):
    found = git_preflight.pushed(
        inventory.gitops.path, inventory.gitops.remote, inventory.gitops.branch
    )
    assert not found, report(found)
