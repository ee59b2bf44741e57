"""Starting and stopping the whole bot: database, Slack client, Bolt app, HTTP and Socket Mode.

``BotRuntime`` is what ``streamhouse-bot run`` drives, and what tests and benchmarks start
in-process. Without ``BOT_DATABASE_URL`` it runs its own embedded PostgreSQL under
``BOT_DATA_DIR`` and stops it again on the way out.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from types import TracebackType

from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.alerts.poster import AlertPoster
from bot.app import build_app
from bot.approvers import Approvers
from bot.deliveries import DeliveryLog
from bot.deps import Deps
from bot.digests.scheduler import DigestScheduler
from bot.executors.lifecycle import OrphanSweeper
from bot.metrics import BotMetrics
from bot.outbox import AuditOutbox
from bot.pace import ChannelPace
from bot.readiness import SlackIdentity
from bot.settings import Settings
from bot.slack_client import build_slack_client
from bot.sources.factory import build_sources, build_writers
from bot.store.db import Database
from bot.store.embedded import EmbeddedPostgres
from bot.store.migrations import apply_migrations
from bot.subcommands import build_router
from bot.verification import VerificationWorker
from bot.web import build_web_app

logger = logging.getLogger("bot.runtime")

DELIVERY_MEMORY = timedelta(days=1)
HOUSEKEEPING_INTERVAL_S = 3600.0
OUTBOX_STOP_TIMEOUT_S = 5.0


class BotRuntime:
    """One running bot; ``async with BotRuntime(settings) as bot`` starts and stops it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._embedded: EmbeddedPostgres | None = None
        self._db: Database | None = None
        self._deps: Deps | None = None
        self._runner: web.AppRunner | None = None
        self._socket_mode: AsyncSocketModeHandler | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._outbox_stop = asyncio.Event()
        self._outbox: asyncio.Task[None] | None = None
        self._verifier_stop = asyncio.Event()
        self._verifier: asyncio.Task[None] | None = None
        self._digests: DigestScheduler | None = None
        self.port: int | None = None

    @property
    def deps(self) -> Deps:
        """The dependency container; only valid while the bot runs."""
        if self._deps is None:
            raise RuntimeError("the bot is not running")
        return self._deps

    @property
    def embedded_postgres(self) -> EmbeddedPostgres | None:
        """The embedded database server, when the bot runs one."""
        return self._embedded

    @property
    def http_url(self) -> str:
        """Base URL of the bot's HTTP server as reachable from this machine."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Bring everything up in dependency order; on failure, undo what was started."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self._db = await Database.connect(await self._database_url())
        applied = await apply_migrations(self._db)
        if applied:
            logger.info("applied database migrations: %s", ", ".join(applied))
        metrics = BotMetrics()
        slack = build_slack_client(
            token=self.settings.slack_bot_token.get_secret_value(),
            base_url=self.settings.slack_base_url,
            metrics=metrics,
        )
        sources = build_sources(self.settings)
        self._deps = Deps(
            self.settings,
            self._db,
            slack,
            metrics,
            build_router(),
            DeliveryLog(self._db),
            sources,
            Approvers(slack, self.settings.bot_approvers, self.settings.bot_approver_group),
            build_writers(self.settings, sources),
        )
        bolt_app = build_app(self._deps)
        identity = SlackIdentity(slack)
        if not await identity.check():
            logger.warning("Slack did not accept the bot yet; /readyz stays 503 until it does")
        await self._serve_http(build_web_app(self._deps, bolt_app, identity))
        if self.settings.slack_app_token is not None:
            self._socket_mode = AsyncSocketModeHandler(
                bolt_app, self.settings.slack_app_token.get_secret_value(), web_client=slack
            )
            await self._socket_mode.connect_async()  # type: ignore[no-untyped-call]
            logger.info("connected to Slack over Socket Mode")
        self._housekeeping = asyncio.create_task(self._forget_old_deliveries(self._db))
        self._outbox_stop.clear()
        self._outbox = asyncio.create_task(self._audit_outbox(self._db).run(self._outbox_stop))
        self._verifier_stop.clear()
        self._verifier = asyncio.create_task(self._follow_ups(self._deps, self._verifier_stop))
        self._digests = DigestScheduler(self._deps)
        self._digests.start()

    @staticmethod
    async def _follow_ups(deps: Deps, stop: asyncio.Event) -> None:
        """Verification runs, the requests a stopped bot left half-way, and alert posting."""
        await asyncio.gather(
            VerificationWorker(deps).run(stop),
            OrphanSweeper(deps).run(stop),
            AlertPoster(deps).run(stop),
        )

    def _audit_outbox(self, db: Database) -> AuditOutbox:
        """The worker that mirrors audit events into incident threads.

        Its client has no retry handlers of its own: the outbox's backoff (which honours
        ``Retry-After``) decides when to try again, without holding a row locked meanwhile.
        """
        client = AsyncWebClient(
            token=self.settings.slack_bot_token.get_secret_value(),
            base_url=self.settings.slack_base_url,
            retry_handlers=[],
        )
        return AuditOutbox(db, client, pace=ChannelPace(db, self.settings.bot_post_interval_s))

    async def _database_url(self) -> str:
        if self.settings.bot_database_url is not None:
            return self.settings.bot_database_url.get_secret_value()
        self._embedded = EmbeddedPostgres(self.settings.bot_data_dir / "postgres")
        return await asyncio.to_thread(self._embedded.start)

    @staticmethod
    async def _forget_old_deliveries(db: Database) -> None:
        """Slack retries within minutes; delivery keys older than a day only take space."""
        while True:
            try:
                await db.forget_deliveries_older_than(DELIVERY_MEMORY)
            except Exception as error:  # a database hiccup must not stop the bot
                logger.warning("could not prune old Slack deliveries: %s", error)
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)

    async def _serve_http(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.bot_http_host, self.settings.bot_http_port)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.bot_http_port
        logger.info("listening on http://%s:%s", self.settings.bot_http_host, self.port)

    async def stop(self) -> None:
        """Stop in reverse order; safe to call twice and after a failed start."""
        if self._digests is not None:
            await self._digests.stop()
            self._digests = None
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            self._housekeeping = None
        await self._stop_verifier()
        await self._stop_outbox()
        if self._socket_mode is not None:
            await self._socket_mode.close_async()  # type: ignore[no-untyped-call]
            self._socket_mode = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._deps is not None:
            try:
                await self._deps.deliveries.close()
            except Exception as error:  # stopping must go on; Slack retries are rare
                logger.warning("could not record the last Slack deliveries: %s", error)
            await self._deps.sources.close()
            await self._deps.writers.close()
        if self._db is not None:
            await self._db.close()
            self._db = None
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
            self._embedded = None
        self._deps = None

    async def _stop_verifier(self) -> None:
        """Stop scheduling verification runs; unfinished ones resume on the next start."""
        if self._verifier is None:
            return
        self._verifier_stop.set()
        try:
            await asyncio.wait_for(self._verifier, timeout=OUTBOX_STOP_TIMEOUT_S)
        except TimeoutError:
            logger.warning("a verification run did not stop in time; it resumes on next start")
        except Exception as error:  # stopping must go on; the rows stay in the database
            logger.warning("the verification worker had failed: %s", error)
        self._verifier = None

    async def _stop_outbox(self) -> None:
        """Let the outbox finish the post in hand, then stop it (cancel if it hangs)."""
        if self._outbox is None:
            return
        self._outbox_stop.set()
        try:
            await asyncio.wait_for(self._outbox, timeout=OUTBOX_STOP_TIMEOUT_S)
        except TimeoutError:
            logger.warning("the audit outbox did not stop in time; it resumes on next start")
        except Exception as error:  # stopping must go on; unposted events stay queued
            logger.warning("the audit outbox had failed: %s", error)
        self._outbox = None

    async def __aenter__(self) -> BotRuntime:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
