"""CRDs the rehearsal's v1.20 API server cannot take, adapted to what it accepts, and every
adaptation written down as a fidelity note.

What v1.20.2 gets wrong, and why (read in the vendored sources of the build, kubernetes v1.20.2):

- **An empty string is read as null.** ``k8s.io/kube-openapi/pkg/validation/validate/type.go``
  (typeValidator.Validate) treats any value equal to its type's zero value like ``null``:
  ``reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data))``. A ``""``
  decoded with ``encoding/json`` shares Go's zero-value storage, so it compares equal (0 and false
  do not), and the server refuses ``default: ""`` of a string field (the Gateway API CRDs default
  ``group: ""`` in their references: ``...default: Invalid value: "null": in body must be of
  type string``, ``apiextensions-apiserver/pkg/apiserver/schema/defaulting/validation.go``
  validates every default with that validator) and ``""`` in any string field of a custom
  resource (``spec.s: Invalid value: "null"``). Newer servers accept both. Adaptation: every
  string field that takes ``""`` on a live server (no ``minLength`` above 0, ``""`` in its
  ``enum`` if any, a ``pattern`` matching ``""``) gets ``nullable: true``, which that validator
  honours for null, and so for ""; defaults stay, so objects get the same ``""`` as on a live
  cluster. What changes: an explicit ``null`` in such a field is kept instead of dropped. The
  keys of a list-type map cannot be nullable (the server forbids it): they stay as they are, and
  a ``default: ""`` there is dropped (noted).
- **CEL rules are unknown.** ``x-kubernetes-validations`` (Kubernetes 1.25+) is not a field of
  v1.20's JSONSchemaProps: the server drops it while it decodes the request, before any admission
  webhook sees the object, so custom resources are not checked against those rules here. The
  rules are listed wherever the original CRD text still is: the chart files of the Helm release
  that installed the CRD (``crds/`` travels in the release Secret, which a second webhook reads
  when Helm stores it, ``failurePolicy: Ignore``), the ``last-applied-configuration`` of a
  ``kubectl apply``, or a CRD handed to :func:`record_source_notes` (a replay of a capture).
  A CRD created by a controller or by a server-side apply leaves no such trace: its CEL rules
  are then not listed.

The webhook (``python -m handover.rehearsal.crd_adapter``) is a mutating admission webhook for
``customresourcedefinitions`` that the rehearsal cluster serves itself (``clientConfig.url
https://127.0.0.1:<port>/adapt``, CA bundle from the rehearsal's PKI, ``failurePolicy: Fail``: a
CRD is never stored unadapted behind the rehearsal's back). Mutating admission runs before the
CRD's own validation, so whoever creates or updates a CRD (helm, kubectl, a replay, a controller)
gets the adapted CRD. Each adaptation is a note ``{crd, version, field, change, reason}``, kept per
CRD in ``<state_dir>/fidelity/crd-adaptations.json`` (not for dry-run requests), shown by
``handover rehearsal status`` and readable by a run's report (:func:`load_notes`).
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import re
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

NOTES_FILE = Path("fidelity") / "crd-adaptations.json"
WEBHOOK_NAME = "crd-adapter.rehearsal.flux-handover.io"
HELM_WEBHOOK_NAME = "helm-release-crds.rehearsal.flux-handover.io"
OPT_OUT = "rehearsal.flux-handover.io/adapt"
HASH_ANNOTATION = "rehearsal.flux-handover.io/webhooks-sha256"
CONFIG_NAME = "flux-handover-rehearsal-crd-adapter"
PATH = "/adapt"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CEL = "x-kubernetes-validations"

EMPTY_STRING_REASON = (
    'the v1.20 API server reads "" as null (kube-openapi typeValidator): it '
    'refuses "" in a non-nullable string field, and default: ""'
)
EMPTY_DEFAULT_REASON = EMPTY_STRING_REASON
CEL_REASON = (
    "x-kubernetes-validations (CEL, Kubernetes 1.25+) is unknown to the v1.20 API "
    "server: it drops the rules, custom resources are not checked against them"
)


@dataclass(frozen=True)
class Note:
    """One adaptation of one CRD field."""

    crd: str
    version: str
    field: str  # JSON path in the schema, e.g. properties.spec.properties.group
    change: str
    reason: str

    def line(self) -> str:
        return f"{self.crd} {self.version} {self.field}: {self.change} ({self.reason})"


# -- the adaptation (pure) ----------------------------------------------------------------------
def _walk(schema: Any, path: str) -> Iterator[tuple[str, dict]]:
    """Every schema node below ``schema`` with its path (properties, items, additionalProperties,
    allOf/anyOf/oneOf/not)."""
    if not isinstance(schema, dict):
        return
    yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.properties.{name}" if path else f"properties.{name}")
    items = schema.get("items")
    if isinstance(items, dict):
        yield from _walk(items, f"{path}.items")
    elif isinstance(items, list):
        for i, sub in enumerate(items):
            yield from _walk(sub, f"{path}.items[{i}]")
    ap = schema.get("additionalProperties")
    if isinstance(ap, dict):
        yield from _walk(ap, f"{path}.additionalProperties")
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(key) or []):
            yield from _walk(sub, f"{path}.{key}[{i}]")
    if isinstance(schema.get("not"), dict):
        yield from _walk(schema["not"], f"{path}.not")


def accepts_empty_string(node: dict) -> bool:
    """Whether a live API server takes "" in this string field: no minLength above 0, "" among
    its enum values if it has any, a pattern that matches "" (Python's re standing in for Go's
    RE2; a pattern Python cannot compile counts as matching)."""
    if node.get("type") != "string" or node.get("nullable"):
        return False
    if (node.get("minLength") or 0) > 0:
        return False
    if node.get("format") not in (None, "", "byte", "password"):
        return False  # "" is no date-time, uuid, ipv4, ... there either
    if "enum" in node and "" not in (node.get("enum") or []):
        return False
    pattern = node.get("pattern")
    if pattern:
        try:
            return re.search(pattern, "") is not None
        except re.error:
            return True
    return True


def _type_meta(path: str, root: dict) -> bool:
    """apiVersion / kind / metadata of the resource or of an embedded resource: the server
    restricts what their schemas may say, and they are never "" in a valid object."""
    parts = path.split(".")
    for i, part in enumerate(parts):
        if part == "metadata" and i > 0 and parts[i - 1] == "properties":
            return True
    if len(parts) >= 2 and parts[-2] == "properties" and parts[-1] in ("apiVersion", "kind"):
        parent: Any = root
        for key in parts[:-2]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        return parent is root or bool((parent or {}).get("x-kubernetes-embedded-resource"))
    return False


def _schemas(crd: dict) -> Iterator[tuple[str, dict]]:
    """(version name, openAPIV3Schema) of a v1 or v1beta1 CRD."""
    spec = crd.get("spec") or {}
    top = (spec.get("validation") or {}).get("openAPIV3Schema")  # v1beta1
    if isinstance(top, dict):
        yield "*", top
    for v in spec.get("versions") or []:
        s = (v.get("schema") or {}).get("openAPIV3Schema")
        if isinstance(s, dict):
            yield v.get("name", "?"), s


def adapt(crd: dict) -> tuple[dict, list[Note]]:
    """The CRD as the v1.20 API server accepts it, and one note per adapted field. The input is
    not changed; a CRD that needs nothing comes back equal, with no notes."""
    out = copy.deepcopy(crd)
    name = (out.get("metadata") or {}).get("name", "?")
    notes: list[Note] = []
    for version, schema in _schemas(out):
        nodes = list(_walk(schema, ""))
        # the server forbids nullable on the keys of a list-type map
        map_keys = {
            id(((n.get("items") or {}).get("properties") or {}).get(k))
            for _, n in nodes
            if isinstance(n.get("items"), dict)
            for k in n.get("x-kubernetes-list-map-keys") or []
        }
        for path, node in nodes:
            rules = node.get(CEL)
            if rules is not None:
                texts = [
                    r.get("rule", "?") if isinstance(r, dict) else str(r)
                    for r in (rules if isinstance(rules, list) else [rules])
                ]
                del node[CEL]
                notes.append(
                    Note(
                        name,
                        version,
                        path or "(root)",
                        f"dropped {len(texts)} CEL rule(s): " + "; ".join(texts),
                        CEL_REASON,
                    )
                )
            if id(node) in map_keys:
                if node.get("default") == "" and node.get("type") == "string":
                    del node["default"]
                    notes.append(
                        Note(
                            name,
                            version,
                            path,
                            'default "" dropped (a list-map '
                            "key cannot be nullable): objects lack the field here",
                            EMPTY_STRING_REASON,
                        )
                    )
                continue
            if accepts_empty_string(node) and not _type_meta(path, schema):
                node["nullable"] = True
                kept = ', default "" kept' if node.get("default") == "" else ""
                notes.append(
                    Note(
                        name,
                        version,
                        path or "(root)",
                        f"nullable: true added{kept}",
                        EMPTY_STRING_REASON,
                    )
                )
    return out, notes


def cel_rules_from_last_applied(crd: dict) -> list[Note]:
    """The CEL rules a ``kubectl apply`` sent, read from its last-applied annotation (the server
    dropped them from the object itself)."""
    raw = ((crd.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not raw:
        return []
    try:
        original = json.loads(raw)
    except ValueError:
        return []
    _, notes = adapt(original)
    return [n for n in notes if n.change.startswith("dropped") and "CEL" in n.change]


def json_patch(old: dict, new: dict) -> list[dict]:
    """A JSON patch from ``old`` to ``new`` (the CRD's spec replaced when it changed)."""
    if old.get("spec") == new.get("spec"):
        return []
    return [{"op": "replace", "path": "/spec", "value": new["spec"]}]


# -- notes in the state dir ---------------------------------------------------------------------
_notes_lock = threading.Lock()


def notes_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / NOTES_FILE


# captured: what the rehearsal's copy of a CRD installed from a replayed release's chart differs by
# from the chart's crds/ text (a capture of a rehearsal holds CRDs that were adapted already, which
# the webhook then lets through with no note: the original text is in the release record)
SECTIONS = ("admitted", "sources", "captured")


def record_notes(
    state_dir: Path | str,
    crd: str,
    notes: list[Note],
    section: str = "admitted",
    source: str | None = None,
) -> None:
    """Keep the latest notes of one CRD: ``admitted`` (what the webhook changed in the object it
    admitted; a CRD that needs no adaptation any more has none) or ``sources`` (the CEL rules the
    server dropped, read from where the original CRD text still is: a release's chart files, a
    captured CRD)."""
    path = notes_path(state_dir)
    with _notes_lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        part = data.setdefault(section, {})
        if notes:
            part[crd] = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "source": source,
                "notes": [asdict(n) for n in notes],
            }
        elif section == "admitted":
            part.pop(crd, None)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)


def load_notes(state_dir: Path | str) -> list[Note]:
    """Every adaptation the rehearsal made to the CRDs it holds, by CRD then field (each once)."""
    try:
        data = json.loads(notes_path(state_dir).read_text())
    except (OSError, ValueError):
        return []
    seen: set[Note] = set()
    out: list[Note] = []
    for section in SECTIONS:
        for crd in sorted(data.get(section) or {}):
            for n in data[section][crd]["notes"]:
                note = Note(**n)
                if note not in seen:
                    seen.add(note)
                    out.append(note)
    out.sort(key=lambda n: (n.crd, n.version, n.field))
    return out


def record_source_notes(state_dir: Path | str, crd: dict, source: str) -> list[Note]:
    """For whoever holds the original text of a CRD (a replay of a capture, a chart's crds/):
    note the CEL rules the v1.20 server drops from it. Returns those notes."""
    _, notes = adapt(crd)
    cel = [n for n in notes if n.reason == CEL_REASON]
    if cel:
        record_notes(
            state_dir, (crd.get("metadata") or {}).get("name", "?"), cel, "sources", source
        )
    return cel


def crds_of_release_secret(secret: dict) -> list[dict]:
    """The CRDs of a Helm release Secret's chart (``crds/`` travels in ``chart.files``; the chart's
    subcharts in ``chart.dependencies`` are not stored by Helm 3, their crds/ are in files too)."""
    from handover.sources import helm_storage

    raw = (secret.get("data") or {}).get("release")
    if not raw:
        return []
    rel = helm_storage.decode_release(raw)
    out = []
    for f in (rel.get("chart") or {}).get("files") or []:
        name = f.get("name", "")
        if not name.startswith("crds/") or not name.endswith((".yaml", ".yml", ".json")):
            continue
        import yaml

        try:
            docs = list(yaml.safe_load_all(base64.b64decode(f.get("data") or "")))
        except (yaml.YAMLError, ValueError):
            continue
        out += [
            d for d in docs if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"
        ]
    return out


# -- the webhook --------------------------------------------------------------------------------
def review(request: dict, state_dir: Path | str | None) -> dict:
    """The AdmissionReview (admission.k8s.io/v1) response to one request."""
    req = request.get("request") or {}
    uid = req.get("uid", "")
    obj = req.get("object") or {}
    resp: dict[str, Any] = {"uid": uid, "allowed": True}
    if obj.get("kind") == "Secret" and obj.get("type") == "helm.sh/release.v1":
        if state_dir is not None and not req.get("dryRun"):
            try:
                crds = crds_of_release_secret(obj)
            except Exception as e:  # noqa: BLE001 - never in helm's way
                print(
                    f"cannot read the chart of {(obj.get('metadata') or {}).get('name')}: {e}",
                    flush=True,
                )
                crds = []
            meta = obj.get("metadata") or {}
            for crd in crds:
                record_source_notes(
                    state_dir,
                    crd,
                    f"crds/ of Helm release secret {meta.get('namespace')}/{meta.get('name')}",
                )
    elif obj.get("kind") == "CustomResourceDefinition":
        new, notes = adapt(obj)
        notes += [n for n in cel_rules_from_last_applied(obj) if n not in notes]
        patch = json_patch(obj, new)
        if patch:
            resp["patchType"] = "JSONPatch"
            resp["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        if notes:
            resp["warnings"] = [
                f"rehearsal adapted CRD: {n.field}: {n.change}"[:250] for n in notes[:10]
            ]
        if (
            state_dir is not None
            and not req.get("dryRun")
            and req.get("operation") in ("CREATE", "UPDATE")
        ):
            record_notes(state_dir, (obj.get("metadata") or {}).get("name", "?"), notes)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}


class _Handler(BaseHTTPRequestHandler):
    state_dir: Path | None = None

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        if self.path.split("?")[0] != PATH:
            self.send_error(404)
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            out = json.dumps(review(body, self.state_dir)).encode()
        except Exception as e:  # noqa: BLE001 - answer 400, never crash the server
            self.send_error(400, f"bad AdmissionReview: {e}")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_GET(self) -> None:  # noqa: N802 - readiness
        out = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, fmt: str, *args: Any) -> None:
        print(time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + fmt % args, flush=True)


def webhook_configuration(port: int, ca_bundle: bytes) -> dict:
    """The MutatingWebhookConfiguration that sends every CRD create/update to the adapter
    (annotated with a hash of its webhooks, so ``up()`` replaces an outdated one)."""
    import hashlib

    conf = _webhook_configuration(port, ca_bundle)
    digest = hashlib.sha256(json.dumps(conf["webhooks"], sort_keys=True).encode()).hexdigest()
    conf["metadata"]["annotations"] = {HASH_ANNOTATION: digest[:16]}
    return conf


def _webhook_configuration(port: int, ca_bundle: bytes) -> dict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": CONFIG_NAME,
            "labels": {"app.kubernetes.io/managed-by": "flux-handover-rehearsal"},
        },
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}{PATH}",
                    "caBundle": base64.b64encode(ca_bundle).decode(),
                },
                "rules": [
                    {
                        "apiGroups": ["apiextensions.k8s.io"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["customresourcedefinitions"],
                        "scope": "*",
                    }
                ],
                "matchPolicy": "Equivalent",
                "failurePolicy": "Fail",
                "sideEffects": "NoneOnDryRun",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
                "reinvocationPolicy": "IfNeeded",
                # `rehearsal.flux-handover.io/adapt: "false"` on a CRD: the raw v1.20 behaviour
                "objectSelector": {
                    "matchExpressions": [{"key": OPT_OUT, "operator": "NotIn", "values": ["false"]}]
                },
            },
            {
                # reads the CEL rules of a chart's crds/ from the release Helm stores right after
                # installing them (the server dropped them from the CRD itself); never blocks Helm
                "name": HELM_WEBHOOK_NAME,
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}{PATH}",
                    "caBundle": base64.b64encode(ca_bundle).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["secrets"],
                        "scope": "Namespaced",
                    }
                ],
                "objectSelector": {"matchLabels": {"owner": "helm"}},
                "failurePolicy": "Ignore",
                "sideEffects": "NoneOnDryRun",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
            },
        ],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m handover.rehearsal.crd_adapter", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--state-dir", required=True, type=Path)
    a = ap.parse_args(argv)
    _Handler.state_dir = a.state_dir
    server = ThreadingHTTPServer(("127.0.0.1", a.port), _Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"crd adapter listening on https://127.0.0.1:{a.port}{PATH}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
