"""RP-A4 (resource-pressure runbook): delete WAL files already uploaded to S3."""

from __future__ import annotations

from bot.executors.base import Executor

EXECUTORS: dict[str, Executor] = {}
