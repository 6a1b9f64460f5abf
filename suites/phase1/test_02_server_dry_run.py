"""Check 2: server-side dry-run of every built object against the live cluster, in dependency
order (CRDs, Namespaces, ...). Per object: created / unchanged / configured / rejected (the API's
message) / not-served (Flux kinds before bootstrap: checked offline against the Flux schema).
Nothing is persisted: every request carries dryRun=All.
A read-only identity (every request forbidden) FAILS naming the opt-out ``server-dry-run``
(plugins.gate); with it, the check is reported as skipped by it.
"""

from handover.core.findings import report
from handover.gate import dryrun
from plugins.gate import not_checked


def test_server_dry_run(applied_path, entry_builds, kube, pytestconfig):
    objects = entry_builds.objects(applied_path.path)
    results = dryrun.DryRunner(kube).run(objects)
    print(f"server-side dry-run of {applied_path.path} ({applied_path.applied_by}):")
    print(dryrun.table(results))
    forbidden = [r for r in results if r.result == "forbidden"]
    if forbidden and all(r.result in ("forbidden", "not-served") for r in results):
        not_checked(
            pytestconfig,
            "server-dry-run",
            f"{applied_path.path}: the identity in use may not create/patch "
            f"({forbidden[0].detail}): a server-side dry-run is authorised like a real "
            "write, so this check needs an identity with create/patch rights (a dry-run "
            "persists nothing)",
        )
    found = dryrun.findings(results, applied_path.path)
    assert not found, report(found) + "\n\nall results:\n" + dryrun.table(results)
