"""The hand-written runbook's downtime estimates, as data (keyed by inventory component name).

The seed's runbook table: storage 0 s, Envoy Gateway 10 s, Alloy / Tempo / Grafana 30 s,
llama-cpp and log-analyzer 1 min, Loki 2-3 min; every component within a 5-minute budget, and
"total downtime 5-7 minutes" for the whole migration. The report (handover.report.html) puts the
measured downtime beside these; a component not listed here has no estimate ("-").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    low: float  # seconds
    high: float
    text: str  # as the runbook writes it


ESTIMATES: dict[str, Estimate] = {
    "storage": Estimate(0, 0, "0 s"),
    "envoy-gateway": Estimate(10, 10, "10 s"),
    "alloy": Estimate(30, 30, "30 s"),
    "tempo": Estimate(30, 30, "30 s"),
    "grafana": Estimate(30, 30, "30 s"),
    "llama-cpp": Estimate(60, 60, "1 min"),
    "log-analyzer": Estimate(60, 60, "1 min"),
    "loki": Estimate(120, 180, "2-3 min"),
}

# every component's downtime must stay under this (the runbook's budget)
BUDGET = Estimate(0, 300, "< 5 min")

# the runbook's estimate for the whole migration
TOTAL = Estimate(300, 420, "5-7 minutes")


def estimate(component: str) -> Estimate | None:
    return ESTIMATES.get(component)
