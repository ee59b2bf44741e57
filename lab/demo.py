"""``make demo``: the bot on embedded PostgreSQL and the Slack emulator, as a user sees it.

Everything runs in this process: the Slack emulator, the bot (HTTP mode, its own embedded
PostgreSQL in a temporary data directory), and a driver that types commands the way Slack
delivers them. Each exchange is printed as a Slack user would read it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from bot.digests.post import demo_digest
from bot.runtime import BotRuntime
from bot.settings import Settings
from lab.prometheus import ComponentMissing
from lab.slack import DriverResponse, SlackDriver, SlackEmulator
from lab.stack import Lab

WIDTH = 88
DEMO_SCENARIO, DEMO_VARIANT = "circuit-breaker-open", "throttling-10m"
DEMO_CHANNEL = "C0INCIDENTS"
DIAGNOSES = ("diagnose cb", "diagnose all")


def message_as_text(message: dict[str, Any]) -> str:
    """A Block Kit message flattened for a terminal: headers, sections, context, buttons."""
    lines: list[str] = []
    for block in message.get("blocks") or []:
        kind = block.get("type")
        if kind == "header":
            lines += [block["text"]["text"].upper(), ""]
        elif kind == "section":
            lines += [block.get("text", {}).get("text", "")]
            lines += [field["text"] for field in block.get("fields", [])]
        elif kind == "context":
            lines += ["  " + " · ".join(e.get("text", "") for e in block.get("elements", []))]
        elif kind == "actions":
            lines += [
                "  " + "  ".join(f"[ {e['text']['text']} ]" for e in block.get("elements", []))
            ]
        elif kind == "divider":
            lines += ["-" * 40]
    if not lines:
        lines = [str(message.get("text", ""))]
    return "\n".join(_unescape(line) for line in lines)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def show(typed: str, message: dict[str, Any], *, private: bool) -> None:
    """Print one exchange: what the user typed and what came back."""
    visibility = "only visible to you" if private else "posted in the channel"
    print(f"\n> {typed}    ({visibility})")
    for line in message_as_text(message).splitlines():
        print(textwrap.indent(textwrap.fill(line, WIDTH) if line else "", "  "))


async def reply_to(response: DriverResponse, emulator: SlackEmulator) -> dict[str, Any]:
    """The message a command produced: in the ack, or posted to its response URL."""
    body = response.json()
    if isinstance(body, dict) and (body.get("text") or body.get("blocks")):
        return body
    posts = await emulator.async_wait_for(lambda: emulator.responses(response.response_url))
    return dict(posts[-1])


async def demo(emulator: SlackEmulator, data_dir: Path, lab_env: dict[str, str]) -> None:
    """Start the bot, type a few commands, print the answers, stop the bot."""
    streamhouse = {k.lower(): v for k, v in lab_env.items() if not k.startswith("AWS_")}
    settings = Settings.model_validate(
        {
            "slack_bot_token": emulator.bot_token,
            "slack_signing_secret": emulator.signing_secret,
            "slack_api_url": emulator.api_url,
            "bot_data_dir": data_dir,
            "bot_http_host": "127.0.0.1",
            "bot_http_port": 0,
            **streamhouse,
        }
    )
    async with BotRuntime(settings) as bot:
        print(f"bot listening on {bot.http_url}, Slack emulator at {emulator.base_url}")
        print(f"embedded PostgreSQL data in {data_dir / 'postgres'}")
        async with SlackDriver(emulator, bot_url=f"{bot.http_url}/slack/events") as driver:
            for typed in ("help", "ping", "pnig"):
                response = await driver.command(typed)
                message = await reply_to(response, emulator)
                show(
                    f"/streamhouse {typed}",
                    message,
                    private=message.get("response_type") != "in_channel",
                )
            for typed in DIAGNOSES:
                root = await channel_result(driver, emulator, typed)
                show(f"/streamhouse {typed}", root, private=False)
                replies = emulator.thread(DEMO_CHANNEL, root["ts"])[1:]
                diagnosis = next((r for r in replies if r.get("blocks")), None)
                if diagnosis is not None:
                    show("(in the incident's thread)", diagnosis, private=False)
            await demo_digest(bot.deps, DEMO_CHANNEL)
            digest = emulator.messages(DEMO_CHANNEL)[-1]
            show(
                "(the scheduled health digest, as `/streamhouse digest now` posts it)",
                digest,
                private=False,
            )


async def channel_result(
    driver: SlackDriver, emulator: SlackEmulator, typed: str
) -> dict[str, Any]:
    """Type a command whose answer is posted in the channel; wait for its final version."""
    before = len(emulator.messages(DEMO_CHANNEL))
    await driver.command(typed, channel_id=DEMO_CHANNEL)

    def final() -> dict[str, Any] | None:
        messages = emulator.messages(DEMO_CHANNEL)
        if len(messages) <= before or "checking…" in str(messages[-1]):
            return None
        return messages[-1] if emulator.edits(DEMO_CHANNEL, messages[-1]["ts"]) else None

    found = await emulator.async_wait_for(final, timeout=30)
    if found is None:
        raise RuntimeError(f"no final answer to {typed!r} within 30 s")
    return dict(found)


def start_lab() -> Lab:
    """The demo's simulated Streamhouse (with Prometheus when it is installed)."""
    lab = Lab("runbook")
    try:
        lab.start(DEMO_SCENARIO, DEMO_VARIANT)
    except ComponentMissing as missing:
        print(f"note: {missing}; the demo runs without Prometheus, so metric checks say unknown")
        lab = Lab("runbook", prometheus=False)
        lab.start(DEMO_SCENARIO, DEMO_VARIANT)
    return lab


def run_demo() -> int:
    """Entry point of ``streamhouse-bot demo``; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    data_dir = Path(tempfile.mkdtemp(prefix="streamhouse-demo-"))
    emulator = SlackEmulator(rate_limit_burst=None).start()
    print(f"starting the lab: scenario {DEMO_SCENARIO}/{DEMO_VARIANT} (S3 throttled, breaker open)")
    lab = start_lab()
    env = lab.env()
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    try:
        asyncio.run(demo(emulator, data_dir, env))
    finally:
        lab.stop()
        emulator.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    print("\ndemo finished: the bot and its database are stopped.")
    return 0
