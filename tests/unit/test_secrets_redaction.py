"""Issue 8, secrets in clear on disk: every place a value could leak shows it by its path and a
short hash (handover/core/redact.py). Each test failed before the fix named in its docstring."""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from handover.gate.hazards import adoption
from handover.chain import backup
from handover.flux import diff as flux_diff
from handover.core import inventory
from handover.core import redact
from handover.core.errors import HandoverError
from handover.sources.helm_storage import HelmReleaseRecord
from handover.core.inventory import Component, ObjectRef, Workload
from handover.core.journal import Journal
from handover.core.mutation import Mutator
from handover.report.migration import MigrationReport
from tests.unit.kube_fake import FakeKube, release_secret

ROOT = Path(__file__).resolve().parents[2]
CANARY = "Cx9-canary-Q7v2Rk"  # a value whose key says nothing about it being a secret
CANARY_URL = f"postgres://grafana:{CANARY}@db.example:5432/grafana"


@pytest.fixture(autouse=True)
def _fresh_registry():
    redact.forget_all()
    yield
    redact.forget_all()


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def assert_no_canary(text: str, where: str) -> None:
    assert CANARY not in text, f"{where} holds the canary in clear"
    assert b64(CANARY) not in text, f"{where} holds the canary base64-encoded"


# --- the mechanism ------------------------------------------------------------------------------

def test_show_hashes_every_value_except_structure():
    assert redact.show("config.motd", CANARY) == redact.hashed(CANARY)
    assert redact.hashed(CANARY) == "<sha256:" + \
        __import__("hashlib").sha256(CANARY.encode()).hexdigest()[:12] + ">"
    assert redact.show("env[0].value", 42) == redact.hashed(42)
    assert redact.show("auth.enabled", True) == "true"
    assert redact.show("spec.template.spec.containers[0].image", "loki:2") == '"loki:2"'
    assert redact.show("spec.selector", {"app": "a"}) == '{"app": "a"}'
    # a structural-looking key under a secret-looking path is hashed all the same
    assert redact.show("secretEnv.image", CANARY) == redact.hashed(CANARY)


def test_shape_keeps_paths_and_hashes_values():
    body = {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                         json.dumps({"data": {"k": b64(CANARY)}})},
                         "labels": {"x": None}}}
    lines = redact.shape(body)
    assert_no_canary("\n".join(lines), "shape")
    assert 'metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]=<sha256:' \
        in lines[0]
    assert lines[1] == "metadata.labels.x=null"


def test_scrub_kubectl_stderr_echoing_a_patch():
    last_applied = json.dumps({"apiVersion": "v1", "kind": "Secret",
                               "data": {"password": b64(CANARY)}})
    stderr = ("Error from server (Conflict): error when applying patch:\n"
              + json.dumps({"metadata": {"annotations": {
                  "kubectl.kubernetes.io/last-applied-configuration": last_applied}}})
              + "\nto:\nResource: \"/v1, Resource=secrets\", GroupVersionKind: \"/v1, Kind=Secret\""
              + f"\nSecret \"db\" is invalid: data[x]: Invalid value: \"{CANARY}\": too long"
              + f"\nconnecting to {CANARY_URL}: refused; password={CANARY}")
    out = redact.scrub(stderr)
    assert_no_canary(out, "scrubbed stderr")
    assert "Error from server (Conflict): error when applying patch:" in out
    assert "postgres://<sha256:" in out and "Invalid value: <sha256:" in out


def test_scrub_keeps_names_paths_and_commit_ids_readable():
    text = ("HelmRelease logging/loki at main@sha1:0123456789abcdef0123456789abcdef01234567 "
            "backup /tmp/x/backups/grafana/20261129-201530-abcdef")
    assert redact.scrub(text) == text


def test_registered_values_are_hashed_in_free_text():
    redact.register_secret({"data": {"values.yaml": b64(f"motd: {CANARY}\n")}})
    out = redact.scrub(f"helm: values don't match: motd: {CANARY}")
    assert_no_canary(out, "scrubbed helm message")
    assert redact.hashed(CANARY) in out or redact.hashed(f"motd: {CANARY}") in out


def test_private_dir_makes_every_new_level_0700(tmp_path):
    root = tmp_path / "backups"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    f = redact.write_private(root / "grafana" / "run1" / "values.yaml", CANARY, root)
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    for d in (root, root / "grafana", root / "grafana" / "run1"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


# --- the places values leaked from ------------------------------------------------------------

class PatchKube:
    """A kube whose patch() works (records the body) and that is in the inventory's context."""

    context = "homelab"
    kubeconfig = None

    def __init__(self):
        self.patched = []

    def resource(self, api_version, kind):
        def patch(**kw):
            self.patched.append(kw["body"])
            return NS(to_dict=lambda: {})
        return NS(namespaced=True, patch=patch)


def _mutator(tmp_path, kube):
    inv = inventory.load(ROOT / "examples/homelab/migration.yaml")
    return Mutator(kube, inv, Journal(tmp_path / "journal.jsonl"), True)


def test_journal_holds_the_shape_of_a_patch_never_its_values(tmp_path):
    """Before: mutation.patch journaled the body and json.dumps(body) as the action text; the
    rollback's metadata patch of a kubectl-applied Secret carries its whole data."""
    kube = PatchKube()
    m = _mutator(tmp_path, kube)
    last = json.dumps({"apiVersion": "v1", "kind": "Secret", "data": {"token": b64(CANARY)},
                       "stringData": {"url": CANARY_URL}})
    body = {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                         last}}}
    m.patch("v1", "Secret", "db", "apps", body)  # no description: the action names the fields
    assert kube.patched == [body]  # the real body was sent
    text = (tmp_path / "journal.jsonl").read_text()
    assert_no_canary(text, "journal.jsonl")
    assert "last-applied-configuration" in text and "<sha256:" in text
    [intent] = [json.loads(line) for line in text.splitlines()
                if json.loads(line)["kind"] == "intent"]
    assert intent["detail"]["patch"] == redact.shape(body)


def test_journal_scrubs_a_failed_mutation_error(tmp_path):
    """Before: the Mutator journaled str(e) of a failed command: kubectl's stderr echoing the
    patch (and its Secret data) landed in journal.jsonl."""
    m = _mutator(tmp_path, PatchKube())
    patch_echo = json.dumps({"data": {"password": b64(CANARY)}, "stringData": {"u": CANARY}})

    def fail():
        raise HandoverError(f"command failed (1): kubectl apply -f -\nerror when applying "
                            f"patch:\n{patch_echo}\nInvalid value: \"{CANARY}\"")
    with pytest.raises(HandoverError):
        m.call("apply Secret apps/db", fail)
    text = (tmp_path / "journal.jsonl").read_text()
    assert_no_canary(text, "journal.jsonl")
    assert '"kind": "failed"' in text and "error when applying patch" in text


def test_journal_sink_scrubs_step_errors(tmp_path):
    """Before: plugins/rollback.py journaled a failed step's message (error=message[:2000])
    verbatim; the journal itself now scrubs every string it writes."""
    j = Journal(tmp_path / "journal.jsonl")
    redact.register_secret({"stringData": {"motd": CANARY}})
    j.step("failed", error=f"assert ... env[0].value: live \"{CANARY}\"; url {CANARY_URL}")
    assert_no_canary((tmp_path / "journal.jsonl").read_text(), "journal.jsonl")


LOKI = Component("loki", "helm", "high", "apps/loki", ("logging",),
                 release=ObjectRef("loki", "logging"), helm_release=ObjectRef("loki", "logging"))


def _hr(values, values_from=None):
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "loki", "namespace": "logging"},
            "spec": {"chart": {"spec": {"chart": "loki", "version": "6.21.0"}},
                     "values": values, "valuesFrom": values_from or []}}


def test_values_diff_shows_paths_and_hashes_whatever_the_key():
    """Before: the values diff printed live and Git values verbatim unless the key looked like a
    password (`env[0].value: live "..."`, `["grafana.ini"].database.url: live "postgres://..."`)."""
    live = {"env": [{"name": "GREETING", "value": CANARY}],
            "grafana.ini": {"database": {"url": CANARY_URL}}}
    kube = FakeKube(release_secret("loki", "logging", revision=3, config=live))
    [f] = adoption.check_values(kube, LOKI, [_hr({"env": [{"name": "GREETING", "value": "x"}],
                                                  "grafana.ini": {"database": {"url": "y"}}})])
    assert_no_canary(str(f), "the adoption-values finding")
    assert "postgres://grafana" not in str(f)
    assert f"env[0].value: live {redact.hashed(CANARY)}" in f.problem
    assert f'["grafana.ini"].database.url: live {redact.hashed(CANARY_URL)}' in f.problem


def test_values_from_secret_never_printed():
    """Before: hr_values decoded a valuesFrom Secret and the diff printed its values; free text
    (a helm error quoting them) repeated them too."""
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "loki-values", "namespace": "logging"},
              "data": {"values.yaml": b64(f"storage:\n  s3:\n    accessKey: {CANARY}\n")}}
    kube = FakeKube(release_secret("loki", "logging", revision=3, config={}))
    [f] = adoption.check_values(kube, LOKI, [_hr({}, [{"kind": "Secret",
                                                        "name": "loki-values"}]), secret])
    assert_no_canary(str(f), "the adoption-values finding")
    assert "storage.s3.accessKey: live (absent), Git <sha256:" in f.problem
    assert_no_canary(redact.scrub(f"helm upgrade failed: accessKey {CANARY} rejected"),
                     "a later message")


def test_flux_diff_hides_helmrelease_values_and_configmap_data():
    """Before: phase 2's diff wrote HelmRelease spec.values and ConfigMap data in clear into JUnit
    properties (str of each change) and phase2-diff-*.json (to_dict)."""
    def obj(kind, **top):
        return {"apiVersion": "v1", "kind": kind,
                "metadata": {"name": "g", "namespace": "apps", "resourceVersion": "1"}, **top}
    for live, dry in ((obj("HelmRelease", spec={"values": {"motd": "old"}}),
                       obj("HelmRelease", spec={"values": {"motd": CANARY}})),
                      (obj("ConfigMap", data={"db.url": "old"}),
                       obj("ConfigMap", data={"db.url": CANARY_URL}))):
        d = flux_diff.classify(live, dry, "apps", f"{live['kind']} apps/g")
        assert d.action == flux_diff.MODIFIED
        assert_no_canary(str(d), "the diff text (JUnit property)")
        assert_no_canary(json.dumps(dataclasses.asdict(d)), "phase2-diff-*.json")
        assert redact.hashed(CANARY if live["kind"] == "HelmRelease" else CANARY_URL) in str(d)


def test_report_scrubs_registered_values(tmp_path):
    """Before: report.redact only matched `password: x`-looking text: a message quoting a
    value under any other name went into reports/<run>.md/.json in clear."""
    redact.register_secret({"stringData": {"motd": CANARY}})
    r = MigrationReport("run1", "/inv.yaml", "ctx", True)
    c = r.component("grafana", "helm", "medium")
    c.failed_step, c.failure = "ready", f"grafana not Ready: env GREETING={CANARY}"
    c.notes.append(f"hazard ACCEPTED: config.motd live {CANARY}")
    c.rollback.append({"action": "re-apply", "result": "failed",
                       "detail": f"kubectl: {json.dumps({'data': {'u': CANARY_URL}})}"})
    md, js = r.write(tmp_path)
    assert_no_canary(md.read_text(), "report .md")
    assert_no_canary(js.read_text(), "report .json")


def test_backup_folders_are_0700_from_the_backups_directory_down(tmp_path, monkeypatch):
    """Before: backup.take made only the last folder 0700 (mkdir(parents=True, mode=0o700)
    leaves the parents <backups>/<component> at 0755, although docs/phase3.md says 0700)."""
    rec = HelmReleaseRecord("grafana", "logging", "logging", 3, "deployed", "grafana", "8.0.0",
                            "11", {"motd": CANARY}, "")
    monkeypatch.setattr(backup.helm_storage, "latest", lambda kube, n, ns: rec)
    kube = NS(resource=lambda a, k: NS(namespaced=True), get=lambda *a, **k: None)
    comp = Component("grafana", "helm", "medium", "infra/grafana", ("logging",),
                     release=ObjectRef("grafana", "logging"),
                     helm_release=ObjectRef("grafana", "logging"),
                     workloads=(Workload("Deployment", "grafana", "logging", "app=g"),))
    inv = NS(backups=tmp_path / "backups", gitops=NS(path=tmp_path / "repo"))
    r = backup.take(kube, inv, comp, "run1")
    d = Path(r.directory)
    for folder in (tmp_path / "backups", tmp_path / "backups" / "grafana", d):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for rel in r.files:
        assert stat.S_IMODE((d / rel).stat().st_mode) == 0o600, rel


def test_journal_keeps_the_paths_a_resume_reads_back(tmp_path):
    """The scrubbing sink must not break resume: the backup/snapshot paths and the run id a
    resumed run reads from the journal (handover.core.journal.progress) are written as they are."""
    from handover.core import journal as journal_mod
    odd = "Run-Xy9_2025q"  # a registered value that happens to be part of a path
    redact.register(odd)
    j = Journal(tmp_path / "journal.jsonl")
    j.set_context("phase3", "grafana", "backup")
    path = f"/backups/grafana/{odd}/20261129"
    j.step("passed", run=odd, backup=path, note=f"took {path}")
    p = journal_mod.progress(j, "phase3", "grafana")
    assert p.passed["backup"]["backup"] == path and p.passed["backup"]["run"] == odd
    assert odd not in p.passed["backup"]["note"]  # anything else is scrubbed


def test_rollback_action_detail_scrubs_kubectl_stderr():
    """Before: a failed rollback action kept str(e)[:500] of the error, i.e. kubectl's stderr
    echoing the object it re-applied (the Secret's data), for JUnit properties and the report."""
    from handover.chain.rollback import Rollback
    rb = Rollback(kube=None, mutator=None, inventory=None, component=None, record=None)
    echo = json.dumps({"apiVersion": "v1", "kind": "Secret", "data": {"password": b64(CANARY)}})

    def fail():
        raise HandoverError(f"command failed (1): kubectl apply -f -\nerror: {echo}")
    ra = rb._act("re-apply kubectl objects from the backup", fail)
    assert ra.result == "failed" and "command failed (1)" in ra.detail
    assert_no_canary(str(ra), "the rollback action")


def test_scrub_keeps_a_rejected_port_number_readable():
    """The API server's own echo of an int field (check 2's scenario needs "99999") stays; a
    quoted value is hashed."""
    text = ('Service "log-analyzer" is invalid: spec.ports[0].port: Invalid value: 99999: must be '
            'between 1 and 65535')
    assert redact.scrub(text) == text
    assert CANARY not in redact.scrub(f'data[k]: Invalid value: "{CANARY}": bad')


def test_scrub_keeps_a_json_object_of_structure_only():
    """A selector printed by the immutable-fields diff stays readable at the sinks; an object
    with any other value is hashed whole."""
    text = 'spec.selector: live {"matchLabels": {"app": "a"}}, Git {"matchLabels": {"tier": "x"}}'
    assert redact.scrub(text) == text
    assert CANARY not in redact.scrub(json.dumps({"matchLabels": {"app": "a"}, "x": CANARY}))


def test_scrub_never_learns_names_from_structure():
    """A JSON object in a message registers only its possibly-secret values: a label value or a
    reclaim policy seen in one message is not hashed in the next (scenario needles: the Deployment
    llm/llama-cpp, `kubectl patch pv ... Retain`)."""
    redact.scrub('spec.selector: live {"matchLabels": {"app": "llama-cpp"}}')
    fix = ("kubectl patch pv tempo-pv -p '{\"spec\":{\"persistentVolumeReclaimPolicy\":"
           "\"Retain\"}}' (and set persistentVolumeReclaimPolicy: Retain in Git)")
    assert redact.scrub(fix) == fix
    assert redact.scrub("Deployment llm/llama-cpp") == "Deployment llm/llama-cpp"


def test_scrub_of_a_patch_echo_does_not_hide_the_object_name_later():
    echo = json.dumps({"metadata": {"name": "log-analyzer-db"}, "data": {"password": CANARY}})
    assert_no_canary(redact.scrub(f"error when applying patch: {echo}"), "scrubbed echo")
    assert redact.scrub("Secret log-analyzer/log-analyzer-db") == \
        "Secret log-analyzer/log-analyzer-db"
    assert_no_canary(redact.scrub(f"later: {CANARY}"), "a later message")
