"""Container logs, answered like ``GET /api/v1/namespaces/{ns}/pods/{name}/log``.

Query parameters: ``container`` (must name the pod's container), ``previous`` (the lines
written before the current container started; a 400 if the container never terminated),
``sinceSeconds`` / ``sinceTime`` (relative to the World's clock), ``tailLines``,
``limitBytes`` and ``timestamps`` (RFC 3339 with nanoseconds, then a space).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from lab.kubernetes.errors import bad_request
from lab.kubernetes.meta import Cluster, rfc3339_nano
from lab.kubernetes.pods import find_pod
from lab.kubernetes.templates import AGENT_CONTAINER, REGISTRY_CONTAINER
from lab.world import LogLine


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "false").lower() in ("true", "1")


def _int(query: Mapping[str, str], name: str) -> int | None:
    if name not in query:
        return None
    try:
        value = int(query[name])
    except ValueError as exc:
        raise bad_request(f"invalid value for {name}: {query[name]!r}") from exc
    if value < 0 and name != "tailLines":
        raise bad_request(f"{name}: Invalid value: {value}: must be greater than 0")
    return value


def _since(cluster: Cluster, query: Mapping[str, str]) -> datetime | None:
    seconds = _int(query, "sinceSeconds")
    if seconds is not None:
        return cluster.now() - timedelta(seconds=seconds)
    if "sinceTime" in query:
        try:
            return datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
        except ValueError as exc:
            raise bad_request(f"invalid sinceTime: {query['sinceTime']!r}") from exc
    return None


def _source_lines(cluster: Cluster, pod: str, previous: bool) -> list[LogLine]:
    agent = cluster.world.agent_by_pod(pod)
    if agent is None:
        if previous:
            raise bad_request(
                f'previous terminated container "{REGISTRY_CONTAINER}" in pod "{pod}" not found'
            )
        return list(cluster.world.registry_logs)
    if not previous:
        return list(agent.logs)
    if agent.last_terminated_reason is None and agent.restart_count == 0:
        raise bad_request(
            f'previous terminated container "{AGENT_CONTAINER}" in pod "{pod}" not found'
        )
    return [line for line in agent.logs if line.at < agent.started_at]


def pod_log(cluster: Cluster, pod: str, query: Mapping[str, str]) -> str:
    """The text of one pod's log after the query's filters."""
    container = find_pod(cluster, pod)["spec"]["containers"][0]["name"]
    if query.get("container", container) != container:
        raise bad_request(f"container {query['container']} is not valid for pod {pod}")
    lines = _source_lines(cluster, pod, _flag(query, "previous"))
    since = _since(cluster, query)
    if since is not None:
        lines = [line for line in lines if line.at >= since]
    tail = _int(query, "tailLines")
    if tail is not None and tail >= 0:
        lines = lines[-tail:] if tail else []
    stamped = _flag(query, "timestamps")
    text = "".join(
        f"{rfc3339_nano(line.at)} {line.text}\n" if stamped else f"{line.text}\n" for line in lines
    )
    limit = _int(query, "limitBytes")
    return text.encode()[:limit].decode(errors="ignore") if limit is not None else text
