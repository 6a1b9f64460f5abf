"""A capture of the seeded example rehearsal, replayed into a fresh rehearsal, gives the same
pass/fail of phases 1-4, testcase by testcase, as the example itself (tests/scenarios/
capture_replay.py). Phase 3 is limited here to two components (``-k "envoy or analyzer"``: a
helm release and a kubectl-applied workload) to keep the test's time down; phase 4 then checks
what those two left. The full chain (all components) is benchmarks/capture_replay_phases.py.
"""
from __future__ import annotations

import pytest

from tests.scenarios.capture_replay import PHASES, compare

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]
PHASE3_K = "envoy or analyzer"


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    return compare(tmp_path_factory.mktemp("capture-replay"), PHASE3_K)


def test_replay_of_the_example_reports_no_problem(comparison):
    assert comparison.replay_problems == [], comparison.replay_problems


@pytest.mark.parametrize("phase", PHASES)
def test_same_outcome_per_testcase_as_the_seeded_example(comparison, phase):
    seeded = comparison.seeded.outcomes[phase]
    replayed = comparison.replayed.outcomes[phase]
    # not vacuous: the phase ran testcases, and some of them passed on the seeded example
    assert seeded and any(o == "passed" for o in seeded.values()), comparison.seeded.tail(phase)
    diff = [d for d in comparison.differences() if d.startswith(f"phase {phase} ")]
    assert not diff, "\n".join(diff) + "\n--- replay output ---\n" + \
        comparison.replayed.tail(phase)
    assert replayed == seeded


def test_phase3_handed_over_the_selected_components_on_both(comparison):
    for side in (comparison.seeded, comparison.replayed):
        names = side.outcomes[3]
        assert any("envoy" in n for n in names) and any("analyzer" in n for n in names), names
        assert not [n for n, o in names.items() if o in ("failed", "error")], side.tail(3)
