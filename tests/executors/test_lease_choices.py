"""What LC-A1..LC-A3 decide to act on, from the diagnosis evidence and the workload."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.errors import BotError
from bot.executors.leases import pick_conflicting_pod, pick_reset_candidate, restore_target
from bot.sources.base import WorkloadInfo
from handlers.lease_conflicts import SCALED_DOWN_FROM

DEAD = [
    {"topic": "orders", "partition": 2, "holder": "agent-c", "epoch": 42},
    {"topic": "payments", "partition": 1, "holder": "agent-c", "epoch": 45},
]


def test_the_targets_lease_is_picked() -> None:
    """topic= and partition= choose among several dead-holder leases."""
    assert pick_reset_candidate(DEAD, "payments", 1)["epoch"] == 45
    assert pick_reset_candidate(DEAD, "orders", None)["partition"] == 2


def test_the_only_candidate_is_picked_without_a_target() -> None:
    """One dead-holder lease in LC-1: no target needed."""
    assert pick_reset_candidate(DEAD[:1], None, None) == DEAD[0]


def test_several_candidates_ask_for_a_target() -> None:
    """Ambiguous: the error names the leases and the words to type."""
    with pytest.raises(BotError, match=r"orders/2, payments/1.*`topic=orders partition=2`"):
        pick_reset_candidate(DEAD, None, None)


def test_a_target_with_a_live_holder_has_nothing_to_reset() -> None:
    """The target is not among LC-1's dead-holder leases."""
    with pytest.raises(BotError, match="does not show orders/0 held by a dead agent"):
        pick_reset_candidate(DEAD, "orders", 0)
    with pytest.raises(BotError, match="no lease held by a dead agent"):
        pick_reset_candidate([], None, None)


PODS: list[dict[str, Any]] = [
    {"pod": "agent-0", "agent_id": "agent-agent-0", "in_workload": True, "conflicts": 3},
    {"pod": "agent-1", "agent_id": "agent-agent-1", "in_workload": True, "conflicts": 5},
    {"pod": "agent-2", "agent_id": "agent-agent-2", "in_workload": True, "conflicts": 0},
]


def test_the_noisiest_pod_or_the_target_agent_is_restarted() -> None:
    """Without agent=, the pod with the most conflict lines; with it, that agent's pod."""
    assert pick_conflicting_pod(PODS, None)["pod"] == "agent-1"
    assert pick_conflicting_pod(PODS, "agent-agent-2")["pod"] == "agent-2"
    with pytest.raises(BotError, match="No agent pod runs as ghost"):
        pick_conflicting_pod(PODS, "ghost")
    with pytest.raises(BotError, match="no conflicting agent"):
        pick_conflicting_pod(PODS[2:], None)


WORKLOAD = WorkloadInfo(
    kind="StatefulSet",
    name="streamhouse-agent",
    replicas=1,
    ready_replicas=1,
    env={},
    memory_limit_bytes=None,
    memory_request_bytes=None,
    cpu_limit_cores=None,
    cpu_request_cores=None,
    annotations={SCALED_DOWN_FROM: "3"},
)


def test_the_scale_back_needs_one_replica_and_a_recorded_n() -> None:
    """N comes from the annotation, only while the workload runs a single replica."""
    assert restore_target(WORKLOAD) == 3
    assert restore_target(replace(WORKLOAD, replicas=3)) is None
    assert restore_target(replace(WORKLOAD, annotations={})) is None
    assert restore_target(replace(WORKLOAD, annotations={SCALED_DOWN_FROM: "many"})) is None
