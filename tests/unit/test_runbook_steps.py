"""The one step model (handover/runbook.py) and what plugins/runbook.py derives from it, in a child
pytest (pytester) with steps that touch no cluster: an unknown chain or step name stops the
session at collection (before: a misspelt `runbook.require("...")` name blocked nothing); steps are
ordered after the steps they need (pytest-order markers); a step is blocked by a needed step that
failed or did not act, decided from the recorded outcome, not from its skip message."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from handover import runbook

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]


def test_a_need_must_name_an_earlier_step():
    with pytest.raises(ValueError, match="step b needs 'c', which is not an earlier step"):
        runbook.Chain("x", (runbook.Step("a"), runbook.Step("b", needs=("c",)),
                            runbook.Step("c")))
    with pytest.raises(KeyError, match="'bootstrapp' is not a step of the phase2 chain"):
        runbook.PHASE2.step("bootstrapp")


def test_the_chains_read_like_the_runbook():
    assert runbook.PHASE3.names == ("preconditions", "backup", "snapshot", "handover", "ready",
                                    "adopted", "finish", "record")
    assert runbook.PHASE3.mutation_begins == "handover" and runbook.PHASE3.rolls_back()
    assert not runbook.ABORT.rolls_back() and runbook.ABORT.per_component == "reverse"
    assert [s.name for s in runbook.PHASE4.steps if s.mutates] == ["resume_in_git", "reconciled"]


@pytest.fixture()
def child(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copy(ROOT / "examples" / "homelab" / "migration.yaml",
                pytester.path / "migration.yaml")
    pytester.makeconftest('pytest_plugins = ["plugins.safety", "plugins.runbook"]\n')
    return pytester


def test_misspelt_step_name_is_a_collection_error(child: pytest.Pytester):
    child.makepyfile(test_p2=textwrap.dedent("""\
        import pytest
        pytestmark = pytest.mark.chain("phase2")

        @pytest.mark.step("bootstrapp")
        def test_bootstrap():
            pass
        """))
    res = child.runpytest_subprocess("-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "test_p2.py::test_bootstrap: 'bootstrapp' is not a step of the phase2 chain" in \
        res.stderr.str()


def test_unknown_chain_and_unnamed_step_are_collection_errors(child: pytest.Pytester):
    child.makepyfile(test_x=textwrap.dedent("""\
        import pytest
        pytestmark = pytest.mark.chain("phase5")

        @pytest.mark.step("bootstrap")
        def test_bootstrap():
            pass
        """))
    res = child.runpytest_subprocess("-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "'phase5' is not a chain of the runbook" in res.stderr.str()
    child.makepyfile(test_x=textwrap.dedent("""\
        import pytest
        pytestmark = pytest.mark.chain("phase4")

        def test_forgotten():
            pass
        """))
    res = child.runpytest_subprocess("-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "every test of the phase4 chain is one of its steps" in res.stderr.str()


PHASE4 = '''
import pytest
from plugins.safety import skip_unless_perform

pytestmark = pytest.mark.chain("phase4")

# defined out of order on purpose: each step must run after the steps it needs
@pytest.mark.step("every_kustomization_ready")
def test_every_kustomization_ready():
    pass

@pytest.mark.step("reconciled")
def test_reconciled():
    pass

@pytest.mark.step("resume_in_git")
def test_resume_in_git(perform):
    skip_unless_perform(perform, "push the resume")

@pytest.mark.step("snapshot_before_resume")
def test_snapshot_before_resume():
    pass

@pytest.mark.step("component_handed_over")
def test_component_handed_over():
    # work done already: a plain skip, even one whose message reads like a dry run, blocks nothing
    pytest.skip("dry run (no --perform): not run: kept from the first run")

@pytest.mark.step("no_temporary_kustomizations")
def test_no_temporary_kustomizations():
    pass
'''


def test_steps_run_after_what_they_need(child: pytest.Pytester):
    child.makepyfile(test_p4=PHASE4)
    res = child.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", "-q")
    ids = [line.split("::")[1] for line in res.stdout.lines if "::" in line]
    assert ids.index("test_resume_in_git") < ids.index("test_reconciled") < \
        ids.index("test_every_kustomization_ready")
    assert ids.index("test_component_handed_over") < ids.index("test_snapshot_before_resume")
    assert ids.index("test_no_temporary_kustomizations") < ids.index("test_snapshot_before_resume")


def test_blocking_comes_from_the_recorded_outcome(child: pytest.Pytester):
    child.makepyfile(test_p4=PHASE4)
    res = child.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    res.assert_outcomes(passed=2, skipped=4)
    out = res.stdout.str()
    # the step that did not act (dry run) blocks what needs it, and that block is transitive
    assert "not run: the earlier step test_p4.py::test_resume_in_git was skipped in this run" \
        in out
    assert "not run: the earlier step test_p4.py::test_reconciled was skipped in this run" in out
    # the plain skip ("done already") did not block: snapshot_before_resume ran and passed
    assert "PASSED test_p4.py::test_snapshot_before_resume" in out


def test_a_failed_step_blocks_what_needs_it(child: pytest.Pytester):
    child.makepyfile(test_p4=PHASE4.replace('''def test_no_temporary_kustomizations():
    pass''', '''def test_no_temporary_kustomizations():
    assert False, "handover-loki left"'''))
    res = child.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "--perform")
    out = res.stdout.str()
    assert "not run: the earlier step test_p4.py::test_no_temporary_kustomizations failed in " \
           "this run" in out
    # with --perform the Git step acts, but it needs the failed one: blocked, as is the rest
    res.assert_outcomes(passed=0, failed=1, skipped=5)
