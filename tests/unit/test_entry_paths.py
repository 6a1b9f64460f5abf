from pathlib import Path

from handover.sources import entry_paths
from handover.core.inventory import load

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/homelab/migration.yaml"


def test_normalise():
    assert entry_paths.normalise("./infrastructure/") == "infrastructure"
    assert entry_paths.normalise("./") == "."


def test_discover_example():
    paths, problems = entry_paths.discover(load(EXAMPLE))
    assert problems == []
    names = [p.path for p in paths]
    assert names[:3] == ["clusters/homelab", "infrastructure", "workloads"]
    assert "infrastructure/logging/loki" in names and "workloads/llama-cpp" in names
    assert len(names) == len(set(names))
    assert next(p for p in paths if p.path == "infrastructure").applied_by == \
        "Kustomization flux-system/infrastructure"


def test_generated_kustomization_like_flux(tmp_path):
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "notes.yaml").write_text("just: data\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "kustomization.yaml").write_text("resources: [b.yaml]\n")
    (sub / "b.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")
    assert entry_paths.generated_resources(tmp_path) == ["a.yaml", "sub"]
    objs = entry_paths.build(tmp_path.parent, tmp_path.name)
    assert sorted(o["metadata"]["name"] for o in objs) == ["a", "b"]
    assert not (tmp_path / "kustomization.yaml").exists()  # the checkout is untouched
