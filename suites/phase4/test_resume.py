"""Phase 4: resume the entry-point Kustomizations in Git and validate the whole cluster.

Ordered steps; each performs (only with --perform) and asserts its outcome:
1. preconditions: every component handed over (journal of phase 3; live: its HelmRelease Ready),
   no temporary ``handover-*`` Kustomization left; the state before resuming is kept next to the
   journal;
2. resume in Git: ``spec.suspend`` removed from the entry-point files (comments kept), commit, push;
3. reconcile: flux-system is asked to reconcile; each entry point must be live, not suspended and
   Ready for its generation;
4. validate: every HelmRelease and Kustomization Ready, nothing deleted or recreated and no pod
   restarted since step 1, every inventory health check answers.
"""

from __future__ import annotations

import pytest

from fixtures.flux import ensure_entrypoints_suspended
from handover.chain import probe as probe_mod
from handover.flux import bootstrap, resume, takeover
from handover.flux import rules as flux
from handover.snapshot import cluster as cluster_snapshot
from plugins.safety import skip_unless_perform

pytestmark = pytest.mark.chain("phase4")  # steps, order and needs: handover.runbook.PHASE4

BEFORE = "phase4-before-resume"


@pytest.mark.step("component_handed_over")
def test_component_handed_over(component, kube, inventory, flux_journal, phase_name):
    """Step 1: phase 3 finished this component (journal), and Flux runs it (live)."""
    state = resume.handed_over_state(flux_journal, component.name)
    assert state == "done", (
        f"component {component.name} is not handed over: phase 3's journal "
        f"({flux_journal.path}) says {state!r}. Resuming the entry points now would let "
        f"Flux take over {component.path} all at once; run phase 3 for {component.name} first."
    )
    if component.helm_release:
        ref = component.helm_release
        hr = (
            kube.get(flux.HELM_API, "HelmRelease", ref.name, ref.namespace)
            if kube.has_resource(flux.HELM_API, "HelmRelease")
            else None
        )
        assert hr is not None, (
            f"HelmRelease {ref.namespace}/{ref.name} of {component.name} "
            "does not exist although phase 3 recorded the component as done"
        )
        c = flux.condition(hr, "Ready") or {}
        assert flux.is_ready(hr), (
            f"HelmRelease {ref.namespace}/{ref.name} ({component.name}) is not Ready for "
            f"generation {hr['metadata'].get('generation')}: {c.get('reason')}: "
            f"{c.get('message')}"
        )
        assert not (hr.get("spec") or {}).get("suspend"), (
            f"HelmRelease {ref.namespace}/{ref.name} is suspended: resume it (phase 3 finish) "
            "before resuming the entry points"
        )


@pytest.mark.step("no_temporary_kustomizations")
def test_no_temporary_kustomizations(kube, inventory, phase_name):
    """Step 1: no `handover-*` Kustomization left from phase 3."""
    if not kube.has_resource(flux.KUSTOMIZE_API, "Kustomization"):
        pytest.fail("Flux is not installed on this cluster: run phase 2 first", pytrace=False)
    left = resume.temporary_kustomizations(kube)
    assert not left, (
        f"temporary Kustomizations still exist: {', '.join(left)}; phase 3 "
        "removes each one (orphaning its objects) when the component is finished"
    )


@pytest.mark.step("snapshot_before_resume")
def test_snapshot_before_resume(kube, inventory, cluster_snapshots, phase_name):
    """Step 1: the state after phase 3, kept so that a re-run compares with the first run's."""
    st = bootstrap.state(kube, inventory)
    resumed = [
        n
        for n, ks in st.entrypoints.items()
        if ks is not None and not (ks.get("spec") or {}).get("suspend")
    ]
    kept = cluster_snapshots.load(BEFORE)
    if resumed and kept is not None:
        pytest.skip(
            f"entry points already resumed ({', '.join(resumed)}): keeping the first "
            f"run's snapshot ({kept.summary()})"
        )
    snap = cluster_snapshots.take()
    cluster_snapshots.save(BEFORE, snap)
    assert snap.pods, f"no pod found in {', '.join(snap.namespaces)}: wrong cluster?"


@pytest.mark.step("resume_in_git")
def test_resume_in_git(entrypoint, gitops, flux_mutator, perform, phase_name):
    """Step 2: `spec.suspend` removed from the entry point in Git, committed and pushed."""
    rhead, states = ensure_entrypoints_suspended(
        gitops,
        flux_mutator,
        perform,
        False,
        "flux-handover phase 4: resume the entry-point Kustomizations",
    )
    state = next(s for s in states if s.name == entrypoint.name)
    assert not state.suspended, (
        f"{entrypoint.file} still has spec.suspend: true at "
        f"{gitops.remote}/{gitops.branch} {rhead[:12]}"
    )


@pytest.mark.step("reconciled")
def test_reconciled(entrypoint, kube, inventory, gitops, flux_mutator, perform, phase_name):
    """Step 3: flux-system applies the resumed entry point; it reconciles and is Ready for its
    generation."""
    ns = inventory.cluster.flux_namespace
    rhead, states = gitops.remote_states()
    still = [s for s in states if s.name == entrypoint.name and s.suspended]
    assert not still, (
        f"{entrypoint.file} is still suspended at {gitops.remote}/{gitops.branch} "
        f"{rhead[:12]}: step 2 did not resume it; nothing to reconcile"
    )
    if not resume.reconciled(kube, inventory, entrypoint.name, rhead):
        token = takeover.request_token()
        skip_unless_perform(
            perform,
            f"request a reconcile ({flux.RECONCILE_REQUESTED_AT}="
            f"<now>) of GitRepository and Kustomization {ns}/flux-system, "
            f"then of Kustomization {ns}/{entrypoint.name}",
        )
        if not resume.flux_system_applied(kube, inventory, rhead):
            resume.request_sync(flux_mutator, inventory, token)
        applied = resume.wait_applied(
            kube, inventory, entrypoint.name, rhead, inventory.ready_timeout
        )
        assert applied, (
            f"Kustomization {ns}/flux-system did not apply {rhead[:12]} (with "
            f"{entrypoint.name} resumed) within {inventory.ready_timeout}s: "
            f"flux get kustomizations -n {ns}"
        )
        flux_mutator.request_reconcile(
            flux.KUSTOMIZE_API, "Kustomization", entrypoint.name, ns, token
        )
        resume.wait_reconciled(kube, inventory, entrypoint.name, token, inventory.ready_timeout)
    live = resume.entrypoint(kube, inventory, entrypoint.name)
    c = flux.condition(live or {}, "Ready") or {}
    assert live and flux.is_ready(live), (
        f"Kustomization {ns}/{entrypoint.name} is not Ready for generation "
        f"{(live or {}).get('metadata', {}).get('generation')} after {inventory.ready_timeout}s: "
        f"{c.get('reason')}: {c.get('message')}. Suspend it again in Git if it is pruning or "
        "failing (phase 2 step 1), then investigate."
    )
    assert not live["spec"].get("suspend"), f"Kustomization {ns}/{entrypoint.name} is suspended"


@pytest.mark.step("every_kustomization_ready")
def test_every_kustomization_ready(kube, phase_name):
    """Step 4: every Kustomization in the cluster Ready for its generation and not suspended."""
    bad = resume.not_ready(kube, flux.KUSTOMIZE_API, "Kustomization")
    assert not bad, "Kustomizations not Ready:\n  " + "\n  ".join(bad)


@pytest.mark.step("every_helmrelease_ready")
def test_every_helmrelease_ready(kube, phase_name):
    """Step 4: every HelmRelease in the cluster Ready for its generation and not suspended."""
    if not kube.has_resource(flux.HELM_API, "HelmRelease"):
        pytest.fail("HelmRelease is not served: Flux is not installed", pytrace=False)
    bad = resume.not_ready(kube, flux.HELM_API, "HelmRelease")
    assert not bad, "HelmReleases not Ready:\n  " + "\n  ".join(bad)


@pytest.mark.step("nothing_deleted")
def test_nothing_deleted(cluster_snapshots, phase_name):
    """Step 4: no object deleted or recreated, no pod recreated or restarted since step 1 (Flux
    taking over from the entry points writes labels: resourceVersions may change)."""
    before = cluster_snapshots.load(BEFORE)
    assert before is not None, f"no snapshot from step 1 at {cluster_snapshots.path(BEFORE)}"
    after = cluster_snapshots.take()
    cluster_snapshots.save("phase4-after-resume", after)
    changes = [
        c
        for c in cluster_snapshot.compare(before, after, resource_versions=False)
        if c.change != "created"
    ]
    assert not changes, (
        "resuming the entry points deleted, recreated or restarted:\n"
        + cluster_snapshot.report(changes, before, after)
        + "\nSuspend the entry points in Git again (phase 2 step 1) and restore "
        "from the phase 3 backups."
    )


@pytest.mark.step("health")
def test_health(health_check, kube, inventory, phase_name):
    """Step 4: the component's Service answers (live: through the API server's service proxy, as
    in phase 3; rehearsal: Endpoints resolved, each address connected)."""
    component, h = health_check
    sample = probe_mod.wait_answering(kube, [h], inventory, within=30, timeout=2.0)[0]
    assert sample.ok, (
        f"{component}: Service {h.namespace}/{h.service}:{h.port}{h.path} does "
        f"not answer {h.expect}: {sample.detail}"
    )
