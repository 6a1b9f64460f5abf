"""`handover capture` and `handover rehearsal up --from-capture`, end to end on real clusters:

1. the seeded example (the session's ``seeded_stack``) captured under the AUDITED identity: the API
   server's audit log shows only reads (get/list/watch), and there are some, so the proof is not
   vacuous; the bundle is 0700/0600 and says on its first line that it holds values;
2. that bundle replayed into a fresh rehearsal: ``helm get manifest``, ``helm get values --all``
   and ``helm history`` of every release equal the captured ones, the generated Grafana password is
   the captured one, the rebuilt charts render the captured manifests, a real ``helm upgrade``
   works, the kubectl-applied objects carry their last-applied, PVs are bound as captured, and
   phase 1 gives the same verdict per testcase on the replay as on the seeded example;
3. test charts written here (tests/capture/charts: a subchart dependency, crds/, a hook Job,
   .Files, lookup, a library chart) installed with real helm, captured and replayed: the same
   helm outputs, the same generated password, the CRD and its custom object, and `helm upgrade`
   works; what Helm does not store (subchart and library templates) is reported as a note;
4. bad input (another context, hand-edited bundle, pending-upgrade, chart missing): a clear error
   and the rehearsal state dir left as it was (not even created).
"""
from __future__ import annotations

import json
import shutil
import stat
import sys
from pathlib import Path

import pytest
import yaml

from handover.core import audit
from handover.sources import helm_storage
from handover.core import tools
from handover.capture import bundle, replay
from handover.capture.capture import capture
from handover.core.kube import Kube
from handover.rehearsal import chart_repo, stack
from handover.rehearsal.cluster import AUDITED_CONTEXT, AUDITED_USER

from tests.harness import run_suite
from tests.rehearsal.conftest import EXAMPLE_INVENTORY

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "tests" / "capture" / "charts"
EXAMPLE_GITOPS = ROOT / "examples" / "homelab" / "gitops"
PHASE1_CHECKS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "suites/phase1").glob("test_0*.py"))
NS = "captest"
ROUTES_CHART = ROOT / "tests" / "rehearsal" / "charts" / "routes-crds"
ROUTES_CRDS = ["edges.routes.flux-handover.io", "routes.routes.flux-handover.io"]


def helm(cluster, *args: str, check: bool = True) -> tools.Result:
    return tools.run([str(tools.helm()), *args, "--kubeconfig", str(cluster.kubeconfig),
                      "--kube-context", cluster.context], env=chart_repo.helm_env(cluster.state_dir),
                     check=check)


def helm_view(cluster, name: str, ns: str) -> dict:
    return replay.helm_outputs(cluster, name, ns)


# -- 1. the capture of the seeded example, under the audited identity -------------------------------
@pytest.fixture(scope="module")
def example_capture(seeded_stack, tmp_path_factory):
    cluster = seeded_stack.cluster
    start = {cluster.audit_log: audit.line_count(cluster.audit_log)}
    # the rehearsal copy of the inventory, pointed at the audited identity's context
    data = yaml.safe_load(Path(seeded_stack.inventory_path).read_text())
    data["cluster"]["context"] = AUDITED_CONTEXT
    inv = tmp_path_factory.mktemp("capinv") / "migration.yaml"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path_factory.mktemp("capture") / "bundle"
    res = capture(out, kubeconfig=cluster.audited_kubeconfig, inventory=inv)
    reqs = audit.requests(cluster.audit_log, AUDITED_USER, start)
    return res, reqs, inv


def test_capture_writes_nothing_per_the_audit_log(example_capture):
    _, reqs, _ = example_capture
    assert len([r for r in reqs if r.is_read]) > 20, "too few audited reads: the proof is vacuous"
    writes = [str(r) for r in reqs if not r.is_read]
    assert not writes, "capture wrote to the cluster:\n" + "\n".join(writes)


def test_bundle_modes_first_line_and_contents(example_capture):
    res, _, _ = example_capture
    out = res.out
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*")}
    assert all(m == (0o700 if p.is_dir() else 0o600) for p, m in modes.items()), modes
    first = (out / bundle.INDEX).read_text().splitlines()[0]
    assert "holds the Helm releases' values, which can include secrets" in first
    assert AUDITED_CONTEXT in first and "v1.20.2" in first
    b = bundle.read(out)
    assert {r.key for r in b.releases} == {"envoy-gateway-system/eg", "logging/alloy",
                                           "logging/tempo", "logging/grafana", "logging/loki"}
    assert all(r.helm["manifest"] and r.helm["history"] for r in b.releases)
    ids = {e["id"] for e in b.applied}
    inv = yaml.safe_load(EXAMPLE_INVENTORY.read_text())
    pvs = next(c for c in inv["components"] if c["type"] == "storage")["pvs"]
    assert {pv["metadata"]["name"] for pv in b.cluster["PersistentVolume"]} >= set(pvs)
    assert any(i.startswith("Deployment ") for i in ids), ids  # the kubectl-applied workloads
    crds = {c["metadata"]["name"] for c in b.cluster.get("CustomResourceDefinition", [])}
    assert "envoyproxies.gateway.envoyproxy.io" in crds


# -- 2. the example replayed into a fresh rehearsal ------------------------------------------------
@pytest.fixture(scope="module")
def example_replay(example_capture, seeded_stack, tmp_path_factory):
    res, _, inv = example_capture
    # the replay's inventory: the seeded rehearsal copy (its context is the bundle's)
    data = yaml.safe_load(Path(seeded_stack.inventory_path).read_text())
    data["cluster"]["context"] = AUDITED_CONTEXT
    inv2 = tmp_path_factory.mktemp("replayinv") / "migration.yaml"
    inv2.write_text(yaml.safe_dump(data, sort_keys=False))
    state = tmp_path_factory.mktemp("replay") / "state"
    try:
        r = replay.up_from_capture(state, res.out, EXAMPLE_GITOPS, inventory=inv2)
        yield r, state
    finally:
        stack.down(state, purge=True)


def _cluster(state):
    from handover.rehearsal.cluster import RehearsalCluster
    return RehearsalCluster(state)


def test_example_replay_reports_no_problem(example_replay):
    r, _ = example_replay
    assert r.report.problems == [], "\n".join(r.report.problems)
    assert sorted(r.report.charts) == ["alloy-1.4.0", "gateway-helm-v1.4.6", "grafana-10.2.0",
                                       "loki-6.21.0", "tempo-1.24.1"]


def test_example_replay_helm_sees_the_captured_releases(example_replay, example_capture):
    r, state = example_replay
    b = bundle.read(example_capture[0].out)
    for rel in b.releases:
        got = helm_view(_cluster(state), rel.name, rel.storage_namespace)
        assert got["manifest"] == rel.helm["manifest"], rel.key
        assert got["valuesAll"] == rel.helm["valuesAll"], rel.key
        assert got["history"] == rel.helm["history"], rel.key


def test_example_replay_keeps_the_generated_password(example_replay, seeded_stack):
    _, state = example_replay
    src = Kube(seeded_stack.cluster.kubeconfig, seeded_stack.cluster.context)
    dst = Kube(_cluster(state).kubeconfig, _cluster(state).context)
    a = src.get("v1", "Secret", "grafana", "logging")["data"]["admin-password"]
    assert dst.get("v1", "Secret", "grafana", "logging")["data"]["admin-password"] == a


def test_example_replay_objects_applied_and_bound(example_replay, example_capture):
    _, state = example_replay
    kube = Kube(_cluster(state).kubeconfig, _cluster(state).context)
    b = bundle.read(example_capture[0].out)
    for e in b.applied:
        la = e["lastApplied"]
        m = la["metadata"]
        live = kube.get(la["apiVersion"], la["kind"], m["name"], m.get("namespace"))
        assert live is not None, e["id"]
        ann = live["metadata"]["annotations"][replay.LAST_APPLIED]
        assert json.loads(ann) == la, e["id"]
    for pv in b.cluster["PersistentVolume"]:
        live = kube.get("v1", "PersistentVolume", pv["metadata"]["name"])
        assert live["status"]["phase"] == pv["status"]["phase"], pv["metadata"]["name"]
        if pv["spec"].get("claimRef"):
            ref = live["spec"]["claimRef"]
            assert (ref["namespace"], ref["name"]) == (pv["spec"]["claimRef"]["namespace"],
                                                       pv["spec"]["claimRef"]["name"])


def test_example_replay_phase1_same_verdict_as_the_seed(example_replay, seeded_stack, tmp_path):
    r, _ = example_replay
    seeded = run_suite(PHASE1_CHECKS, Path(seeded_stack.inventory_path), tmp_path / "a.xml",
                       "--kubeconfig", str(seeded_stack.cluster.kubeconfig))
    replayed = run_suite(PHASE1_CHECKS, r.inventory_path, tmp_path / "b.xml",
                         "--kubeconfig", str(r.kubeconfig))
    verdict = lambda run: {c.name: c.outcome for c in run.cases}  # noqa: E731
    assert seeded.cases and verdict(replayed) == verdict(seeded), (
        replayed.stdout[-3000:])
    assert replayed.failed == []


def test_example_replay_helm_upgrade_works(example_replay):
    r, state = example_replay
    c = _cluster(state)
    before = helm_storage.latest(Kube(c.kubeconfig, c.context), "alloy", "logging")
    out = helm(c, "upgrade", "alloy", "alloy", "--repo", r.chart_repo_url, "--version", "1.4.0",
               "-n", "logging", "--reuse-values", "--wait", "--timeout", "120s")
    assert out.ok
    after = helm_storage.latest(Kube(c.kubeconfig, c.context), "alloy", "logging")
    assert (after.revision, after.status) == (before.revision + 1, "deployed")
    assert after.config == before.config and after.manifest == before.manifest


# -- 3. the test charts: subchart, crds/, hook Job, .Files, lookup, library -------------------------
@pytest.fixture(scope="module")
def charts_capture(example_replay, tmp_path_factory):
    """appstack (2 revisions) and libuser installed with real helm on the replayed rehearsal,
    plus a kubectl-applied ConfigMap, captured (namespace captest only); then that rehearsal is
    stopped, so at most two clusters run at once."""
    r, state = example_replay
    c = _cluster(state)
    # the pre-install,pre-upgrade hook Job runs to completion on the node agent, as on a live
    # cluster (hook-delete-policy hook-succeeded: helm deletes it; the release keeps it)
    helm(c, "install", "app", str(CHARTS / "appstack"), "-n", NS, "--create-namespace",
         "--set", "greeting=hi", "--timeout", "120s")
    helm(c, "upgrade", "app", str(CHARTS / "appstack"), "-n", NS,
         "--reuse-values", "--set", "cache.size=3", "--timeout", "120s")
    helm(c, "install", "lib", str(CHARTS / "libuser"), "-n", NS, "--set", "message=captured")
    # crds/ shaped like the Gateway API's: CEL rules and empty-string defaults (the v1.20 server
    # takes them through the rehearsal's CRD adapter webhook)
    helm(c, "install", "routes", str(ROUTES_CHART), "-n", NS)
    tools.run([str(tools.kubectl()), "--kubeconfig", str(c.kubeconfig), "--context", c.context,
               "apply", "-f", "-"], check=True, input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "by-hand", "namespace": NS}, "data": {"k": "v"}}))
    kube = Kube(c.kubeconfig, c.context)
    password = kube.get("v1", "Secret", "app-password", NS)["data"]["password"]
    out = tmp_path_factory.mktemp("charts") / "bundle"
    capture(out, kubeconfig=c.kubeconfig, context=c.context, namespaces=[NS])
    stack.down(state, purge=False)
    return out, password


@pytest.fixture(scope="module")
def charts_replay(charts_capture, tmp_path_factory):
    out, password = charts_capture
    gitops = tmp_path_factory.mktemp("gitops")
    (gitops / "apps").mkdir()
    (gitops / "apps" / "app.yaml").write_text(yaml.safe_dump({
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "app", "namespace": NS},
        "spec": {"interval": "10m", "chart": {"spec": {
            "chart": "appstack", "version": "0.3.1",
            "sourceRef": {"kind": "HelmRepository", "name": "test", "namespace": NS}}}}}))
    state = tmp_path_factory.mktemp("replay2") / "state"
    try:
        yield replay.up_from_capture(state, out, gitops), state, out, password
    finally:
        stack.down(state, purge=True)


def test_charts_replay_helm_view_equal(charts_replay):
    r, state, out, _ = charts_replay
    b = bundle.read(out)
    assert {x.key for x in b.releases} == {f"{NS}/app", f"{NS}/lib", f"{NS}/routes"}
    assert [v.revision for v in next(x for x in b.releases if x.name == "app").revisions] == [1, 2]
    for rel in b.releases:
        got = helm_view(_cluster(state), rel.name, rel.storage_namespace)
        assert got == rel.helm, rel.key
    hooks = helm(_cluster(state), "get", "hooks", "app", "-n", NS).stdout
    assert "app-migrate" in hooks and "pre-install,pre-upgrade" in hooks


def test_charts_replay_reports_what_helm_does_not_store(charts_replay):
    r, *_ = charts_replay
    assert r.report.problems == [], "\n".join(r.report.problems)
    assert sorted(r.report.charts) == ["appstack-0.3.1", "libuser-1.0.0", "routes-crds-0.1.0"]
    notes = "\n".join(r.report.notes)
    assert "appstack-0.3.1: subchart cache is not stored in the release" in notes
    assert "libuser-1.0.0: frozen" in notes and "common-lib.labels" in notes


def test_charts_replay_crd_files_lookup_and_password(charts_replay):
    r, state, _, password = charts_replay
    c = _cluster(state)
    kube = Kube(c.kubeconfig, c.context)
    assert kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                    "widgets.capture.flux-handover.test") is not None
    w = kube.get("capture.flux-handover.test/v1", "Widget", "app-widget", NS)
    assert w["spec"] == {"size": 1, "color": "blue"}
    cm = kube.get("v1", "ConfigMap", "app-config", NS)
    assert "; read by the chart with .Files.Get" in cm["data"]["app.ini"]
    assert cm["data"]["greeting"] == "hi"
    assert kube.get("v1", "ConfigMap", "app-cache", NS)["data"]["size"] == "3"
    assert kube.get("v1", "Secret", "app-password", NS)["data"]["password"] == password
    by_hand = kube.get("v1", "ConfigMap", "by-hand", NS)
    assert json.loads(by_hand["metadata"]["annotations"][replay.LAST_APPLIED])["data"] == {"k": "v"}
    dep = kube.get("apps/v1", "Deployment", "app", NS)
    assert dep["metadata"]["annotations"]["meta.helm.sh/release-name"] == "app"


def test_charts_replay_crds_with_cel_rules_and_empty_string_defaults(charts_replay):
    """routes-crds (crds/ with CEL x-kubernetes-validations and default: ""): captured and
    replayed, helm's views equal, the CRDs and the route object (with its "" fields) are there,
    and every adaptation of the chart's CRDs is listed by CRD and field, in the replay report and
    in the rehearsal's CRD notes (crd_adapter.load_notes), never silently."""
    from handover.rehearsal import crd_adapter
    r, state, out, _ = charts_replay
    c = _cluster(state)
    kube = Kube(c.kubeconfig, c.context)
    rel = next(x for x in bundle.read(out).releases if x.name == "routes")
    assert helm_view(c, "routes", NS) == rel.helm
    for name in ROUTES_CRDS:
        assert kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name), name
    route = kube.get("routes.flux-handover.io/v1", "Route", "routes-web", NS)
    assert route["spec"]["parentRefs"][0]["sectionName"] == ""
    assert route["spec"]["rules"][0]["backendRefs"][1]["group"] == ""
    # the original CRD text is in the chart's crds/: every adaptation of it is listed
    originals = [yaml.safe_load(f.read_text()) for f in sorted((ROUTES_CHART / "crds").glob("*"))]
    expected = {n for crd in originals for n in crd_adapter.adapt(crd)[1]}
    cel = {n for n in expected if n.reason == crd_adapter.CEL_REASON}
    empty = {n for n in expected if n.reason == crd_adapter.EMPTY_STRING_REASON}
    assert len(cel) >= 3 and len(empty) >= 3, expected  # both kinds, or the proof is vacuous
    assert expected <= set(crd_adapter.load_notes(state))
    notes = set(r.report.notes)
    assert {f"CRD adapted: {n.line()}" for n in expected} <= notes
    stored = json.loads(r.report_path.read_text())["notes"]
    assert all(f"CRD adapted: {n.line()}" in stored for n in expected)


def test_charts_replay_reports_a_manifest_that_does_not_match(charts_replay):
    """The check can fail: the same replayed cluster, verified against a bundle whose release
    record says the chart rendered something else, names the release and the differing object."""
    import copy
    r, state, out, _ = charts_replay
    b = copy.deepcopy(bundle.read(out))
    app = next(x for x in b.releases if x.name == "app")
    app.latest.record["manifest"] = app.latest.record["manifest"].replace(
        "name: app-config", "name: app-config-edited")
    report = replay.ReplayReport(bundle=str(out), context=b.context)
    replay.verify(_cluster(state), b, {app.key: "appstack-0.3.1"}, r.chart_repo_url, report)
    mismatch = [p for p in report.problems if p.startswith(f"release {NS}/app: the rebuilt chart")]
    assert len(mismatch) == 1, report.problems
    assert "ConfigMap captest/app-config-edited" in mismatch[0] or \
        "ConfigMap app-config-edited" in mismatch[0], mismatch[0]
    assert not [p for p in report.problems if p.startswith(f"release {NS}/lib")], report.problems


def test_charts_replay_upgrade_from_the_rehearsal_repository(charts_replay):
    """A real upgrade of each replayed release from the chart repository, values reused (hooks
    skipped: see test_charts_replay_upgrade_runs_the_hook_job): revision N+1, the password kept
    (lookup), the subchart's and the library's output unchanged."""
    r, state, _, password = charts_replay
    c = _cluster(state)
    kube = Kube(c.kubeconfig, c.context)
    for name, chart, version in (("app", "appstack", "0.3.1"), ("lib", "libuser", "1.0.0")):
        before = helm_storage.latest(kube, name, NS)
        helm(c, "upgrade", name, chart, "--repo", r.chart_repo_url, "--version", version, "-n", NS,
             "--reuse-values", "--no-hooks")
        after = helm_storage.latest(kube, name, NS)
        assert (after.revision, after.status) == (before.revision + 1, "deployed"), name
        docs = lambda m: sorted(json.dumps(d, sort_keys=True)  # noqa: E731
                                for d in yaml.safe_load_all(m) if d)
        assert docs(after.manifest) == docs(before.manifest), name
    assert kube.get("v1", "Secret", "app-password", NS)["data"]["password"] == password


def test_charts_replay_upgrade_runs_the_hook_job(charts_replay):
    """A real `helm upgrade` of the replayed release WITH its pre-upgrade hook: the hook Job runs
    to completion on the node agent (real Job controller), helm deletes it (hook-succeeded) and
    records the new revision as deployed."""
    r, state, *_ = charts_replay
    c = _cluster(state)
    kube = Kube(c.kubeconfig, c.context)
    before = helm_storage.latest(kube, "app", NS)
    out = helm(c, "upgrade", "app", "appstack", "--repo", r.chart_repo_url, "--version", "0.3.1",
               "-n", NS, "--reuse-values", "--timeout", "120s", check=False)
    assert out.ok, out.stderr
    after = helm_storage.latest(kube, "app", NS)
    assert (after.revision, after.status) == (before.revision + 1, "deployed")
    rec = helm_storage.decode_release(kube.get("v1", "Secret", after.secret_name, NS)["data"]
                                      ["release"])
    hook = next(h for h in rec.get("hooks") or [] if h.get("name") == "app-migrate")
    assert hook["last_run"]["phase"] == "Succeeded", hook
    assert kube.get("batch/v1", "Job", "app-migrate", NS) is None  # hook-succeeded: deleted


# -- 4. bad input: a clear error, and the rehearsal left as it was ----------------------------------
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


BAD_CASES = ["other-context", "hand-edited", "truncated", "pending-upgrade", "chart-missing"]


def _bad_bundle(case: str, out: Path, seeded_stack, tmp_path: Path
                ) -> tuple[Path, Path | None, str]:
    """A copy of the charts bundle spoiled as ``case`` says: (bundle, inventory, expected error)."""
    b = _copy(out, tmp_path / "bundle")
    inventory = None
    if case == "other-context":
        inventory = seeded_stack.inventory_path  # context flux-handover-rehearsal; bundle: same
        data = yaml.safe_load(Path(inventory).read_text())
        data["cluster"]["context"] = "prod"
        inventory = tmp_path / "migration.yaml"
        inventory.write_text(yaml.safe_dump(data, sort_keys=False))
        expect = "captured from kube context 'flux-handover-rehearsal' but the inventory"
    elif case == "hand-edited":
        f = next(b.glob("applied/**/*.json"))
        f.write_text(f.read_text().replace('"v"', '"w"'))
        expect = f"{f.relative_to(b)}: its sha256 is not the one in the index"
    elif case == "truncated":
        f = sorted(b.glob("releases/**/*.json"))[0]
        f.write_bytes(f.read_bytes()[:100])
        expect = f"{f.relative_to(b)}: its sha256 is not the one in the index"
    else:
        f = sorted(b.glob(f"releases/{NS}/sh.helm.release.v1.app.v2.json"))[0]
        s = json.loads(f.read_text())
        rec = helm_storage.decode_release(s["data"]["release"])
        if case == "pending-upgrade":
            rec["info"]["status"] = "pending-upgrade"
            expect = f"release {NS}/app: its newest revision 2 is 'pending-upgrade'"
        else:
            rec.pop("chart")
            expect = f"release {NS}/app revision 2 ({f.relative_to(b)}): the release record " \
                     "holds no chart"
        s["data"]["release"] = helm_storage.encode_release(rec)
        raw = (json.dumps(s, indent=1, sort_keys=True) + "\n").encode()
        f.write_bytes(raw)
        idx = (b / bundle.INDEX).read_text()  # re-sign it, so only the content check can refuse
        old = next(line for line in idx.splitlines() if str(f.relative_to(b)) in line)
        (b / bundle.INDEX).write_text(idx.replace(old, old.split(":")[0] + ": " +
                                                  bundle.sha256(raw)))
    return b, inventory, expect


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_bundle_refused_before_any_write(case, charts_capture, seeded_stack, tmp_path):
    out, _ = charts_capture
    b, inventory, expect = _bad_bundle(case, out, seeded_stack, tmp_path)
    state = tmp_path / "state"
    argv = ["rehearsal", "up", "--from-capture", str(b), "--gitops", str(EXAMPLE_GITOPS),
            "--state-dir", str(state)] + (["--inventory", str(inventory)] if inventory else [])
    err = tools.run([sys.executable, "-m", "handover.cli", *argv])
    assert err.returncode == 1, err.stdout + err.stderr
    assert expect in err.stderr, err.stderr
    assert not state.exists(), "the rehearsal was touched before the input was validated"


_VOLATILE = {"logs", "etcd", "run", "node-agent"}  # written by the running processes themselves


def _rehearsal_snapshot(state: Path) -> dict:
    """What a replay would change: the resourceVersion of every object the charts replay made or
    holds (release Secrets, ConfigMaps, Deployments, Services, custom objects, CRDs, Namespaces,
    PVs), helm's list, and the sha256 and mtime of every file of the state dir but the processes'
    own (a rewrite with the same content is a change too)."""
    c = _cluster(state)
    kube = Kube(c.kubeconfig, c.context)
    rv = {}
    for api, kind, ns in (("v1", "Secret", NS), ("v1", "ConfigMap", NS), ("v1", "Service", NS),
                          ("apps/v1", "Deployment", NS), ("batch/v1", "Job", NS),
                          ("capture.flux-handover.test/v1", "Widget", NS),
                          ("routes.flux-handover.io/v1", "Route", NS),
                          ("apiextensions.k8s.io/v1", "CustomResourceDefinition", None),
                          ("v1", "Namespace", None), ("v1", "PersistentVolume", None)):
        for o in kube.list(api, kind, ns):
            m = o["metadata"]
            rv[f"{kind} {m.get('namespace', '')}/{m['name']}"] = m["resourceVersion"]
    files = {str(f.relative_to(state)): (bundle.sha256(f.read_bytes()), f.stat().st_mtime_ns)
             for f in sorted(state.rglob("*"))
             if f.is_file() and f.relative_to(state).parts[0] not in _VOLATILE}
    listed = helm(c, "list", "-A", "-a", "-o", "json").stdout
    return {"rv": rv, "files": files, "helm": json.loads(listed)}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_bundle_leaves_a_running_rehearsal_as_it_was(case, charts_replay, charts_capture,
                                                         seeded_stack, tmp_path):
    """The same bad bundles given to `rehearsal up --from-capture` on the state dir of a RUNNING
    rehearsal (the charts replay): refused with the error naming what is wrong, and nothing of that
    rehearsal changed: no object's resourceVersion, no file of its state dir, helm's list."""
    _, state, out, _ = charts_replay
    b, inventory, expect = _bad_bundle(case, out, seeded_stack, tmp_path)
    before = _rehearsal_snapshot(state)
    assert len(before["rv"]) > 20 and len(before["helm"]) == 3, before  # not vacuous
    argv = ["rehearsal", "up", "--from-capture", str(b), "--gitops", str(EXAMPLE_GITOPS),
            "--state-dir", str(state)] + (["--inventory", str(inventory)] if inventory else [])
    err = tools.run([sys.executable, "-m", "handover.cli", *argv])
    assert err.returncode == 1, err.stdout + err.stderr
    assert expect in err.stderr, err.stderr
    after = _rehearsal_snapshot(state)
    assert after["helm"] == before["helm"]
    assert after["files"] == before["files"]
    assert after["rv"] == before["rv"]


def test_the_running_rehearsal_snapshot_sees_a_replay(charts_replay, charts_capture):
    """Control for the test above (the check can fail): the same bundle, unspoiled, given to the
    same running rehearsal gets past validation and replays into it (idempotently: what exists
    is left), and the snapshot sees that (the replay report and git record rewritten)."""
    _, state, out, _ = charts_replay
    before = _rehearsal_snapshot(state)
    run = tools.run([sys.executable, "-m", "handover.cli", "rehearsal", "up", "--from-capture",
                     str(out), "--gitops", str(EXAMPLE_GITOPS), "--state-dir", str(state)])
    assert "cannot replay bundle" not in run.stderr, run.stderr
    after = _rehearsal_snapshot(state)
    changed = sorted(k for k in set(before["files"]) | set(after["files"])
                     if before["files"].get(k) != after["files"].get(k))
    assert replay.REPORT in changed, (changed, run.stdout[-2000:], run.stderr[-2000:])
