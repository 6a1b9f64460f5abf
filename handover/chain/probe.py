"""Availability probe: is the component's Service answering while Flux adopts it?

A background thread sends one HTTP GET per health check at a fixed rate and records every sample.
The measured downtime is the longest window of consecutive failed samples of one check (from the
first failed sample to the next successful one, or to the end of probing).

Two ways to reach the Service:

- ``endpoints``: resolve the Service's Endpoints for the health port (service port -> endpoint port
  by port name, else by targetPort) and connect to the ready endpoint addresses directly; a sample
  succeeds when any ready address answers with the expected status. The rehearsal cluster's pods
  answer on addresses local to this machine, so this works there without a network path to the
  cluster. Endpoints are re-read at most every ``resolve_every`` seconds (not per sample).
- ``proxy``: GET ``/api/v1/namespaces/<ns>/services/<name>:<port>/proxy<path>`` through the API
  server (what a live cluster needs: the probe runs outside it).
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handover import target as targets
from handover.core import wait
from handover.core.inventory import HealthCheck

if TYPE_CHECKING:
    from handover.core.kube import Kube


def mode_for(inventory) -> str:
    """The probe mode for the inventory's cluster: the rehearsal's pods answer on addresses local
    to this machine (``endpoints``); on a live cluster pod IPs are usually unreachable from a
    workstation, so the probe goes through the API server's service proxy (``proxy``). Decided by
    the inventory's target (handover.target)."""
    return targets.of(inventory).probe_mode


@dataclass
class Sample:
    check: str
    at: float
    ok: bool
    detail: str = ""


@dataclass
class Outage:
    check: str
    start: float
    end: float
    samples: int
    first_error: str

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class ProbeResult:
    mode: str
    interval: float
    started: float
    stopped: float
    samples: int
    failed: int
    per_check: dict[str, dict[str, int]] = field(default_factory=dict)  # check -> {ok, failed}
    outages: list[Outage] = field(default_factory=list)
    # per check, runs of consecutive samples with the same result: [first at, last at, ok]
    # (monotonic clock; + clock_offset = wall clock), for the report's up/down strip
    segments: dict[str, list[list]] = field(default_factory=dict)
    clock_offset: float = 0.0

    @property
    def downtime(self) -> float:
        """The longest failed window in seconds (0.0 when every sample succeeded)."""
        return max((o.seconds for o in self.outages), default=0.0)

    @property
    def measured(self) -> bool:
        return self.samples > 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["downtime"] = self.downtime
        return d

    def summary(self) -> str:
        if not self.measured:
            return "not measured (no health check)"
        s = (
            f"{self.samples} samples every {self.interval * 1000:.0f} ms over "
            f"{self.stopped - self.started:.1f} s ({self.mode}), {self.failed} failed, "
            f"longest outage {self.downtime:.2f} s"
        )
        if self.outages:
            worst = max(self.outages, key=lambda o: o.seconds)
            s += f" ({worst.check}: {worst.first_error})"
        return s


def check_name(h: HealthCheck) -> str:
    return f"{h.namespace}/{h.service}:{h.port}{h.path}"


def segments_from(samples: list[Sample]) -> dict[str, list[list]]:
    """Per check: [[first at, last at, ok], ...] of runs of equal results, in order."""
    out: dict[str, list[list]] = {}
    for s in samples:
        runs = out.setdefault(s.check, [])
        if runs and runs[-1][2] == s.ok:
            runs[-1][1] = s.at
        else:
            runs.append([s.at, s.at, s.ok])
    return out


def outages_from(samples: list[Sample], end: float) -> list[Outage]:
    """Windows of consecutive failed samples per check."""
    out: list[Outage] = []
    by_check: dict[str, list[Sample]] = {}
    for s in samples:
        by_check.setdefault(s.check, []).append(s)
    for check, ss in by_check.items():
        cur: Outage | None = None
        for s in ss:
            if not s.ok:
                if cur is None:
                    cur = Outage(check, s.at, s.at, 0, s.detail)
                cur.samples += 1
            elif cur is not None:
                cur.end = s.at
                out.append(cur)
                cur = None
        if cur is not None:
            cur.end = max(end, cur.start)
            out.append(cur)
    return out


class Probe:
    def __init__(
        self,
        kube: Kube,
        checks: list[HealthCheck] | tuple[HealthCheck, ...],
        mode: str = "endpoints",
        interval: float = 0.1,
        timeout: float = 1.0,
        resolve_every: float = 0.5,
        pod_fallback: bool = False,
    ):
        if mode not in ("endpoints", "proxy"):
            raise ValueError(f"probe mode must be endpoints or proxy, got {mode!r}")
        self.kube = kube
        self.checks = list(checks)
        self.mode = mode
        self.interval = interval
        self.timeout = timeout
        self.resolve_every = resolve_every
        # Rehearsal only: when the API server refuses loopback endpoint addresses, the Endpoints
        # stay empty; then resolve the Service's selector to its Ready pods (what the endpoints
        # controller would have published).
        self.pod_fallback = pod_fallback
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._addresses: dict[str, tuple[float, list[tuple[str, int]], str]] = {}
        self.started = 0.0
        self.stopped = 0.0

    # -- resolution ---------------------------------------------------------------------------
    def _resolve(self, h: HealthCheck) -> tuple[list[tuple[str, int]], str]:
        # client models type every field Optional; a served Service/Pod has spec, metadata, status
        svc: Any = self.kube.core.read_namespaced_service(h.service, h.namespace)
        sport = next((p for p in svc.spec.ports or [] if p.port == h.port), None)
        if sport is None:
            return [], f"service {h.namespace}/{h.service} has no port {h.port}"
        addrs: list[tuple[str, int]] = []
        ep: Any = self.kube.core.read_namespaced_endpoints(h.service, h.namespace)
        for subset in ep.subsets or []:
            port = None
            for p in subset.ports or []:
                if (sport.name and p.name == sport.name) or len(subset.ports) == 1:
                    port = p.port
            if port is None:
                continue
            for a in subset.addresses or []:  # ready addresses only (not notReadyAddresses)
                addrs.append((a.ip, port))
        if not addrs and self.pod_fallback and svc.spec.selector:
            target = sport.target_port if sport.target_port is not None else sport.port
            sel = ",".join(f"{k}={v}" for k, v in sorted(svc.spec.selector.items()))
            pods: Any = self.kube.core.list_namespaced_pod(h.namespace, label_selector=sel)
            for pod in pods.items:
                if pod.metadata.deletion_timestamp or not pod.status.pod_ip:
                    continue
                if not any(
                    c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
                ):
                    continue
                port = target if isinstance(target, int) else None
                if port is None:
                    for c in pod.spec.containers:
                        for cp in c.ports or []:
                            if cp.name == target:
                                port = cp.container_port
                if port is not None:
                    addrs.append((pod.status.pod_ip, int(port)))
        return addrs, "" if addrs else "no ready endpoint address"

    def _addresses_for(self, h: HealthCheck) -> tuple[list[tuple[str, int]], str]:
        key = check_name(h)
        cached = self._addresses.get(key)
        now = time.monotonic()
        if cached is None or now - cached[0] >= self.resolve_every:
            addrs, why = self._resolve_retrying(h)
            self._addresses[key] = (now, addrs, why)
            return addrs, why
        return cached[1], cached[2]

    def _resolve_retrying(self, h: HealthCheck) -> tuple[list[tuple[str, int]], str]:
        """Resolve, trying again twice at once when the reading itself failed: resolution reads
        the API, not the Service, so one failed read is not an outage of the Service (seen: a
        KeyError from the client's environment read while pytest rewrote PYTEST_CURRENT_TEST in
        the main thread). A read failing three times fails the sample, with the reason."""
        why = ""
        for attempt in range(3):
            try:
                return self._resolve(h)
            except Exception as e:  # API error: the sample fails with the reason
                why = f"cannot resolve endpoints: {e.__class__.__name__}{_where(e)}"
                if attempt < 2:
                    time.sleep(0.05)
        return [], why

    # -- one sample ---------------------------------------------------------------------------
    def _http(self, ip: str, port: int, path: str) -> int:
        conn = http.client.HTTPConnection(ip, port, timeout=self.timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def _sample_endpoints(self, h: HealthCheck) -> tuple[bool, str]:
        addrs, why = self._addresses_for(h)
        if not addrs:
            return False, why
        errors = []
        for ip, port in addrs:
            try:
                status = self._http(ip, port, h.path)
            except OSError as e:
                errors.append(f"{ip}:{port} {e.__class__.__name__}")
                continue
            if status == h.expect:
                return True, ""
            errors.append(f"{ip}:{port} HTTP {status}, expected {h.expect}")
        return False, "; ".join(errors)

    def _sample_proxy(self, h: HealthCheck) -> tuple[bool, str]:
        """GET /api/v1/namespaces/<ns>/services/<svc>:<port>/proxy<path>."""
        try:
            resp: Any = self.kube.core.connect_get_namespaced_service_proxy_with_path(
                f"{h.service}:{h.port}",
                h.namespace,
                h.path.lstrip("/"),
                _preload_content=False,
                _request_timeout=self.timeout,
            )
            status = resp.status
            resp.release_conn()
        except Exception as e:  # ApiException carries the HTTP status
            status = getattr(e, "status", None)
            if status is None:
                return False, f"proxy: {e.__class__.__name__}: {str(e)[:200]}"
        if status == h.expect:
            return True, ""
        return False, f"proxy: HTTP {status}, expected {h.expect}"

    def sample_once(self) -> list[Sample]:
        out = []
        for h in self.checks:
            at = time.monotonic()
            ok, detail = (
                self._sample_endpoints(h) if self.mode == "endpoints" else self._sample_proxy(h)
            )
            out.append(Sample(check_name(h), at, ok, detail))
        return out

    # -- background thread ----------------------------------------------------------------------
    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.samples.extend(self.sample_once())
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind: keep the fixed rate from now on, do not burst
                next_at = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def start(self) -> Probe:
        if self._thread is not None:
            raise RuntimeError("probe already started")
        self.started = time.monotonic()
        if self.checks:
            self.kube = _private_client(self.kube)
            self._thread = threading.Thread(
                target=self._run, name="availability-probe", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> ProbeResult:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.stopped = time.monotonic()
        samples = list(self.samples)
        per: dict[str, dict[str, int]] = {}
        for s in samples:
            d = per.setdefault(s.check, {"ok": 0, "failed": 0})
            d["ok" if s.ok else "failed"] += 1
        return ProbeResult(
            mode=self.mode,
            interval=self.interval,
            started=self.started,
            stopped=self.stopped,
            samples=len(samples),
            failed=sum(1 for s in samples if not s.ok),
            per_check=per,
            outages=outages_from(samples, self.stopped),
            segments=segments_from(samples),
            clock_offset=time.time() - time.monotonic(),
        )


def _where(e: BaseException) -> str:
    """Where an unexpected client-side exception was raised (file:line of the innermost frame),
    so that a failed sample can be traced without printing the exception's text."""
    tb = e.__traceback__
    if tb is None or getattr(e, "status", None) is not None:  # an API answer: its class says it
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f" at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"


def _private_client(kube: Kube):
    """The probe thread's own client: the kubernetes client's ApiClient and Configuration are not
    safe to share between threads (with token auth every request runs the kubeconfig loader's
    refresh hook, which rewrites the shared Configuration), and the runbook keeps using the
    caller's client while the probe samples. Test doubles without a kubeconfig are kept."""
    from handover.core.kube import Kube

    if type(kube) is not Kube:
        return kube
    return Kube(kubeconfig=kube.kubeconfig, context=kube.context)


def for_inventory(
    kube, checks: list[HealthCheck] | tuple[HealthCheck, ...], inventory, **options: Any
) -> Probe:
    """A Probe that reaches the Services the way the inventory's target needs (handover.target:
    the mode, and the rehearsal's pod fallback). ``options`` are Probe's (interval, timeout)."""
    t = targets.of(inventory)
    return Probe(kube, checks, mode=t.probe_mode, pod_fallback=t.pod_fallback, **options)


def wait_answering(
    kube,
    checks: list[HealthCheck] | tuple[HealthCheck, ...],
    inventory,
    within: float = 30.0,
    interval: float = 1.0,
    **options: Any,
) -> list[Sample]:
    """One sample per check, repeated every ``interval`` seconds until every check answers or
    ``within`` seconds have passed: the last samples (a check that does not answer has ok=False
    and its error in ``detail``). For a "does it answer now" step, not a downtime measurement."""
    probe = for_inventory(kube, checks, inventory, **options)
    names = ", ".join(check_name(h) for h in checks)
    return wait.until(
        f"{names} answering",
        probe.sample_once,
        timeout=within,
        interval=interval,
        done=lambda samples: all(s.ok for s in samples),
        report=False,
    )
