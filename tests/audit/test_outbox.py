"""The audit outbox: events reach their Slack thread in order, once, despite failures."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from slack_sdk.web.async_client import AsyncWebClient

from bot.audit import AuditLog
from bot.outbox import AuditOutbox, retry_delay
from bot.store import Database
from lab.slack import SlackEmulator

CHANNEL = "C0INCIDENTS"
EVENT_ID = re.compile(r"^#(\d+) ")


def plain_client(slack: SlackEmulator) -> AsyncWebClient:
    """A client without retry handlers, so only the outbox's own retries are at work."""
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=[])


async def open_thread(client: AsyncWebClient, text: str) -> str:
    """Post a root message and return its ts, the thread the events go to."""
    response = await client.chat_postMessage(channel=CHANNEL, text=text)
    return str(response["ts"])


def posted_ids(slack: SlackEmulator, thread_ts: str) -> list[int]:
    """The audit event ids posted as replies in a thread, in the thread's order."""
    replies = slack.thread(CHANNEL, thread_ts)[1:]
    return [int(match[1]) for reply in replies if (match := EVENT_ID.match(reply["text"]))]


def outbox_rows(url: str) -> list[tuple[int, str | None, int]]:
    """(event_id, posted_ts, attempts) of every outbox row, by event id."""
    with psycopg.connect(url) as conn:
        query = "SELECT event_id, posted_ts, attempts FROM audit_outbox ORDER BY event_id"
        return conn.execute(query).fetchall()


@asynccontextmanager
async def running(*outboxes: AuditOutbox) -> AsyncIterator[None]:
    """Run the outboxes' loops in the background for the duration of the block."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(outbox.run(stop, interval=0.05)) for outbox in outboxes]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def test_retry_delay_doubles_caps_and_honours_retry_after() -> None:
    """Backoff doubles per attempt, stops at 60 s, and never undercuts Retry-After."""
    assert [retry_delay(n, None) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert retry_delay(12, None) == 60.0
    assert retry_delay(1, 7.0) == 7.0
    assert retry_delay(1, 90.0) == 90.0


async def test_slack_failing_with_500_then_429_loses_and_doubles_nothing(
    db: Database, database_url: str, slack_emulator: SlackEmulator
) -> None:
    """After a 500 and a 429, every event reaches the thread once, in order, later."""
    client = plain_client(slack_emulator)
    thread_ts = await open_thread(client, "INC-1 audit")
    log = AuditLog(db)
    events = [
        await log.append(
            "INC-1", "note", {"text": f"step {n} <&>"}, channel=CHANNEL, thread_ts=thread_ts
        )
        for n in range(5)
    ]
    slack_emulator.fail_next("chat.postMessage", status=500)
    slack_emulator.fail_next("chat.postMessage", status=429, retry_after=1)
    outbox = AuditOutbox(db, client, base_delay_s=0.05)

    assert await outbox.drain_once() == 0  # the 500: nothing posted, nothing dropped
    assert outbox_rows(database_url)[0][1:] == (None, 1)
    expected = [event.id for event in events]
    async with running(outbox):
        await slack_emulator.async_wait_for(
            lambda: len(posted_ids(slack_emulator, thread_ts)) >= 5, timeout=20
        )
    assert posted_ids(slack_emulator, thread_ts) == expected
    rows = outbox_rows(database_url)
    assert all(posted_ts is not None for _, posted_ts, _ in rows)
    assert rows[0][2] == 3  # 500, 429, then success
    assert "step 0 &lt;&amp;&gt;" in slack_emulator.thread(CHANNEL, thread_ts)[1]["text"]


async def test_two_outboxes_draining_together_post_each_event_once_in_order(
    db: Database, database_url: str, slack_emulator: SlackEmulator
) -> None:
    """Two workers on separate pools share two threads; each event is posted exactly once."""
    slack_emulator.set_rate_limit(burst=None)  # every call must succeed: counts are exact
    client = plain_client(slack_emulator)
    threads = [await open_thread(client, f"INC-{n} audit") for n in (1, 2)]
    log = AuditLog(db)
    expected: dict[str, list[int]] = {ts: [] for ts in threads}
    for n in range(12):
        ts = threads[n % 2]
        event = await log.append(
            f"INC-{n % 2 + 1}", "note", {"n": n}, channel=CHANNEL, thread_ts=ts
        )
        expected[ts].append(event.id)
    other = await Database.connect(database_url)
    try:
        first = AuditOutbox(db, client, base_delay_s=0.05)
        second = AuditOutbox(other, plain_client(slack_emulator), base_delay_s=0.05)
        async with running(first, second):
            await slack_emulator.async_wait_for(
                lambda: all(posted_ids(slack_emulator, ts) == expected[ts] for ts in threads),
                timeout=20,
            )
            await asyncio.sleep(0.3)  # give a double post the chance to show up
    finally:
        await other.close()
    assert {ts: posted_ids(slack_emulator, ts) for ts in threads} == expected
    assert len(slack_emulator.calls_to("chat.postMessage")) == 2 + 12
    assert [attempts for _, _, attempts in outbox_rows(database_url)] == [1] * 12


async def test_rows_stay_queued_while_slack_is_down(
    db: Database, database_url: str, slack_emulator: SlackEmulator
) -> None:
    """While every post fails, rows only gain attempts and errors; none is dropped."""
    client = plain_client(slack_emulator)
    thread_ts = await open_thread(client, "INC-1 audit")
    log = AuditLog(db)
    for n in range(3):
        await log.append("INC-1", "note", {"n": n}, channel=CHANNEL, thread_ts=thread_ts)
    slack_emulator.fail_next("chat.postMessage", status=503, times=100)
    outbox = AuditOutbox(db, client)
    assert await outbox.drain_once() == 0
    assert await outbox.drain_once() == 0  # backing off: the head is not due yet
    rows = outbox_rows(database_url)
    assert [posted_ts for _, posted_ts, _ in rows] == [None, None, None]
    # Only the thread's head was tried, once; later events wait behind it.
    assert [attempts for _, _, attempts in rows] == [1, 0, 0]
    assert posted_ids(slack_emulator, thread_ts) == []
    with psycopg.connect(database_url) as conn:
        error = conn.execute("SELECT last_error FROM audit_outbox ORDER BY event_id").fetchone()
    assert error == ("HTTP 503: service_unavailable",)
