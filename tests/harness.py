"""Run a runbook suite in a child pytest process and read its JUnit XML: the scenario catalogue
uses it to show that a broken variant makes exactly the intended test fail with the intended
message."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class CaseResult:
    name: str  # e.g. test_adoption_target[loki]
    classname: str
    outcome: str  # passed | failed | error | skipped
    message: str


@dataclass
class SuiteRun:
    returncode: int
    cases: list[CaseResult]
    stdout: str
    junit: Path
    by_name: dict[str, CaseResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name = {c.name: c for c in self.cases}

    def outcomes(self, outcome: str) -> list[str]:
        return sorted(c.name for c in self.cases if c.outcome == outcome)

    @property
    def failed(self) -> list[str]:
        return sorted(c.name for c in self.cases if c.outcome in ("failed", "error"))

    def message(self, name: str) -> str:
        return self.by_name[name].message


def run_suite(paths: list[str], inventory: Path, junit: Path, *args: str,
              env: dict | None = None, timeout: float = 900) -> SuiteRun:
    argv = [sys.executable, "-m", "pytest", *paths, "--inventory", str(inventory),
            f"--junitxml={junit}", "-p", "no:cacheprovider", "-q", *args]
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    cases: list[CaseResult] = []
    if junit.exists():
        for tc in ET.parse(junit).getroot().iter("testcase"):
            outcome, message = "passed", ""
            for tag in ("failure", "error", "skipped"):
                el = tc.find(tag)
                if el is not None:
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                    message = (el.get("message") or "") + "\n" + (el.text or "")
                    break
            cases.append(CaseResult(tc.get("name", ""), tc.get("classname", ""), outcome,
                                    message))
    return SuiteRun(p.returncode, cases, p.stdout + p.stderr, junit)
