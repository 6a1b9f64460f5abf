"""Check 8: the migration state snapshot (MIGRATION_STATE.md + .json) from the live cluster and the
inventory, written to the backups directory (or --report-dir): phase 1's only write, local
files only, and without secrets. The gate's opt-outs in effect (plugins.gate) are written into it:
what the gate was told not to check."""

import json

from handover.gate import migration_state


def test_migration_state(inventory, kube, report_dir, gate_opt_outs):
    state = migration_state.collect(inventory, kube)
    state.gate_opt_outs = [o.to_dict() for o in gate_opt_outs]
    try:
        md, js = migration_state.write(state, report_dir)
    except OSError as e:
        raise AssertionError(
            f"[migration-state] cannot write MIGRATION_STATE.md/.json to {report_dir}: {e}\n"
            f"    fix: make {report_dir} a writable directory (backups.path in "
            f"{inventory.source}, or --report-dir)"
        ) from None
    print(f"wrote {md} and {js}")
    text, data = md.read_text(), json.loads(js.read_text())
    for section in (
        "## Helm releases",
        "## YAML workloads",
        "## Migration order",
        "## PersistentVolumes",
        "## Rollback plan",
    ):
        assert section in text, f"{md} lacks the section {section!r}"
    for o in gate_opt_outs:
        assert f"| {o.name} | {o.source} |" in text, f"{md} does not record the opt-out {o.name}"
    missing_pvs = [p["name"] for p in data["pvs"] if p["in_inventory"] and not p["exists"]]
    assert not missing_pvs, (
        f"[migration-state] PersistentVolume(s) {missing_pvs} listed in the "
        f"inventory do not exist live\n    fix: correct components[].pvs in "
        f"{inventory.source}"
    )
    missing = [
        f"{r.namespace}/{r.name}"
        for c in inventory.components
        if (r := c.release)
        and not any(
            h["name"] == r.name and h["namespace"] == r.namespace for h in data["helm_releases"]
        )
    ]
    assert not missing, (
        f"[migration-state] Helm release(s) {missing} named by the inventory are "
        "not in the cluster's Helm storage\n    fix: correct "
        f"components[].release in {inventory.source}"
    )
    namespaces = {ns for c in inventory.components for ns in c.namespaces}
    leaked = migration_state.leaks(
        [text, js.read_text()], migration_state.sensitive_values(kube, namespaces)
    )
    assert not leaked, f"[migration-state] the report contains secret values from: {leaked}"
