"""The clients approved actions write through, one per system, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import BotError
from bot.sources.kubernetes_actions import KubernetesActions
from bot.sources.metadata_actions import MetadataActions
from bot.sources.registry_actions import RegistryActions


@dataclass(frozen=True)
class Writers:
    """The clients that may change a system; None where the system is not configured."""

    kubernetes: KubernetesActions | None = None
    metadata: MetadataActions | None = None
    registry: RegistryActions | None = None

    def require_kubernetes(self) -> KubernetesActions:
        """The Kubernetes writer, or a ``BotError`` saying the bot has no cluster."""
        if self.kubernetes is None:
            raise BotError("The bot has no Kubernetes API configured, so it cannot run this.")
        return self.kubernetes

    def require_metadata(self) -> MetadataActions:
        """The metadata writer, or a ``BotError`` saying STREAMHOUSE_DATABASE_URL is unset."""
        if self.metadata is None:
            raise BotError("Set STREAMHOUSE_DATABASE_URL so the bot can change leases.")
        return self.metadata

    def require_registry(self) -> RegistryActions:
        """The registry writer, or a ``BotError`` saying SCHEMA_REGISTRY_URL is unset."""
        if self.registry is None:
            raise BotError("Set SCHEMA_REGISTRY_URL so the bot can change the registry.")
        return self.registry

    async def close(self) -> None:
        """Close every writer."""
        for writer in (self.kubernetes, self.metadata, self.registry):
            if writer is not None:
                await writer.close()
