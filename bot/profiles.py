"""Names as each ``STREAMHOUSE_PROFILE`` spells them: metrics, label values, columns, objects.

``runbook`` is how the runbooks write them; ``upstream`` is what the current Streamhouse
code does (see ``../shared/reference/streamhouse-facts.md``): a ``streamhouse_`` metric
prefix, ``leader_agent_id``/``epoch`` lease columns under row-level security, a StatefulSet
with ``app.kubernetes.io/*`` labels, and the schema registry under ``/schemas`` with an
``x-organization-id`` header. Handlers always ask with the runbook's name and get the
profile's spelling back, or ``None`` where the profile has no such thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

ProfileName = Literal["runbook", "upstream"]
PREFIX = "streamhouse_"

# Families the upstream code names differently, or lacks (None).
_UPSTREAM_RENAMES: Mapping[str, str | None] = MappingProxyType(
    {
        "producer_messages_sent_total": PREFIX + "producer_records_total",
        "segment_buffer_size_bytes": PREFIX + "segment_buffer_records",
        "schema_cache_hits_total": None,
        "schema_cache_misses_total": None,
    }
)
# Exporters that are not Streamhouse keep their names in every profile.
_THIRD_PARTY_PREFIXES = ("container_", "node_", "kube_", "kubelet_", "up")


@dataclass(frozen=True)
class Profile:
    """Every name that differs between the runbooks and the real Streamhouse."""

    name: ProfileName
    agent_workload: str
    agent_workload_kind: Literal["Deployment", "StatefulSet"]
    agent_selector: Mapping[str, str]
    registry_workload: str
    registry_selector: Mapping[str, str]
    lease_holder_column: str
    lease_epoch_column: str
    lease_table_has_rls: bool
    has_agents_table: bool
    has_segments_table: bool
    registry_needs_org_header: bool
    registry_has_compatibility_route: bool
    allowed_decision: str
    s3_error_types_classified: bool  # runbook: error_type="503" etc.; upstream: retry/failed only

    def metric(self, runbook_name: str) -> str | None:
        """The metric family name in this profile, or ``None`` when it does not exist."""
        if self.name == "runbook" or runbook_name.startswith(_THIRD_PARTY_PREFIXES):
            return runbook_name
        if runbook_name in _UPSTREAM_RENAMES:
            return _UPSTREAM_RENAMES[runbook_name]
        return PREFIX + runbook_name

    def agent_selector_string(self) -> str:
        """The agent label selector as Kubernetes' ``labelSelector`` parameter wants it."""
        return ",".join(f"{key}={value}" for key, value in self.agent_selector.items())


RUNBOOK = Profile(
    name="runbook",
    agent_workload="streamhouse-agent",
    agent_workload_kind="Deployment",
    agent_selector=MappingProxyType({"app": "streamhouse-agent"}),
    registry_workload="streamhouse-schema-registry",
    registry_selector=MappingProxyType({"app": "streamhouse-schema-registry"}),
    lease_holder_column="agent_id",
    lease_epoch_column="lease_epoch",
    lease_table_has_rls=False,
    has_agents_table=False,
    has_segments_table=False,
    registry_needs_org_header=False,
    registry_has_compatibility_route=True,
    allowed_decision="allowed",
    s3_error_types_classified=True,
)

UPSTREAM = Profile(
    name="upstream",
    agent_workload="streamhouse-agent",
    agent_workload_kind="StatefulSet",
    agent_selector=MappingProxyType(
        {
            "app.kubernetes.io/name": "streamhouse",
            "app.kubernetes.io/instance": "streamhouse",
            "app.kubernetes.io/component": "agent",
        }
    ),
    registry_workload="streamhouse-schema-registry",
    registry_selector=MappingProxyType(
        {"app.kubernetes.io/name": "streamhouse", "app.kubernetes.io/component": "schema-registry"}
    ),
    lease_holder_column="leader_agent_id",
    lease_epoch_column="epoch",
    lease_table_has_rls=True,
    has_agents_table=True,
    has_segments_table=True,
    registry_needs_org_header=True,
    registry_has_compatibility_route=False,
    allowed_decision="allow",
    s3_error_types_classified=False,
)

PROFILES: Mapping[str, Profile] = MappingProxyType({"runbook": RUNBOOK, "upstream": UPSTREAM})


def profile_named(name: str) -> Profile:
    """The profile called ``name`` (``runbook`` or ``upstream``)."""
    return PROFILES[name]
