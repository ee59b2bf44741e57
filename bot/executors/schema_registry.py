"""Remediations of the schema-registry runbook: SR-A1, SR-A2."""

from __future__ import annotations

from bot.executors.base import Executor

EXECUTORS: dict[str, Executor] = {}
