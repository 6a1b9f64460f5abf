"""Import hygiene of the domain library (issue 9): no module under handover/ imports pytest or
handover.rehearsal (the emulated cluster) except the rehearsal itself, handover/target.py (the
one place that picks Live or Rehearsal), the CLI and the capture/replay code. Read with ast, so
an import inside a function counts as much as one at the top."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDOVER = ROOT / "handover"
ALLOWED = ("handover/rehearsal/", "handover/capture/", "handover/target.py", "handover/cli.py")


def _package(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts[:-1])


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, module) for every import in the file: ``import a.b`` gives a.b; ``from a import b``
    gives a and a.b (b may be a module); relative imports are resolved against the package."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = _package(path, root).split(".")
                pkg = pkg[:len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def forbidden(module: str) -> bool:
    top = module.split(".")[0]
    return top in ("pytest", "_pytest") or module == "handover.rehearsal" or \
        module.startswith("handover.rehearsal.")


def violations(root: Path = ROOT) -> list[str]:
    out = []
    for path in sorted((root / "handover").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(ALLOWED):
            continue
        seen = set()
        for line, module in sorted(imported_modules(path, root)):
            if forbidden(module) and (line, module.split(".")[0]) not in seen:
                seen.add((line, module.split(".")[0]))
                out.append(f"{rel}:{line}: imports {module}")
    return out


def test_handover_imports_neither_pytest_nor_the_rehearsal():
    found = violations()
    assert not found, ("handover/ must not import pytest or handover.rehearsal outside "
                       f"{', '.join(ALLOWED)} (go through handover.target):\n"
                       + "\n".join(found))


def test_the_check_catches_each_form_of_import(tmp_path):
    """The walker sees top-level, in-function, from-, aliased and relative imports."""
    pkg = tmp_path / "handover" / "flux"
    pkg.mkdir(parents=True)
    (pkg / "ok.py").write_text("from handover.core import wait\nimport json\n")
    (pkg / "bad.py").write_text(
        "import pytest\n"
        "def f():\n    from handover.rehearsal import flux as standins\n"
        "from handover import rehearsal\n"
        "from ..rehearsal.cluster import RehearsalCluster\n"
        "import _pytest.stash as s\n")
    allowed = tmp_path / "handover" / "rehearsal"
    allowed.mkdir()
    (allowed / "x.py").write_text("import pytest\n")
    (tmp_path / "handover" / "target.py").write_text("from handover.rehearsal import fidelity\n")
    got = violations(tmp_path)
    assert got == ["handover/flux/bad.py:1: imports pytest",
                   "handover/flux/bad.py:3: imports handover.rehearsal",
                   "handover/flux/bad.py:4: imports handover.rehearsal",
                   "handover/flux/bad.py:5: imports handover.rehearsal.cluster",
                   "handover/flux/bad.py:6: imports _pytest.stash"]
