"""handover.chain.probe: outage windows, and a real HTTP responder that stops answering is measured."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace as NS

from handover.core.inventory import HealthCheck
from handover.chain.probe import Probe, Sample, outages_from


def test_outages_are_windows_of_consecutive_failures_per_check():
    s = [Sample("a", 0.0, True), Sample("a", 1.0, False, "refused"), Sample("a", 2.0, False),
         Sample("a", 3.0, True), Sample("b", 0.5, False, "503"), Sample("a", 4.0, False)]
    out = outages_from(s, end=6.0)
    got = sorted((o.check, o.start, o.end, o.samples, o.first_error) for o in out)
    assert got == [("a", 1.0, 3.0, 2, "refused"), ("a", 4.0, 6.0, 1, ""),
                   ("b", 0.5, 6.0, 1, "503")]


class Handler(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802
        self.send_response(Handler.status)
        self.end_headers()

    def log_message(self, *a):
        pass


class FakeCore:
    """Service + Endpoints of one check pointing at a local responder."""

    def __init__(self, port):
        self.port = port

    def read_namespaced_service(self, name, ns):
        return NS(spec=NS(ports=[NS(port=80, name="http", target_port="http")], selector=None))

    def read_namespaced_endpoints(self, name, ns):
        return NS(subsets=[NS(ports=[NS(name="http", port=self.port)],
                              addresses=[NS(ip="127.0.0.1")])])


def test_probe_measures_the_window_a_responder_is_down():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    probe = Probe(NS(core=FakeCore(port)), [HealthCheck("web", "ns", 80, "/healthz")],
                  interval=0.02, resolve_every=0.05).start()
    time.sleep(0.3)
    Handler.status = 503
    time.sleep(0.4)
    Handler.status = 200
    time.sleep(0.3)
    res = probe.stop()
    srv.shutdown()
    assert res.samples > 20 and res.failed > 5
    assert 0.25 < res.downtime < 0.8, res.summary()
    assert "HTTP 503, expected 200" in res.outages[0].first_error


def test_probe_all_up_has_zero_downtime_and_no_checks_is_not_measured():
    Handler.status = 200
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    probe = Probe(NS(core=FakeCore(srv.server_address[1])), [HealthCheck("web", "ns", 80)],
                  interval=0.02).start()
    time.sleep(0.2)
    res = probe.stop()
    srv.shutdown()
    assert res.measured and res.failed == 0 and res.downtime == 0.0
    empty = Probe(NS(core=None), []).start().stop()
    assert not empty.measured and "not measured" in empty.summary()


def test_refused_connection_is_an_outage():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    srv.server_close()  # nothing listens
    probe = Probe(NS(core=FakeCore(port)), [HealthCheck("web", "ns", 80)], interval=0.02).start()
    time.sleep(0.15)
    res = probe.stop()
    assert res.failed == res.samples > 0 and res.downtime > 0.1
    assert "ConnectionRefusedError" in res.outages[0].first_error


def _phase4_probe_mode(monkeypatch, is_rehearsal: bool) -> list[str]:
    """The mode phase 4's health step gives the Probe (the library's Probe, which the step's
    handover.chain.probe.wait_answering builds, replaced by a recorder)."""
    import handover.chain.probe as probe_mod
    import suites.phase4.test_resume as phase4
    modes: list[str] = []

    class Recorder:
        def __init__(self, kube, checks, mode="endpoints", **kw):
            modes.append(mode)
            self.checks = checks

        def sample_once(self):
            return [Sample("c", 0.0, True)]

    monkeypatch.setattr(probe_mod, "Probe", Recorder)
    inv = NS(cluster=NS(rehearsal_state_dir="/rehearsal-state" if is_rehearsal else None))
    phase4.test_health(("web", HealthCheck("web", "ns", 80)), kube=None, inventory=inv,
                       phase_name="phase4")
    return modes


def test_phase4_health_uses_the_api_server_proxy_on_a_live_cluster(monkeypatch):
    """Pod IPs are usually unreachable from a workstation: on a live cluster phase 4 probes
    through the API server's service proxy, like phase 3 (it used mode="endpoints" everywhere)."""
    assert _phase4_probe_mode(monkeypatch, is_rehearsal=False) == ["proxy"]
    assert _phase4_probe_mode(monkeypatch, is_rehearsal=True) == ["endpoints"]


def test_one_failed_api_read_is_not_an_outage_but_a_failing_api_is():
    """Resolution reads the API, not the Service: a read that fails once (seen: a KeyError from
    the client's environment read racing pytest's PYTEST_CURRENT_TEST) is tried again at once;
    an API that keeps failing still fails the sample, naming the error."""

    class Flaky(FakeCore):
        def __init__(self, port, failures):
            super().__init__(port)
            self.failures = failures

        def read_namespaced_service(self, name, ns):
            if self.failures:
                self.failures -= 1
                raise KeyError("PYTEST_CURRENT_TEST")
            return super().read_namespaced_service(name, ns)

    h = HealthCheck("web", "ns", 80)
    addrs, why = Probe(NS(core=Flaky(8080, 1)), [h])._resolve_retrying(h)
    assert addrs == [("127.0.0.1", 8080)] and why == ""
    addrs, why = Probe(NS(core=Flaky(8080, 3)), [h])._resolve_retrying(h)
    assert addrs == [] and why.startswith("cannot resolve endpoints: KeyError")
