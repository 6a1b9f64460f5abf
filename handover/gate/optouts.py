"""The gate's explicit opt-outs: a phase-1 check that cannot run here fails naming what to
configure, unless the operator opted out of it BY NAME (``--skip-check NAME``, repeatable, or the
inventory's ``gate.skipChecks: [NAME, ...]``). An opted-out check is reported as "skipped by
opt-out", in the terminal verdict and in MIGRATION_STATE.md: a gate that says "safe" has either
checked or says plainly what it was told not to check.
"""

from __future__ import annotations

from dataclasses import dataclass

# name -> (what is not checked when opted out, what to configure instead)
SKIPPABLE: dict[str, tuple[str, str]] = {
    "node-data": (
        "the data behind hostPath PersistentVolumes on the nodes (test_pv_host_paths)",
        "node access in the inventory's cluster.nodes (local://, ssh://user@node)",
    ),
    "chart-registry": (
        "chart versions in OCI registries the gate cannot reach (test_chart_versions_available, "
        "test_helmrelease_refs)",
        "network access from here to the registry (or its credentials)",
    ),
    "server-dry-run": (
        "the server-side dry-run (test_server_dry_run)",
        "an identity with create/patch rights for the gate (a dry-run is authorised like a "
        "write and persists nothing)",
    ),
}


class UnknownCheck(ValueError):
    pass


@dataclass(frozen=True)
class OptOut:
    name: str
    source: str  # "--skip-check" | "inventory gate.skipChecks"

    @property
    def skips(self) -> str:
        return SKIPPABLE[self.name][0]

    def to_dict(self) -> dict[str, str]:
        return {"check": self.name, "source": self.source, "not_checked": self.skips}


def validate(names: list[str] | tuple[str, ...], where: str) -> None:
    bad = [n for n in names if n not in SKIPPABLE]
    if bad:
        raise UnknownCheck(
            f"{where}: unknown check(s) {bad}; the checks that may be skipped "
            f"by name: {', '.join(sorted(SKIPPABLE))}"
        )


def opt_outs(
    cli: list[str] | tuple[str, ...], inventory: list[str] | tuple[str, ...]
) -> list[OptOut]:
    """The opt-outs in effect (the command line first), each once."""
    validate(cli, "--skip-check")
    validate(inventory, "gate.skipChecks")
    out: dict[str, OptOut] = {}
    for n in cli:
        out.setdefault(n, OptOut(n, "--skip-check"))
    for n in inventory:
        out.setdefault(n, OptOut(n, "inventory gate.skipChecks"))
    return list(out.values())


def not_checked_message(name: str, why: str) -> str:
    """The failure of a check that could not run and was not opted out of."""
    what, configure = SKIPPABLE[name]
    return (
        f"NOT CHECKED: {why}.\n    A gate that says safe must have checked: configure "
        f"{configure},\n    or opt out of this check explicitly (recorded in the verdict "
        f"and MIGRATION_STATE.md): --skip-check {name}, or in the inventory\n"
        f"        gate:\n          skipChecks: [{name}]"
    )


def skipped_message(opt: OptOut, why: str) -> str:
    return f"skipped by opt-out {opt.name} ({opt.source}): {why}"
