"""Hazard: a misspelt or unknown field in a Flux object (spec.chart.spec.vesion) passes
kustomize, kubectl and the v1.20 API server (which prunes it silently). Every HelmRelease,
Kustomization, HelmRepository and GitRepository in the build is checked against the Flux API
schema; ids are the objects."""

import yaml

from fixtures.gitops import discover
from fixtures.hazards import assert_no_hazards
from handover.flux import schema as flux_schema
from handover.sources import kustomize
from plugins.safety import load_inventory


def _files_objects(inv) -> list[dict]:
    """The entry-point files and the YAML files of the cluster path (Flux applies them even
    without a kustomization.yaml: kustomize-controller generates one)."""
    repo = inv.gitops.path
    files = [repo / e.file for e in inv.gitops.entrypoints]
    if inv.gitops.cluster_path and (repo / inv.gitops.cluster_path).is_dir():
        files += sorted((repo / inv.gitops.cluster_path).glob("*.y*ml"))
    out = []
    for f in dict.fromkeys(files):
        try:
            out += [d for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict)]
        except (OSError, yaml.YAMLError):
            continue  # check 1 reports unreadable files
    return out


def _flux_objects(config) -> list[dict]:
    inv = load_inventory(config)
    seen: dict[str, dict] = {}
    for o in flux_schema.flux_objects(_files_objects(inv)):
        seen.setdefault(kustomize.object_id(o), o)
    for ep in discover(config)[0]:
        try:
            objs = kustomize.build(inv.gitops.path / ep.path)
        except kustomize.KustomizeError:
            continue  # check 1 (test_kustomize_build) reports it
        for o in flux_schema.flux_objects(objs):
            seen.setdefault(kustomize.object_id(o), o)
    return list(seen.values())


def pytest_generate_tests(metafunc):
    if "flux_object" in metafunc.fixturenames:
        objs = _flux_objects(metafunc.config)
        metafunc.parametrize("flux_object", objs, ids=[kustomize.object_id(o) for o in objs])


def test_flux_schema(flux_object):
    assert_no_hazards(flux_schema.check_object(flux_object))
