"""Writes to the Kubernetes API: the only module allowed to change the cluster.

Each write is one call of the official (blocking) client on the sources' thread pool, with
the same error translation as the read-only ``KubernetesSource``. Callers
(``bot.executors``) decide whether a write may happen and show it first; this module only
performs it, and describes each call as a reader would say it (``*_call`` methods) for the
previews. Every write sets an absolute value (a replica count, an env value, a limit, an
annotation stamp), so applying it twice leaves the cluster as applying it once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bot.profiles import Profile
from bot.sources.base import SourceError, SourceUnreachable
from bot.sources.kubernetes import (
    CONNECT_TIMEOUT_S,
    NAME,
    READ_TIMEOUT_S,
    KubernetesSource,
    _api_error,
)
from bot.sources.threads import in_thread

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
_RAISE = object()  # ``_call``'s default: a 404 is an error like any other


def restart_patch(stamp: str) -> dict[str, Any]:
    """The body ``kubectl rollout restart`` sends: a new template annotation."""
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}


def env_patch(container: str, env: Mapping[str, str]) -> dict[str, Any]:
    """A strategic merge patch setting ``env`` on one container (other variables stay)."""
    entries = [{"name": name, "value": value} for name, value in sorted(env.items())]
    return {"spec": {"template": {"spec": {"containers": [{"name": container, "env": entries}]}}}}


def memory_limit_patch(container: str, limit: str) -> dict[str, Any]:
    """A strategic merge patch setting one container's memory limit (``2Gi``)."""
    resources = {"limits": {"memory": limit}}
    container_patch = {"name": container, "resources": resources}
    return {"spec": {"template": {"spec": {"containers": [container_patch]}}}}


def scale_patch(replicas: int) -> dict[str, Any]:
    """The body of ``kubectl scale --replicas=N`` on the scale subresource."""
    return {"spec": {"replicas": replicas}}


def pvc_size_patch(size: str) -> dict[str, Any]:
    """The body that grows a claim (``spec.resources.requests.storage``)."""
    return {"spec": {"resources": {"requests": {"storage": size}}}}


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
        self._core = client.CoreV1Api(self._api)
        self._shell = KubernetesSource(configuration, namespace=namespace, profile=profile)

    async def close(self) -> None:
        """Release the client's connections."""
        await in_thread(self._api.close)
        await self._shell.close()

    # -- how each call reads in a preview ----------------------------------------------------
    def _workload_path(self, kind: str, name: str) -> str:
        plural = "deployments" if kind == "Deployment" else "statefulsets"
        return f"/apis/apps/v1/namespaces/{self.namespace}/{plural}/{name}"

    def restart_call(self, kind: str | None = None, name: str | None = None) -> str:
        """The call a rollout restart makes (the agent workload unless told otherwise)."""
        kind = kind or self.profile.agent_workload_kind
        name = name or self.profile.agent_workload
        return (
            f"PATCH {self._workload_path(kind, name)} (spec.template.metadata.annotations"
            f'["{RESTARTED_AT}"])'
        )

    def env_call(self, container: str, names: Sequence[str]) -> str:
        """The call that sets env variables on the agent workload's container."""
        path = self._workload_path(self.profile.agent_workload_kind, self.profile.agent_workload)
        return f"PATCH {path} (containers[{container}].env: {', '.join(names)})"

    def memory_limit_call(self, container: str) -> str:
        """The call that sets the agent container's memory limit."""
        path = self._workload_path(self.profile.agent_workload_kind, self.profile.agent_workload)
        return f"PATCH {path} (containers[{container}].resources.limits.memory)"

    def scale_call(self) -> str:
        """The call ``kubectl scale`` makes on the agent workload."""
        path = self._workload_path(self.profile.agent_workload_kind, self.profile.agent_workload)
        return f"PATCH {path}/scale (spec.replicas)"

    def delete_pod_call(self, pod: str) -> str:
        """The call that deletes one pod (its workload recreates it)."""
        return f"DELETE /api/v1/namespaces/{self.namespace}/pods/{pod}"

    def pvc_call(self, claim: str) -> str:
        """The call that grows a claim."""
        return (
            f"PATCH /api/v1/namespaces/{self.namespace}/persistentvolumeclaims/{claim} "
            "(spec.resources.requests.storage)"
        )

    def exec_call(self, pod: str, command: Sequence[str]) -> str:
        """An exec in a pod, as ``kubectl exec`` would be typed."""
        return f"kubectl -n {self.namespace} exec {pod} -- {' '.join(command)}"

    # -- the writes ----------------------------------------------------------------------------
    async def restart_agent_workload(self, stamp: str) -> None:
        """``kubectl rollout restart`` of the agent Deployment or StatefulSet."""
        await self.restart(self.profile.agent_workload_kind, self.profile.agent_workload, stamp)

    async def restart(self, kind: str, name: str, stamp: str) -> None:
        """``kubectl rollout restart`` of any Deployment or StatefulSet in the namespace."""
        patch = self._patcher(kind)
        await self._run(f"restart {kind} {name}", patch, name, self.namespace, restart_patch(stamp))

    async def agent_container(self) -> str:
        """The name of the agent workload's main container (the one env/limits go on)."""
        kind, name = self.profile.agent_workload_kind, self.profile.agent_workload
        if kind == "Deployment":
            read: Callable[..., Any] = self._apps.read_namespaced_deployment
        else:
            read = self._apps.read_namespaced_stateful_set
        workload = await self._call(f"read {kind} {name}", read, name, self.namespace)
        containers = list(workload.spec.template.spec.containers or [])
        if not containers:
            raise SourceError(NAME, f"{kind} {name} has no containers")
        named = [c.name for c in containers if c.name in (name, "agent", "streamhouse")]
        return str(named[0] if named else containers[0].name)

    async def set_agent_env(self, container: str, env: Mapping[str, str]) -> None:
        """Set env variables on the agent container (a new rollout, like ``kubectl set env``)."""
        kind, name = self.profile.agent_workload_kind, self.profile.agent_workload
        body = env_patch(container, env)
        await self._run(
            f"set env on {kind} {name}", self._patcher(kind), name, self.namespace, body
        )

    async def set_agent_memory_limit(self, container: str, limit: str) -> None:
        """Set the agent container's memory limit (a new rollout)."""
        kind, name = self.profile.agent_workload_kind, self.profile.agent_workload
        body = memory_limit_patch(container, limit)
        what = f"set the memory limit of {kind} {name}"
        await self._run(what, self._patcher(kind), name, self.namespace, body)

    async def annotate_agent_workload(self, annotations: Mapping[str, str | None]) -> None:
        """Set (or, with None, remove) annotations on the agent workload itself (not its
        pods: no rollout), e.g. to record the replica count to restore after a scale-down."""
        kind, name = self.profile.agent_workload_kind, self.profile.agent_workload
        body = {"metadata": {"annotations": dict(annotations)}}
        what = f"annotate {kind} {name}"
        await self._run(what, self._patcher(kind), name, self.namespace, body)

    def annotate_call(self, keys: Sequence[str]) -> str:
        """The call that annotates the agent workload."""
        path = self._workload_path(self.profile.agent_workload_kind, self.profile.agent_workload)
        return f"PATCH {path} (metadata.annotations: {', '.join(keys)})"

    async def scale_agents(self, replicas: int) -> None:
        """``kubectl scale --replicas=N`` of the agent workload."""
        kind, name = self.profile.agent_workload_kind, self.profile.agent_workload
        if kind == "Deployment":
            scale: Callable[..., Any] = self._apps.patch_namespaced_deployment_scale
        else:
            scale = self._apps.patch_namespaced_stateful_set_scale
        what = f"scale {kind} {name} to {replicas}"
        await self._run(what, scale, name, self.namespace, scale_patch(replicas))

    async def delete_pod(self, pod: str) -> bool:
        """Delete one pod; False when it was already gone (a retry deletes nothing twice)."""
        deleted = await self._call(
            f"delete pod {pod}", self._core.delete_namespaced_pod, pod, self.namespace, missing=None
        )
        return deleted is not None

    async def grow_claim(self, claim: str, size: str) -> None:
        """Set a PersistentVolumeClaim's requested storage (the API refuses to shrink it)."""
        body = pvc_size_patch(size)
        what = f"grow claim {claim} to {size}"
        await self._run(
            what, self._core.patch_namespaced_persistent_volume_claim, claim, self.namespace, body
        )

    async def run_in_pod(self, pod: str, command: Sequence[str]) -> str:
        """Run a (changing) command in a pod through exec; its output."""
        return await self._shell.exec(pod, command)

    # -- plumbing ------------------------------------------------------------------------------
    def _patcher(self, kind: str) -> Callable[..., Any]:
        if kind == "Deployment":
            return self._apps.patch_namespaced_deployment
        return self._apps.patch_namespaced_stateful_set

    async def _call(
        self, what: str, method: Callable[..., Any], *args: Any, missing: Any = _RAISE
    ) -> Any:
        """``method(*args)``; a 404 returns ``missing`` when given, else raises like others."""
        try:
            return await in_thread(
                method, *args, _request_timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
            )
        except ApiException as error:
            if error.status == 404 and missing is not _RAISE:
                return missing
            raise _api_error(what, error) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            host = self._configuration.host
            raise SourceUnreachable(NAME, f"cannot reach {host} to {what}: {error}") from None

    async def _run(self, what: str, method: Callable[..., Any], *args: Any) -> None:
        await self._call(what, method, *args)
