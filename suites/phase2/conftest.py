"""Phase 2 fixtures: see fixtures/flux.py."""
from fixtures.flux import *  # noqa: F401,F403
