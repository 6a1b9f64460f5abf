"""The report part of the runbook plugin (plugins/runbook.py owns one ``Recorder``).

Option: --report-dir (default ``reports``, relative to where pytest was started; registered by
plugins/runbook.py).

Fixture ``report`` (plugins/runbook.py): the run's MigrationReport (handover.report.migration).
The phase-3 steps and the halt-and-rollback part fill it; at the end of a session in which any
phase-3 step ran, it is written to ``<report-dir>/<run>.md`` and ``<run>.json`` (mode 0600; names
and numbers only, no values, manifests or Secret data) and its path is printed in the terminal
summary.

The Recorder also records what the HTML report (handover.report.html, ``<run>.html``) draws:
- phases 1, 2 and 4: every check with its outcome, wall-clock start/end and its message
  (findings and fixes); phase 2's diff counts and deleted/modified objects per entry point (from
  the JUnit properties test_diff records);
- phase 3 (with --perform): each step's start/end and run id, the probe's up/down segments and
  outage windows (wall clock), pods before/after with UIDs, who made the new release revision,
  the rollback's journaled actions with their times.
A phase-3 run's report is rewritten after every step, so a run that is killed leaves its part
for the resumed run's page (one timeline). Writing never fails the run: an unwritable report
directory is reported in the terminal summary.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from handover.report.html import safe_detail
from handover.report.migration import MigrationReport, StepResult
from plugins.journal import HandoverRun


def report_dir(config: pytest.Config) -> Path:
    d = Path(config.getoption("--report-dir"))
    if not d.is_absolute():
        d = Path(config.invocation_params.dir) / d
    return d


def _fidelity_notes(config: pytest.Config, rep: MigrationReport) -> None:
    """The target's run-level fidelity notes (a rehearsal's; none on a live cluster)."""
    from handover import target as targets
    from plugins.safety import load_inventory

    try:
        target = targets.of(load_inventory(config))
    except Exception:  # noqa: BLE001 - the report is written regardless
        return
    rep.fidelity_notes = target.fidelity_notes()


class Recorder:
    """The run's MigrationReport, what it records and where it was written."""

    def __init__(
        self, config: pytest.Config, run: HandoverRun, inventory: str, context: str
    ) -> None:
        self.config = config
        self.run = run
        self.report = MigrationReport(
            run=run.id,
            inventory=inventory,
            context=context,
            perform=bool(config.getoption("--perform")),
            journal=str(run.journal.path),
        )
        self.written: tuple | None = None
        self.write_error: str | None = None
        self._consumed: dict[str, Any] = {}  # component -> the probe result already drawn

    def component(self, component) -> Any:
        return self.report.component(component.name, component.type, component.risk)

    def write(self) -> None:
        """Write <run>.md/.json/.html now (after each phase-3 step, and at the end)."""
        rep = self.report
        d = report_dir(self.config)
        try:
            _enrich_rollbacks(self.run, rep)
            _fidelity_notes(self.config, rep)
            try:
                self.written = rep.write(d, html=True)
            except OSError:
                raise
            except Exception as e:  # a drawing bug must never break a migration: md + json
                self.written = rep.write(d, html=False)
                self.write_error = (
                    f"the HTML page failed ({e.__class__.__name__}: {e}); the "
                    ".md and .json are written"
                )
                return
            self.write_error = None
        except OSError as e:
            self.write_error = f"{d}: {e.__class__.__name__}: {e}"

    def terminal_summary(self, terminalreporter) -> None:
        if self.written is not None:
            md, js = self.written
            html = md.with_suffix(".html")
            terminalreporter.write_line(
                f"migration report: {md} ({js.name}{', ' + html.name if html.exists() else ''})"
            )
        if self.write_error is not None:
            terminalreporter.write_line(f"migration report NOT written: {self.write_error}")


# -- recording what the HTML report draws -------------------------------------------------------


def phase_of(item: pytest.Item, chain_phase: str = "") -> int:
    """3 for a phase-3 chain step (``chain_phase``: the phase of the item's chain), N for an item
    under a `phaseN` directory of the runbook (suites/phaseN/...), else 0."""
    if chain_phase == "phase3":
        return 3
    parts = Path(str(item.path)).parts
    if "suites" not in parts:
        return 0
    for part in reversed(parts):
        if part.startswith("phase") and part[5:].isdigit():
            return int(part[5:])
    return 0


def _message(report: pytest.TestReport) -> str:
    if report.skipped:
        if hasattr(report, "wasxfail"):
            return str(report.wasxfail)
        lr = report.longrepr
        return str(lr[2]) if isinstance(lr, tuple) and len(lr) == 3 else str(lr or "")
    if report.passed:
        return ""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return str(report.longrepr)[-3000:]


def _outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "expected failure" if report.skipped else "passed"
    return {"passed": "passed", "failed": "failed", "skipped": "skipped"}[report.outcome]


def record(
    rec: Recorder, item: pytest.Item, report: pytest.TestReport, start: float | None, ref
) -> None:
    """One report of a runbook item into the migration report (``ref``: its chain step, or
    None)."""
    phase = phase_of(item, ref.chain.phase if ref is not None else "")
    if not phase:
        return
    if report.when == "teardown" or (report.when == "setup" and report.passed):
        return
    rep = rec.report
    if phase not in rep.phases:
        rep.phases.append(phase)
    end = time.time()
    start = start if report.when == "call" else end
    if phase == 3:
        if rec.config.getoption("--perform"):
            _record_step(rec, ref.step.name, ref.component, start or end, end)
        return
    name = item.nodeid.split("::", 1)[-1]
    check: dict[str, Any] = {
        "phase": phase,
        "name": name,
        "outcome": _outcome(report),
        "seconds": round(report.duration, 3),
        "start": start or end,
        "end": end,
        "message": _message(report)[:4000],
    }
    rep.checks.append(check)
    if phase == 2:
        _record_diff(item, rep, report)


def _record_diff(item: pytest.Item, rep: MigrationReport, report: pytest.TestReport) -> None:
    props = dict(report.user_properties) if report.user_properties else {}
    if "diff_counts" not in props:
        return
    try:
        counts = json.loads(props["diff_counts"])
    except ValueError:
        return
    ep = getattr(getattr(item, "callspec", None), "params", {}).get("entrypoint")
    counts = dict(counts)
    counts["configured"] = counts.get("modified", 0) + counts.get("owner-labels", 0)
    rep.diffs.append(
        {
            "entrypoint": getattr(ep, "name", str(ep or item.name)),
            "counts": counts,
            "deleted": sorted(k.split(": ", 1)[1] for k in props if k.startswith("deleted: ")),
            "configured": sorted(k.split(": ", 1)[1] for k in props if k.startswith("modified: ")),
            "errors": sorted(k.split(": ", 1)[1] for k in props if k.startswith("error: ")),
        }
    )


def _record_step(rec: Recorder, step: str, component, start: float, end: float) -> None:
    rep, run = rec.report, rec.run
    c = rep.components.get(component.name)
    if c is None:  # not started (an earlier component halted): nothing to draw
        return
    cr = run.component(component.name)
    for sr in reversed(c.steps):
        if sr.step == step:
            if sr.start is None:
                sr.start = end - sr.seconds if sr.outcome != "skipped" else end
                sr.start = min(sr.start, start) if sr.outcome != "skipped" else end
                sr.end = end
                sr.run = run.id
                detail = dict(run.step_detail(component.name, step) or {})
                if step == "backup" and cr.backup is not None:
                    detail.setdefault("backup", str(getattr(cr.backup, "directory", "")))
                if step == "snapshot" and cr.snapshot_path:
                    detail.setdefault("snapshot", str(cr.snapshot_path))
                sr.detail = {k: safe_detail(v) for k, v in detail.items() if v not in ("", None)}
            break
    _from_journal(run, c, component.name, step)
    consumed = rec._consumed
    res = cr.probe_result
    if res is not None and consumed.get(component.name) is not res:
        consumed[component.name] = res
        off = getattr(res, "clock_offset", 0.0) or 0.0
        for check, segs in (getattr(res, "segments", None) or {}).items():
            c.probe_segments.setdefault(check, []).extend(
                [[a + off, b + off, bool(ok)] for a, b, ok in segs]
            )
        c.outages += [
            {
                "check": o.check,
                "start": o.start + off,
                "end": o.end + off,
                "seconds": o.seconds,
                "samples": o.samples,
                "first_error": o.first_error[:200],
            }
            for o in res.outages
        ]
    if cr.before is not None and not c.pods_before:
        c.pods_before = [{"pod": f"{p.namespace}/{p.name}", "uid": p.uid} for p in cr.before.pods]
    if cr.after is not None:
        c.pods_after = [{"pod": f"{p.namespace}/{p.name}", "uid": p.uid} for p in cr.after.pods]
    if step == "adopted" and c.revision_before is not None and component.helm_release:
        hr = component.helm_release
        passed = any(sr.step == "adopted" and sr.outcome == "passed" for sr in c.steps)
        c.revision_made_by = (
            f"helm-controller, HelmRelease {hr.namespace}/{hr.name}"
            if passed
            else "not proven: step adopted failed"
        )
    rec.write()


def _from_journal(run, c, component: str, step: str) -> None:
    """A step a resumed run skips because an earlier (killed) run passed it: that run's bar, from
    the journal's started/passed records, so the page shows both parts even when the killed run
    never wrote its report."""
    p = run.component(component).progress
    earlier = ((p.passed.get(step) if p else None) or {}).get("run")
    if (
        not earlier
        or earlier == run.id
        or any(s.step == step and s.run == earlier for s in c.steps)
    ):
        return
    times = {
        e.action: e.time
        for e in run.journal.entries()
        if e.kind == "step"
        and e.component == component
        and e.step == step
        and (e.detail or {}).get("run") == earlier
        and e.action in ("started", "passed")
    }
    if "passed" not in times:
        return
    start = times.get("started", times["passed"])
    skipped = next(
        (i for i, s in enumerate(c.steps) if s.step == step and s.run == run.id), len(c.steps)
    )
    c.steps.insert(
        skipped,
        StepResult(
            step,
            "passed",
            times["passed"] - start,
            f"in run {earlier} (journal)",
            start=start,
            end=times["passed"],
            run=earlier,
        ),
    )


def _enrich_rollbacks(run: HandoverRun, rep: MigrationReport) -> None:
    """The rollback's journaled actions (intent / done / failed, with their times) on the lane
    of the component they rolled back."""
    if not any(c.rollback and not c.rollback_events for c in rep.components.values()):
        return
    try:
        entries = list(run.journal.entries())
    except Exception:
        return
    for c in rep.components.values():
        if not c.rollback or c.rollback_events:
            continue
        since = min([s.start for s in c.steps if s.start] + [rep.started])
        c.rollback_events = [
            {
                "t": e.time,
                "kind": e.kind if e.kind != "step" else f"step {e.action}",
                "action": e.action if e.kind != "step" else f"rollback {e.action}",
            }
            for e in entries
            if e.component == c.name and e.step == "rollback" and e.time >= since - 1
        ]
