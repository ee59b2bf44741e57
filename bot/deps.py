"""The container of everything listeners and subcommands need, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from slack_sdk.web.async_client import AsyncWebClient

from bot.metrics import BotMetrics
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.approvers import Approvers
    from bot.commands import CommandRouter
    from bot.deliveries import DeliveryLog
    from bot.sources.factory import SourceSet
    from bot.sources.writers import Writers
    from bot.store.db import Database


@dataclass(frozen=True)
class Deps:
    """Settings, the store, Slack, metrics, the router, the delivery log, the sources, who
    may approve actions and the writers approved actions go through."""

    settings: Settings
    db: Database
    slack: AsyncWebClient
    metrics: BotMetrics
    router: CommandRouter
    deliveries: DeliveryLog
    sources: SourceSet
    approvers: Approvers
    writers: Writers
