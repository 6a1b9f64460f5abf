"""The GitOps repo paths the gate builds: the cluster path, every path a Flux Kustomization in the
repo points at (the entry points first, then Kustomizations found under those paths), and every
component's path (what the temporary Kustomization ``handover-<name>`` applies).

Discovery reads the YAML files themselves (no kustomize build), so it runs at pytest collection
time and gives test ids that carry the path.

A Kustomization whose ``sourceRef`` is an ``ExternalArtifact`` (Flux 2.7) builds a path of that
artifact, not of the repo: the artifact is assembled by an ``ArtifactGenerator`` in the repo from
its ``copy`` operations (source-watcher api/v1beta1, ``@alias/glob`` -> ``@artifact/dest``). Such a
path is written ``@<artifact>/<path>`` (e.g. ``@apps/production``) and built from a local copy
assembled the same way from the checkout (sources of kind GitRepository = this repository).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from handover.core.inventory import Inventory
from handover.flux.rules import KUSTOMIZE_GROUP


@dataclass(frozen=True)
class EntryPath:
    path: str  # relative to the repo root, normalised: "infrastructure", "clusters/homelab"
    applied_by: str  # who applies it: "Kustomization flux-system/infrastructure", "component loki"
    component: str | None = None  # set for a component's own path
    overlay: str = ""  # JSON: the applying Kustomization's build settings (see overlay_of)

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
            if d.get("kind") == "Kustomization" and str(d.get("apiVersion", "")).startswith(
                KUSTOMIZE_GROUP + "/"
            ):
                yield d


# --- ExternalArtifacts assembled by ArtifactGenerators ------------------------------------------

GENERATOR_GROUP = "source.extensions.fluxcd.io"
# repo -> artifact name -> [(from glob relative to the repo, to path inside the artifact)]
_GENERATED: dict[str, dict[str, list[tuple[str, str]]]] = {}
_MATERIALISED: dict[tuple[str, str], Path] = {}


def artifact_generators(
    repo: Path, files: list[Path]
) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """ArtifactGenerators in these files: artifact name -> copy operations, and problems (a source
    kind other than GitRepository cannot be assembled from the checkout)."""
    out: dict[str, list[tuple[str, str]]] = {}
    problems: list[str] = []
    for f in files:
        for d in _yaml_docs(f):
            if d.get("kind") != "ArtifactGenerator" or not str(d.get("apiVersion", "")).startswith(
                GENERATOR_GROUP + "/"
            ):
                continue
            spec = d.get("spec") or {}
            git = {
                s_.get("alias")
                for s_ in spec.get("sources") or []
                if s_.get("kind") == "GitRepository"
            }
            for a in spec.get("artifacts") or []:
                ops = []
                for c in a.get("copy") or []:
                    src, dst = str(c.get("from", "")), str(c.get("to", ""))
                    alias, _, rest = src.lstrip("@").partition("/")
                    if alias not in git:
                        problems.append(
                            f"ArtifactGenerator {(d.get('metadata') or {}).get('name')}: artifact "
                            f"{a.get('name')} copies from {src!r}, a source that is not a "
                            f"GitRepository: not assembled, its paths are not built"
                        )
                        continue
                    ops.append((rest, dst.split("@artifact", 1)[-1].lstrip("/")))
                out[str(a.get("name"))] = ops
    return out, problems


def _copy_op(repo: Path, dest: Path, src_glob: str, to: str) -> None:
    import shutil

    target = dest / to if to else dest
    if src_glob.endswith("/**") or src_glob == "**":
        base = repo / src_glob[:-3] if src_glob != "**" else repo
        if base.is_dir():
            shutil.copytree(base, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
        return
    for m in sorted(repo.glob(src_glob)):
        if m.is_dir():
            shutil.copytree(m, target / m.name, dirs_exist_ok=True)
        else:
            into = target / m.name if (to.endswith("/") or not to) else target
            into.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(m, into)


def materialise(repo: Path, artifact: str) -> Path:
    """A local copy of an ExternalArtifact as its ArtifactGenerator assembles it (once per
    process)."""
    import tempfile

    key = (str(repo), artifact)
    if key not in _MATERIALISED:
        ops = (_GENERATED.get(str(repo)) or {}).get(artifact)
        if ops is None:
            raise FileNotFoundError(
                f"no ArtifactGenerator in the repo produces ExternalArtifact {artifact!r}"
            )
        dest = Path(tempfile.mkdtemp(prefix=f"handover-artifact-{artifact}-"))
        for src_glob, to in ops:
            _copy_op(repo, dest, src_glob, to)
        _MATERIALISED[key] = dest
    return _MATERIALISED[key]


def resolve(repo: Path, path: str) -> Path:
    """The directory of an entry path: ``@artifact/sub`` inside the assembled artifact, else
    relative to the repo."""
    if path.startswith("@"):
        name, _, rest = path[1:].partition("/")
        try:
            root = materialise(repo, name)
        except FileNotFoundError:
            return repo / path
        return root / rest if rest else root
    return repo / path


def _ks_path(d: dict[str, Any]) -> str | None:
    """The entry path of a Flux Kustomization (``@artifact/path`` for an ExternalArtifact)."""
    spec = d.get("spec") or {}
    spath = spec.get("path")
    if not spath:
        return None
    ref = spec.get("sourceRef") or {}
    if ref.get("kind") == "ExternalArtifact" and ref.get("name"):
        p = normalise(spath)
        return f"@{ref['name']}" + ("" if p == "." else f"/{p}")
    return normalise(spath)


NOT_CHECKED = "NOT CHECKED:"
OVERLAY_FIELDS = (
    "patches",
    "components",
    "images",
    "namePrefix",
    "nameSuffix",
    "targetNamespace",
    "postBuild",
)


def overlay_of(ks: dict[str, Any]) -> str:
    """The Kustomization's settings kustomize-controller applies on top of the path's own
    kustomization (fluxcd/pkg kustomize generator: patches, components, images, namePrefix /
    nameSuffix, targetNamespace; then postBuild variable substitution), as JSON ('' if none)."""
    import json

    spec = ks.get("spec") or {}
    picked = {k: spec[k] for k in OVERLAY_FIELDS if spec.get(k)}
    if (spec.get("postBuild") or {}).get("substituteFrom"):
        # substituteFrom refs are read in the Kustomization's own namespace
        picked["ksNamespace"] = (ks.get("metadata") or {}).get("namespace", "flux-system")
    return json.dumps(picked, sort_keys=True) if picked else ""


def substitute_from_vars(
    post_build: dict[str, Any],
    namespace: str,
    get: Callable[[str, str, str], dict[str, Any] | None] | None,
) -> tuple[dict[str, str], list[str]]:
    """The variables of postBuild.substituteFrom resolved from the GitOps repository, as
    kustomize-controller resolves them from the cluster (fluxcd/pkg kustomize/kustomize_varsub.go
    loadVars: refs in order, later ones win; ConfigMap data, Secret data base64-decoded; newlines
    removed), then the inline ``substitute`` map over them. ``get(kind, name, namespace)`` finds
    the object in the repository's builds (None: not in the repo). Returns (variables, what could
    not be read from the repo: those refs are named, not checked)."""
    import base64

    out: dict[str, str] = {}
    unread: list[str] = []
    for ref in post_build.get("substituteFrom") or []:
        kind, name = ref.get("kind"), ref.get("name")
        obj = get(kind, name, namespace) if get else None
        label = f"{kind} {namespace}/{name}" + (" (optional)" if ref.get("optional") else "")
        if obj is None:
            unread.append(f"{label}: not in the GitOps repository")
            continue
        if kind == "Secret" and "sops" in obj:
            unread.append(
                f"{label}: SOPS-encrypted in the repository (decrypted only by "
                "kustomize-controller)"
            )
            continue
        data: dict[str, str] = {}
        if kind == "Secret":
            for k, v in (obj.get("data") or {}).items():
                try:
                    data[k] = base64.b64decode(str(v)).decode()
                except ValueError:
                    unread.append(f"{label}: data.{k} is not base64")
            data.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
            from handover.core import redact

            for v in data.values():
                redact.register(v)
        else:
            data = {k: str(v) for k, v in (obj.get("data") or {}).items()}
        for k, v in data.items():
            out[k] = v.replace("\n", "")
    for k, v in (post_build.get("substitute") or {}).items():
        out[str(k)] = str(v).replace("\n", "")
    return out, unread


_VAR = __import__("re").compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[=-])([^}]*))?\}")


def substitute(text: str, variables: dict[str, str]) -> tuple[str, set[str]]:
    """postBuild substitution as kustomize-controller does it (drone/envsubst: ${var},
    ${var:=default}, ${var:-default}); variables not known here are left as written and
    returned."""
    unknown: set[str] = set()

    def rep(m):
        name, op, default = m.group(1), m.group(2), m.group(3)
        if name in variables:
            return str(variables[name])
        if op:
            return default or ""
        unknown.add(name)
        return m.group(0)

    return _VAR.sub(rep, text), unknown


def _apply_overlay(directory: Path, overlay: dict[str, Any]) -> None:
    """Edit the kustomization.yaml of a (temporary copy of a) path as kustomize-controller does
    before it builds."""
    kfile = next((directory / f for f in KUSTOMIZATION_FILES if (directory / f).is_file()), None)
    if kfile is None:
        kfile = directory / "kustomization.yaml"
        kfile.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": generated_resources(directory),
                }
            )
        )
    k = yaml.safe_load(kfile.read_text()) or {}
    if overlay.get("patches"):
        k["patches"] = list(k.get("patches") or []) + list(overlay["patches"])
    if overlay.get("components"):
        k["components"] = list(k.get("components") or []) + list(overlay["components"])
    if overlay.get("images"):
        k["images"] = list(k.get("images") or []) + list(overlay["images"])
    for src, dst in (
        ("namePrefix", "namePrefix"),
        ("nameSuffix", "nameSuffix"),
        ("targetNamespace", "namespace"),
    ):
        if overlay.get(src):
            k[dst] = overlay[src]
    kfile.write_text(yaml.safe_dump(k, sort_keys=False))


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
    gen_files = [repo / e.file for e in inv.gitops.entrypoints if (repo / e.file).is_file()]
    if inv.gitops.cluster_path and (repo / inv.gitops.cluster_path).is_dir():
        gen_files += sorted((repo / inv.gitops.cluster_path).rglob("*.y*ml"))
    generated, gen_problems = artifact_generators(repo, list(dict.fromkeys(gen_files)))
    _GENERATED[str(repo)] = generated
    problems += gen_problems
    queue: list[str] = []
    for entry in inv.gitops.entrypoints:
        f = repo / entry.file
        if not f.is_file():
            problems.append(f"entry point {entry.file}: file not found in {repo}")
            continue
        found = [
            d
            for d in _yaml_docs(f)
            if d.get("kind") == "Kustomization"
            and (d.get("metadata") or {}).get("name") == entry.name
        ]
        if not found:
            problems.append(f"entry point {entry.file}: no Kustomization named {entry.name!r}")
            continue
        p = _ks_path(found[0])
        if not p:
            problems.append(
                f"entry point {entry.file}: Kustomization {entry.name} has no spec.path"
            )
            continue
        if p.startswith("@") and p[1:].split("/")[0] not in generated:
            problems.append(
                f"entry point {entry.file}: Kustomization {entry.name} builds "
                f"ExternalArtifact {p[1:].split('/')[0]!r}, which no "
                f"ArtifactGenerator in the repo produces: not built"
            )
            continue
        add(EntryPath(p, _ks_label(found[0]), overlay=overlay_of(found[0])))
        queue.append(p)
    # Kustomizations found under the entry points' paths (nested entry points)
    seen = set(queue)
    while queue:
        p = queue.pop(0)
        for d in _flux_kustomizations(resolve(repo, p)):
            q = _ks_path(d)
            if not q or (q.startswith("@") and q[1:].split("/")[0] not in generated):
                continue
            if q not in seen:
                seen.add(q)
                add(EntryPath(q, _ks_label(d), overlay=overlay_of(d)))
                queue.append(q)
    for c in inv.components:
        add(
            EntryPath(
                normalise(c.path),
                f"component {c.name} (Kustomization {c.kustomization_name})",
                component=c.name,
            )
        )
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


def build_with_overlay(
    repo: Path,
    path: str,
    overlay: str,
    get: Callable[[str, str, str], dict[str, Any] | None] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Build a path with its Kustomization's settings applied (patches, components, images,
    name prefix/suffix, targetNamespace, postBuild.substitute and substituteFrom: the refs
    ``get(kind, name, namespace)`` finds in the repository's builds), in a temporary copy of the
    tree that holds it. Returns (objects, notes saying what was not applied)."""
    import json
    import shutil
    import tempfile

    from handover.sources import kustomize

    if not overlay:
        return build(repo, path), []
    ov = json.loads(overlay)
    directory = resolve(repo, path)
    root = materialise(repo, path[1:].split("/")[0]) if path.startswith("@") else repo
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="handover-overlay-") as tmp:
        copy_root = Path(tmp) / "root"
        shutil.copytree(root, copy_root, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        target = copy_root / directory.relative_to(root)
        if not target.is_dir():
            return kustomize.build(directory), []
        _apply_overlay(target, ov)
        try:
            objs = kustomize.build(target)
        except kustomize.KustomizeError as e:
            raise kustomize.KustomizeError(
                directory, e.stderr.replace(str(copy_root), str(root))
            ) from e
    pb = ov.get("postBuild") or {}
    if pb:
        variables, unread = substitute_from_vars(pb, ov.get("ksNamespace", "flux-system"), get)
        out, unknown_all = [], set()
        for o in objs:
            ann = (o.get("metadata") or {}).get("annotations") or {}
            if ann.get("kustomize.toolkit.fluxcd.io/substitute") == "disabled":
                out.append(o)
                continue
            text, unknown = substitute(yaml.safe_dump(o, sort_keys=False), variables)
            unknown_all |= unknown
            out.append(yaml.safe_load(text))
        objs = out
        if pb.get("substituteFrom"):
            refs = ", ".join(f"{r.get('kind')} {r.get('name')}" for r in pb["substituteFrom"])
            if unread:
                notes.append(
                    f"{NOT_CHECKED} postBuild.substituteFrom: {'; '.join(unread)}: "
                    f"kustomize-controller reads it from the cluster, this build could "
                    f"not; variables left as written: "
                    f"{', '.join(sorted(unknown_all)) or 'none'}"
                )
            else:
                notes.append(
                    f"postBuild.substituteFrom ({refs}) resolved from the GitOps "
                    f"repository's builds"
                )
    applied = [k for k in OVERLAY_FIELDS if ov.get(k)]
    notes.insert(0, f"built with the Kustomization's {', '.join(applied)}")
    return objs, notes


def build(repo: Path, path: str) -> list[dict[str, Any]]:
    """Build a repo path as kustomize-controller does: `kustomize build`, after generating a
    kustomization.yaml when the path has none (in a temporary copy; the checkout is untouched)."""
    import shutil
    import tempfile

    from handover.sources import kustomize

    directory = resolve(repo, path)
    if not directory.is_dir() or has_kustomization(directory):
        return kustomize.build(directory)
    with tempfile.TemporaryDirectory(prefix="handover-build-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(directory, copy, symlinks=True)
        resources = generated_resources(copy)
        (copy / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": resources,
                }
            )
        )
        try:
            return kustomize.build(copy)
        except kustomize.KustomizeError as e:
            raise kustomize.KustomizeError(
                directory, e.stderr.replace(str(copy), str(directory))
            ) from e
