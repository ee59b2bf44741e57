"""Remediations of the s3-throttling runbook: TH-A1..TH-A3."""

from __future__ import annotations

from bot.executors.base import Executor

EXECUTORS: dict[str, Executor] = {}
