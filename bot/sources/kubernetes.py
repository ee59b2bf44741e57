"""The Kubernetes API through the official (blocking) client, one thread per call.

Where the API is: ``KUBERNETES_API_URL`` (plain HTTP, as the lab serves it), else the
in-cluster service account, else the kubeconfig. Names come from the ``Profile``: the agent
and registry label selectors, and whether the agent runs as a Deployment (rollout history
from ReplicaSets' ``deployment.kubernetes.io/revision``) or a StatefulSet (history from
ControllerRevisions). How failures map:

- ``ApiException`` 401/403, and an exec handshake refused with 403 → ``SourceForbidden``.
- ``ApiException`` 404 and other answers → ``SourceQueryError`` with the Status message.
- Connection refused, DNS, TLS, timeouts (urllib3 and WebSocket) → ``SourceUnreachable``.

``exec`` goes through ``kubernetes.stream.stream``, which swaps the ``ApiClient``'s
transport while it runs; each exec therefore gets its own ``ApiClient`` so that concurrent
plain calls on the shared one are unaffected.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.stream import stream
from websocket import WebSocketException

from bot.profiles import Profile
from bot.sources import kubernetes_parse as parse
from bot.sources.base import (
    EventInfo,
    NodeInfo,
    PodInfo,
    PodUsage,
    PvcInfo,
    SourceError,
    SourceForbidden,
    SourceNotConfigured,
    SourceQueryError,
    SourceUnreachable,
    VolumeStat,
    WorkloadInfo,
)
from bot.sources.threads import in_thread

NAME = "kubernetes"
T = TypeVar("T")
Revisions = tuple[tuple[int, datetime | None], ...]
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0
EXEC_TIMEOUT_S = 15.0
# The config loaders carry no annotations; typed aliases keep mypy --strict meaningful.
_load_incluster_config: Callable[..., None] = config.load_incluster_config
_load_kube_config: Callable[..., None] = config.load_kube_config


def api_configuration(api_url: str | None) -> client.Configuration:
    """Where the API is: the URL, else in-cluster, else kubeconfig (``SourceNotConfigured``)."""
    configuration = client.Configuration()
    if api_url:
        configuration.host = api_url.rstrip("/")
    else:
        try:
            _load_incluster_config(client_configuration=configuration)
        except ConfigException:
            try:
                _load_kube_config(client_configuration=configuration)
            except (ConfigException, OSError) as error:
                raise SourceNotConfigured(
                    NAME,
                    "set KUBERNETES_API_URL, run the bot in the cluster, or provide a "
                    f"kubeconfig ({error})",
                ) from None
    configuration.retries = 1  # one retry for a dropped keep-alive connection, no more
    return configuration


class KubernetesSource:
    """The ``Kubernetes`` protocol in one namespace; ``close()`` when done."""

    def __init__(
        self,
        configuration: client.Configuration,
        *,
        namespace: str,
        profile: Profile,
        timeout: float = READ_TIMEOUT_S,
        exec_timeout: float = EXEC_TIMEOUT_S,
    ) -> None:
        self.namespace = namespace
        self.profile = profile
        self._configuration = configuration
        self._api = client.ApiClient(configuration)
        self._core = client.CoreV1Api(self._api)
        self._apps = client.AppsV1Api(self._api)
        self._timeout = (CONNECT_TIMEOUT_S, timeout)
        self._exec_timeout = exec_timeout

    async def close(self) -> None:
        """Release the client's connections."""
        await in_thread(self._api.close)

    # -- pods -------------------------------------------------------------------------------
    async def agent_pods(self) -> list[PodInfo]:
        """Pods matching the profile's agent selector."""
        return await self._pods(self.profile.agent_selector)

    async def registry_pods(self) -> list[PodInfo]:
        """Pods of the schema-registry workload."""
        return await self._pods(self.profile.registry_selector)

    async def _pods(self, selector: Mapping[str, str]) -> list[PodInfo]:
        labels = ",".join(f"{key}={value}" for key, value in selector.items())
        found = await self._call(
            f"list pods ({labels})",
            self._core.list_namespaced_pod,
            self.namespace,
            label_selector=labels,
        )
        return sorted((parse.pod_info(pod) for pod in found.items), key=lambda pod: pod.name)

    async def logs(
        self, pod: str, *, tail: int = 200, since_seconds: int | None = None
    ) -> list[str]:
        """The pod's (first container's) log lines, oldest first."""
        options: dict[str, Any] = {"tail_lines": tail}
        if since_seconds is not None:
            options["since_seconds"] = since_seconds
        text = await self._call(
            f"read the log of pod {pod}",
            self._core.read_namespaced_pod_log,
            pod,
            self.namespace,
            **options,
        )
        return str(text or "").splitlines()

    async def exec(self, pod: str, command: Sequence[str]) -> str:
        """Run a read-only command in the pod; its stdout, or ``SourceQueryError`` if it fails."""
        what = f"exec {' '.join(command)!r} in pod {pod}"
        return await self._run(what, self._exec_blocking, pod, list(command))

    def _exec_blocking(self, pod: str, command: list[str]) -> str:
        with client.ApiClient(self._configuration) as api:
            session = stream(
                client.CoreV1Api(api).connect_get_namespaced_pod_exec,
                pod,
                self.namespace,
                command=command,
                stdin=False,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
            )
            try:
                session.run_forever(timeout=self._exec_timeout)
                stdout, stderr = session.read_stdout(), session.read_stderr()
                code = session.returncode
            finally:
                session.close()
        if code is None:
            raise SourceUnreachable(
                NAME, f"the command did not end within {self._exec_timeout:g} s"
            )
        if code != 0:
            raise SourceQueryError(NAME, f"exit code {code}: {str(stderr).strip()[:300]}")
        return str(stdout)

    # -- namespace objects ------------------------------------------------------------------
    async def events(self) -> list[EventInfo]:
        """Events in the namespace, oldest first (undated ones first)."""
        found = await self._call("list events", self._core.list_namespaced_event, self.namespace)
        events = [parse.event_info(event) for event in found.items]
        return sorted(events, key=lambda e: (e.at is not None, e.at.timestamp() if e.at else 0))

    async def config_map(self, name: str) -> Mapping[str, str]:
        """A ConfigMap's data."""
        found = await self._call(
            f"read config map {name}",
            self._core.read_namespaced_config_map,
            name,
            self.namespace,
        )
        return parse.str_map(found.data)

    async def pvcs(self) -> list[PvcInfo]:
        """Persistent volume claims in the namespace."""
        found = await self._call(
            "list persistent volume claims",
            self._core.list_namespaced_persistent_volume_claim,
            self.namespace,
        )
        return sorted((parse.pvc_info(claim) for claim in found.items), key=lambda c: c.name)

    async def storage_class_expandable(self, name: str) -> bool:
        """Whether the StorageClass allows volume expansion."""
        storage = client.StorageV1Api(self._api)
        found = await self._call(f"read storage class {name}", storage.read_storage_class, name)
        return bool(found.allow_volume_expansion)

    async def nodes(self) -> list[NodeInfo]:
        """Every node with its conditions."""
        found = await self._call("list nodes", self._core.list_node)
        return sorted((parse.node_info(node) for node in found.items), key=lambda n: n.name)

    # -- usage ------------------------------------------------------------------------------
    async def pod_usage(self) -> list[PodUsage]:
        """``metrics.k8s.io`` usage of every pod in the namespace."""
        metrics = client.CustomObjectsApi(self._api)
        found = await self._call(
            "list pod metrics (metrics.k8s.io)",
            metrics.list_namespaced_custom_object,
            "metrics.k8s.io",
            "v1beta1",
            self.namespace,
            "pods",
        )
        items = (found.get("items") if isinstance(found, dict) else None) or []
        return sorted((parse.pod_usage(item) for item in items), key=lambda u: u.pod)

    async def volume_stats(self, node: str) -> list[VolumeStat]:
        """Kubelet summary (through the node proxy) of the namespace's pod volumes on ``node``."""
        # Without preloading, the generated method returns the raw urllib3 response.
        response: Any = await self._call(
            f"read the kubelet stats of node {node}",
            self._core.connect_get_node_proxy_with_path,
            node,
            "stats/summary",
            _preload_content=False,
        )
        try:
            summary = json.loads(response.data)
        except ValueError:
            raise SourceQueryError(NAME, f"node {node}: stats/summary is not JSON") from None
        return parse.volume_stats(summary, self.namespace)

    # -- the agent workload -----------------------------------------------------------------
    async def agent_workload(self) -> WorkloadInfo:
        """The agent Deployment or StatefulSet, with its rollout history."""
        kind, name = self.profile.agent_workload_kind, self.profile.agent_workload
        if kind == "Deployment":
            read: Callable[..., Any] = self._apps.read_namespaced_deployment
        else:
            read = self._apps.read_namespaced_stateful_set
        workload, revisions = await asyncio.gather(
            self._call(f"read {kind} {name}", read, name, self.namespace),
            self._revisions(kind, name),
        )
        return _workload_info(kind, workload, revisions)

    async def _revisions(self, kind: str, name: str) -> Revisions:
        if kind == "Deployment":
            history = await self._replica_set_history(name)
        else:
            history = await self._controller_revision_history(name)
        return tuple(sorted(history))

    async def _replica_set_history(self, name: str) -> list[tuple[int, datetime | None]]:
        found = await self._call(
            "list replica sets", self._apps.list_namespaced_replica_set, self.namespace
        )
        revisions = (
            parse.replica_set_revision(item)
            for item in found.items
            if parse.owned_by(item, "Deployment", name)
        )
        return [revision for revision in revisions if revision is not None]

    async def _controller_revision_history(self, name: str) -> list[tuple[int, datetime | None]]:
        found = await self._call(
            "list controller revisions",
            self._apps.list_namespaced_controller_revision,
            self.namespace,
        )
        return [
            parse.controller_revision(item)
            for item in found.items
            if parse.owned_by(item, "StatefulSet", name)
        ]

    # -- transport --------------------------------------------------------------------------
    async def _call(self, what: str, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """An API ``method`` with the source's timeouts (see ``_run``)."""
        kwargs.setdefault("_request_timeout", self._timeout)
        return await self._run(what, method, *args, **kwargs)

    async def _run(self, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` in a thread, its errors translated."""
        try:
            return await in_thread(function, *args, **kwargs)
        except SourceError:
            raise
        except ApiException as error:
            raise _api_error(what, error) from None
        except (urllib3.exceptions.HTTPError, WebSocketException, OSError) as error:
            host = self._configuration.host
            raise SourceUnreachable(NAME, f"cannot reach {host} to {what}: {error}") from None


def _workload_info(kind: str, workload: Any, revisions: Revisions) -> WorkloadInfo:
    template = workload.spec.template
    container = template.spec.containers[0]
    memory_limit, memory_request, cpu_limit, cpu_request = parse.container_resources(container)
    annotations = {
        **parse.str_map(workload.metadata.annotations),
        **parse.str_map(template.metadata.annotations if template.metadata else None),
    }
    status = workload.status
    return WorkloadInfo(
        kind=kind,
        name=workload.metadata.name,
        replicas=int(workload.spec.replicas or 0),
        ready_replicas=int((status.ready_replicas if status else 0) or 0),
        env=parse.container_env(container),
        memory_limit_bytes=memory_limit,
        memory_request_bytes=memory_request,
        cpu_limit_cores=cpu_limit,
        cpu_request_cores=cpu_request,
        annotations=annotations,
        revisions=revisions,
    )


def _status_message(error: ApiException) -> str:
    """The ``message`` of the Status in the answer (after ``-+-+-`` in a handshake error)."""
    raw = error.body or str(error.reason or "").rpartition("-+-+-")[2]
    try:
        status = json.loads(raw)
    except (TypeError, ValueError):
        return str(error.reason or "").split("-+-+-")[0].strip()
    return str(status.get("message") or error.reason) if isinstance(status, dict) else raw


def _api_error(what: str, error: ApiException) -> SourceError:
    """The ``SourceError`` an ``ApiException`` means (status 0: the WebSocket handshake)."""
    message = _status_message(error)
    status = int(error.status or 0)
    refused = status == 403 or (status == 0 and "403" in str(error.reason))
    if refused and what.startswith("exec "):
        return SourceForbidden(NAME, f"exec is forbidden by RBAC (pods/exec): {message}")
    if refused or status == 401:
        return SourceForbidden(NAME, f"cannot {what} (HTTP {status or 403}): {message}")
    if status == 0:
        return SourceUnreachable(NAME, f"cannot {what}: {message}")
    return SourceQueryError(NAME, f"cannot {what} (HTTP {status}): {message}")
