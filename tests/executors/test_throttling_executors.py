"""CB-A3, TH-A2 and TH-A3 without Slack: their pure rules, and the upstream profile against
the lab's Kubernetes API fake (a StatefulSet, and no THROTTLE_PUT_RATE)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.approvals import ActionRequest, RequestState
from bot.errors import BotError
from bot.executors.base import ActionContext, Preview
from bot.executors.circuit_breaker import (
    EXECUTORS as BREAKER_EXECUTORS,
)
from bot.executors.circuit_breaker import (
    env_moved,
    env_rollback,
    throttle_changes,
)
from bot.executors.throttling import EXECUTORS as THROTTLING_EXECUTORS
from bot.executors.throttling import raise_plan, rate_text, scaled_replicas
from bot.models import ActionOption, CheckResult, Diagnosis, Risk, Status
from bot.profiles import profile_named
from bot.settings import Settings
from bot.sources import KubernetesSource, api_configuration
from bot.sources.base import Sources, WorkloadInfo
from bot.sources.kubernetes_actions import KubernetesActions
from bot.sources.writers import Writers
from handlers.base import Target
from handlers.s3_throttling import planned_raise
from lab.kubernetes import KubernetesFake
from lab.scenarios import apply_scenario
from lab.world import World

RUNBOOK = profile_named("runbook")
UPSTREAM = profile_named("upstream")
NOW = datetime(2026, 1, 31, 10, 20, tzinfo=UTC)


def demand(limit: float, peak: float | None) -> CheckResult:
    """A TH-3 result with the evidence TH-A2 reads."""
    evidence = {"put_limit": limit, "peak_put_per_s_7d": peak}
    return CheckResult("TH-3", "demand", Status.CRITICAL, "overload", evidence, ("prometheus",))


def diagnosis(
    checks: tuple[CheckResult, ...] = (), actions: tuple[ActionOption, ...] = ()
) -> Diagnosis:
    """A diagnosis as the engine returns it, with only what the test needs."""
    return Diagnosis(
        runbook="s3-throttling",
        title="High S3 throttling rate",
        status=Status.CRITICAL,
        summary="",
        checks=checks,
        actions=actions,
        probable_cause=None,
        runbook_url="https://runbooks.example/high-s3-throttling-rate.md",
        started_at=NOW,
        finished_at=NOW,
    )


# -- the rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("limit", "peak", "target", "possible"),
    [
        (3000, 4800, 3500, True),  # one 500 step, under the S3 per-prefix limit
        (3200, 4800, 3500, True),  # capped by the S3 per-prefix limit
        (3000, 2600, 3120, True),  # capped by 1.2 x last week's peak
        (3000, None, 3500, True),  # no peak known: only the S3 limit caps it
        (3500, 9000, 3500, False),  # already at the ceiling
    ],
)
def test_the_raise_is_one_step_under_both_ceilings(
    limit: float, peak: float | None, target: float, possible: bool
) -> None:
    """TH-A2's value: the guard rail and the preview share ``planned_raise``."""
    plan = planned_raise(demand(limit, peak))
    assert plan.target == pytest.approx(target)
    assert plan.possible is possible


def test_raise_plan_refuses_with_the_guard_rails_reason() -> None:
    """A blocked TH-A2 cannot be previewed; the reason is the guard rail's."""
    blocked = ActionOption("TH-A2", "Raise", Risk.MEDIUM, False, "S3 already answers 503")
    with pytest.raises(BotError, match="S3 already answers 503"):
        raise_plan(diagnosis((demand(3000, 4800),), (blocked,)))
    allowed = ActionOption("TH-A2", "Raise", Risk.MEDIUM, True)
    assert raise_plan(diagnosis((demand(3000, 4800),), (allowed,))).target == 3500
    assert rate_text(3120.0) == "3120"


@pytest.mark.parametrize(
    ("env", "limit", "changes"),
    [
        ({"THROTTLE_ENABLED": "true"}, 3000, {"THROTTLE_PUT_RATE": "2500"}),
        ({"THROTTLE_ENABLED": "TRUE"}, 2000, {"THROTTLE_ENABLED": "true"}),  # never raised
        ({}, 3000, {"THROTTLE_ENABLED": "true", "THROTTLE_PUT_RATE": "2500"}),
        ({"THROTTLE_ENABLED": "true"}, 2500, {}),
    ],
)
def test_throttle_changes_tune_down_and_never_up(
    env: dict[str, str], limit: float, changes: dict[str, str]
) -> None:
    """CB-A3 in the runbook profile: enabled exactly ``true``, the rate at most 2500/s."""
    assert throttle_changes(RUNBOOK, env, limit) == changes


def test_upstream_throttle_changes_touch_only_throttle_enabled() -> None:
    """Upstream ignores THROTTLE_PUT_RATE and defaults THROTTLE_ENABLED to true."""
    assert throttle_changes(UPSTREAM, {"THROTTLE_ENABLED": "true"}, 3000) == {}
    assert throttle_changes(UPSTREAM, {}, 3000) == {}
    assert throttle_changes(UPSTREAM, {"THROTTLE_ENABLED": "false"}, 3000) == {
        "THROTTLE_ENABLED": "true"
    }


def test_env_moved_and_rollback_read_like_an_engineer_would_say_them() -> None:
    """What moved, and the ``kubectl set env`` that puts it back (unset: removed)."""
    before = {"THROTTLE_PUT_RATE": "3000", "THROTTLE_ENABLED": None}
    assert env_moved(before, {"THROTTLE_PUT_RATE": "3000"}) is None
    moved = env_moved(before, {"THROTTLE_PUT_RATE": "2800"})
    assert moved == "THROTTLE_PUT_RATE is now 2800, was 3000"
    workload = WorkloadInfo(
        "StatefulSet", "streamhouse-agent", 3, 3, {}, None, None, None, None, {}
    )
    assert env_rollback(workload, before) == (
        "kubectl set env statefulset/streamhouse-agent THROTTLE_PUT_RATE=3000 THROTTLE_ENABLED- "
        "(rolls the agent pods again)"
    )


def test_scale_out_goes_to_three_then_one_more() -> None:
    """The matrix's "replicas 3 or +1"."""
    assert [scaled_replicas(n) for n in (0, 1, 2, 3, 5)] == [3, 3, 3, 4, 6]


# -- upstream against the Kubernetes fake --------------------------------------------------------
@pytest.fixture
def upstream_world() -> Iterator[tuple[World, KubernetesFake]]:
    """An upstream world in s3-throttling/sustained, served by the Kubernetes fake."""
    world = World("upstream")
    apply_scenario(world, "s3-throttling", "sustained")
    fake = KubernetesFake(world)
    fake.start()
    yield world, fake
    fake.stop()


@pytest.fixture
async def upstream_ctx(
    upstream_world: tuple[World, KubernetesFake],
) -> AsyncIterator[ActionContext]:
    """What an upstream executor gets: the fake's reader and writer, an empty diagnosis."""
    world, fake = upstream_world
    configuration = api_configuration(fake.url)
    reader = KubernetesSource(configuration, namespace=world.namespace, profile=UPSTREAM)
    writer = KubernetesActions(configuration, namespace=world.namespace, profile=UPSTREAM)
    settings = Settings.model_validate(
        {"slack_bot_token": "xoxb-test", "slack_signing_secret": "test-secret"}
    )
    sources, writers = Sources(kubernetes=reader), Writers(kubernetes=writer)
    yield ActionContext(sources, writers, settings, UPSTREAM, Target(), diagnosis())
    await writer.close()
    await reader.close()


def approved(action_id: str, preview: Preview) -> ActionRequest:
    """A request as the store hands it to ``execute``."""
    return ActionRequest(
        id="R-1",
        incident_id="SH-1",
        runbook="s3-throttling",
        action_id=action_id,
        risk=Risk.MEDIUM,
        target=preview.key,
        requested_by="U0ALICE",
        reason="test",
        preview=preview.to_json(),
        state=RequestState.EXECUTING,
        approved_by="U0ALICE",
        decided_at=NOW,
        expires_at=NOW + timedelta(minutes=15),
        created_at=NOW,
        executed_at=NOW,
        message_ts=None,
        result=None,
    )


async def test_upstream_refuses_to_raise_a_limit_it_does_not_read(
    upstream_ctx: ActionContext,
) -> None:
    """TH-A2 upstream: a clear refusal before anything is read or written."""
    with pytest.raises(BotError, match="does not read THROTTLE_PUT_RATE"):
        await THROTTLING_EXECUTORS["TH-A2"].preview(upstream_ctx)


async def test_upstream_scale_out_scales_the_statefulset(
    upstream_world: tuple[World, KubernetesFake], upstream_ctx: ActionContext
) -> None:
    """TH-A3 upstream: the StatefulSet's scale subresource, 3 -> 4, a new ordinal pod."""
    world, fake = upstream_world
    executor = THROTTLING_EXECUTORS["TH-A3"]
    preview = await executor.preview(upstream_ctx)
    assert preview.key == "StatefulSet/streamhouse-agent"
    assert "/statefulsets/streamhouse-agent/scale" in preview.call
    assert (preview.current, preview.new) == ("3 replicas (3 ready)", "4 replicas")
    assert "statefulset/streamhouse-agent --replicas=3" in preview.rollback
    request = approved("TH-A3", preview)
    assert await executor.changed(upstream_ctx, request) is None
    outcome = await executor.execute(upstream_ctx, request)
    assert "from 3 to 4" in outcome.text
    assert world.agent_workload.replicas == 4
    assert "streamhouse-agent-3" in {agent.pod for agent in world.agents}
    moved = await executor.changed(upstream_ctx, request)
    assert moved == "the agent workload has 4 replicas now, was 3"
    patches = [r.path for r in fake.requests if r.method == "PATCH"]
    assert patches == ["/apis/apps/v1/namespaces/streamhouse/statefulsets/streamhouse-agent/scale"]


async def test_upstream_enable_throttling_sets_only_throttle_enabled(
    upstream_world: tuple[World, KubernetesFake], upstream_ctx: ActionContext
) -> None:
    """CB-A3 upstream: nothing to do while throttling is on; with THROTTLE_ENABLED=false it
    sets only that variable on the StatefulSet (THROTTLE_PUT_RATE is ignored upstream)."""
    world, _ = upstream_world
    executor = BREAKER_EXECUTORS["CB-A3"]
    with pytest.raises(BotError, match="ignores THROTTLE_PUT_RATE"):
        await executor.preview(upstream_ctx)
    world.set_env(world.agent_workload.name, {"THROTTLE_ENABLED": "false"})
    preview = await executor.preview(upstream_ctx)
    assert preview.params["env"] == {"THROTTLE_ENABLED": "true"}
    assert "/statefulsets/streamhouse-agent" in preview.call
    assert "THROTTLE_PUT_RATE" not in preview.call
    await executor.execute(upstream_ctx, approved("CB-A3", preview))
    assert world.agent_workload.env["THROTTLE_ENABLED"] == "true"
    assert "THROTTLE_PUT_RATE" not in world.agent_workload.env


async def test_watches_change_nothing_and_hand_the_worker_their_checks(
    upstream_ctx: ActionContext,
) -> None:
    """CB-A1 and TH-A1: read-only previews, a ``Watch`` of the runbook's window."""
    for executor, checks, window in (
        (BREAKER_EXECUTORS["CB-A1"], ("CB-1",), 180.0),
        (THROTTLING_EXECUTORS["TH-A1"], ("TH-2",), 600.0),
    ):
        preview = await executor.preview(upstream_ctx)
        assert preview.blast_radius == "none: read-only"
        assert preview.params == {"checks": list(checks), "window_s": window}
        outcome = await executor.execute(upstream_ctx, approved("watch", preview))
        assert outcome.watch is not None
        assert (outcome.watch.checks, outcome.watch.window_s) == (checks, window)
        assert executor.cooldown(upstream_ctx.settings) == timedelta(0)
