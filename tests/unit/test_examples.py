"""examples/homelab: the stand-in charts, the GitOps tree and the inventory agree with each other
and with the seed (real helm, real kustomize; no cluster)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from handover.flux import rules as flux
from handover.flux import schema as flux_schema
from handover.sources import kustomize
from handover.core import tools
from handover.core.inventory import load
from handover.rehearsal import chart_repo, git_remote
from handover.rehearsal.seed import SeedRelease, load_seed, seed_file, seed_release

HOMELAB = Path(__file__).resolve().parents[2] / "examples" / "homelab"
CHARTS = HOMELAB / "charts"
GITOPS = HOMELAB / "gitops"
INV = load(HOMELAB / "migration.yaml")
SEED = HOMELAB / "seed.yaml"
SEED_RELEASES = load_seed(SEED)
HELM_COMPONENTS = [c for c in INV.components if c.type == "helm"]

WORKLOADS = [(c, w) for c in INV.components for w in c.workloads]

# The real charts' names and versions (the stand-ins must carry them).
REAL_CHARTS = {"loki": "6.21.0", "grafana": "10.2.0", "tempo": "1.24.1", "alloy": "1.4.0",
               "gateway-helm": "v1.4.6"}


def helm(*args: str, check: bool = True) -> tools.Result:
    return tools.run([str(tools.helm()), *args], check=check)


def entry_paths() -> list[str]:
    paths = []
    for ep in INV.gitops.entrypoints:
        doc = yaml.safe_load((GITOPS / ep.file).read_text())
        paths.append(doc["spec"]["path"].removeprefix("./"))
    return paths


def selector_dict(selector: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in selector.split(","))


def render(release: SeedRelease) -> list[dict]:
    """`helm template` of a seed release with its values (offline: lookup finds nothing)."""
    argv = ["template", release.name, str(CHARTS / release.chart), "--namespace",
            release.namespace, "-f", "-"]
    res = tools.run([str(tools.helm()), *argv], input=json.dumps(release.config), check=True)
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def find(objs: list[dict], kind: str, name: str) -> dict | None:
    return next((o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name), None)


def helm_release_of(component) -> dict:
    objs = kustomize.build(GITOPS / component.path)
    hr = kustomize.find(objs, "HelmRelease", component.helm_release.name,
                        component.helm_release.namespace)
    assert hr is not None, (f"{component.path}: no HelmRelease {component.helm_release.namespace}/"
                            f"{component.helm_release.name} (inventory helmRelease)")
    return hr


# -- charts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("chart", sorted(REAL_CHARTS))
def test_chart_lints_and_has_the_real_name_and_version(chart):
    res = helm("lint", "--strict", str(CHARTS / chart), check=False)
    assert res.ok, f"helm lint {chart}:\n{res.stdout}\n{res.stderr}"
    meta = yaml.safe_load((CHARTS / chart / "Chart.yaml").read_text())
    assert (meta["name"], meta["version"]) == (chart, REAL_CHARTS[chart])


def test_every_chart_is_one_the_seed_installs():
    assert sorted(p.parent.name for p in CHARTS.glob("*/Chart.yaml")) == sorted(REAL_CHARTS)
    assert {(r.chart, r.version) for r in SEED_RELEASES} == set(REAL_CHARTS.items())


def test_grafana_checksums_its_lookup_kept_secret_as_upstream():
    """As the upstream grafana chart: the password is not in values, kept through lookup, and
    the rendered Secret is checksummed into the pod template. Offline (no cluster) lookup finds
    nothing: each render makes a new password, and the pod templates of two renders differ at
    checksum/secret only (the non-determinism the gate names)."""
    values = yaml.safe_load((CHARTS / "grafana" / "values.yaml").read_text())
    assert values["adminPassword"] == ""
    rel = seed_release("grafana", "logging", SEED)
    first, second = render(rel), render(rel)
    pw1 = find(first, "Secret", "grafana")["data"]["admin-password"]
    pw2 = find(second, "Secret", "grafana")["data"]["admin-password"]
    assert pw1 and pw2 and pw1 != pw2
    d1, d2 = find(first, "Deployment", "grafana"), find(second, "Deployment", "grafana")
    a1 = d1["spec"]["template"]["metadata"].pop("annotations")
    a2 = d2["spec"]["template"]["metadata"].pop("annotations")
    assert d1 == d2
    assert a1["checksum/config"] == a2["checksum/config"]
    assert a1["checksum/secret"] != a2["checksum/secret"]
    assert "lookup" in (CHARTS / "grafana" / "templates" / "_helpers.tpl").read_text()
    # the seed installed it, then upgraded it once: the adoption renders revision 2's checksum
    assert rel.earlier == ({"replicas": 1},) and rel.config["grafana.ini"]


def test_gateway_helm_ships_one_crd_in_crds_dir():
    crds = list((CHARTS / "gateway-helm" / "crds").glob("*.yaml"))
    assert len(crds) == 1
    crd = yaml.safe_load(crds[0].read_text())
    assert crd["kind"] == "CustomResourceDefinition"


@pytest.mark.parametrize("comp,workload", WORKLOADS,
                         ids=[f"{c.name}-{w.name}" for c, w in WORKLOADS])
def test_workload_selector_and_ports_match_inventory(comp, workload):
    if comp.type == "helm":
        objs = render(seed_release(comp.release.name, comp.release.namespace, SEED))
    else:
        objs = kustomize.build(GITOPS / comp.path)
    obj = find(objs, workload.kind, workload.name)
    assert obj is not None, f"{comp.name}: no {workload.kind} {workload.name} rendered"
    assert obj["metadata"].get("namespace", workload.namespace) == workload.namespace
    sel = selector_dict(workload.selector)
    pod_labels = obj["spec"]["template"]["metadata"]["labels"]
    assert sel.items() <= pod_labels.items(), (
        f"{workload.kind} {workload.name}: inventory selector {sel} does not select its pods "
        f"{pod_labels}")
    assert obj["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = {p["containerPort"] for c in obj["spec"]["template"]["spec"]["containers"]
             for p in c.get("ports", [])}
    names = {p["name"]: p["containerPort"] for c in obj["spec"]["template"]["spec"]["containers"]
             for p in c.get("ports", []) if "name" in p}
    for hc in comp.health:
        svc = find(objs, "Service", hc.service)
        assert svc is not None, f"{comp.name}: health service {hc.service} not rendered"
        assert svc["spec"]["selector"].items() <= pod_labels.items()
        port = next((p for p in svc["spec"]["ports"] if p["port"] == hc.port), None)
        assert port is not None, f"Service {hc.service} has no port {hc.port}"
        target = port.get("targetPort", port["port"])
        target = names.get(target, target)
        assert target in ports, (f"Service {hc.service}:{hc.port} targets {target}, the pod's "
                                 f"container ports are {sorted(ports)}")


# -- GitOps tree -----------------------------------------------------------------------------------
BUILD_PATHS = sorted({c.path for c in INV.components} | set(entry_paths())
                     | {"infrastructure/sources", "infrastructure/controllers",
                        "infrastructure/logging"})


@pytest.mark.parametrize("path", BUILD_PATHS)
def test_every_gitops_path_builds_alone(path):
    objs = kustomize.build(GITOPS / path)
    assert objs, f"{path} builds to nothing"
    for o in objs:
        if o["apiVersion"].split("/")[0].endswith("fluxcd.io"):
            assert flux_schema.validate(o) == [], kustomize.object_id(o)
    assert not [o for o in objs if o["kind"] == "Secret"], f"{path}: a Secret in Git"


def test_entry_paths_cover_every_component_once():
    built = {kustomize.object_id(o) for p in entry_paths() for o in kustomize.build(GITOPS / p)}
    for c in INV.components:
        for o in kustomize.build(GITOPS / c.path):
            assert kustomize.object_id(o) in built, f"{c.name}: {kustomize.object_id(o)} " \
                                                    "is not reached from an entry point"


def test_entry_point_kustomizations():
    docs = {}
    for ep in INV.gitops.entrypoints:
        doc = yaml.safe_load((GITOPS / ep.file).read_text())
        assert flux_schema.validate(doc) == []
        assert doc["apiVersion"] == flux.KUSTOMIZE_API and doc["kind"] == "Kustomization"
        assert doc["metadata"] == {"name": ep.name, "namespace": INV.cluster.flux_namespace}
        spec = doc["spec"]
        assert spec["prune"] is True and spec["wait"] is True
        assert spec["sourceRef"] == {"kind": "GitRepository", "name": "flux-system"}
        docs[ep.name] = doc
    assert docs["workloads"]["spec"]["dependsOn"] == [{"name": "infrastructure"}]


def test_helm_repositories_are_the_public_ones():
    objs = kustomize.build(GITOPS / INV.gitops.sources_path)
    repos = {o["metadata"]["name"]: o["spec"] for o in objs if o["kind"] == "HelmRepository"}
    assert repos["grafana"]["url"] == "https://grafana.github.io/helm-charts"
    assert "type" not in repos["grafana"]
    assert repos["envoy-gateway"] == {"type": "oci", "interval": "1h",
                                      "url": "oci://docker.io/envoyproxy"}
    assert {o["metadata"]["namespace"] for o in objs} == {"flux-system"}


@pytest.mark.parametrize("comp", HELM_COMPONENTS, ids=lambda c: c.name)
def test_helmrelease_adopts_the_cli_release(comp):
    hr = helm_release_of(comp)
    release = seed_release(comp.release.name, comp.release.namespace, SEED)
    # The TRAP: the effective name/storage namespace must be the CLI release's.
    assert flux.helm_release_name(hr) == comp.release.name
    assert flux.storage_namespace(hr) == comp.release.namespace
    assert flux.target_namespace(hr) == comp.release.namespace
    chart = hr["spec"]["chart"]["spec"]
    assert (chart["chart"], chart["version"]) == (release.chart, release.version)
    src = chart["sourceRef"]
    assert src["kind"] == "HelmRepository" and src["namespace"] == INV.cluster.flux_namespace
    sources = kustomize.build(GITOPS / INV.gitops.sources_path)
    assert kustomize.find(sources, "HelmRepository", src["name"], src["namespace"]) is not None


@pytest.fixture(scope="module")
def values_probe(tmp_path_factory) -> Path:
    """A chart with no defaults that renders .Values: what helm makes of --set arguments."""
    d = tmp_path_factory.mktemp("probe") / "probe"
    (d / "templates").mkdir(parents=True)
    (d / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (d / "values.yaml").write_text("")
    (d / "templates" / "values.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\n"
        "data:\n  values: {{ toJson .Values | quote }}\n")
    return d


@pytest.mark.parametrize("comp", HELM_COMPONENTS, ids=lambda c: c.name)
def test_helmrelease_values_equal_the_seeds_values(comp, values_probe):
    """What helm makes of the seed's values (rendered through a probe chart) is the HelmRelease's
    spec.values: the adoption upgrade changes none."""
    hr = helm_release_of(comp)
    release = seed_release(comp.release.name, comp.release.namespace, SEED)
    res = tools.run([str(tools.helm()), "template", "probe", str(values_probe), "-f", "-"],
                    input=json.dumps(release.config), check=True)
    doc = yaml.safe_load(res.stdout)
    cli_values = json.loads(doc["data"]["values"])
    assert hr["spec"].get("values", {}) == cli_values == release.config, (
        f"HelmRelease {comp.helm_release.namespace}/{comp.helm_release.name} "
        f"spec.values {hr['spec'].get('values')} != values of the seed's `helm install -f` "
        f"{cli_values}: the adoption upgrade would change them")


@pytest.mark.parametrize("comp", [c for c in INV.components if c.pvs],
                         ids=lambda c: c.name)
def test_pvs_are_retained_hostpaths_prebound_to_the_claims_that_use_them(comp):
    pvs = {o["metadata"]["name"]: o for o in kustomize.build(GITOPS / "infrastructure/storage")}
    for name in comp.pvs:
        pv = pvs[name]
        spec = pv["spec"]
        assert spec["persistentVolumeReclaimPolicy"] == "Retain"
        assert spec["hostPath"]["path"].startswith("/mnt/k8s-storage/")
        ref = spec["claimRef"]
        if comp.type == "storage":
            continue
        if comp.type == "helm":
            objs = render(seed_release(comp.release.name, comp.release.namespace, SEED))
            sts = next(o for o in objs if o["kind"] == "StatefulSet")
            claims = [f"{t['metadata']['name']}-{sts['metadata']['name']}-0"
                      for t in sts["spec"]["volumeClaimTemplates"]]
            cls = sts["spec"]["volumeClaimTemplates"][0]["spec"].get("storageClassName")
        else:
            objs = kustomize.build(GITOPS / comp.path)
            pvc = next(o for o in objs if o["kind"] == "PersistentVolumeClaim")
            claims = [pvc["metadata"]["name"]]
            cls = pvc["spec"].get("storageClassName")
            assert pvc["spec"]["volumeName"] == name
        assert ref["namespace"] in comp.namespaces and ref["name"] in claims, (
            f"PV {name} is pre-bound to {ref['namespace']}/{ref['name']}, the comp's "
            f"claims are {claims}")
        assert cls == spec.get("storageClassName", "") == "", "class must match the PV's (\"\")"


def test_storage_component_names_every_pv():
    storage = next(c for c in INV.components if c.type == "storage")
    built = sorted(o["metadata"]["name"] for o in kustomize.build(GITOPS / storage.path))
    assert built == sorted(storage.pvs)


# -- chart repo packaging and git remote (offline parts) -------------------------------------------
def test_package_builds_an_index_of_every_chart(tmp_path):
    tgzs = chart_repo.package(CHARTS, tmp_path / "repo", chart_repo.helm_env(tmp_path))
    assert sorted(p.name for p in tgzs) == sorted(f"{n}-{v}.tgz" for n, v in REAL_CHARTS.items())
    idx = chart_repo.index(tmp_path / "repo")
    assert {n: e[0]["version"] for n, e in idx["entries"].items()} == REAL_CHARTS
    assert all(e[0]["urls"] == [f"{n}-{e[0]['version']}.tgz"] for n, e in idx["entries"].items())


def test_sources_digest_changes_with_a_chart_file(tmp_path):
    shutil.copytree(CHARTS, tmp_path / "charts")
    before = chart_repo.sources_digest(tmp_path / "charts")
    assert chart_repo.sources_digest(tmp_path / "charts") == before
    (tmp_path / "charts" / "loki" / "values.yaml").write_text("# changed\n")
    assert chart_repo.sources_digest(tmp_path / "charts") != before


def test_git_remote_pushes_tree_then_rehearsal_commit_and_is_idempotent(tmp_path):
    r = git_remote.ensure(tmp_path, GITOPS, "http://127.0.0.1:1")
    clone = Path(r.clone)
    log = subprocess.run(["git", "-C", r.bare, "log", "--format=%an <%ae>|%s", "main"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(log) == 2
    assert all(line.startswith(f"{git_remote.AUTHOR_NAME} <{git_remote.AUTHOR_EMAIL}>|")
               for line in log)
    assert set(git_remote.helm_repository_urls(clone).values()) == {"http://127.0.0.1:1"}
    src = (clone / "infrastructure/sources/envoy-gateway.yaml").read_text()
    assert "type:" not in src
    assert (clone / "clusters/homelab/workloads.yaml").read_text() == \
        (GITOPS / "clusters/homelab/workloads.yaml").read_text()
    # the same again: no new commit; a moved chart repo: one commit
    git_remote.ensure(tmp_path, GITOPS, "http://127.0.0.1:1")
    git_remote.ensure(tmp_path, GITOPS, "http://127.0.0.1:2")
    count = subprocess.run(["git", "-C", r.bare, "rev-list", "--count", "main"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert count == "3"
    assert git_remote.load(tmp_path) == r


def test_point_helm_repositories_keeps_comments(tmp_path):
    f = tmp_path / "repo.yaml"
    f.write_text("# the grafana charts\napiVersion: source.toolkit.fluxcd.io/v1\n"
                 "kind: HelmRepository\nmetadata:\n  name: g\nspec:\n  type: oci  # oci!\n"
                 "  url: oci://x  # upstream\n")
    assert git_remote.point_helm_repositories(tmp_path, "http://127.0.0.1:9") == [f]
    text = f.read_text()
    assert "# the grafana charts" in text and "type" not in text
    assert yaml.safe_load(text)["spec"] == {"url": "http://127.0.0.1:9"}
    assert git_remote.point_helm_repositories(tmp_path, "http://127.0.0.1:9") == []


def test_seed_refuses_a_release_it_does_not_know():
    from handover.core.errors import HandoverError
    with pytest.raises(HandoverError, match=r"logging/promtail.*add it to the seed file .*seed.yaml"):
        seed_release("promtail", "logging", SEED)


def test_seed_file_is_beside_the_inventory_or_its_original(tmp_path):
    from handover.core.errors import HandoverError
    from handover.rehearsal.seed import HEADER_MARK
    assert seed_file(HOMELAB / "migration.yaml") == SEED
    copy = tmp_path / "migration.yaml"
    copy.write_text(f"{HEADER_MARK} {HOMELAB / 'migration.yaml'} written by the seed:\n# x\n")
    assert seed_file(copy) == SEED
    with pytest.raises(HandoverError, match=r"no seed file .*/nowhere/seed.yaml.*--from-capture"):
        load_seed(tmp_path / "nowhere" / "seed.yaml")
    bad = tmp_path / "seed.yaml"
    bad.write_text("apiVersion: flux-handover/v1\nkind: Seed\nreleases:\n  - {name: a}\n")
    with pytest.raises(HandoverError, match=r"releases\[0\] lacks"):
        load_seed(bad)


def test_seed_py_names_no_release_of_the_homelab():
    """The example homelab is described by data (seed.yaml): no release of it in the code."""
    code = (Path(__file__).resolve().parents[2] / "handover/rehearsal/seed.py").read_text()
    for r in SEED_RELEASES:
        assert f'"{r.chart}"' not in code and f'"{r.version}"' not in code, r


def test_seed_py_names_no_component_of_the_homelab():
    """Issue 10 item 4: no homelab-specific rule in the seed; the example is its seed file."""
    root = Path(__file__).resolve().parents[2] / "handover"
    for f in (root / "rehearsal/seed.py", root / "rehearsal/node_disk.py"):
        code = f.read_text().lower()
        for word in ("envoy", "loki", "grafana", "alloy", "tempo", "llama", "storage",
                     "log-analyzer", "logging"):
            assert word not in code, (f.name, word)


def test_example_seed_is_read_by_the_bundle_loader_as_unstored_releases():
    from handover.capture import bundle
    b = bundle.read(SEED)  # a file: the seed subset of the bundle format
    assert b.is_seed and b.context is None
    assert [(r.key, r.latest.revision, r.latest.status, r.latest.stored) for r in b.releases] == \
        [(f"{r.namespace}/{r.name}", 1 + len(r.earlier), "deployed", False)
         for r in SEED_RELEASES]
    # earlier revisions (seed key earlierRevisions) come first, superseded, not stored either
    assert all(v.status == "superseded" and not v.stored
               for r in b.releases for v in r.revisions[:-1])
    assert Path(b.index["charts"]) == CHARTS
    # its kubectl-applied objects are those of the inventory's storage and manifests components,
    # storage first (what a person applied before installing the charts)
    want = [o for c in INV.components if c.type == "storage"
            for o in kustomize.build(GITOPS / c.path)]
    want += [o for c in INV.components if c.type == "manifests"
             for o in kustomize.build(GITOPS / c.path)]
    assert [e["lastApplied"] for e in b.applied] == want
    assert all(e["id"] == kustomize.object_id(e["lastApplied"]) for e in b.applied)


@pytest.mark.parametrize("case,text,match", [
    ("kind", "kind: Other\nreleases: []\n", r"not a seed file"),
    ("applied-missing", "kind: Seed\napplied: [nowhere]\nreleases: []\n",
     r"applied\[0\] nowhere: no such directory"),
    ("twice", "kind: Seed\nreleases:\n"
              "  - {name: a, namespace: n, chart: {metadata: {name: c, version: 1.0.0}}}\n"
              "  - {name: a, namespace: n, chart: {metadata: {name: c, version: 1.0.0}}}\n",
     r"releases\[1\]: release n/a twice"),
    ("revision", "kind: Seed\nreleases:\n  - {name: a, namespace: n, version: x, "
                 "chart: {metadata: {name: c, version: 1.0.0}}}\n", r"releases\[0\] lacks"),
    ("chart", "kind: Seed\nreleases:\n  - {name: a, namespace: n, chart: {metadata: "
              "{name: nochart, version: 1.0.0}}}\n",
     r"release n/a .* asks for chart nochart 1.0.0, which is not among the chart sources"),
])
def test_bad_seed_file_is_refused_naming_the_entry(tmp_path, case, text, match):
    from handover.capture import bundle
    f = tmp_path / "seed.yaml"
    f.write_text(text)
    with pytest.raises(bundle.BundleError, match=match):
        bundle.read(f)


def test_seed_release_that_helm_install_cannot_make_is_refused_before_any_write(tmp_path):
    from handover.capture import replay
    (tmp_path / "charts" / "c").mkdir(parents=True)
    (tmp_path / "charts" / "c" / "Chart.yaml").write_text("name: c\nversion: 1.0.0\n")
    f = tmp_path / "seed.yaml"
    f.write_text("kind: Seed\nreleases:\n  - {name: a, namespace: n, version: 3, info: "
                 "{status: superseded}, chart: {metadata: {name: c, version: 1.0.0}}}\n")
    with pytest.raises(replay.ReplayError, match=r"release n/a .*revision 1, status deployed "
                       r"\(it says revision 3, status 'superseded'\)"):
        replay.validate(f)
    f.write_text(f.read_text().replace("superseded", "deployed")
                 .replace("version: 3", "version: 1"))
    assert replay.validate(f).releases[0].latest.revision == 1  # what helm install makes


def test_the_chart_repository_serves_the_seed_files_charts(tmp_path):
    from handover.rehearsal.seed import chart_sources
    assert chart_sources(HOMELAB / "migration.yaml") == CHARTS
    assert chart_sources(tmp_path / "migration.yaml") is None  # no seed file: the default
    (tmp_path / "seed.yaml").write_text("kind: Seed\ncharts: ../mine\nreleases: []\n")
    assert chart_sources(tmp_path / "migration.yaml") == (tmp_path.parent / "mine").resolve()

def test_seed_earlier_revisions_are_read_and_malformed_ones_named(tmp_path):
    from handover.core.errors import HandoverError
    f = tmp_path / "seed.yaml"
    (tmp_path / "charts" / "c").mkdir(parents=True)  # the chart sources serve the seed's chart
    (tmp_path / "charts" / "c" / "Chart.yaml").write_text("name: c\nversion: \"1\"\n")
    f.write_text(yaml.safe_dump({"kind": "Seed", "releases": [
        {"name": "g", "namespace": "n", "chart": {"metadata": {"name": "c", "version": "1"}},
         "earlierRevisions": [{"config": {"a": 1}}, {}], "config": {"a": 2}}]}))
    [r] = load_seed(f)
    assert r.earlier == ({"a": 1}, {}) and r.config == {"a": 2}
    f.write_text(f.read_text().replace("- config:\n      a: 1", "- just-a-string"))
    with pytest.raises(HandoverError, match=r"releases\[0\].*earlierRevisions is a list"):
        load_seed(f)
