"""Per-component hazards: phase 1 gates on them, phase 3's first step re-runs them."""
