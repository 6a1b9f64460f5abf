"""Phase 3's per-component chain (preconditions, backup, probe, adopted, rollback) and the abort that walks it back."""
