"""flux-handover: the domain library (importable without pytest).

A map, one line a package: what it owns, and which phases use it (1 gate, 2 bootstrap,
3 per-component handover, 4 resume, A abort, C capture/replay).

    core/       inventory (+ inventory_init), kube (read-only client), mutation (the one write   all
                path: --perform, context guard, journal first), journal, findings, errors,
                tools (kubectl/helm), audit, redact, progress, wait (the one deadline loop),
                objects (the one object identity)
    sources/    the GitOps repo and chart sources, read: kustomize builds, entry_paths,          1 2 4
                gitops (read + edit entry points), helm_storage, chart_index
    flux/       how Flux behaves: rules (names, labels, conditions), schema (+ schema_check),    1-4 A
                diff (flux diff kustomization), current (Flux 2.5-2.9, Helm 4), render (the
                adoption upgrade, predicted), bootstrap, takeover
    gate/       phase 1's numbered checks: dryrun, ownership, prerequisites, helmrelease_refs,   1
                git_preflight, migration_state, optouts (--skip-check)
    gate/hazards/  per-component hazards: registry (CHECKS) + one module a hazard            1 3
    chain/      phase 3's chain: preconditions, backup, probe, adopted, rollback; abort walks    3 A
                it back
    snapshot/   what must not change: component (pods, claims, release) and cluster            2 3 4
    report/     the migration report: migration (data + Markdown), html, estimates            1-4 A
    tree_diff   the one tree diff (value paths, lists keyed as the API server merges them)    1-4
    capture/    read a live cluster into a bundle; replay a bundle into the rehearsal           C
    rehearsal/  the rehearsal cluster: kube-apiserver, node agent, CRD adapter, chart repo,     tests
                git remote, Flux stand-ins, seed, fidelity
    cli.py      the ``handover`` command

Data flows one way: suites -> plugins/fixtures -> handover -> Kubernetes/git/helm. Nothing here
imports pytest; only rehearsal/, capture/ and cli.py import the rehearsal.
"""
