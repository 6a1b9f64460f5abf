"""CRDs the v1.20 API server cannot take, adapted by the rehearsal's own mutating webhook
(handover/rehearsal/crd_adapter.py), whoever applies them, each adaptation a fidelity note.

Shown here: without the adapter (opt-out label) v1.20.2 refuses a Gateway-API-shaped CRD
(``default: ""`` read as null); with it, ``helm install`` of a chart with such CRDs in crds/
works, the custom resources get the same defaults as on a live cluster, and ``handover rehearsal
status`` lists every adaptation by CRD and field (the CEL rules the server drops included, read
from the release's chart files or a kubectl apply's last-applied configuration)."""
from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from handover import cli
from handover.core import tools
from handover.rehearsal import crd_adapter

pytestmark = pytest.mark.rehearsal

CHART = Path(__file__).parent / "charts" / "routes-crds"


def _crd(name: str) -> dict:
    return yaml.safe_load((CHART / "crds" / f"routes.flux-handover.io_{name}.yaml").read_text())


def _renamed(crd: dict, group: str) -> dict:
    out = copy.deepcopy(crd)
    out["spec"]["group"] = group
    out["metadata"]["name"] = f"{out['spec']['names']['plural']}.{group}"
    return out


def _kubectl(cluster, *args: str, input: str | None = None) -> tools.Result:
    return tools.run([str(tools.kubectl()), "--kubeconfig", str(cluster.kubeconfig),
                      "--context", cluster.context, *args], input=input)


def _helm(cluster, *args: str) -> tools.Result:
    return tools.run([str(tools.helm()), *args, "--kubeconfig", str(cluster.kubeconfig),
                      "--kube-context", cluster.context], timeout=240)


def test_v1_20_refuses_an_empty_string_default_without_the_adapter(rehearsal_cluster,
                                                                   rehearsal_api):
    crd = _renamed(_crd("routes"), f"raw{uuid.uuid4().hex[:6]}.flux-handover.io")
    crd["metadata"].setdefault("labels", {})[crd_adapter.OPT_OUT] = "false"
    r = _kubectl(rehearsal_cluster, "create", "--validate=false", "-f", "-",
                 input=json.dumps(crd))
    assert not r.ok
    assert 'properties[backendRefs].items.properties[group].default: Invalid value: "null":' \
        in r.stderr, r.stderr
    assert "in body must be of type string" in r.stderr, r.stderr
    # ...and the same CRD without the opt-out label is taken, adapted
    del crd["metadata"]["labels"][crd_adapter.OPT_OUT]
    r = _kubectl(rehearsal_cluster, "create", "--validate=false", "-f", "-",
                 input=json.dumps(crd))
    assert r.ok, r.stderr
    ext = client.ApiextensionsV1Api(rehearsal_api)
    try:
        stored = json.loads(ext.read_custom_resource_definition(
            crd["metadata"]["name"], _preload_content=False).data)
        spec = stored["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        group = (spec["properties"]["rules"]["items"]["properties"]["backendRefs"]["items"]
                 ["properties"]["group"])
        assert group["nullable"] is True and group["default"] == ""
        assert crd_adapter.CEL not in json.dumps(stored)
    finally:
        ext.delete_custom_resource_definition(crd["metadata"]["name"])


def test_helm_install_of_gateway_shaped_crds_works_and_is_noted(rehearsal_cluster, rehearsal_api,
                                                               eventually, capsys):
    ns = f"gw-{uuid.uuid4().hex[:6]}"
    r = _helm(rehearsal_cluster, "install", "gw", str(CHART), "-n", ns, "--create-namespace",
              "--timeout", "60s")
    assert r.ok, r.stderr
    try:
        route = client.CustomObjectsApi(rehearsal_api).get_namespaced_custom_object(
            "routes.flux-handover.io", "v1", ns, "routes", "gw-web")
        refs = route["spec"]["rules"][0]["backendRefs"]
        # the defaults a live cluster gives: group "" and kind Service, weight 1
        assert refs[0] == {"group": "", "kind": "Service", "name": "web", "port": 8080,
                           "weight": 1}
        assert refs[1]["group"] == "" and refs[1]["name"] == "web-canary"
        # "" in a string field: refused by the unadapted v1.20 server, taken on a live one
        assert route["spec"]["parentRefs"][0] == {"group": "routes.flux-handover.io",
                                                  "kind": "Edge", "name": "edge",
                                                  "sectionName": ""}
        notes = eventually(lambda: (n := rehearsal_cluster.status()["fidelity_notes"]) and
                           any("edges.routes.flux-handover.io" in x for x in n) and n,
                           "fidelity notes of both CRDs")
        routes = [n for n in notes if n.startswith("routes.routes.flux-handover.io v1 ")]
        assert any("backendRefs.items.properties.group: nullable: true added" in n
                   for n in routes), notes
        cel = [n for n in routes if "CEL rule" in n]
        assert len(cel) == 3, notes
        assert any("self.value.startsWith('/')" in n for n in cel), cel
        assert any(n.startswith("edges.routes.flux-handover.io v1 properties.spec.properties."
                                "controllerName: dropped 1 CEL rule(s): self == oldSelf")
                   for n in notes), notes
        # the same notes in the state dir file and in `handover rehearsal status`
        assert crd_adapter.notes_path(rehearsal_cluster.state_dir).exists()
        cli.main(["rehearsal", "status", "--state-dir", str(rehearsal_cluster.state_dir)])
        out = capsys.readouterr().out
        assert "fidelity notes (" in out
        for n in routes:
            assert n in out
    finally:
        _helm(rehearsal_cluster, "uninstall", "gw", "-n", ns)
        client.CoreV1Api(rehearsal_api).delete_namespace(ns)


def test_kubectl_applied_crd_gets_its_cel_rules_noted(rehearsal_cluster, rehearsal_api):
    crd = _renamed(_crd("edges"), f"k{uuid.uuid4().hex[:6]}.flux-handover.io")
    r = _kubectl(rehearsal_cluster, "apply", "--validate=false", "-f", "-",
                 input=json.dumps(crd))
    assert r.ok, r.stderr
    try:
        notes = [n for n in rehearsal_cluster.fidelity_notes()
                 if n.startswith(crd["metadata"]["name"])]
        cel = [n for n in notes if "CEL" in n]
        assert len(cel) == 1 and "controllerName: dropped 1 CEL rule(s): self == oldSelf" in \
            cel[0], notes  # read from the last-applied configuration kubectl wrote
        assert len(notes) == 3, notes  # + controllerName and description made nullable
    finally:
        client.ApiextensionsV1Api(rehearsal_api).delete_custom_resource_definition(
            crd["metadata"]["name"])


def test_a_dry_run_leaves_no_note(rehearsal_cluster):
    crd = _renamed(_crd("routes"), f"d{uuid.uuid4().hex[:6]}.flux-handover.io")
    r = _kubectl(rehearsal_cluster, "create", "--dry-run=server", "--validate=false", "-f", "-",
                 input=json.dumps(crd))
    assert r.ok, r.stderr  # the dry run is adapted too (the server would refuse it otherwise)
    assert not [n for n in rehearsal_cluster.fidelity_notes()
                if n.startswith(crd["metadata"]["name"])]


def test_adapter_is_a_core_component_and_up_re_registers_it(rehearsal_cluster, rehearsal_api):
    adm = client.AdmissionregistrationV1Api(rehearsal_api)
    conf = adm.read_mutating_webhook_configuration(crd_adapter.CONFIG_NAME)
    port = rehearsal_cluster.config["ports"]["crd-adapter"]
    assert conf.webhooks[0].client_config.url == f"https://127.0.0.1:{port}/adapt"
    adm.delete_mutating_webhook_configuration(crd_adapter.CONFIG_NAME)
    rehearsal_cluster.up()
    again = adm.read_mutating_webhook_configuration(crd_adapter.CONFIG_NAME)
    assert again.webhooks[0].client_config.url == conf.webhooks[0].client_config.url
    with pytest.raises(ApiException):  # only one of it
        adm.create_mutating_webhook_configuration(
            crd_adapter.webhook_configuration(port, b"x"))
