"""Phase 2: bootstrap Flux with the entry-point Kustomizations suspended, prove nothing moved, and
diff what resuming them would change.

Ordered steps; each performs (only with --perform) and asserts its outcome. A second run is a no-op
that still passes (the entry points are already suspended and pushed, Flux already bootstrapped).
"""

from __future__ import annotations

import json

import pytest

from fixtures.flux import ensure_entrypoints_suspended
from handover.core import redact
from handover.core.errors import HandoverError
from handover.flux import bootstrap
from handover.flux import diff as flux_diff
from handover.flux import rules as flux
from handover.snapshot import cluster as cluster_snapshot
from plugins.safety import skip_unless_perform

pytestmark = pytest.mark.chain("phase2")  # steps, order and needs: handover.runbook.PHASE2

BEFORE = "phase2-before-bootstrap"


@pytest.mark.step("snapshot_before_bootstrap")
def test_snapshot_before_bootstrap(kube, inventory, gitops, cluster_snapshots, phase_name):
    """Step 0: the state of every covered object before Flux exists (kept next to the journal;
    a re-run after the bootstrap keeps the first run's snapshot)."""
    if bootstrap.already_bootstrapped(kube, inventory, gitops):
        kept = cluster_snapshots.load(BEFORE)
        assert kept is not None, (
            f"Flux is already bootstrapped on {kube.context} but there is no snapshot from before "
            f"the bootstrap ({cluster_snapshots.path(BEFORE)}): phase 2 cannot prove that the "
            "bootstrap moved nothing. Restore that file from the first run's backups."
        )
        pytest.skip(
            f"Flux already bootstrapped: keeping the snapshot of the first run ({kept.summary()})"
        )
    snap = cluster_snapshots.take()
    cluster_snapshots.save(BEFORE, snap)
    assert snap.objects, (
        f"the snapshot of {', '.join(snap.namespaces)} found no object: the "
        "inventory's namespaces do not exist on this cluster"
    )


@pytest.mark.step("entrypoints_suspended_in_git")
def test_entrypoints_suspended_in_git(entrypoint, gitops, flux_mutator, perform, phase_name):
    """Step 1: `spec.suspend: true` in the entry-point file, committed and pushed."""
    rhead, states = ensure_entrypoints_suspended(
        gitops,
        flux_mutator,
        perform,
        True,
        "flux-handover phase 2: suspend the entry-point Kustomizations during the handover",
    )
    state = next(s for s in states if s.name == entrypoint.name)
    assert state.suspended, (
        f"Kustomization {entrypoint.name}: spec.suspend is not true in {entrypoint.file} at "
        f"{gitops.remote}/{gitops.branch} ({rhead[:12]}). Set `suspend: true` under spec, commit "
        "and push before bootstrapping: an unsuspended entry point would apply (and prune) the "
        "whole tree at once."
    )
    assert gitops.entry_state(entrypoint).suspended, (
        f"{entrypoint.file} in the checkout {gitops.path} is not suspended although the remote "
        "is: pull the remote branch"
    )


@pytest.mark.step("bootstrap")
def test_bootstrap(kube, inventory, gitops, flux_mutator, perform, phase_name):
    """Step 2: install Flux and the flux-system GitRepository + Kustomization; flux-system Ready
    at the commit whose entry points are suspended."""
    done_already = bootstrap.already_bootstrapped(kube, inventory, gitops)
    if not done_already:
        try:
            plan = bootstrap.plan(inventory, gitops, kube)
        except HandoverError as e:
            pytest.fail(str(e), pytrace=False)
        skip_unless_perform(perform, plan.describe())
    # never bootstrap onto a revision whose entry points would apply the whole tree
    rhead, states = gitops.remote_states()
    unsuspended = [s for s in states if not s.suspended]
    assert not unsuspended, (
        "refusing to bootstrap: "
        + ", ".join(f"Kustomization {s.name} ({s.file})" for s in unsuspended)
        + f" not suspended at {gitops.remote}/{gitops.branch} {rhead[:12]}; Flux would apply and "
        "prune its whole tree on the first sync. Nothing was applied. Suspend it in Git (step 1) "
        "and run phase 2 again."
    )
    if not done_already:
        try:
            bootstrap.bootstrap(flux_mutator, kube, inventory, gitops)
        except HandoverError as e:
            pytest.fail(str(e), pytrace=False)
    st = bootstrap.wait_ready(kube, inventory)
    assert st.ready, (
        f"Flux bootstrapped on {kube.context} but not Ready after "
        f"{inventory.ready_timeout}s: " + "; ".join(st.problems())
    )
    problems = bootstrap.wait_controllers(kube, inventory)
    assert not problems, (
        f"Flux controllers on {kube.context} not Available after {inventory.ready_timeout}s "
        f"(flux check): " + "; ".join(problems) + ". Look at `kubectl -n "
        f"{inventory.cluster.flux_namespace} describe deployment` and the controllers' logs."
    )
    ks_rev = ((st.kustomization or {}).get("status") or {}).get("lastAppliedRevision", "")
    assert ks_rev.endswith(rhead), (
        f"Kustomization {inventory.cluster.flux_namespace}/flux-system applied {ks_rev!r}, not "
        f"the remote head {rhead[:12]} whose entry points are suspended"
    )


@pytest.mark.step("entrypoint_present_and_suspended")
def test_entrypoint_present_and_suspended(entrypoint, kube, inventory, phase_name):
    """Step 2 (assert): the entry-point Kustomization exists live and is suspended."""
    st = bootstrap.state(kube, inventory)
    if not st.crds_served:
        pytest.skip("Flux is not installed (step 2 did not run: dry run?)")
    live = st.entrypoints[entrypoint.name]
    ns = inventory.cluster.flux_namespace
    assert live is not None, (
        f"Kustomization {ns}/{entrypoint.name} does not exist after the bootstrap: flux-system "
        f"did not apply {entrypoint.file} (is it under gitops.clusterPath "
        f"{inventory.gitops.cluster_path}?)"
    )
    assert (live.get("spec") or {}).get("suspend") is True, (
        f"Kustomization {ns}/{entrypoint.name} is live and NOT suspended: Flux may be applying "
        f"and pruning {live['spec'].get('path')} now. Suspend it at once: "
        f"flux suspend kustomization {entrypoint.name} -n {ns}"
    )


@pytest.mark.step("nothing_moved")
def test_nothing_moved(kube, inventory, cluster_snapshots, phase_name):
    """Step 3: every covered object and pod is exactly as before the bootstrap (same uid, same
    labels/annotations/spec/data, same pods, no restart; a status write by an object's own
    controller is not a change)."""
    before = cluster_snapshots.load(BEFORE)
    if before is None:
        pytest.fail(
            f"no snapshot from before the bootstrap at {cluster_snapshots.path(BEFORE)} "
            "(step 0 did not run)",
            pytrace=False,
        )
    if not bootstrap.state(kube, inventory).crds_served:
        pytest.skip("Flux is not installed yet (dry run): nothing to compare")
    after = cluster_snapshots.take()
    cluster_snapshots.save("phase2-after-bootstrap", after)
    changes = cluster_snapshot.compare(before, after, resource_versions=True)
    assert not changes, (
        "the bootstrap moved objects it must not touch:\n"
        + cluster_snapshot.report(changes, before, after)
        + "\nFind who wrote them (kubectl get -o yaml ... managedFields) before "
        "going on to phase 3."
    )


@pytest.mark.step("diff")
def test_diff(entrypoint, kube, inventory, gitops, flux_journal, record_property, phase_name):
    """Step 4: what resuming this entry point would do, as `flux diff kustomization`: any deletion
    fails; every modification is listed per object."""
    from handover.sources.gitops import find_kustomization

    ks = find_kustomization(gitops.text(entrypoint), entrypoint.name, entrypoint.file)
    ks.setdefault("metadata", {}).setdefault("namespace", inventory.cluster.flux_namespace)
    live = (
        kube.get(flux.KUSTOMIZE_API, "Kustomization", entrypoint.name, ks["metadata"]["namespace"])
        if kube.has_resource(flux.KUSTOMIZE_API, "Kustomization")
        else None
    )
    try:
        d = flux_diff.diff_kustomization(kube, gitops.path, ks, live)
    except HandoverError as e:
        pytest.fail(str(e), pytrace=False)
    out = flux_journal.path.parent / f"phase2-diff-{entrypoint.name}.json"
    # values by path + hash (flux_diff.redacted); the file 0600 in a 0700 folder all the same
    redact.write_private(out, json.dumps(d.to_dict(), indent=1, default=str))
    record_property("diff_counts", json.dumps(d.counts(), sort_keys=True))
    for o in d.objects:
        if o.action in (flux_diff.MODIFIED, flux_diff.DELETED, flux_diff.ERROR):
            record_property(
                f"{o.action}: {o.subject}", "; ".join(c.arrow() for c in o.changes) or o.note
            )
    print(d.report())
    problems = d.deleted + d.by_action(flux_diff.ERROR)
    assert not problems, (
        f"resuming Kustomization {entrypoint.name} would delete or fail on live objects:\n"
        + "\n".join(f"  {o}" for o in problems)
        + "\nAn object Git dropped is pruned when the entry point resumes (prune: true): put it "
        "back in Git, or annotate it kustomize.toolkit.fluxcd.io/prune: disabled, or remove it "
        f"from the live inventory on purpose. Full diff: {out}"
    )
