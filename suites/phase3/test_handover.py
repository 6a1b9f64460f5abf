"""Phase 3: hand each component over to Flux, proving it was adopted in place, not recreated.

One ordered chain per component (inventory order, lowest risk first), one test per step, declared
as data in handover.runbook.PHASE3; ids carry the component name (`-k envoy` hands over Envoy
Gateway alone). Mutating steps run only with --perform. The runbook plugin (plugins/runbook.py)
orders the chain, journals each step, halts the component at its first failing step and rolls it
back (plugins/rollback.py); the journal lets a killed run resume (plugins/journal.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from handover import target as targets
from handover.chain import adopted, preconditions
from handover.chain import backup as backup_mod
from handover.chain import probe as probe_mod
from handover.chain.probe import check_name
from handover.core.findings import report as findings_report
from handover.flux import rules as flux
from handover.flux import takeover
from handover.snapshot import component as snapshot_mod
from handover.sources import helm_storage, kustomize
from plugins.safety import skip_unless_perform

# the chain (steps, which mutate, what undoes them): handover.runbook.PHASE3; the session's
# Mutator is made at the first step, so that a rollback always has it (plugins.rollback)
pytestmark = [pytest.mark.chain("phase3"), pytest.mark.usefixtures("mutator")]

SETTLE = 1.0  # seconds the probe keeps measuring after Ready


def built_objects(inventory, component):
    return kustomize.build(inventory.gitops.path / component.path)


@pytest.mark.step("preconditions")
def test_1_preconditions(component, kube, inventory, accepted_hazards, report, journal):
    """The release / kubectl workloads exist and are healthy, phase 1's hazard checks pass for
    this component (reused, not copied), every PV behind it is Retain, Flux is bootstrapped."""
    problems = preconditions.flux_problems(kube, inventory)
    problems += preconditions.release_problems(kube, component)
    problems += preconditions.workload_problems(kube, component)
    problems += preconditions.pv_problems(kube, component)
    errors, accepted = preconditions.hazard_findings(
        kube, inventory, component, built_objects(inventory, component), accepted_hazards
    )
    if accepted:
        rep = report.component(component.name, component.type, component.risk)
        rep.notes += [
            f"hazard ACCEPTED with --accept-hazard {f.check}: {f.subject}: {f.problem}"
            for f in accepted
        ]
        journal.set_context("phase3", component.name, "preconditions")
        journal.note("hazards accepted", checks=sorted({f.check for f in accepted}))
    msg = "\n".join(f"- {p}" for p in problems)
    if errors:
        msg += ("\n" if msg else "") + findings_report(errors)
    assert not problems and not errors, f"{component.name} is not ready to be handed over:\n{msg}"


@pytest.mark.step("backup")
def test_2_backup(component, kube, inventory, backups, perform):
    """Release manifest + user values (from the release Secret) and the live objects, 0600; read
    back from disk and compared with the live release (what a rollback would restore)."""
    skip_unless_perform(
        perform, f"back up {component.name} under {inventory.backups / component.name}"
    )
    rec = backups.take(component)
    assert not backup_mod.verify(rec), backup_mod.verify(rec)
    if component.release is not None:
        r = component.release
        live = helm_storage.latest(kube, r.name, r.namespace)
        assert live is not None, f"release {r.namespace}/{r.name} is gone from Helm storage"
        assert rec.revision == live.revision, (
            f"{component.name}: the backup holds revision {rec.revision}, the live release is at "
            f"{live.revision}"
        )
        on_disk = Path(rec.directory)
        assert (on_disk / "manifest.yaml").read_text() == live.manifest, (
            f"{on_disk / 'manifest.yaml'} is not the live release's manifest"
        )
        assert backup_mod.release_values(rec) == (live.config or {}), (
            f"{on_disk / 'values.yaml'} does not hold the live release's user values"
        )
    for w in component.workloads:
        assert f"{w.kind} {w.namespace}/{w.name}" in rec.objects, (
            f"{w.kind} {w.namespace}/{w.name} is not in the backup {rec.directory}"
        )


@pytest.mark.step("snapshot")
def test_3_snapshot(component, snapshots, perform, report):
    """Pod UIDs, restart counts, creation times, release revision, PVC bindings: the "before"."""
    snap = snapshots.take(component)
    for w in component.workloads:
        name = f"{w.kind} {w.namespace}/{w.name}"
        assert [p for p in snap.pods if name in p.workload], (
            f"{name}: no pod matches selector {w.selector!r}: nothing to prove adoption with"
        )
    if component.release is not None:
        assert snap.release is not None, f"{component.name}: release not found for the snapshot"
    rep = report.component(component.name, component.type, component.risk)
    rep.pods, rep.restarts_before = len(snap.pods), snap.total_restarts
    rep.revision_before = snap.release.revision if snap.release else None
    if perform:
        snapshots.keep_before(component, snap)


@pytest.mark.step("handover")
def test_4_handover(component, kube, inventory, mutator, handover_run_state, perform, report):
    """The temporary Kustomization handover-<name> (prune: false) for the component's path, and a
    reconcile request. HelmRepositories (gitops.sourcesPath) are handed over first."""
    ks = takeover.for_component(inventory, component)
    skip_unless_perform(
        perform,
        f"apply Kustomization {ks['metadata']['namespace']}/"
        f"{ks['metadata']['name']} for ./{component.path}",
    )
    rep = report.component(component.name, component.type, component.risk)
    rev = takeover.sync_source(kube, mutator, inventory)
    rep.notes.append(f"Flux source at {rev} (= the checked GitOps checkout)")
    if component.type == "helm":
        src = takeover.hand_over_sources(kube, mutator, inventory)
        if src.done and not src.already:
            rep.notes.append(
                f"HelmRepositories handed over first ({', '.join(src.objects)}) "
                f"with Kustomization {takeover.SOURCES_KUSTOMIZATION}, then it was "
                "removed without pruning"
            )
    cr = handover_run_state.component(component.name)
    cr.probe = probe_mod.for_inventory(kube, component.health, inventory).start()
    cr.token = takeover.hand_over(mutator, ks)


@pytest.mark.step("ready")
def test_5_ready(component, kube, inventory, handover_run_state, perform, report):
    """Kustomization (and HelmRelease) Ready for the current generation, within the inventory's
    readyTimeout, while the availability probe measures."""
    skip_unless_perform(perform, f"wait for {component.name} to be Ready")
    cr = handover_run_state.component(component.name)
    rep = report.component(component.name, component.type, component.risk)
    if cr.probe is None:  # resumed run: measure from now on
        cr.probe = probe_mod.for_inventory(kube, component.health, inventory).start()
        rep.notes.append(
            "resumed: the probe measured from the resume on, not during the interruption"
        )
    timeout = takeover.ready_timeout(inventory, component)
    waits = [
        takeover.wait_ready(
            kube,
            flux.KUSTOMIZE_API,
            "Kustomization",
            component.kustomization_name,
            inventory.cluster.flux_namespace,
            timeout,
            cr.token or None,
        )
    ]
    if component.helm_release is not None:
        hr = component.helm_release
        waits.append(
            takeover.wait_ready(kube, flux.HELM_API, "HelmRelease", hr.name, hr.namespace, timeout)
        )
    time.sleep(SETTLE)
    cr.probe_result = cr.probe.stop()
    cr.probe = None
    rep.probe = cr.probe_result.summary()
    rep.downtime_seconds = cr.probe_result.downtime if cr.probe_result.measured else None
    rep.notes += [
        f"{w.object} Ready after {w.seconds:.1f} s (generation {w.generation})" for w in waits
    ]
    if component.health:
        assert cr.probe_result.measured, "the probe took no sample"
        assert set(cr.probe_result.per_check) == {check_name(h) for h in component.health}


@pytest.mark.step("adopted")
def test_6_adopted_not_recreated(
    component, kube, inventory, snapshots, perform, report, handover_run_state
):
    """Same pod UIDs, same restart counts, same PVC bindings; Flux owner labels; for Helm, the
    release revision moved by exactly one and that revision was made by helm-controller."""
    skip_unless_perform(perform, f"compare {component.name} with its snapshot")
    before = snapshots.before(component)
    assert before is not None, f"{component.name}: no snapshot from before the handover"
    after = snapshots.take(component)
    handover_run_state.component(component.name).after = after
    rep = report.component(component.name, component.type, component.risk)
    # what "adopted in place" on this target does not prove for the real cluster (rehearsal)
    gaps = targets.of(inventory).proof_gaps(inventory, component)
    rep.proof_gaps = gaps.items
    if gaps.summary:
        rep.notes.append(gaps.summary)
        print(f"{component.name}: {gaps.summary}")
    rep.pods, rep.restarts_before = len(before.pods), before.total_restarts
    rep.revision_before = before.release.revision if before.release else None
    rep.restarts_after = after.total_restarts
    rep.revision_after = after.release.revision if after.release else None
    diffs = snapshot_mod.compare(before, after, release_moves=1 if before.release else None)
    rep.pods_recreated = sorted({d.subject for d in diffs if d.subject.startswith("Pod ")})
    problems = [str(d) for d in diffs]
    problems += adopted.missing_kustomize_labels(
        kube, inventory, component, built_objects(inventory, component)
    )
    problems += adopted.missing_helm_labels(kube, component)
    if before.release is not None:
        problems += adopted.release_made_by_controller(kube, component, before.release.revision)
    assert not problems, f"{component.name} was NOT adopted in place:\n" + "\n".join(
        f"- {p}" for p in problems
    )


@pytest.mark.step("finish")
def test_7_finish(
    component, kube, inventory, mutator, snapshots, perform, report, handover_run_state
):
    """Remove the temporary Kustomization without pruning; the component stays managed by Flux.
    The runbook's `helm uninstall` (and deleting an unsuspended HelmRelease) is refused."""
    skip_unless_perform(perform, f"remove Kustomization {component.kustomization_name} (orphaning)")
    rep = report.component(component.name, component.type, component.risk)
    takeover.remove(
        kube,
        mutator,
        inventory,
        component.kustomization_name,
        "handover finished: temporary Kustomization, prune false, orphaning",
    )
    after = snapshots.take(component)
    diffs = snapshot_mod.compare(
        snapshots.before(component), after, release_moves=1 if after.release else None
    )
    assert not diffs, (
        f"{component.name} changed when handover-{component.name} was removed:\n"
        + "\n".join(f"- {d}" for d in diffs)
    )
    if component.release is not None:
        r, hr = component.release, component.helm_release
        live = kube.get(flux.HELM_API, "HelmRelease", hr.name, hr.namespace)
        assert live is not None and flux.is_ready(live), (
            f"HelmRelease {hr.namespace}/{hr.name} is gone or not Ready after the handover"
        )
        why = mutator.helm_refusal(["uninstall", r.name], r.namespace)
        assert why, (
            f"helm uninstall {r.name} -n {r.namespace} would NOT be refused although "
            "Flux manages the release: the interlock is broken"
        )
        rep.refused.append({"command": f"helm uninstall {r.name} -n {r.namespace}", "why": why})
        why = mutator.delete_safety(flux.HELM_API, "HelmRelease", hr.name, hr.namespace)
        assert why, f"deleting the unsuspended HelmRelease {hr.namespace}/{hr.name} is not refused"
        rep.refused.append(
            {"command": f"kubectl delete helmrelease {hr.name} -n {hr.namespace}", "why": why}
        )
    else:
        owner = adopted.missing_kustomize_labels(
            kube, inventory, component, built_objects(inventory, component)
        )
        assert not owner, "\n".join(owner)


@pytest.mark.step("record")
def test_8_record(component, snapshots, perform, report, handover_run_state):
    """Restarts, pods and revision read from the cluster NOW against the "before" snapshot kept on
    disk (so a resumed run checks the same thing as an uninterrupted one), plus measured downtime
    and duration, into the report. A failure here never rolls back the finished handover
    (PHASE3.finished_at, plugins/rollback.py)."""
    skip_unless_perform(perform, f"record {component.name}")
    cr = handover_run_state.component(component.name)
    rep = report.component(component.name, component.type, component.risk)
    if cr.probe_result is not None and not component.health:
        rep.notes.append("no health check in the inventory: downtime not measured")
    if cr.resumed:
        rep.notes.append("resumed from the journal")
    before = snapshots.before(component)
    assert before is not None, (
        f"{component.name}: no snapshot from before the handover (the "
        "journal names none, or its file is gone): nothing to compare"
    )
    now = snapshots.take(component)
    rep.pods, rep.restarts_before = len(before.pods), before.total_restarts
    rep.restarts_after = now.total_restarts
    rep.revision_before = before.release.revision if before.release else None
    rep.revision_after = now.release.revision if now.release else None
    diffs = snapshot_mod.compare(before, now, release_moves=1 if before.release else None)
    rep.pods_recreated = sorted(
        {d.subject for d in diffs if d.subject.startswith("Pod ") and d.path in ("uid", "present")}
    )
    assert not diffs, (
        f"{component.name} differs from its snapshot before the handover "
        f"({rep.restarts} container restart(s) in total):\n" + "\n".join(f"- {d}" for d in diffs)
    )
