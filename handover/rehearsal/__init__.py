"""The rehearsal cluster: a real kube-apiserver with an emulated node, for rehearsing a migration
on a machine without a container engine (see cluster.py, node_agent.py, docs/rehearsal.md)."""

from handover.rehearsal.cluster import CONTEXT, READONLY_CONTEXT, RehearsalCluster

__all__ = ["CONTEXT", "READONLY_CONTEXT", "RehearsalCluster"]
