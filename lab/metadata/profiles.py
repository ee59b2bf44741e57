"""How each profile spells the metadata database (streamhouse-facts.md §3.3).

The runbooks query ``partition_leases.agent_id`` and ``lease_epoch``; the code at HEAD
has ``leader_agent_id`` and ``epoch``, an ``agents`` table, organizations and row-level
security. (Lease durations differ too: ``World.lease_ttl_ms`` holds the profile's.)
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from lab.world import Profile


@dataclass(frozen=True)
class Spelling:
    """Table and column names of one profile."""

    profile: Profile
    holder: str  # partition_leases column naming the lease holder
    epoch: str  # partition_leases column holding the fencing epoch
    has_agents: bool  # an agents table exists (and leases reference it)
    has_organizations: bool  # organization_id columns and row-level security
    tables: tuple[str, ...]  # every table, in an order TRUNCATE accepts

    @property
    def ddl(self) -> str:
        """The schema script of this profile (``lab/sql/metadata_<profile>.sql``)."""
        return (files("lab") / "sql" / f"metadata_{self.profile}.sql").read_text("utf-8")


_REGISTRY_TABLES = (
    "schema_registry_versions",
    "schema_registry_subject_config",
    "schema_registry_schemas",
)

RUNBOOK = Spelling(
    profile="runbook",
    holder="agent_id",
    epoch="lease_epoch",
    has_agents=False,
    has_organizations=False,
    tables=("partition_leases", *_REGISTRY_TABLES),
)

UPSTREAM = Spelling(
    profile="upstream",
    holder="leader_agent_id",
    epoch="epoch",
    has_agents=True,
    has_organizations=True,
    tables=(
        "partition_leases",
        "segments",
        "partitions",
        "topics",
        "lease_transfers",
        "leader_changes",
        "agents",
        *_REGISTRY_TABLES,
        "organizations",
    ),
)


def spelling_for(profile: Profile) -> Spelling:
    """The spelling of ``profile``."""
    return RUNBOOK if profile == "runbook" else UPSTREAM
