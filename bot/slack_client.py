"""The bot's Slack Web API client: retries rate limits and connection errors, counts calls."""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.metrics import BotMetrics


class InstrumentedWebClient(AsyncWebClient):
    """``AsyncWebClient`` that records every call and its failures in ``BotMetrics``."""

    def __init__(self, *, metrics: BotMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        self._metrics.slack_api_calls.labels(api_method).inc()
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as error:
            code = str(error.response.get("error", "unknown"))
            self._metrics.slack_api_errors.labels(api_method, code).inc()
            raise
        except Exception as error:
            self._metrics.slack_api_errors.labels(api_method, type(error).__name__).inc()
            raise


def build_slack_client(
    *, token: str, base_url: str, metrics: BotMetrics, timeout: int = 10
) -> InstrumentedWebClient:
    """A client that retries 429s (honouring ``Retry-After``), 5xx and connection errors."""
    return InstrumentedWebClient(
        metrics=metrics,
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )
