"""The runbook's chains, declared once as data: phases 2, 3, 4 and the abort.

A chain is an ordered list of steps. A step says whether it changes the cluster or the GitOps
remote (``mutates``), what undoes it (``undo``: the rollback action that answers a failure after
it began, or the runbook step that reverses it), and which earlier steps it needs (``needs``: a
step whose needed step failed, or did not act, in this run is skipped naming it).

Everything else is derived from this data by the pytest layer (plugins/runbook.py):
- ordering: the phases in ``PHASES`` order, each step after what it needs (pytest-order markers);
  a per-component chain runs one component's whole chain before the next one's;
- blocking: from the outcomes recorded in this run (failed / did not act / itself blocked);
- journaling and resume: per-component chains journal every step (started / passed / failed)
  under the chain's phase; a resumed run skips what the journal says passed;
- rollback: the first failing step of a per-component chain halts it; when a step that ``undo``
  names ``rollback`` had begun, and the chain has not passed ``finished_at``, the component is
  rolled back at once.

Tests bind to steps with two markers: ``pytestmark = pytest.mark.chain("phase3")`` on the module
and ``@pytest.mark.step("backup")`` on the test; an unknown chain or step name stops the session
at collection. This module is plain data (no pytest).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLLBACK = "rollback"  # the undo of phase 3's mutating steps: handover.chain.rollback.Rollback


@dataclass(frozen=True)
class Step:
    name: str
    mutates: bool = False  # changes the cluster or the GitOps remote (only with --perform)
    undo: str = ""  # what undoes it: ROLLBACK (run at once on a failure), or the runbook step
    needs: tuple[str, ...] = ()  # steps that must have passed (or been done already) first


@dataclass(frozen=True)
class Chain:
    phase: str
    steps: tuple[Step, ...]
    # one chain per inventory component ("inventory": lowest risk first; "reverse": highest
    # risk first), or "" for a chain whose steps run once (parametrized by other axes)
    per_component: str = ""  # (its steps are linear: each needs the one before it)
    finished_at: str = ""  # once this step passed, no later failure is undone automatically
    final: tuple[Step, ...] = ()  # steps run once, after every component's chain
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(s.name for s in self.steps + self.final))
        for s in self.steps + self.final:
            for n in s.needs:
                if n not in self.names or self.names.index(n) >= self.names.index(s.name):
                    raise ValueError(
                        f"chain {self.phase}: step {s.name} needs {n!r}, which is "
                        "not an earlier step of the chain"
                    )

    def step(self, name: str) -> Step:
        for s in self.steps + self.final:
            if s.name == name:
                return s
        raise KeyError(
            f"{name!r} is not a step of the {self.phase} chain (steps: {', '.join(self.names)})"
        )

    def index(self, name: str) -> int:
        return self.names.index(name)

    @property
    def first(self) -> str:
        return self.steps[0].name

    @property
    def last(self) -> str:
        return self.steps[-1].name

    @property
    def mutation_begins(self) -> str:
        """The first mutating step: from it on, an attempt has changed (or may have changed)
        something."""
        return next(s.name for s in self.steps if s.mutates)

    def after_mutation_began(self, name: str) -> bool:
        return name in self.names[: len(self.steps)] and self.index(name) >= self.index(
            self.mutation_begins
        )

    def rolls_back(self) -> bool:
        return any(s.undo == ROLLBACK for s in self.steps)


PHASE2 = Chain(
    "phase2",
    (
        Step("snapshot_before_bootstrap"),
        Step("entrypoints_suspended_in_git", mutates=True, undo="phase 4 resumes them in Git"),
        Step(
            "bootstrap",
            mutates=True,
            needs=("entrypoints_suspended_in_git",),
            undo="abort --remove-flux",
        ),
        Step("entrypoint_present_and_suspended", needs=("bootstrap",)),
        Step("nothing_moved", needs=("snapshot_before_bootstrap", "bootstrap")),
        Step("diff", needs=("bootstrap",)),
    ),
)

PHASE3 = Chain(
    "phase3",
    (
        Step("preconditions"),
        Step("backup"),
        Step("snapshot"),
        Step("handover", mutates=True, undo=ROLLBACK),
        Step("ready", undo=ROLLBACK),
        Step("adopted", undo=ROLLBACK),
        Step("finish", mutates=True, undo="abort (hands the component back)"),
        Step("record"),
    ),
    per_component="inventory",
    finished_at="finish",
)

PHASE4 = Chain(
    "phase4",
    (
        Step("component_handed_over"),
        Step("no_temporary_kustomizations"),
        Step(
            "snapshot_before_resume", needs=("component_handed_over", "no_temporary_kustomizations")
        ),
        Step(
            "resume_in_git",
            mutates=True,
            undo="phase 2 step 1 suspends them again",
            needs=(
                "component_handed_over",
                "no_temporary_kustomizations",
                "snapshot_before_resume",
            ),
        ),
        Step("reconciled", mutates=True, needs=("resume_in_git",)),
        Step("every_kustomization_ready", needs=("reconciled",)),
        Step("every_helmrelease_ready", needs=("reconciled",)),
        Step("nothing_deleted", needs=("snapshot_before_resume", "reconciled")),
        Step("health", needs=("reconciled",)),
    ),
)

# No rollback of an abort: a failure leaves everything frozen (suspended), the safe state; every
# step checks the live state first, so running the abort again continues where it stopped.
ABORT = Chain(
    "abort",
    (
        Step("preconditions"),
        Step("freeze", mutates=True, undo="phase 4 resumes the entry points"),
        Step("orphan", mutates=True, undo="phase 3 hands the component over again"),
        Step("prove"),
    ),
    per_component="reverse",
    final=(Step("remove_flux", mutates=True),),
)

CHAINS: dict[str, Chain] = {c.phase: c for c in (PHASE2, PHASE3, PHASE4, ABORT)}
# The order of the phases in one session (`pytest` runs suites/ in this order; the abort runs on
# its own). Phase 1 is the read-only gate: its checks keep their file order.
PHASES = ("phase1", "phase2", "phase3", "phase4")


def chain(name: str) -> Chain:
    try:
        return CHAINS[name]
    except KeyError:
        raise KeyError(
            f"{name!r} is not a chain of the runbook (chains: {', '.join(CHAINS)})"
        ) from None
