"""Writes to the Kubernetes API: the only module allowed to change the cluster.

Each write is one call of the official (blocking) client on the sources' thread pool, with
the same error translation as the read-only ``KubernetesSource``. Callers (``bot.actions``)
decide whether a write may happen; this module only performs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bot.profiles import Profile
from bot.sources.base import SourceUnreachable
from bot.sources.kubernetes import CONNECT_TIMEOUT_S, NAME, READ_TIMEOUT_S, _api_error
from bot.sources.threads import in_thread

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def restart_patch(stamp: str) -> dict[str, Any]:
    """The body ``kubectl rollout restart`` sends: a new template annotation."""
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}


class KubernetesActions:
    """Write calls in one namespace; ``close()`` when done."""

    def __init__(
        self, configuration: client.Configuration, *, namespace: str, profile: Profile
    ) -> None:
        self.namespace = namespace
        self.profile = profile
        self._configuration = configuration
        self._api = client.ApiClient(configuration)
        self._apps = client.AppsV1Api(self._api)

    async def close(self) -> None:
        """Release the client's connections."""
        await in_thread(self._api.close)

    def restart_call(self) -> str:
        """The API call a rollout restart of the agent workload makes, as a reader says it."""
        plural = (
            "deployments" if self.profile.agent_workload_kind == "Deployment" else "statefulsets"
        )
        return (
            f"PATCH /apis/apps/v1/namespaces/{self.namespace}/{plural}/"
            f"{self.profile.agent_workload} (spec.template.metadata.annotations"
            f'["{RESTARTED_AT}"])'
        )

    async def restart_agent_workload(self, stamp: str) -> None:
        """``kubectl rollout restart`` of the agent Deployment or StatefulSet."""
        kind, name = self.profile.agent_workload_kind, self.profile.agent_workload
        if kind == "Deployment":
            patch: Callable[..., Any] = self._apps.patch_namespaced_deployment
        else:
            patch = self._apps.patch_namespaced_stateful_set
        await self._run(f"restart {kind} {name}", patch, name, self.namespace, restart_patch(stamp))

    async def _run(self, what: str, method: Callable[..., Any], *args: Any) -> None:
        try:
            await in_thread(method, *args, _request_timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        except ApiException as error:
            raise _api_error(what, error) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            host = self._configuration.host
            raise SourceUnreachable(NAME, f"cannot reach {host} to {what}: {error}") from None
