"""Scenario catalogue for phase 1's runbook checks 1-8: each scenario breaks the seeded example in
ONE way (an edit in a private copy of the GitOps remote + clone, an inventory copy, or a live
change undone afterwards), runs the checks in a child pytest with --junitxml, and asserts that
exactly the intended testcases fail, with the intended message. The hazard scenarios are in
test_phase1_hazards.py; the clean run and the read-only proof in test_phase1_readonly.py.
"""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.scenarios.conftest import explain

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"scenario setup: {old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def assert_only(run, expected: set[str], *needles: str) -> None:
    assert set(run.failed) == expected, explain(run)
    for name in expected:
        msg = run.message(name)
        for n in needles:
            assert n in msg, f"{name}: {n!r} not in its message:\n{msg}"


def test_check1_kustomize_build_error_names_the_file(rehearsal, tmp_path):
    def edit(clone: Path) -> None:
        replace_in(clone / "infrastructure/logging/loki/kustomization.yaml",
                   "  - helmrelease.yaml", "  - helmrelease.yaml\n  - retention-policy.yaml")
    inv = rehearsal.repo_variant(tmp_path / "repo", edit, "loki: reference a missing file")
    run = rehearsal.run(tmp_path / "run", inv)
    assert_only(run, {"test_kustomize_build[infrastructure]",
                      "test_kustomize_build[infrastructure/logging/loki]"},
                "kustomize build failed", "retention-policy.yaml")
    # the checks that need that build skip, pointing at check 1, instead of failing again
    assert run.by_name["test_server_dry_run[infrastructure]"].outcome == "skipped"
    assert "see test_kustomize_build[infrastructure]" in \
        run.message("test_server_dry_run[infrastructure]")


def test_check2_server_rejects_an_object(rehearsal, tmp_path):
    def edit(clone: Path) -> None:
        replace_in(clone / "workloads/log-analyzer/service.yaml", "port: 8000", "port: 99999")
    inv = rehearsal.repo_variant(tmp_path / "repo", edit, "log-analyzer: bad service port")
    run = rehearsal.run(tmp_path / "run", inv)
    assert_only(run, {"test_server_dry_run[workloads]"},
                "Service log-analyzer/log-analyzer", "rejected by the API server",
                "99999")


def test_check3_git_object_owned_by_a_helm_release(rehearsal, tmp_path):
    svc = rehearsal.admin.resources.get(api_version="v1", kind="Service")

    def apply() -> None:
        svc.patch(name="llama-cpp", namespace="llm", content_type="application/merge-patch+json",
                  body={"metadata": {
                      "labels": {"app.kubernetes.io/managed-by": "Helm"},
                      "annotations": {"meta.helm.sh/release-name": "grafana",
                                      "meta.helm.sh/release-namespace": "logging"}}})

    def undo() -> None:
        svc.patch(name="llama-cpp", namespace="llm", content_type="application/merge-patch+json",
                  body={"metadata": {
                      "labels": {"app.kubernetes.io/managed-by": None},
                      "annotations": {"meta.helm.sh/release-name": None,
                                      "meta.helm.sh/release-namespace": None}}})

    with rehearsal.cluster_change(apply, undo):
        run = rehearsal.run(tmp_path / "run", rehearsal.inventory_path)
    assert_only(run, {"test_ownership[llama-cpp]"}, "Service llm/llama-cpp",
                "owned live by Helm release logging/grafana", "two owners")


def test_check4_old_server_fails_when_not_the_rehearsal(rehearsal, tmp_path):
    def not_rehearsal(data: dict) -> None:
        del data["cluster"]["rehearsalStateDir"]
    inv = rehearsal.inventory_copy(tmp_path / "inv", not_rehearsal)
    run = rehearsal.run(tmp_path / "run", inv)
    assert_only(run, {"test_kubernetes_version"},
                "server version v1.20.2 is below Flux 2.4.0's minimum 1.28",
                "Kubernetes API server of cluster 'homelab'")
    assert "the rehearsal cluster" not in run.message("test_kubernetes_version")


def test_check5_sourceref_to_an_undefined_helmrepository(rehearsal, tmp_path):
    def edit(clone: Path) -> None:
        replace_in(clone / "infrastructure/logging/grafana/helmrelease.yaml",
                   "name: grafana\n        namespace: flux-system",
                   "name: grafana-charts\n        namespace: flux-system")
    inv = rehearsal.repo_variant(tmp_path / "repo", edit, "grafana: wrong sourceRef")
    run = rehearsal.run(tmp_path / "run", inv)
    assert_only(run, {"test_helmrelease_refs[grafana]"},
                "HelmRepository flux-system/grafana-charts, which is not defined")


def test_check6_unreachable_chart_repository(rehearsal, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now

    def edit(clone: Path) -> None:
        f = clone / "infrastructure/sources/grafana.yaml"
        lines = [f"  url: http://127.0.0.1:{port}/charts" if ln.strip().startswith("url:")
                 else ln for ln in f.read_text().splitlines()]
        f.write_text("\n".join(lines) + "\n")
    inv = rehearsal.repo_variant(tmp_path / "repo", edit, "grafana repo: dead URL")
    run = rehearsal.run(tmp_path / "run", inv)
    assert_only(run, {"test_chart_versions_available[flux-system/grafana]"},
                "cannot read the repository index", f"127.0.0.1:{port}")


def test_check7_dirty_working_tree(rehearsal, tmp_path):
    inv = rehearsal.repo_variant(tmp_path / "repo",
                                 lambda clone: (clone / "NOTES.txt").write_text("todo\n"),
                                 commit=False)
    run = rehearsal.run(tmp_path / "run", inv)
    assert_only(run, {"test_working_tree_clean"}, "working tree not clean", "NOTES.txt")


def test_check7_branch_not_pushed(rehearsal, tmp_path):
    def edit(clone: Path) -> None:
        (clone / "README.md").write_text((clone / "README.md").read_text() + "\nlocal note\n")
    inv = rehearsal.repo_variant(tmp_path / "repo", edit, "a local commit", push=False)
    run = rehearsal.run(tmp_path / "run", inv)
    assert_only(run, {"test_branch_pushed"}, "local head", "1 commit(s) ahead")


def test_check8_report_dir_not_writable(rehearsal, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the report directory should be\n")
    run = rehearsal.run(tmp_path / "run", rehearsal.inventory_path, None,
                        "--report-dir", str(blocker / "reports"))
    assert_only(run, {"test_migration_state"}, "cannot write MIGRATION_STATE.md/.json",
                str(blocker))


def test_check6_oci_registry_that_does_not_answer_fails_naming_the_opt_out(rehearsal, tmp_path):
    """An OCI HelmRepository whose registry does not answer: check 6 FAILS naming the opt-out
    chart-registry (before: it skipped and the gate passed); with --skip-check chart-registry it
    is skipped by that opt-out."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now

    def edit(clone: Path) -> None:
        f = clone / "infrastructure/sources/grafana.yaml"
        lines = [f"  type: oci\n  url: oci://127.0.0.1:{port}/charts"
                 if ln.strip().startswith("url:") else ln for ln in f.read_text().splitlines()]
        f.write_text("\n".join(lines) + "\n")
    inv = rehearsal.repo_variant(tmp_path / "repo", edit, "grafana repo: OCI, no registry")
    suite = ["suites/phase1/test_06_chart_availability.py"]
    run = rehearsal.run(tmp_path / "run", inv, suite)
    assert_only(run, {"test_chart_versions_available[flux-system/grafana]"},
                "NOT CHECKED", f"oci://127.0.0.1:{port}/charts", "did not answer",
                "--skip-check chart-registry")
    run = rehearsal.run(tmp_path / "opted-out", inv, suite, "--skip-check", "chart-registry")
    assert run.failed == [] and run.returncode == 0, explain(run)
    case = run.by_name["test_chart_versions_available[flux-system/grafana]"]
    assert case.outcome == "skipped" and \
        "skipped by opt-out chart-registry (--skip-check)" in case.message, case.message
