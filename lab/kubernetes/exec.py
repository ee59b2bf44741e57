"""``pods/exec`` over the ``v4.channel.k8s.io`` WebSocket protocol.

While ``world.exec_allowed`` is False (the default) every exec is a 403 Forbidden Status,
what RBAC without ``pods/exec`` gives; through ``kubernetes.stream.stream`` that surfaces
as ``ApiException(status=0, reason="Handshake status 403 Forbidden ...")`` exactly as on a
real cluster. When allowed, a WebSocket upgrade runs the command with ``lab.kubernetes.shell``
(stdout on channel 1, stderr on 2, the exit Status on 3); a plain HTTP request is the
API server's 400 "Upgrade request required".
"""

from __future__ import annotations

import json

from aiohttp import WSMsgType, web

from lab.kubernetes.errors import ApiError, forbidden
from lab.kubernetes.meta import Cluster, JsonObject
from lab.kubernetes.shell import Result, run

PROTOCOLS = ("v4.channel.k8s.io", "channel.k8s.io")
SERVICE_ACCOUNT = "system:serviceaccount:streamhouse:streamhouse-chatops"
STDOUT, STDERR, ERROR = 1, 2, 3


def exec_forbidden(cluster: Cluster, pod: str) -> ApiError:
    """The RBAC refusal of ``create pods/exec``."""
    why = (
        f'User "{SERVICE_ACCOUNT}" cannot create resource "pods/exec" in API group "" '
        f'in the namespace "{cluster.namespace}"'
    )
    return forbidden("pods", pod, why)


def exit_status(command: list[str], result: Result) -> JsonObject:
    """The Status the kubelet sends on the error channel when the command ends."""
    if result.exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    message = (
        f"command terminated with non-zero exit code: error executing command "
        f"{command}, exit code {result.exit_code}"
    )
    return {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(result.exit_code)}]},
    }


async def exec_pod(request: web.Request, cluster: Cluster, pod: str) -> web.StreamResponse:
    """Answer an exec request: 403, 400 (no upgrade) or the command's output."""
    with cluster.world.lock:
        allowed = cluster.world.exec_allowed
    if not allowed:
        raise exec_forbidden(cluster, pod)
    socket = web.WebSocketResponse(protocols=PROTOCOLS)
    if not socket.can_prepare(request).ok:
        raise ApiError(400, "BadRequest", "Upgrade request required")
    await socket.prepare(request)
    command = request.query.getall("command", [])
    with cluster.world.lock:
        result = run(cluster, pod, command)
    if result.stdout and request.query.get("stdout", "true").lower() in ("true", "1"):
        await socket.send_bytes(bytes([STDOUT]) + result.stdout.encode())
    if result.stderr and request.query.get("stderr", "true").lower() in ("true", "1"):
        await socket.send_bytes(bytes([STDERR]) + result.stderr.encode())
    await socket.send_bytes(bytes([ERROR]) + json.dumps(exit_status(command, result)).encode())
    await socket.close()
    async for message in socket:  # drain until the client has seen the close
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
    return socket
