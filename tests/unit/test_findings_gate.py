"""handover.core.findings.gate: phase 1's one verdict on a check's findings (warnings shown and
never failing, errors failing with their report), used by fixtures.hazards.assert_no_hazards and
the ownership and chart-availability checks."""
from __future__ import annotations

import pytest

from fixtures.hazards import HazardWarning, assert_no_hazards
from handover.core.findings import Finding, FindingWarning, gate

WARN = Finding("ownership", "ConfigMap a/b", "not in the inventory", "add it", "warning")
ERR = Finding("ownership", "Service a/s", "owned by two releases", "pick one")


def test_warnings_are_shown_and_do_not_fail(capsys):
    with pytest.warns(FindingWarning, match="ConfigMap a/b"):
        assert gate([WARN]) is None
    assert "warning: [ownership] ConfigMap a/b" in capsys.readouterr().out
    assert gate([]) is None


def test_errors_fail_with_their_report_and_the_detail_only_errors_listed():
    with pytest.warns(FindingWarning):
        failure = gate([WARN, ERR], detail="OWNER TABLE")
    assert failure is not None and failure.startswith("1 finding(s):")
    assert "Service a/s: owned by two releases" in failure and "ConfigMap a/b" not in failure
    assert failure.endswith("\n\nOWNER TABLE")
    assert gate([ERR]) == "1 finding(s):\n" + str(ERR)


def test_assert_no_hazards_is_the_pytest_face_of_the_gate():
    assert HazardWarning is FindingWarning
    with pytest.warns(HazardWarning):
        assert_no_hazards([WARN])
    with pytest.raises(pytest.fail.Exception) as e:
        assert_no_hazards([ERR], "TABLE")
    assert str(e.value) == gate([ERR], "TABLE")
