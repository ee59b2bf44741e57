"""Remediations of the resource-pressure runbook: RP-A1..RP-A4."""

from __future__ import annotations

from bot.executors.base import Executor

EXECUTORS: dict[str, Executor] = {}
