"""The seeded homelab on the rehearsal cluster is what the seed describes: Helm CLI releases (real
helm, real release Secrets), kubectl-applied YAML with its last-applied annotation, Retain PVs bound
to their claims, every pod Running and Ready and answering through its Service, and nothing changes
on a second ``up``."""
from __future__ import annotations

import base64
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from handover import target as targets
from handover.flux import rules as flux
from handover.sources import helm_storage
from handover.sources import kustomize
from handover.core import tools
from handover.core.inventory import load
from handover.core.kube import Kube
from handover.rehearsal import chart_repo, git_remote, stack
from handover.rehearsal.seed import load_seed, seed_file, seed_release

from tests.rehearsal.conftest import EXAMPLE_INVENTORY

pytestmark = pytest.mark.rehearsal

INV = load(EXAMPLE_INVENTORY)
SEED = seed_file(EXAMPLE_INVENTORY)
HELM = [c for c in INV.components if c.type == "helm"]
YAML = [c for c in INV.components if c.type in ("manifests", "storage")]
WORKLOADS = [w for c in INV.components for w in c.workloads]
HEALTH = [(c, h) for c in INV.components for h in c.health]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@pytest.fixture(scope="module")
def hl_kube(seeded_stack) -> Kube:
    return Kube(seeded_stack.cluster.kubeconfig, seeded_stack.cluster.context)


def kubectl(stack_, *args: str) -> tools.Result:
    c = stack_.cluster
    return tools.run([str(tools.kubectl()), "--kubeconfig", str(c.kubeconfig), "--context",
                      c.context, *args], check=True)


def pods_of(kube: Kube, w) -> list[dict]:
    return [p for p in kube.list("v1", "Pod", w.namespace, label_selector=w.selector)
            if not p["metadata"].get("deletionTimestamp")]


def snapshot(kube: Kube) -> dict:
    """Pod UIDs and restart counts of every inventory workload, and Helm release revisions."""
    pods = {f"{p['metadata']['namespace']}/{p['metadata']['name']}":
            (p["metadata"]["uid"],
             [cs["restartCount"] for cs in p["status"].get("containerStatuses", [])])
            for w in WORKLOADS for p in pods_of(kube, w)}
    releases = {r.key: r.revision for r in helm_storage.list_releases(kube)}
    return {"pods": pods, "releases": releases}


# -- Helm CLI releases ------------------------------------------------------------------------------
@pytest.mark.parametrize("comp", HELM, ids=lambda c: c.name)
def test_release_secret_deployed_with_chart_version_and_set_values(comp, hl_kube, seeded_stack):
    rel = seed_release(comp.release.name, comp.release.namespace, SEED)
    rec = helm_storage.latest(hl_kube, comp.release.name, comp.release.namespace)
    assert rec is not None, f"no Helm release {comp.release.namespace}/{comp.release.name}"
    # one revision per config: the install, then one upgrade per later config (seed.yaml
    # earlierRevisions)
    assert (rec.status, rec.revision) == ("deployed", 1 + len(rel.earlier))
    assert (rec.chart_name, rec.chart_version) == (rel.chart, rel.version)
    secret = hl_kube.get("v1", "Secret", helm_storage.secret_name(rec.name, rec.revision),
                         rec.storage_namespace)
    assert secret["type"] == helm_storage.SECRET_TYPE
    assert secret["metadata"]["labels"]["owner"] == "helm"
    assert secret["metadata"]["labels"]["status"] == "deployed"
    # The user values are what the HelmRelease in the rehearsal's GitOps clone says (adoption
    # keeps them) ...
    objs = kustomize.build(seeded_stack.gitops_clone / comp.path)
    hr = kustomize.find(objs, "HelmRelease", comp.helm_release.name, comp.helm_release.namespace)
    assert rec.config == hr["spec"]["values"]
    assert flux.helm_release_name(hr) == rec.name
    assert flux.storage_namespace(hr) == rec.storage_namespace
    # ... and the objects were made by Helm (no kubectl last-applied annotation).
    for w in comp.workloads:
        obj = hl_kube.get("apps/v1", w.kind, w.name, w.namespace)
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert obj["metadata"]["annotations"]["meta.helm.sh/release-name"] == rec.name
        assert LAST_APPLIED not in obj["metadata"].get("annotations", {})


def test_gateway_crd_installed_from_crds_dir(hl_kube):
    crd = hl_kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                   "envoyproxies.gateway.envoyproxy.io")
    assert crd is not None
    rec = helm_storage.latest(hl_kube, "eg", "envoy-gateway-system")
    assert "CustomResourceDefinition" not in rec.manifest  # crds/ are not part of the release


def test_grafana_admin_password_lives_only_in_the_cluster(hl_kube, seeded_stack):
    secret = hl_kube.get("v1", "Secret", "grafana", "logging")
    password = base64.b64decode(secret["data"]["admin-password"]).decode()
    assert len(password) == 40 and password.isalnum()
    rec = helm_storage.latest(hl_kube, "grafana", "logging")
    assert password not in json.dumps(rec.config)
    leaked = [str(f) for f in Path(seeded_stack.gitops_clone).rglob("*")
              if f.is_file() and ".git" not in f.parts
              and (password in f.read_text(errors="ignore")
                   or secret["data"]["admin-password"] in f.read_text(errors="ignore"))]
    assert not leaked, f"grafana admin password found in Git files {leaked}"  # never the value


def test_grafana_upgrade_keeps_password_and_pod_template(hl_kube, seeded_stack):
    """A same-values upgrade (what the Flux adoption does) renders the existing password
    (lookup) and the pod template the release has now: no rollout."""
    rel = seed_release("grafana", "logging", SEED)
    c = seeded_stack.cluster
    argv = [str(tools.helm()), "upgrade", rel.name, rel.chart, "--repo",
            seeded_stack.chart_repo_url, "--version", rel.version, "-n", rel.namespace,
            "--kubeconfig", str(c.kubeconfig), "--kube-context", c.context, "--dry-run=server",
            "-f", "-"]
    out = tools.run(argv, input=json.dumps(rel.config), env=chart_repo.helm_env(c.state_dir),
                    check=True).stdout
    manifest = out.split("MANIFEST:", 1)[1].split("NOTES:", 1)[0]
    rendered = [d for d in yaml.safe_load_all(manifest) if d]
    new_secret = next(d for d in rendered if d["kind"] == "Secret")
    live = hl_kube.get("v1", "Secret", "grafana", "logging")
    assert new_secret["data"]["admin-password"] == live["data"]["admin-password"]
    stored = [d for d in yaml.safe_load_all(helm_storage.latest(hl_kube, "grafana", "logging")
                                            .manifest) if d]
    dep_new = next(d for d in rendered if d["kind"] == "Deployment")
    dep_old = next(d for d in stored if d["kind"] == "Deployment")
    assert dep_new["spec"]["template"] == dep_old["spec"]["template"]
    # the seed installed grafana, then upgraded it once (seed.yaml earlierRevisions): revision
    # 2, and the dry run stored nothing
    assert helm_storage.latest(hl_kube, "grafana", "logging").revision == 2
    # that upgrade's template carries the checksum of the Secret with the stored password
    assert "checksum/secret" in dep_old["spec"]["template"]["metadata"]["annotations"]


# -- kubectl-applied YAML and storage ---------------------------------------------------------------
@pytest.mark.parametrize("comp", YAML, ids=lambda c: c.name)
def test_yaml_objects_carry_the_last_applied_annotation(comp, hl_kube):
    for obj in kustomize.build(INV.gitops.path / comp.path):
        meta = obj["metadata"]
        live = hl_kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        assert live is not None, f"{kustomize.object_id(obj)} was not applied"
        ann = (live["metadata"].get("annotations") or {}).get(LAST_APPLIED)
        assert ann, f"{kustomize.object_id(obj)}: no {LAST_APPLIED} (not client-side applied)"
        applied = json.loads(ann)
        assert (applied["kind"], applied["metadata"]["name"]) == (obj["kind"], meta["name"])
        assert applied.get("spec") == obj.get("spec")


@pytest.mark.parametrize("name", next(c for c in INV.components if c.type == "storage").pvs)
def test_pv_retained_and_bound_to_its_claim(name, hl_kube):
    pv = hl_kube.get("v1", "PersistentVolume", name)
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["status"]["phase"] == "Bound"
    ref = pv["spec"]["claimRef"]
    pvc = hl_kube.get("v1", "PersistentVolumeClaim", ref["name"], ref["namespace"])
    assert pvc["status"]["phase"] == "Bound" and pvc["spec"]["volumeName"] == name
    assert ref["uid"] == pvc["metadata"]["uid"]


# -- pods -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("w", WORKLOADS, ids=lambda w: w.name)
def test_workload_pods_running_and_ready(w, hl_kube):
    obj = hl_kube.get("apps/v1", w.kind, w.name, w.namespace)
    desired = (obj["status"]["desiredNumberScheduled"] if w.kind == "DaemonSet"
               else obj["spec"]["replicas"])
    pods = pods_of(hl_kube, w)
    assert desired >= 1 and len(pods) == desired, f"{w.kind} {w.name}: {len(pods)}/{desired} pods"
    for p in pods:
        st = p["status"]
        ready = {c["type"]: c["status"] for c in st["conditions"]}
        assert st["phase"] == "Running" and ready["Ready"] == "True", p["metadata"]["name"]
        assert all(cs["ready"] for cs in st["containerStatuses"])


@pytest.mark.parametrize("comp,hc", HEALTH, ids=[f"{c.name}-{h.service}" for c, h in HEALTH])
def test_health_check_answers_through_the_service(comp, hc, seeded_stack, hl_kube):
    out = kubectl(seeded_stack, "get", "--raw",
                  f"/api/v1/namespaces/{hc.namespace}/services/{hc.service}:{hc.port}"
                  f"/proxy{hc.path}").stdout
    answer = json.loads(out)
    uids = {p["metadata"]["uid"] for w in comp.workloads for p in pods_of(hl_kube, w)}
    assert answer["ready"] is True and answer["uid"] in uids


# -- the stack around the seed ----------------------------------------------------------------------
def test_chart_repo_serves_the_charts_and_gitops_points_at_it(seeded_stack):
    import urllib.request
    with urllib.request.urlopen(f"{seeded_stack.chart_repo_url}/index.yaml", timeout=5) as r:
        idx = yaml.safe_load(r.read())
    assert {n: e[0]["version"] for n, e in idx["entries"].items()} == {
        "alloy": "1.4.0", "gateway-helm": "v1.4.6", "grafana": "10.2.0", "loki": "6.21.0",
        "tempo": "1.24.1"}
    urls = git_remote.helm_repository_urls(seeded_stack.gitops_clone)
    assert urls and set(urls.values()) == {seeded_stack.chart_repo_url}
    remote = git_remote.load(seeded_stack.state_dir)
    assert seeded_stack.git_remote_url == remote.url
    head = tools.run(["git", "-C", remote.bare, "rev-parse", "main"], check=True).stdout
    clone_head = tools.run(["git", "-C", remote.clone, "rev-parse", "HEAD"], check=True).stdout
    assert head == clone_head


def test_rehearsal_inventory_points_at_the_state_dir(seeded_stack):
    inv = load(seeded_stack.inventory_path)
    state = seeded_stack.state_dir
    assert inv.cluster.context == seeded_stack.cluster.context == "flux-handover-rehearsal"
    assert isinstance(targets.of(inv), targets.Rehearsal) and \
        inv.cluster.rehearsal_state_dir == state
    assert inv.gitops.path == seeded_stack.gitops_clone
    assert inv.gitops.url == seeded_stack.git_remote_url
    assert inv.backups.is_relative_to(state)
    assert [asdict(c) for c in inv.components] == [asdict(c) for c in INV.components]
    assert inv.gitops.entrypoints == INV.gitops.entrypoints


def test_second_up_changes_nothing(seeded_stack, hl_kube):
    before = snapshot(hl_kube)
    again = stack.up(seeded_stack.state_dir, EXAMPLE_INVENTORY)
    res = again.seed_result
    assert res.installed == [] and res.applied == []
    assert len(res.deployed) == len(HELM)
    assert again.chart_repo_url == seeded_stack.chart_repo_url
    assert again.git_remote_url == seeded_stack.git_remote_url
    after = snapshot(hl_kube)
    assert after == before
    assert len(before["pods"]) == len(WORKLOADS)  # one pod each, on one node


# -- one seeding path: the seed file is replayed as a capture bundle --------------------------------
def test_from_capture_of_the_seed_file_seeds_the_same_cluster(seeded_stack, hl_kube, tmp_path):
    """`rehearsal up --from-capture examples/homelab/seed.yaml` (the replay module, as for any
    bundle) makes the same releases (chart, version, values, revision 1) and the same
    kubectl-applied objects as `rehearsal up --inventory` (stack.up), with no problem reported."""
    from handover.capture import replay
    from handover.rehearsal import stack as stack_mod
    state = tmp_path / "state"
    try:
        res = replay.up_from_capture(state, SEED, INV.gitops.path)
        assert res.report.problems == [], res.report.problems
        # in the seed file's order, each with real helm install
        assert res.report.installed == [f"{r.namespace}/{r.name}" for r in load_seed(SEED)]
        assert len(res.report.installed) == len(HELM)
        kube = Kube(res.kubeconfig, res.context)

        def releases(k: Kube) -> dict:
            return {r.key: (r.chart_name, r.chart_version, r.config, r.revision, r.status)
                    for r in helm_storage.list_releases(k)}
        assert releases(kube) == releases(hl_kube) and len(releases(kube)) == len(HELM)
        for comp in YAML:
            for obj in kustomize.build(INV.gitops.path / comp.path):
                meta = obj["metadata"]
                live = kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
                assert live is not None, kustomize.object_id(obj)
                applied = json.loads(live["metadata"]["annotations"][LAST_APPLIED])
                assert (applied["kind"], applied["metadata"]["name"], applied.get("spec")) == \
                    (obj["kind"], meta["name"], obj.get("spec"))
        for w in WORKLOADS:
            assert len(pods_of(kube, w)) >= 1, w
    finally:
        stack_mod.down(state, purge=True)
