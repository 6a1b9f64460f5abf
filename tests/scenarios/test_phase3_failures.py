"""Phase 3 failure scenarios on the rehearsal cluster (ONE stack for all of them). Each shows the
halt (the failing step, later steps skipped naming it, later components not started), the
rollback (every action with its result in the JUnit properties and the report) and a cluster back
to its pre-step state; the last one kills the run between steps 4 and 6 and resumes it.

How each failure is provoked, honestly:
- values differ: a commit in the GitOps repo changes grafana's HelmRelease values; phase 1's
  hazard checks (re-run in step 1) catch that, so this scenario passes
  ``--accept-hazard adoption-values --accept-hazard adoption-rollout`` (recorded in the report) to
  show that step 6 ALSO catches the recreated pods if a person accepts the hazard;
- pod restart: the node agent's restart fault annotation is put on the alloy pod as soon as the
  journal shows step 4 passed (during adoption);
- never Ready: a commit makes tempo's HelmRelease depend on the loki HelmRelease, which does not
  exist yet (an inventory order that ignores dependsOn); readyTimeout 8 s in an inventory copy;
- chart version missing: a commit sets envoy-gateway's chart version to one the repository does not
  have; phase 1's checks catch it in step 1 (chart version differs, the chart cannot be rendered),
  so the scenario accepts ``adoption-chart-version``, ``adoption-rollout`` and ``immutable-fields``
  to show that step 5 fails on the HelmRelease (ArtifactFailed) and rolls back; readyTimeout 8 s;
- killed: the run is SIGKILLed as soon as the journal shows loki's step 4 passed, then run again;
- killed during the rollback: alloy's pod-restart fault makes step 6 fail and the rollback start;
  the child pytest (with tests/scenarios/phase3_rollback_kill_plugin.py) stops itself right after
  the journal's ``done`` of the rollback's first mutation (suspend the temporary Kustomization) and
  is SIGKILLed there; the run again finishes the rollback from the journal without repeating that
  action, and halts.
Every Git change is reverted (and pushed) after its scenario.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from handover.flux import rules as flux
from handover.sources import helm_storage
from handover.chain import preconditions
from handover.snapshot import component as snapshot_mod
from handover.core.inventory import load
from handover.core.kube import Kube
from tests.browser import check_run_page
from tests.scenarios.phase3_rehearsal import (bootstrapped_stack, commit_and_push,
                                              component_report, journal_entries, journal_steps,
                                              kill_group, report_of, revert_and_push,
                                              run_phase3, spawn_phase3, wait_journal,
                                              wait_stopped, inventory_copy, ready_timeout)

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]
STEPS = ("test_1_preconditions", "test_2_backup", "test_3_snapshot", "test_4_handover",
         "test_5_ready", "test_6_adopted_not_recreated", "test_7_finish", "test_8_record")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    state = tmp_path_factory.mktemp("p3-fail") / "state"
    work = tmp_path_factory.mktemp("p3-fail-work")
    with bootstrapped_stack(state, work) as s:
        inv = load(s.inventory_path)
        kube = Kube(kubeconfig=s.cluster.kubeconfig, context=inv.cluster.context)
        yield {"stack": s, "work": work, "inv": inv, "kube": kube}


class State:
    """What a component looked like before a scenario (for "back to its pre-step state")."""

    def __init__(self, kube, component):
        self.component = component
        self.snapshot = snapshot_mod.take(kube, component)
        r = component.release
        self.release = helm_storage.latest(kube, r.name, r.namespace) if r else None


def assert_restored(kube, inv, before: State, same_pods: bool) -> None:
    c = before.component
    assert kube.get(flux.KUSTOMIZE_API, "Kustomization", c.kustomization_name,
                    inv.cluster.flux_namespace) is None, "temporary Kustomization left behind"
    if c.helm_release:
        assert kube.get(flux.HELM_API, "HelmRelease", c.helm_release.name,
                        c.helm_release.namespace) is None, "HelmRelease left behind"
    if before.release is not None:
        now = helm_storage.latest(kube, c.release.name, c.release.namespace)
        assert now is not None, "the release was uninstalled"
        assert now.status == "deployed"
        assert now.config == before.release.config, "values differ from the backup revision"
        assert now.chart_version == before.release.chart_version
        assert flux.HELM_ORIGIN_NAME not in now.manifest, "still rendered by helm-controller"
        # same objects as before the handover
        def objs(m):
            return sorted((d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(m) if d)
        assert objs(now.manifest) == objs(before.release.manifest)
    for w in c.workloads:
        live = kube.get("apps/v1", w.kind, w.name, w.namespace)
        assert flux.HELM_ORIGIN_NAME not in (live["metadata"].get("labels") or {})
        assert flux.KUSTOMIZE_OWNER_NAME not in (live["metadata"].get("labels") or {})
    assert preconditions.workload_problems(kube, c) == []
    if same_pods:
        after = snapshot_mod.take(kube, c)
        assert {p.uid for p in after.pods} == {p.uid for p in before.snapshot.pods}


def assert_halted(run, component: str, failed: str, later: list[str]) -> None:
    """The failing step failed, the later steps of the component are skipped naming it, and the
    later components were not started."""
    idx = STEPS.index(failed)
    assert run.failed == [f"{failed}[{component}]"], run.stdout[-4000:]
    for s in STEPS[idx + 1:]:
        case = run.by_name[f"{s}[{component}]"]
        assert case.outcome == "skipped" and "failed at step" in case.message and \
            failed in case.message, (s, case.message)
    for other in later:
        for s in STEPS:
            case = run.by_name.get(f"{s}[{other}]")
            if case is not None:
                assert case.outcome == "skipped" and "not started" in case.message, case.message


def rollback_properties(run_junit: Path, test: str) -> list[str]:
    import xml.etree.ElementTree as ET
    for tc in ET.parse(run_junit).getroot().iter("testcase"):
        if tc.get("name") == test:
            return [p.get("value") for p in tc.iter("property")
                    if p.get("name", "").startswith("rollback.")]
    return []


def edit_file(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_values_differ_pods_recreated_detected_and_rolled_back(env):
    inv, kube, work = env["inv"], env["kube"], env["work"] / "values"
    grafana = inv.component("grafana")
    before = State(kube, grafana)
    hr = inv.gitops.path / grafana.path / "helmrelease.yaml"
    edit_file(hr, "check_for_updates: false", "check_for_updates: true")
    sha = commit_and_push(inv.gitops.path, "scenario: grafana values differ from the release")
    try:
        run = run_phase3(env["stack"], work, "-k", "grafana or log-analyzer",
                         "--accept-hazard", "adoption-values", "--accept-hazard",
                         "adoption-rollout", journal=work / "journal.jsonl")
    finally:
        revert_and_push(inv.gitops.path, sha)
    assert_halted(run, "grafana", "test_6_adopted_not_recreated", ["log-analyzer"])
    msg = run.message("test_6_adopted_not_recreated[grafana]")
    assert "was NOT adopted in place" in msg and "Pod logging/grafana-" in msg
    props = rollback_properties(run.junit, "test_6_adopted_not_recreated[grafana]")
    assert [p.split(":")[0] for p in props] == [
        "suspend Kustomization flux-system/handover-grafana",
        "suspend HelmRelease logging/grafana",
        "delete Kustomization flux-system/handover-grafana without pruning",
        "delete suspended HelmRelease logging/grafana (no uninstall)",
        f"helm rollback grafana {before.release.revision}",
        "verify the pods run again"], props
    assert all(": done" in p for p in props), props
    rep = component_report(report_of(work), "grafana")
    assert rep["status"] == "rolled back" and rep["failed_step"] == "adopted"
    assert any("hazard ACCEPTED" in n for n in rep["notes"])
    assert rep["pods_recreated"]
    assert_restored(kube, inv, before, same_pods=False)  # the rollback rolled them once more
    # the HTML report in Chromium: the halt and the rollback on grafana's lane
    check_run_page(work / "reports", ["grafana"], "rehearsal-rollback-grafana",
                   rollback_on="grafana")


def test_pod_restart_during_adoption_detected_and_rolled_back(env):
    inv, kube, work = env["inv"], env["kube"], env["work"] / "restart"
    alloy = inv.component("alloy")
    before = State(kube, alloy)
    journal = work / "journal.jsonl"
    proc = spawn_phase3(env["stack"], work, "-k", "alloy", journal=journal)
    try:
        wait_journal(journal, "alloy", "handover", "passed", 240, proc)
        pod = before.snapshot.pods[0]
        kube.core.patch_namespaced_pod(pod.name, pod.namespace, {"metadata": {"annotations": {
            "rehearsal.flux-handover.io/restart": "scenario-restart-1"}}})
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    import xml.etree.ElementTree as ET
    cases = {tc.get("name"): tc for tc in ET.parse(work / "killed.xml").getroot().iter("testcase")}
    failed = [n for n, tc in cases.items() if tc.find("failure") is not None]
    assert failed == ["test_6_adopted_not_recreated[alloy]"], (work / "killed.log").read_text()[-3000:]
    msg = cases["test_6_adopted_not_recreated[alloy]"].find("failure").get("message")
    assert f"Pod {pod.namespace}/{pod.name}: restarts.alloy 0 -> 1" in msg or \
        "restarted 1 time(s)" in msg, msg
    props = rollback_properties(work / "killed.xml", "test_6_adopted_not_recreated[alloy]")
    assert any(p.startswith(f"helm rollback alloy {before.release.revision}: done") for p in props)
    assert_restored(kube, inv, before, same_pods=True)  # the restarted pod was not recreated


def test_never_ready_times_out_and_rolls_back(env):
    inv, kube, work = env["inv"], env["kube"], env["work"] / "timeout"
    tempo = inv.component("tempo")
    before = State(kube, tempo)
    inv_copy = inventory_copy(env["stack"], work / "migration-timeout.yaml",
                              ready_timeout("tempo", 8))
    hr = inv.gitops.path / tempo.path / "helmrelease.yaml"
    edit_file(hr, "spec:\n  interval: 30m\n", "spec:\n  interval: 30m\n  dependsOn:\n"
                                                 "    - name: loki\n")
    sha = commit_and_push(inv.gitops.path, "scenario: tempo depends on a HelmRelease not there")
    try:
        run = run_phase3(env["stack"], work, "-k", "tempo or grafana", inventory=inv_copy,
                         journal=work / "journal.jsonl")
    finally:
        revert_and_push(inv.gitops.path, sha)
    assert_halted(run, "tempo", "test_5_ready", ["grafana"])
    msg = run.message("test_5_ready[tempo]")
    assert "HelmRelease logging/tempo not Ready" in msg and "within 8 s" in msg
    assert "dependency 'logging/loki' is not ready" in msg
    props = rollback_properties(run.junit, "test_5_ready[tempo]")
    assert any(p.startswith("helm rollback tempo") and "not-needed" in p for p in props), props
    assert_restored(kube, inv, before, same_pods=True)
    assert helm_storage.latest(kube, "tempo", "logging").revision == before.release.revision


def test_chart_version_missing_rolls_back(env):
    inv, kube, work = env["inv"], env["kube"], env["work"] / "chart"
    eg = inv.component("envoy-gateway")
    before = State(kube, eg)
    inv_copy = inventory_copy(env["stack"], work / "migration-chart.yaml",
                              ready_timeout("envoy-gateway", 8))
    hr = inv.gitops.path / eg.path / "helmrelease.yaml"
    text = hr.read_text()
    version = yaml.safe_load(text)["spec"]["chart"]["spec"]["version"]
    edit_file(hr, f"version: {version}", "version: 9.9.9")
    sha = commit_and_push(inv.gitops.path, "scenario: chart version that does not exist")
    accepted = ["--accept-hazard", "adoption-chart-version", "--accept-hazard", "adoption-rollout",
                "--accept-hazard", "immutable-fields"]
    try:
        # The gate's render of the adoption upgrade (hooks, chart CRDs) needs the chart: the
        # missing version halts the chain at step 1, before any mutation.
        early = run_phase3(env["stack"], work / "early", "-k", "envoy", *accepted,
                           inventory=inv_copy, journal=work / "early" / "journal.jsonl")
        # With those two findings accepted too, Flux meets the missing version at adoption.
        run = run_phase3(env["stack"], work, "-k", "envoy", *accepted,
                         "--accept-hazard", "adoption-hooks", "--accept-hazard", "chart-crds",
                         inventory=inv_copy, journal=work / "journal.jsonl")
    finally:
        revert_and_push(inv.gitops.path, sha)
    assert_halted(early, "envoy-gateway", "test_1_preconditions", [])
    early_msg = early.message("test_1_preconditions[envoy-gateway]")
    assert "9.9.9" in early_msg and "not found" in early_msg, early_msg
    assert_halted(run, "envoy-gateway", "test_5_ready", [])
    msg = run.message("test_5_ready[envoy-gateway]")
    assert "9.9.9" in msg, msg
    rep = component_report(report_of(work), "envoy-gateway")
    assert rep["status"] == "rolled back" and len(rep["rollback"]) == 6
    assert_restored(kube, inv, before, same_pods=True)
    assert helm_storage.latest(kube, eg.release.name, eg.release.namespace).revision == \
        before.release.revision


def test_killed_between_handover_and_adoption_check_resumes_from_journal(env):
    inv, kube, work = env["inv"], env["kube"], env["work"] / "killed"
    loki = inv.component("loki")
    before = State(kube, loki)
    journal = work / "journal.jsonl"
    proc = spawn_phase3(env["stack"], work, "-k", "loki", journal=journal)
    try:
        wait_journal(journal, "loki", "handover", "passed", 300, proc)
        kill_group(proc)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    steps = journal_steps(journal, "loki")
    assert ("handover", "passed") in steps and ("adopted", "started") not in steps, steps
    run = run_phase3(env["stack"], work, "-k", "loki", journal=journal, name="resumed")
    assert run.returncode == 0, run.stdout[-4000:]
    for s in STEPS[:4]:
        case = run.by_name[f"{s}[loki]"]
        assert case.outcome == "skipped" and "not repeated" in case.message, case.message
    assert run.outcomes("passed") == sorted(f"{s}[loki]" for s in STEPS[4:])
    # adopted in place across the kill: same pods, same restarts, revision +1 exactly once
    after = snapshot_mod.take(kube, loki)
    assert snapshot_mod.compare(before.snapshot, after, release_moves=1) == []
    rep = component_report(report_of(work), "loki")
    assert rep["status"] == "handed over"
    assert any("resumed" in n for n in rep["notes"])
    # the HTML report: the killed run and the resumed one on one timeline
    check_run_page(work / "reports", ["loki"], "rehearsal-resumed-loki", parts=2)


def test_killed_during_rollback_rerun_finishes_rollback_and_halts(env):
    inv, kube, work = env["inv"], env["kube"], env["work"] / "killed-rollback"
    alloy = inv.component("alloy")
    before = State(kube, alloy)
    rev = before.release.revision
    journal = work / "journal.jsonl"
    fns, hr = inv.cluster.flux_namespace, alloy.helm_release
    ks = f"Kustomization {fns}/{alloy.kustomization_name}"
    suspend_ks = f"patch {ks} spec.suspend=true"
    proc = spawn_phase3(env["stack"], work, "-k", "alloy",
                        "-p", "tests.scenarios.phase3_rollback_kill_plugin", journal=journal)
    try:
        wait_journal(journal, "alloy", "handover", "passed", 240, proc)
        pod = before.snapshot.pods[0]
        kube.core.patch_namespaced_pod(pod.name, pod.namespace, {"metadata": {"annotations": {
            "rehearsal.flux-handover.io/restart": "scenario-restart-rollback-kill"}}})
        wait_journal(journal, "alloy", "rollback", "started", 600, proc)
        wait_stopped(proc, 120)  # frozen right after the first rollback action's `done`
        kill_group(proc)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    log = (work / "killed.log").read_text()[-3000:]
    # where the kill left it: step 6 failed, rollback started, one action done, never finished
    at_kill = journal_entries(journal, "alloy")
    steps = [(e["step"], e["action"]) for e in at_kill if e["kind"] == "step"]
    assert ("adopted", "failed") in steps and steps[-1] == ("rollback", "started"), (steps, log)
    mutations = [(e["kind"], e["action"]) for e in at_kill
                 if e["step"] == "rollback" and e["kind"] in ("intent", "done", "failed")]
    assert mutations == [("intent", suspend_ks), ("done", suspend_ks)], mutations
    live_ks = kube.get(flux.KUSTOMIZE_API, "Kustomization", alloy.kustomization_name, fns)
    live_hr = kube.get(flux.HELM_API, "HelmRelease", hr.name, hr.namespace)
    assert live_ks["spec"].get("suspend") is True
    assert live_hr is not None and not live_hr["spec"].get("suspend")
    adopted = helm_storage.latest(kube, alloy.release.name, alloy.release.namespace)
    assert adopted.revision == rev + 1 and flux.HELM_ORIGIN_NAME in adopted.manifest

    run = run_phase3(env["stack"], work, "-k", "alloy", journal=journal, name="rerun")
    assert run.returncode == 0, run.stdout[-4000:]
    first = run.by_name["test_1_preconditions[alloy]"]
    assert first.outcome == "skipped" and "failed at step adopted" in first.message and \
        "rolled back from the journal now" in first.message, first.message
    for s in STEPS[1:]:
        case = run.by_name[f"{s}[alloy]"]
        assert case.outcome == "skipped" and "halted: alloy failed at step adopted" in \
            case.message, (s, case.message)
    # the run again: nothing but the rest of the rollback; the done action is not made again
    new = journal_entries(journal, "alloy")[len(at_kill):]
    assert [(e["step"], e["action"]) for e in new if e["kind"] == "step"] == [
        ("rollback", "started"), ("rollback", "rolled-back")], new
    intents = [e["action"] for e in new if e["kind"] == "intent"]
    assert suspend_ks not in intents, intents
    assert [a.split(" (")[0] for a in intents] == [
        f"patch HelmRelease {hr.namespace}/{hr.name} spec.suspend=true",
        f"delete {ks}", f"delete HelmRelease {hr.namespace}/{hr.name}",
        f"helm rollback alloy {rev} -n {alloy.release.namespace}"], intents
    closed = {e["id"] for e in new if e["kind"] == "done"}
    assert all(e["id"] in closed for e in new if e["kind"] == "intent"), new
    rolled = [e for e in new if e["action"] == "rolled-back"][0]["detail"]["actions"]
    assert [(a["action"], a["result"]) for a in rolled] == [
        (f"suspend {ks}", "not-needed"),
        (f"suspend HelmRelease {hr.namespace}/{hr.name}", "done"),
        (f"delete {ks} without pruning", "done"),
        (f"delete suspended HelmRelease {hr.namespace}/{hr.name} (no uninstall)", "done"),
        (f"helm rollback alloy {rev}", "done"),
        ("verify the pods run again", "done")], rolled
    rep = component_report(report_of(work), "alloy")
    assert rep["status"] == "rolled back (from the journal)", rep
    assert len(rep["rollback"]) == 6
    # back to the pre-step state, the release rolled back exactly once (one new revision)
    assert_restored(kube, inv, before, same_pods=True)
    assert helm_storage.latest(kube, alloy.release.name, alloy.release.namespace).revision == \
        rev + 2
