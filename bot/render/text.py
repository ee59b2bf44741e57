"""Text helpers for Slack mrkdwn: anything a user or a system wrote is shown literally."""

from __future__ import annotations

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape(text: str) -> str:
    """Escape ``text`` so Slack never turns it into a mention, a link or a command."""
    return text.translate(_ESCAPES)


def code(text: str) -> str:
    """``text`` as inline code, escaped; backticks inside are replaced so the span holds."""
    return "`" + escape(text).replace("`", "'") + "`"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
