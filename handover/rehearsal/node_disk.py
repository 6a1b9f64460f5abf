"""The rehearsal node's disk: where hostPath volumes resolve (``<state_dir>/node-root``), and the
one maker of each hostPath PV's directory, for a seed and a replayed capture alike (neither holds
a volume's data: the directory gets a small file standing in for it)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

NODE_ROOT = "node-root"


def node_root(state_dir: Path | str) -> Path:
    """Where the rehearsal node's filesystem lives (hostPath volumes resolve below it)."""
    return Path(state_dir) / NODE_ROOT


def create_host_paths(pvs: Iterable[dict[str, Any]], state_dir: Path | str) -> list[str]:
    """Make the directory of each hostPath PV in ``pvs`` (API objects) on the rehearsal node, with
    a ``DATA`` file in it, the way a person prepared the node's disk before creating the PVs.
    A directory that exists is left alone (its data kept). Returns the directories made."""
    made = []
    for pv in pvs:
        path = ((pv.get("spec") or {}).get("hostPath") or {}).get("path")
        if not path:
            continue
        d = node_root(state_dir) / path.lstrip("/")
        if not d.exists():
            d.mkdir(parents=True)
            (d / "DATA").write_text(
                f"data of {pv['metadata']['name']}: a stand-in for the "
                "volume's data (a seed or capture holds API objects only); "
                "kept across the handover\n"
            )
            made.append(str(d))
    return made
