"""The inventory: the example is valid; each kind of invalid input gets its own message with the
key path, and every problem of a file is reported at once."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from handover import target as targets
from handover.core import inventory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "homelab" / "migration.yaml"


@pytest.fixture()
def doc() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def problems(doc, tmp_path: Path) -> list[str]:
    with pytest.raises(inventory.InventoryError) as exc:
        inventory.parse(doc, tmp_path / "migration.yaml")
    return exc.value.problems


def test_example_is_valid_and_ordered():
    inv = inventory.load(EXAMPLE)
    assert [c.name for c in inv.components] == [
        "storage", "envoy-gateway", "alloy", "tempo", "grafana", "llama-cpp", "log-analyzer",
        "loki"]
    assert inv.components[-1].risk == "high"
    loki = inv.component("loki")
    assert loki.release == inventory.ObjectRef("loki", "logging")
    assert loki.helm_release == inventory.ObjectRef("loki", "logging")
    assert loki.workloads[0].kind == "StatefulSet"
    assert loki.pvs == ("loki-pv",)
    assert loki.kustomization_name == "handover-loki"
    assert inv.gitops.path == (EXAMPLE.parent / "gitops").resolve()
    assert inv.backups == (EXAMPLE.parent / "backups").resolve()
    assert inv.cluster.context == "homelab" and isinstance(targets.of(inv), targets.Live)
    assert [e.name for e in inv.gitops.entrypoints] == ["infrastructure", "workloads"]


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(inventory.InventoryError) as exc:
        inventory.load(tmp_path / "nope.yaml")
    assert "not found" in str(exc.value) and "nope.yaml" in str(exc.value)


def test_not_yaml(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("cluster: [unclosed\n")
    with pytest.raises(inventory.InventoryError) as exc:
        inventory.load(p)
    assert "not valid YAML" in exc.value.problems[0]


def test_not_a_mapping(tmp_path):
    assert problems(["a", "b"], tmp_path) == ["(document): must be a mapping, got list"]


def test_helm_component_without_release(doc, tmp_path):
    del doc["components"][3]["release"]
    assert problems(doc, tmp_path) == ["components[3].release: required"]


def test_every_problem_at_once(doc, tmp_path):
    del doc["cluster"]["context"]
    doc["components"][1]["type"] = "helmchart"
    doc["components"][2]["health"][0]["port"] = 70000
    doc["components"][4]["workloads"][0]["kind"] = "Pod"
    doc["gitops"]["entrypoints"][0] = {"file": "clusters/homelab/infrastructure.yaml"}
    got = problems(doc, tmp_path)
    assert "cluster.context: required" in got
    assert "components[1].type: must be one of helm, manifests, storage, got 'helmchart'" in got
    assert "components[2].health[0].port: must be between 1 and 65535, got 70000" in got
    assert ("components[4].workloads[0].kind: must be one of Deployment, StatefulSet, "
            "DaemonSet, got 'Pod'") in got
    assert "gitops.entrypoints[0].name: required" in got


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: d.update(apiVersion="v2"), "apiVersion: must be flux-handover/v1, got 'v2'"),
    (lambda d: d.update(kind="Plan"), "kind: must be Migration, got 'Plan'"),
    (lambda d: d["cluster"].update(fluxVersion="latest"),
     "cluster.fluxVersion: must look like 2.4 or 2.4.0, got 'latest'"),
    (lambda d: d["cluster"].update(contxt="x"),
     "cluster.contxt: unknown key (allowed: context, fluxComponentsExtra, fluxNamespace, fluxVersion, name, nodes, "
     "rehearsalStateDir)"),
    (lambda d: d["cluster"].update(nodes=[{"name": "n1", "host": "node1"}]),
     "cluster.nodes[0].host: must be a testinfra host spec such as local:// or ssh://user@node, "
     "got 'node1'"),
    (lambda d: d["cluster"].update(nodes=[{"host": "local://"}]), "cluster.nodes[0].name: required"),
    (lambda d: d["components"][0].update(name="Storage_1"),
     "components[0].name: 'Storage_1' is not a valid name (lowercase letters, digits, '-')"),
    (lambda d: d["components"][1].update(name="storage"),
     "components[1].name: duplicate name 'storage' (also components[0])"),
    (lambda d: d["components"][0].update(risk="none"),
     "components[0].risk: must be one of low, medium, high, got 'none'"),
    (lambda d: d["components"][0].update(path="/abs/path"),
     "components[0].path: must be relative to the GitOps repo root, got '/abs/path'"),
    (lambda d: d["components"][0].update(path="../outside"),
     "components[0].path: must be relative to the GitOps repo root, got '../outside'"),
    (lambda d: d["components"][5].update(release={"name": "x", "namespace": "llm"}),
     "components[5].release: only for type helm, this component is 'manifests'"),
    (lambda d: d["components"][1]["release"].pop("namespace"),
     "components[1].release.namespace: required"),
    (lambda d: d["components"][1].update(workloads=[]),
     "components[1].workloads: must name at least one workload"),
    (lambda d: d["components"][1]["workloads"][0].update(namespace="elsewhere"),
     "components[1].workloads[0].namespace: 'elsewhere' is not one of the component's "
     "namespaces ['envoy-gateway-system']"),
    (lambda d: d["components"][0].pop("pvs"), "components[0].pvs: required"),
    (lambda d: d["components"][2]["health"][0].update(path="ready"),
     "components[2].health[0].path: must start with '/', got 'ready'"),
    (lambda d: d.update(components=[]), "components: must list at least one component"),
    (lambda d: d.update(components={"a": 1}), "components: must be a list, got dict"),
    (lambda d: d["gitops"].update(entrypoints=[]),
     "gitops.entrypoints: must name at least one entry-point Kustomization"),
    (lambda d: d.pop("backups"), "backups: required"),
    (lambda d: d["timeouts"].update(ready="5m"), "timeouts.ready: must be an integer, got '5m'"),
    (lambda d: d["components"][1].update(readyTimeout=0),
     "components[1].readyTimeout: must be >= 1, got 0"),
])
def test_each_invalid_input_has_its_message(doc, tmp_path, mutate, expected):
    bad = copy.deepcopy(doc)
    mutate(bad)
    assert problems(bad, tmp_path) == [expected]


def test_relative_paths_resolve_against_the_file(doc, tmp_path):
    inv = inventory.parse(doc, tmp_path / "sub" / "migration.yaml")
    assert inv.gitops.path == (tmp_path / "sub" / "gitops").resolve()
    doc["cluster"]["rehearsalStateDir"] = "."
    inv = inventory.parse(doc, tmp_path / "migration.yaml")
    assert isinstance(targets.of(inv), targets.Rehearsal) and \
        inv.cluster.rehearsal_state_dir == tmp_path.resolve()


def test_node_access_by_name_then_wildcard(doc, tmp_path):
    doc["cluster"]["nodes"] = [{"name": "n1", "host": "ssh://admin@n1"},
                               {"name": "*", "host": "local://", "root": "node-root"}]
    inv = inventory.parse(doc, tmp_path / "migration.yaml")
    assert inv.cluster.node_access("n1").host == "ssh://admin@n1"
    assert inv.cluster.node_access("n1").root == "/"
    other = inv.cluster.node_access("n2")
    assert other.host == "local://" and other.root == str((tmp_path / "node-root").resolve())


def test_inventory_serialises_to_json():
    inv = inventory.load(EXAMPLE)
    assert '"name": "loki"' in inv.to_json()
