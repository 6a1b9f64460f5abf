"""Root conftest: loads the flux-handover plugins for the runbook suites (suites/)."""
pytest_plugins = [
    "plugins.safety",
]
