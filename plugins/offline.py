"""``--offline``: phase 1 without a cluster, for the GitOps repository's own pull-request CI (as
flux-local users gate theirs).

What runs: the kustomize builds of every entry path (ExternalArtifacts assembled from their
ArtifactGenerators), the Flux schemas, HelmRelease references (sourceRef / chartRef to sources
defined in Git, namespaces created by Git; live namespaces are not known), chart availability over
HTTP / the OCI tag list where the repository answers, kubectl's version, and the Flux rules that
read only Git (dangerous settings, prune guards, take ownership / remediation / apply method).
Everything that needs the cluster (server dry-run, ownership, the live release, rollout
prediction, hooks, CRDs, PVs, the server version, the migration state) and the Git pre-flight of
the migration checkout (clean / pushed / on the inventory's branch) is SKIPPED with a reason
naming what is not checked: never reported as passed.
"""

from __future__ import annotations

import pytest

# fixtures that read the live cluster (a test using one, directly or through another fixture, is
# skipped offline)
LIVE_FIXTURES = {"kube", "kube_context", "live_namespaces", "deployed", "claimed"}
# tests about the migration checkout itself, not about a pull request's content
CHECKOUT_TESTS = {"test_working_tree_clean", "test_remote_reachable", "test_branch_pushed"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flux-handover")
    group.addoption(
        "--offline",
        action="store_true",
        default=False,
        help="phase 1 without a cluster (the GitOps repo's CI): checks that need the "
        "cluster are skipped, naming what is not checked",
    )


def is_offline(config: pytest.Config) -> bool:
    try:
        return bool(config.getoption("--offline"))
    except ValueError:
        return False


@pytest.fixture(scope="session")
def offline(pytestconfig: pytest.Config) -> bool:
    return is_offline(pytestconfig)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not is_offline(config):
        return
    for item in items:
        live = sorted(LIVE_FIXTURES & set(getattr(item, "fixturenames", ())))
        name = getattr(item, "originalname", item.name)
        if live and not (item.get_closest_marker("offline_capable")):
            item.add_marker(
                pytest.mark.skip(
                    reason=f"--offline: not checked, needs the live cluster ({', '.join(live)})"
                )
            )
        elif name in CHECKOUT_TESTS:
            item.add_marker(
                pytest.mark.skip(
                    reason="--offline: not checked, Git pre-flight of the migration checkout (clean, "
                    "pushed, on the inventory's branch) belongs to the handover run"
                )
            )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "offline_capable: runs under --offline although it asks "
        "for a live fixture (which then answers without the "
        "cluster)",
    )
