"""The CRD adapter's pure part: what it changes in a CRD for the v1.20 API server, and the notes
it writes (one per CRD field), on CRDs shaped like the Gateway API ones (tests/rehearsal/charts/
routes-crds)."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import yaml

from handover.rehearsal import crd_adapter

CRDS = Path(__file__).resolve().parents[1] / "rehearsal" / "charts" / "routes-crds" / "crds"


def _crd(name: str) -> dict:
    return yaml.safe_load((CRDS / f"routes.flux-handover.io_{name}.yaml").read_text())


def _node(schema: dict, path: str) -> dict:
    node = schema
    for part in path.split("."):
        node = node[part]
    return node


BR = "properties.spec.properties.rules.items.properties.backendRefs.items.properties."


def _empty_notes(notes):
    return {n.field: n.change for n in notes if n.reason == crd_adapter.EMPTY_STRING_REASON}


def test_string_fields_that_take_empty_become_nullable_defaults_kept():
    crd = _crd("routes")
    out, notes = crd_adapter.adapt(crd)
    schema = out["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    group = _node(schema, BR.replace("properties.", "properties.") + "group")
    assert group["nullable"] is True and group["default"] == ""
    kind = _node(schema, BR + "kind")
    assert kind["nullable"] is True and kind["default"] == "Service"
    # fields where "" is refused on a live server too stay as they are
    assert "nullable" not in _node(schema, BR + "name")  # minLength 1
    assert "nullable" not in _node(schema, "properties.spec.properties.rules.items.properties."
                                           "matches.items.properties.path.properties.type")  # enum
    cond = "properties.status.properties.conditions.items.properties."
    assert "nullable" not in _node(schema, cond + "lastTransitionTime")  # format date-time
    assert "nullable" not in _node(schema, cond + "reason")  # minLength 1
    assert "nullable" not in _node(schema, "properties.apiVersion")  # type meta: never ""
    empty = _empty_notes(notes)
    assert empty[BR + "group"] == 'nullable: true added, default "" kept'
    assert empty[BR + "kind"] == "nullable: true added"
    assert set(empty) == {
        "properties.spec.properties.parentRefs.items.properties.group",  # pattern ^$|...
        "properties.spec.properties.parentRefs.items.properties.kind",
        "properties.spec.properties.parentRefs.items.properties.sectionName",
        "properties.spec.properties.rules.items.properties.matches.items.properties.path."
        "properties.value",
        BR + "group", BR + "kind", BR + "namespace", cond + "message"}
    # conditions is a list-type map keyed by type: the server forbids a nullable key
    assert "nullable" not in _node(schema, cond + "type")
    assert {n.crd for n in notes} == {"routes.routes.flux-handover.io"}
    assert {n.version for n in notes} == {"v1"}
    assert crd["spec"] != out["spec"]  # the input is not changed in place
    assert "nullable" not in json.dumps(crd)


def test_cel_rules_are_dropped_and_each_listed_by_field():
    out, notes = crd_adapter.adapt(_crd("routes"))
    assert crd_adapter.CEL not in json.dumps(out)
    cel = {n.field: n.change for n in notes if n.reason == crd_adapter.CEL_REASON}
    assert set(cel) == {
        "properties.spec.properties.parentRefs",
        "properties.spec.properties.rules.items.properties.matches.items.properties.path",
        "properties.spec.properties.rules.items.properties.backendRefs.items"}
    assert "self.value.startsWith('/')" in cel[
        "properties.spec.properties.rules.items.properties.matches.items.properties.path"]


def test_a_crd_that_needs_nothing_is_unchanged_and_has_no_notes():
    crd = {"metadata": {"name": "plain.example.org"}, "spec": {"versions": [{"name": "v1",
           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
               "apiVersion": {"type": "string"}, "kind": {"type": "string"},
               "metadata": {"type": "object"},
               "a": {"type": "string", "minLength": 1, "default": "x"},
               "b": {"type": "string", "pattern": "^[a-z]+$"},
               "c": {"type": "string", "enum": ["x", "y"]},
               "d": {"type": "string", "nullable": True},
               "n": {"type": "integer", "default": 0}}}}}]}}
    out, notes = crd_adapter.adapt(crd)
    assert out == crd and notes == []
    assert crd_adapter.json_patch(crd, out) == []


def test_review_patches_records_notes_and_skips_notes_on_dry_run(tmp_path):
    crd = _crd("routes")
    req = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
           "request": {"uid": "u1", "operation": "CREATE", "object": crd, "dryRun": True}}
    resp = crd_adapter.review(req, tmp_path)["response"]
    assert resp["uid"] == "u1" and resp["allowed"] and resp["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(resp["patch"]))
    assert patch[0]["op"] == "replace" and patch[0]["path"] == "/spec"
    assert crd_adapter.load_notes(tmp_path) == []  # a dry run leaves no note
    req["request"]["dryRun"] = False
    crd_adapter.review(req, tmp_path)
    notes = crd_adapter.load_notes(tmp_path)
    assert {n.crd for n in notes} == {"routes.routes.flux-handover.io"}
    assert len(notes) == 11  # 8 string fields that take "" + 3 places with CEL rules
    # the CRD adapted to need nothing any more: its notes go
    fixed, _ = crd_adapter.adapt(crd)
    req["request"]["object"] = fixed
    crd_adapter.review(req, tmp_path)
    assert crd_adapter.load_notes(tmp_path) == []


def test_cel_rules_of_a_kubectl_apply_are_read_from_last_applied(tmp_path):
    original = _crd("edges")
    stored, _ = crd_adapter.adapt(original)  # what the server keeps: no CEL
    stored["metadata"]["annotations"] = {crd_adapter.LAST_APPLIED: json.dumps(original)}
    req = {"request": {"uid": "u", "operation": "CREATE", "object": stored}}
    resp = crd_adapter.review(req, tmp_path)["response"]
    assert "patch" not in resp
    [note] = crd_adapter.load_notes(tmp_path)
    assert note.field == "properties.spec.properties.controllerName"
    assert "self == oldSelf" in note.change


def test_cel_rules_of_a_helm_chart_are_read_from_the_release_secret(tmp_path):
    from handover.sources import helm_storage
    files = [{"name": f"crds/{p.name}", "data": base64.b64encode(p.read_bytes()).decode()}
             for p in sorted(CRDS.glob("*.yaml"))]
    files.append({"name": "README.md", "data": base64.b64encode(b"# not a CRD").decode()})
    rel = {"name": "gw", "namespace": "gw", "version": 1, "manifest": "",
           "chart": {"metadata": {"name": "routes-crds", "version": "0.1.0"}, "files": files}}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
              "metadata": {"name": "sh.helm.release.v1.gw.v1", "namespace": "gw"},
              "data": {"release": helm_storage.encode_release(rel)}}
    resp = crd_adapter.review({"request": {"uid": "s", "operation": "CREATE", "object": secret}},
                              tmp_path)["response"]
    assert resp == {"uid": "s", "allowed": True}  # never changes Helm's Secret
    notes = crd_adapter.load_notes(tmp_path)
    assert {(n.crd, n.field) for n in notes} == {  # the CEL rules only: the rest is admission's
        ("edges.routes.flux-handover.io", "properties.spec.properties.controllerName"),
        ("routes.routes.flux-handover.io", "properties.spec.properties.parentRefs"),
        ("routes.routes.flux-handover.io",
         "properties.spec.properties.rules.items.properties.matches.items.properties.path"),
        ("routes.routes.flux-handover.io",
         "properties.spec.properties.rules.items.properties.backendRefs.items")}
    assert all(n.reason == crd_adapter.CEL_REASON for n in notes)
    # the CRD's own admission later records its string fields beside them
    crd_adapter.review({"request": {"uid": "c", "operation": "CREATE",
                                    "object": _crd("routes")}}, tmp_path)
    assert len(crd_adapter.load_notes(tmp_path)) == 4 + 8  # CEL notes not doubled


def test_webhook_configuration_is_replaced_when_it_changes():
    a = crd_adapter.webhook_configuration(1234, b"ca")
    b = crd_adapter.webhook_configuration(1235, b"ca")
    h = crd_adapter.HASH_ANNOTATION
    assert a["metadata"]["annotations"][h] != b["metadata"]["annotations"][h]
    assert a == crd_adapter.webhook_configuration(1234, b"ca")
    crd_hook = a["webhooks"][0]
    assert crd_hook["failurePolicy"] == "Fail" and crd_hook["sideEffects"] == "NoneOnDryRun"
    assert crd_hook["clientConfig"]["url"] == "https://127.0.0.1:1234/adapt"
    assert a["webhooks"][1]["failurePolicy"] == "Ignore"  # never in Helm's way


def test_an_empty_default_on_a_list_map_key_is_dropped_and_noted():
    crd = {"metadata": {"name": "m.example.org"}, "spec": {"versions": [{"name": "v1", "schema": {
        "openAPIV3Schema": {"type": "object", "properties": {"ports": {
            "type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "required": ["port"], "properties": {
                "name": {"type": "string", "default": ""},
                "port": {"type": "integer"}}}}}}}}]}}
    out, notes = crd_adapter.adapt(crd)
    name = out["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["ports"][
        "items"]["properties"]["name"]
    assert name == {"type": "string"}
    assert [(n.field, n.change[:18]) for n in notes] == [
        ("properties.ports.items.properties.name", 'default "" dropped')]
