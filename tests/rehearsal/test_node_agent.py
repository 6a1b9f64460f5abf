"""The node agent and the pod responders: Node registration and heartbeats, binding and pod
status, pod addresses (in the cluster's own network namespace) and their responders, answering
from the root namespace and through the API server's service proxy, Endpoints, each fault
annotation, graceful deletion, WaitForFirstConsumer claims, an agent restart and a responder
restart keeping pods as they are, and the responder daemon's control protocol."""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from handover.rehearsal.node_agent import ANN_FAULT, ANN_RESTART

pytestmark = pytest.mark.rehearsal


@pytest.fixture
def ns(rehearsal_api):
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(rehearsal_api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _probe(ip: str, port: int) -> tuple[int | None, dict | None]:
    """(HTTP status, body) from a pod address, (None, None) when nothing listens."""
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/healthz", timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return None, None


def _control(sock: Path | str, *msgs: dict) -> list[dict]:
    """Requests to a pod responder daemon's control socket, one reply each."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(sock))
        f = s.makefile("rb")
        out = []
        for m in msgs:
            s.sendall(json.dumps(m).encode() + b"\n")
            out.append(json.loads(f.readline()))
        return out


def _responding(cluster) -> dict:
    """uid -> what the cluster's pod responder daemon listens on."""
    return _control(cluster.responder_socket, {"op": "list"})[0]["pods"]


def _deployment(name: str, replicas: int = 1, port: int = 8080) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "app", "image": f"example.org/{name}:1.0",
                          "ports": [{"containerPort": port}]}]}}}}


def _ready_pods(core, ns: str, selector: str, n: int):
    pods = core.list_namespaced_pod(ns, label_selector=selector).items
    ok = [p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
          and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
    return ok if len(ok) == n and len(pods) == n else None


def _cond(pod, ctype: str) -> str | None:
    return next((c.status for c in pod.status.conditions or [] if c.type == ctype), None)


def test_node_is_registered_ready_with_a_lease(rehearsal_api, rehearsal_cluster):
    core = client.CoreV1Api(rehearsal_api)
    node = core.read_node(rehearsal_cluster.node_name)
    assert _cond(node, "Ready") == "True"
    assert node.status.allocatable["pods"] in ("10000", "10k")  # the server canonicalises
    assert node.spec.pod_cidr == rehearsal_cluster.pod_cidr
    assert not [t for t in node.spec.taints or [] if t.key.startswith("node.kubernetes.io/not")]
    lease = client.CoordinationV1Api(rehearsal_api).read_namespaced_lease(
        rehearsal_cluster.node_name, "kube-node-lease")
    assert lease.spec.holder_identity == rehearsal_cluster.node_name
    assert lease.spec.renew_time is not None


def test_deployment_pods_run_ready_answer_and_are_endpoints(rehearsal_api, rehearsal_cluster, ns,
                                                            eventually):
    core, apps = client.CoreV1Api(rehearsal_api), client.AppsV1Api(rehearsal_api)
    apps.create_namespaced_deployment(ns, _deployment("web", replicas=2))
    core.create_namespaced_service(ns, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    pods = eventually(lambda: _ready_pods(core, ns, "app=web", 2), "2 web pods Running+Ready")
    uids = {p.metadata.uid for p in pods}
    net = ipaddress.ip_network(rehearsal_cluster.pod_cidr)
    assert len({p.status.pod_ip for p in pods}) == 2
    for p in pods:
        assert p.spec.node_name == rehearsal_cluster.node_name
        assert ipaddress.ip_address(p.status.pod_ip) in net
        assert p.status.host_ip == "127.0.0.1" and p.status.start_time
        cs = p.status.container_statuses[0]
        assert (cs.name, cs.image, cs.ready, cs.started, cs.restart_count) == (
            "app", "example.org/web:1.0", True, True, 0)
        assert cs.container_id.startswith("containerd://") and "@sha256:" in cs.image_id
        assert cs.state.running.started_at is not None
        status, body = _probe(p.status.pod_ip, 8080)  # from the root namespace, via the veth
        assert status == 200 and body["uid"] == p.metadata.uid
        assert body["pod"] == f"{ns}/{p.metadata.name}"
    eps = eventually(lambda: core.read_namespaced_endpoints("web", ns).subsets, "web Endpoints")
    assert {a.ip for a in eps[0].addresses} == {p.status.pod_ip for p in pods}
    seen = set()
    for _ in range(20):  # the API server's service proxy picks an endpoint per request
        body = _through_proxy(rehearsal_api, ns, "web:80")
        assert body["uid"] in uids
        seen.add(body["uid"])
    assert seen
    # UIDs are stable: a second `up` changes nothing
    rehearsal_cluster.up()
    again = _ready_pods(core, ns, "app=web", 2)
    assert again and {p.metadata.uid for p in again} == uids


def test_daemonset_and_statefulset_pods_run(rehearsal_api, ns, eventually):
    core, apps = client.CoreV1Api(rehearsal_api), client.AppsV1Api(rehearsal_api)
    tmpl = lambda app: {"metadata": {"labels": {"app": app}}, "spec": {"containers": [  # noqa
        {"name": app, "image": f"example.org/{app}:2", "ports": [{"containerPort": 9000}]}]}}
    apps.create_namespaced_daemon_set(ns, {"metadata": {"name": "agent"}, "spec": {
        "selector": {"matchLabels": {"app": "agent"}}, "template": tmpl("agent")}})
    core.create_namespaced_service(ns, {"metadata": {"name": "db"}, "spec": {
        "clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 9000}]}})
    apps.create_namespaced_stateful_set(ns, {"metadata": {"name": "db"}, "spec": {
        "serviceName": "db", "replicas": 2, "selector": {"matchLabels": {"app": "db"}},
        "template": tmpl("db")}})
    eventually(lambda: _ready_pods(core, ns, "app=agent", 1), "DaemonSet pod Ready")
    pods = eventually(lambda: _ready_pods(core, ns, "app=db", 2), "2 StatefulSet pods Ready",
                      timeout=60)
    assert sorted(p.metadata.name for p in pods) == ["db-0", "db-1"]
    ds = eventually(lambda: (d := apps.read_namespaced_daemon_set("agent", ns)).status.number_ready
                    == 1 and d, "DaemonSet status numberReady=1")
    assert ds.status.desired_number_scheduled == 1


def _through_proxy(api, ns: str, service: str, path: str = "x") -> dict:
    """GET through /api/v1/namespaces/<ns>/services/<service>/proxy/<path>, the body as JSON."""
    data = client.CoreV1Api(api).connect_get_namespaced_service_proxy_with_path(
        service, ns, path, _preload_content=False).data
    return json.loads(data)


def _one_pod(core, apps, ns, eventually, name="f"):
    apps.create_namespaced_deployment(ns, _deployment(name))
    return eventually(lambda: _ready_pods(core, ns, f"app={name}", 1), f"{name} pod Ready")[0]


def _annotate(core, pod, ns, ann: dict):
    core.patch_namespaced_pod(pod.metadata.name, ns, {"metadata": {"annotations": ann}})


def test_restart_fault_bumps_restart_count_and_keeps_the_pod(rehearsal_api, ns, eventually):
    core, apps = client.CoreV1Api(rehearsal_api), client.AppsV1Api(rehearsal_api)
    pod = _one_pod(core, apps, ns, eventually)
    old = pod.status.container_statuses[0]
    _annotate(core, pod, ns, {ANN_RESTART: "one"})
    cs = eventually(lambda: (c := core.read_namespaced_pod(pod.metadata.name, ns).status
                             .container_statuses[0]).restart_count == 1 and c, "restartCount 1")
    assert cs.last_state.terminated.exit_code == 137
    assert cs.last_state.terminated.container_id == old.container_id
    assert cs.container_id != old.container_id
    assert cs.state.running.started_at >= old.state.running.started_at
    _annotate(core, pod, ns, {ANN_RESTART: "one"})  # same token: nothing more
    _annotate(core, pod, ns, {ANN_RESTART: "two"})
    eventually(lambda: core.read_namespaced_pod(pod.metadata.name, ns).status
               .container_statuses[0].restart_count == 2, "restartCount 2")
    now = core.read_namespaced_pod(pod.metadata.name, ns)
    assert now.metadata.uid == pod.metadata.uid and now.status.pod_ip == pod.status.pod_ip
    status, body = eventually(lambda: (r := _probe(pod.status.pod_ip, 8080))[0] == 200 and r,
                              "responder back after restart")
    assert body["uid"] == pod.metadata.uid


def test_crashloop_fault_and_recovery(rehearsal_api, rehearsal_cluster, ns, eventually):
    core, apps = client.CoreV1Api(rehearsal_api), client.AppsV1Api(rehearsal_api)
    pod = _one_pod(core, apps, ns, eventually)
    _annotate(core, pod, ns, {ANN_FAULT: "crashloop"})
    read = lambda: core.read_namespaced_pod(pod.metadata.name, ns)  # noqa: E731
    first = eventually(lambda: (p := read()).status.container_statuses[0].state.waiting and p,
                       "container waiting")
    cs = first.status.container_statuses[0]
    assert cs.state.waiting.reason == "CrashLoopBackOff"
    assert not cs.ready and _cond(first, "Ready") == "False"
    assert cs.last_state.terminated.exit_code == 1
    assert _probe(pod.status.pod_ip, 8080) == (None, None)  # nothing listens
    assert pod.metadata.uid not in _responding(rehearsal_cluster)
    eventually(lambda: read().status.container_statuses[0].restart_count
               > cs.restart_count, "restartCount growing while crash-looping", timeout=15)
    crashed = read().status.container_statuses[0].restart_count
    core.patch_namespaced_pod(pod.metadata.name, ns,
                              {"metadata": {"annotations": {ANN_FAULT: None}}})
    back = eventually(lambda: _cond(p := read(), "Ready") == "True" and p, "recovered")
    cs = back.status.container_statuses[0]
    assert cs.state.running and cs.ready and cs.restart_count >= crashed
    assert back.metadata.uid == pod.metadata.uid
    assert eventually(lambda: _probe(pod.status.pod_ip, 8080)[0] == 200, "responder 200 again")


def test_unready_fault_answers_503_and_leaves_endpoints(rehearsal_api, rehearsal_cluster, ns,
                                                        eventually):
    core, apps = client.CoreV1Api(rehearsal_api), client.AppsV1Api(rehearsal_api)
    pod = _one_pod(core, apps, ns, eventually, name="u")
    core.create_namespaced_service(ns, {"metadata": {"name": "u"}, "spec": {
        "selector": {"app": "u"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    _annotate(core, pod, ns, {ANN_FAULT: "unready"})
    read = lambda: core.read_namespaced_pod(pod.metadata.name, ns)  # noqa: E731
    p = eventually(lambda: _cond(p := read(), "Ready") == "False" and p, "pod unready")
    cs = p.status.container_statuses[0]
    assert cs.state.running and not cs.ready and cs.restart_count == 0
    assert _cond(p, "ContainersReady") == "False"
    status, body = _probe(pod.status.pod_ip, 8080)
    assert status == 503 and body["ready"] is False and body["uid"] == pod.metadata.uid
    eps = eventually(lambda: (s := core.read_namespaced_endpoints("u", ns).subsets)
                     and s[0].not_ready_addresses and s, "pod in notReadyAddresses")
    assert not eps[0].addresses
    assert eps[0].not_ready_addresses[0].ip == pod.status.pod_ip
    with pytest.raises(ApiException) as e:  # no ready endpoint: the service proxy refuses
        _through_proxy(rehearsal_api, ns, "u:80")
    assert e.value.status == 503
    core.patch_namespaced_pod(pod.metadata.name, ns,
                              {"metadata": {"annotations": {ANN_FAULT: None}}})
    eventually(lambda: _cond(read(), "Ready") == "True", "pod ready again")
    assert _probe(pod.status.pod_ip, 8080)[0] == 200
    body = eventually(lambda: _through_proxy(rehearsal_api, ns, "u:80"), "proxied again")
    assert body["uid"] == pod.metadata.uid


def test_pod_deletion_is_finished_and_responder_stops(rehearsal_api, rehearsal_cluster, ns,
                                                      eventually):
    core, apps = client.CoreV1Api(rehearsal_api), client.AppsV1Api(rehearsal_api)
    pod = _one_pod(core, apps, ns, eventually, name="d")
    assert _probe(pod.status.pod_ip, 8080)[0] == 200
    assert _responding(rehearsal_cluster)[pod.metadata.uid]["listening"] == [8080]
    core.delete_namespaced_pod(pod.metadata.name, ns)  # graceful (30 s) as kubectl does

    def gone():
        try:
            core.read_namespaced_pod(pod.metadata.name, ns)
            return False
        except ApiException as e:
            return e.status == 404
    eventually(gone, "deleted pod gone", timeout=15)
    assert _probe(pod.status.pod_ip, 8080) == (None, None)
    assert pod.metadata.uid not in _responding(rehearsal_cluster)
    new = eventually(lambda: _ready_pods(core, ns, "app=d", 1), "replacement pod Ready")[0]
    assert new.metadata.uid != pod.metadata.uid


def test_wait_for_first_consumer_claim_binds_static_pv(rehearsal_api, ns, eventually):
    core, apps = client.CoreV1Api(rehearsal_api), client.AppsV1Api(rehearsal_api)
    pv_name = f"{ns}-pv"
    core.create_persistent_volume({"metadata": {"name": pv_name}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "local-path",
        "hostPath": {"path": f"/mnt/k8s-storage/{pv_name}"}}})
    try:
        core.create_namespaced_persistent_volume_claim(ns, {"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
            "resources": {"requests": {"storage": "1Gi"}}}})
        dep = _deployment("v")
        dep["spec"]["template"]["spec"]["volumes"] = [
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
        apps.create_namespaced_deployment(ns, dep)
        eventually(lambda: _ready_pods(core, ns, "app=v", 1), "pod with claim Ready")
        pvc = core.read_namespaced_persistent_volume_claim("data", ns)
        assert pvc.status.phase == "Bound" and pvc.spec.volume_name == pv_name
    finally:
        apps.delete_namespaced_deployment("v", ns)
        core.delete_namespaced_persistent_volume_claim("data", ns)
        core.delete_persistent_volume(pv_name)


def test_agent_restart_keeps_pods_addresses_and_responders(rehearsal_api, rehearsal_cluster, ns,
                                                           eventually):
    core, apps = client.CoreV1Api(rehearsal_api), client.AppsV1Api(rehearsal_api)
    pod = _one_pod(core, apps, ns, eventually, name="k")
    _annotate(core, pod, ns, {ANN_RESTART: "before"})
    eventually(lambda: core.read_namespaced_pod(pod.metadata.name, ns).status
               .container_statuses[0].restart_count == 1, "restartCount 1")
    os.kill(rehearsal_cluster.pid("node-agent"), signal.SIGKILL)
    rehearsal_cluster.up()  # restarts the agent only
    eventually(lambda: _probe(pod.status.pod_ip, 8080)[0] == 200, "responder back")
    p = core.read_namespaced_pod(pod.metadata.name, ns)
    assert p.metadata.uid == pod.metadata.uid and p.status.pod_ip == pod.status.pod_ip
    assert p.status.container_statuses[0].restart_count == 1  # token not replayed


def test_responder_restart_gets_the_agents_pods_back(rehearsal_api, rehearsal_cluster, ns,
                                                     eventually):
    core, apps = client.CoreV1Api(rehearsal_api), client.AppsV1Api(rehearsal_api)
    pod = _one_pod(core, apps, ns, eventually, name="r")
    _annotate(core, pod, ns, {ANN_FAULT: "unready"})
    eventually(lambda: _probe(pod.status.pod_ip, 8080)[0] == 503, "unready: 503")
    agent = rehearsal_cluster.pid("node-agent")
    os.kill(rehearsal_cluster.pid("pod-responder"), signal.SIGKILL)
    eventually(lambda: _probe(pod.status.pod_ip, 8080) == (None, None), "nothing listens")
    rehearsal_cluster.up()  # starts the responder daemon again; the agent keeps running
    assert rehearsal_cluster.pid("node-agent") == agent
    status, body = eventually(lambda: (r := _probe(pod.status.pod_ip, 8080))[0] and r,
                              "agent re-sent its pods to the new responder")
    assert status == 503 and body["uid"] == pod.metadata.uid  # readiness re-sent too
    core.patch_namespaced_pod(pod.metadata.name, ns,
                              {"metadata": {"annotations": {ANN_FAULT: None}}})
    eventually(lambda: _probe(pod.status.pod_ip, 8080)[0] == 200, "ready again: 200")


@pytest.fixture
def responder_daemon(tmp_path):
    """A pod responder daemon of its own, in this (root) namespace, on loopback addresses."""
    sock = tmp_path / "r.sock"
    p = subprocess.Popen([sys.executable, "-m", "handover.rehearsal.pod_responder",
                          "--control", str(sock)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                _control(sock, {"op": "ping"})
                break
            except OSError:
                assert p.poll() is None, p.stdout.read().decode()
                time.sleep(0.05)
        yield sock
    finally:
        p.kill()
        p.wait()


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def test_pod_responder_control_protocol(responder_daemon):
    a, b = "127.61.0.2", "127.61.0.3"
    pa, pb = _free_port(a), _free_port(b)
    r = _control(responder_daemon,
                 {"op": "add", "uid": "u1", "ip": a, "ports": [pa, pa + 1], "pod": "n/a",
                  "ready": True},
                 {"op": "add", "uid": "u2", "ip": b, "ports": [pb], "pod": "n/b", "ready": False})
    assert r[0] == {"ok": True, "listening": sorted([pa, pa + 1]), "errors": {}}
    assert _probe(a, pa) == (200, {"pod": "n/a", "uid": "u1", "ip": a, "port": pa,
                                   "ready": True})
    assert _probe(a, pa + 1)[1]["port"] == pa + 1
    assert _probe(b, pb)[0] == 503
    _control(responder_daemon, {"op": "ready", "uid": "u2", "ready": True})
    assert _probe(b, pb)[0] == 200
    # add again with another port list: reopened on the new ports only
    _control(responder_daemon, {"op": "add", "uid": "u1", "ip": a, "ports": [pa], "pod": "n/a",
                                "ready": True})
    assert _probe(a, pa + 1) == (None, None) and _probe(a, pa)[0] == 200
    # sync with prune: exactly the listed pods remain (what an agent sends on reconnect)
    r = _control(responder_daemon, {"op": "sync", "prune": True, "pods": [
        {"uid": "u2", "ip": b, "ports": [pb], "pod": "n/b", "ready": False}]})[0]
    assert (r["pods"], r["removed"]) == (1, 1)
    assert _probe(a, pa) == (None, None) and _probe(b, pb)[0] == 503
    _control(responder_daemon, {"op": "remove", "uid": "u2"})
    assert _probe(b, pb) == (None, None)
    assert _control(responder_daemon, {"op": "list"})[0]["pods"] == {}
    # a port that cannot be bound is reported, not fatal
    with socket.socket() as taken:
        taken.bind((a, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = _control(responder_daemon, {"op": "add", "uid": "u3", "ip": a, "ports": [port],
                                         "pod": "n/c", "ready": True})[0]
        assert r["listening"] == [] and str(port) in r["errors"]
    bad = _control(responder_daemon, {"op": "add", "uid": "u4"}, {"op": "nope"})
    assert not bad[0]["ok"] and "bad add request" in bad[0]["error"]
    assert bad[1] == {"ok": False, "error": "unknown op 'nope'"}


def test_pod_responder_serves_many_pods_from_one_process(responder_daemon):
    pods = [{"uid": f"m{i}", "ip": f"127.62.{i // 250}.{i % 250 + 2}", "ports": [8080],
             "pod": f"n/m{i}", "ready": True} for i in range(1000)]
    r = _control(responder_daemon, {"op": "sync", "prune": True, "pods": pods})[0]
    assert r == {"ok": True, "pods": 1000, "removed": 0, "errors": {}}
    for i in (0, 499, 999):
        assert _probe(pods[i]["ip"], 8080)[1]["uid"] == f"m{i}"
