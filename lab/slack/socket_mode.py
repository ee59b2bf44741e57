"""Socket Mode: the WebSocket endpoint apps.connections.open hands out.

Behaves as Slack's does: a `hello` on connect, envelopes delivered to one random open
connection, acks matched by envelope_id, pings answered with pongs, and a `disconnect`
message when Slack wants the app to reconnect. Runs on the emulator's event loop.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from lab.slack.state import APP_ID, Workspace

EnvelopeType = str  # "slash_commands" | "interactive" | "events_api"
_HOST = "applink-emulator"


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    pongs: int = 0
    pings_received: int = 0
    pong_event: asyncio.Event = field(default_factory=asyncio.Event)


class SocketHub:
    """Open Socket Mode connections, envelopes in flight and the acks received."""

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        self._connections: list[_Connection] = []
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._acks: list[dict[str, Any]] = []
        self.pings_received = 0

    @property
    def connection_count(self) -> int:
        """How many connections have received `hello` and are still open."""
        with self._workspace.lock:
            return sum(1 for c in self._connections if not c.ws.closed)

    @property
    def acks(self) -> list[dict[str, Any]]:
        """Every ack message received, in order."""
        with self._workspace.lock:
            return list(self._acks)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """GET /socket-mode?ticket=...: upgrade, say hello, then read acks and pings."""
        with self._workspace.lock:
            known = request.query.get("ticket", "") in self._workspace.socket_tickets
        if not known:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        connection = _Connection(ws)
        with self._workspace.lock:
            self._connections.append(connection)
        try:
            await ws.send_json(self._hello())
            await self._read(connection)
        finally:
            with self._workspace.lock:
                self._connections.remove(connection)
        return ws

    def _hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "num_connections": self.connection_count,
            "debug_info": {"host": _HOST, "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID},
        }

    async def _read(self, connection: _Connection) -> None:
        async for message in connection.ws:
            if message.type == WSMsgType.TEXT:
                self._on_text(str(message.data))
            elif message.type == WSMsgType.PING:
                connection.pings_received += 1
                self.pings_received += 1
                await connection.ws.pong(message.data)
            elif message.type == WSMsgType.PONG:
                connection.pongs += 1
                connection.pong_event.set()

    def _on_text(self, data: str) -> None:
        try:
            ack = json.loads(data)
        except ValueError:
            return
        if not isinstance(ack, dict):
            return
        with self._workspace.lock:
            self._acks.append(ack)
        future = self._pending.get(str(ack.get("envelope_id")))
        if future is not None and not future.done():
            future.set_result(ack)

    async def send(
        self,
        envelope_type: EnvelopeType,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        ack_timeout: float = 5.0,
    ) -> dict[str, Any]:
        """Deliver one envelope to a random open connection; return its ack."""
        envelope = build_envelope(envelope_type, payload, retry_attempt, retry_reason)
        open_connections = [c for c in self._connections if not c.ws.closed]
        if not open_connections:
            raise ConnectionError("no Socket Mode connection is open")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[envelope["envelope_id"]] = future
        try:
            await random.choice(open_connections).ws.send_json(envelope)
            return await asyncio.wait_for(future, ack_timeout)
        except TimeoutError as exc:
            raise TimeoutError(
                f"no ack for {envelope_type} envelope {envelope['envelope_id']} "
                f"within {ack_timeout}s"
            ) from exc
        finally:
            self._pending.pop(envelope["envelope_id"], None)

    async def ping(self, pong_timeout: float) -> int:
        """Ping every open connection; return how many answered with a pong in time."""
        answered = 0
        for connection in [c for c in self._connections if not c.ws.closed]:
            connection.pong_event.clear()
            await connection.ws.ping(b"emulator-ping")
            try:
                await asyncio.wait_for(connection.pong_event.wait(), pong_timeout)
                answered += 1
            except TimeoutError:
                continue
        return answered

    async def disconnect(self, reason: str) -> int:
        """Send Slack's `disconnect` message to every connection; return how many."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": _HOST}}
        targets = [c for c in self._connections if not c.ws.closed]
        for connection in targets:
            await connection.ws.send_json(message)
        return len(targets)

    async def close_all(self) -> None:
        """Close every connection (the emulator is going away)."""
        for connection in list(self._connections):
            await connection.ws.close(code=WSCloseCode.GOING_AWAY, message=b"emulator stopping")


def build_envelope(
    envelope_type: EnvelopeType, payload: dict[str, Any], retry_attempt: int, retry_reason: str
) -> dict[str, Any]:
    """Build a Socket Mode envelope as Slack does.

    Only Events API envelopes carry retry fields on a first delivery; commands and
    interactions carry them only when `retry_attempt` is set, so a bot never mistakes
    `x-slack-retry-num: 0` on a command for a retry.
    """
    envelope: dict[str, Any] = {
        "envelope_id": str(uuid.uuid4()),
        "type": envelope_type,
        "payload": payload,
        "accepts_response_payload": _accepts_response_payload(envelope_type, payload),
    }
    if envelope_type == "events_api" or retry_attempt:
        envelope["retry_attempt"] = retry_attempt
        envelope["retry_reason"] = retry_reason
    return envelope


def _accepts_response_payload(envelope_type: EnvelopeType, payload: dict[str, Any]) -> bool:
    if envelope_type == "slash_commands":
        return True
    if envelope_type == "interactive":
        return payload.get("type") in {"view_submission", "block_suggestion", "shortcut"}
    return False
