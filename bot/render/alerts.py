"""Alerts in Block Kit: the section of an incident's summary that lists its alerts, and the
batched thread updates of an alert storm.

Label values and annotations come from whoever configured the alert rules: every one is
shown as inline code (escaped), so ``<!channel>``, ``<@U123>``, links and ``*bold*`` appear
literally and never notify, link or format.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.alerts.model import AlertLine, AlertSummary
from bot.render.diagnosis import LINE_LIMIT, bounded_lines
from bot.render.text import code, truncate

SHOWN_ALERTS = 5
SHOWN_LABELS = 6
STATUS_ICON = {"firing": ":fire:", "resolved": ":white_check_mark:"}
SKIPPED_LABELS = frozenset({"alertname", "severity"})


def labels_text(labels: Mapping[str, str], limit: int = SHOWN_LABELS) -> str:
    """``key=value`` pairs as inline code, the first ``limit`` of them."""
    pairs = [f"{key}={value}" for key, value in sorted(labels.items()) if key not in SKIPPED_LABELS]
    shown = " ".join(code(pair) for pair in pairs[:limit])
    more = len(pairs) - limit
    return shown + (f" +{more} more" if more > 0 else "")


def alert_line(line: AlertLine) -> str:
    """``:fire: `CircuitBreakerOpen` critical · `pod=agent-0` …``."""
    repeats = f" · received {line.received_count} times" if line.received_count > 1 else ""
    text = (
        f"{STATUS_ICON.get(line.status, '')} {code(line.alertname)} {code(line.severity)} "
        f"{line.status}{repeats} · {labels_text(line.labels)}"
    )
    return truncate(text, LINE_LIMIT)


def alerts_text(summary: AlertSummary) -> str:
    """The summary's alert section: counts, then the first alerts."""
    head = f"*Alerts:* {summary.firing} firing, {summary.resolved} resolved"
    lines = [head, *(alert_line(line) for line in summary.lines[:SHOWN_ALERTS])]
    hidden = summary.total - min(len(summary.lines), SHOWN_ALERTS)
    if hidden > 0:
        lines.append(f"… and {hidden} more")
    return bounded_lines(lines)


def storm_update_text(new: int, resolved: int, firing_now: int) -> str:
    """A batched thread update: ``+37 more alerts, 12 resolved (25 firing now)``."""
    parts = []
    if new:
        parts.append(f"+{new} more alert{'s' if new != 1 else ''}")
    if resolved:
        parts.append(f"{resolved} resolved")
    return f":bell: {', '.join(parts) or 'no change'} ({firing_now} firing now)"
