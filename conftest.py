"""Root conftest: loads the flux-handover plugins for the runbook suites (suites/)."""
pytest_plugins = [
    "plugins.safety",
    "plugins.redaction",
    "plugins.gate",
    "plugins.offline",
    "fixtures.gitops",
    "fixtures.hazards",
    "fixtures.flux",
    "plugins.journal",
    "plugins.report",
    "plugins.progress",
    "plugins.rollback",
    "fixtures.backups",
    "fixtures.snapshots",
    "plugins.abort",
]
