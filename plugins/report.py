"""The migration report, as a pytest plugin.

Option: --report-dir (default ``reports``, relative to where pytest was started).

Fixture ``migration_report``: the run's MigrationReport (handover.report). The phase-3 steps and the
halt-and-rollback plugin fill it; at the end of a session in which any phase-3 step ran, it is
written to ``<report-dir>/<run>.md`` and ``<run>.json`` (mode 0600; names and numbers only, no
values, manifests or Secret data) and its path is printed in the terminal summary.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from handover.report import MigrationReport
from plugins.journal import handover_run

REPORT_KEY = pytest.StashKey[MigrationReport]()
WRITTEN_KEY = pytest.StashKey[tuple]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flux-handover")
    group.addoption("--report-dir", default="reports",
                    help="where the migration report goes (<dir>/<run>.md and .json)")


def migration_report(config: pytest.Config) -> MigrationReport:
    if REPORT_KEY not in config.stash:
        from plugins.safety import kube_context_in_use, load_inventory
        inv = load_inventory(config)
        config.stash[REPORT_KEY] = MigrationReport(
            run=handover_run(config).id, inventory=str(inv.source),
            context=kube_context_in_use(config, inv),
            perform=bool(config.getoption("--perform")))
    return config.stash[REPORT_KEY]


@pytest.fixture(scope="session")
def report(pytestconfig: pytest.Config) -> MigrationReport:
    return migration_report(pytestconfig)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if REPORT_KEY not in config.stash:
        return
    rep = config.stash[REPORT_KEY]
    rep.finished = time.time()
    d = Path(config.getoption("--report-dir"))
    if not d.is_absolute():
        d = Path(config.invocation_params.dir) / d
    config.stash[WRITTEN_KEY] = rep.write(d)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if WRITTEN_KEY in config.stash:
        md, js = config.stash[WRITTEN_KEY]
        terminalreporter.write_line(f"migration report: {md} ({js.name})")
