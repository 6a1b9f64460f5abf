"""Phase 1, the read-only preflight gate: fixtures shared by its checks.

Check 8 writes MIGRATION_STATE.md/.json to the inventory's backups directory, or to --report-dir
when that option (registered by plugins/runbook.py) is given on the command line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from handover.sources.chart_index import IndexCache


def _given(config: pytest.Config, option: str) -> bool:
    return any(a == option or a.startswith(option + "=") for a in config.invocation_params.args)


@pytest.fixture(scope="session")
def chart_indexes() -> IndexCache:
    """Helm repository indexes, each read once per session over HTTP."""
    return IndexCache()


@pytest.fixture(scope="session")
def report_dir(pytestconfig, inventory) -> Path:
    given = pytestconfig.getoption("--report-dir", default=None)
    if given and _given(pytestconfig, "--report-dir"):
        p = Path(given)
        return p if p.is_absolute() else Path(pytestconfig.invocation_params.dir) / p
    return inventory.backups


@pytest.fixture(scope="session")
def all_git_objects(entry_builds) -> list[dict]:
    """Every object built from Git (each once)."""
    return entry_builds.unique_objects()


@pytest.fixture(scope="session")
def live_namespaces(request, offline) -> set[str] | None:
    """Namespaces that exist live; None under --offline (not known: not checked)."""
    if offline:
        return None
    kube = request.getfixturevalue("kube")
    return {n["metadata"]["name"] for n in kube.list("v1", "Namespace")}
