"""Alert messages in Slack read back into alerts: Alertmanager's Slack receiver and Grafana.

The fixtures in ``fixtures/`` are message events as the Events API delivers them, their
text rendered from the senders' documented templates: Alertmanager's ``default.tmpl``
(``slack.default.title`` = ``__subject``, empty ``slack.default.text``), the widespread
``*Alert:* / *Description:* / *Details:*`` custom text, Alertmanager's
``__text_alert_list``, and Grafana's ``default.title`` / ``default.message``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.alerts.model import IncomingAlert
from bot.alerts.slack_messages import (
    message_plain_text,
    parse_alert_message,
    parse_alert_title,
    unescape_slack,
)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    """One stored message event."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def parsed(name: str) -> list[IncomingAlert]:
    """The alerts of one stored message event."""
    return parse_alert_message(fixture(name))


def summary(alerts: list[IncomingAlert]) -> list[tuple[str, str, str]]:
    """Name, status and origin of each alert, in order."""
    return [(a.alertname, a.status, a.origin) for a in alerts]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "alertmanager_default_firing",
            [("CircuitBreakerOpen", "firing", "alertmanager-slack")],
        ),
        (
            "alertmanager_default_resolved",
            [("CircuitBreakerOpen", "resolved", "alertmanager-slack")],
        ),
        (
            "alertmanager_custom_firing_two",
            [("PartitionLeaseConflicts", "firing", "alertmanager-slack")] * 2,
        ),
        (
            "alertmanager_custom_resolved",
            [("HighS3ThrottlingRate", "resolved", "alertmanager-slack")],
        ),
        ("alertmanager_text_list", [("WALCorruptionRate", "firing", "alertmanager-slack")] * 2),
        ("grafana_firing", [("HighMemoryUsage", "firing", "grafana")]),
        (
            "grafana_mixed",
            [("HighMemoryUsage", "firing", "grafana"), ("HighMemoryUsage", "resolved", "grafana")],
        ),
        ("grafana_resolved", [("HighMemoryUsage", "resolved", "grafana")]),
        ("blocks_only", [("SchemaRegistryErrors", "firing", "alertmanager-slack")]),
        ("hostile_labels", [("CircuitBreakerOpen", "firing", "alertmanager-slack")]),
        ("not_an_alert", []),
    ],
)
def test_every_fixture_parses_to_its_alerts(
    name: str, expected: list[tuple[str, str, str]]
) -> None:
    """Each stored message gives exactly the alerts its template rendered."""
    assert summary(parsed(name)) == expected


def test_default_template_names_only_the_group() -> None:
    """Alertmanager's stock message (title, empty text) is one alert for the whole group."""
    (alert,) = parsed("alertmanager_default_firing")
    assert alert.labels == {"alertname": "CircuitBreakerOpen"}
    assert alert.annotations == {"group": "CircuitBreakerOpen (prod streamhouse high)"}
    assert alert.generator_url is None


def test_default_template_resolution_matches_its_firing() -> None:
    """The resolved message of a group has the fingerprint of its firing message."""
    (firing,) = parsed("alertmanager_default_firing")
    (resolved,) = parsed("alertmanager_default_resolved")
    assert firing.fingerprint == resolved.fingerprint


def test_group_alerts_of_two_groups_differ() -> None:
    """Two groups of one alert name (other namespaces) are two alerts."""
    message = fixture("alertmanager_default_firing")
    other = json.loads(json.dumps(message))
    other["attachments"][0]["title"] = "[FIRING:1] CircuitBreakerOpen (staging streamhouse high)"
    assert parse_alert_message(message)[0].fingerprint != parse_alert_message(other)[0].fingerprint


def test_custom_template_reads_each_alert_with_its_labels() -> None:
    """``*Alert:*`` starts an alert; ``*Details:*`` bullets are its labels, backticks off."""
    first, second = parsed("alertmanager_custom_firing_two")
    assert first.labels == {
        "alertname": "PartitionLeaseConflicts",
        "cluster": "prod",
        "namespace": "streamhouse",
        "partition": "3",
        "severity": "high",
        "topic": "orders",
    }
    assert first.annotations == {
        "summary": "Lease conflicts on orders/3",
        "description": "Two agents claim partition 3 of orders.",
    }
    assert second.labels["partition"] == "7"
    assert first.fingerprint != second.fingerprint
    assert first.severity == "high"


def test_custom_template_keeps_a_description_over_several_lines() -> None:
    """A description that runs on keeps its following lines."""
    (alert,) = parsed("alertmanager_custom_resolved")
    description = "SlowDown responses above 1% for 5 minutes.\nSee the S3 dashboard."
    assert alert.annotations["description"] == description


def test_text_alert_list_reads_labels_annotations_and_source() -> None:
    """``__text_alert_list``: labels, annotations and the generator URL, unwrapped."""
    first, second = parsed("alertmanager_text_list")
    assert first.labels["pod"] == "streamhouse-agent-0"
    assert second.labels["pod"] == "streamhouse-agent-1"
    assert first.annotations == {
        "runbook": "docs/runbooks/wal-corruption.md",
        "summary": "WAL records fail their checksum",
    }
    url = "http://prometheus.example.com:9090/graph?g0.expr=rate%28wal_corrupt_total%5B5m%5D%29+%3E+0&g0.tab=1"
    assert first.generator_url == url
    assert second.generator_url == url


def test_grafana_message_reads_labels_annotations_and_links() -> None:
    """Grafana's default message: labels, annotations, value, source and silence links."""
    (alert,) = parsed("grafana_firing")
    assert alert.labels == {
        "alertname": "HighMemoryUsage",
        "cluster": "prod",
        "grafana_folder": "Streamhouse",
        "namespace": "streamhouse",
        "pod": "streamhouse-agent-2",
        "severity": "critical",
    }
    assert alert.annotations["summary"] == "Agent memory above 90%"
    assert alert.annotations["runbook_url"].endswith("/docs/runbooks/resource-pressure.md")
    assert alert.annotations["value"] == "B=93.2, C=1"
    assert alert.annotations["panel_url"].endswith("?orgId=1&viewPanel=4")
    assert "&amp;" not in alert.annotations["silence_url"]
    assert (
        alert.generator_url == "https://grafana.example.com/alerting/grafana/c3d1aa7e/view?orgId=1"
    )
    assert alert.severity == "critical"


def test_grafana_sections_set_each_alerts_status() -> None:
    """``**Firing**`` and ``**Resolved**`` sections of one message give each its status."""
    firing, resolved = parsed("grafana_mixed")
    assert firing.labels["pod"] == "streamhouse-agent-0"
    assert resolved.labels["pod"] == "streamhouse-agent-2"
    (earlier,) = parsed("grafana_firing")
    assert resolved.fingerprint == earlier.fingerprint


def test_blocks_message_is_read_once() -> None:
    """Blocks are the message; its ``text`` (the notification fallback) adds nothing."""
    (alert,) = parsed("blocks_only")
    assert alert.labels == {
        "alertname": "SchemaRegistryErrors",
        "cluster": "prod",
        "namespace": "streamhouse",
        "severity": "medium",
    }
    assert alert.annotations["summary"] == "Schema registry 5xx above 5%"
    assert alert.generator_url == "http://prometheus.example.com:9090/graph?g0.expr=schema_errors"


def test_hostile_label_text_is_kept_literally() -> None:
    """Mentions, links and mrkdwn in values come back as the literal text, unescaped once."""
    (alert,) = parsed("hostile_labels")
    assert alert.labels["cluster"] == "<!channel>"
    assert alert.labels["namespace"] == "<@U123>"
    assert alert.labels["pod"] == "<http://evil.example.com|click>"
    assert alert.labels["team"] == "*bold* & _italic_"
    assert alert.annotations["summary"] == "Breaker open <!here>"
    assert alert.annotations["description"] == (
        "Ping <!channel> and visit <http://evil.example.com|click>"
    )


@pytest.mark.parametrize(
    ("line", "status", "firing", "resolved", "group", "common"),
    [
        (
            "[FIRING:2] CircuitBreakerOpen (streamhouse prod)",
            "firing",
            2,
            None,
            ("CircuitBreakerOpen",),
            ("streamhouse", "prod"),
        ),
        (
            "[RESOLVED] CircuitBreakerOpen prod ",
            "resolved",
            None,
            None,
            ("CircuitBreakerOpen", "prod"),
            (),
        ),
        ("[FIRING:1, RESOLVED:3] A b (c)", "firing", 1, 3, ("A", "b"), ("c",)),
        ("*[FIRING:1] :fire: AgentOOMKilled*", "firing", 1, None, ("AgentOOMKilled",), ()),
        ("[FIRING:4]  (streamhouse)", "firing", 4, None, (), ("streamhouse",)),
    ],
)
def test_titles_are_read(
    line: str,
    status: str,
    firing: int | None,
    resolved: int | None,
    group: tuple[str, ...],
    common: tuple[str, ...],
) -> None:
    """``__subject`` titles: status, counts, group and common values, an emoji prefix."""
    title = parse_alert_title(line)
    assert title is not None
    assert (title.status, title.firing, title.resolved) == (status, firing, resolved)
    assert (title.group_values, title.common_values) == (group, common)


@pytest.mark.parametrize("line", ["FIRING: disk full", "[WARNING:1] X", "[firing] "])
def test_other_lines_are_not_titles(line: str) -> None:
    """Only ``[FIRING…]`` / ``[RESOLVED…]`` heads are titles; an empty title names nothing."""
    title = parse_alert_title(line)
    assert title is None or title.alertname is None


def test_unescape_undoes_slack_escaping_once() -> None:
    """``&lt; &gt; &amp;`` become ``< > &``; an escaped escape stays one level escaped."""
    assert unescape_slack("&lt;!channel&gt; a &amp; b &amp;lt;") == "<!channel> a & b &lt;"


def bot_message(text: str = "", **extra: Any) -> dict[str, Any]:
    """A message an app posted in an alert channel."""
    return {"type": "message", "bot_id": "B01", "text": text, "ts": "1.1", **extra}


def test_title_and_alerts_in_the_message_text() -> None:
    """With no attachment, a ``[FIRING…]`` first line of the text is the title."""
    text = (
        "*[FIRING:1] AgentOOMKilled (prod)*\n"
        "*Alert:* agent-1 was OOM-killed\n*Details:*\n• pod: `agent-1`"
    )
    (alert,) = parse_alert_message(bot_message(text))
    assert alert.alertname == "AgentOOMKilled"
    assert alert.labels == {"alertname": "AgentOOMKilled", "pod": "agent-1"}
    assert alert.annotations == {"summary": "agent-1 was OOM-killed"}


def test_blank_lines_inside_an_annotation_are_kept() -> None:
    """A multi-paragraph annotation keeps its blank lines; the next item ends it."""
    text = (
        "[FIRING:1] X\nLabels:\n - alertname = X\nAnnotations:\n"
        " - description = first\n\nsecond\n - summary = s\nSource: http://p/graph\n"
    )
    (alert,) = parse_alert_message(bot_message(text))
    assert alert.annotations == {"description": "first\n\nsecond", "summary": "s"}


def test_status_line_of_an_alert_wins_over_the_title() -> None:
    """A ``*Status:*`` line sets that alert's status."""
    text = "[FIRING:1] X\n*Alert:* one\n*Status:* resolved\n*Alert:* two"
    statuses = [alert.status for alert in parse_alert_message(bot_message(text))]
    assert statuses == ["resolved", "firing"]


def test_attachment_fields_are_read() -> None:
    """Legacy attachment fields (``title``/``value``) fill the alert like key lines."""
    message = bot_message(
        attachments=[
            {
                "title": "[FIRING:1] HighS3ThrottlingRate",
                "fields": [
                    {"title": "Severity", "value": "medium", "short": True},
                    {"title": "Description", "value": "SlowDown &gt; 1%", "short": False},
                ],
            }
        ]
    )
    (alert,) = parse_alert_message(message)
    assert alert.labels == {"alertname": "HighS3ThrottlingRate", "severity": "medium"}
    assert alert.annotations == {"description": "SlowDown > 1%"}


def test_fallback_stands_in_for_a_missing_title() -> None:
    """An attachment with only its ``fallback`` (``title | link``) still names the group."""
    message = bot_message(attachments=[{"fallback": "[RESOLVED] WALCorruptionRate | http://am"}])
    assert summary(parse_alert_message(message)) == [
        ("WALCorruptionRate", "resolved", "alertmanager-slack")
    ]


def test_rich_text_blocks_are_read_when_there_is_no_text() -> None:
    """A message of ``rich_text`` blocks only is flattened, mentions kept literally."""
    section = {
        "type": "rich_text_section",
        "elements": [
            {"type": "text", "text": "[FIRING:1] X\nLabels:\n - alertname = X\n - team = a&b"},
            {"type": "text", "text": "\n - owner = "},
            {"type": "broadcast", "range": "channel"},
            {"type": "text", "text": "\n - runbook = "},
            {"type": "link", "url": "http://evil", "text": "click"},
        ],
    }
    message = bot_message(blocks=[{"type": "rich_text", "elements": [section]}])
    (alert,) = parse_alert_message(message)
    assert alert.labels == {
        "alertname": "X",
        "team": "a&b",
        "owner": "<!channel>",
        "runbook": "<http://evil|click>",
    }


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"text": None, "attachments": "nope", "blocks": [None, 3, {"type": "section"}]},
        {"attachments": [None, {"title": 5, "text": ["x"]}]},
        {"text": "*Alert:* something broke\n*Details:*\n• pod: `a`"},
        {"text": "Labels:\n - alertname = X"},
    ],
)
def test_malformed_or_statusless_messages_give_nothing(message: dict[str, Any]) -> None:
    """Odd shapes never raise; alert-like text without a status is not an alert."""
    assert parse_alert_message(message) == []


def test_plain_text_gathers_titles_text_and_blocks() -> None:
    """``message_plain_text`` (for the shortcut's manual alert) reads every part."""
    text = message_plain_text(fixture("alertmanager_default_firing"))
    assert text == "[FIRING:2] CircuitBreakerOpen (prod streamhouse high)"
    assert message_plain_text(fixture("not_an_alert")).startswith("Heads-up: deploying")
