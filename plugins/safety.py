"""Safety interlocks: the inventory, the kube-context guard and --perform.

Options registered here: --inventory, --kube-context, --kubeconfig, --perform.

- The inventory is loaded and validated before any test runs; an invalid one stops the session
  with one line per problem (nothing has touched a cluster yet).
- ``kube``: a client for the context in use; when that context is not the inventory's
  ``cluster.context``, every test that asks for the cluster fails at once naming both.
- ``perform``: mutating steps run only with --perform; without it they are skipped with the exact
  action they would have taken (``skip_unless_perform``).
- Tests with a ``component`` argument are parametrized over the inventory's components, in
  handover order, with the component name as id (so ``-k envoy`` selects one component).
  ``@pytest.mark.component_types("helm", ...)`` limits them to some types,
  ``@pytest.mark.component_with("pvs")`` to components that have PVs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from handover.core import inventory as inventory_mod
from handover.core.errors import HandoverError
from handover.core.kube import ContextMismatch, Kube, check_context

INVENTORY_KEY = pytest.StashKey[object]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flux-handover", "flux-handover safety interlocks")
    group.addoption(
        "--inventory",
        default=os.environ.get("HANDOVER_INVENTORY", "migration.yaml"),
        help="the migration inventory (default: ./migration.yaml)",
    )
    group.addoption(
        "--kube-context",
        default=None,
        help="kube context to use (default: the inventory's cluster.context; it must match it)",
    )
    try:
        group.addoption(
            "--kubeconfig",
            default=None,
            help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)",
        )
    except ValueError:
        pass  # pytest-kind-ng (kind backend) registers the same option with the same meaning
    group.addoption(
        "--perform",
        action="store_true",
        default=False,
        help="perform mutating steps; without it they are skipped with the action they would take",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "component_types(*types): parametrize `component` only over components of these types",
    )
    config.addinivalue_line(
        "markers",
        "component_with(*fields): parametrize `component` only "
        "over components whose inventory has these fields set "
        "(e.g. pvs, health)",
    )


INVENTORY_ERROR_KEY = pytest.StashKey[str]()


def load_inventory(config: pytest.Config, stop: bool = True) -> inventory_mod.Inventory | None:
    """The validated inventory (cached). An invalid one stops the session, with one line per
    problem, before any test runs (``stop=False`` during collection: the error is kept and
    the session stops once collection is over)."""
    if INVENTORY_KEY in config.stash:
        return config.stash[INVENTORY_KEY]
    if INVENTORY_ERROR_KEY not in config.stash:
        path = Path(config.getoption("--inventory"))
        if not path.is_absolute():
            path = Path(config.invocation_params.dir) / path
        try:
            config.stash[INVENTORY_KEY] = inventory_mod.load(path)
            return config.stash[INVENTORY_KEY]
        except inventory_mod.InventoryError as e:
            config.stash[INVENTORY_ERROR_KEY] = str(e)
    if stop:
        # Stop the whole session: nothing has touched a cluster yet, nothing will.
        pytest.exit(config.stash[INVENTORY_ERROR_KEY], returncode=pytest.ExitCode.USAGE_ERROR)
    return None


INVENTORY_FIXTURES = {"inventory", "kube", "kube_context", "component", "perform"}


def pytest_collection_finish(session: pytest.Session) -> None:
    """Validate the inventory once before any test runs when a collected test needs it."""
    needs = INVENTORY_ERROR_KEY in session.config.stash or any(
        INVENTORY_FIXTURES & set(getattr(item, "fixturenames", ())) for item in session.items
    )
    if needs:
        load_inventory(session.config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "component" not in metafunc.fixturenames:
        return
    inv = load_inventory(metafunc.config, stop=False)
    if inv is None:
        metafunc.parametrize("component", [], scope="function")
        return
    marker = metafunc.definition.get_closest_marker("component_types")
    types = set(marker.args) if marker else None
    with_marker = metafunc.definition.get_closest_marker("component_with")
    fields = with_marker.args if with_marker else ()
    comps = [
        c
        for c in inv.components
        if (types is None or c.type in types) and all(getattr(c, f) for f in fields)
    ]
    metafunc.parametrize("component", comps, ids=[c.name for c in comps], scope="function")


@pytest.fixture(scope="session")
def inventory(pytestconfig: pytest.Config) -> inventory_mod.Inventory:
    return load_inventory(pytestconfig)


@pytest.fixture(scope="session")
def target(inventory: inventory_mod.Inventory):
    """Where the runbook runs (handover.target: Live | Rehearsal), chosen once per session."""
    from handover import target as targets

    return targets.of(inventory)


@pytest.fixture(scope="session")
def perform(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--perform"))


def kube_context_in_use(config: pytest.Config, inv: inventory_mod.Inventory) -> str:
    """--kube-context when given, else the inventory's cluster.context (used by name, never the
    kubeconfig's current context, so a kubeconfig pointing elsewhere cannot redirect the suite)."""
    return config.getoption("--kube-context") or inv.cluster.context


@pytest.fixture(scope="session")
def kube_context(pytestconfig: pytest.Config, inventory) -> str:
    ctx = kube_context_in_use(pytestconfig, inventory)
    try:
        check_context(ctx, inventory.cluster.context)
    except ContextMismatch as e:
        pytest.fail(str(e), pytrace=False)
    return ctx


@pytest.fixture(scope="session")
def kube(pytestconfig: pytest.Config, kube_context: str) -> Kube:
    """A client for the inventory's cluster (context-guarded)."""
    try:
        return Kube(kubeconfig=pytestconfig.getoption("--kubeconfig"), context=kube_context)
    except HandoverError as e:
        pytest.fail(str(e), pytrace=False)


def skip_unless_perform(config_or_flag, action: str) -> None:
    """Skip a mutating step without --perform, saying exactly what it would have done."""
    flag = (
        config_or_flag
        if isinstance(config_or_flag, bool)
        else bool(config_or_flag.getoption("--perform"))
    )
    if not flag:
        skip_not_acted(f"dry run (no --perform): would {action}")


def skip_not_acted(reason: str) -> None:
    """Skip, recording on the outcome that the step did not act (plugins.runbook blocks the steps
    that need it; a step skipped because its work was done already blocks nothing)."""
    __tracebackhide__ = True
    exc = pytest.skip.Exception(reason)
    exc.did_not_act = True  # type: ignore[attr-defined]
    raise exc


def did_not_act(call: pytest.CallInfo) -> bool:
    """Was the step skipped without acting (dry run, or blocked by a step it needs)?"""
    return call.excinfo is not None and bool(getattr(call.excinfo.value, "did_not_act", False))
