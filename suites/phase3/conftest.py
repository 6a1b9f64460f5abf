"""Phase 3 options.

--accept-hazard CHECK (repeatable): let step 1 pass although phase 1's hazard check CHECK reports
errors for the component (e.g. ``adoption-values``). The accepted findings are printed, journaled
and written into the report; the later steps still prove whether Flux adopted in place. For
rehearsing what the other steps catch, or for an operator who has decided to accept a rollout.
"""

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("flux-handover").addoption(
        "--accept-hazard",
        action="append",
        default=[],
        metavar="CHECK",
        help="phase 3: accept errors of this phase-1 hazard check in the precondition step "
        "(repeatable; recorded in the report)",
    )


@pytest.fixture(scope="session")
def accepted_hazards(pytestconfig: pytest.Config) -> set[str]:
    return set(pytestconfig.getoption("--accept-hazard"))
