"""Root conftest: loads the flux-handover plugins for the runbook suites (suites/)."""
pytest_plugins = [
    "plugins.safety",
    "plugins.redaction",
    "plugins.gate",
    "plugins.offline",
    "fixtures.gitops",
    "fixtures.hazards",
    "fixtures.flux",
    "plugins.runbook",
    "plugins.progress",
    "fixtures.backups",
    "fixtures.snapshots",
]
