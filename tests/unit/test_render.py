import copy
import functools
import http.server
import threading
from pathlib import Path

import pytest
import yaml

from handover.flux import render
from handover.core.inventory import Component, ObjectRef
from tests.unit.kube_fake import FakeKube, release_secret

CHARTS = Path(__file__).resolve().parents[2] / "examples" / "homelab" / "charts"


def sts(image="grafana/loki:3.3.0", annotations=None, **extra):
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "loki", "namespace": "logging"},
            "spec": {"template": {"metadata": {"annotations": annotations or {"c": "1"}},
                                  "spec": {"containers": [{"name": "loki", "image": image}]}},
                     **extra}}


def live_of(objs):
    def f(kind, ns, name):
        for o in objs:
            if o["kind"] == kind and o["metadata"]["name"] == name:
                return o
        return None
    return f


def test_same_template_is_adopted_in_place_despite_live_defaults():
    live = sts()
    live["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
    live["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] = "t"
    [p] = render.predict([sts()], [sts()], live_of([live]), "logging")
    assert p.outcome == render.IN_PLACE and p.changes == []


def test_changed_image_means_pods_recreated_naming_the_field():
    [p] = render.predict([sts(image="grafana/loki:3.4.0")], [sts()], live_of([sts()]), "logging")
    assert p.outcome == render.RECREATED
    assert [c.path for c in p.changes] == ["spec.template.spec.containers[name=loki].image"]


def test_annotation_dropped_by_new_render_is_a_change():
    [p] = render.predict([sts(annotations={"x": "y"})], [sts()],
                         live_of([sts(annotations={"c": "1", "x": "y"})]), "logging")
    assert p.outcome == render.RECREATED
    assert [c.path for c in p.changes] == ["spec.template.metadata.annotations.c"]


def test_created_and_deleted_workloads():
    dep = {"kind": "Deployment", "metadata": {"name": "old"}, "spec": {}}
    preds = {p.name: p.outcome for p in render.predict([sts()], [dep], live_of([dep]), "logging")}
    assert preds == {"loki": render.CREATED, "old": render.DELETED}


@pytest.fixture(scope="module")
def chart_repo(tmp_path_factory):
    from handover.rehearsal import chart_repo
    d = tmp_path_factory.mktemp("charts")
    src = d / "src"
    (src / "loki").mkdir(parents=True)
    import shutil
    shutil.copytree(CHARTS / "loki", src / "loki", dirs_exist_ok=True)
    out = d / "repo"
    env = {"HELM_CACHE_HOME": str(d / "h"), "HELM_CONFIG_HOME": str(d / "h"),
           "HELM_DATA_HOME": str(d / "h")}
    import os
    chart_repo.package(src, out, env={**os.environ, **env})
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


LOKI = Component(name="loki", type="helm", risk="high", path="loki", namespaces=("logging",),
                 release=ObjectRef("loki", "logging"), helm_release=ObjectRef("loki", "logging"))
VALUES = {"loki": {"auth_enabled": False}, "singleBinary": {"persistence": {"storageClass": "-"}}}


def objects(url, values=VALUES, version="6.21.0"):
    hr = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
          "metadata": {"name": "loki", "namespace": "logging"},
          "spec": {"chart": {"spec": {"chart": "loki", "version": version, "sourceRef": {
              "kind": "HelmRepository", "name": "grafana", "namespace": "flux-system"}}},
              "values": values}}
    repo = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": {"name": "grafana", "namespace": "flux-system"}, "spec": {"url": url}}
    return [hr, repo]


def test_real_helm_template_then_prediction(chart_repo, tmp_path):
    inv = type("Inv", (), {"gitops": type("G", (), {"sources_path": None, "path": tmp_path})})
    objs = objects(chart_repo)
    src = render.chart_source(objs[0], objs)
    rendered = render.helm_template(src, VALUES, "v1.20.2")
    live_sts = copy.deepcopy(render.kustomize.find(rendered, "StatefulSet", "loki"))
    live_sts["metadata"]["namespace"] = "logging"
    manifest = "---\n".join(yaml.safe_dump(o) for o in rendered)
    kube = FakeKube(live_sts, release_secret("loki", "logging", config=VALUES, manifest=manifest))
    assert render.check_rollout(kube, inv, LOKI, objs) == []
    # other values -> the config checksum annotation changes: pods will be recreated
    changed = objects(chart_repo, values={**VALUES, "loki": {"auth_enabled": True}})
    [f] = render.check_rollout(kube, inv, LOKI, changed)
    assert f.subject == "StatefulSet logging/loki" and render.RECREATED in f.problem
    assert 'spec.template.metadata.annotations["checksum/config"]' in f.problem


def test_render_error_is_a_finding(chart_repo, tmp_path):
    inv = type("Inv", (), {"gitops": type("G", (), {"sources_path": None, "path": tmp_path})})
    kube = FakeKube(release_secret("loki", "logging", config=VALUES))
    [f] = render.check_rollout(kube, inv, LOKI, objects(chart_repo, version="9.9.9"))
    assert "cannot render the chart" in f.problem and "9.9.9" in f.problem


# --- render twice, causes, the postRenderers offer ------------------------------------------------

def dep(annotations, env=None):
    c = {"name": "app", "image": "app:1"}
    if env:
        c["env"] = env
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "app", "namespace": "web"},
            "spec": {"template": {"metadata": {"annotations": annotations},
                                  "spec": {"containers": [c]}}}}


def secret(pw):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app", "namespace": "web"},
            "data": {"password": pw}}


def test_fields_differing_between_two_renders_are_named_with_their_place():
    first = [dep({"checksum/secret": "aaa"}), secret("cGFzczE=")]
    second = [dep({"checksum/secret": "bbb"}), secret("cGFzczI=")]
    u = render.unstable_fields(first, second, "web")
    assert [(x.subject, x.path, x.in_pod_template) for x in u] == [
        ("Deployment web/app", 'spec.template.metadata.annotations["checksum/secret"]', True),
        ("Secret web/app", "data.password", False)]
    assert "pods roll on EVERY upgrade" in u[0].describe()
    assert "no pod rolls" in u[1].describe()
    assert render.unstable_fields(first, [dep({"checksum/secret": "aaa"}), secret("cGFzczE=")],
                                  "web") == []


def test_hooks_are_split_from_the_manifest_with_events_and_delete_policies():
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
        "name": "migrate", "annotations": {"helm.sh/hook": "pre-install,pre-upgrade",
                                           "helm.sh/hook-delete-policy": "hook-succeeded",
                                           "helm.sh/hook-weight": "-5"}}}
    manifest, hooks = render.split_hooks([dep({}), job])
    assert [o["kind"] for o in manifest] == ["Deployment"]
    assert hooks == [render.Hook("Job", "migrate", ("pre-install", "pre-upgrade"),
                                 ("hook-succeeded",), -5)]
    assert "delete policy hook-succeeded" in hooks[0].describe()


def test_checksum_only_change_offers_the_exact_post_renderers_patch():
    live = dep({"checksum/secret": "live-sum", "checksum/config": "c1"})
    rendered = dep({"checksum/secret": "new-sum", "checksum/config": "c1"})
    del rendered["metadata"]["namespace"]  # as most charts render it
    [p] = render.predict([rendered], [], live_of([live]), "web")
    assert p.outcome == render.RECREATED
    patch = render.keep_live_patch(p)
    # the render sets no metadata.namespace (helm gives it after the post-renderers): a target
    # naming the namespace would match nothing (kustomize), so it names kind and name only
    assert patch["target"] == {"kind": "Deployment", "name": "app"}
    assert yaml.safe_load(patch["patch"]) == [
        {"op": "replace", "path": "/spec/template/metadata/annotations/checksum~1secret",
         "value": "live-sum"}]
    offer = yaml.safe_load(render.post_renderers_offer({}, [patch]))
    assert offer["spec"]["postRenderers"][0]["kustomize"]["patches"] == [patch]
    # the patch applied to the render (RFC 6902 ops, applied here by hand) gives the live
    # template back: adopted in place
    patched = dep({"checksum/secret": "new-sum", "checksum/config": "c1"})
    for op in yaml.safe_load(patch["patch"]):
        *parents, last = [x.replace("~1", "/").replace("~0", "~")
                          for x in op["path"].split("/")[1:]]
        node = patched
        for k in parents:
            node = node[k]
        if op["op"] == "remove":
            del node[last]
        else:
            node[last] = op["value"]
    [again] = render.predict([patched], [], live_of([live]), "web")
    assert again.outcome == render.IN_PLACE


def test_the_helm_releases_post_renderers_are_applied_to_the_render():
    """Phase 1 on a HelmRelease that carries the offered patch predicts what helm-controller
    will apply: the patch is run by the real kustomize (kubectl kustomize), so a target that
    matches nothing would still show the rollout."""
    live = dep({"checksum/secret": "live-sum"})
    rendered = dep({"checksum/secret": "new-sum"})
    del rendered["metadata"]["namespace"]
    [p] = render.predict([rendered], [], live_of([live]), "web")
    patch = render.keep_live_patch(p)
    r = render.Rendering([rendered], [], render.SERVER)
    for target, want in ((patch["target"], render.IN_PLACE),
                         ({**patch["target"], "namespace": "web"}, render.RECREATED)):
        hr = {"metadata": {"name": "app", "namespace": "web"}, "spec": {"postRenderers": [
            {"kustomize": {"patches": [{**patch, "target": target}]}}]}}
        post = render.with_post_renderers(r, hr)
        assert post.post_rendered and "spec.postRenderers" in post.how
        [again] = render.predict(post.objects, [], live_of([live]), "web")
        assert again.outcome == want, target
    assert r.objects[0]["spec"]["template"]["metadata"]["annotations"] == {
        "checksum/secret": "new-sum"}  # the render itself (cached) is not changed


def test_post_renderers_target_names_the_namespace_only_when_the_render_sets_it():
    live = dep({"checksum/secret": "live-sum"})
    rendered = dep({"checksum/secret": "new-sum"})
    assert rendered["metadata"]["namespace"] == "web"  # the chart templates it
    [p] = render.predict([rendered], [], live_of([live]), "web")
    assert render.keep_live_patch(p)["target"] == {"kind": "Deployment", "name": "app",
                                                   "namespace": "web"}


def test_non_annotation_change_gets_no_post_renderers_offer():
    live = dep({}, env=[{"name": "A", "value": "1"}])
    [p] = render.predict([dep({}, env=[{"name": "A", "value": "2"}])], [], live_of([live]),
                         "web")
    assert render.keep_live_patch(p) is None


def test_cause_names_non_deterministic_and_checksum_fields():
    live = dep({"checksum/secret": "x", "checksum/config": "c1"})
    [p] = render.predict([dep({"checksum/secret": "y", "checksum/config": "c2"})], [],
                         live_of([live]), "web")
    unstable = {("Deployment web/app", 'spec.template.metadata.annotations["checksum/secret"]')}
    texts = [render.cause(p.subject, d, unstable) for d in p.changes]
    assert "non-deterministic" in texts[1] and "checksum/secret" in texts[1]
    assert "computed by the chart" in texts[0] and "checksum/config" in texts[0]
