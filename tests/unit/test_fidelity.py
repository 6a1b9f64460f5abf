"""The fidelity verdict (handover/rehearsal/fidelity.py): per component, the Flux features in use that the
rehearsal's stand-ins do not reproduce; the stand-ins' refusals; docs/flux-standins.md generated
from the same table."""
from __future__ import annotations

from pathlib import Path

import yaml

from handover.rehearsal import fidelity
from handover.core import inventory

ROOT = Path(__file__).resolve().parents[2]


def hr(**spec) -> dict:
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": "app", "namespace": "apps"},
            "spec": {"chart": {"spec": {"chart": "app", "sourceRef": {
                "kind": "HelmRepository", "name": "charts"}}}, **spec}}


def test_doc_is_generated_from_the_table():
    text = (ROOT / "docs/flux-standins.md").read_text()
    assert fidelity.render_markdown() in text, (
        "docs/flux-standins.md is stale: run python -m handover.rehearsal.fidelity --write-doc")
    for f in fidelity.FEATURES:
        assert f.title in text


def test_features_in_use_are_gaps_emulated_ones_are_not():
    gaps = fidelity.component_gaps("app", [hr(driftDetection={"mode": "enabled"},
                                              postRenderers=[{"kustomize": {"images": []}}],
                                              test={"enable": True})], flux_version="2.4.0")
    keys = [g.feature.key for g in gaps]
    assert keys == ["hr-drift-detection", "hr-tests"]  # postRenderers: emulated, no gap
    assert fidelity.summary(gaps).startswith("proof does not cover: HelmRelease apps/app: "
                                             "driftDetection")
    assert fidelity.component_gaps("app", [hr()], flux_version="2.4.0") == []
    assert fidelity.summary([]) == ""


def test_helm4_from_the_inventorys_flux_version():
    """Flux >= 2.8 runs Helm 4 (server-side apply, kstatus wait): every HelmRelease is a gap."""
    assert [g.feature.key for g in fidelity.component_gaps("app", [hr()], flux_version="2.8.0")] \
        == ["hr-helm4"]
    assert fidelity.component_gaps("app", [hr()], flux_version="2.7.3") == []


def test_referenced_oci_source_is_a_gap_unreferenced_is_not():
    oci = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
           "metadata": {"name": "charts", "namespace": "flux-system"},
           "spec": {"type": "oci", "url": "oci://registry.example/charts"}}
    other = {**oci, "metadata": {"name": "other", "namespace": "flux-system"}}
    gaps = fidelity.component_gaps("app", [hr()], [oci, other])
    assert [(g.object_id, g.feature.key) for g in gaps] == [
        ("HelmRepository flux-system/charts", "src-oci-helmrepo")]


def test_refusals_name_the_feature():
    obj = hr(upgrade={"strategy": {"name": "RetryOnFailure"}})
    refused = fidelity.refusals(obj)
    assert [f.key for f in refused] == ["hr-retry-on-failure"]
    assert "RetryOnFailure" in fidelity.refusal_message(refused)
    ks = {"kind": "Kustomization", "spec": {"decryption": {"provider": "sops"}}}
    assert [f.key for f in fidelity.refusals(ks)] == ["ks-decryption"]
    assert fidelity.refusals(hr(driftDetection={"mode": "enabled"})) == []  # reported only


def test_verdict_of_the_example_inventory_reads_the_users_tree(tmp_path):
    inv = inventory.load(ROOT / "examples/homelab/migration.yaml")
    v = fidelity.verdict(inv)
    assert set(v) == {c.name for c in inv.components}
    assert [str(g) for g in v["envoy-gateway"]] == [
        "HelmRepository flux-system/envoy-gateway: type: oci (refused)"]
    # a rehearsal copy (its GitOps tree rewritten by the seed) is judged by the user's tree
    doc = yaml.safe_load((ROOT / "examples/homelab/migration.yaml").read_text())
    doc["gitops"]["path"] = str(tmp_path / "rewritten")
    (tmp_path / "rewritten").mkdir()
    copy = tmp_path / "migration.yaml"
    copy.write_text(f"# Rehearsal copy of {ROOT / 'examples/homelab/migration.yaml'} written by "
                    "the seed:\n" + yaml.safe_dump(doc))
    v2 = fidelity.verdict(inventory.load(copy))
    assert [str(g) for g in v2["envoy-gateway"]] == [str(g) for g in v["envoy-gateway"]]


def test_rehearsal_status_prints_the_verdict(tmp_path, capsys, monkeypatch):
    """`handover rehearsal status` lists, per component, what the proof does not cover."""
    from handover import cli
    from handover.rehearsal import cluster as cluster_mod
    src = ROOT / "examples/homelab/migration.yaml"
    (tmp_path / "migration.yaml").write_text(
        f"# Rehearsal copy of {src} written by the seed:\n" + src.read_text().replace(
            "./gitops", str(src.parent / "gitops")).replace("./backups", str(tmp_path / "b")))
    monkeypatch.setattr(cluster_mod.RehearsalCluster, "status", lambda self: {
        "state_dir": str(tmp_path), "kubeconfig": "k", "context": "c", "components": {},
        "running": True})
    fid = cli._fidelity(tmp_path)
    assert fid["envoy-gateway"] == ["HelmRepository flux-system/envoy-gateway: type: oci "
                                    "(refused)"]
    assert fid["loki"] == []
    assert cli.main(["rehearsal", "status", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "envoy-gateway              proof does not cover: HelmRepository " \
           "flux-system/envoy-gateway: type: oci (refused)" in out
    assert "loki                       all features in use are reproduced" in out
