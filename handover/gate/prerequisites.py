"""Check 4: prerequisites, as `flux check --pre` does them, without the flux CLI.

`flux check --pre` compares only the Kubernetes server version with the CLI's constraint (flux2
cmd/flux/check.go, kubernetesConstraints); the minimum per Flux minor is handover.flux.rules.MIN_KUBERNETES.
The suite itself also needs a kubectl with kustomize v5 (kubectl >= 1.27 bundles kustomize v5),
and server-side apply (kubectl >= 1.22 for `apply --server-side` to be GA on both ends).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from handover.core import tools
from handover.core.errors import ToolNotFound
from handover.core.findings import Finding
from handover.flux import rules as flux

CHECK = "prerequisites"
MIN_KUBECTL = (1, 27)  # first kubectl with kustomize v5 built in


@dataclass(frozen=True)
class ServerVersion:
    major: int
    minor: int
    git_version: str


def server_version_findings(
    version: ServerVersion, flux_version: str, cluster: str, rehearsal: bool = False
) -> list[Finding]:
    """The server version against the minimum of the target Flux version."""
    need = flux.min_kubernetes(flux_version)
    have = (version.major, version.minor)
    if have >= need:
        return []
    where = (
        f"the rehearsal cluster {cluster!r} (its API server is built from Debian's "
        f"kubernetes {version.git_version}, the newest server that runs on this machine)"
        if rehearsal
        else f"cluster {cluster!r}"
    )
    return [
        Finding(
            CHECK,
            f"Kubernetes API server of {where}",
            f"server version {version.git_version} is below Flux {flux_version}'s minimum "
            f"{need[0]}.{need[1]} (flux check --pre would fail)",
            f"upgrade the cluster to Kubernetes >= {need[0]}.{need[1]}, or target a Flux version "
            f"that supports {version.major}.{version.minor} (cluster.fluxVersion in the inventory)",
        )
    ]


def kubectl_version() -> tuple[int, int, str]:
    """(major, minor, gitVersion) of the kubectl the suite uses (client only, no server call)."""
    res = tools.run([str(tools.kubectl()), "version", "--client", "-o", "json"])
    if not res.ok:
        raise ToolNotFound(f"kubectl version --client failed: {res.stderr.strip()}")
    info = json.loads(res.stdout)["clientVersion"]
    minor = int(re.sub(r"\D", "", info.get("minor", "0")) or 0)
    return int(info.get("major", 0)), minor, info.get("gitVersion", "?")


def kubectl_findings(
    version: tuple[int, int, str] | None, error: str | None = None
) -> list[Finding]:
    if version is None:
        return [
            Finding(
                CHECK,
                "kubectl",
                f"kubectl not usable: {error}",
                "run `handover tools install` (pinned kubectl) or set HANDOVER_KUBECTL",
            )
        ]
    major, minor, git = version
    if (major, minor) < MIN_KUBECTL:
        return [
            Finding(
                CHECK,
                "kubectl",
                f"kubectl {git} is older than {MIN_KUBECTL[0]}.{MIN_KUBECTL[1]} (no kustomize v5)",
                "use kubectl >= 1.27 (`handover tools install` pins 1.32.3)",
            )
        ]
    return []


def check_kubectl() -> list[Finding]:
    try:
        return kubectl_findings(kubectl_version())
    except (ToolNotFound, OSError, ValueError, KeyError) as e:
        return kubectl_findings(None, str(e))
