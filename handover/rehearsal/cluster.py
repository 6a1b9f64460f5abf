"""The rehearsal cluster: a real etcd + kube-apiserver + kube-controller-manager on 127.0.0.1, plus
the node agent (the kubelet stand-in), all daemons whose whole state lives in one directory::

    <state_dir>/cluster.json        ports, pod network, recorded services (chosen at the first up)
    <state_dir>/certs/              CA, serving certificate, service-account key pair, tokens.csv
    <state_dir>/etcd/               etcd data
    <state_dir>/kubeconfig          admin (system:masters), context "flux-handover-rehearsal"
    <state_dir>/readonly.kubeconfig get/list/watch only, context "flux-handover-rehearsal-readonly"
    <state_dir>/logs/<name>.log     every component's output
    <state_dir>/run/<name>.pid      pid of every running component (run/<name>.json: argv, start time)

``up()`` is idempotent: what runs and is healthy is left alone, what died is started again.
``down()`` stops everything in reverse order and leaves no process and no listening port.

Pods get addresses from a per-cluster /20 inside 198.18.0.0/15 (RFC 2544 benchmarking range, never
routed on real networks), made local with one ``ip route add local <cidr> dev lo`` route (Linux
"AnyIP"): traffic to them never leaves the machine, and unlike 127.0.0.0/8 the API server accepts
them as Endpoints addresses and proxies to them. Without permission to add the route, pods get
127.x.y.z addresses (then Endpoints stay empty: the API server refuses loopback endpoint IPs).
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
from pathlib import Path
from typing import Callable

import yaml

from handover.errors import HandoverError
from handover.rehearsal import binaries

CONTEXT = "flux-handover-rehearsal"
READONLY_CONTEXT = "flux-handover-rehearsal-readonly"
READONLY_USER = "flux-handover-readonly"
NODE_NAME = "rehearsal-node"
SERVICE_CIDR = "10.0.0.0/24"
POD_NET = ipaddress.ip_network("198.18.0.0/15")
POD_PREFIX = 20
CORE = ("etcd", "kube-apiserver", "kube-controller-manager", "node-agent")

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
    rest = stat[stat.rfind(")") + 2:].split()
    if rest[0] in ("Z", "X"):
        _reap(pid)
        return None
    return rest[19]


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
            raise HandoverError(f"rehearsal cluster in {self.state_dir} was never started: run up()")
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

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **(env or {})}
        with open(self.logs / f"{name}.log", "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {argv[0]}\n".encode())
            log.flush()
            p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, env=full_env, cwd=self.state_dir,
                                 start_new_session=True, close_fds=True)
        _children[p.pid] = p
        rec = {"pid": p.pid, "argv": [str(a) for a in argv], "start_time": None,
               "env_keys": sorted((env or {}).keys())}
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
                raise HandoverError(f"rehearsal {name} exited while starting; last lines of "
                                    f"{self.logs / (name + '.log')}:\n{self._tail(name)}")
            try:
                if ready():
                    return
            except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
                pass
            time.sleep(0.1)
        raise HandoverError(f"rehearsal {name} not ready after {timeout:.0f}s; last lines of "
                            f"{self.logs / (name + '.log')}:\n{self._tail(name)}")

    def _tail(self, name: str, n: int = 15) -> str:
        try:
            return "\n".join(
                (self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    # -- extra services (chart repo, Flux stand-ins ...) -----------------------------------------
    def start_service(self, name: str, argv: list[str], env: dict | None = None,
                      ready: Callable[[], bool] | None = None, timeout: float = 30.0) -> int:
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
    def up(self, timeout: float = 60.0) -> "RehearsalCluster":
        """Start what is not running (idempotent); returns self."""
        kube_dir = binaries.kube_binaries()
        etcd_bin = binaries.etcd()
        for d in (self.state_dir, self.certs, self.logs, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        cfg = self._ensure_config()
        self._ensure_certs()
        self._write_kubeconfigs(cfg)
        self._ensure_pod_route(cfg)
        ports = cfg["ports"]

        if self.pid("etcd") is None:
            self._check_ports_free("etcd", ports["etcd"], ports["etcd-peer"])
            self._spawn("etcd", [
                etcd_bin, "--name", "rehearsal", "--data-dir", self.state_dir / "etcd",
                "--listen-client-urls", f"http://127.0.0.1:{ports['etcd']}",
                "--advertise-client-urls", f"http://127.0.0.1:{ports['etcd']}",
                "--listen-peer-urls", f"http://127.0.0.1:{ports['etcd-peer']}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{ports['etcd-peer']}",
                "--initial-cluster", f"rehearsal=http://127.0.0.1:{ports['etcd-peer']}",
                "--unsafe-no-fsync", "--log-level", "warn",
            ])
        self._wait("etcd", lambda: self._http_ok(f"http://127.0.0.1:{ports['etcd']}/health"),
                   timeout)

        if self.pid("kube-apiserver") is None:
            self._check_ports_free("kube-apiserver", ports["kube-apiserver"])
            c = self.certs
            self._spawn("kube-apiserver", [
                kube_dir / "kube-apiserver",
                f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                f"--secure-port={ports['kube-apiserver']}", "--insecure-port=0",
                f"--cert-dir={c}", f"--tls-cert-file={c / 'apiserver.crt'}",
                f"--tls-private-key-file={c / 'apiserver.key'}", f"--client-ca-file={c / 'ca.crt'}",
                f"--token-auth-file={c / 'tokens.csv'}", "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={c / 'sa.pub'}",
                f"--service-account-signing-key-file={c / 'sa.key'}",
                "--api-audiences=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
                # the endpoint reconciler refuses the loopback advertise address
                "--endpoint-reconciler-type=none",
                "--profiling=false", "--v=1",
            ])
        self._wait("kube-apiserver", lambda: self._api_get("/readyz") == b"ok", timeout)

        if self.pid("kube-controller-manager") is None:
            self._check_ports_free("kube-controller-manager", ports["kube-controller-manager"])
            c = self.certs
            self._spawn("kube-controller-manager", [
                kube_dir / "kube-controller-manager",
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1", f"--secure-port={ports['kube-controller-manager']}",
                "--port=0", f"--cert-dir={c / 'kcm'}",
                f"--service-account-private-key-file={c / 'sa.key'}",
                f"--root-ca-file={c / 'ca.crt'}",
                f"--cluster-signing-cert-file={c / 'ca.crt'}",
                f"--cluster-signing-key-file={c / 'ca.key'}",
                "--controllers=*", "--leader-elect=false", "--use-service-account-credentials=false",
                # the default 20 qps makes a 1000-replica Deployment take a minute to appear
                "--kube-api-qps=200", "--kube-api-burst=400",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--profiling=false", "--v=1",
            ])
        self._wait("kube-controller-manager",
                   lambda: self._http_ok(f"https://127.0.0.1:{ports['kube-controller-manager']}"
                                         "/healthz", verify=False), timeout)

        self._bootstrap_objects()

        if self.pid("node-agent") is None:
            self._spawn("node-agent", [
                sys.executable, "-m", "handover.rehearsal.node_agent",
                "--kubeconfig", self.kubeconfig, "--node", self.node_name,
                "--state-dir", self.state_dir, "--pod-cidr", cfg["pod_cidr"],
            ], env={"PYTHONUNBUFFERED": "1", "PYTHONPATH": self._pythonpath()})
        self._wait("node-agent", self._node_ready, timeout)
        return self

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
        self._remove_pod_route(cfg)
        if purge and self.state_dir.exists():
            shutil.rmtree(self.state_dir)

    def status(self) -> dict:
        """component -> {running, pid, port}; plus kubeconfig, context, server, state_dir."""
        cfg = self.config
        ports = cfg.get("ports", {})
        out: dict = {"state_dir": str(self.state_dir), "kubeconfig": str(self.kubeconfig),
                     "readonly_kubeconfig": str(self.readonly_kubeconfig),
                     "context": self.context, "pod_cidr": cfg.get("pod_cidr"),
                     "components": {}}
        if ports.get("kube-apiserver"):
            out["server"] = f"https://127.0.0.1:{ports['kube-apiserver']}"
        for name in list(CORE) + list(cfg.get("services", [])):
            pid = self.pid(name)
            out["components"][name] = {"running": pid is not None, "pid": pid,
                                       "port": ports.get(name)}
        out["running"] = all(out["components"][n]["running"] for n in CORE)
        return out

    # -- pieces of up() -------------------------------------------------------------------------
    def _ensure_config(self) -> dict:
        cfg = self.config
        if not cfg.get("ports"):
            cfg["ports"] = {"etcd": free_port(), "etcd-peer": free_port(),
                            "kube-apiserver": free_port(), "kube-controller-manager": free_port()}
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
                    f"this state dir to choose new ports")

    def _ensure_certs(self) -> None:
        c = self.certs
        if (c / "tokens.csv").exists() and (c / "apiserver.crt").exists():
            return
        ossl = str(binaries.openssl())

        def run(*args: str) -> None:
            p = subprocess.run([ossl, *args], cwd=c, capture_output=True, text=True)
            if p.returncode:
                raise HandoverError(f"openssl {' '.join(args[:2])} failed: {p.stderr.strip()}")

        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "3650", "-subj", "/CN=flux-handover-rehearsal-ca")
        (c / "san.cnf").write_text(
            "[req]\ndistinguished_name=dn\n[dn]\n[ext]\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
            "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out",
            "apiserver.csr", "-subj", "/CN=kube-apiserver", "-config", "san.cnf")
        run("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "apiserver.crt", "-days", "3650", "-extfile", "san.cnf",
            "-extensions", "ext")
        run("genrsa", "-out", "sa.key", "2048")
        run("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        admin, ro = secrets.token_hex(24), secrets.token_hex(24)
        tokens = c / "tokens.csv"
        tokens.write_text(f'{admin},flux-handover-admin,uid-admin,"system:masters"\n'
                          f"{ro},{READONLY_USER},uid-readonly\n")
        for f in c.iterdir():
            if f.is_file():
                f.chmod(0o600)

    def _tokens(self) -> tuple[str, str]:
        lines = (self.certs / "tokens.csv").read_text().splitlines()
        return lines[0].split(",")[0], lines[1].split(",")[0]

    def _write_kubeconfigs(self, cfg: dict) -> None:
        admin, ro = self._tokens()
        ca = base64.b64encode((self.certs / "ca.crt").read_bytes()).decode()
        server = f"https://127.0.0.1:{cfg['ports']['kube-apiserver']}"
        for path, ctx, user, token in ((self.kubeconfig, CONTEXT, "flux-handover-admin", admin),
                                       (self.readonly_kubeconfig, READONLY_CONTEXT, READONLY_USER,
                                        ro)):
            doc = {"apiVersion": "v1", "kind": "Config", "current-context": ctx, "preferences": {},
                   "clusters": [{"name": CONTEXT, "cluster": {
                       "server": server, "certificate-authority-data": ca}}],
                   "users": [{"name": user, "user": {"token": token}}],
                   "contexts": [{"name": ctx, "context": {"cluster": CONTEXT, "user": user}}]}
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
        req = urllib.request.Request(self.server + path,
                                     headers={"Authorization": f"Bearer {self._tokens()[0]}"})
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
            role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "flux-handover-readonly"},
                    "rules": [{"apiGroups": ["*"], "resources": ["*"],
                               "verbs": ["get", "list", "watch"]},
                              {"nonResourceURLs": ["*"], "verbs": ["get"]}]}
            binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                       "metadata": {"name": "flux-handover-readonly"},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                   "name": "flux-handover-readonly"},
                       "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                     "name": READONLY_USER}]}
            sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                  "metadata": {"name": "local-path", "annotations": {
                      "storageclass.kubernetes.io/is-default-class": "true"}},
                  "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
                  "volumeBindingMode": "WaitForFirstConsumer"}
            for create, body in ((rbac.create_cluster_role, role),
                                 (rbac.create_cluster_role_binding, binding),
                                 (storage.create_storage_class, sc)):
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
                                f"rehearsal cluster failed: {e.status} {e.reason}") from e
                        time.sleep(0.1)  # RBAC bootstrap may still be settling

    def _node_ready(self) -> bool:
        raw = self._api_get(f"/api/v1/nodes/{self.node_name}")
        node = json.loads(raw)
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in node.get("status", {}).get("conditions", []))

    @staticmethod
    def _pythonpath() -> str:
        here = str(Path(__file__).resolve().parents[2])
        old = os.environ.get("PYTHONPATH")
        return f"{here}{os.pathsep}{old}" if old else here

    # -- pod network ----------------------------------------------------------------------------
    def _ensure_pod_route(self, cfg: dict) -> None:
        """Pick (once) and install the cluster's pod /20 as a local route."""
        cidr = cfg.get("pod_cidr")
        ip = shutil.which("ip")
        if cidr and cfg.get("pod_route"):
            if ip and self._route_present(cidr):
                return
            if ip and self._add_route(cidr):
                return
            raise HandoverError(f"cannot restore the pod network route {cidr} of {self.state_dir}:"
                                f" `ip route add local {cidr} dev lo` failed")
        if cidr:  # loopback fallback chosen before
            return
        if ip:
            candidates = list(POD_NET.subnets(new_prefix=POD_PREFIX))
            import random
            random.shuffle(candidates)
            taken = self._local_routes()
            for net in candidates:
                if str(net) in taken:
                    continue
                if self._add_route(str(net)):
                    cfg["pod_cidr"], cfg["pod_route"] = str(net), True
                    self._save_config(cfg)
                    return
        # fallback: loopback addresses (Endpoints will refuse them; see module doc)
        import random
        cfg["pod_cidr"], cfg["pod_route"] = f"127.{random.randint(16, 250)}.0.0/16", False
        self._save_config(cfg)

    @staticmethod
    def _local_routes() -> set[str]:
        p = subprocess.run(["ip", "-4", "route", "show", "table", "local"], capture_output=True,
                           text=True)
        return {line.split()[1] for line in p.stdout.splitlines() if line.startswith("local ")}

    def _route_present(self, cidr: str) -> bool:
        return cidr in self._local_routes()

    @staticmethod
    def _add_route(cidr: str) -> bool:
        p = subprocess.run(["ip", "route", "add", "local", cidr, "dev", "lo"],
                           capture_output=True, text=True)
        return p.returncode == 0

    def _remove_pod_route(self, cfg: dict) -> None:
        cidr = cfg.get("pod_cidr")
        if cidr and cfg.get("pod_route") and shutil.which("ip") and self._route_present(cidr):
            subprocess.run(["ip", "route", "del", "local", cidr, "dev", "lo"],
                           capture_output=True, text=True)
