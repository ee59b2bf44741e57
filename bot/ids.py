"""Stable identifiers shared by listeners, rendering and tests (kebab-case values)."""

from __future__ import annotations

from enum import StrEnum

SLASH_COMMAND = "/streamhouse"


class Subcommand(StrEnum):
    """The words that may follow ``/streamhouse``."""

    HELP = "help"
    PING = "ping"
    DIAGNOSE = "diagnose"
    INCIDENT = "incident"
    FREEZE = "freeze"


class BlockId(StrEnum):
    """Block ids the bot sets so updates and tests can find blocks again."""

    HELP_HEADER = "help-header"
    HELP_USAGE = "help-usage"
    ERROR = "error"
    PING_RESULT = "ping-result"
    DIAGNOSIS_HEADER = "diagnosis-header"
    DIAGNOSIS_SUMMARY = "diagnosis-summary"
    DIAGNOSIS_CHECKS = "diagnosis-checks"
    DIAGNOSIS_BLOCKED = "diagnosis-blocked"
    DIAGNOSIS_GUIDANCE = "diagnosis-guidance"
    DIAGNOSIS_ACTIONS = "diagnosis-actions"
    DIAGNOSIS_CONTEXT = "diagnosis-context"
    TRIAGE_RUNBOOK = "triage"
    INCIDENT_HEADER = "incident-header"
    INCIDENT_STATE = "incident-state"
    INCIDENT_PEOPLE = "incident-people"
    INCIDENT_ALERTS = "incident-alerts"
    INCIDENT_CONTEXT = "incident-context"
    INCIDENT_LIST = "incident-list"
    ACTION_PREVIEW = "action-preview"
    ACTION_REASON = "action-reason"
    ACTION_REQUEST = "action-request"
    ACTION_DECISION = "action-decision"


class ActionId(StrEnum):
    """``action_id`` prefixes of the bot's buttons."""

    OPEN_RUNBOOK = "open-runbook"
    REQUEST_ACTION = "request-action"
    APPROVE_REQUEST = "approve-request"
    DENY_REQUEST = "deny-request"
    REASON_INPUT = "reason-input"


class CallbackId(StrEnum):
    """``callback_id`` of the bot's modals and shortcuts."""

    ACTION_REQUEST = "action-request"
    DIAGNOSE_THIS = "diagnose-this"  # the message shortcut
