"""Phase 3 on the rehearsal cluster, the happy path: the whole homelab hands over, lowest risk
first and Loki last; every pod adopted in place (same UIDs, zero restarts), zero measured
downtime, each release moved by exactly one revision made by the controller. Also: a dry run
changes nothing, `-k envoy` hands over Envoy Gateway alone, a second run repeats nothing, and the
runbook's destructive steps are refused. ONE stack for the whole module.

The same run checks phase 1's rollout prediction against the outcome: before any handover, each
component's prediction is taken with the gate's own calls on its build (helm: the adoption
upgrade rendered on the cluster, ``render.predictions``; kubectl-applied: the workloads the
kubectl-restarted-at check names are recreated, the others kept), and after the whole handover it
must equal, workload by workload, what the snapshots measure (same pod UIDs and restarts, or all
pods replaced).
"""
from __future__ import annotations

import pytest

from handover.flux import render
from handover.flux import rules as flux
from handover.gate.hazards import kubectl_workloads
from handover.sources import kustomize
from handover.sources import helm_storage
from handover.snapshot import component as snapshot_mod
from handover.core.errors import UnsafeActionRefused
from handover.core.inventory import load
from handover.core.journal import Journal
from handover.core.kube import Kube
from handover.core.mutation import Mutator
from tests.browser import check_run_page
from tests.scenarios.phase3_rehearsal import (bootstrapped_stack, component_report,
                                              journal_steps, report_of, run_phase3)

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    state = tmp_path_factory.mktemp("p3-happy") / "state"
    work = tmp_path_factory.mktemp("p3-happy-work")
    with bootstrapped_stack(state, work) as s:
        inv = load(s.inventory_path)
        kube = Kube(kubeconfig=s.cluster.kubeconfig, context=inv.cluster.context)
        before = {c.name: snapshot_mod.take(kube, c) for c in inv.components}
        predicted = phase1_predictions(kube, inv)
        yield {"stack": s, "work": work, "inv": inv, "kube": kube, "before": before,
               "predicted": predicted}


def phase1_predictions(kube, inv) -> dict[str, dict[str, str]]:
    """{component: {"Kind ns/name": outcome}}: phase 1's rollout prediction per workload, made
    with the gate's calls on each component's build."""
    out: dict[str, dict[str, str]] = {}
    for c in inv.components:
        if c.type not in ("helm", "manifests"):
            continue
        objects = kustomize.build(inv.gitops.path / c.path)
        if c.type == "helm":
            out[c.name] = {p.subject: p.outcome
                           for p in render.predictions(kube, inv, c, objects)}
        else:
            rolled = {f.subject for f in kubectl_workloads.check_restarted_at(kube, c, objects)
                      if f.severity == "error"}
            out[c.name] = {f"{w.kind} {w.namespace}/{w.name}":
                           render.RECREATED if f"{w.kind} {w.namespace}/{w.name}" in rolled
                           else render.IN_PLACE for w in c.workloads}
    return out


def measured_outcome(before, after, workload: str) -> str:
    """What happened to one workload's pods between two snapshots."""
    b = {p.key: (p.uid, p.total_restarts) for p in before.pods_of(workload)}
    a = {p.key: (p.uid, p.total_restarts) for p in after.pods_of(workload)}
    assert b, f"{workload}: no pod measured before the handover"
    if a == b:
        return render.IN_PLACE
    uids_b = {u for u, _ in b.values()}
    if uids_b.isdisjoint(u for u, _ in a.values()):
        return render.RECREATED
    return f"partly recreated / restarted: {b} -> {a}"


def test_dry_run_changes_nothing(env):
    work = env["work"] / "dry"
    args = ["--kubeconfig", str(env["stack"].cluster.kubeconfig), "--report-dir",
            str(work / "reports"), "--journal", str(work / "journal.jsonl")]
    from tests.harness import run_suite
    run = run_suite(["suites/phase3"], env["stack"].inventory_path, work / "dry.xml", *args)
    assert run.returncode == 0, run.stdout[-3000:]
    # read-only steps ran (preconditions, snapshot); every mutating step skipped, saying what
    assert len(run.outcomes("passed")) == 2 * len(env["inv"].components), run.stdout[-2000:]
    msg = run.message("test_4_handover[loki]")
    assert "dry run (no --perform): would apply Kustomization flux-system/handover-loki" in msg
    assert not (work / "journal.jsonl").exists() or \
        not [line for line in (work / "journal.jsonl").read_text().splitlines()]
    kube = env["kube"]
    assert kube.list(flux.KUSTOMIZE_API, "Kustomization", "flux-system",
                     label_selector="app.kubernetes.io/managed-by=flux-handover") == []
    for c in env["inv"].components:
        assert snapshot_mod.compare(env["before"][c.name], snapshot_mod.take(kube, c),
                                    release_moves=0) == []


@pytest.fixture(scope="module")
def envoy_run(env):
    return run_phase3(env["stack"], env["work"] / "run", "-k", "envoy", name="envoy")


@pytest.fixture(scope="module")
def full_run(env, envoy_run):
    return run_phase3(env["stack"], env["work"] / "run", name="full")


def test_k_envoy_hands_over_envoy_gateway_alone(env, envoy_run):
    assert envoy_run.returncode == 0, envoy_run.stdout[-4000:]
    names = [c.name for c in envoy_run.cases]
    assert names == [f"{t}[envoy-gateway]" for t in (
        "test_1_preconditions", "test_2_backup", "test_3_snapshot", "test_4_handover",
        "test_5_ready", "test_6_adopted_not_recreated", "test_7_finish", "test_8_record")]
    assert envoy_run.outcomes("passed") == sorted(names)
    kube = env["kube"]
    assert kube.get(flux.HELM_API, "HelmRelease", "loki", "logging") is None  # not touched
    # the user's Envoy Gateway chart comes from an OCI HelmRepository, which the rehearsal
    # replaces by its own HTTP chart repository: the report says what the proof does not cover
    rep = component_report(report_of(env["work"] / "run"), "envoy-gateway")
    assert rep["proof_gaps"] == ["HelmRepository flux-system/envoy-gateway: type: oci (refused)"]
    assert any(n.startswith("proof does not cover: HelmRepository flux-system/envoy-gateway")
               for n in rep["notes"])


def test_whole_homelab_hands_over_in_order_adopted_in_place(env, full_run):
    assert full_run.returncode == 0, full_run.stdout[-6000:]
    inv, kube = env["inv"], env["kube"]
    # chain order: each component's 8 steps before the next, inventory order, Loki last
    ran = [c.name for c in full_run.cases]
    comps = [n[n.index("[") + 1:-1] for n in ran]
    order = [c.name for c in inv.components]
    assert [c for i, c in enumerate(comps) if i == 0 or comps[i - 1] != c] == order
    assert order[-1] == "loki" and order.index("storage") < order.index("tempo")
    # envoy was done by the previous run: skipped from the journal, nothing repeated
    for c in full_run.cases:
        if "envoy-gateway" in c.name:
            assert c.outcome == "skipped" and "handed over in run" in c.message
        else:
            assert c.outcome == "passed", (c.name, c.message)
    # independent proof, from this test's own snapshots: same pods, zero restarts
    for c in inv.components:
        after = snapshot_mod.take(kube, c)
        diffs = snapshot_mod.compare(env["before"][c.name], after,
                                     release_moves=1 if c.release else None)
        assert diffs == [], f"{c.name}: {[str(d) for d in diffs]}"
        assert after.total_restarts == env["before"][c.name].total_restarts
        if c.helm_release:
            hr = kube.get(flux.HELM_API, "HelmRelease", c.helm_release.name,
                          c.helm_release.namespace)
            assert flux.is_ready(hr) and hr["status"]["history"][0]["version"] == \
                env["before"][c.name].release.revision + 1
        assert kube.get(flux.KUSTOMIZE_API, "Kustomization", c.kustomization_name,
                        "flux-system") is None, "temporary Kustomization left behind"
    # the report: zero downtime measured for every component with a health check
    rep = report_of(env["work"] / "run")
    for c in inv.components:
        if c.name == "envoy-gateway":
            continue
        r = component_report(rep, c.name)
        assert r["status"] == "handed over" and r["restarts"] == 0, r
        if c.health:
            assert r["downtime_seconds"] == 0.0, (c.name, r["probe"])
            assert "0 failed" in r["probe"], r["probe"]
        else:
            assert r["downtime_seconds"] is None
        if c.release:
            assert r["revision_after"] == r["revision_before"] + 1
            assert any(x["command"].startswith("helm uninstall") for x in r["refused"])
    # the HTML report in Chromium: all eight components (envoy-gateway from the earlier run)
    check_run_page(env["work"] / "run" / "reports", order, "rehearsal-full-run", parts=None)


def test_phase1_rollout_prediction_equals_the_measured_outcome(env, full_run):
    """For every workload of every component of the example: the outcome phase 1 predicted
    before the handover is what the handover did (measured from this test's own snapshots)."""
    assert full_run.returncode == 0, full_run.stdout[-3000:]
    inv, kube, predicted = env["inv"], env["kube"], env["predicted"]
    assert set(predicted) == {c.name for c in inv.components if c.type != "storage"}
    measured: dict[str, dict[str, str]] = {}
    for c in inv.components:
        if c.name not in predicted:
            continue
        inventory_workloads = {f"{w.kind} {w.namespace}/{w.name}" for w in c.workloads}
        # every workload the render predicts for is one the snapshots measure
        assert set(predicted[c.name]) == inventory_workloads, c.name
        after = snapshot_mod.take(kube, c)
        measured[c.name] = {w: measured_outcome(env["before"][c.name], after, w)
                            for w in predicted[c.name]}
    assert measured == predicted
    # the example's workloads are all adopted in place (grafana included: its checksum/secret
    # was taken over the stored password by the seed's upgrade, as the chart keeps it by lookup)
    assert {o for per in predicted.values() for o in per.values()} == {render.IN_PLACE}


def test_second_run_repeats_nothing(env, full_run):
    again = run_phase3(env["stack"], env["work"] / "run", name="again")
    assert again.returncode == 0
    assert again.outcomes("passed") == [] and len(again.outcomes("skipped")) == 64
    journal = env["work"] / "run" / "journal.jsonl"
    assert ("handover", "started") in journal_steps(journal, "loki")


def test_destructive_runbook_steps_are_refused(env, full_run):
    inv, kube = env["inv"], env["kube"]
    m = Mutator(kube, inv, Journal(env["work"] / "refusals.jsonl"), perform=True)
    loki = inv.component("loki")
    with pytest.raises(UnsafeActionRefused, match="Flux manages this release"):
        m.helm(["uninstall", "loki"], "logging", "the runbook's cleanup step")
    with pytest.raises(UnsafeActionRefused, match="would UNINSTALL its Helm release"):
        m.delete(flux.HELM_API, "HelmRelease", "loki", "logging", "the runbook's rollback")
    rel = helm_storage.latest(kube, "loki", "logging")
    assert rel is not None and rel.status == "deployed"
    assert kube.get(flux.HELM_API, "HelmRelease", "loki", "logging") is not None
    assert snapshot_mod.compare(env["before"]["loki"], snapshot_mod.take(kube, loki),
                                release_moves=1) == []
    notes = (env["work"] / "refusals.jsonl").read_text()
    assert notes.count('"kind": "note"') == 2 and "refused" in notes


def test_probe_measures_a_real_outage_both_ways(env, full_run):
    """The availability probe is not a check that cannot fail: the node agent's `unready` fault
    on the log-analyzer pod is measured as an outage, through the Endpoints and through the API
    server's service proxy, and recovery ends it."""
    import time

    from handover.chain.probe import Probe
    kube, c = env["kube"], env["inv"].component("log-analyzer")
    pod = snapshot_mod.take(kube, c).pods[0]
    key = "rehearsal.flux-handover.io/fault"
    for mode in ("endpoints", "proxy"):
        probe = Probe(kube, c.health, mode=mode, interval=0.05, resolve_every=0.2).start()
        time.sleep(0.5)
        kube.core.patch_namespaced_pod(pod.name, pod.namespace,
                                       {"metadata": {"annotations": {key: "unready"}}})
        time.sleep(2.0)
        kube.core.patch_namespaced_pod(pod.name, pod.namespace,
                                       {"metadata": {"annotations": {key: None}}})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not probe.samples[-1].ok:
            time.sleep(0.1)
        time.sleep(0.5)
        res = probe.stop()
        assert probe.samples[-1].ok, "never recovered"
        assert len(res.outages) == 1, res.summary()
        assert 1.0 < res.downtime < 15, res.summary()
    after = snapshot_mod.take(kube, c)
    assert [p.uid for p in after.pods] == [pod.uid] and after.pods[0].ready
