"""Scenario plugin (loaded into the child pytest with ``-p``): a deterministic kill point inside
the abort. Right after the journal has written (and fsync'd) the ``done`` entry of the FIRST
mutation of an abort ``orphan`` step, the process stops itself with SIGSTOP; the scenario sees it
stopped and SIGKILLs it. Nothing in what the suite does is changed: the run is frozen between two
mutations, exactly where a kill would leave it, instead of racing the next one."""
from __future__ import annotations

import os
import signal

from handover.core.journal import Journal


def pytest_configure(config) -> None:
    original = Journal.done
    seen = {"orphan": 0}

    def done(self: Journal, id: str, action: str, **detail) -> None:
        original(self, id, action, **detail)
        if self.context.get("phase") == "abort" and self.context.get("step") == "orphan":
            seen["orphan"] += 1
            if seen["orphan"] == 1:
                os.kill(os.getpid(), signal.SIGSTOP)

    Journal.done = done
