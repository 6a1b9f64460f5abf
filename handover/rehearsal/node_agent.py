"""The rehearsal node agent: what the kubelet (and, for one node, the scheduler) would do, for a
machine without a container engine.

    python -m handover.rehearsal.node_agent --kubeconfig K --node NAME --state-dir D --pod-cidr C \
        --responder-socket S

- Registers the Node (Ready, allocatable cpu/memory/pods, addresses, nodeInfo) and keeps it alive:
  renews its Lease in ``kube-node-lease`` every 10 s and the Ready condition's heartbeat every 60 s,
  so the node lifecycle controller never marks it NotReady.
- Watches all pods (one list + watch, no polling):
  - binds Pending, unbound pods (scheduler ``default-scheduler``, nodeSelector matching the node)
    with the Binding subresource. A pod whose PersistentVolumeClaims are not Bound waits, as with
    the real scheduler; for a WaitForFirstConsumer claim it does the scheduler's part: pre-binds a
    matching Available PV (``spec.claimRef``), or, when none matches, marks the claim with
    ``volume.kubernetes.io/selected-node`` for a provisioner;
  - writes the status of bound pods: phase Running, conditions, hostIP, podIP/podIPs, startTime,
    containerStatuses (name, image, imageID, containerID, ready, started, restartCount,
    state.running.startedAt, lastState) and initContainerStatuses (terminated, Completed);
  - gives every pod a unique address from ``--pod-cidr`` (the cluster's pod network, local only
    inside the cluster's own network namespace, see ``handover.rehearsal.cluster``) and has an HTTP
    responder listen on that address for each TCP container port: any path answers
    ``200 {"pod": "ns/name", "uid": ...}`` while the pod is ready, ``503`` while it is unready;
    nothing listens while a container crash-loops or after the pod is deleted. (hostNetwork pods
    get the host's 127.0.0.1 and no responder.) The agent runs in the root namespace, next to the
    API server on 127.0.0.1; the responders run inside the pod network namespace, in one daemon
    (``handover.rehearsal.pod_responder``) that the agent drives over the unix socket
    ``--responder-socket`` (add / ready / remove per pod, and its whole state on every
    (re)connect, so either side may restart);
  - finishes graceful deletion: a pod with a deletionTimestamp gets its responders stopped and is
    then deleted with grace period 0 (there is no kubelet to do it).

Faults, told through pod annotations (patch them onto a pod, e.g. with kubectl annotate):

``rehearsal.flux-handover.io/restart: "<token>"``
    each new token value restarts the pod's containers once: restartCount + 1, lastState.terminated
    (exitCode 137, reason Error), a new containerID and state.running.startedAt; the responder
    closes and reopens. The token a pod carries when the agent first sees it restarts nothing.
``rehearsal.flux-handover.io/fault: crashloop``
    containers terminate (exitCode 1) and wait in CrashLoopBackOff, not ready; restartCount grows
    by one every ``--crashloop-period`` seconds (default 2); nothing listens on the pod's ports.
``rehearsal.flux-handover.io/fault: unready``
    containers keep running but are not ready (Ready/ContainersReady False); responders answer 503.

Removing the fault annotation recovers: a crash-looping container starts again (restartCount + 1,
new startedAt), an unready one becomes ready; responders answer 200 again.

Pods that run to completion (``restartPolicy: Never`` or ``OnFailure``: every Job and CronJob pod,
Helm hook and test pods) run for a short while, then their containers terminate as a kubelet
reports it (kubernetes ``pkg/kubelet/kubelet_pods.go`` getPhase, ``pkg/kubelet/status/
generate.go``): exit code 0 gives phase ``Succeeded`` (``state.terminated`` reason ``Completed``,
Ready/ContainersReady False with reason ``PodCompleted``), so the real Job controller of the
kube-controller-manager counts the pod and completes the Job. Told by pod annotations (in a Job's
pod template):

``rehearsal.flux-handover.io/exit-code: "<n>"``
    the containers exit with ``n`` (default 0). Non-zero: ``restartPolicy: Never`` gives phase
    ``Failed`` (reason ``Error``), the Job controller makes a new pod until ``backoffLimit``;
    ``OnFailure`` restarts the containers in place (restartCount + 1 after ``--crashloop-period``
    seconds in ``CrashLoopBackOff``), as the kubelet does.
``rehearsal.flux-handover.io/run-seconds: "<s>"``
    how long each run lasts (default 1; ``inf`` never finishes): a slow migration or hook.

A pod in phase Succeeded or Failed is final: the agent never changes it again.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlencode

import urllib3

ANN_PREFIX = "rehearsal.flux-handover.io/"
ANN_RESTART = ANN_PREFIX + "restart"
ANN_FAULT = ANN_PREFIX + "fault"
FAULTS = ("crashloop", "unready")
ANN_EXIT_CODE = ANN_PREFIX + "exit-code"
ANN_RUN_SECONDS = ANN_PREFIX + "run-seconds"
DEFAULT_RUN_SECONDS = 1.0
TERMINAL = ("Succeeded", "Failed")
HOST_IP = "127.0.0.1"
LEASE_PERIOD = 10.0
NODE_STATUS_PERIOD = 60.0


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def log(msg: str) -> None:
    print(f"{now()} {msg}", flush=True)


class ApiError(Exception):
    def __init__(self, status: int, body: str, what: str):
        self.status = status
        super().__init__(f"{what}: {status} {body[:300]}")


class Api:
    """A small JSON client over urllib3 (dicts in, dicts out: fast with thousands of pods)."""

    def __init__(self, kubeconfig: str):
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        self.host = cfg.host.rstrip("/")
        self.headers = {"Accept": "application/json"}
        auth = cfg.api_key.get("BearerToken") or cfg.api_key.get("authorization")
        if auth:
            self.headers["Authorization"] = auth if auth.startswith("Bearer ") else f"Bearer {auth}"
        kw: dict[str, Any] = {}
        if cfg.ssl_ca_cert:
            kw["ca_certs"] = cfg.ssl_ca_cert
        if cfg.cert_file:
            kw["cert_file"], kw["key_file"] = cfg.cert_file, cfg.key_file
        self.pool = urllib3.PoolManager(maxsize=8, cert_reqs="CERT_REQUIRED", **kw)

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        params: dict | None = None,
        content_type: str = "application/json",
        ok404: bool = False,
    ) -> dict | None:
        url = self.host + path + (f"?{urlencode(params)}" if params else "")
        headers = dict(self.headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        r = self.pool.request(
            method,
            url,
            body=data,
            headers=headers,
            timeout=urllib3.Timeout(connect=5, read=30),
            retries=False,
        )
        if r.status == 404 and ok404:
            return None
        if r.status >= 300:
            raise ApiError(r.status, r.data.decode(errors="replace"), f"{method} {path}")
        return json.loads(r.data) if r.data else {}

    def get(self, path: str) -> dict:
        """GET an object that must exist (a 404 raises ApiError, as any error status)."""
        out = self.request("GET", path)
        assert out is not None  # request returns None only for a 404 with ok404
        return out

    def watch(self, path: str, params: dict) -> Iterator[dict]:
        url = self.host + path + "?" + urlencode({**params, "watch": "1"})
        r = self.pool.request(
            "GET",
            url,
            headers=self.headers,
            preload_content=False,
            timeout=urllib3.Timeout(connect=5, read=params.get("timeoutSeconds", 300) + 30),
            retries=False,
        )
        try:
            if r.status != 200:
                raise ApiError(r.status, r.read().decode(errors="replace"), f"WATCH {path}")
            buf = b""
            for chunk in r.stream(65536):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            r.release_conn()


# -- responders --------------------------------------------------------------------------------
class ResponderClient:
    """The node agent's side of the pod responder daemon (``handover.rehearsal.pod_responder``,
    running inside the cluster's network namespace), over its unix control socket.

    Keeps the whole desired state (uid -> address, ports, readiness) and sends only changes; on
    every (re)connect it sends that whole state again, so a restarted daemon, or a daemon that
    outlived a restarted agent, ends up with exactly the agent's responders. A background thread
    pings the daemon and reconnects when it went away."""

    def __init__(self, path: str | Path | None):
        self.path = str(path) if path else None
        self.want: dict[str, dict] = {}
        self.pruned = False  # True once the agent has listed all pods (sync may then prune)
        self.sock: socket.socket | None = None
        self.rfile: BinaryIO | None = None
        self.lock = threading.Lock()
        self._down_logged = False
        if self.path:
            threading.Thread(
                target=self._keepalive, name="responder-keepalive", daemon=True
            ).start()

    # the calls the agent makes
    def open(self, uid: str, ip: str, ports: list[int], pod: str, ready: bool) -> None:
        entry = {"uid": uid, "ip": ip, "ports": sorted(ports), "pod": pod, "ready": ready}
        with self.lock:
            old = self.want.get(uid)
            if old == entry:
                return
            self.want[uid] = entry
            if old and (old["ip"], old["ports"]) == (ip, entry["ports"]):
                self._send({"op": "ready", "uid": uid, "ready": ready})
            else:
                self._send({"op": "add", **entry})

    def set_ready(self, uid: str, ready: bool) -> None:
        with self.lock:
            entry = self.want.get(uid)
            if entry is None or entry["ready"] == ready:
                return
            entry["ready"] = ready
            self._send({"op": "ready", "uid": uid, "ready": ready})

    def close(self, uid: str) -> None:
        with self.lock:
            if self.want.pop(uid, None) is None:
                return
            self._send({"op": "remove", "uid": uid})

    def prune(self) -> None:
        """The agent has listed every pod: drop the daemon's responders of pods it did not see."""
        with self.lock:
            self.pruned = True
            self._send(self._sync_msg())

    def listening(self, uid: str) -> bool:
        return uid in self.want

    # plumbing (self.lock held)
    def _sync_msg(self) -> dict:
        return {"op": "sync", "pods": list(self.want.values()), "prune": self.pruned}

    def _connect(self) -> bool:
        if not self.path:
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        try:
            s.connect(self.path)
        except OSError as e:
            s.close()
            if not self._down_logged:
                log(f"pod responder at {self.path} unreachable ({e}); will retry")
                self._down_logged = True
            return False
        self.sock, self.rfile = s, s.makefile("rb")
        try:
            reply = self._roundtrip(self._sync_msg())
        except OSError as e:
            self._drop()
            log(f"pod responder sync failed: {e}")
            return False
        self._down_logged = False
        log(
            f"pod responder connected: {reply.get('pods')} pods, {reply.get('removed', 0)} "
            f"removed, errors {reply.get('errors') or 'none'}"
        )
        return True

    def _roundtrip(self, msg: dict) -> dict:
        assert self.sock is not None and self.rfile is not None
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        line = self.rfile.readline()
        if not line:
            raise ConnectionError("pod responder closed the control connection")
        return json.loads(line)

    def _drop(self) -> None:
        for f in (self.rfile, self.sock):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        self.sock = self.rfile = None

    def _send(self, msg: dict) -> None:
        if self.sock is None:
            self._connect()  # the sync it sends already carries this change
            return
        try:
            reply = self._roundtrip(msg)
        except (OSError, ValueError) as e:
            log(f"pod responder: {msg.get('op')} failed ({e}); reconnecting")
            self._drop()
            self._connect()
            return
        if not reply.get("ok") or reply.get("errors"):
            log(f"pod responder: {msg.get('op')} {msg.get('uid', '')}: {reply}")

    def _keepalive(self) -> None:
        while True:
            time.sleep(1.0)
            with self.lock:
                if self.sock is None:
                    self._connect()
                    continue
                try:
                    self._roundtrip({"op": "ping"})
                except (OSError, ValueError):
                    self._drop()
                    self._connect()


# -- per-pod state -----------------------------------------------------------------------------
@dataclass
class ContainerState:
    name: str
    image: str
    restart_count: int = 0
    started_at: str = ""
    container_id: str = ""
    last_terminated: dict | None = None


@dataclass
class RunState:
    """The kubelet stand-in's run state of one pod on its node (containers started, restarts,
    faults): the state machine it reports pod status from. Not a snapshot of a pod: that is
    handover.snapshot.pods.PodState."""

    uid: str
    key: str  # namespace/name
    ip: str
    start_time: str
    host_network: bool = False
    ports: list[int] = field(default_factory=list)
    containers: dict[str, ContainerState] = field(default_factory=dict)
    fault: str | None = None
    crash_next: float = 0.0
    restart_token: str | None = None
    # pods that run to completion (restartPolicy Never / OnFailure)
    completes: bool = False
    restart_on_failure: bool = False  # OnFailure: a failed run restarts in place
    exit_code: int = 0
    run_seconds: float = DEFAULT_RUN_SECONDS
    run_started: float = 0.0  # wall clock (time.time()) the current run started
    backoff_until: float = 0.0  # OnFailure after a failed run: CrashLoopBackOff until then
    phase: str = "Running"  # Running, Succeeded or Failed
    finished_at: str = ""  # when the containers terminated (RFC 3339)

    def finish_at(self) -> float:
        return self.run_started + self.run_seconds


def _container_id(uid: str, name: str, restart_count: int) -> str:
    return "containerd://" + hashlib.sha256(f"{uid}/{name}/{restart_count}".encode()).hexdigest()


def _image_id(image: str) -> str:
    repo = image.split("@")[0]
    if ":" in repo.rsplit("/", 1)[-1]:
        repo = repo.rsplit(":", 1)[0]
    return f"{repo}@sha256:" + hashlib.sha256(image.encode()).hexdigest()


class NodeAgent:
    def __init__(
        self,
        kubeconfig: str,
        node: str,
        state_dir: Path,
        pod_cidr: str,
        crashloop_period: float = 2.0,
        responder_socket: str | Path | None = None,
    ):
        self.api = Api(kubeconfig)
        self.hb_api = Api(kubeconfig)  # heartbeats get their own connection pool
        self.node = node
        self.state_dir = Path(state_dir)
        self.net = ipaddress.ip_network(pod_cidr)
        self.crashloop_period = crashloop_period
        self.lock = threading.RLock()
        self.pods: dict[str, RunState] = {}
        self.latest: dict[str, dict] = {}  # uid -> last seen pod
        self.waiting: set[str] = set()  # uids to retry (claims not bound yet)
        self.deleting: set[str] = set()
        self.used_ips: set[str] = set()
        self._next_ip = 0
        self.node_labels: dict[str, str] = {}
        self._node_transition: dict[str, str] = {}
        self.responders = ResponderClient(responder_socket)
        self.tokens_file = self.state_dir / "node-agent" / "restart-tokens.json"
        self.tokens: dict[str, str] = {}
        if self.tokens_file.exists():
            try:
                self.tokens = json.loads(self.tokens_file.read_text())
            except ValueError:
                self.tokens = {}

    # -- node ----------------------------------------------------------------------------------
    def register(self) -> None:
        labels = {
            "kubernetes.io/hostname": self.node,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
            "node-role.kubernetes.io/master": "true",
            "node-role.kubernetes.io/control-plane": "true",
            "node.kubernetes.io/instance-type": "rehearsal",
        }
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node, "labels": labels},
            "spec": {"podCIDR": str(self.net), "podCIDRs": [str(self.net)]},
        }
        try:
            self.api.request("POST", "/api/v1/nodes", body)
            log(f"registered node {self.node}")
        except ApiError as e:
            if e.status != 409:
                raise
        node = self.api.get(f"/api/v1/nodes/{self.node}")
        self.node_labels = node["metadata"].get("labels", {})
        self.node_status()

    def node_status(self) -> None:
        t = now()
        conds = [
            {
                "type": "MemoryPressure",
                "status": "False",
                "reason": "KubeletHasSufficientMemory",
                "message": "kubelet has sufficient memory available",
            },
            {
                "type": "DiskPressure",
                "status": "False",
                "reason": "KubeletHasNoDiskPressure",
                "message": "kubelet has no disk pressure",
            },
            {
                "type": "PIDPressure",
                "status": "False",
                "reason": "KubeletHasSufficientPID",
                "message": "kubelet has sufficient PID available",
            },
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "rehearsal node agent is posting ready status",
            },
        ]
        for c in conds:
            c["lastHeartbeatTime"] = t
            c["lastTransitionTime"] = self._node_transition.get(c["type"], t)
            self._node_transition.setdefault(c["type"], t)
        res = {"cpu": "8", "memory": "32Gi", "pods": "10000", "ephemeral-storage": "100Gi"}
        status = {
            "conditions": conds,
            "capacity": res,
            "allocatable": res,
            "addresses": [
                {"type": "InternalIP", "address": HOST_IP},
                {"type": "Hostname", "address": self.node},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "rehearsal",
                "systemUUID": "rehearsal",
                "bootID": "rehearsal",
                "kernelVersion": os.uname().release,
                "osImage": "flux-handover rehearsal node",
                "containerRuntimeVersion": "rehearsal://1.0.0",
                "kubeletVersion": "v1.20.2",
                "kubeProxyVersion": "v1.20.2",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        self.hb_api.request(
            "PATCH",
            f"/api/v1/nodes/{self.node}/status",
            {"status": status},
            content_type="application/merge-patch+json",
        )

    def renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node}"
        spec = {"holderIdentity": self.node, "leaseDurationSeconds": 40, "renewTime": now_micro()}
        if self.hb_api.request("GET", path, ok404=True) is None:
            self.hb_api.request(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.node, "namespace": "kube-node-lease"},
                    "spec": spec,
                },
            )
        else:
            self.hb_api.request(
                "PATCH", path, {"spec": spec}, content_type="application/merge-patch+json"
            )

    def heartbeat_loop(self) -> None:
        last_status = time.monotonic()
        while True:
            time.sleep(LEASE_PERIOD)
            try:
                self.renew_lease()
                if time.monotonic() - last_status >= NODE_STATUS_PERIOD:
                    self.node_status()
                    last_status = time.monotonic()
            except Exception as e:  # noqa: BLE001 - keep beating
                log(f"heartbeat failed: {e}")

    # -- addresses -----------------------------------------------------------------------------
    def _alloc_ip(self) -> str:
        hosts = self.net.num_addresses
        for _ in range(hosts):
            self._next_ip = (self._next_ip + 1) % hosts
            if self._next_ip < 2 or self._next_ip == hosts - 1:
                continue
            ip = str(self.net.network_address + self._next_ip)
            if ip not in self.used_ips:
                self.used_ips.add(ip)
                return ip
        raise RuntimeError(f"pod network {self.net} is full")

    # -- pods ----------------------------------------------------------------------------------
    def handle(self, etype: str, pod: dict) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        with self.lock:
            if etype == "DELETED":
                self.forget(uid)
                return
            self.latest[uid] = pod
            node = pod["spec"].get("nodeName")
            if node and node != self.node:
                return
            try:
                if meta.get("deletionTimestamp"):
                    self.finish_deletion(pod)
                elif not node:
                    self.schedule(pod)
                elif uid not in self.pods and (pod.get("status") or {}).get("phase") in TERMINAL:
                    return  # finished before this agent started: final, as on a kubelet
                else:
                    self.sync(pod)
            except ApiError as e:
                if e.status in (404, 409):  # gone or changed meanwhile: the next event says
                    return
                log(f"pod {meta['namespace']}/{meta['name']}: {e}")
                self.waiting.add(uid)

    def forget(self, uid: str) -> None:
        st = self.pods.pop(uid, None)
        self.responders.close(uid)
        if st:
            self.used_ips.discard(st.ip)
        self.latest.pop(uid, None)
        self.waiting.discard(uid)
        self.deleting.discard(uid)
        if self.tokens.pop(uid, None) is not None:
            self._save_tokens()

    def finish_deletion(self, pod: dict) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        self.responders.close(uid)
        if uid in self.deleting:
            return
        self.deleting.add(uid)
        self.api.request(
            "DELETE",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{quote(meta['name'])}",
            {
                "apiVersion": "v1",
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": uid},
            },
            ok404=True,
        )
        log(f"pod {meta['namespace']}/{meta['name']} deleted (graceful deletion finished)")

    def schedule(self, pod: dict) -> None:
        spec, meta = pod["spec"], pod["metadata"]
        if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
            return
        for k, v in (spec.get("nodeSelector") or {}).items():
            if self.node_labels.get(k) != v:
                return  # a real scheduler leaves it Pending too
        ns = meta["namespace"]
        if not self._claims_bound(ns, spec):
            self.waiting.add(meta["uid"])
            return
        self.waiting.discard(meta["uid"])
        self.api.request(
            "POST",
            f"/api/v1/namespaces/{ns}/pods/{quote(meta['name'])}/binding",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": meta["name"], "namespace": ns, "uid": meta["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
            },
        )

    def _claims_bound(self, ns: str, spec: dict) -> bool:
        ok = True
        for vol in spec.get("volumes") or []:
            claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            pvc = self.api.request(
                "GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}", ok404=True
            )
            if pvc is None:
                ok = False
                continue
            if pvc.get("status", {}).get("phase") == "Bound":
                continue
            ok = False
            self._help_wffc_claim(pvc)
        return ok

    def _help_wffc_claim(self, pvc: dict) -> None:
        """The scheduler's volume binding for WaitForFirstConsumer claims."""
        cls_name = pvc["spec"].get("storageClassName")
        if not cls_name or pvc["spec"].get("volumeName"):
            return
        sc = self.api.request(
            "GET", f"/apis/storage.k8s.io/v1/storageclasses/{cls_name}", ok404=True
        )
        if not sc or sc.get("volumeBindingMode") != "WaitForFirstConsumer":
            return
        meta = pvc["metadata"]
        want = _quantity(pvc["spec"].get("resources", {}).get("requests", {}).get("storage", "0"))
        modes = set(pvc["spec"].get("accessModes") or [])
        best = None
        for pv in self.api.get("/api/v1/persistentvolumes").get("items", []):
            ref = pv["spec"].get("claimRef")
            if ref and (ref.get("namespace"), ref.get("name")) != (meta["namespace"], meta["name"]):
                continue
            if pv["spec"].get("storageClassName") != cls_name:
                continue
            if pv.get("status", {}).get("phase") not in ("Available", None) and not ref:
                continue
            if not modes <= set(pv["spec"].get("accessModes") or []):
                continue
            size = _quantity(pv["spec"].get("capacity", {}).get("storage", "0"))
            if size >= want and (best is None or size < best[0]):
                best = (size, pv)
        if best:
            pv = best[1]
            self.api.request(
                "PATCH",
                f"/api/v1/persistentvolumes/{pv['metadata']['name']}",
                {
                    "spec": {
                        "claimRef": {
                            "apiVersion": "v1",
                            "kind": "PersistentVolumeClaim",
                            "namespace": meta["namespace"],
                            "name": meta["name"],
                            "uid": meta["uid"],
                        }
                    }
                },
                content_type="application/merge-patch+json",
            )
        elif (meta.get("annotations") or {}).get("volume.kubernetes.io/selected-node") != self.node:
            self.api.request(
                "PATCH",
                f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims/{meta['name']}",
                {"metadata": {"annotations": {"volume.kubernetes.io/selected-node": self.node}}},
                content_type="application/merge-patch+json",
            )

    def _state(self, pod: dict) -> RunState:
        meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
        uid = meta["uid"]
        st = self.pods.get(uid)
        if st:
            return st
        host_net = bool(spec.get("hostNetwork"))
        ip = status.get("podIP")
        if host_net:
            ip = HOST_IP
        elif ip and ipaddress.ip_address(ip) in self.net and ip not in self.used_ips:
            self.used_ips.add(ip)  # agent restarted: keep the pod's address
        else:
            ip = self._alloc_ip()
        ports = sorted(
            {
                p["containerPort"]
                for c in spec.get("containers", [])
                for p in c.get("ports") or []
                if p.get("protocol", "TCP") == "TCP"
            }
        )
        st = RunState(
            uid=uid,
            key=f"{meta['namespace']}/{meta['name']}",
            ip=ip,
            start_time=status.get("startTime") or now(),
            host_network=host_net,
            ports=ports,
        )
        policy = spec.get("restartPolicy", "Always")
        st.completes = policy in ("Never", "OnFailure")
        st.restart_on_failure = policy == "OnFailure"
        st.run_started = time.time()
        old = {c["name"]: c for c in status.get("containerStatuses") or []}
        t = now()
        for c in spec.get("containers", []):
            o = old.get(c["name"])
            cs = ContainerState(name=c["name"], image=c.get("image", ""))
            if o:  # resume what this pod's status already says (agent restart)
                cs.restart_count = o.get("restartCount", 0)
                cs.started_at = ((o.get("state") or {}).get("running") or {}).get("startedAt", t)
                cs.container_id = o.get("containerID") or _container_id(
                    uid, c["name"], cs.restart_count
                )
                cs.last_terminated = (o.get("lastState") or {}).get("terminated")
                waiting = (o.get("state") or {}).get("waiting", {}).get("reason")
                if st.completes:  # resume the run where it was
                    started = ((o.get("state") or {}).get("running") or {}).get("startedAt")
                    if started:
                        st.run_started = _epoch(started)
                    elif waiting == "CrashLoopBackOff":
                        st.backoff_until = time.time() + self.crashloop_period
                elif waiting == "CrashLoopBackOff":
                    st.fault = "crashloop"
            else:
                cs.started_at = t
                cs.container_id = _container_id(uid, c["name"], 0)
            st.containers[c["name"]] = cs
        if (
            st.fault is None
            and not st.completes
            and any(
                o.get("ready") is False and (o.get("state") or {}).get("running")
                for o in old.values()
            )
        ):
            st.fault = "unready"
        ann = meta.get("annotations") or {}
        st.restart_token = self.tokens.get(uid, ann.get(ANN_RESTART))
        if st.restart_token is not None and uid not in self.tokens:
            self.tokens[uid] = st.restart_token
            self._save_tokens()
        self.pods[uid] = st
        return st

    def _save_tokens(self) -> None:
        self.tokens_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.tokens_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.tokens))
        tmp.replace(self.tokens_file)

    def _terminate(self, st: RunState, exit_code: int, reason: str, message: str) -> None:
        t = now()
        for cs in st.containers.values():
            cs.last_terminated = {
                "exitCode": exit_code,
                "reason": reason,
                "message": message,
                "startedAt": cs.started_at or t,
                "finishedAt": t,
                "containerID": cs.container_id,
            }

    def _start_again(self, st: RunState) -> None:
        t = now()
        for cs in st.containers.values():
            cs.restart_count += 1
            cs.started_at = t
            cs.container_id = _container_id(st.uid, cs.name, cs.restart_count)

    def sync(self, pod: dict) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        fresh = uid not in self.pods
        st = self._state(pod)
        ann = meta.get("annotations") or {}
        if st.completes:
            if st.phase not in TERMINAL:
                self._read_run(st, ann)
            self._apply_responders(st, pod, False)
            self._write_status(pod, st)
            return
        fault = ann.get(ANN_FAULT)
        if fault not in FAULTS:
            if fault is not None:
                log(f"pod {st.key}: unknown fault {fault!r} ignored (known: {', '.join(FAULTS)})")
            fault = None
        bounce = False
        # restart token
        token = ann.get(ANN_RESTART)
        if token is not None and token != st.restart_token and not fresh:
            self._terminate(st, 137, "Error", f"restarted by annotation {ANN_RESTART}={token}")
            if st.fault != "crashloop":
                self._start_again(st)
            bounce = True
            log(f"pod {st.key}: restart {token!r}")
        if token != st.restart_token:
            st.restart_token = token
            if token is None:
                self.tokens.pop(uid, None)
            else:
                self.tokens[uid] = token
            self._save_tokens()
        # faults
        if fault != st.fault:
            if fault == "crashloop":
                self._terminate(st, 1, "Error", "rehearsal fault: crashloop")
                for cs in st.containers.values():
                    cs.restart_count += 1
                st.crash_next = time.monotonic() + self.crashloop_period
            elif st.fault == "crashloop":
                self._start_again(st)
                bounce = True
            log(f"pod {st.key}: fault {st.fault} -> {fault}")
            st.fault = fault
        self._apply_responders(st, pod, bounce)
        self._write_status(pod, st)

    # -- pods that run to completion -------------------------------------------------------------
    def _read_run(self, st: RunState, ann: dict) -> None:
        """Exit code and run length from the pod's annotations (bad values: logged, default)."""
        raw = ann.get(ANN_EXIT_CODE)
        code = 0
        if raw is not None:
            try:
                code = int(raw)
                if not 0 <= code <= 255:
                    raise ValueError
            except ValueError:
                log(f"pod {st.key}: {ANN_EXIT_CODE}={raw!r} is not an exit code 0-255; using 0")
                code = 0
        raw = ann.get(ANN_RUN_SECONDS)
        secs = DEFAULT_RUN_SECONDS
        if raw is not None:
            try:
                secs = float(raw)
                if secs < 0 or secs != secs:
                    raise ValueError
            except ValueError:
                log(
                    f"pod {st.key}: {ANN_RUN_SECONDS}={raw!r} is not a number of seconds; "
                    f"using {DEFAULT_RUN_SECONDS}"
                )
                secs = DEFAULT_RUN_SECONDS
        st.exit_code, st.run_seconds = code, secs

    def run_tick(self, st: RunState) -> bool:
        """Advance a pod that runs to completion; True when its status changed."""
        if st.phase in TERMINAL:
            return False
        t = time.time()
        if st.backoff_until:
            if t < st.backoff_until:
                return False
            self._start_again(st)  # the kubelet restarts an OnFailure container in place
            st.backoff_until, st.run_started = 0.0, t
            log(f"pod {st.key}: container restarted after a failed run")
            return True
        if t < st.finish_at():
            return False
        code = st.exit_code
        reason = "Completed" if code == 0 else "Error"
        if code == 0 or not st.restart_on_failure:
            st.phase = "Succeeded" if code == 0 else "Failed"
            st.finished_at = now()
            log(f"pod {st.key}: containers exited {code}: {st.phase}")
        else:
            self._terminate(st, code, reason, "")
            st.backoff_until = t + self.crashloop_period
            log(f"pod {st.key}: containers exited {code}: restart after back-off")
        return True

    def crash_tick(self, st: RunState) -> None:
        """One more back-off restart of a crash-looping pod."""
        t = now()
        for cs in st.containers.values():
            cs.restart_count += 1
            cs.last_terminated = {
                "exitCode": 1,
                "reason": "Error",
                "message": "rehearsal fault: crashloop",
                "startedAt": t,
                "finishedAt": t,
                "containerID": _container_id(st.uid, cs.name, cs.restart_count),
            }
        st.crash_next = time.monotonic() + self.crashloop_period

    def _apply_responders(self, st: RunState, pod: dict, bounce: bool) -> None:
        if st.host_network or not st.ports:
            return
        if st.completes:  # listens only while the containers run
            if st.phase in TERMINAL or st.backoff_until:
                self.responders.close(st.uid)
            else:
                self.responders.open(st.uid, st.ip, st.ports, st.key, ready=True)
            return
        if st.fault == "crashloop" or bounce:
            self.responders.close(st.uid)
        if st.fault != "crashloop":
            self.responders.open(st.uid, st.ip, st.ports, st.key, ready=st.fault is None)

    def desired_status(self, pod: dict, st: RunState) -> dict:
        spec, old = pod["spec"], pod.get("status") or {}
        ready = st.fault is None
        running = st.fault != "crashloop"
        phase = "Running"
        terminated = False
        if st.completes:
            phase = st.phase
            terminated = phase in TERMINAL
            running = not terminated and not st.backoff_until
            ready = running
        cstat = []
        for c in spec.get("containers", []):
            cs = st.containers[c["name"]]
            item = {
                "name": cs.name,
                "image": cs.image,
                "imageID": _image_id(cs.image),
                "containerID": cs.container_id
                if running or terminated
                else (cs.last_terminated or {}).get("containerID", cs.container_id),
                "ready": ready,
                "started": running,
                "restartCount": cs.restart_count,
                "lastState": {"terminated": cs.last_terminated} if cs.last_terminated else {},
            }
            if terminated:
                item["state"] = {
                    "terminated": {
                        "exitCode": st.exit_code,
                        "reason": "Completed" if st.exit_code == 0 else "Error",
                        "startedAt": cs.started_at,
                        "finishedAt": st.finished_at,
                        "containerID": cs.container_id,
                    }
                }
            elif running:
                item["state"] = {"running": {"startedAt": cs.started_at}}
            else:
                item["state"] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {int(self.crashloop_period)}s restarting failed "
                        f"container={cs.name} pod={pod['metadata']['name']}_"
                        f"{pod['metadata']['namespace']}({st.uid})",
                    }
                }
            cstat.append(item)
        init = []
        for c in spec.get("initContainers") or []:
            init.append(
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": _image_id(c.get("image", "")),
                    "containerID": _container_id(st.uid, c["name"], 0),
                    "ready": True,
                    "restartCount": 0,
                    "lastState": {},
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": st.start_time,
                            "finishedAt": st.start_time,
                            "containerID": _container_id(st.uid, c["name"], 0),
                        }
                    },
                }
            )
        old_conds = {c["type"]: c for c in old.get("conditions") or []}
        names = ",".join(c["name"] for c in spec.get("containers", []))
        conds = []
        succeeded = phase == "Succeeded"
        for ctype, ok in (
            ("Initialized", True),
            ("Ready", ready),
            ("ContainersReady", ready),
            ("PodScheduled", True),
        ):
            c = {"type": ctype, "status": "True" if ok else "False", "lastProbeTime": None}
            prev = old_conds.get(ctype)
            c["lastTransitionTime"] = (
                prev["lastTransitionTime"]
                if prev and prev.get("status") == c["status"] and prev.get("lastTransitionTime")
                else now()
            )
            if succeeded and ctype != "PodScheduled":  # kubelet status/generate.go
                c["reason"] = "PodCompleted"
            elif not ok:
                c["reason"] = "ContainersNotReady"
                c["message"] = f"containers with unready status: [{names.replace(',', ' ')}]"
            conds.append(c)
        status = {
            "phase": phase,
            "conditions": conds,
            "hostIP": HOST_IP,
            "podIP": st.ip,
            "podIPs": [{"ip": st.ip}],
            "startTime": st.start_time,
            "containerStatuses": cstat,
        }
        if init:
            status["initContainerStatuses"] = init
        return status

    def _write_status(self, pod: dict, st: RunState) -> None:
        want = self.desired_status(pod, st)
        old = pod.get("status") or {}
        if all(_same(old.get(k), v) for k, v in want.items()):
            return
        meta = pod["metadata"]
        self.api.request(
            "PATCH",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{quote(meta['name'])}/status",
            {"metadata": {"uid": meta["uid"]}, "status": want},
            content_type="application/merge-patch+json",
        )

    # -- loops ---------------------------------------------------------------------------------
    def ticker(self) -> None:
        while True:
            time.sleep(0.25)
            try:
                with self.lock:
                    t = time.monotonic()
                    for st in list(self.pods.values()):
                        if st.completes:
                            pod = self.latest.get(st.uid)
                            if pod and self.run_tick(st):
                                self._apply_responders(st, pod, False)
                                try:
                                    self._write_status(pod, st)
                                except ApiError as e:
                                    log(f"pod {st.key}: {e}")
                                    if e.status not in (404, 409):
                                        self.waiting.add(st.uid)
                            continue
                        if st.fault == "crashloop" and t >= st.crash_next:
                            pod = self.latest.get(st.uid)
                            if pod:
                                self.crash_tick(st)
                                try:
                                    self._write_status(pod, st)
                                except ApiError as e:
                                    log(f"pod {st.key}: {e}")
                    retry = list(self.waiting)
                for uid in retry:
                    pod = self.latest.get(uid)
                    if pod is not None:
                        with self.lock:
                            self.waiting.discard(uid)
                        self.handle("MODIFIED", pod)
                if retry:
                    time.sleep(0.75)
            except Exception:  # noqa: BLE001
                log("ticker: " + traceback.format_exc())

    def watch_pods(self) -> None:
        rv = None
        while True:
            try:
                if rv is None:
                    lst = self.api.get("/api/v1/pods")
                    rv = lst["metadata"]["resourceVersion"]
                    seen = set()
                    for pod in lst.get("items", []):
                        seen.add(pod["metadata"]["uid"])
                        self.handle("ADDED", pod)
                    with self.lock:
                        for uid in set(self.pods) - seen:
                            self.forget(uid)
                    self.responders.prune()  # responders of pods deleted while we were away
                for ev in self.api.watch(
                    "/api/v1/pods",
                    {"resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": 300},
                ):
                    obj = ev.get("object") or {}
                    if ev["type"] == "ERROR":
                        log(f"watch error: {obj.get('message')}")
                        rv = None if obj.get("code") == 410 else rv
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if ev["type"] == "BOOKMARK":
                        continue
                    self.handle(ev["type"], obj)
            except ApiError as e:
                log(f"watch: {e}")
                if e.status == 410:
                    rv = None
                time.sleep(1)
            except (urllib3.exceptions.HTTPError, OSError) as e:
                log(f"watch interrupted: {e}")
                time.sleep(1)

    def run(self) -> None:
        for attempt in range(60):
            try:
                self.register()
                self.renew_lease()
                break
            except Exception as e:  # noqa: BLE001 - API server may still be starting
                if attempt == 59:
                    raise
                log(f"registering node failed, retrying: {e}")
                time.sleep(0.5)
        threading.Thread(target=self.heartbeat_loop, name="heartbeat", daemon=True).start()
        threading.Thread(target=self.ticker, name="ticker", daemon=True).start()
        log(f"node agent for {self.node} running, pod network {self.net}")
        self.watch_pods()


def _epoch(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 time as the API server writes it."""
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return time.time()


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


_SUFFIX = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
}


def _quantity(q: str | int) -> float:
    s = str(q)
    for suf in sorted(_SUFFIX, key=len, reverse=True):
        if s.endswith(suf):
            return float(s[: -len(suf)]) * _SUFFIX[suf]
    return float(s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m handover.rehearsal.node_agent", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--state-dir", required=True, type=Path)
    ap.add_argument("--pod-cidr", required=True)
    ap.add_argument(
        "--responder-socket",
        required=True,
        type=Path,
        help="control socket of the pod responder daemon (pod_responder.py)",
    )
    ap.add_argument("--crashloop-period", type=float, default=2.0)
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    NodeAgent(
        a.kubeconfig, a.node, a.state_dir, a.pod_cidr, a.crashloop_period, a.responder_socket
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
