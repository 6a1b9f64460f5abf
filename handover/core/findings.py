"""Findings: what a check found wrong, as plain data that prints as a small report.

A check is a function returning a list of Findings (empty = pass); suites assert on them and the
report and JUnit output show them. Checks are shared: phase 3 re-runs phase 1's hazard checks for
one component by calling the same functions.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    check: str  # the check's name, e.g. "adoption-target"
    subject: str  # the object, e.g. "HelmRelease logging/loki"
    problem: str  # what is wrong: field, live value, Git value
    fix: str  # what to do
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        return f"[{self.check}] {self.subject}: {self.problem}\n    fix: {self.fix}"

    def to_dict(self) -> dict:
        return asdict(self)


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def report(findings: Iterable[Finding]) -> str:
    fs = list(findings)
    return f"{len(fs)} finding(s):\n" + "\n".join(str(f) for f in fs)


class FindingWarning(UserWarning):
    """A finding of severity warning: shown (pytest lists it under warnings), never failing."""


def gate(findings: Iterable[Finding], detail: str = "") -> str | None:
    """A gate check's verdict on its findings: each warning is printed and emitted as a
    :class:`FindingWarning`; the errors' report (``detail`` appended after a blank line, e.g. an
    ownership table) when there are any, else None (the check passes)."""
    fs = list(findings)
    for f in fs:
        if f.severity != "error":
            print(f"warning: {f}")
            warnings.warn(FindingWarning(str(f)), stacklevel=2)
    errs = errors(fs)
    if not errs:
        return None
    return report(errs) + (f"\n\n{detail}" if detail else "")
