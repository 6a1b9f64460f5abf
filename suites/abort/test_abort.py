"""Abort the migration: hand every component back from Flux to the Helm CLI and kubectl, in place.

Run only when named: ``pytest suites/abort --perform`` (one component: ``-k loki``; with
``--remove-flux`` Flux itself is removed at the end). One chain per component, highest risk first
(the reverse of the handover; the chain is handover.runbook.ABORT, plugins/runbook.py orders,
journals, halts and resumes it), ids carry the component name. Mutating steps run only with
--perform, through the Mutator (journal first, context guard). See docs/abort.md.
"""

from __future__ import annotations

import time

import pytest

from fixtures.flux import ensure_entrypoints_suspended
from handover.chain import abort, preconditions
from handover.chain import probe as probe_mod
from handover.flux import rules as flux
from handover.snapshot import component as snapshot_mod
from handover.sources import helm_storage
from plugins.safety import skip_unless_perform

# the chain (steps, which mutate, the final step): handover.runbook.ABORT
pytestmark = [pytest.mark.chain("abort"), pytest.mark.usefixtures("mutator")]


def _state(abort_state, component):
    ac = abort_state.component(component.name)
    if ac.state is None:
        pytest.fail(
            f"{component.name}: no record of the preconditions step (neither in this "
            "run nor in the journal): run the abort chain from its first step",
            pytrace=False,
        )
    return ac


def _skip_unmanaged(ac) -> None:
    if not ac.state.managed:
        pytest.skip(
            f"{ac.name} is not managed by Flux (it is with the Helm CLI / kubectl): "
            "nothing to do, nothing touched"
        )


@pytest.mark.step("preconditions")
def test_1_preconditions(
    component, kube, inventory, abort_state, handover_run_state, perform, report
):
    """Which components Flux manages now, read from the cluster (its HelmRelease, Flux owner
    labels on its objects; phase 3's journal only as a hint); for those, the release is deployed,
    the workloads healthy, kubectl objects have a phase-3 backup; the snapshot from before."""
    hint = handover_run_state.component(component.name).progress
    hint_state = hint.state if hint is not None else ""
    try:
        st = abort.state(kube, inventory, component, hint_state)
    except abort.AbortError as e:
        pytest.fail(str(e), pytrace=False)
    ac = abort_state.component(component.name)
    ac.state = st
    rep = report.component(component.name, component.type, component.risk)
    rep.notes.append("abort preconditions: " + st.describe())
    print(st.describe())
    if st.managed != (hint_state in ("done", "in-progress", "failed")):
        rep.notes.append(
            f"the journal ({hint_state or 'no entry'}) and the cluster disagree; "
            "the cluster decides"
        )
    ac.detail["preconditions"] = {"state": st.to_dict()}
    if not st.managed:
        rep.status = "not managed by Flux: untouched by the abort"
        return
    problems = preconditions.release_problems(kube, component)
    problems += preconditions.workload_problems(kube, component)
    record = None
    if component.type != "helm":
        record = abort.find_backup(
            inventory,
            component.name,
            handover_run_state.step_detail(component.name, "backup").get("backup"),
        )
        if record is None:
            problems.append(
                f"no phase-3 backup of {component.name} under "
                f"{inventory.backups / component.name}: the kubectl objects' "
                "last-applied-configuration cannot be given back"
            )
    snap = snapshot_mod.take(kube, component)
    for w in component.workloads:
        name = f"{w.kind} {w.namespace}/{w.name}"
        if not [p for p in snap.pods if name in p.workload]:
            problems.append(
                f"{name}: no pod matches selector {w.selector!r}: nothing to prove the abort with"
            )
    rep.pods, rep.restarts_before = len(snap.pods), snap.total_restarts
    rep.revision_before = snap.release.revision if snap.release else None
    if perform and not problems:
        ac.before = snap
        ac.detail["preconditions"].update(
            snapshot=abort_state.keep_before(inventory, component.name, snap),
            backup=record.directory if record else "",
        )
    assert not problems, f"{component.name} cannot be handed back safely:\n" + "\n".join(
        f"- {p}" for p in problems
    )


def _start_probe(kube, inventory, abort_state) -> None:
    """One probe over the selected components' health checks, for the whole abort."""
    if abort_state.probe is not None or abort_state.probe_result is not None:
        return
    checks = [h for c in inventory.components if c.name in abort_state.selected for h in c.health]
    abort_state.probe = probe_mod.for_inventory(kube, checks, inventory).start()


@pytest.mark.step("freeze")
def test_2_freeze(component, kube, inventory, gitops, mutator, abort_state, perform, report):
    """Suspend every entry-point Kustomization and the component's Kustomizations and
    HelmRelease in the cluster, and the entry points in Git (commit + push, the phase 2/4 edit
    helper), so that no reconcile undoes the abort. The runbook's `kubectl delete helmrelease`
    of the still unsuspended HelmRelease is refused first, with the reason."""
    ac = _state(abort_state, component)
    _skip_unmanaged(ac)
    st = ac.state
    kss = ", ".join(abort.entry_kustomizations(inventory) + st.kustomizations)
    hr = f" and HelmRelease {st.helm_release}" if st.helm_release else ""
    skip_unless_perform(
        perform, f"suspend Kustomizations {kss}{hr}, and the entry points in Git (commit, push)"
    )
    _start_probe(kube, inventory, abort_state)
    rep = report.component(component.name, component.type, component.risk)
    if st.helm_release:
        ns, name = st.helm_release.split("/", 1)
        live = kube.get(flux.HELM_API, "HelmRelease", name, ns)
        if (
            live is not None
            and not (live.get("spec") or {}).get("suspend")
            and (live.get("status") or {}).get("storageNamespace")
        ):
            cmd = ["delete", "helmrelease", name, "-n", ns]
            why = mutator.kubectl_refusal(cmd)
            assert why and "UNINSTALL" in why, (
                f"kubectl {' '.join(cmd)} of the unsuspended HelmRelease is NOT refused: the "
                "interlock is broken"
            )
            rep.refused.append({"command": f"kubectl {' '.join(cmd)}", "why": why})
    lines = abort.freeze_cluster(kube, mutator, inventory, st)
    rhead, states = ensure_entrypoints_suspended(
        gitops,
        mutator,
        perform,
        True,
        "flux-handover abort: suspend the entry-point Kustomizations (Flux hands back)",
    )
    left = abort.not_suspended(kube, inventory, st)
    assert not left, f"still not suspended after the freeze: {', '.join(left)}"
    unsuspended = [s.file for s in states if not s.suspended]
    assert not unsuspended, (
        f"{', '.join(unsuspended)} not suspended at {gitops.remote}/{gitops.branch} {rhead[:12]}"
    )
    rep.notes += [f"abort freeze: {line}" for line in lines]
    ac.detail["freeze"] = {"cluster": lines, "git": rhead}


@pytest.mark.step("orphan")
def test_3_orphan(component, kube, inventory, mutator, abort_state, perform, report):
    """Delete the suspended HelmRelease (no uninstall) and the component's own Kustomization when
    it has nothing to garbage-collect; the release stays in storage at its revision; Flux owner
    labels off the live objects; kubectl objects get their last-applied-configuration back."""
    ac = _state(abort_state, component)
    _skip_unmanaged(ac)
    st = ac.state
    hr = f"HelmRelease {st.helm_release}" if st.helm_release else "no HelmRelease"
    skip_unless_perform(
        perform, f"orphan {component.name}: delete {hr} (suspended), remove Flux owner labels"
    )
    _start_probe(kube, inventory, abort_state)
    record = abort.find_backup(
        inventory,
        component.name,
        abort_state.passed_detail(component.name, "preconditions").get("backup")
        or ac.detail.get("preconditions", {}).get("backup"),
    )
    try:
        actions = [
            abort.delete_helmrelease(kube, mutator, st),
            abort.delete_own_kustomization(kube, mutator, inventory, component),
        ]
        actions += abort.release_labels(kube, mutator, inventory, component, record)
    except abort.AbortError as e:
        pytest.fail(str(e), pytrace=False)
    problems = []
    if st.helm_release and kube.has_resource(flux.HELM_API, "HelmRelease"):
        ns, name = st.helm_release.split("/", 1)
        if kube.get(flux.HELM_API, "HelmRelease", name, ns) is not None:
            problems.append(f"HelmRelease {st.helm_release} still exists")
    problems += [
        f"Flux owner label left: {x}" for x in abort.labels_left(kube, inventory, component)
    ]
    problems += abort.last_applied_missing(kube, inventory, component, record)
    if component.release is not None:
        r = component.release
        rel = helm_storage.latest(kube, r.name, r.namespace)
        if rel is None:
            problems.append(f"Helm release {r.namespace}/{r.name} is gone from storage")
        elif rel.revision != st.release_revision or rel.status != "deployed":
            problems.append(
                f"Helm release {r.namespace}/{r.name}: revision {rel.revision} "
                f"{rel.status}, expected revision {st.release_revision} deployed"
            )
    report.component(component.name, component.type, component.risk).notes += [
        f"abort orphan: {a}" for a in actions
    ]
    ac.detail["orphan"] = {"actions": actions}
    assert not problems, f"{component.name} is not handed back:\n" + "\n".join(
        f"- {p}" for p in problems
    )


@pytest.mark.step("prove")
def test_4_prove(
    component, kube, inventory, mutator, abort_state, handover_run_state, perform, report
):
    """Same pod UIDs, no restart, release deployed at the same revision (`helm list` shows it;
    a `helm install` re-install is refused), the workloads answer, and the availability probe
    saw no failure during the whole abort."""
    ac = _state(abort_state, component)
    _skip_unmanaged(ac)
    skip_unless_perform(
        perform, f"compare {component.name} with its snapshot from before the abort"
    )
    _start_probe(kube, inventory, abort_state)
    before = ac.before
    assert before is not None, f"{component.name}: no snapshot from before the abort"
    rep = report.component(component.name, component.type, component.risk)
    rep.pods, rep.restarts_before = len(before.pods), before.total_restarts
    rep.revision_before = before.release.revision if before.release else None
    after = snapshot_mod.take(kube, component)
    diffs = snapshot_mod.compare(before, after, release_moves=0 if before.release else None)
    rep.restarts_after = after.total_restarts
    rep.revision_after = after.release.revision if after.release else None
    rep.pods_recreated = sorted({d.subject for d in diffs if d.subject.startswith("Pod ")})
    problems = [str(d) for d in diffs]
    if component.release is not None:
        r = component.release
        row = abort.helm_list(kube, r.name, r.namespace)
        if row is None:
            problems.append(f"helm list -n {r.namespace} does not show {r.name}")
        elif (
            int(row.get("revision", -1)) != before.release.revision
            or row.get("status") != "deployed"
        ):
            problems.append(
                f"helm list: {r.name} revision {row.get('revision')} "
                f"{row.get('status')}, expected {before.release.revision} deployed"
            )
        why = mutator.helm_refusal(["install", r.name, "<chart>"], r.namespace)
        if not why:
            problems.append(f"helm install {r.name} -n {r.namespace} (re-install) is NOT refused")
        else:
            rep.refused.append({"command": f"helm install {r.name} -n {r.namespace}", "why": why})
    if component.health:
        samples = probe_mod.wait_answering(kube, component.health, inventory, within=30)
        problems += [f"{s.check} does not answer: {s.detail}" for s in samples if not s.ok]
    if abort_state.probe is not None:
        # the probe runs from the first mutation of this run on, over every selected component:
        # at each proof it has measured the whole abort so far (the last proof: all of it)
        samples = list(abort_state.probe.samples)
        failed = [s for s in samples if not s.ok]
        rep.probe = (
            f"whole abort so far: {len(samples)} samples, {len(failed)} failed, "
            f"{len({s.check for s in samples})} checks"
        )
        rep.downtime_seconds = 0.0 if samples and not failed else None
        if failed:
            problems.append(
                f"the availability probe saw {len(failed)} failed sample(s) during "
                f"the abort (first: {failed[0].check}: {failed[0].detail})"
            )
    assert not problems, f"{component.name} was NOT handed back in place:\n" + "\n".join(
        f"- {p}" for p in problems
    )
    # phase 3 starts afresh for this component next time; phase 4 sees it not handed over
    p3 = handover_run_state.component(component.name).progress
    if p3 is not None and p3.state not in ("fresh", "rolled-back"):
        handover_run_state.record_step(
            component.name, "rollback", "rolled-back", by="abort", abort_run=abort_state.id
        )
    rep.status = "handed back (abort)"


@pytest.mark.step("remove_flux")
def test_5_remove_flux(
    kube, inventory, mutator, abort_state, remove_flux_requested, perform, journal
):
    """Optional (--remove-flux): remove Flux's controllers and CRDs once no component is
    managed by Flux and no Flux object has a finalizer that would act; pods unchanged."""
    if not remove_flux_requested:
        pytest.skip(
            "Flux stays installed (every handed-back component is orphaned, the entry "
            "points suspended); --remove-flux removes it"
        )
    try:
        still = [c.name for c in inventory.components if abort.state(kube, inventory, c).managed]
    except abort.AbortError as e:
        pytest.fail(str(e), pytrace=False)
    assert not still, (
        f"refusing to remove Flux: it still manages {', '.join(still)}; run "
        "`pytest suites/abort --perform` for every component first"
    )
    skip_unless_perform(perform, "remove Flux (controllers, CRDs)")
    before = {c.name: snapshot_mod.take(kube, c) for c in inventory.components}
    journal.set_context("abort", "", "remove-flux")
    try:
        done = abort.remove_flux(kube, mutator, inventory)
    except abort.AbortError as e:
        pytest.fail(str(e), pytrace=False)
    print("\n".join(done))
    assert not kube.has_resource(flux.KUSTOMIZE_API, "Kustomization") and not kube.has_resource(
        flux.HELM_API, "HelmRelease"
    ), "Flux's CRDs are still served"
    time.sleep(2)  # anything a controller or a garbage collector would do, let it show
    problems = []
    for c in inventory.components:
        problems += [
            f"{c.name}: {d}"
            for d in snapshot_mod.compare(
                before[c.name], snapshot_mod.take(kube, c), release_moves=0
            )
        ]
    assert not problems, "removing Flux changed the workloads:\n" + "\n".join(problems)
