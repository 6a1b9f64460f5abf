"""postBuild variable substitution of the kustomize-controller stand-in.

Upstream: fluxcd/pkg kustomize/kustomize_varsub.go (SubstituteVariables, loadVars,
varSubstitution) with github.com/drone/envsubst (parse/scan.go, eval.go):
- vars: ``spec.postBuild.substituteFrom`` ConfigMaps/Secrets in order (data keys; ``optional``
  skips a missing object), then ``spec.postBuild.substitute`` on top; newlines removed from values;
- names must match ``^[_[:alpha:]][_[:alpha:][:digit:]]*$``;
- nothing is substituted when there are no vars at all;
- objects labelled or annotated ``kustomize.toolkit.fluxcd.io/substitute: disabled`` are skipped;
- each object is serialised to YAML, substituted as text and read back (so ``${VAR}`` unset
  becomes an empty scalar, a number-like value becomes a number);
- ``${var}`` (unset -> empty string), ``${var:=default}`` / ``${var:-default}`` (unset or empty ->
  default), ``${var=default}`` / ``${var-default}`` (unset -> default); ``$$`` escapes ``$``;
  plain ``$var`` is not substituted (envsubst scans only ``${``).
The other envsubst functions (``${#var}``, case changes, substrings, pattern strip/replace) are
NOT emulated: an expression using one is refused with a named error (the Kustomization is then
not Ready), never substituted wrongly.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import yaml

VAR_NAME = re.compile(r"^[_A-Za-z][_A-Za-z0-9]*$")
_IDENT = re.compile(r"[\w-]+")
DISABLED_KEY = "kustomize.toolkit.fluxcd.io/substitute"


class SubstitutionError(Exception):
    pass


def load_vars(ks: dict[str, Any], get: Callable[[str, str, str], dict | None]) -> dict[str, str]:
    """loadVars + the inline substitute map; ``get(kind, name, namespace)``."""
    post = (ks.get("spec") or {}).get("postBuild") or {}
    ns = ks["metadata"]["namespace"]
    out: dict[str, str] = {}
    for ref in post.get("substituteFrom") or []:
        kind, name = ref.get("kind"), ref.get("name")
        obj = get(kind, name, ns)
        if obj is None:
            if ref.get("optional"):
                continue
            raise SubstitutionError(
                f"substitute from '{kind}/{name}' error: {kind.lower()}s \"{name}\" not found"
            )
        for k, v in (obj.get("data") or {}).items():
            if kind == "Secret":
                v = base64.b64decode(v).decode()
            out[k] = str(v).replace("\n", "")
    for k, v in (post.get("substitute") or {}).items():
        out[k] = str(v).replace("\n", "")
    return out


def envsubst(text: str, vars: dict[str, str]) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "$" and i + 1 < n and text[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        if c == "$" and i + 1 < n and text[i + 1] == "{":
            depth, j = 1, i + 2
            while j < n and depth:
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                j += 1
            if depth:
                raise SubstitutionError(
                    f"variable substitution failed: missing closing brace in {text[i : i + 40]!r}"
                )
            out.append(_expr(text[i + 2 : j - 1], vars))
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _expr(inner: str, vars: dict[str, str]) -> str:
    m = _IDENT.match(inner)
    if not m:
        raise SubstitutionError(
            f"postBuild substitution '${{{inner}}}': envsubst functions "
            "other than ${var}, ${var:=default}, ${var:-default}, "
            "${var=default} are not emulated by the rehearsal stand-in"
        )
    name, rest = m.group(0), inner[m.end() :]
    if rest == "":
        return vars.get(name, "")
    for op in (":=", ":-"):
        if rest.startswith(op):
            v = vars.get(name, "")
            return v if v != "" else envsubst(rest[2:], vars)
    for op in ("=", "-"):
        if rest.startswith(op):
            return vars[name] if name in vars else envsubst(rest[1:], vars)
    raise SubstitutionError(
        f"postBuild substitution '${{{inner}}}': the envsubst function "
        f"'{rest[:3]}' is not emulated by the rehearsal stand-in"
    )


def substitute(objects: list[dict[str, Any]], vars: dict[str, str]) -> list[dict[str, Any]]:
    """SubstituteVariables over every built object."""
    if not vars:
        return objects
    for k in vars:
        if not VAR_NAME.match(k):
            raise SubstitutionError(
                f"'{k}' var name is invalid, must match '^[_[:alpha:]][_[:alpha:][:digit:]]*$'"
            )
    out = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        if (meta.get("labels") or {}).get(DISABLED_KEY) == "disabled" or (
            meta.get("annotations") or {}
        ).get(DISABLED_KEY) == "disabled":
            out.append(obj)
            continue
        text = yaml.safe_dump(obj, sort_keys=False, width=1 << 30)
        try:
            new = yaml.safe_load(envsubst(text, vars))
        except yaml.YAMLError as e:
            raise SubstitutionError(f"YAMLToJSON: {e}") from e
        out.append(new)
    return out
