"""The bot's own Prometheus metrics, served at ``GET /metrics``.

Each app gets its own registry so several bots can live in one process (tests, benches).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0)


class BotMetrics:
    """Counters and histograms for Slack requests, listeners and Web API calls."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "streamhouse_bot_slack_requests",
            "Slack requests handled, by listener and outcome (ok, error, duplicate).",
            ["listener", "outcome"],
            registry=self.registry,
        )
        self.ack_latency = Histogram(
            "streamhouse_bot_listener_ack_seconds",
            "Time from receiving a Slack request until it was acknowledged, by listener.",
            ["listener"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.slack_api_calls = Counter(
            "streamhouse_bot_slack_api_calls",
            "Slack Web API calls made, by method.",
            ["method"],
            registry=self.registry,
        )
        self.slack_api_errors = Counter(
            "streamhouse_bot_slack_api_errors",
            "Slack Web API calls that failed, by method and error.",
            ["method", "error"],
            registry=self.registry,
        )

        self.alerts = Counter(
            "streamhouse_bot_alerts_received",
            "Alerts received on POST /alertmanager (re-sends included).",
            registry=self.registry,
        )

    def alerts_received(self, count: int) -> None:
        """Count a webhook delivery's alerts."""
        self.alerts.inc(count)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
