"""The pod responders of the rehearsal cluster: one daemon, inside the cluster's own network
namespace, that answers HTTP on every pod address and container port the node agent tells it to.

    ip netns exec <netns> python -m handover.rehearsal.pod_responder --control <unix socket>

The pod CIDR is local inside the namespace (``ip route add local <pod cidr> dev lo``), so a
listener can bind any pod address; the root namespace reaches those addresses through the veth
pair (see ``handover.rehearsal.cluster``). The node agent runs in the root namespace (it talks to
the API server on 127.0.0.1) and drives this daemon over a unix socket (unix sockets are files,
they cross network namespaces).

Control protocol: one JSON object per line, one JSON reply line per request (``{"ok": true, ...}``
or ``{"ok": false, "error": ...}``):

``{"op": "add", "uid", "ip", "ports": [..], "pod": "ns/name", "ready": bool}``
    listen on ip:port for every port (idempotent; a changed ip or port list reopens);
    the reply names the ports that listen and the errors of those that could not bind
``{"op": "ready", "uid", "ready": bool}``
    200 while ready, 503 while not
``{"op": "remove", "uid"}``
    close the pod's listeners: nothing listens on its address any more
``{"op": "sync", "pods": [add, ...], "prune": bool}``
    apply every add; with prune, remove every pod not listed (the agent's whole state, sent on
    each (re)connect and after each full list of pods)
``{"op": "list"}`` / ``{"op": "ping"}``
    what listens / liveness

Any request on a pod port answers ``200 {"pod", "uid", "ip", "port", "ready": true}`` while the
pod is ready and ``503`` with the same body (``"ready": false``) while it is not. Everything runs
in one selector loop (epoll): thousands of pods cost one file descriptor per port, no threads.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request headers
MAX_REQUEST = 65536


def log(msg: str) -> None:
    print(f"{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} {msg}", flush=True)


@dataclass
class Pod:
    uid: str
    ip: str
    ports: list[int]
    name: str
    ready: bool
    listeners: dict[int, socket.socket] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)


@dataclass
class HttpConn:
    sock: socket.socket
    uid: str
    port: int
    deadline: float
    inbuf: bytes = b""
    out: bytes = b""


@dataclass
class ControlConn:
    sock: socket.socket
    inbuf: bytes = b""
    out: bytes = b""


class PodResponder:
    def __init__(self, control: Path):
        self.control = Path(control)
        self.sel = selectors.DefaultSelector()
        self.pods: dict[str, Pod] = {}
        self.http: dict[int, HttpConn] = {}  # fd -> connection
        self.control.unlink(missing_ok=True)
        self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ctl.bind(str(self.control))
        os.chmod(self.control, 0o600)
        self.ctl.listen(16)
        self.ctl.setblocking(False)
        self.sel.register(self.ctl, selectors.EVENT_READ, ("control-listen", None))

    # -- pods ------------------------------------------------------------------------------------
    def add(self, uid: str, ip: str, ports: list[int], pod: str, ready: bool) -> dict:
        ports = sorted({int(p) for p in ports})
        cur = self.pods.get(uid)
        if cur and (cur.ip != ip or cur.ports != ports):
            self.remove(uid)
            cur = None
        if cur is None:
            cur = Pod(uid=uid, ip=ip, ports=ports, name=pod, ready=bool(ready))
            self.pods[uid] = cur
            for port in ports:
                self._listen(cur, port)
        cur.name, cur.ready = pod, bool(ready)
        return {
            "listening": sorted(cur.listeners),
            "errors": {str(k): v for k, v in cur.errors.items()},
        }

    def _listen(self, pod: Pod, port: int) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((pod.ip, port))
            s.listen(128)
            s.setblocking(False)
        except OSError as e:
            s.close()
            pod.errors[port] = f"{pod.ip}:{port}: {e.strerror or e}"
            log(f"pod {pod.name}: cannot listen on {pod.ip}:{port}: {e}")
            return
        pod.listeners[port] = s
        self.sel.register(s, selectors.EVENT_READ, ("listen", (pod.uid, port)))

    def remove(self, uid: str) -> None:
        pod = self.pods.pop(uid, None)
        if pod is None:
            return
        for s in pod.listeners.values():
            self.sel.unregister(s)
            s.close()
        for c in list(self.http.values()):  # a removed pod's requests in flight end too
            if c.uid == uid:
                self._close_http(c)

    def set_ready(self, uid: str, ready: bool) -> bool:
        pod = self.pods.get(uid)
        if pod is None:
            return False
        pod.ready = bool(ready)
        return True

    def sync(self, pods: list[dict], prune: bool) -> dict:
        keep = set()
        errors = {}
        for p in pods:
            keep.add(p["uid"])
            r = self.add(
                p["uid"], p["ip"], p.get("ports") or [], p.get("pod", ""), p.get("ready", True)
            )
            if r["errors"]:
                errors[p["uid"]] = r["errors"]
        removed = 0
        if prune:
            for uid in set(self.pods) - keep:
                self.remove(uid)
                removed += 1
        return {"pods": len(self.pods), "removed": removed, "errors": errors}

    # -- control ---------------------------------------------------------------------------------
    def handle_request(self, req: dict) -> dict:
        op = req.get("op")
        try:
            if op == "ping":
                return {"ok": True, "pods": len(self.pods)}
            if op == "add":
                return {
                    "ok": True,
                    **self.add(
                        req["uid"],
                        req["ip"],
                        req.get("ports") or [],
                        req.get("pod", ""),
                        req.get("ready", True),
                    ),
                }
            if op == "ready":
                return {"ok": self.set_ready(req["uid"], req["ready"])}
            if op == "remove":
                self.remove(req["uid"])
                return {"ok": True}
            if op == "sync":
                return {"ok": True, **self.sync(req.get("pods") or [], bool(req.get("prune")))}
            if op == "list":
                return {
                    "ok": True,
                    "pods": {
                        uid: {
                            "pod": p.name,
                            "ip": p.ip,
                            "ready": p.ready,
                            "listening": sorted(p.listeners),
                        }
                        for uid, p in self.pods.items()
                    },
                }
        except (KeyError, TypeError, ValueError) as e:
            return {"ok": False, "error": f"bad {op} request: {e!r}"}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _control_readable(self, c: ControlConn) -> None:
        try:
            data = c.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_control(c)
            return
        c.inbuf += data
        while b"\n" in c.inbuf:
            line, c.inbuf = c.inbuf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                reply = self.handle_request(json.loads(line))
            except ValueError as e:
                reply = {"ok": False, "error": f"not JSON: {e}"}
            c.out += json.dumps(reply).encode() + b"\n"
        self._flush_control(c)

    def _flush_control(self, c: ControlConn) -> None:
        try:
            while c.out:
                n = c.sock.send(c.out)
                c.out = c.out[n:]
        except BlockingIOError:
            pass
        except OSError:
            self._close_control(c)
            return
        self.sel.modify(
            c.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0), ("control", c)
        )

    def _close_control(self, c: ControlConn) -> None:
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    # -- HTTP ------------------------------------------------------------------------------------
    def _accept(self, uid: str, port: int, lsock: socket.socket) -> None:
        for _ in range(64):
            try:
                conn, _addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    log(f"accept on {port}: {e}")
                return
            conn.setblocking(False)
            c = HttpConn(sock=conn, uid=uid, port=port, deadline=time.monotonic() + REQUEST_TIMEOUT)
            self.http[conn.fileno()] = c
            self.sel.register(conn, selectors.EVENT_READ, ("http", c))

    def _http_readable(self, c: HttpConn) -> None:
        try:
            data = c.sock.recv(MAX_REQUEST)
        except BlockingIOError:
            return
        except OSError:
            self._close_http(c)
            return
        c.inbuf += data
        if not data or b"\r\n\r\n" in c.inbuf or len(c.inbuf) >= MAX_REQUEST:
            self._respond(c)

    def _respond(self, c: HttpConn) -> None:
        pod = self.pods.get(c.uid)
        if pod is None:
            self._close_http(c)
            return
        body = json.dumps(
            {"pod": pod.name, "uid": pod.uid, "ip": pod.ip, "port": c.port, "ready": pod.ready}
        ).encode()
        status = "200 OK" if pod.ready else "503 Service Unavailable"
        c.out = (
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
        c.inbuf = b""
        self._http_write(c)

    def _http_write(self, c: HttpConn) -> None:
        try:
            n = c.sock.send(c.out)
            c.out = c.out[n:]
        except BlockingIOError:
            pass
        except OSError:
            self._close_http(c)
            return
        if c.out:
            self.sel.modify(c.sock, selectors.EVENT_WRITE, ("http", c))
        else:
            self._close_http(c)

    def _close_http(self, c: HttpConn) -> None:
        fd = c.sock.fileno()
        if fd >= 0:
            self.http.pop(fd, None)
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
        c.sock.close()

    # -- loop ------------------------------------------------------------------------------------
    def run(self) -> None:
        log(f"pod responder listening for control on {self.control}")
        last_sweep = time.monotonic()
        while True:
            for key, mask in self.sel.select(timeout=1.0):
                kind, data = key.data
                if kind == "listen":
                    self._accept(data[0], data[1], cast(socket.socket, key.fileobj))
                elif kind == "http":
                    if data.out and mask & selectors.EVENT_WRITE:
                        self._http_write(data)
                    elif mask & selectors.EVENT_READ:
                        self._http_readable(data)
                elif kind == "control-listen":
                    try:
                        conn, _ = self.ctl.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    conn.setblocking(False)
                    self.sel.register(conn, selectors.EVENT_READ, ("control", ControlConn(conn)))
                elif kind == "control":
                    if mask & selectors.EVENT_READ:
                        self._control_readable(data)
                    elif mask & selectors.EVENT_WRITE:
                        self._flush_control(data)
            t = time.monotonic()
            if t - last_sweep >= 1.0:
                last_sweep = t
                for c in list(self.http.values()):
                    if t >= c.deadline:
                        if c.out:
                            self._close_http(c)  # the client does not read its answer
                        else:
                            self._respond(c)  # answered without full headers, as before


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard)
            )
        except (ValueError, OSError):
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m handover.rehearsal.pod_responder", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--control", required=True, type=Path, help="unix socket to listen on")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    _raise_fd_limit()
    PodResponder(a.control).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
