"""The rehearsal cluster's lifecycle: up, idempotent up, status, down leaving nothing behind
(processes, ports, network namespace, veth, route), up again, repair after a crash, the pod network
and its refusal without the rights to make it, the read-only identity, the StorageClass, the CLI
and the kind backend's refusal."""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from handover.core.errors import HandoverError
from handover.rehearsal import cluster as cluster_mod
from handover.rehearsal import kind_backend
from handover.rehearsal.cluster import CORE, RehearsalCluster, port_open
from tests.rehearsal_support import require_rehearsal

pytestmark = pytest.mark.rehearsal


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def test_status_reports_every_component(rehearsal_cluster):
    st = rehearsal_cluster.status()
    assert st["running"] is True
    assert st["context"] == "flux-handover-rehearsal"
    assert st["kubeconfig"] == str(rehearsal_cluster.kubeconfig)
    for name in CORE:
        comp = st["components"][name]
        assert comp["running"] and _alive(comp["pid"]), f"{name} not running: {comp}"
        assert (rehearsal_cluster.state_dir / "run" / f"{name}.pid").read_text().strip() == str(
            comp["pid"])
        assert (rehearsal_cluster.state_dir / "logs" / f"{name}.log").exists()
    for name in ("etcd", "kube-apiserver", "kube-controller-manager"):
        assert port_open(st["components"][name]["port"]), f"{name} port not listening"
    assert st["server"] == rehearsal_cluster.server


def test_kubeconfigs_name_their_contexts_and_token_is_not_in_status(rehearsal_cluster):
    admin = yaml.safe_load(rehearsal_cluster.kubeconfig.read_text())
    ro = yaml.safe_load(rehearsal_cluster.readonly_kubeconfig.read_text())
    assert admin["current-context"] == "flux-handover-rehearsal"
    assert ro["current-context"] == "flux-handover-rehearsal-readonly"
    token = admin["users"][0]["user"]["token"]
    assert token not in json.dumps(rehearsal_cluster.status())
    assert token not in repr(rehearsal_cluster)
    assert oct(rehearsal_cluster.kubeconfig.stat().st_mode & 0o777) == "0o600"


def test_up_is_idempotent(rehearsal_cluster):
    before = rehearsal_cluster.status()
    rehearsal_cluster.up()
    after = rehearsal_cluster.status()
    assert after == before  # same pids, same ports


def test_up_restarts_a_component_that_died(rehearsal_cluster, rehearsal_api):
    old = rehearsal_cluster.status()["components"]["kube-controller-manager"]
    os.kill(old["pid"], signal.SIGKILL)
    rehearsal_cluster.up()
    new = rehearsal_cluster.status()["components"]
    assert new["kube-controller-manager"]["running"]
    assert new["kube-controller-manager"]["pid"] != old["pid"]
    assert new["kube-controller-manager"]["port"] == old["port"]
    assert client.VersionApi(rehearsal_api).get_code().git_version.startswith("v1.20.2")


def test_readonly_identity_reads_but_cannot_write(rehearsal_cluster):
    ro = config.new_client_from_config(str(rehearsal_cluster.readonly_kubeconfig),
                                       context="flux-handover-rehearsal-readonly")
    core = client.CoreV1Api(ro)
    assert any(n.metadata.name == "kube-system" for n in core.list_namespace().items)
    core.list_secret_for_all_namespaces()
    client.AppsV1Api(ro).list_deployment_for_all_namespaces()
    cm = {"metadata": {"name": "readonly-probe"}, "data": {"a": "b"}}
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("default", cm)
    assert e.value.status == 403
    with pytest.raises(ApiException) as e:
        core.patch_namespace("default", {"metadata": {"labels": {"x": "y"}}})
    assert e.value.status == 403
    with pytest.raises(ApiException) as e:
        core.delete_namespace("kube-public")
    assert e.value.status == 403
    ro.close()


def test_local_path_storage_class_like_k3s(rehearsal_api):
    sc = client.StorageV1Api(rehearsal_api).read_storage_class("local-path")
    assert sc.provisioner == "rancher.io/local-path"
    assert sc.reclaim_policy == "Delete"
    assert sc.volume_binding_mode == "WaitForFirstConsumer"
    assert sc.metadata.annotations["storageclass.kubernetes.io/is-default-class"] == "true"


def test_start_service_is_recorded_and_stopped(rehearsal_cluster, tmp_path):
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "0"]
    pid = rehearsal_cluster.start_service("probe-http", argv, ready=lambda: True)
    assert rehearsal_cluster.service_running("probe-http")
    assert rehearsal_cluster.start_service("probe-http", argv) == pid  # idempotent
    assert "probe-http" in rehearsal_cluster.status()["components"]
    assert (rehearsal_cluster.state_dir / "logs" / "probe-http.log").exists()
    rehearsal_cluster.stop_service("probe-http")
    assert not rehearsal_cluster.service_running("probe-http")
    assert not _alive(pid)
    with pytest.raises(HandoverError, match="reserved"):
        rehearsal_cluster.start_service("etcd", argv)


def test_start_service_reports_a_service_that_dies(rehearsal_cluster):
    with pytest.raises(HandoverError, match="exited while starting") as e:
        rehearsal_cluster.start_service(
            "dies-at-once", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"],
            ready=lambda: False, timeout=10)
    assert "boom" in str(e.value)
    rehearsal_cluster.stop_service("dies-at-once")


@pytest.fixture
def own_cluster(tmp_path):
    require_rehearsal()
    c = RehearsalCluster(tmp_path / "own")
    yield c
    c.down(purge=True)


def _netns_list() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _link(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


def _route(cidr: str) -> str:
    return subprocess.run(["ip", "-4", "route", "show", cidr], capture_output=True,
                          text=True).stdout.strip()


def _network_parts(net: dict) -> list[str]:
    """The parts of a cluster's pod network present on the machine."""
    left = []
    if net["netns"] in _netns_list():
        left.append(f"netns {net['netns']}")
    if _link(net["host_if"]):
        left.append(f"veth {net['host_if']}")
    if _route(net["pod_cidr"]):
        left.append(f"route {_route(net['pod_cidr'])}")
    return left


def _get(ip: str, port: int) -> tuple[int | None, dict | None]:
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except (urllib.error.URLError, ConnectionError, OSError):
        return None, None


def test_pod_network_is_the_clusters_own_namespace(rehearsal_cluster):
    net = rehearsal_cluster.pod_network
    assert net and rehearsal_cluster.pod_cidr == net["pod_cidr"]
    pods = ipaddress.ip_network(net["pod_cidr"])
    assert pods.subnet_of(ipaddress.ip_network("10.64.0.0/10")) and pods.num_addresses >= 5002
    assert net["netns"] in _netns_list()
    assert _link(net["host_if"]) and len(net["host_if"]) <= 15 and len(net["ns_if"]) <= 15
    assert f"via {net['ns_ip']} dev {net['host_if']}" in _route(net["pod_cidr"])
    local = subprocess.run(["ip", "-4", "route", "show", "table", "local"], capture_output=True,
                           text=True).stdout
    assert net["pod_cidr"] not in local  # not local in the root namespace: only in the netns
    in_ns = subprocess.run(["ip", "-n", net["netns"], "route", "show", "table", "local"],
                           capture_output=True, text=True).stdout
    assert f"local {net['pod_cidr']} dev lo" in in_ns
    responder = rehearsal_cluster.pid("pod-responder")
    assert responder and cluster_mod._in_netns(responder, net["netns"])
    assert not cluster_mod._in_netns(rehearsal_cluster.pid("node-agent"), net["netns"])
    assert rehearsal_cluster.status()["components"]["pod-responder"]["running"]


def test_up_refuses_clearly_without_the_rights_to_make_a_netns(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster_mod.os, "geteuid", lambda: 1000)
    with pytest.raises(HandoverError, match=r"missing root \(CAP_SYS_ADMIN") as e:
        RehearsalCluster(tmp_path / "noroot").up()
    assert "network namespace" in str(e.value)
    assert not (tmp_path / "noroot").exists()  # nothing half-created
    monkeypatch.setattr(cluster_mod.shutil, "which", lambda name: None)
    with pytest.raises(HandoverError, match="iproute2"):
        RehearsalCluster(tmp_path / "noroot").up()
    assert not (tmp_path / "noroot").exists()


def test_up_down_up_again_leaves_nothing_behind(own_cluster, eventually):
    c = own_cluster
    # a state dir of the former loopback/198.18 pod network is moved to a namespace by up()
    c.state_dir.mkdir(parents=True)
    c.config_path.write_text(json.dumps({"pod_cidr": "127.77.0.0/16", "pod_route": False}))
    c.up()
    assert "pod_route" not in c.config and c.pod_cidr == c.pod_network["pod_cidr"]
    net = dict(c.pod_network)
    extra = c.start_service("extra", [sys.executable, "-c", "import time; time.sleep(600)"])
    st = c.status()
    pids = [v["pid"] for v in st["components"].values()]
    ports = dict(c.config["ports"])
    api = config.new_client_from_config(str(c.kubeconfig), context=c.context)
    client.CoreV1Api(api).create_namespace({"metadata": {"name": "survives-down"}})
    api.close()

    c.down()
    assert not any(_alive(p) for p in pids), "a process survived down()"
    assert not _alive(extra)
    assert not any(port_open(p) for p in ports.values()), "a port is still listening"
    assert not list((c.state_dir / "run").glob("*.pid"))
    assert not c.responder_socket.exists()
    assert all(not v["running"] for v in c.status()["components"].values())
    assert _network_parts(net) == [], "pod network left behind"

    c.up()
    assert c.config["ports"] == ports  # ports persisted in cluster.json
    assert c.pod_network == net  # so is the pod network
    assert net["netns"] in _netns_list()
    api = config.new_client_from_config(str(c.kubeconfig), context=c.context)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    assert core.read_namespace("survives-down").metadata.name  # etcd data kept
    apps.create_namespaced_deployment("survives-down", {
        "metadata": {"name": "w"}, "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": "w"}},
            "template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [
                {"name": "w", "image": "example.org/w:1", "ports": [{"containerPort": 8080}]}]}}}})
    pod = eventually(lambda: next((p for p in core.list_namespaced_pod("survives-down").items
                                   if p.status.pod_ip), None), "pod with an address")
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(net["pod_cidr"])
    eventually(lambda: _get(pod.status.pod_ip, 8080)[0] == 200, "responder answers")

    # a crash: the namespace (with its veth end and the route through it) and the responder go
    os.kill(c.pid("pod-responder"), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", net["netns"]], check=True)
    assert _get(pod.status.pod_ip, 8080) == (None, None)
    c.up()  # repairs what is missing
    assert len(_network_parts(net)) == 3, _network_parts(net)
    assert cluster_mod._in_netns(c.pid("pod-responder"), net["netns"])
    status, body = eventually(lambda: (r := _get(pod.status.pod_ip, 8080))[0] == 200 and r,
                              "the agent re-sent its responders to the new daemon")
    assert body["uid"] == pod.metadata.uid
    api.close()

    c.down(purge=True)
    assert not c.state_dir.exists()
    assert _network_parts(net) == []


def test_cli_up_status_down(own_cluster):
    env = {**os.environ, "HANDOVER_REHEARSAL_DIR": str(own_cluster.state_dir)}
    cli = [sys.executable, "-m", "handover.cli"]
    up = subprocess.run(cli + ["rehearsal", "up"], capture_output=True, text=True, env=env)
    assert up.returncode == 0, up.stderr
    assert f"kubeconfig: {own_cluster.kubeconfig}" in up.stdout
    assert "context: flux-handover-rehearsal" in up.stdout
    token = yaml.safe_load(own_cluster.kubeconfig.read_text())["users"][0]["user"]["token"]
    assert token not in up.stdout + up.stderr
    status = subprocess.run(cli + ["rehearsal", "status", "--json"], capture_output=True,
                            text=True, env=env)
    assert status.returncode == 0 and json.loads(status.stdout)["running"] is True
    pids = [v["pid"] for v in json.loads(status.stdout)["components"].values()]
    down = subprocess.run(cli + ["rehearsal", "down", "--purge"], capture_output=True, text=True,
                          env=env)
    assert down.returncode == 0, down.stderr
    assert not any(_alive(p) for p in pids)
    assert not own_cluster.state_dir.exists()


def test_cli_inventory_check_reports_problems(tmp_path):
    bad = tmp_path / "migration.yaml"
    bad.write_text("apiVersion: flux-handover/v1\nkind: Migration\ncluster: {}\n")
    p = subprocess.run([sys.executable, "-m", "handover.cli", "inventory", "check", str(bad)],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "cluster.context: required" in p.stderr


def test_kind_backend_refuses_clearly_without_a_container_engine(tmp_path):
    reason = kind_backend.unavailable_reason()
    if reason is None:
        pytest.skip("a container engine works here: the kind backend itself is exercised by "
                    "`handover rehearsal up --backend kind` on such machines")
    with pytest.raises(HandoverError, match="backend kind cannot run here") as e:
        kind_backend.up(tmp_path / "kind")
    assert reason in str(e.value)
    assert not (tmp_path / "kind" / "kubeconfig").exists()  # nothing half-created


def test_kind_backend_creates_cluster_with_flux(tmp_path):
    reason = kind_backend.unavailable_reason()
    if reason:
        pytest.skip(f"kind backend cannot run here: {reason}")
    res = kind_backend.up(tmp_path / "kind")
    try:
        assert res.context == "flux-handover-rehearsal"
        api = config.new_client_from_config(str(res.kubeconfig), context=res.context)
        nodes = client.CoreV1Api(api).list_node().items
        assert nodes
        # the kind backend is the real-everything one: Flux must be there (no silent pass when
        # its install did not happen)
        assert res.flux_installed, "kind backend: Flux was not installed: " + "; ".join(res.notes)
        deps = client.AppsV1Api(api).list_namespaced_deployment("flux-system").items
        assert {"source-controller", "kustomize-controller", "helm-controller"} <= {
            d.metadata.name for d in deps}
    finally:
        kind_backend.down(tmp_path / "kind")
