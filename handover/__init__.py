"""flux-handover: the domain library (importable without pytest)."""
