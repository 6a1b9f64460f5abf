"""The rehearsal cluster: a real etcd + kube-apiserver + kube-controller-manager on 127.0.0.1, plus
the node agent (the kubelet stand-in), all daemons whose whole state lives in one directory::

    <state_dir>/cluster.json        ports, pod network, recorded services (chosen at the first up)
    <state_dir>/certs/              CA, serving certificate, service-account key pair, tokens.csv
    <state_dir>/etcd/               etcd data
    <state_dir>/kubeconfig          admin (system:masters), context "flux-handover-rehearsal"
    <state_dir>/readonly.kubeconfig get/list/watch only, context "flux-handover-rehearsal-readonly"
    <state_dir>/audited.kubeconfig  an admin whose every request goes to logs/audit.log (context
                                    "flux-handover-rehearsal-audited"): proves what a run wrote
    <state_dir>/logs/<name>.log     every component's output
    <state_dir>/run/<name>.pid      pid of every running component (run/<name>.json: argv, start time)
    <state_dir>/run/pod-responder.sock  control socket of the pod responders (in the netns)
    <state_dir>/fidelity/crd-adaptations.json  what the CRD adapter changed in CRDs, per field

The ``crd-adapter`` (``handover.rehearsal.crd_adapter``) is a mutating admission webhook the
cluster serves itself: CRDs the v1.20 API server cannot take are adapted to what it accepts, and
each adaptation is written down as a fidelity note (``status()["fidelity_notes"]``).

``up()`` is idempotent: what runs and is healthy is left alone, what died is started again.
``down()`` stops everything in reverse order and leaves no process and no listening port.

Pod network: every cluster makes its own network namespace and pods live there, so that pod
addresses are not loopback (the v1.20 API server refuses loopback addresses in Endpoints and in its
service proxy) and test traffic still only goes to hosts this cluster made itself. At ``up``:

- ``ip netns add fhr-<id>`` and a veth pair ``fhr<id>h`` (root namespace) / ``fhr<id>n`` (in the
  namespace) on a /30 of 10.41.0.0/16 (host end .1, namespace end .2);
- a pod CIDR, a /19 of 10.64.0.0/10 (8190 addresses), chosen free on this machine under a lock
  shared by all rehearsal clusters and kept in cluster.json (``pod_cidr``, ``pod_network``);
- in the namespace: lo and the veth up, ``ip route add local <pod cidr> dev lo`` (every pod address
  is local there) and a default route via the host end;
- in the root namespace: ``<pod cidr> via <namespace end>``: the API server (127.0.0.1), the
  endpoints and a probe reach pod addresses through the veth pair;
- the ``pod-responder`` daemon (``handover.rehearsal.pod_responder``) runs inside the namespace
  (``ip netns exec``) and answers on pod addresses; the node agent (root namespace) drives it over
  a unix socket, ``run/pod-responder.sock``.

``down()`` stops the processes, then deletes the route, the veth pair and the namespace. Creating
a namespace needs root and iproute2: without them ``up()`` fails at once naming what is missing.
A state dir made by the former 198.18.0.0/15 pod network is moved to a namespace by ``up()``.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from handover.core.errors import HandoverError
from handover.rehearsal import binaries

CONTEXT = "flux-handover-rehearsal"
READONLY_CONTEXT = "flux-handover-rehearsal-readonly"
READONLY_USER = "flux-handover-readonly"
# An admin identity of its own (system:masters), whose every request the API server writes to the
# audit log: what a suite does under it can be proved read-only (or not) from the server's side.
AUDITED_CONTEXT = "flux-handover-rehearsal-audited"
AUDITED_USER = "flux-handover-audited"
AUDIT_POLICY = f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    users: [{AUDITED_USER}]
  - level: None
"""
NODE_NAME = "rehearsal-node"
SERVICE_CIDR = "10.0.0.0/24"
POD_NET = ipaddress.ip_network("10.64.0.0/10")  # pod networks: one /19 per cluster
POD_PREFIX = 19  # 8190 pod addresses
TRANSFER_NET = ipaddress.ip_network("10.41.0.0/16")  # veth pairs: one /30 per cluster
CORE = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "pod-responder",
    "node-agent",
    "crd-adapter",
)

_children: dict[int, subprocess.Popen] = {}  # processes this Python process started (reaped here)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _proc_start_time(pid: int) -> str | None:
    """Start time of a process (field 22 of /proc/<pid>/stat), None when gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2 :].split()
    if rest[0] in ("Z", "X"):
        _reap(pid)
        return None
    return rest[19]


def _in_netns(pid: int, netns: str) -> bool:
    """Whether a process lives in the named network namespace (same namespace inode)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{netns}").st_ino
    except OSError:
        return False


def _reap(pid: int) -> None:
    p = _children.pop(pid, None)
    if p is not None:
        p.poll()
    else:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


class RehearsalCluster:
    """A local Kubernetes control plane (real API server) with an emulated node."""

    def __init__(self, state_dir: Path | str, node_name: str = NODE_NAME):
        self.state_dir = Path(state_dir).expanduser().absolute()
        self.node_name = node_name

    # -- paths and properties -------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def readonly_kubeconfig(self) -> Path:
        return self.state_dir / "readonly.kubeconfig"

    @property
    def audited_kubeconfig(self) -> Path:
        """Kubeconfig of the audited admin identity (context flux-handover-rehearsal-audited)."""
        return self.state_dir / "audited.kubeconfig"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log: one JSON event per request of the audited identity."""
        return self.logs / "audit.log"

    @property
    def context(self) -> str:
        return CONTEXT

    @property
    def readonly_context(self) -> str:
        return READONLY_CONTEXT

    @property
    def certs(self) -> Path:
        return self.state_dir / "certs"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "cluster.json"

    @property
    def config(self) -> dict:
        if self.config_path.exists():
            return json.loads(self.config_path.read_text())
        return {}

    def _save_config(self, cfg: dict) -> None:
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.config_path)

    @property
    def server(self) -> str:
        port = self.config.get("ports", {}).get("kube-apiserver")
        if not port:
            raise HandoverError(
                f"rehearsal cluster in {self.state_dir} was never started: run up()"
            )
        return f"https://127.0.0.1:{port}"

    @property
    def pod_cidr(self) -> str | None:
        return self.config.get("pod_cidr")

    def __repr__(self) -> str:  # never shows the token
        return f"RehearsalCluster({str(self.state_dir)!r})"

    # -- processes ------------------------------------------------------------------------------
    def _record(self, name: str) -> dict | None:
        f = self.run_dir / f"{name}.json"
        if not f.exists():
            return None
        try:
            return json.loads(f.read_text())
        except ValueError:
            return None

    def pid(self, name: str) -> int | None:
        """The pid of a running component or service, None when it is not running."""
        rec = self._record(name)
        if not rec:
            return None
        if _proc_start_time(rec["pid"]) != rec.get("start_time"):
            return None
        return rec["pid"]

    def service_running(self, name: str) -> bool:
        return self.pid(name) is not None

    def _spawn(self, name: str, argv: Sequence[str | Path], env: dict | None = None) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **(env or {})}
        with open(self.logs / f"{name}.log", "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {argv[0]}\n".encode())
            log.flush()
            p = subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=self.state_dir,
                start_new_session=True,
                close_fds=True,
            )
        _children[p.pid] = p
        rec = {
            "pid": p.pid,
            "argv": [str(a) for a in argv],
            "start_time": None,
            "env_keys": sorted((env or {}).keys()),
        }
        for _ in range(100):
            rec["start_time"] = _proc_start_time(p.pid)
            if rec["start_time"] or p.poll() is not None:
                break
            time.sleep(0.01)
        (self.run_dir / f"{name}.json").write_text(json.dumps(rec))
        (self.run_dir / f"{name}.pid").write_text(f"{p.pid}\n")
        return p.pid

    def _stop(self, name: str, timeout: float = 10.0) -> None:
        pid = self.pid(name)
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.pid(name) is not None:
                time.sleep(0.05)
            if self.pid(name) is not None:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and self.pid(name) is not None:
                    time.sleep(0.05)
            _reap(pid)
        for suffix in (".json", ".pid"):
            (self.run_dir / f"{name}{suffix}").unlink(missing_ok=True)

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid(name) is None:
                raise HandoverError(
                    f"rehearsal {name} exited while starting; last lines of "
                    f"{self.logs / (name + '.log')}:\n{self._tail(name)}"
                )
            try:
                if ready():
                    return
            except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
                pass
            time.sleep(0.1)
        raise HandoverError(
            f"rehearsal {name} not ready after {timeout:.0f}s; last lines of "
            f"{self.logs / (name + '.log')}:\n{self._tail(name)}"
        )

    def _tail(self, name: str, n: int = 15) -> str:
        try:
            return "\n".join(
                (self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-n:]
            )
        except OSError:
            return "(no log)"

    # -- extra services (chart repo, Flux stand-ins ...) -----------------------------------------
    def start_service(
        self,
        name: str,
        argv: list[str],
        env: dict | None = None,
        ready: Callable[[], bool] | None = None,
        timeout: float = 30.0,
    ) -> int:
        """Start a daemon that belongs to this cluster (stopped by down(), before the core).

        Idempotent: when it already runs with the same argv, nothing happens. Output goes to
        logs/<name>.log. ``ready`` (optional) is polled until it returns True."""
        if name in CORE:
            raise HandoverError(f"service name {name!r} is reserved for a core component")
        argv = [str(a) for a in argv]
        rec = self._record(name)
        if self.pid(name) is not None and rec and rec["argv"] == argv:
            return rec["pid"]
        self._stop(name)
        pid = self._spawn(name, argv, env)
        cfg = self.config
        services = [s for s in cfg.get("services", []) if s != name] + [name]
        cfg["services"] = services
        self._save_config(cfg)
        if ready is not None:
            self._wait(name, ready, timeout)
        return pid

    def stop_service(self, name: str) -> None:
        self._stop(name)
        cfg = self.config
        if name in cfg.get("services", []):
            cfg["services"] = [s for s in cfg["services"] if s != name]
            self._save_config(cfg)

    # -- lifecycle ------------------------------------------------------------------------------
    def up(self, timeout: float = 60.0) -> RehearsalCluster:
        """Start what is not running (idempotent); returns self."""
        _require_netns_rights()  # before anything is created
        kube_dir = binaries.kube_binaries()
        etcd_bin = binaries.etcd()
        for d in (self.state_dir, self.certs, self.logs, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        cfg = self._ensure_config()
        self._ensure_certs()
        self._write_kubeconfigs(cfg)
        net = self._ensure_pod_network(cfg)
        ports = cfg["ports"]

        if self.pid("etcd") is None:
            self._check_ports_free("etcd", ports["etcd"], ports["etcd-peer"])
            self._spawn(
                "etcd",
                [
                    etcd_bin,
                    "--name",
                    "rehearsal",
                    "--data-dir",
                    self.state_dir / "etcd",
                    "--listen-client-urls",
                    f"http://127.0.0.1:{ports['etcd']}",
                    "--advertise-client-urls",
                    f"http://127.0.0.1:{ports['etcd']}",
                    "--listen-peer-urls",
                    f"http://127.0.0.1:{ports['etcd-peer']}",
                    "--initial-advertise-peer-urls",
                    f"http://127.0.0.1:{ports['etcd-peer']}",
                    "--initial-cluster",
                    f"rehearsal=http://127.0.0.1:{ports['etcd-peer']}",
                    "--unsafe-no-fsync",
                    "--log-level",
                    "warn",
                ],
            )
        self._wait(
            "etcd", lambda: self._http_ok(f"http://127.0.0.1:{ports['etcd']}/health"), timeout
        )

        if self.pid("kube-apiserver") is None:
            self._check_ports_free("kube-apiserver", ports["kube-apiserver"])
            c = self.certs
            self._spawn(
                "kube-apiserver",
                [
                    kube_dir / "kube-apiserver",
                    f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={ports['kube-apiserver']}",
                    "--insecure-port=0",
                    f"--cert-dir={c}",
                    f"--tls-cert-file={c / 'apiserver.crt'}",
                    f"--tls-private-key-file={c / 'apiserver.key'}",
                    f"--client-ca-file={c / 'ca.crt'}",
                    f"--token-auth-file={c / 'tokens.csv'}",
                    "--authorization-mode=RBAC",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={c / 'sa.pub'}",
                    f"--service-account-signing-key-file={c / 'sa.key'}",
                    "--api-audiences=https://kubernetes.default.svc.cluster.local",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--allow-privileged=true",
                    # the endpoint reconciler refuses the loopback advertise address
                    "--endpoint-reconciler-type=none",
                    f"--audit-policy-file={c / 'audit-policy.yaml'}",
                    f"--audit-log-path={self.audit_log}",
                    "--audit-log-maxsize=50",
                    "--audit-log-maxbackup=2",
                    "--profiling=false",
                    "--v=1",
                ],
            )
        self._wait("kube-apiserver", lambda: self._api_get("/readyz") == b"ok", timeout)

        if self.pid("kube-controller-manager") is None:
            self._check_ports_free("kube-controller-manager", ports["kube-controller-manager"])
            c = self.certs
            self._spawn(
                "kube-controller-manager",
                [
                    kube_dir / "kube-controller-manager",
                    f"--kubeconfig={self.kubeconfig}",
                    f"--authentication-kubeconfig={self.kubeconfig}",
                    f"--authorization-kubeconfig={self.kubeconfig}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={ports['kube-controller-manager']}",
                    "--port=0",
                    f"--cert-dir={c / 'kcm'}",
                    f"--service-account-private-key-file={c / 'sa.key'}",
                    f"--root-ca-file={c / 'ca.crt'}",
                    f"--cluster-signing-cert-file={c / 'ca.crt'}",
                    f"--cluster-signing-key-file={c / 'ca.key'}",
                    "--controllers=*",
                    "--leader-elect=false",
                    "--use-service-account-credentials=false",
                    # the default 20 qps makes a 1000-replica Deployment take a minute to appear
                    "--kube-api-qps=200",
                    "--kube-api-burst=400",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--profiling=false",
                    "--v=1",
                ],
            )
        self._wait(
            "kube-controller-manager",
            lambda: self._http_ok(
                f"https://127.0.0.1:{ports['kube-controller-manager']}/healthz", verify=False
            ),
            timeout,
        )

        self._bootstrap_objects()

        env = {"PYTHONUNBUFFERED": "1", "PYTHONPATH": self._pythonpath()}
        self._ensure_crd_adapter(cfg, env, timeout)
        sock = self.responder_socket
        pid = self.pid("pod-responder")
        if pid is not None and not _in_netns(pid, net["netns"]):
            self._stop("pod-responder")  # outlived a namespace that was deleted and made again
        if self.pid("pod-responder") is None:
            sock.unlink(missing_ok=True)
            self._spawn(
                "pod-responder",
                [
                    shutil.which("ip") or "ip",
                    "netns",
                    "exec",
                    net["netns"],
                    sys.executable,
                    "-m",
                    "handover.rehearsal.pod_responder",
                    "--control",
                    sock,
                ],
                env=env,
            )
        self._wait("pod-responder", self._responder_ready, timeout)

        agent_argv = [
            sys.executable,
            "-m",
            "handover.rehearsal.node_agent",
            "--kubeconfig",
            self.kubeconfig,
            "--node",
            self.node_name,
            "--state-dir",
            self.state_dir,
            "--pod-cidr",
            net["pod_cidr"],
            "--responder-socket",
            sock,
        ]
        rec = self._record("node-agent")
        if (
            self.pid("node-agent") is not None
            and rec
            and rec["argv"][1:] != [str(a) for a in agent_argv[1:]]
        ):
            self._stop("node-agent", timeout=15.0)  # started for another pod network
        if self.pid("node-agent") is None:
            self._spawn("node-agent", agent_argv, env=env)
        self._wait("node-agent", self._node_ready, timeout)
        return self

    def _ensure_crd_adapter(self, cfg: dict, env: dict, timeout: float) -> None:
        """Start the CRD adapter webhook (when not running) and register it with the API server
        (idempotent: the registration is replaced when its port or CA bundle differ)."""
        from handover.rehearsal import crd_adapter

        ports = cfg["ports"]
        if not ports.get("crd-adapter"):  # state dirs made before the adapter existed
            taken = set(ports.values())
            port = free_port()
            while port in taken:
                port = free_port()
            ports["crd-adapter"] = port
            self._save_config(cfg)
        port = ports["crd-adapter"]
        self._ensure_adapter_cert()
        if self.pid("crd-adapter") is None:
            self._check_ports_free("crd-adapter", port)
            self._spawn(
                "crd-adapter",
                [
                    sys.executable,
                    "-m",
                    "handover.rehearsal.crd_adapter",
                    "--port",
                    port,
                    "--cert",
                    self.certs / "crd-adapter.crt",
                    "--key",
                    self.certs / "crd-adapter.key",
                    "--state-dir",
                    self.state_dir,
                ],
                env=env,
            )
        self._wait(
            "crd-adapter", lambda: self._http_ok(f"https://127.0.0.1:{port}/healthz"), timeout
        )
        want = crd_adapter.webhook_configuration(port, (self.certs / "ca.crt").read_bytes())
        from kubernetes.client.rest import ApiException

        api, client = self._api()
        with api:
            adm = client.AdmissionregistrationV1Api(api)
            try:
                have = adm.read_mutating_webhook_configuration(
                    crd_adapter.CONFIG_NAME, _preload_content=False
                )
                have = json.loads(have.data)
            except ApiException as e:
                if e.status != 404:
                    raise
                have = None
            if have is None:
                adm.create_mutating_webhook_configuration(want)
            elif (have["metadata"].get("annotations") or {}).get(
                crd_adapter.HASH_ANNOTATION
            ) != want["metadata"]["annotations"][crd_adapter.HASH_ANNOTATION]:
                want["metadata"]["resourceVersion"] = have["metadata"]["resourceVersion"]
                adm.replace_mutating_webhook_configuration(crd_adapter.CONFIG_NAME, want)

    def _openssl(self, *args: str) -> None:
        """Run openssl in the certificate directory; a failure names the command."""
        p = subprocess.run(
            [str(binaries.openssl()), *args], cwd=self.certs, capture_output=True, text=True
        )
        if p.returncode:
            raise HandoverError(f"openssl {' '.join(args[:2])} failed: {p.stderr.strip()}")

    def _ensure_adapter_cert(self) -> None:
        """A serving certificate for the CRD adapter (IP 127.0.0.1), signed by the cluster CA."""
        c = self.certs
        if (c / "crd-adapter.crt").exists() and (c / "crd-adapter.key").exists():
            return
        run = self._openssl

        (c / "crd-adapter.cnf").write_text(
            "[req]\ndistinguished_name=dn\n[dn]\n[ext]\nsubjectAltName=IP:127.0.0.1\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        )
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "crd-adapter.key",
            "-out",
            "crd-adapter.csr",
            "-subj",
            "/CN=flux-handover-rehearsal-crd-adapter",
            "-config",
            "crd-adapter.cnf",
        )
        run(
            "x509",
            "-req",
            "-in",
            "crd-adapter.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "crd-adapter.crt",
            "-days",
            "3650",
            "-extfile",
            "crd-adapter.cnf",
            "-extensions",
            "ext",
        )
        for f in ("crd-adapter.key", "crd-adapter.crt", "crd-adapter.csr", "crd-adapter.cnf"):
            (c / f).chmod(0o600)

    @property
    def fidelity_notes_path(self) -> Path:
        """Where the CRD adapter keeps its notes (a run's report reads them from here)."""
        from handover.rehearsal import crd_adapter

        return crd_adapter.notes_path(self.state_dir)

    def fidelity_notes(self) -> list[str]:
        """Every way this rehearsal differs from a live cluster for what it holds: each CRD
        field the adapter changed, by CRD and field."""
        from handover.rehearsal import crd_adapter

        return [n.line() for n in crd_adapter.load_notes(self.state_dir)]

    def down(self, purge: bool = False) -> None:
        """Stop everything (extra services in reverse start order, node agent, controller
        manager, apiserver, etcd); with purge=True also delete the state directory."""
        cfg = self.config
        for name in reversed(cfg.get("services", [])):
            self._stop(name)
        for name in reversed(CORE):
            self._stop(name, timeout=15.0)
        if self.run_dir.exists():  # services started but not recorded in cluster.json
            for f in self.run_dir.glob("*.json"):
                self._stop(f.stem)
        self._remove_pod_network(cfg)
        self.responder_socket.unlink(missing_ok=True)
        if purge and self.state_dir.exists():
            shutil.rmtree(self.state_dir)

    def status(self) -> dict:
        """component -> {running, pid, port}; plus kubeconfig, context, server, state_dir."""
        cfg = self.config
        ports = cfg.get("ports", {})
        out: dict = {
            "state_dir": str(self.state_dir),
            "kubeconfig": str(self.kubeconfig),
            "readonly_kubeconfig": str(self.readonly_kubeconfig),
            "audited_kubeconfig": str(self.audited_kubeconfig),
            "context": self.context,
            "pod_cidr": cfg.get("pod_cidr"),
            "components": {},
        }
        if ports.get("kube-apiserver"):
            out["server"] = f"https://127.0.0.1:{ports['kube-apiserver']}"
        for name in list(CORE) + list(cfg.get("services", [])):
            pid = self.pid(name)
            out["components"][name] = {
                "running": pid is not None,
                "pid": pid,
                "port": ports.get(name),
            }
        out["running"] = all(out["components"][n]["running"] for n in CORE)
        out["fidelity_notes"] = self.fidelity_notes()
        out["fidelity_notes_file"] = str(self.fidelity_notes_path)
        return out

    # -- pieces of up() -------------------------------------------------------------------------
    def _ensure_config(self) -> dict:
        cfg = self.config
        if not cfg.get("ports"):
            cfg["ports"] = {
                "etcd": free_port(),
                "etcd-peer": free_port(),
                "kube-apiserver": free_port(),
                "kube-controller-manager": free_port(),
            }
            while len(set(cfg["ports"].values())) < 4:
                cfg["ports"]["etcd-peer"] = free_port()
            cfg["node"] = self.node_name
            cfg["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            cfg.setdefault("services", [])
            self._save_config(cfg)
        return cfg

    def _check_ports_free(self, name: str, *ports: int) -> None:
        for port in ports:
            if port_open(port):
                raise HandoverError(
                    f"rehearsal {name}: port 127.0.0.1:{port} (recorded in {self.config_path}) is "
                    f"taken by another process; stop it, or `handover rehearsal down --purge` "
                    f"this state dir to choose new ports"
                )

    def _ensure_certs(self) -> None:
        c = self.certs
        if (c / "tokens.csv").exists() and (c / "apiserver.crt").exists():
            self._ensure_audited_token()
            return
        run = self._openssl

        run(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "3650",
            "-subj",
            "/CN=flux-handover-rehearsal-ca",
        )
        (c / "san.cnf").write_text(
            "[req]\ndistinguished_name=dn\n[dn]\n[ext]\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
            "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        )
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "apiserver.key",
            "-out",
            "apiserver.csr",
            "-subj",
            "/CN=kube-apiserver",
            "-config",
            "san.cnf",
        )
        run(
            "x509",
            "-req",
            "-in",
            "apiserver.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "apiserver.crt",
            "-days",
            "3650",
            "-extfile",
            "san.cnf",
            "-extensions",
            "ext",
        )
        run("genrsa", "-out", "sa.key", "2048")
        run("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        admin, ro = secrets.token_hex(24), secrets.token_hex(24)
        tokens = c / "tokens.csv"
        tokens.write_text(
            f'{admin},flux-handover-admin,uid-admin,"system:masters"\n'
            f"{ro},{READONLY_USER},uid-readonly\n"
        )
        for f in c.iterdir():
            if f.is_file():
                f.chmod(0o600)
        self._ensure_audited_token()

    def _ensure_audited_token(self) -> None:
        """The audited identity's token line (added to state dirs made before it existed)."""
        tokens = self.certs / "tokens.csv"
        if AUDITED_USER not in tokens.read_text():
            with open(tokens, "a") as f:
                f.write(f'{secrets.token_hex(24)},{AUDITED_USER},uid-audited,"system:masters"\n')
        policy = self.certs / "audit-policy.yaml"
        if not policy.exists() or policy.read_text() != AUDIT_POLICY:
            policy.write_text(AUDIT_POLICY)
            policy.chmod(0o600)

    def _tokens(self) -> tuple[str, str]:
        lines = (self.certs / "tokens.csv").read_text().splitlines()
        return lines[0].split(",")[0], lines[1].split(",")[0]

    def _audited_token(self) -> str:
        for line in (self.certs / "tokens.csv").read_text().splitlines():
            if line.split(",")[1] == AUDITED_USER:
                return line.split(",")[0]
        raise HandoverError(f"no token for {AUDITED_USER} in {self.certs / 'tokens.csv'}")

    def _write_kubeconfigs(self, cfg: dict) -> None:
        admin, ro = self._tokens()
        ca = base64.b64encode((self.certs / "ca.crt").read_bytes()).decode()
        server = f"https://127.0.0.1:{cfg['ports']['kube-apiserver']}"
        for path, ctx, user, token in (
            (self.kubeconfig, CONTEXT, "flux-handover-admin", admin),
            (self.readonly_kubeconfig, READONLY_CONTEXT, READONLY_USER, ro),
            (self.audited_kubeconfig, AUDITED_CONTEXT, AUDITED_USER, self._audited_token()),
        ):
            doc = {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": ctx,
                "preferences": {},
                "clusters": [
                    {
                        "name": CONTEXT,
                        "cluster": {"server": server, "certificate-authority-data": ca},
                    }
                ],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [{"name": ctx, "context": {"cluster": CONTEXT, "user": user}}],
            }
            text = yaml.safe_dump(doc, sort_keys=False)
            if not path.exists() or path.read_text() != text:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(text)
                tmp.chmod(0o600)
                tmp.replace(path)

    def _ssl(self, verify: bool = True) -> ssl.SSLContext:
        if not verify:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return ssl.create_default_context(cafile=str(self.certs / "ca.crt"))

    def _http_ok(self, url: str, verify: bool = True) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2, context=self._ssl(verify)) as r:
                return r.status < 500
        except urllib.error.HTTPError as e:  # 401/403 from kcm still means it serves
            return e.code < 500

    def _api_get(self, path: str) -> bytes:
        req = urllib.request.Request(
            self.server + path, headers={"Authorization": f"Bearer {self._tokens()[0]}"}
        )
        with urllib.request.urlopen(req, timeout=5, context=self._ssl()) as r:
            return r.read()

    def _api(self):
        from kubernetes import client, config  # imported late: keeps `handover --help` fast

        return config.new_client_from_config(str(self.kubeconfig), context=CONTEXT), client

    def _bootstrap_objects(self) -> None:
        """The read-only ClusterRole + binding and the `local-path` StorageClass (idempotent)."""
        from kubernetes.client.rest import ApiException

        api, client = self._api()
        with api:
            rbac = client.RbacAuthorizationV1Api(api)
            storage = client.StorageV1Api(api)
            role: dict[str, Any] = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "flux-handover-readonly"},
                "rules": [
                    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
                    {"nonResourceURLs": ["*"], "verbs": ["get"]},
                ],
            }
            binding: dict[str, Any] = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "flux-handover-readonly"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "flux-handover-readonly",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": READONLY_USER}
                ],
            }
            sc: dict[str, Any] = {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": "local-path",
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "rancher.io/local-path",
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "WaitForFirstConsumer",
            }
            for create, body in (
                (rbac.create_cluster_role, role),
                (rbac.create_cluster_role_binding, binding),
                (storage.create_storage_class, sc),
            ):
                for attempt in range(50):
                    try:
                        create(body)
                        break
                    except ApiException as e:
                        if e.status == 409:
                            break
                        if attempt == 49:
                            raise HandoverError(
                                f"creating {body['kind']} {body['metadata']['name']} in the "
                                f"rehearsal cluster failed: {e.status} {e.reason}"
                            ) from e
                        time.sleep(0.1)  # RBAC bootstrap may still be settling

    def _node_ready(self) -> bool:
        raw = self._api_get(f"/api/v1/nodes/{self.node_name}")
        node = json.loads(raw)
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in node.get("status", {}).get("conditions", [])
        )

    @staticmethod
    def _pythonpath() -> str:
        here = str(Path(__file__).resolve().parents[2])
        old = os.environ.get("PYTHONPATH")
        return f"{here}{os.pathsep}{old}" if old else here

    # -- pod network ----------------------------------------------------------------------------
    def _ensure_pod_network(self, cfg: dict) -> dict:
        """Create (or repair) the cluster's network namespace, veth pair and routes; returns the
        pod network record saved in cluster.json (``pod_network``)."""
        _require_netns_rights()
        if cfg.get("pod_route") is not None or (cfg.get("pod_cidr") and not cfg.get("pod_network")):
            self._drop_legacy_pod_network(cfg)
        net = cfg.get("pod_network")
        with _network_lock():
            if not net:
                net = _allocate_pod_network()
                cfg["pod_network"], cfg["pod_cidr"] = net, net["pod_cidr"]
                self._save_config(cfg)
            _setup_pod_network(net)
        return net

    def _drop_legacy_pod_network(self, cfg: dict) -> None:
        """A state dir made by the former pod network (198.18.0.0/15 or 127/8 made local in the
        root namespace): stop its node agent and remove its route; up() then moves the pods."""
        self._stop("node-agent", timeout=15.0)
        cidr = cfg.get("pod_cidr")
        if cidr and cfg.get("pod_route") and cidr in _local_routes():
            _ip("route", "del", "local", cidr, "dev", "lo")
        cfg.pop("pod_route", None)
        cfg.pop("pod_cidr", None)
        self._save_config(cfg)

    def _remove_pod_network(self, cfg: dict) -> None:
        net = cfg.get("pod_network")
        if not net or not shutil.which("ip"):
            return
        if net["netns"] in _netns_list():  # a responder this state dir lost track of
            for pid in _ip("netns", "pids", net["netns"], check=False).stdout.split():
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"handover.rehearsal.pod_responder" in cmd:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    _reap(int(pid))
        _teardown_pod_network(net)

    @property
    def pod_network(self) -> dict | None:
        """netns, host_if, ns_if, host_ip, ns_ip, transfer_prefix, pod_cidr (None before up)."""
        return self.config.get("pod_network")

    @property
    def responder_socket(self) -> Path:
        path = self.run_dir / "pod-responder.sock"
        if len(str(path)) > 100:  # sun_path is 108 bytes
            net = self.config.get("pod_network") or {}
            path = Path("/tmp") / f"{net.get('netns', 'fhr')}.sock"
        return path

    def _responder_ready(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(self.responder_socket))
            s.sendall(b'{"op": "ping"}\n')
            return json.loads(s.makefile("rb").readline()).get("ok") is True


# -- pod network: iproute2 ---------------------------------------------------------------------
def _require_netns_rights() -> None:
    """Fail before anything is created when this process cannot make the pod network."""
    missing = []
    if not shutil.which("ip"):
        missing.append("the `ip` command (Debian package iproute2)")
    if os.geteuid() != 0:
        missing.append(
            "root (CAP_SYS_ADMIN for `ip netns add`, CAP_NET_ADMIN for the veth pair "
            "and routes); running as uid " + str(os.geteuid())
        )
    if missing:
        raise HandoverError(
            "the rehearsal cluster's pod network (its own network namespace + veth pair, so pod "
            "addresses are accepted in Endpoints and by the API server's service proxy) cannot "
            "be created: missing " + "; ".join(missing) + ". Run `handover rehearsal up` as root "
            "with iproute2 installed."
        )


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and p.returncode:
        raise HandoverError(
            f"rehearsal pod network: `ip {' '.join(args)}` failed: "
            f"{p.stderr.strip() or p.returncode}"
        )
    return p


def _local_routes() -> set[str]:
    p = _ip("-4", "route", "show", "table", "local", check=False)
    return {line.split()[1] for line in p.stdout.splitlines() if line.startswith("local ")}


def _netns_list() -> set[str]:
    return {
        line.split()[0]
        for line in _ip("netns", "list", check=False).stdout.splitlines()
        if line.strip()
    }


def _link_exists(name: str, netns: str | None = None) -> bool:
    pre = ["-n", netns] if netns else []
    return _ip(*pre, "link", "show", "dev", name, check=False).returncode == 0


class _network_lock:
    """An exclusive lock over pod network allocation, shared by every rehearsal cluster on the
    machine (two clusters coming up at once never pick the same networks)."""

    def __enter__(self):
        import fcntl

        d = Path("/run/lock") if Path("/run/lock").is_dir() else Path("/tmp")
        self.f = open(d / "flux-handover-rehearsal-net.lock", "a")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.f.close()  # releases the lock


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network in this (root) namespace: addresses and routes of all tables."""
    used: list[ipaddress.IPv4Network] = []
    out = _ip("-4", "-o", "addr", "show", check=False).stdout
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            used.append(ipaddress.IPv4Interface(parts[parts.index("inet") + 1]).network)
    for line in _ip("-4", "route", "show", "table", "all", check=False).stdout.splitlines():
        parts = line.split()
        if not parts:
            continue
        dst = (
            parts[1]
            if parts[0]
            in (
                "local",
                "broadcast",
                "unicast",
                "blackhole",
                "unreachable",
                "prohibit",
                "throw",
                "anycast",
                "multicast",
            )
            else parts[0]
        )
        if dst == "default":
            continue
        try:
            used.append(ipaddress.IPv4Network(dst, strict=False))
        except ValueError:
            continue
    return used


def _allocate_pod_network() -> dict:
    """A free pod /19 of 10.64.0.0/10 (8190 addresses) and the matching /30 of 10.41.0.0/16 for
    the veth pair (index i: pod net i, transfer net i), with a fresh short id (caller holds
    _network_lock)."""
    import random

    used = _networks_in_use()
    names = _netns_list()
    indexes = list(range(POD_NET.num_addresses >> (32 - POD_PREFIX)))
    random.shuffle(indexes)
    for i in indexes:
        pod = ipaddress.ip_network(
            (int(POD_NET.network_address) + (i << (32 - POD_PREFIX)), POD_PREFIX)
        )
        transfer = ipaddress.ip_network((int(TRANSFER_NET.network_address) + i * 4, 30))
        if any(pod.overlaps(u) or transfer.overlaps(u) for u in used):
            continue
        while True:
            sid = secrets.token_hex(4)
            if f"fhr-{sid}" not in names and not _link_exists(f"fhr{sid}h"):
                break
        hosts = list(transfer.hosts())
        return {
            "netns": f"fhr-{sid}",
            "host_if": f"fhr{sid}h",
            "ns_if": f"fhr{sid}n",
            "host_ip": str(hosts[0]),
            "ns_ip": str(hosts[1]),
            "transfer_prefix": 30,
            "pod_cidr": str(pod),
        }
    raise HandoverError(
        f"no free pod network left in {POD_NET} / {TRANSFER_NET} on this machine"
        f" (`ip netns list`: stale fhr-* namespaces of clusters killed without "
        f"down() can be removed with `handover rehearsal down` on their state "
        f"dirs)"
    )


def _setup_pod_network(net: dict) -> None:
    """Idempotent: whatever part is missing (after a crash, a reboot) is made again."""
    ns, host_if, ns_if = net["netns"], net["host_if"], net["ns_if"]
    pfx = net["transfer_prefix"]
    if ns not in _netns_list():
        if _link_exists(host_if):  # its peer went with a deleted namespace: start over
            _ip("link", "del", host_if, check=False)
        _ip("netns", "add", ns)
    if not (_link_exists(host_if) and _link_exists(ns_if, ns)):
        _ip("link", "del", host_if, check=False)
        _ip("-n", ns, "link", "del", ns_if, check=False)
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
    _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", ns, "addr", "replace", f"{net['ns_ip']}/{pfx}", "dev", ns_if)
    _ip("-n", ns, "link", "set", ns_if, "up")
    _ip("addr", "replace", f"{net['host_ip']}/{pfx}", "dev", host_if)
    _ip("link", "set", host_if, "up")
    # inside the namespace every pod address is local: responders bind to their pod's address
    _ip("-n", ns, "route", "replace", "local", net["pod_cidr"], "dev", "lo")
    _ip("-n", ns, "route", "replace", "default", "via", net["host_ip"], "dev", ns_if)
    # the root namespace (API server, probes) reaches pod addresses through the veth pair
    _ip("route", "replace", net["pod_cidr"], "via", net["ns_ip"], "dev", host_if)


def _teardown_pod_network(net: dict) -> None:
    """Route, veth pair, namespace: each only when present (idempotent)."""
    p = _ip("-4", "route", "show", net["pod_cidr"], check=False)
    if p.stdout.strip():
        _ip("route", "del", net["pod_cidr"], check=False)
    if _link_exists(net["host_if"]):
        _ip("link", "del", net["host_if"], check=False)  # takes its peer with it
    if net["netns"] in _netns_list():
        _ip("netns", "del", net["netns"])
