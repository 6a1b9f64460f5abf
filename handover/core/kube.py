"""Kubernetes access: one read-only client object over the official client.

Mutations never go through here: they go through handover.core.mutation (which checks --perform and the
context guard and journals first).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient, Resource
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from handover.core.errors import HandoverError


class ContextMismatch(HandoverError):
    """The kube context in use is not the inventory's."""


def current_context(kubeconfig: str | Path | None = None) -> str:
    """The current context of a kubeconfig (default: $KUBECONFIG or ~/.kube/config)."""
    try:
        _, active = config.list_kube_config_contexts(
            config_file=str(kubeconfig) if kubeconfig else None
        )
    except (config.ConfigException, FileNotFoundError) as e:
        raise HandoverError(
            f"cannot read kubeconfig {kubeconfig or os.environ.get('KUBECONFIG') or '~/.kube/config'}: {e}"
        ) from e
    return active["name"]


def check_context(in_use: str, expected: str) -> None:
    """Refuse to go on when the kube context in use is not the inventory's cluster.context."""
    if in_use != expected:
        raise ContextMismatch(
            f"kube context in use is {in_use!r} but the inventory's cluster.context is "
            f"{expected!r}: refusing to touch this cluster. Switch context "
            f"(kubectl config use-context {expected}) or pass --kube-context {expected}."
        )


class Kube:
    """A client bound to one kubeconfig and context."""

    def __init__(self, kubeconfig: str | Path | None = None, context: str | None = None):
        self.kubeconfig = str(kubeconfig) if kubeconfig else None
        self.context = context or current_context(self.kubeconfig)
        cfg = client.Configuration()
        try:
            config.load_kube_config(
                config_file=self.kubeconfig,
                context=self.context,
                client_configuration=cfg,
                persist_config=False,
            )
        except config.ConfigException as e:
            raise HandoverError(f"cannot load kube context {self.context!r}: {e}") from e
        self.configuration = cfg
        self.api = client.ApiClient(cfg)
        self._dynamic: DynamicClient | None = None
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)

    @property
    def dynamic(self) -> DynamicClient:
        if self._dynamic is None:
            self._dynamic = DynamicClient(self.api)
        return self._dynamic

    @property
    def server(self) -> str:
        return self.configuration.host

    def server_version(self) -> tuple[int, int, str]:
        v = client.VersionApi(self.api).get_code()
        minor = int("".join(ch for ch in v.minor if ch.isdigit()) or 0)
        return int(v.major), minor, v.git_version

    def resource(self, api_version: str, kind: str) -> Resource:
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError as e:
            raise HandoverError(f"the cluster does not serve {kind} in {api_version}") from e

    def has_resource(self, api_version: str, kind: str) -> bool:
        try:
            self.dynamic.resources.get(api_version=api_version, kind=kind)
            return True
        except ResourceNotFoundError:
            return False

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        res = self.resource(api_version, kind)
        try:
            obj = res.get(name=name, namespace=namespace) if res.namespaced else res.get(name=name)
        except NotFoundError:
            return None
        return obj.to_dict()

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        res = self.resource(api_version, kind)
        kwargs: dict[str, Any] = {}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if res.namespaced and namespace:
            kwargs["namespace"] = namespace
        return [i for i in res.get(**kwargs).to_dict().get("items", [])]
