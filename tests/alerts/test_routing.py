"""Every alert of both rule files routes to its runbook; anything else is unrouted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.alerts.model import IncomingAlert
from bot.alerts.routing import BY_NAME, UNROUTED, group_key, route
from handlers.registry import RUNBOOKS

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def rules(file: str) -> list[dict[str, Any]]:
    """Every alerting rule of a rule file."""
    data = yaml.safe_load((RULES / file).read_text())
    return [rule for group in data["groups"] for rule in group["rules"] if "alert" in rule]


ALL_RULES = [
    pytest.param(rule, id=f"{file}:{rule['alert']}")
    for file in ("alerts-runbook.yaml", "alerts-upstream.yaml")
    for rule in rules(file)
]


def as_alert(rule: dict[str, Any], *, with_annotations: bool = True) -> IncomingAlert:
    """The alert a rule would fire (labels and, optionally, annotations as written)."""
    labels = {"alertname": rule["alert"], **{k: str(v) for k, v in rule.get("labels", {}).items()}}
    annotations = {k: str(v) for k, v in rule.get("annotations", {}).items()}
    return IncomingAlert(
        alertname=rule["alert"],
        status="firing",
        labels=labels,
        annotations=annotations if with_annotations else {},
    )


@pytest.mark.parametrize("rule", ALL_RULES)
def test_every_rule_routes_to_a_runbook_by_annotation_and_by_name(rule: dict[str, Any]) -> None:
    """Each rule names a runbook file in its annotations; the alert name alone agrees."""
    by_annotation = route(as_alert(rule))
    assert by_annotation in RUNBOOKS
    assert route(as_alert(rule, with_annotations=False)) == by_annotation


def test_names_from_the_runbooks_readme_and_the_upstream_code_are_known() -> None:
    """The README's names and their upstream renames route to the same runbooks."""
    assert BY_NAME["LeaseConflicts"] == BY_NAME["PartitionLeaseConflicts"] == "lease-conflicts"
    assert BY_NAME["HighThrottlingRate"] == BY_NAME["HighS3ThrottlingRate"] == "s3-throttling"
    assert BY_NAME["AgentOOMKilled"] == "resource-pressure"
    assert BY_NAME["WALCorruptionRate"] == "wal-recovery"
    assert set(BY_NAME.values()) == set(RUNBOOKS)


def test_a_runbook_link_inside_the_description_routes_and_unknown_alerts_do_not() -> None:
    """A link in ``description`` wins over the name; an unknown alert is unrouted."""
    linked = IncomingAlert(
        alertname="SomethingCustom",
        status="firing",
        labels={"alertname": "SomethingCustom"},
        annotations={"description": "see https://wiki/runbooks/resource-pressure.md now"},
    )
    assert route(linked) == "resource-pressure"
    unknown = IncomingAlert("NobodyKnows", "firing", {"alertname": "NobodyKnows"})
    assert route(unknown) == UNROUTED


def test_groups_follow_the_runbook_and_labels() -> None:
    """Same runbook and namespace share a key; lease alerts also split by partition."""
    one = IncomingAlert("CircuitBreakerOpen", "firing", {"namespace": "a", "pod": "p0"})
    two = IncomingAlert("S3ErrorRateHigh", "firing", {"namespace": "a", "pod": "p1"})
    other = IncomingAlert("CircuitBreakerOpen", "firing", {"namespace": "b"})
    assert group_key(one, route(one)) == group_key(two, route(two))
    assert group_key(one, route(one)) != group_key(other, route(other))
    p3 = IncomingAlert("PartitionLeaseConflicts", "firing", {"topic": "t", "partition": "3"})
    p4 = IncomingAlert("PartitionLeaseConflicts", "firing", {"topic": "t", "partition": "4"})
    assert group_key(p3, route(p3)) != group_key(p4, route(p4))
