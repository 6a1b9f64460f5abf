"""Pods that run to completion on the node agent (restartPolicy Never / OnFailure): a Job
completes through the real Job controller of kube-controller-manager v1.20, a failing Job fails
after exactly backoffLimit retries, an OnFailure pod restarts in place, a slow pod keeps running,
and Helm's pre-install/pre-upgrade hook Jobs gate `helm install` / `helm upgrade` as on a live
cluster.

Behaviour reproduced: kubernetes ``pkg/kubelet/kubelet_pods.go`` getPhase (Never: any container
failed -> Failed, all exited 0 -> Succeeded; OnFailure: a failed container restarts),
``pkg/kubelet/status/generate.go`` (Ready / ContainersReady / Initialized reason ``PodCompleted``
once Succeeded), containerd's terminated reasons (``Completed`` for exit 0, ``Error`` otherwise).
The Job controller and the garbage collector are the real ones."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kubernetes import client

from handover.core import tools
from handover.rehearsal.node_agent import ANN_EXIT_CODE, ANN_RUN_SECONDS

pytestmark = pytest.mark.rehearsal

CHARTS = Path(__file__).parent / "charts"


@pytest.fixture
def ns(rehearsal_api):
    name = f"j-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(rehearsal_api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _job(name: str, ann: dict | None = None, backoff: int = 0, policy: str = "Never") -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": {
        "backoffLimit": backoff, "template": {
            "metadata": {"annotations": ann or {}},
            "spec": {"restartPolicy": policy, "containers": [
                {"name": "migrate", "image": "example.org/migrate:1.0"}]}}}}


def _cond(obj, ctype: str):
    return next((c for c in obj.status.conditions or [] if c.type == ctype), None)


def _job_pods(core, ns: str, job: str):
    return core.list_namespaced_pod(ns, label_selector=f"job-name={job}").items


def test_job_pod_succeeds_and_the_job_controller_completes_the_job(rehearsal_api, ns,
                                                                   eventually):
    core, batch = client.CoreV1Api(rehearsal_api), client.BatchV1Api(rehearsal_api)
    batch.create_namespaced_job(ns, _job("ok"))
    job = eventually(lambda: (j := batch.read_namespaced_job("ok", ns)) and _cond(j, "Complete")
                     and j, "Job Complete", timeout=30)
    assert _cond(job, "Complete").status == "True"
    assert job.status.succeeded == 1 and not job.status.failed
    [pod] = _job_pods(core, ns, "ok")
    assert pod.status.phase == "Succeeded"
    cs = pod.status.container_statuses[0]
    assert cs.state.terminated.exit_code == 0 and cs.state.terminated.reason == "Completed"
    assert cs.state.terminated.finished_at >= cs.state.terminated.started_at
    assert not cs.ready and cs.restart_count == 0
    ready = _cond(pod, "Ready")
    assert ready.status == "False" and ready.reason == "PodCompleted"


def test_failing_job_fails_after_backoff_limit(rehearsal_api, ns, eventually):
    core, batch = client.CoreV1Api(rehearsal_api), client.BatchV1Api(rehearsal_api)
    batch.create_namespaced_job(ns, _job("bad", {ANN_EXIT_CODE: "3"}, backoff=1))
    job = eventually(lambda: (j := batch.read_namespaced_job("bad", ns)) and _cond(j, "Failed")
                     and j, "Job Failed", timeout=60)
    failed = _cond(job, "Failed")
    assert failed.status == "True" and failed.reason == "BackoffLimitExceeded"
    assert not _cond(job, "Complete")
    pods = _job_pods(core, ns, "bad")
    assert len(pods) == 2  # the first run and one retry: backoffLimit 1, counted by the controller
    for p in pods:
        assert p.status.phase == "Failed"
        term = p.status.container_statuses[0].state.terminated
        assert term.exit_code == 3 and term.reason == "Error"
        assert _cond(p, "Ready").reason == "ContainersNotReady"


def test_on_failure_pod_restarts_in_place(rehearsal_api, ns, eventually):
    core, batch = client.CoreV1Api(rehearsal_api), client.BatchV1Api(rehearsal_api)
    batch.create_namespaced_job(ns, _job("retry", {ANN_EXIT_CODE: "1"}, backoff=6,
                                         policy="OnFailure"))
    pod = eventually(lambda: (ps := _job_pods(core, ns, "retry")) and
                     ps[0].status.container_statuses and
                     ps[0].status.container_statuses[0].restart_count >= 1 and ps[0],
                     "container restarted in the same pod", timeout=30)
    cs = pod.status.container_statuses[0]
    assert cs.last_state.terminated.exit_code == 1
    assert pod.status.phase == "Running"
    assert len(_job_pods(core, ns, "retry")) == 1  # restarted in place, not a new pod
    core.patch_namespaced_pod(pod.metadata.name, ns,
                              {"metadata": {"annotations": {ANN_EXIT_CODE: "0"}}})
    job = eventually(lambda: (j := batch.read_namespaced_job("retry", ns)) and
                     _cond(j, "Complete") and j, "Job Complete after the fix", timeout=30)
    assert job.status.succeeded == 1


def test_slow_job_keeps_running_until_its_run_is_over(rehearsal_api, ns, eventually):
    core, batch = client.CoreV1Api(rehearsal_api), client.BatchV1Api(rehearsal_api)
    batch.create_namespaced_job(ns, _job("slow", {ANN_RUN_SECONDS: "6"}))
    pod = eventually(lambda: (ps := _job_pods(core, ns, "slow")) and
                     ps[0].status.phase == "Running" and ps[0], "slow pod Running")
    cs = pod.status.container_statuses[0]
    assert cs.state.running and cs.ready and _cond(pod, "Ready").status == "True"
    assert batch.read_namespaced_job("slow", ns).status.active == 1
    done = eventually(lambda: (j := batch.read_namespaced_job("slow", ns)) and
                      _cond(j, "Complete") and j, "slow Job Complete", timeout=30)
    took = (done.status.completion_time - done.status.start_time).total_seconds()
    assert took >= 5  # second-granular timestamps


def _helm(cluster, *args: str) -> tools.Result:
    return tools.run([str(tools.helm()), *args, "--kubeconfig", str(cluster.kubeconfig),
                      "--kube-context", cluster.context], timeout=240)


def test_helm_pre_install_pre_upgrade_hook_job_runs(rehearsal_cluster, rehearsal_api, ns):
    batch = client.BatchV1Api(rehearsal_api)
    chart = str(CHARTS / "hooked")
    r = _helm(rehearsal_cluster, "install", "hk", chart, "-n", ns, "--timeout", "90s")
    assert r.ok, r.stderr
    # hook-succeeded: the hook Job ran to completion and Helm deleted it
    assert not [j for j in batch.list_namespaced_job(ns).items if j.metadata.name == "hk-certgen"]
    r = _helm(rehearsal_cluster, "upgrade", "hk", chart, "-n", ns, "--timeout", "90s",
              "--set", "image=example.org/hooked:1.0.1")
    assert r.ok, r.stderr
    status = _helm(rehearsal_cluster, "status", "hk", "-n", ns, "-o", "json")
    assert '"status":"deployed"' in status.stdout.replace(" ", "")
    assert '"version":2' in status.stdout.replace(" ", "")


def test_helm_install_fails_at_a_failing_hook(rehearsal_cluster, rehearsal_api, ns):
    batch = client.BatchV1Api(rehearsal_api)
    r = _helm(rehearsal_cluster, "install", "hf", str(CHARTS / "hooked"), "-n", ns,
              "--timeout", "90s", "--set", "hook.exitCode=2")
    assert not r.ok
    assert "pre-install" in r.stderr and "BackoffLimitExceeded" in r.stderr, r.stderr
    # the failed hook Job stays (hook-succeeded only deletes it on success) and the release
    # is failed: nothing of the chart's Deployment was created
    job = batch.read_namespaced_job("hf-certgen", ns)
    assert _cond(job, "Failed").status == "True"
    assert not client.AppsV1Api(rehearsal_api).list_namespaced_deployment(ns).items
    status = _helm(rehearsal_cluster, "status", "hf", "-n", ns, "-o", "json")
    assert '"status":"failed"' in status.stdout.replace(" ", "")


@pytest.mark.slow
def test_cronjob_run_completes(rehearsal_api, ns, eventually):
    """A CronJob (batch/v1beta1 on v1.20) starts a Job at the next minute; its pod runs to
    completion, the Job completes and the CronJob controller clears it from `active`."""
    batch = client.BatchV1Api(rehearsal_api)
    cron = {"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "tick"},
            "spec": {"schedule": "* * * * *", "successfulJobsHistoryLimit": 1,
                     "jobTemplate": {"spec": {"backoffLimit": 0, "template": _job("x")["spec"][
                         "template"]}}}}
    client.CustomObjectsApi(rehearsal_api).create_namespaced_custom_object(
        "batch", "v1beta1", ns, "cronjobs", cron)
    job = eventually(lambda: next((j for j in batch.list_namespaced_job(ns).items
                                   if _cond(j, "Complete")), None),
                     "a Job of the CronJob Complete", timeout=120)
    assert job.metadata.owner_references[0].kind == "CronJob"
    assert job.status.succeeded == 1

    def settled():
        c = client.CustomObjectsApi(rehearsal_api).get_namespaced_custom_object(
            "batch", "v1beta1", ns, "cronjobs", "tick")
        st = c.get("status") or {}
        return st.get("lastScheduleTime") and not any(
            a["name"] == job.metadata.name for a in st.get("active") or []) and c
    eventually(settled, "CronJob status: scheduled, the finished Job no longer active",
               timeout=30)
