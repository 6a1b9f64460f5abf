"""What must not change: component and cluster snapshots."""
