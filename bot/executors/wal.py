"""Remediations of the wal-recovery runbook: WAL-A1..WAL-A3 (and RP-A4 in resources)."""

from __future__ import annotations

from bot.executors.base import Executor

EXECUTORS: dict[str, Executor] = {}
