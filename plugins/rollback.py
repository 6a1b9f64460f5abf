"""The rollback part of the runbook plugin (plugins/runbook.py decides when; this runs it).

A per-component chain whose steps name ``undo=ROLLBACK`` (handover.runbook.PHASE3) is rolled back
at once when one of its steps fails after its first mutating step began, unless the chain had
passed its ``finished_at`` step (then the failure is reported, never answered by undoing the
handover). Every action and its result goes into the journal, the failing test's JUnit
properties (``rollback.<n>``), a "rollback" report section and the migration report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handover.chain import rollback as rollback_mod
from handover.core.inventory import Inventory
from handover.core.kube import Kube
from handover.core.mutation import Mutator
from plugins.journal import FINISHED_AT, HandoverRun


@dataclass
class Resources:
    """The session's cluster client, inventory and Mutator, registered by the ``mutator``
    fixture when it is made (the rollback runs with the same ones as the steps)."""

    kube: Kube
    inventory: Inventory
    mutator: Mutator


def run_rollback(
    run: HandoverRun, resources: Resources | None, component: Any, reason: str
) -> list[rollback_mod.RollbackAction]:
    """Run the component's rollback now, journaled (started, then rolled-back / failed)."""
    if resources is None:
        raise RuntimeError(
            "the rollback needs the session's Mutator, which no step of this run "
            "has asked for (the `mutator` fixture registers it)"
        )
    cr = run.component(component.name)
    if cr.probe is not None:  # stop measuring: the rollback is not the handover
        cr.probe_result = cr.probe.stop()
        cr.probe = None
    record = cr.backup if cr.backup is not None else run.backup_record(component.name)
    run.record_step(component.name, "rollback", "started", reason=reason)
    rb = rollback_mod.Rollback(
        resources.kube, resources.mutator, resources.inventory, component, record
    )
    actions = rb.run()
    run.record_step(
        component.name,
        "rollback",
        "rolled-back" if rb.ok else "rollback-failed",
        actions=[a.to_dict() for a in actions],
    )
    return actions


def answer_failure(
    run: HandoverRun,
    resources: Resources | None,
    component: Any,
    step: str,
) -> tuple[list[rollback_mod.RollbackAction], bool, str]:
    """What a failing step of the chain gets: (actions, rolled back?, the component's status)."""
    if run.finished(component.name):
        # handed over: Flux manages it and the temporary Kustomization is gone. A later step's
        # failure is reported, never answered by undoing the handover.
        return (
            [
                rollback_mod.RollbackAction(
                    "rollback",
                    "not-needed",
                    f"step {step} failed after the handover finished (step {FINISHED_AT} passed): a "
                    "finished component is never rolled back automatically; fix what the step reports "
                    "and run again (the finished steps are not repeated)",
                )
            ],
            False,
            f"handed over; step {step} FAILED afterwards (not rolled back)",
        )
    if run.mutation_began(component.name):
        try:
            actions = run_rollback(run, resources, component, f"step {step} failed")
            rolled = all(a.result != "failed" for a in actions)
        except Exception as e:  # the rollback itself broke: say so loudly, keep the halt
            actions = [
                rollback_mod.RollbackAction("rollback", "failed", f"{e.__class__.__name__}: {e}")
            ]
            rolled = False
        return actions, rolled, "rolled back" if rolled else "rollback FAILED: see the actions"
    return (
        [
            rollback_mod.RollbackAction(
                "rollback", "not-needed", f"step {step} failed before any mutation"
            )
        ],
        False,
        "halted (nothing had been changed)",
    )
