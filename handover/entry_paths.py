"""The GitOps repo paths the gate builds: the cluster path, every path a Flux Kustomization in the
repo points at (the entry points first, then Kustomizations found under those paths), and every
component's path (what the temporary Kustomization ``handover-<name>`` applies).

Discovery reads the YAML files themselves (no kustomize build), so it runs at pytest collection
time and gives test ids that carry the path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import yaml

from handover.flux import KUSTOMIZE_GROUP
from handover.inventory import Inventory


@dataclass(frozen=True)
class EntryPath:
    path: str  # relative to the repo root, normalised: "infrastructure", "clusters/homelab"
    applied_by: str  # who applies it: "Kustomization flux-system/infrastructure", "component loki"
    component: str | None = None  # set for a component's own path

    @property
    def is_component(self) -> bool:
        return self.component is not None


def normalise(path: str) -> str:
    """'./infrastructure/' -> 'infrastructure'; '' and './' -> '.' (the repo root)."""
    p = PurePosixPath(path.strip() or ".")
    parts = [x for x in p.parts if x not in (".", "/")]
    return "/".join(parts) or "."


def _yaml_docs(path: Path) -> Iterator[dict[str, Any]]:
    try:
        for d in yaml.safe_load_all(path.read_text()):
            if isinstance(d, dict):
                yield d
    except (OSError, yaml.YAMLError):
        return  # a broken file is check 1's business (kustomize reports it with the file)


def _flux_kustomizations(directory: Path) -> Iterator[dict[str, Any]]:
    if not directory.is_dir():
        return
    for f in sorted(directory.rglob("*.y*ml")):
        if f.suffix not in (".yaml", ".yml"):
            continue
        for d in _yaml_docs(f):
            if d.get("kind") == "Kustomization" and \
                    str(d.get("apiVersion", "")).startswith(KUSTOMIZE_GROUP + "/"):
                yield d


def _ks_label(d: dict[str, Any]) -> str:
    m = d.get("metadata") or {}
    return f"Kustomization {m.get('namespace', 'flux-system')}/{m.get('name')}"


def discover(inv: Inventory) -> tuple[list[EntryPath], list[str]]:
    """(entry paths in build order, problems found while reading the entry points)."""
    repo = inv.gitops.path
    out: dict[str, EntryPath] = {}
    problems: list[str] = []

    def add(ep: EntryPath) -> None:
        out.setdefault(ep.path, ep)

    if inv.gitops.cluster_path:
        add(EntryPath(normalise(inv.gitops.cluster_path), "Flux bootstrap (clusterPath)"))
    queue: list[str] = []
    for entry in inv.gitops.entrypoints:
        f = repo / entry.file
        if not f.is_file():
            problems.append(f"entry point {entry.file}: file not found in {repo}")
            continue
        found = [d for d in _yaml_docs(f) if d.get("kind") == "Kustomization"
                 and (d.get("metadata") or {}).get("name") == entry.name]
        if not found:
            problems.append(f"entry point {entry.file}: no Kustomization named {entry.name!r}")
            continue
        spath = (found[0].get("spec") or {}).get("path")
        if not spath:
            problems.append(f"entry point {entry.file}: Kustomization {entry.name} has no "
                            "spec.path")
            continue
        p = normalise(spath)
        add(EntryPath(p, _ks_label(found[0])))
        queue.append(p)
    # Kustomizations found under the entry points' paths (nested entry points)
    seen = set(queue)
    while queue:
        p = queue.pop(0)
        for d in _flux_kustomizations(repo / p):
            spath = (d.get("spec") or {}).get("path")
            if not spath:
                continue
            q = normalise(spath)
            if q not in seen:
                seen.add(q)
                add(EntryPath(q, _ks_label(d)))
                queue.append(q)
    for c in inv.components:
        add(EntryPath(normalise(c.path), f"component {c.name} (Kustomization "
                                         f"{c.kustomization_name})", component=c.name))
    return list(out.values()), problems


KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def has_kustomization(directory: Path) -> bool:
    return any((directory / f).is_file() for f in KUSTOMIZATION_FILES)


def generated_resources(directory: Path) -> list[str]:
    """What kustomize-controller puts in the kustomization.yaml it generates for a path that has
    none: every manifest file (a YAML file whose documents have apiVersion and kind) in the
    directory and below, a sub-directory with its own kustomization.yaml taken as a whole.
    (fluxcd/pkg kustomize generator; kustomize-controller docs "Generating a kustomization.yaml
    file".)"""
    out: list[str] = []

    def walk(d: Path) -> None:
        for entry in sorted(d.iterdir()):
            if entry.is_dir():
                if entry.name.startswith("."):
                    continue
                if has_kustomization(entry):
                    out.append(str(entry.relative_to(directory)))
                else:
                    walk(entry)
            elif entry.suffix in (".yaml", ".yml"):
                docs = list(_yaml_docs(entry))
                if docs and all(d_.get("apiVersion") and d_.get("kind") for d_ in docs):
                    out.append(str(entry.relative_to(directory)))
    walk(directory)
    return out


def build(repo: Path, path: str) -> list[dict[str, Any]]:
    """Build a repo path as kustomize-controller does: `kustomize build`, after generating a
    kustomization.yaml when the path has none (in a temporary copy; the checkout is untouched)."""
    import shutil
    import tempfile

    from handover import kustomize

    directory = repo / path
    if not directory.is_dir() or has_kustomization(directory):
        return kustomize.build(directory)
    with tempfile.TemporaryDirectory(prefix="handover-build-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(directory, copy, symlinks=True)
        resources = generated_resources(copy)
        (copy / "kustomization.yaml").write_text(yaml.safe_dump(
            {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
             "resources": resources}))
        try:
            return kustomize.build(copy)
        except kustomize.KustomizeError as e:
            raise kustomize.KustomizeError(directory, e.stderr.replace(str(copy), str(directory)))
