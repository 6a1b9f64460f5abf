"""Scenario plugin (loaded into the child pytest with ``-p``): a deterministic kill point inside a
rollback. Right after the journal has written (and fsync'd) the ``done`` entry of the FIRST
mutation made during a rollback (journal step ``rollback``), the process stops itself with
SIGSTOP; the scenario sees that entry in the journal, sees the process stopped, and SIGKILLs it.
Nothing is changed in what the suite does: the run is frozen between two rollback actions, exactly
where a kill would leave it, instead of racing the next action."""
from __future__ import annotations

import os
import signal

from handover.core.journal import Journal


def pytest_configure(config) -> None:
    original = Journal.done
    seen = {"rollback": 0}

    def done(self: Journal, id: str, action: str, **detail) -> None:
        original(self, id, action, **detail)
        if self.context.get("step") == "rollback":
            seen["rollback"] += 1
            if seen["rollback"] == 1:
                os.kill(os.getpid(), signal.SIGSTOP)

    Journal.done = done
