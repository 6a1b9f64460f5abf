"""The migration report: what happened to each component, as plain data and as Markdown.

Per component: status, measured downtime (longest failed-probe window), restarts during the
handover, the release revision before/after, duration, the halt (failed step and why), every
rollback action with its result, and the destructive runbook steps refused with the reason.
Never contains values, manifests or Secret data: only names, numbers and messages written by the
suite itself (``redact`` strips anything that looks like a credential from messages anyway).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_SECRETISH = re.compile(
    r"(?i)(password|passwd|token|secret|apikey|api_key|bearer)"
    r"(\s*[:=]\s*|\s+)(\"[^\"]*\"|'[^']*'|\S+)"
)


def redact(text: str) -> str:
    """handover.core.redact.scrub (known values, JSON, URL credentials... by their hash), then any
    ``password: x``-looking pair left."""
    from handover.core import redact as redact_mod

    return _SECRETISH.sub(
        lambda m: (
            m.group(0)
            if m.group(3).startswith("<sha256:")
            else f"{m.group(1)}{m.group(2)}<redacted>"
        ),
        redact_mod.scrub(text or ""),
    )


def _redact_all(o: Any) -> Any:
    if isinstance(o, str):
        return redact(o)
    if isinstance(o, dict):
        return {k: _redact_all(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_redact_all(v) for v in o]
    return o


@dataclass
class StepResult:
    step: str
    outcome: str  # passed | failed | skipped
    seconds: float = 0.0
    message: str = ""
    start: float | None = None  # wall clock (time.time()), for the HTML timeline
    end: float | None = None
    run: str = ""
    detail: dict[str, Any] = field(default_factory=dict)  # journal detail: paths, names


@dataclass
class ComponentReport:
    name: str
    type: str
    risk: str
    status: str = "not started"  # handed over | rolled back | rollback FAILED | halted | skipped
    steps: list[StepResult] = field(default_factory=list)
    started: float | None = None
    finished: float | None = None
    downtime_seconds: float | None = None  # None: not measured (no health check)
    probe: str = ""
    pods: int = 0
    restarts_before: int | None = None
    restarts_after: int | None = None
    revision_before: int | None = None
    revision_after: int | None = None
    pods_recreated: list[str] = field(default_factory=list)
    failed_step: str = ""
    failure: str = ""
    rollback: list[dict[str, str]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # rehearsal only: features in use that the Flux stand-ins do not reproduce
    # (handover.target: Target.proof_gaps)
    proof_gaps: list[str] = field(default_factory=list)
    # for the HTML timeline (handover.report.html): wall-clock times
    probe_segments: dict[str, list[list]] = field(default_factory=dict)  # check -> [[t0, t1, ok]]
    outages: list[dict[str, Any]] = field(default_factory=list)  # check, start, end, seconds
    pods_before: list[dict[str, str]] = field(default_factory=list)  # pod, uid
    pods_after: list[dict[str, str]] = field(default_factory=list)
    revision_made_by: str = ""
    rollback_events: list[dict[str, Any]] = field(default_factory=list)  # t, kind, action

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    @property
    def restarts(self) -> int | None:
        if self.restarts_before is None or self.restarts_after is None:
            return None
        return self.restarts_after - self.restarts_before

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["duration_seconds"] = self.duration
        d["restarts"] = self.restarts
        return d


@dataclass
class MigrationReport:
    run: str
    inventory: str
    context: str
    perform: bool
    started: float = field(default_factory=time.time)
    finished: float | None = None
    components: dict[str, ComponentReport] = field(default_factory=dict)
    journal: str = ""
    phases: list[int] = field(default_factory=list)  # the runbook phases this session ran
    # phases 1, 2 and 4: each check with its outcome (pass | fail | expected failure | skipped)
    checks: list[dict[str, Any]] = field(default_factory=list)
    # phase 2: per entry point, the diff counts and the objects deleted / modified
    diffs: list[dict[str, Any]] = field(default_factory=list)
    # rehearsal only: where the rehearsal cluster differs from a live one
    # (handover.target: Target.fidelity_notes)
    fidelity_notes: list[str] = field(default_factory=list)

    def component(self, name: str, type: str = "", risk: str = "") -> ComponentReport:
        if name not in self.components:
            self.components[name] = ComponentReport(name, type, risk)
        return self.components[name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "inventory": self.inventory,
            "context": self.context,
            "perform": self.perform,
            "started": self.started,
            "finished": self.finished,
            "components": [c.to_dict() for c in self.components.values()],
            "journal": self.journal,
            "phases": sorted(set(self.phases)),
            "checks": self.checks,
            "diffs": self.diffs,
            "fidelity_notes": self.fidelity_notes,
        }

    def to_markdown(self) -> str:
        lines = [
            f"# Migration report {self.run}",
            "",
            f"- inventory: `{self.inventory}`",
            f"- kube context: `{self.context}`",
            f"- mode: {'performed (--perform)' if self.perform else 'dry run'}",
            "",
        ]
        lines += [
            "| component | status | downtime | restarts | revision | duration | rollback actions |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in self.components.values():
            dt = "not measured" if c.downtime_seconds is None else f"{c.downtime_seconds:.2f} s"
            rs = "?" if c.restarts is None else str(c.restarts)
            rev = (
                "-"
                if c.revision_before is None
                else f"{c.revision_before} -> {c.revision_after if c.revision_after else '?'}"
            )
            du = "-" if c.duration is None else f"{c.duration:.1f} s"
            lines.append(
                f"| {c.name} | {c.status} | {dt} | {rs} | {rev} | {du} | {len(c.rollback)} |"
            )
        for c in self.components.values():
            lines += ["", f"## {c.name} ({c.type}, risk {c.risk}): {c.status}"]
            if c.probe:
                lines.append(f"- availability probe: {c.probe}")
            if c.pods_recreated:
                lines.append(f"- pods recreated / restarted: {', '.join(c.pods_recreated)}")
            for s in c.steps:
                msg = f": {redact(s.message).splitlines()[0][:300]}" if s.message else ""
                lines.append(f"- step {s.step}: {s.outcome} ({s.seconds:.1f} s){msg}")
            if c.failed_step:
                lines.append(f"- HALTED at step {c.failed_step}: {redact(c.failure)[:1000]}")
            if c.rollback:
                lines.append("- rollback:")
                lines += [
                    f"  {i}. {a['action']}: **{a['result']}**"
                    + (f" ({redact(a['detail'])})" if a.get("detail") else "")
                    for i, a in enumerate(c.rollback, 1)
                ]
            for r in c.refused:
                lines.append(f"- refused runbook step `{r['command']}`: {redact(r['why'])}")
            if c.proof_gaps:
                lines.append("- rehearsal proof does not cover: " + "; ".join(c.proof_gaps))
            for n in c.notes:
                lines.append(f"- {redact(n)}")
        if self.fidelity_notes:
            lines += [
                "",
                "## Rehearsal fidelity notes",
                "",
                "Where this rehearsal cluster differs from a live one (what its proof does "
                "not cover):",
            ]
            lines += [f"- {redact(n)}" for n in self.fidelity_notes]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path, html: bool = False) -> tuple[Path, Path]:
        """<run>.md and <run>.json (0600); with html, also <run>.html (handover.report.html,
        this run and the earlier parts of the same migration found beside it)."""
        directory.mkdir(parents=True, exist_ok=True)
        md, js = directory / f"{self.run}.md", directory / f"{self.run}.json"
        outputs = [
            (md, self.to_markdown()),
            (js, json.dumps(_redact_all(self.to_dict()), indent=2, default=str)),
        ]
        if html:
            from handover.report import html as report_html

            data = json.loads(outputs[1][1])
            outputs.append(
                (
                    directory / f"{self.run}.html",
                    report_html.render(report_html.parts_for(data, directory)),
                )
            )
        for path, text in outputs:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
        return md, js
