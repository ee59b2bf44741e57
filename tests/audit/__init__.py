"""Tests of the tamper-evident audit trail and its Slack outbox."""
