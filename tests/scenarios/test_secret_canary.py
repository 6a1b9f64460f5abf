"""The secret canary (issue 8): the rehearsal seeded with one canary string in every place a value
can come from, the runbook run through its failure paths, and every file the suite wrote and
everything it printed searched for the canary (in clear and base64-encoded).

Seeding (on top of the standard seed, scenario-local: the example and handover/rehearsal/seed.py
are unchanged):
- a Helm value given with ``--set``: ``helm upgrade alloy --reuse-values --set canaryNote=CANARY``
  (a key that does not look secret; it is not in Git, so phase 1 reports a values drift);
- a ``valuesFrom`` Secret: alloy's HelmRelease gets ``valuesFrom: Secret alloy-canary-values``
  whose ``values.yaml`` holds the canary (the Secret in Git and kubectl-applied);
- a kubectl-applied Secret: ``log-analyzer-db`` (stringData password = canary) in log-analyzer's
  Git path, applied with client-side ``kubectl apply`` (so its last-applied annotation holds it);
- a connection URL in a ConfigMap: ``log-analyzer-config`` ``DATABASE_URL: postgres://
  analyzer:CANARY@db...`` in the same path, mounted by the Deployment (volume ``config``), both
  kubectl-applied (the Deployment rolls once, before the migration starts).

Runs: phase 1 (alloy and log-analyzer: the values drift is reported), phase 2 (bootstrap and the
diff of both entry points), phase 3 on log-analyzer with a container restart during adoption (the
step fails, the rollback re-applies from the backup and puts the last-applied annotation, which
holds the Secret's data, back through a journaled patch), then log-analyzer again killed (SIGKILL)
right after its handover step and resumed to the end, phase 3 on alloy with the drift accepted
(the adoption upgrade drops the --set value), and phase 4 for log-analyzer.

Asserted: the canary is in no file written outside the backups directory (work dir: JUnit XML,
journal, reports, logs) nor in any run's terminal output; inside the backups it is only in files
0600 whose folders (from the backups directory down) are 0700, and it IS there (the backup is
what a rollback needs). What is not covered: the other components' chains (one helm and one
kubectl chain carry every kind of value), the canary in a chart-generated password.
"""
from __future__ import annotations

import base64
import stat
import uuid
from pathlib import Path

import pytest
import yaml

from handover.core import tools
from handover.core.inventory import load
from handover.core.kube import Kube
from handover.rehearsal import chart_repo
from handover.rehearsal.seed import wait_ready
from tests.harness import run_suite
from tests.rehearsal_support import EXAMPLE_INVENTORY, seeded_stack
from tests.scenarios.phase3_rehearsal import (commit_and_push, git, journal_steps, kill_group,
                                              run_phase3, spawn_phase3, wait_journal)

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]

CANARY = f"Cn4ry{uuid.uuid4().hex[:10]}Q7"
B64 = base64.b64encode(CANARY.encode()).decode()


def _kubectl(stack, *args: str, input: str | None = None) -> None:
    tools.run([str(tools.kubectl()), "--kubeconfig", str(stack.cluster.kubeconfig),
               "--context", stack.cluster.context, *args], input=input, check=True)


def _seed_canary(stack, inv) -> None:
    clone = inv.gitops.path
    # log-analyzer: a kubectl-applied Secret and a ConfigMap with a connection URL
    la = clone / inv.component("log-analyzer").path
    ns = "log-analyzer"
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "log-analyzer-db", "namespace": ns},
              "type": "Opaque", "stringData": {"password": CANARY}}
    config = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "log-analyzer-config", "namespace": ns},
              "data": {"DATABASE_URL": f"postgres://analyzer:{CANARY}@db.log-analyzer:5432/logs"}}
    dep_path = la / "deployment.yaml"
    dep = yaml.safe_load(dep_path.read_text())
    pod = dep["spec"]["template"]["spec"]
    pod["volumes"] = [{"name": "config", "configMap": {"name": "log-analyzer-config"}}]
    pod["containers"][0]["volumeMounts"] = [{"name": "config", "mountPath": "/etc/log-analyzer"}]
    dep_path.write_text(yaml.safe_dump(dep, sort_keys=False))
    (la / "db-secret.yaml").write_text(yaml.safe_dump(secret, sort_keys=False))
    (la / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    k = yaml.safe_load((la / "kustomization.yaml").read_text())
    k["resources"] += ["db-secret.yaml", "config.yaml"]
    (la / "kustomization.yaml").write_text(yaml.safe_dump(k, sort_keys=False))
    # alloy: a valuesFrom Secret in Git and live
    al = clone / inv.component("alloy").path
    vsecret = {"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "alloy-canary-values", "namespace": "logging"},
               "type": "Opaque", "stringData": {"values.yaml": f"canaryFrom: {CANARY}\n"}}
    (al / "values-secret.yaml").write_text(yaml.safe_dump(vsecret, sort_keys=False))
    k = yaml.safe_load((al / "kustomization.yaml").read_text())
    k["resources"] += ["values-secret.yaml"]
    (al / "kustomization.yaml").write_text(yaml.safe_dump(k, sort_keys=False))
    hr_path = al / "helmrelease.yaml"
    hr = yaml.safe_load(hr_path.read_text())
    hr["spec"]["valuesFrom"] = [{"kind": "Secret", "name": "alloy-canary-values"}]
    hr_path.write_text(yaml.safe_dump(hr, sort_keys=False))
    git(clone, "add", "-A")
    commit_and_push(clone, "scenario: secret canary (Secrets, ConfigMap, valuesFrom)")
    for f in (la / "db-secret.yaml", la / "config.yaml", al / "values-secret.yaml", dep_path):
        _kubectl(stack, "apply", "-f", str(f))  # client-side: last-applied annotation
    _kubectl(stack, "rollout", "status", "deployment/log-analyzer", "-n", ns, "--timeout=180s")
    wait_ready(Kube(kubeconfig=stack.cluster.kubeconfig, context=inv.cluster.context),
               list(inv.component("log-analyzer").workloads))
    # alloy: the same value given once with --set, plus one the HelmRelease does not have
    tools.run([str(tools.helm()), "upgrade", "alloy", "alloy", "--repo", stack.chart_repo_url,
               "--version", "1.4.0", "--namespace", "logging", "--reuse-values",
               "--set", f"canaryNote={CANARY}", "--set", f"canaryFrom={CANARY}", "--wait",
               "--kubeconfig", str(stack.cluster.kubeconfig),
               "--kube-context", stack.cluster.context],
              env=chart_repo.helm_env(stack.state_dir), check=True)


def _leaks(root: Path) -> list[str]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if CANARY.encode() in data or B64.encode() in data:
                out.append(str(p))
    return out


@pytest.fixture(scope="module")
def canary_env(tmp_path_factory):
    state = tmp_path_factory.mktemp("canary") / "state"
    work = tmp_path_factory.mktemp("canary-work")
    with seeded_stack(state, EXAMPLE_INVENTORY) as s:
        inv = load(s.inventory_path)
        kube = Kube(kubeconfig=s.cluster.kubeconfig, context=inv.cluster.context)
        _seed_canary(s, inv)
        yield {"stack": s, "work": work, "inv": inv, "kube": kube}


def test_canary_never_written_in_clear(canary_env):
    s, work, inv, kube = (canary_env[k] for k in ("stack", "work", "inv", "kube"))
    kc = ("--kubeconfig", str(s.cluster.kubeconfig))
    outputs: dict[str, str] = {}

    # phase 1: the values drift (the --set value, the valuesFrom value) is reported
    p1 = run_suite(["suites/phase1"], s.inventory_path, work / "phase1.xml", *kc,
                   "--report-dir", str(work / "reports"), "-k", "alloy or log-analyzer")
    outputs["phase1"] = p1.stdout
    drift = [c for c in p1.cases if c.outcome == "failed" and "alloy" in c.name and
             "spec.values differ" in c.message]
    assert drift, f"phase 1 did not report alloy's values drift:\n{p1.stdout[-3000:]}"
    assert "canaryNote: live <sha256:" in drift[0].message, drift[0].message

    # phase 2: bootstrap, the diff of both entry points
    p2 = run_suite(["suites/phase2"], s.inventory_path, work / "phase2.xml", *kc, "--perform",
                   "--report-dir", str(work / "reports"))
    outputs["phase2"] = p2.stdout
    assert p2.returncode == 0, p2.stdout[-3000:]

    # phase 3, log-analyzer: a restart during adoption -> halt and rollback
    journal = work / "journal.jsonl"
    proc = spawn_phase3(s, work / "restart", "-k", "log-analyzer", journal=journal)
    try:
        wait_journal(journal, "log-analyzer", "handover", "passed", 300, proc)
        pod = kube.core.list_namespaced_pod("log-analyzer", label_selector="app=log-analyzer")
        kube.core.patch_namespaced_pod(pod.items[0].metadata.name, "log-analyzer", {
            "metadata": {"annotations": {
                "rehearsal.flux-handover.io/restart": "canary-restart-1"}}})
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    outputs["phase3-restart"] = (work / "restart" / "killed.log").read_text()
    steps = journal_steps(journal, "log-analyzer")
    assert ("rollback", "rolled-back") in steps, (steps, outputs["phase3-restart"][-3000:])
    patches = [e for e in journal.read_text().splitlines() if "restore labels/annotations" in e]
    assert patches, "the rollback did not restore the last-applied annotation (no patch)"

    # phase 3, log-analyzer again: killed right after the handover step, then resumed
    proc = spawn_phase3(s, work / "killed", "-k", "log-analyzer", journal=journal)
    try:
        wait_journal(journal, "log-analyzer", "handover", "passed", 300, proc)
    finally:
        kill_group(proc)
    outputs["phase3-killed"] = (work / "killed" / "killed.log").read_text()
    resumed = run_phase3(s, work / "resumed", "-k", "log-analyzer", journal=journal)
    outputs["phase3-resumed"] = resumed.stdout
    assert resumed.returncode == 0, resumed.stdout[-4000:]

    # phase 3, alloy with its drift accepted (the adoption upgrade drops the --set value)
    alloy = run_phase3(s, work / "alloy", "-k", "alloy", "--accept-hazard", "adoption-values",
                       "--accept-hazard", "adoption-rollout", journal=journal)
    outputs["phase3-alloy"] = alloy.stdout

    # phase 4 for log-analyzer
    p4 = run_suite(["suites/phase4"], s.inventory_path, work / "phase4.xml", *kc, "--perform",
                   "--report-dir", str(work / "reports"), "-k", "log-analyzer")
    outputs["phase4"] = p4.stdout

    # -- nothing in clear outside the backups, nor on the terminal ---------------------------
    for name, text in outputs.items():
        assert CANARY not in text and B64 not in text, f"{name}: terminal output holds the canary"
    written = [p for p in work.rglob("*") if p.is_file()]
    assert [p for p in written if p.parent.name == "reports" and p.suffix == ".json"], written
    assert journal.exists() and [p for p in written if p.suffix == ".xml"], written
    assert _leaks(work) == [], "files written outside the backups hold the canary"
    state_md = list(inv.backups.rglob("MIGRATION_STATE.*")) + list(
        inv.backups.rglob("phase2-diff-*.json")) + list(inv.backups.rglob("journal.jsonl"))
    assert state_md, f"phase 1/2 wrote nothing under {inv.backups}"
    assert not [p for p in state_md if str(p) in _leaks(inv.backups)], \
        "MIGRATION_STATE / phase 2 diff / journal in the backups hold the canary"

    # -- inside the backups: only in 0600 files under 0700 folders, and it is there ----------
    held = _leaks(inv.backups)
    assert held, "the backups do not hold the canary: the rollback could not restore it"
    for f in held:
        p = Path(f)
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, f"{p} holds the canary, mode " \
            f"{oct(stat.S_IMODE(p.stat().st_mode))}"
        d = p.parent
        while True:
            assert stat.S_IMODE(d.stat().st_mode) == 0o700, f"{d} (holding {p.name}) is " \
                f"{oct(stat.S_IMODE(d.stat().st_mode))}"
            if d == inv.backups or inv.backups not in d.parents:
                break
            d = d.parent
