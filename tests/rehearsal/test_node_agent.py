"""The node agent: Node registration and heartbeats, binding and pod status, pod addresses and
their responders, Endpoints, each fault annotation, graceful deletion, WaitForFirstConsumer
claims, and an agent restart keeping pods as they are."""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import urllib.error
import urllib.request
import uuid

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
        status, body = _probe(p.status.pod_ip, 8080)
        assert status == 200 and body["uid"] == p.metadata.uid
        assert body["pod"] == f"{ns}/{p.metadata.name}"
    if rehearsal_cluster.config.get("pod_route"):  # loopback fallback: Endpoints refuse 127/8
        eps = eventually(lambda: core.read_namespaced_endpoints("web", ns).subsets,
                         "web Endpoints")
        assert {a.ip for a in eps[0].addresses} == {p.status.pod_ip for p in pods}
        through_proxy = core.connect_get_namespaced_service_proxy_with_path("web:80", ns, "x")
        assert "uid" in str(through_proxy)
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


def test_crashloop_fault_and_recovery(rehearsal_api, ns, eventually):
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
    assert status == 503 and body["ready"] is False
    if rehearsal_cluster.config.get("pod_route"):
        eps = eventually(lambda: (s := core.read_namespaced_endpoints("u", ns).subsets)
                         and s[0].not_ready_addresses and s, "pod in notReadyAddresses")
        assert not eps[0].addresses
    core.patch_namespaced_pod(pod.metadata.name, ns,
                              {"metadata": {"annotations": {ANN_FAULT: None}}})
    eventually(lambda: _cond(read(), "Ready") == "True", "pod ready again")
    assert _probe(pod.status.pod_ip, 8080)[0] == 200


def test_pod_deletion_is_finished_and_responder_stops(rehearsal_api, ns, eventually):
    core, apps = client.CoreV1Api(rehearsal_api), client.AppsV1Api(rehearsal_api)
    pod = _one_pod(core, apps, ns, eventually, name="d")
    assert _probe(pod.status.pod_ip, 8080)[0] == 200
    core.delete_namespaced_pod(pod.metadata.name, ns)  # graceful (30 s) as kubectl does

    def gone():
        try:
            core.read_namespaced_pod(pod.metadata.name, ns)
            return False
        except ApiException as e:
            return e.status == 404
    eventually(gone, "deleted pod gone", timeout=15)
    assert _probe(pod.status.pod_ip, 8080) == (None, None)
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
