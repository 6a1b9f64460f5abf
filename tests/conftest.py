"""Fixtures shared by the project's own tests (tests/)."""
from __future__ import annotations

import time
from typing import Callable

import pytest

from tests import rehearsal_support

# --- rehearsal_cluster -------------------------------------------------------------------------
# One real rehearsal cluster per test session, in its own state directory with its own ports,
# stopped and purged at the end of the session. Tests that need it are marked `rehearsal`.


@pytest.fixture(scope="session")
def rehearsal_cluster(tmp_path_factory):
    """A running RehearsalCluster (handover.rehearsal.cluster), shared by the session."""
    with rehearsal_support.rehearsal_cluster(
            tmp_path_factory.mktemp("rehearsal") / "state") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def rehearsal_api(rehearsal_cluster):
    """An admin kubernetes ApiClient for the session's rehearsal cluster."""
    from kubernetes import config
    api = config.new_client_from_config(str(rehearsal_cluster.kubeconfig),
                                        context=rehearsal_cluster.context)
    yield api
    api.close()


def wait_for(check: Callable[[], object], what: str, timeout: float = 30.0,
             interval: float = 0.2):
    """Poll ``check`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as e:  # noqa: BLE001 - report the last error if it never succeeds
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")


@pytest.fixture
def eventually():
    """``eventually(check, what, timeout=30)``: poll until ``check()`` is truthy, return it."""
    return wait_for
# --- end rehearsal_cluster ------------------------------------------------------------------------
