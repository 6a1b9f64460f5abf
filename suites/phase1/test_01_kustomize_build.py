"""Check 1: every entry path builds with kustomize v5 (kubectl kustomize), as Flux will build it.

Entry paths: the cluster path, each path an entry-point (or nested) Flux Kustomization points at,
and each component's path (what its temporary Kustomization applies). A failure shows kustomize's
own error, which names the file.
"""

import warnings

from fixtures.hazards import HazardWarning
from handover.core.findings import Finding, report
from handover.sources import entry_paths


def test_entry_points_readable(inventory, entry_path_problems):
    """The inventory's entry-point files exist and hold the named Kustomizations with a path."""
    assert not entry_path_problems, "\n".join(
        f"{p}\n    fix: correct gitops.entrypoints in {inventory.source}, or the file in Git"
        for p in entry_path_problems
    )


def test_kustomize_build(entry_path, entry_builds, gitops_repo):
    r = entry_builds.result(entry_path.path)
    if r.error is not None:
        f = Finding(
            "kustomize-build",
            f"path {entry_path.path} (applied by {entry_path.applied_by})",
            f"kustomize build failed:\n{r.error}",
            f"fix the file kustomize names under {gitops_repo / entry_path.path} "
            f"(reproduce: kubectl kustomize {gitops_repo / entry_path.path})",
        )
        raise AssertionError(report([f]))
    assert r.objects, (
        f"path {entry_path.path} builds to no objects: Flux would apply nothing "
        "(an empty kustomization.yaml?)"
    )
    print(f"{entry_path.path}: {len(r.objects)} object(s)")
    for n in r.notes:
        print(f"  {n}")
        if n.startswith(entry_paths.NOT_CHECKED):  # named, never silently passed
            warnings.warn(HazardWarning(f"path {entry_path.path}: {n}"), stacklevel=2)
