"""Phase 1, the preflight gate: numbered checks and opt-outs."""
