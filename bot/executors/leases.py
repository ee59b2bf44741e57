"""Remediations of the lease-conflicts runbook: LC-A1..LC-A3."""

from __future__ import annotations

from bot.executors.base import Executor

EXECUTORS: dict[str, Executor] = {}
