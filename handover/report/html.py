"""The migration report as one self-contained HTML page (inline CSS and SVG, no script, nothing
fetched from the network), made from the run JSON(s) that handover.report.migration writes.

What it shows: a timeline with one lane per component (its steps as bars coloured by outcome,
the availability probe's samples as an up/down strip under them, the measured outage windows,
the rollback actions where they happened), lanes for the checks of phases 1, 2 and 4, the
per-component table (downtime against the hand-written runbook's estimate and the 5-minute
budget, pods kept or replaced, restarts, release revision and who made it, refusals), phase 1's
gate verdict with every check and finding and its fix, phase 2's diff summary (deletions
first), and the totals beside the runbook's "total downtime 5-7 minutes".

A migration that ran in several sessions (phases in separate pytest runs, or a run that was
killed and resumed) is drawn on one timeline: ``parts_for`` finds the earlier run JSONs of the
same migration (same journal and kube context) beside the newest.

Privacy: the page carries names, numbers, paths and hashes, never values. Every message passes
through handover.report.migration.redact; a step's journal detail is shown as a path when it is one and as
a short sha256 otherwise (``safe_detail``).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from handover.report import estimates as runbook_estimates
from handover.report.migration import redact

LANE_H = 46
LEFT = 170
WIDTH = 1100
GAP_PX = 26  # a pause between sessions longer than GAP_S is drawn this wide
GAP_S = 90.0

COLORS = {
    "passed": "#2e7d32",
    "failed": "#c62828",
    "skipped": "#9e9e9e",
    "expected failure": "#f9a825",
    "rollback": "#6a1b9a",
}

_PATHLIKE = re.compile(r"^(/|\./|~/)[\w./@+-]*$")


# -- data ---------------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def parts_for(data: dict[str, Any], directory: Path) -> list[dict[str, Any]]:
    """This run and the earlier runs of the same migration found in ``directory``: same journal
    and kube context, from the newest run that ran the phase-1 gate on (a new gate run starts a
    new migration attempt). Ordered by start time."""
    parts = {data["run"]: data}
    for p in Path(directory).glob("*.json"):
        if p.stem == data["run"]:
            continue
        try:
            d = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(d, dict) or "run" not in d or "components" not in d:
            continue  # not a run report (MIGRATION_STATE.json, diffs, ...)
        if d.get("journal") != data.get("journal") or d.get("context") != data.get("context"):
            continue
        if (d.get("started") or 0) > (data.get("started") or 0):
            continue
        parts[d["run"]] = d
    ordered = sorted(parts.values(), key=lambda d: d.get("started") or 0)
    gates = [i for i, d in enumerate(ordered) if 1 in (d.get("phases") or [])]
    if gates:
        ordered = ordered[gates[-1] :]
    return ordered


_RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")  # plugins.journal's run ids


def safe_detail(value: Any) -> str:
    """A journal detail value as the page may show it: numbers, path-like strings and run ids as
    they are, anything else as a short sha256 (never the value)."""
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and (_PATHLIKE.match(value) or _RUN_ID.match(value)):
        return value
    blob = json.dumps(value, sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()[:12]


# a field difference as handover.tree_diff describes it: "<path>: live <value>, Git <value>"
_DIFF_VALUES = re.compile(r"(: live )(.+?)(, Git )(.+?)(?=; |\. |$)", re.M)


def _hash_values(m: re.Match) -> str:
    def h(v: str) -> str:
        return (
            v
            if v in ("(missing)", "(hidden)") or v.startswith("sha256:")
            else "sha256:" + hashlib.sha256(v.encode()).hexdigest()[:12]
        )

    return f"{m.group(1)}{h(m.group(2))}{m.group(3)}{h(m.group(4))}"


def _msg(text: Any, limit: int = 400) -> str:
    """A message as the page shows it: credentials redacted, the values of field differences
    replaced by short hashes (the paths stay)."""
    t = _DIFF_VALUES.sub(_hash_values, redact(str(text or "")))
    return t if len(t) <= limit else t[:limit] + "..."


_LISTS = (
    "name",
    "steps",
    "rollback",
    "refused",
    "notes",
    "outages",
    "probe_segments",
    "rollback_events",
    "runs",
)


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One view of the migration: components merged over the parts (steps of every part, the
    latest known value of everything else), checks and diffs of every part."""
    comps: dict[str, dict[str, Any]] = {}
    for part in parts:
        for c in part.get("components", []):
            m = comps.setdefault(
                c["name"],
                {
                    "name": c["name"],
                    "steps": [],
                    "rollback": [],
                    "refused": [],
                    "notes": [],
                    "outages": [],
                    "probe_segments": {},
                    "rollback_events": [],
                    "runs": [],
                },
            )
            m["runs"].append(part["run"])
            for s in c.get("steps", []):
                s = {**s, "run": s.get("run") or part["run"]}
                if s.get("outcome") != "skipped" and any(  # the same step from the journal
                    x["step"] == s["step"]
                    and x["run"] == s["run"]
                    and x.get("outcome") == s.get("outcome")
                    for x in m["steps"]
                ):
                    continue
                m["steps"].append(s)
            for key in ("rollback", "refused", "notes", "outages", "rollback_events"):
                m[key] += c.get(key) or []
            for check, segs in (c.get("probe_segments") or {}).items():
                m["probe_segments"].setdefault(check, []).extend(segs)
            for key, v in c.items():
                if key in _LISTS:
                    continue
                if key == "status" and v == "not started" and m.get("status"):
                    continue
                if v not in (None, "", [], {}) or key not in m:
                    m[key] = v  # the latest part that knows it
    order: list[str] = []  # the newest part's order (the inventory's), then the others
    for part in reversed(parts):
        order += [c["name"] for c in part.get("components", []) if c["name"] not in order]
    return {
        "parts": parts,
        "components": [comps[n] for n in order],
        "checks": [dict(c, run=p["run"]) for p in parts for c in p.get("checks") or []],
        "diffs": [dict(d, run=p["run"]) for p in parts for d in p.get("diffs") or []],
    }


# -- time axis ----------------------------------------------------------------------------------


class Axis:
    """Wall time -> x, with long pauses between activity compressed to GAP_PX."""

    def __init__(self, intervals: Iterable[tuple[float, float]], width: float):
        iv = sorted((a, max(a, b)) for a, b in intervals if a is not None and b is not None)
        merged: list[list[float]] = []
        for a, b in iv:
            if merged and a - merged[-1][1] <= GAP_S:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        if not merged:
            now = time.time()
            merged = [[now, now + 1]]
        self.blocks = merged
        busy = sum(max(b - a, 1.0) for a, b in merged)
        self.scale = max(1e-6, (width - GAP_PX * (len(merged) - 1)) / busy)
        self.offsets = []
        x = 0.0
        for a, b in merged:
            self.offsets.append(x)
            x += max(b - a, 1.0) * self.scale + GAP_PX
        self.start, self.end = merged[0][0], merged[-1][1]

    def x(self, t: float) -> float:
        last = len(self.blocks) - 1
        for i, ((a, b), off) in enumerate(zip(self.blocks, self.offsets, strict=True)):
            if t <= b or i == last:
                t = max(t, a)  # in a compressed pause: the start of the next block
                return LEFT + off + (min(t, max(b, a + 1.0)) - a) * self.scale
        return LEFT  # not reached

    def gaps(self) -> list[tuple[float, float, float]]:
        """(x of the gap, its start, its end) for every compressed pause."""
        out = []
        for i in range(1, len(self.blocks)):
            x = LEFT + self.offsets[i] - GAP_PX / 2
            out.append((x, self.blocks[i - 1][1], self.blocks[i][0]))
        return out


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 90:
        return f"{s:.1f} s"
    return f"{s / 60:.1f} min"


def _clock(t: float | None) -> str:
    return "-" if not t else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + " UTC"


# -- rendering ----------------------------------------------------------------------------------

E = html.escape

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1b1b}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:16px 0 4px}
pre{white-space:pre-wrap;word-break:break-word;max-width:1100px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f4f4f4}
.meta{color:#555}.ok{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:600}
.warn{color:#a66b00;font-weight:600}.muted{color:#777}code{font-size:12px}
.badge{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:12px}
.totals td{font-size:15px}
svg text{font:11px system-ui,sans-serif}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}
"""


def _badge(outcome: str) -> str:
    color = COLORS.get("expected failure" if outcome == "accepted hazard" else outcome, "#555")
    return f'<span class="badge" style="background:{color}">{E(outcome)}</span>'


def _step_times(s: dict[str, Any]) -> tuple[float, float] | None:
    """(start, end) of a step, one derived from the other and its seconds; None when neither."""
    start, end = s.get("start"), s.get("end")
    if start is None:
        if end is None:
            return None
        start = end - float(s.get("seconds") or 0)
    elif end is None:
        end = start + float(s.get("seconds") or 0)
    return start, end


def _intervals(view: dict[str, Any]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for c in view["components"]:
        for s in c["steps"]:
            t = _step_times(s)
            if t is not None:
                out.append(t)
        for segs in c["probe_segments"].values():
            out += [(a, b) for a, b, _ in segs]
        out += [(e["t"], e["t"]) for e in c["rollback_events"] if e.get("t")]
    for k in view["checks"]:
        if k.get("start") is not None:
            out.append((k["start"], k.get("end") or k["start"]))
    return out


def timeline_svg(view: dict[str, Any]) -> str:
    comps = view["components"]
    phase_lanes = sorted(
        {int(k.get("phase", 0)) for k in view["checks"] if k.get("start") is not None}
    )
    lanes: list[tuple[str, str, Any]] = []
    lanes += [("phase", f"phase {p} checks", p) for p in phase_lanes if p < 3]
    lanes += [("component", c["name"], c) for c in comps]
    lanes += [("phase", f"phase {p} checks", p) for p in phase_lanes if p > 3]
    axis = Axis(_intervals(view), WIDTH - LEFT - 10)
    height = 34 + LANE_H * len(lanes) + 20
    out = [
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="migration timeline">'
    ]
    # axis: start and end of every block of activity, the compressed pauses
    for (a, _b), off in zip(axis.blocks, axis.offsets, strict=True):
        x0 = LEFT + off
        out.append(
            f'<text x="{x0:.1f}" y="12">{E(time.strftime("%H:%M:%S", time.gmtime(a)))}</text>'
        )
    for x, a, b in axis.gaps():
        out.append(
            f'<g class="gap"><title>pause of {_fmt_s(b - a)} between sessions</title>'
            f'<line x1="{x:.1f}" y1="16" x2="{x:.1f}" y2="{height - 16}" '
            f'stroke="#999" stroke-dasharray="3 3"/><text x="{x - 10:.1f}" y="26" '
            f'fill="#777">{E(_fmt_s(b - a))}</text></g>'
        )
    out += _ticks(axis, height)
    # part boundaries (sessions)
    for part in view["parts"]:
        if part.get("started"):
            x = axis.x(part["started"])
            out.append(
                f'<g class="part-start"><title>run {E(part["run"])} started '
                f'{E(_clock(part["started"]))}</title><line x1="{x:.1f}" y1="30" '
                f'x2="{x:.1f}" y2="{height - 16}" stroke="#1565c0" stroke-width="1" '
                f'stroke-opacity="0.35"/></g>'
            )
    y = 34
    for kind, label, obj in lanes:
        out.append(f'<g class="lane" data-lane="{E(label)}">')
        out.append(
            f'<rect x="0" y="{y}" width="{WIDTH}" height="{LANE_H - 4}" fill="#f2f2f2" fill-opacity="0.6"/>'
        )
        out.append(f'<text x="6" y="{y + 16}" font-weight="600">{E(label)}</text>')
        if kind == "component":
            out.append(
                f'<text x="6" y="{y + 31}" fill="#666">{E(str(obj.get("status", "")))}</text>'
            )
            out += _component_lane(obj, axis, y)
        else:
            out += _check_lane(
                [k for k in view["checks"] if int(k.get("phase", 0)) == obj], axis, y
            )
        out.append("</g>")
        y += LANE_H
    out.append("</svg>")
    return "\n".join(out)


def _bar(
    x0: float, x1: float, y: float, h: float, color: str, cls: str, title: str, extra: str = ""
) -> str:
    w = max(2.0, x1 - x0)
    return (
        f'<rect class="{cls}" x="{x0:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h}" '
        f'fill="{color}" {extra}><title>{E(title)}</title></rect>'
    )


def _ticks(axis: Axis, height: float) -> list[str]:
    """Time marks every 10 s .. 10 min inside each block of activity, about 90 px apart."""
    out = []
    for (a, b), _off in zip(axis.blocks, axis.offsets, strict=True):
        step = next(
            (s for s in (5, 10, 30, 60, 120, 300, 600, 1800, 3600) if s * axis.scale >= 90), 3600
        )
        t = (int(a) // step + 1) * step
        while t < b - step / 3:
            x = axis.x(t)
            out.append(
                f'<line class="tick" x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{height - 16}" '
                f'stroke="#e3e3e3"/><text x="{x - 20:.1f}" y="{height - 4}" fill="#777">'
                f"{E(time.strftime('%H:%M:%S', time.gmtime(t)))}</text>"
            )
            t += step
    return out


def _component_lane(c: dict[str, Any], axis: Axis, y: float) -> list[str]:
    out = []
    for s in c["steps"]:
        t = _step_times(s)
        if t is None:
            continue
        a, b = t
        color = COLORS.get(s.get("outcome", ""), "#555")
        title = (
            f"{c['name']}: step {s['step']} {s.get('outcome')} in {_fmt_s(s.get('seconds'))}"
            f" (run {s.get('run', '')})"
        )
        if s.get("message"):
            title += f": {_msg(s['message'], 200)}"
        x0, x1 = axis.x(a), axis.x(b)
        out.append(
            _bar(
                x0,
                x1,
                y + 4,
                18,
                color,
                "step-bar",
                title,
                f'data-step="{E(s["step"])}" data-outcome="{E(s.get("outcome", ""))}" '
                'stroke="#fff" stroke-width="0.5"',
            )
        )
        if x1 - x0 > 7 * len(s["step"]) or s.get("outcome") == "failed":
            out.append(
                f'<text x="{x0 + 2:.1f}" y="{y + 17}" fill="#fff" font-weight="600" '
                f'pointer-events="none">{E(s["step"])}</text>'
            )
    # the probe's samples: up/down strip
    for check, segs in c["probe_segments"].items():
        for a, b, ok in segs:
            out.append(
                _bar(
                    axis.x(a),
                    axis.x(b),
                    y + 26,
                    8,
                    "#66bb6a" if ok else "#e53935",
                    "probe-up" if ok else "probe-down",
                    f"{check}: {'up' if ok else 'DOWN'} {_fmt_s(b - a)}",
                )
            )
    for o in c["outages"]:
        x0, x1 = axis.x(o["start"]), axis.x(o["end"])
        out.append(
            _bar(
                x0,
                x1,
                y + 1,
                LANE_H - 6,
                "#e53935",
                "outage",
                f"outage {o.get('check', '')}: {_fmt_s(o.get('seconds'))} "
                f"({_msg(o.get('first_error'), 120)})",
                'fill-opacity="0.22" stroke="#c62828" stroke-dasharray="2 2"',
            )
        )
    for e in c["rollback_events"]:
        if not e.get("t"):
            continue
        x = axis.x(e["t"])
        color = "#6a1b9a" if e.get("kind") != "failed" else "#c62828"
        out.append(
            f'<path class="rollback-action" d="M{x:.1f} {y + 2} l5 8 l-5 8 l-5 -8 z" '
            f'fill="{color}"><title>rollback: {E(_msg(e.get("action"), 200))} '
            f"({E(str(e.get('kind', '')))})</title></path>"
        )
    return out


def _check_lane(checks: list[dict[str, Any]], axis: Axis, y: float) -> list[str]:
    out = []
    for k in checks:
        a = k.get("start")
        if a is None:
            continue  # never started: nothing to draw (as _intervals leaves it out)
        b = k.get("end") or a
        color = COLORS.get(k.get("outcome", ""), "#555")
        out.append(
            _bar(
                axis.x(a),
                axis.x(b),
                y + 8,
                22,
                color,
                "check-bar",
                f"{k.get('name')}: {k.get('outcome')} ({_fmt_s(k.get('seconds'))})",
                f'data-outcome="{E(k.get("outcome", ""))}"',
            )
        )
    return out


def _downtime_verdict(c: dict[str, Any]) -> str:
    dt = c.get("downtime_seconds")
    if dt is None:
        return '<span class="muted">not measured</span>'
    est = runbook_estimates.estimate(c["name"])
    budget = runbook_estimates.BUDGET.high
    if dt >= budget:
        return f'<span class="bad">over the {E(runbook_estimates.BUDGET.text)} budget</span>'
    if est is not None and dt > est.high:
        return '<span class="warn">over the estimate, within budget</span>'
    return '<span class="ok">within the estimate</span>'


def _pods(c: dict[str, Any]) -> tuple[str, int, int]:
    before = {p["pod"]: p.get("uid", "") for p in c.get("pods_before") or []}
    after = {p["pod"]: p.get("uid", "") for p in c.get("pods_after") or []}
    if not before:
        return (str(c.get("pods") or "-"), 0, 0)
    kept = sum(1 for p, u in before.items() if after.get(p) == u)
    replaced = len(before) - kept if after else 0
    text = f"{len(before)} -> {len(after) if after else '?'}"
    return text, kept, replaced


def component_table(view: dict[str, Any]) -> str:
    rows = [
        '<table id="components"><tr><th>component</th><th>status</th><th>downtime '
        "measured</th><th>runbook estimate</th><th>budget "
        f"({E(runbook_estimates.BUDGET.text)})</th><th>pods before -> after</th>"
        "<th>UIDs kept / replaced</th><th>restarts</th><th>release revision</th>"
        "<th>duration</th><th>rollback actions</th></tr>"
    ]
    for c in view["components"]:
        est = runbook_estimates.estimate(c["name"])
        pods, kept, replaced = _pods(c)
        rb, ra = c.get("revision_before"), c.get("revision_after")
        rev = E("-" if rb is None else f"{rb} -> {ra if ra is not None else '?'}")
        by = str(c.get("revision_made_by") or "")
        if rb is not None and by:
            rev += f" ({E(by if by.startswith('not ') else 'by ' + by)})"
        restarts = c.get("restarts")
        status = str(c.get("status", ""))
        scls = (
            "ok"
            if status.startswith("handed over")
            else ("bad" if "FAILED" in status or "halted" in status else "warn")
        )
        rows.append(
            f'<tr class="component-row" data-component="{E(c["name"])}"><td>{E(c["name"])}</td>'
            f'<td class="{scls}">{E(status)}</td>'
            f"<td>{E(_fmt_s(c.get('downtime_seconds')))}</td>"
            f"<td>{E(est.text) if est else '-'}</td><td>{_downtime_verdict(c)}</td>"
            f"<td>{E(pods)}</td><td>{kept} kept / "
            f'<span class="{"bad" if replaced else ""}">{replaced} replaced</span></td>'
            f'<td class="{"bad" if restarts else ""}">{"?" if restarts is None else restarts}</td>'
            f"<td>{rev}</td><td>{E(_fmt_s(c.get('duration_seconds')))}</td>"
            f"<td>{len(c.get('rollback') or [])}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def component_details(c: dict[str, Any]) -> str:
    out = [
        f'<h3 id="c-{E(c["name"])}">{E(c["name"])} <span class="muted">'
        f"({E(str(c.get('type', '')))}, risk {E(str(c.get('risk', '')))})</span>: "
        f"{E(str(c.get('status', '')))}</h3><ul>"
    ]
    if c.get("probe"):
        out.append(f"<li>availability probe: {E(_msg(c['probe']))}</li>")
    for o in c["outages"]:
        out.append(
            f'<li class="bad">outage {E(o.get("check", ""))}: '
            f"{E(_fmt_s(o.get('seconds')))} from {E(_clock(o.get('start')))} "
            f"({E(_msg(o.get('first_error'), 160))})</li>"
        )
    before = {p["pod"]: p.get("uid", "") for p in c.get("pods_before") or []}
    after = {p["pod"]: p.get("uid", "") for p in c.get("pods_after") or []}
    if before:
        items = []
        for pod, uid in before.items():
            now = after.get(pod)
            state = "kept" if now == uid else "replaced" if after else "not compared"
            items.append(f"<code>{E(pod)}</code> uid {E(uid[:8])} {state}")
        items += [
            f"<code>{E(p)}</code> uid {E(u[:8])} new" for p, u in after.items() if p not in before
        ]
        out.append("<li>pods: " + "; ".join(items) + "</li>")
    for s in c["steps"]:
        line = (
            f"<li>step <b>{E(s['step'])}</b> {_badge(s.get('outcome', ''))} "
            f"{E(_fmt_s(s.get('seconds')))} <span class='muted'>run "
            f"{E(str(s.get('run', '')))}</span>"
        )
        if s.get("message"):
            line += f": {E(_msg(s['message'], 300).splitlines()[0] if _msg(s['message']) else '')}"
        for k, v in (s.get("detail") or {}).items():
            line += f" <span class='muted'>{E(str(k))}: <code>{E(safe_detail(v))}</code></span>"
        out.append(line + "</li>")
    if c.get("failed_step"):
        out.append(
            f'<li class="bad">HALTED at step {E(c["failed_step"])}: '
            f"<pre>{E(_msg(c.get('failure'), 1500))}</pre></li>"
        )
    if c.get("rollback"):
        out.append(
            "<li>rollback:<ol>"
            + "".join(
                f"<li>{E(_msg(a.get('action')))}: <b>{E(str(a.get('result')))}</b>"
                + (f" ({E(_msg(a.get('detail'), 300))})" if a.get("detail") else "")
                + "</li>"
                for a in c["rollback"]
            )
            + "</ol></li>"
        )
    for r in c.get("refused") or []:
        out.append(
            f"<li>refused runbook step <code>{E(_msg(r.get('command')))}</code>: "
            f"{E(_msg(r.get('why')))}</li>"
        )
    gaps = c.get("proof_gaps") or []
    if gaps:
        out.append(
            "<li>rehearsal proof does not cover: <ul>"
            + "".join(
                f"<li>{E(_msg(g if isinstance(g, str) else json.dumps(g, default=str)))}</li>"
                for g in gaps
            )
            + "</ul></li>"
        )
    for n in c.get("notes") or []:
        out.append(f"<li class='muted'>{E(_msg(n))}</li>")
    out.append("</ul>")
    return "\n".join(out)


def _findings(message: str) -> list[tuple[str, str]]:
    """(finding, fix) pairs from a check's failure message ('fix:' lines follow a finding)."""
    pairs: list[tuple[str, str]] = []
    for line in _msg(message, 20000).splitlines():
        t = line.strip()
        if not t:
            continue
        if t.lower().startswith("fix:") and pairs:
            pairs[-1] = (pairs[-1][0], t[4:].strip())
        elif len(pairs) < 30:
            pairs.append((t, ""))
    return pairs


def phase1_section(view: dict[str, Any]) -> str:
    checks = [k for k in view["checks"] if int(k.get("phase", 0)) == 1]
    if not checks:
        return (
            '<h2>Phase 1: the gate</h2><p class="muted">no phase-1 run in this migration\'s '
            "reports</p>"
        )
    failed = [k for k in checks if k.get("outcome") == "failed"]
    accepted = [k for k in checks if k.get("outcome") == "expected failure"]
    verdict = (
        '<span class="bad" id="gate-verdict">NOT safe to bootstrap: '
        f"{len(failed)} check(s) failed</span>"
        if failed
        else '<span class="ok" id="gate-verdict">safe to bootstrap</span>'
    )
    out = [
        f"<h2>Phase 1: the gate</h2><p>verdict: {verdict} "
        f"({len(checks)} checks, {len(accepted)} accepted hazard(s) / expected failures)</p>",
        '<table id="phase1"><tr><th>check</th><th>outcome</th><th>findings and fixes</th></tr>',
    ]
    for k in sorted(checks, key=lambda k: (k.get("outcome") != "failed", k.get("name", ""))):
        label = "accepted hazard" if k.get("outcome") == "expected failure" else k.get("outcome")
        cell = ""
        if k.get("outcome") in ("failed", "expected failure", "skipped") and k.get("message"):
            cell = (
                "<ul>"
                + "".join(
                    f"<li>{E(f)}" + (f"<br><b>fix:</b> {E(x)}" if x else "") + "</li>"
                    for f, x in _findings(k["message"])
                )
                + "</ul>"
            )
        for w in k.get("warnings") or []:
            cell += f'<div class="warn">warning: {E(_msg(w, 300))}</div>'
        out.append(
            f"<tr><td><code>{E(k.get('name', ''))}</code></td>"
            f"<td>{_badge(label or '')}</td><td>{cell}</td></tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def phase2_section(view: dict[str, Any]) -> str:
    diffs = view["diffs"]
    if not diffs:
        return (
            '<h2>Phase 2: bootstrap and diff</h2><p class="muted">no phase-2 diff in this '
            "migration's reports</p>"
        )
    out = [
        "<h2>Phase 2: bootstrap and diff</h2>",
        '<table id="phase2"><tr><th>entry point</th><th>created</th><th>configured</th>'
        "<th>deleted</th><th>unchanged</th><th>objects</th></tr>",
    ]
    for d in diffs:
        counts = d.get("counts") or {}
        created = counts.get("created", counts.get("added", 0))
        configured = counts.get("configured", counts.get("modified", 0))
        deleted = counts.get("deleted", 0)
        unchanged = counts.get("unchanged", 0)
        objs = "".join(
            f'<li class="bad">deleted: <code>{E(_msg(s, 200))}</code></li>'
            for s in d.get("deleted") or []
        )
        objs += "".join(
            f"<li>configured: <code>{E(_msg(s, 200))}</code></li>"
            for s in d.get("configured") or []
        )
        out.append(
            f"<tr><td>{E(str(d.get('entrypoint', '')))}</td><td>{created}</td>"
            f'<td>{configured}</td><td class="{"bad" if deleted else ""}">{deleted}</td>'
            f"<td>{unchanged}</td><td><ul>{objs}</ul></td></tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def totals_section(view: dict[str, Any]) -> str:
    measured = [
        c["downtime_seconds"] for c in view["components"] if c.get("downtime_seconds") is not None
    ]
    total = sum(measured)
    starts = [p.get("started") for p in view["parts"] if p.get("started")]
    ends = [p.get("finished") or p.get("started") for p in view["parts"] if p.get("started")]
    busy = sum(
        (p.get("finished") or p["started"]) - p["started"]
        for p in view["parts"]
        if p.get("started")
    )
    handed = sum(1 for c in view["components"] if str(c.get("status", "")).startswith("handed"))
    rolled = sum(1 for c in view["components"] if "rolled back" in str(c.get("status", "")))
    t = runbook_estimates.TOTAL
    verdict = "ok" if total <= t.high else "bad"
    return (
        '<h2>Totals</h2><table class="totals" id="totals">'
        f'<tr><th>total downtime measured</th><td class="{verdict}">{E(_fmt_s(total))} '
        f"({len(measured)} component(s) measured)</td><th>runbook</th>"
        f"<td>total downtime {E(t.text)}</td></tr>"
        f"<tr><th>components handed over</th><td>{handed} of {len(view['components'])}</td>"
        f"<th>rolled back</th><td>{rolled}</td></tr>"
        f"<tr><th>time the suite ran</th><td>{E(_fmt_s(busy))} in {len(view['parts'])} "
        f"session(s)</td><th>from - to</th><td>{E(_clock(min(starts) if starts else None))} - "
        f"{E(_clock(max(ends) if ends else None))}</td></tr></table>"
    )


def fidelity_section(parts: list[dict[str, Any]]) -> str:
    """Rehearsal only: where the rehearsal cluster differs from a live one (each note once)."""
    notes: list[str] = []
    for p in parts:
        notes += [n for n in p.get("fidelity_notes") or [] if n not in notes]
    if not notes:
        return ""
    return (
        '<h2>Rehearsal fidelity notes</h2><p class="muted">where this rehearsal cluster '
        'differs from a live one (what its proof does not cover)</p><ul id="fidelity">'
        + "".join(f"<li>{E(_msg(n, 600))}</li>" for n in notes)
        + "</ul>"
    )


def render(parts: list[dict[str, Any]] | dict[str, Any]) -> str:
    """The HTML page for one run (a dict) or the parts of one migration (a list, oldest first)."""
    if isinstance(parts, dict):
        parts = [parts]
    view = merge(parts)
    last = parts[-1]
    runs = ", ".join(E(p["run"]) for p in parts)
    legend = "".join(
        f'<span><i style="background:{c}"></i>{E(k)}</span>' for k, c in COLORS.items()
    )
    legend += (
        '<span><i style="background:#66bb6a"></i>probe up</span>'
        '<span><i style="background:#e53935"></i>probe down</span>'
        '<span><i style="background:#e53935;opacity:.3;border:1px dashed #c62828"></i>'
        'outage window</span><span><i style="background:#6a1b9a;transform:rotate(45deg);'
        'width:9px;height:9px"></i>rollback action</span>'
    )
    body = [
        f"<h1>Migration report {E(last['run'])}</h1>",
        f'<p class="meta">inventory <code>{E(str(last.get("inventory", "")))}</code> · kube '
        f"context <code>{E(str(last.get('context', '')))}</code> · "
        f"{'performed (--perform)' if last.get('perform') else 'dry run'} · sessions: {runs}</p>",
        totals_section(view),
        "<h2>Timeline</h2>",
        f'<p class="legend">{legend}</p>',
        timeline_svg(view),
        "<h2>Components</h2>",
        component_table(view),
        phase1_section(view),
        phase2_section(view),
        fidelity_section(parts),
        "<h2>Per component</h2>",
        *[component_details(c) for c in view["components"]],
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>Migration report {E(last['run'])}</title><style>{CSS}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write(parts: list[dict[str, Any]], path: Path) -> Path:
    import os

    text = render(parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return path
