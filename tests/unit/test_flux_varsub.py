"""postBuild substitution of the kustomize-controller stand-in (handover/rehearsal/flux/varsub.py).

Source: fluxcd/pkg kustomize/kustomize_varsub.go (SubstituteVariables, loadVars, varSubstitution)
and github.com/drone/envsubst (parse/scan.go: only ``${`` opens a variable, ``$$`` escapes)."""
from __future__ import annotations

import base64

import pytest

from handover.rehearsal.flux.varsub import SubstitutionError, envsubst, load_vars, substitute


def ks(post: dict) -> dict:
    return {"metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {"postBuild": post}}


def test_unset_variables_become_empty_and_defaults_apply():
    """Source: fluxcd/pkg kustomize_varsub.go varSubstitution (vars[s] -> "" when unset); drone/envsubst ${var:=default}."""
    out = envsubst("a: ${A}\nb: ${B:=dflt}\nc: ${C:-x}\nd: ${D=set}\ne: ${UNSET}\n",
                   {"A": "1", "B": "", "C": "kept"})
    assert out == "a: 1\nb: dflt\nc: kept\nd: set\ne: \n"


def test_dollar_escapes_and_plain_dollar_var_untouched():
    """Source: drone/envsubst parse/scan.go scanEscaped ($$) and scanLbrack (only '${')."""
    assert envsubst("x: $${A} y: $A", {"A": "1"}) == "x: ${A} y: $A"


def test_unemulated_function_is_refused_by_name():
    """Source: drone/envsubst readme (${#var}, ${var^^}, ...): refused, never substituted wrongly."""
    with pytest.raises(SubstitutionError, match="not emulated"):
        envsubst("${#A}", {"A": "abc"})
    with pytest.raises(SubstitutionError, match="not emulated"):
        envsubst("${A^^}", {"A": "abc"})


def test_vars_order_inline_wins_newlines_removed_and_secret_decoded():
    """Source: fluxcd/pkg kustomize_varsub.go loadVars (substituteFrom in order, optional) and SubstituteVariables (inline substitute overrides)."""
    objs = {("ConfigMap", "cm"): {"data": {"A": "from-cm", "B": "b\n"}},
            ("Secret", "sec"): {"data": {"A": base64.b64encode(b"from-secret").decode()}}}
    vars = load_vars(ks({"substitute": {"C": "inline"}, "substituteFrom": [
        {"kind": "ConfigMap", "name": "cm"}, {"kind": "Secret", "name": "sec"},
        {"kind": "ConfigMap", "name": "gone", "optional": True}]}),
        lambda kind, name, ns: objs.get((kind, name)))
    assert vars == {"A": "from-secret", "B": "b", "C": "inline"}
    with pytest.raises(SubstitutionError, match="ConfigMap/gone"):
        load_vars(ks({"substituteFrom": [{"kind": "ConfigMap", "name": "gone"}]}),
                  lambda *a: None)


def test_substitute_objects_types_disabled_and_no_vars():
    """Source: fluxcd/pkg kustomize_varsub.go SubstituteVariables (YAML round trip; 'substitute: disabled'; no vars -> untouched)."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
          "data": {"port": "${PORT}", "missing": "${NOPE}", "name": "${NAME:=web}"}}
    off = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "d", "annotations": {
               "kustomize.toolkit.fluxcd.io/substitute": "disabled"}},
           "data": {"x": "${PORT}"}}
    out = substitute([cm, off], {"PORT": "8080"})
    assert out[0]["data"] == {"port": 8080, "missing": None, "name": "web"}
    assert out[1]["data"] == {"x": "${PORT}"}
    assert substitute([cm], {})[0]["data"]["port"] == "${PORT}"
    with pytest.raises(SubstitutionError, match="var name is invalid"):
        substitute([cm], {"BAD-NAME": "1"})
