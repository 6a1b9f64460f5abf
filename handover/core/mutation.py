"""The one place where the cluster, the GitOps repo and Helm are changed.

Every mutation goes through a Mutator, which
1. refuses without --perform (``UnsafeActionRefused`` saying what it would have done),
2. refuses when the kube context is not the inventory's,
3. refuses the runbook's destructive steps that the facts make unsafe (``helm uninstall`` of a
   release Flux manages, deleting a HelmRelease that is not suspended, deleting a Kustomization
   that would garbage-collect its inventory, deleting anything the runbook does not name),
4. writes the journal entry before acting and the outcome after. The journal gets what is done
   to which object, never a value: a patch body is journaled as its shape (paths + short hashes,
   handover.core.redact), an error scrubbed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes.dynamic.exceptions import NotFoundError

from handover.core import redact, tools
from handover.core.errors import HandoverError, UnsafeActionRefused
from handover.core.inventory import Inventory
from handover.core.journal import Journal
from handover.core.kube import Kube, check_context
from handover.core.objects import group_of
from handover.flux import rules as flux
from handover.sources import helm_storage

FIELD_MANAGER = "flux-handover"

# Kinds the runbook may delete, and under which condition (checked on the live object).
DELETABLE = {
    ("helm.toolkit.fluxcd.io", "HelmRelease"): "suspended",
    ("kustomize.toolkit.fluxcd.io", "Kustomization"): "orphaning",
}


def _obj_id(kind: str, name: str, namespace: str | None) -> str:
    return f"{kind} {namespace + '/' if namespace else ''}{name}"


class Mutator:
    def __init__(self, kube: Kube, inventory: Inventory, journal: Journal, perform: bool):
        self.kube = kube
        self.inventory = inventory
        self.journal = journal
        self.perform = perform

    # -- interlocks -------------------------------------------------------------------------
    def guard(self, action: str) -> None:
        if not self.perform:
            raise UnsafeActionRefused(f"dry run (no --perform): would {action}")
        check_context(self.kube.context, self.inventory.cluster.context)

    def _do(self, action: str, fn: Callable[[], Any], **detail: Any) -> Any:
        self.guard(action)
        jid = self.journal.intent(action, **detail)
        try:
            result = fn()
        except Exception as e:  # journal the failure (scrubbed), then let it propagate
            self.journal.failed(jid, action, error=redact.scrub(str(e))[:2000])
            raise
        self.journal.done(jid, action)
        return result

    def call(self, action: str, fn: Callable[[], Any], **detail: Any) -> Any:
        """A mutation without a dedicated method (e.g. installing the Flux stand-ins, running the
        flux CLI): same interlocks and journal as every other one. ``action`` says exactly what
        ``fn`` changes; it and ``detail`` must never carry a secret."""
        return self._do(action, fn, **detail)

    # -- Kubernetes -------------------------------------------------------------------------
    def apply(
        self, obj: dict[str, Any], field_manager: str = FIELD_MANAGER, force: bool = False
    ) -> dict[str, Any]:
        """Server-side apply of one object."""
        meta = obj["metadata"]
        action = f"apply {_obj_id(obj['kind'], meta['name'], meta.get('namespace'))}"

        def go():
            res = self.kube.resource(obj["apiVersion"], obj["kind"])
            kwargs = {"body": obj, "field_manager": field_manager, "force_conflicts": force}
            if res.namespaced:
                kwargs["namespace"] = meta.get("namespace")
            return res.server_side_apply(**kwargs).to_dict()

        return self._do(action, go, field_manager=field_manager)

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        body: dict[str, Any] | list,
        patch_type: str = "merge",
        description: str = "",
    ) -> dict[str, Any]:
        ctype = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "strategic": "application/strategic-merge-patch+json",
        }[patch_type]
        # the body's shape only (paths + short hashes): a patch may carry Secret data, e.g. the
        # last-applied annotation of a kubectl-applied Secret that the rollback puts back
        shape = redact.shape(body)
        action = (
            f"patch {_obj_id(kind, name, namespace)} {description or 'fields ' + ', '.join(shape)}"
        )

        def go():
            res = self.kube.resource(api_version, kind)
            kwargs: dict[str, Any] = {"name": name, "body": body, "content_type": ctype}
            if res.namespaced:
                kwargs["namespace"] = namespace
            return res.patch(**kwargs).to_dict()

        return self._do(action, go, patch=shape)

    def suspend(
        self, api_version: str, kind: str, name: str, namespace: str, suspend: bool = True
    ) -> dict[str, Any]:
        return self.patch(
            api_version,
            kind,
            name,
            namespace,
            {"spec": {"suspend": suspend}},
            description=f"spec.suspend={str(suspend).lower()}",
        )

    def request_reconcile(
        self, api_version: str, kind: str, name: str, namespace: str, token: str
    ) -> dict[str, Any]:
        return self.patch(
            api_version,
            kind,
            name,
            namespace,
            {"metadata": {"annotations": {flux.RECONCILE_REQUESTED_AT: token}}},
            description=f"{flux.RECONCILE_REQUESTED_AT}={token}",
        )

    def delete_safety(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> str | None:
        """Why deleting this object is refused, or None when it is safe (see DELETABLE)."""
        rule = DELETABLE.get((group_of(api_version), kind))
        what = _obj_id(kind, name, namespace)
        if rule is None:
            return (
                f"deleting {what} is not a step of the runbook; flux-handover deletes only "
                "suspended HelmReleases and orphaning Kustomizations"
            )
        live = self.kube.get(api_version, kind, name, namespace)
        if live is None:
            return None
        spec = live.get("spec") or {}
        if rule == "suspended" and not spec.get("suspend"):
            if (live.get("status") or {}).get("storageNamespace"):
                return (
                    f"{what} is not suspended: deleting it would UNINSTALL its Helm release "
                    "and delete every object of it (helm-controller reconcileDelete). "
                    "Suspend it first (spec.suspend: true)."
                )
        if rule == "orphaning":
            entries = ((live.get("status") or {}).get("inventory") or {}).get("entries") or []
            policy = spec.get("deletionPolicy") or "MirrorPrune"
            orphans = (
                spec.get("suspend")
                or not entries
                or policy == "Orphan"
                or (policy == "MirrorPrune" and not spec.get("prune"))
            )
            if not orphans:
                return (
                    f"{what} would garbage-collect its {len(entries)} inventory objects on "
                    f"deletion (prune: {spec.get('prune')}, deletionPolicy: {policy}). "
                    "Suspend it or set deletionPolicy: Orphan first."
                )
        return None

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None, reason: str
    ) -> None:
        action = f"delete {_obj_id(kind, name, namespace)} ({reason})"
        self.guard(action)
        refusal = self.delete_safety(api_version, kind, name, namespace)
        if refusal:
            self.journal.note("refused: " + action, why=refusal)
            raise UnsafeActionRefused(refusal)

        def go():
            res = self.kube.resource(api_version, kind)
            try:
                if res.namespaced:
                    res.delete(name=name, namespace=namespace)
                else:
                    res.delete(name=name)
            except NotFoundError:
                pass

        self._do(action, go)

    # -- Helm -------------------------------------------------------------------------------
    def flux_manages(self, release: str, storage_namespace: str) -> str | None:
        """The HelmRelease (``ns/name``) that manages this release, or None. Judged by the
        helm-controller origin labels in the release's latest manifest and by live HelmReleases
        whose effective release name / storage namespace resolve to it."""
        rec = helm_storage.latest(self.kube, release, storage_namespace)
        if rec and flux.HELM_ORIGIN_NAME in rec.manifest:
            return f"helm-controller origin labels in revision {rec.revision}"
        if self.kube.has_resource(flux.HELM_API, "HelmRelease"):
            for hr in self.kube.list(flux.HELM_API, "HelmRelease"):
                if (
                    flux.helm_release_name(hr) == release
                    and flux.storage_namespace(hr) == storage_namespace
                ):
                    m = hr["metadata"]
                    return f"{m['namespace']}/{m['name']}"
        return None

    def helm_refusal(self, args: list[str], namespace: str) -> str | None:
        """Why this helm command is refused (read-only check), or None. ``helm uninstall`` of a
        release that Flux manages is refused."""
        if args and args[0] in ("uninstall", "delete", "del", "un"):
            release = args[1] if len(args) > 1 else ""
            manager = self.flux_manages(release, namespace)
            if manager:
                return (
                    f"refused: helm uninstall {release} -n {namespace}: Flux manages this "
                    f"release ({manager}); uninstalling it deletes every object of it, the "
                    "workloads Flux now manages (the hand-written runbook's step is unsafe "
                    "after adoption). A Flux-managed release is an ordinary Helm release in "
                    "storage: leave it."
                )
        if args and args[0] == "install":
            return self.reinstall_refusal(args, namespace)
        return None

    def reinstall_refusal(self, args: list[str], namespace: str) -> str | None:
        """Why ``helm install <release>`` is refused: the release still exists in storage (the
        hand-written runbook's "install every release again" after removing Flux). Helm refuses
        it ("cannot re-use a name that is still in use"); forced (``--replace``, or after an
        uninstall) it recreates every object and pod. Keep the release: ``helm upgrade`` it."""
        names = [a for a in args[1:] if not a.startswith("-")]
        release = names[0] if names else ""
        rec = helm_storage.latest(self.kube, release, namespace) if release else None
        if rec is None or rec.status == "uninstalled":
            return None
        return (
            f"refused: helm install {release} -n {namespace}: release {release} still exists "
            f"in storage (revision {rec.revision}, {rec.status}); installing it again fails "
            '("cannot re-use a name that is still in use") or, forced, recreates its '
            "objects and pods. It is an ordinary Helm release: keep it, `helm upgrade` it."
        )

    def kubectl_refusal(self, args: list[str]) -> str | None:
        """Why a ``kubectl delete`` of a HelmRelease / Kustomization is refused (the same rules
        as :meth:`delete`), or None. Other kubectl commands are not judged here."""
        if not args or args[0] != "delete" or len(args) < 3:
            return None
        kinds = {
            "helmrelease": (flux.HELM_API, "HelmRelease"),
            "helmreleases": (flux.HELM_API, "HelmRelease"),
            "hr": (flux.HELM_API, "HelmRelease"),
            "kustomization": (flux.KUSTOMIZE_API, "Kustomization"),
            "kustomizations": (flux.KUSTOMIZE_API, "Kustomization"),
            "ks": (flux.KUSTOMIZE_API, "Kustomization"),
        }
        target = args[1].lower()
        kind = kinds.get(target.split(".")[0])
        if kind is None or not self.kube.has_resource(*kind):
            return None
        namespace = "default"
        for i, a in enumerate(args):
            if a in ("-n", "--namespace") and i + 1 < len(args):
                namespace = args[i + 1]
            elif a.startswith("--namespace="):
                namespace = a.split("=", 1)[1]
        names = [
            a
            for i, a in enumerate(args[2:], 2)
            if not a.startswith("-") and args[i - 1] not in ("-n", "--namespace")
        ]
        for name in names:
            why = self.delete_safety(kind[0], kind[1], name, namespace)
            if why:
                return f"refused: kubectl {' '.join(args)}: {why}"
        return None

    def helm(self, args: list[str], namespace: str, description: str) -> tools.Result:
        """Run a mutating helm command against the inventory's context. ``helm uninstall`` of a
        release that Flux manages is refused (it would delete the workloads Flux now manages)."""
        why = self.helm_refusal(args, namespace)
        if why:
            self.journal.note(f"refused: helm {' '.join(args)}", why=why)
            raise UnsafeActionRefused(why)
        argv = [
            str(tools.helm()),
            *args,
            "--namespace",
            namespace,
            "--kube-context",
            self.kube.context,
        ]
        if self.kube.kubeconfig:
            argv += ["--kubeconfig", self.kube.kubeconfig]
        return self._do(
            f"helm {' '.join(args)} -n {namespace} ({description})",
            lambda: tools.run(argv, check=True),
        )

    def kubectl(self, args: list[str], description: str, input: str | None = None) -> tools.Result:
        why = self.kubectl_refusal(args)
        if why:
            self.journal.note(f"refused: kubectl {' '.join(args)}", why=why)
            raise UnsafeActionRefused(why)
        argv = [str(tools.kubectl()), "--context", self.kube.context]
        if self.kube.kubeconfig:
            argv += ["--kubeconfig", self.kube.kubeconfig]
        argv += args
        return self._do(
            f"kubectl {' '.join(args)} ({description})",
            lambda: tools.run(argv, input=input, check=True),
        )

    # -- Git (the GitOps repo) --------------------------------------------------------------
    def git(self, args: list[str], description: str, cwd: Path | None = None) -> tools.Result:
        """A mutating git command in the GitOps repo (commit, push)."""
        repo = cwd or self.inventory.gitops.path
        return self._do(
            f"git {' '.join(args)} in {repo} ({description})",
            lambda: tools.run(["git", "-C", str(repo), *args], check=True),
        )

    def write_file(self, path: Path, text: str, description: str) -> None:
        """Write a file in the GitOps repo (journaled)."""

        def go():
            path.write_text(text)

        self._do(f"write {path} ({description})", go)


class MutationError(HandoverError):
    pass
