"""flux-handover: the domain library (importable without pytest).

A map, one line a package: what it owns, and which phases use it (1 gate, 2 bootstrap,
3 per-component handover, 4 resume, A abort, C capture/replay).

    core/        inventory (+ inventory_init), kube (read-only client), mutation (the one     all
                 write path: --perform, context guard, journal first), journal, findings,
                 errors, tools (kubectl/helm), audit, redact, progress, wait (the one deadline
                 loop), objects (the one object identity: group_of, object_id)
    sources/     the GitOps repo and chart sources, read: kustomize builds, entry_paths,      1 2 4
                 gitops (read + edit entry points), helm_storage, chart_index
    flux/        how Flux behaves: rules (names, labels, conditions), schema, ssa (dry-run    1-4 A
                 apply + Flux's normalisation, once), diff (flux diff kustomization), current
                 (Flux 2.5-2.9, Helm 4), render (the adoption upgrade, predicted), postrender,
                 bootstrap, takeover, resume
    gate/        phase 1's numbered checks: dryrun, ownership, prerequisites,                 1
                 helmrelease_refs, git_preflight, migration_state, optouts (--skip-check)
    gate/hazards/ per-component hazards: registry (CHECKS) + one module a hazard            1 3
    chain/       phase 3's chain: preconditions, backup, probe, adopted, rollback; abort      3 A
                 walks it back
    snapshot/    what must not change: pods (the one PodState), component, cluster          2 3 4
    report/      the migration report: migration (data + Markdown), html, estimates         1-4 A
    runbook      the chains of phases 2, 3, 4 and the abort, declared once as data (step,    2-4 A
                 mutates?, undo, needs); plugins/runbook.py derives order, blocking, journal,
                 rollback and resume from it
    target       Live | Rehearsal, chosen once: the only module that tells them apart        all
    tree_diff    the one tree diff and its Difference (lists keyed as the API server merges)  1-4
    capture/     read a live cluster into a bundle; replay a bundle or a seed file            C
    rehearsal/   the rehearsal cluster: kube-apiserver, node agent, CRD adapter, chart repo,  tests
                 git remote, Flux stand-ins, seed, fidelity
    cli          the ``handover`` command

Data flows one way: suites -> plugins/fixtures -> handover -> Kubernetes/git/helm. Nothing here
imports pytest; only rehearsal/, target, capture/ and cli import the rehearsal
(tests/unit/test_imports.py keeps it so).
"""
