"""Root conftest: loads the flux-handover plugins for the runbook suites (suites/)."""
pytest_plugins = [
    "plugins.safety",
    "plugins.offline",
    "fixtures.gitops",
    "fixtures.hazards",
    "fixtures.flux",
    "plugins.journal",
    "plugins.report",
    "plugins.rollback",
    "fixtures.backups",
    "fixtures.snapshots",
]
