"""Rolling one component back to its state before the handover, in the only safe order:

1. suspend the temporary Kustomization (it would re-apply the HelmRelease / objects we remove),
2. suspend the HelmRelease (so that deleting it orphans the release instead of uninstalling it),
3. delete the temporary Kustomization (prune false / Orphan / suspended: nothing collected),
4. delete the suspended HelmRelease (helm-controller skips the uninstall for suspended objects),
5. ``helm rollback <release> <backup revision>`` when the controller upgraded the release,
6. re-apply kubectl-managed objects from the backup when their spec changed, and put their
   metadata (labels, last-applied annotation) back,
7. verify the workloads' pods run again (Running and Ready, desired replica count).

Every action goes through the Mutator (journaled before it is made) and is returned as a
RollbackAction with its result, for the JUnit output and the report. Each action checks the live
state first, so running a rollback twice (a resumed run) repeats nothing that is already done.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from handover import tree_diff
from handover.chain import backup as backup_mod
from handover.core import redact, wait
from handover.core.inventory import Component, Inventory
from handover.flux import rules as flux
from handover.flux.takeover import wait_gone
from handover.sources import helm_storage

if TYPE_CHECKING:
    from handover.core.kube import Kube
    from handover.core.mutation import Mutator


@dataclass
class RollbackAction:
    action: str
    result: str  # done | not-needed | failed
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.action}: {self.result}" + (f" ({self.detail})" if self.detail else "")


def _spec_of(obj: dict[str, Any]) -> Any:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def changed_since_backup(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    """Whether a field the backup sets differs live (fields only live has, server defaults, are
    ignored; lists are compared item by item, whole when their lengths differ)."""
    if live is None:
        return True
    return bool(tree_diff.exact(_spec_of(live), _spec_of(desired), git_keys_only=True))


class Rollback:
    def __init__(
        self,
        kube: Kube,
        mutator: Mutator,
        inventory: Inventory,
        component: Component,
        record: backup_mod.BackupRecord | None,
        verify_timeout: float = 60.0,
    ):
        self.kube = kube
        self.mutator = mutator
        self.inventory = inventory
        self.component = component
        self.record = record
        self.verify_timeout = verify_timeout
        self.actions: list[RollbackAction] = []

    def _act(self, action: str, fn: Callable[[], str | None]) -> RollbackAction:
        try:
            detail = fn()
            ra = RollbackAction(
                action,
                "done" if detail != "not-needed" else "not-needed",
                "" if detail in (None, "not-needed") else detail,
            )
        except Exception as e:
            # an error may echo kubectl's stderr (the patch it sent): scrubbed (handover.core.redact)
            ra = RollbackAction(
                action, "failed", f"{e.__class__.__name__}: {redact.scrub(str(e))[:500]}"
            )
        self.actions.append(ra)
        return ra

    # -- the steps -----------------------------------------------------------------------------
    def _suspend(self, api_version: str, kind: str, name: str, ns: str) -> str | None:
        live = self.kube.get(api_version, kind, name, ns)
        if live is None:
            return "not-needed"
        if (live.get("spec") or {}).get("suspend"):
            return "not-needed"
        self.mutator.suspend(api_version, kind, name, ns, True)
        return None

    def _delete(self, api_version: str, kind: str, name: str, ns: str, why: str) -> str | None:
        if self.kube.get(api_version, kind, name, ns) is None:
            return "not-needed"
        self.mutator.delete(api_version, kind, name, ns, why)
        if not wait_gone(self.kube, api_version, kind, name, ns, 60):
            raise RuntimeError(f"{kind} {ns}/{name} still present 60 s after deletion")
        return None

    def _helm_rollback(self) -> str | None:
        c = self.component
        if c.release is None or self.record is None or self.record.revision is None:
            return "not-needed"
        release = c.release  # narrowed for the lambda below
        # an operation still running: let it end first
        rel = wait.until(
            f"rollback {c.name}: release {c.release.namespace}/{c.release.name} not pending",
            lambda: helm_storage.latest(self.kube, release.name, release.namespace),
            timeout=self.verify_timeout,
            interval=1,
            done=lambda r: r is None or not r.status.startswith("pending"),
            message=lambda r: f"revision {r.revision} {r.status}" if r is not None else "",
        )
        want = self.record.revision
        if rel is None:
            raise RuntimeError(
                f"release {c.release.namespace}/{c.release.name} is gone from "
                f"storage; restore it from the backup {self.record.directory}"
            )
        if rel.revision == want and rel.status == "deployed":
            return "not-needed"
        if self._same_as_backup(rel) and rel.status == "deployed":
            return (
                f"not-needed: revision {rel.revision} already has the backup revision "
                f"{want}'s chart and values"
            )
        self.mutator.helm(
            ["rollback", c.release.name, str(want)],
            c.release.namespace,
            f"back to the backup revision {want}",
        )
        after = helm_storage.latest(self.kube, c.release.name, c.release.namespace)
        return f"revision {rel.revision} -> {after.revision if after else '?'} (= v{want})"

    def _same_as_backup(self, rel: helm_storage.HelmReleaseRecord) -> bool:
        """A previous rollback already restored the backup revision (resumed rollback)."""
        assert self.record is not None
        if self.record.release is None or self.record.revision is None:
            return False  # no release in the backup: nothing to compare with
        try:
            values = backup_mod.release_values(self.record)
        except OSError:
            return False
        return (
            rel.chart_version == self.record.release["chartVersion"]
            and rel.config == values
            and rel.revision > self.record.revision
            and flux.HELM_ORIGIN_NAME not in rel.manifest
        )

    def _reapply(self) -> str | None:
        if self.record is None or self.component.type == "helm":
            return "not-needed"
        changed, relabelled = [], []
        for obj in backup_mod.live_objects(self.record):
            m = obj["metadata"]
            res = self.kube.resource(obj["apiVersion"], obj["kind"])
            ns = m.get("namespace") if res.namespaced else None
            live = self.kube.get(obj["apiVersion"], obj["kind"], m["name"], ns)
            what = f"{obj['kind']} {ns + '/' if ns else ''}{m['name']}"
            if changed_since_backup(obj, live):
                # kubectl apply from the backup (restores the spec and last-applied annotation)
                self.mutator.kubectl(
                    ["apply", "-f", "-"], f"re-apply {what} from the backup", input=json.dumps(obj)
                )
                changed.append(what)
                live = self.kube.get(obj["apiVersion"], obj["kind"], m["name"], ns)
            patch = self._metadata_patch(obj, live)
            if patch:
                self.mutator.patch(
                    obj["apiVersion"],
                    obj["kind"],
                    m["name"],
                    ns,
                    {"metadata": patch},
                    description="restore labels/annotations from the backup",
                )
                relabelled.append(what)
        if not changed and not relabelled:
            return "not-needed"
        return (
            f"re-applied {changed or 'nothing'}; metadata restored on {len(relabelled)} object(s)"
        )

    @staticmethod
    def _metadata_patch(backup_obj: dict[str, Any], live: dict[str, Any] | None) -> dict:
        """Merge patch putting labels/annotations back as in the backup: Flux owner labels added
        since are removed, the last-applied annotation kustomize-controller removed returns."""
        if live is None:
            return {}
        patch: dict[str, Any] = {}
        for key in ("labels", "annotations"):
            want = backup_obj["metadata"].get(key) or {}
            have = (live.get("metadata") or {}).get(key) or {}
            d = {k: v for k, v in want.items() if have.get(k) != v}
            d.update(
                {
                    k: None
                    for k in have
                    if k not in want
                    and (
                        k.startswith("kustomize.toolkit.fluxcd.io/")
                        or k.startswith("helm.toolkit.fluxcd.io/")
                    )
                }
            )
            if d:
                patch[key] = d
        return patch

    def _verify_pods(self) -> str | None:
        problems = wait.until(
            f"rollback {self.component.name}: pods Running and Ready",
            self.pod_problems,
            timeout=self.verify_timeout,
            interval=0.5,
            done=lambda p: not p,
            message="; ".join,
        )
        if problems:
            raise RuntimeError("; ".join(problems))
        n = sum(
            len(self.kube.core.list_namespaced_pod(w.namespace, label_selector=w.selector).items)
            for w in self.component.workloads
        )
        return f"{n} pod(s) Running and Ready" if self.component.workloads else "not-needed"

    def pod_problems(self) -> list[str]:
        from handover.chain.preconditions import workload_problems

        return workload_problems(self.kube, self.component)

    # -- the whole rollback ----------------------------------------------------------------------
    def run(self) -> list[RollbackAction]:
        c, inv = self.component, self.inventory
        fns = inv.cluster.flux_namespace
        ks = c.kustomization_name
        self._act(
            f"suspend Kustomization {fns}/{ks}",
            lambda: self._suspend(flux.KUSTOMIZE_API, "Kustomization", ks, fns),
        )
        if c.helm_release is not None:
            hr = c.helm_release
            self._act(
                f"suspend HelmRelease {hr.namespace}/{hr.name}",
                lambda: self._suspend(flux.HELM_API, "HelmRelease", hr.name, hr.namespace),
            )
        self._act(
            f"delete Kustomization {fns}/{ks} without pruning",
            lambda: self._delete(
                flux.KUSTOMIZE_API,
                "Kustomization",
                ks,
                fns,
                "rollback: temporary Kustomization, orphaning",
            ),
        )
        if c.helm_release is not None:
            hr = c.helm_release
            self._act(
                f"delete suspended HelmRelease {hr.namespace}/{hr.name} (no uninstall)",
                lambda: self._delete(
                    flux.HELM_API,
                    "HelmRelease",
                    hr.name,
                    hr.namespace,
                    "rollback: suspended, so the release is orphaned",
                ),
            )
            rev = self.record.revision if self.record else None
            self._act(
                f"helm rollback {c.release.name} {rev}" if c.release else "helm rollback",
                self._helm_rollback,
            )
        else:
            self._act("re-apply kubectl objects from the backup", self._reapply)
        self._act("verify the pods run again", self._verify_pods)
        return self.actions

    @property
    def ok(self) -> bool:
        return all(a.result != "failed" for a in self.actions)
