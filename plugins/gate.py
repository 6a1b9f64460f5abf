"""The gate's named opt-outs (handover.gate.optouts), as a pytest plugin.

Option: ``--skip-check NAME`` (repeatable; names in handover.gate.optouts.SKIPPABLE), merged with the
inventory's ``gate.skipChecks``. A check that cannot run calls ``not_checked(config, NAME, why)``:
with the opt-out in effect it is skipped as "skipped by opt-out NAME (source)"; without it, it
FAILS naming what to configure and the opt-out. The terminal summary (the verdict) lists every
opt-out in effect and the tests it skipped; check 8 writes them into MIGRATION_STATE.md.
"""

from __future__ import annotations

import pytest

from handover.gate import optouts as gate

_SKIPPED = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("flux-handover").addoption(
        "--skip-check",
        action="append",
        default=[],
        metavar="NAME",
        help="phase 1: opt out of a check that cannot run here, by name (repeatable; "
        f"{', '.join(sorted(gate.SKIPPABLE))}); printed in the verdict and in "
        "MIGRATION_STATE.md. Also: gate.skipChecks in the inventory",
    )


def opt_outs(config: pytest.Config) -> list[gate.OptOut]:
    from plugins.safety import load_inventory

    inv = load_inventory(config, stop=False)  # an invalid one: the safety plugin reports it
    inv_names = inv.gate_skip_checks if inv is not None else ()
    try:
        return gate.opt_outs(config.getoption("--skip-check") or [], inv_names)
    except gate.UnknownCheck as e:
        raise pytest.UsageError(str(e)) from None


def pytest_configure(config: pytest.Config) -> None:
    try:
        gate.validate(config.getoption("--skip-check") or [], "--skip-check")
    except gate.UnknownCheck as e:
        raise pytest.UsageError(str(e)) from None


def not_checked(config: pytest.Config, name: str, why: str) -> None:
    """Skip (opted out of ``name``) or fail (not opted out): never returns."""
    for o in opt_outs(config):
        if o.name == name:
            config.stash.setdefault(_SKIPPED, []).append((name, why))
            pytest.skip(gate.skipped_message(o, why))
    pytest.fail(gate.not_checked_message(name, why), pytrace=False)


@pytest.fixture(scope="session")
def gate_opt_outs(pytestconfig: pytest.Config) -> list[gate.OptOut]:
    return opt_outs(pytestconfig)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    try:
        outs = opt_outs(config)
    except Exception:
        return
    skipped = config.stash.get(_SKIPPED, [])
    if not outs and not skipped:
        return
    tr = terminalreporter
    tr.section("gate opt-outs (NOT checked)", sep="=", yellow=True, bold=True)
    for o in outs:
        n = sum(1 for name, _ in skipped if name == o.name)
        tr.write_line(
            f"{o.name} ({o.source}): not checked: {o.skips}; {n} test(s) skipped by it in this run"
        )
        for name, why in skipped:
            if name == o.name:
                tr.write_line(f"    - {why[:300]}")
