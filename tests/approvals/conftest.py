"""A bot wired to a circuit-breaker lab, and the clicks of the approval flow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from bot.runtime import BotRuntime
from bot.store import EmbeddedPostgres
from lab.slack import SlackDriver, SlackEmulator
from lab.stack import Lab
from lab.world import Profile
from tests.fixtures.bot import make_settings
from tests.lab.test_prometheus import require

CHANNEL = "C0GENERAL"
REQUESTER = "U0ALICE"
APPROVER = "U0BOB"
GROUP_APPROVER = "U0CAROL"
OUTSIDER = "U0MALLORY"
APPROVER_GROUP = "S0ONCALL"
ACTION = "CB-A2"
SCENARIO = ("circuit-breaker-open", "recovered-10m")
WAIT_S = 30.0


def started_lab(
    pg_server: EmbeddedPostgres, scenario: tuple[str, str], profile: Profile = "runbook"
) -> Iterator[Lab]:
    """A running lab in ``scenario`` (for module-scoped fixtures); stopped afterwards."""
    require("prometheus")
    running = Lab(profile, admin_url=pg_server.url())
    running.start(*scenario)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def lab(pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """One runbook-profile lab with the breaker stuck open after S3 recovered."""
    yield from started_lab(pg_server, SCENARIO)


def switched(lab: Lab, scenario: tuple[str, str], *, metrics: bool = True) -> Lab:
    """The lab freshly in ``scenario``, with an empty request log (``metrics=False``: see
    ``Lab.switch``)."""
    lab.switch(*scenario, metrics=metrics)
    lab.kubernetes.clear_requests()
    return lab


@pytest.fixture
def fresh_lab(lab: Lab) -> Lab:
    """The lab back in the scenario (a previous test may have restarted the agents)."""
    return switched(lab, SCENARIO)


def requests_of(lab: Lab, method: str) -> list[str]:
    """The paths of the lab Kubernetes API's requests with ``method``."""
    return [r.path for r in lab.kubernetes.requests if r.method == method]


def writes(lab: Lab) -> list[tuple[str, str]]:
    """(method, path) of every request to the Kubernetes API that was not a read (exec is
    checked by the state it changed)."""
    return [(r.method, r.path) for r in lab.kubernetes.requests if r.method != "GET"]


@dataclass
class Flow:
    """The bot, the driver and the emulator of one test, with the steps of a request."""

    bot: BotRuntime
    driver: SlackDriver
    slack: SlackEmulator
    database_url: str
    submitted: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    async def diagnose(
        self, command: str = "diagnose circuit-breaker", action: str = ACTION
    ) -> tuple[str, str]:
        """Run ``command`` (a diagnose); the incident root ts and the ts of the message
        carrying ``action``'s button (the newest incident's)."""
        known = {m["ts"] for m in self.slack.messages(CHANNEL)}
        await self.driver.command(command, user_id=REQUESTER)

        def buttons() -> tuple[str, str] | None:
            fresh = [m for m in self.slack.messages(CHANNEL) if m["ts"] not in known]
            if not fresh or "SH-" not in str(fresh[0]):
                return None
            for reply in self.slack.thread(CHANNEL, fresh[0]["ts"])[1:]:
                if f"request-action:{action}" in str(reply.get("blocks")):
                    return fresh[0]["ts"], reply["ts"]
            return None

        found: tuple[str, str] = await self.slack.async_wait_for(buttons, timeout=30)
        return found

    async def click_request(
        self,
        message_ts: str,
        user: str = REQUESTER,
        action: str = ACTION,
        runbook: str = "circuit-breaker",
    ) -> Any:
        """Click ``action``'s button (CB-A2 unless told otherwise)."""
        return await self.driver.block_action(
            f"request-action:{action}",
            f"{runbook}|{action}",
            user_id=user,
            channel_id=CHANNEL,
            message_ts=message_ts,
        )

    async def submit_request(self, root_ts: str, user: str = REQUESTER) -> str:
        """Submit the opened modal with a reason; the new request's id once it is posted."""
        known = {v["id"] for v in self.submitted}
        view: dict[str, Any] = await self.slack.async_wait_for(
            lambda: next((v for v in self.slack.views if v["id"] not in known), None), timeout=15
        )
        self.submitted.append(view)
        values = {"action-reason": {"reason-input": {"type": "plain_text_input", "value": "stuck"}}}
        await self.driver.view_submission(
            "action-request", values, view_id=view["id"], user_id=user
        )
        row = await self.wait_row(
            lambda r: r is not None and r["message_ts"] is not None and r["id"] not in self.seen
        )
        self.seen.add(str(row["id"]))
        return str(row["id"])

    def request_message_ts(self, root_ts: str) -> str:
        """The ts of the newest thread message showing a request."""
        for reply in reversed(self.slack.thread(CHANNEL, root_ts)):
            if "action-request" in str(reply.get("blocks")):
                return str(reply["ts"])
        raise AssertionError("no request message in the thread")

    async def click(self, action_id: str, request_id: str, user: str, root_ts: str) -> Any:
        """Click Approve or Deny on the request message."""
        return await self.driver.block_action(
            action_id,
            request_id,
            user_id=user,
            channel_id=CHANNEL,
            message_ts=self.request_message_ts(root_ts),
        )

    async def shown(self, message_ts: str, word: str) -> str:
        """The request message once it shows ``word`` (the request's state is stored before
        its buttons are replaced by the outcome)."""

        def text() -> str:
            return str(self.slack.message(CHANNEL, message_ts) or "")

        found: str = await self.slack.async_wait_for(lambda: word in text() and text(), timeout=15)
        return found

    async def row(self) -> dict[str, Any] | None:
        """The newest action request as stored."""
        async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
            cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
            await cursor.execute("SELECT * FROM action_requests ORDER BY created_at DESC LIMIT 1")
            return await cursor.fetchone()

    async def wait_row(self, done: Callable[[dict[str, Any] | None], bool]) -> dict[str, Any]:
        """Poll the newest request until ``done`` holds (for at most ``WAIT_S``)."""
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:
            row = await self.row()
            if done(row):
                assert row is not None
                return row
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"request never reached the wanted state: {row}")
            await asyncio.sleep(0.1)

    async def audit_kinds(self) -> list[tuple[str, str | None, str]]:
        """(kind, actor, text) of every audit event, in order."""
        async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
            cursor = await conn.execute(
                "SELECT kind, actor, body->>'text' FROM audit_events ORDER BY id"
            )
            return [(r[0], r[1], r[2] or "") for r in await cursor.fetchall()]

    async def sql(self, query: str, *params: Any) -> None:
        """Run one statement against the bot's database (to set up a precondition)."""
        async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
            await conn.execute(query, params)

    async def request(
        self, action: str, runbook: str, command: str | None = None
    ) -> tuple[str, str]:
        """Diagnose (``command``, else ``diagnose <runbook>``), click ``action`` and submit
        the modal: (incident root ts, request id)."""
        root_ts, buttons_ts = await self.diagnose(command or f"diagnose {runbook}", action)
        await self.click_request(buttons_ts, action=action, runbook=runbook)
        return root_ts, await self.submit_request(root_ts)


async def resolved(flow: Flow, root_ts: str, within_s: float = 60) -> None:
    """Wait until the incident's root message says resolved."""

    def done() -> bool:
        return "resolved" in str(flow.slack.message(CHANNEL, root_ts) or {}).lower()

    await flow.slack.async_wait_for(done, timeout=within_s)


async def verification_bodies(flow: Flow) -> list[dict[str, Any]]:
    """The bodies of every ``action.verification`` audit event, oldest first."""
    async with await psycopg.AsyncConnection.connect(flow.database_url) as conn:
        cursor = await conn.execute(
            "SELECT body FROM audit_events WHERE kind = 'action.verification' ORDER BY id"
        )
        return [row[0] for row in await cursor.fetchall()]


async def verifications(flow: Flow, count: int = 1) -> list[str]:
    """The texts of the ``action.verification`` audit events, once there are ``count``
    (for at most 30 s)."""

    async def texts() -> list[str]:
        return [t for kind, _, t in await flow.audit_kinds() if kind == "action.verification"]

    for _ in range(300):
        found = await texts()
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} verifications: {await texts()}")


async def final_verification(flow: Flow, *, or_fixed: bool = False) -> dict[str, Any]:
    """The deciding verification's body, once it is recorded: the final run's (``or_fixed``:
    or the run that found the fix, after which no more run)."""
    for _ in range(100):
        bodies = await verification_bodies(flow)
        deciding = [b for b in bodies if b["final"] or (or_fixed and b["fixed"])]
        if deciding:
            return deciding[-1]
        await asyncio.sleep(0.3)
    raise AssertionError("no deciding verification within 30 s")


@asynccontextmanager
async def running_flow(
    lab: Lab, emulator: SlackEmulator, database_url: str, **overrides: Any
) -> AsyncIterator[Flow]:
    """A bot on ``lab`` with Alice and Bob as approvers and Carol in the approver group."""
    env = lab.env()
    settings_values = {k.lower(): v for k, v in env.items() if not k.startswith("AWS_")}
    settings_values.update(
        bot_approvers=f"{REQUESTER},{APPROVER}",
        bot_approver_group=APPROVER_GROUP,
        bot_verify_delays_s="0.5,1.5,3",
    )
    settings_values.update(overrides)
    emulator.set_rate_limit(burst=None)
    emulator.add_usergroup(APPROVER_GROUP, [GROUP_APPROVER])
    settings = make_settings(emulator, database_url, **settings_values)
    async with (
        BotRuntime(settings) as bot,
        SlackDriver(emulator, bot_url=f"{bot.http_url}/slack/events") as driver,
    ):
        yield Flow(bot, driver, emulator, database_url)


@pytest.fixture
def aws_env(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 reads the lab's S3 endpoint and credentials from the environment."""
    for key, value in lab.env().items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
