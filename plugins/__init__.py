"""pytest plugins of flux-handover (loaded by the root conftest.py)."""
