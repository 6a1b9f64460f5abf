"""The rehearsal cluster's lifecycle: up, idempotent up, status, down leaving nothing behind,
up again, the read-only identity, the StorageClass, the CLI and the kind backend's refusal."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from handover.errors import HandoverError
from handover.rehearsal import kind_backend
from handover.rehearsal.binaries import kube_binaries
from handover.rehearsal.cluster import CORE, RehearsalCluster, port_open

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
    try:
        kube_binaries()
    except HandoverError as e:
        pytest.skip(str(e))
    c = RehearsalCluster(tmp_path / "own")
    yield c
    c.down(purge=True)


def test_up_down_up_again_leaves_nothing_behind(own_cluster, eventually):
    c = own_cluster
    c.up()
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
    assert all(not v["running"] for v in c.status()["components"].values())
    if c.config.get("pod_route"):
        out = subprocess.run(["ip", "route", "show", "table", "local"], capture_output=True,
                             text=True).stdout
        assert c.pod_cidr not in out, "pod network route left behind"

    c.up()
    assert c.config["ports"] == ports  # ports persisted in cluster.json
    api = config.new_client_from_config(str(c.kubeconfig), context=c.context)
    assert client.CoreV1Api(api).read_namespace("survives-down").metadata.name  # etcd data kept
    api.close()

    c.down(purge=True)
    assert not c.state_dir.exists()


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
        if res.flux_installed:
            deps = client.AppsV1Api(api).list_namespaced_deployment("flux-system").items
            assert {"source-controller", "kustomize-controller", "helm-controller"} <= {
                d.metadata.name for d in deps}
    finally:
        kind_backend.down(tmp_path / "kind")
