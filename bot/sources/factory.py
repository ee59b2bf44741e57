"""Build the long-lived real sources from ``StreamhouseSettings``; close them at shutdown.

A system whose setting is missing gets a null object: every method raises
``SourceNotConfigured`` naming the variable to set, so a check reports "unknown: set
PROMETHEUS_URL ..." instead of crashing. Nothing here does I/O: connections and clients
open on first use (the Kubernetes kubeconfig, when no URL is set, is read here).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, cast

from bot.profiles import Profile, profile_named
from bot.settings import StreamhouseSettings
from bot.sources.base import (
    Kubernetes,
    MetadataDb,
    ObjectStore,
    Prometheus,
    SchemaRegistry,
    SourceNotConfigured,
    Sources,
)
from bot.sources.kubernetes import KubernetesSource, api_configuration
from bot.sources.kubernetes_actions import KubernetesActions
from bot.sources.metadata_actions import MetadataActions
from bot.sources.metadata_db import MetadataDbSource
from bot.sources.objects import ObjectStoreSource
from bot.sources.prometheus import PrometheusSource
from bot.sources.registry_actions import RegistryActions
from bot.sources.schema_registry import OrganizationLookup, SchemaRegistrySource
from bot.sources.writers import Writers

HINTS = {
    "prometheus": "set PROMETHEUS_URL to the Prometheus server (e.g. http://prometheus:9090)",
    "metadata-db": "set STREAMHOUSE_DATABASE_URL to the Streamhouse metadata PostgreSQL",
    "s3": "set S3_BUCKET (endpoint and credentials come from AWS_* / boto3's usual settings)",
    "schema-registry": "set SCHEMA_REGISTRY_URL (upstream: the unified server's .../schemas)",
}


class NotConfigured:
    """A null source: every method raises ``SourceNotConfigured(name, hint)``.

    It stands in for any of the Protocols (``cast`` at the call site says which).
    """

    def __init__(self, name: str, hint: str) -> None:
        self.name = name
        self.hint = hint

    def __getattr__(self, attribute: str) -> Callable[..., Awaitable[NoReturn]]:
        if attribute.startswith("__"):
            raise AttributeError(attribute)

        async def refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
            raise SourceNotConfigured(self.name, self.hint)

        return refuse

    async def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"<{self.name} not configured>"


class SourceSet:
    """The real sources of one bot process; ``sources`` is what handlers get (uncached)."""

    def __init__(
        self,
        *,
        prometheus: Prometheus,
        kubernetes: Kubernetes,
        metadata: MetadataDb,
        objects: ObjectStore,
        registry: SchemaRegistry,
    ) -> None:
        self._sources = Sources(prometheus, kubernetes, metadata, objects, registry)

    @property
    def sources(self) -> Sources:
        """The bundle; wrap it with ``bot.sources.cache.cached`` for each diagnosis."""
        return self._sources

    async def close(self) -> None:
        """Close every source's connections and sessions."""
        for source in (
            self._sources.prometheus,
            self._sources.kubernetes,
            self._sources.metadata,
            self._sources.objects,
            self._sources.registry,
        ):
            close = getattr(source, "close", None)
            if close is not None:
                await close()


def build_sources(settings: StreamhouseSettings) -> SourceSet:
    """The sources ``settings`` describe; null objects for the systems it leaves out."""
    profile = profile_named(settings.streamhouse_profile)
    metadata = _metadata(settings, profile)
    return SourceSet(
        prometheus=_prometheus(settings),
        kubernetes=_kubernetes(settings, profile),
        metadata=metadata,
        objects=_objects(settings),
        registry=_registry(settings, profile, metadata),
    )


def build_writers(settings: StreamhouseSettings, sources: SourceSet | None = None) -> Writers:
    """The writers approved actions go through; None for each system not configured.
    ``sources`` lends the registry writer the metadata database's organization lookup."""
    profile = profile_named(settings.streamhouse_profile)
    metadata = sources.sources.metadata if sources is not None else None
    discover = metadata.organization_id if isinstance(metadata, MetadataDbSource) else None
    return Writers(
        kubernetes=_kubernetes_writer(settings, profile),
        metadata=_metadata_writer(settings, profile),
        registry=_registry_writer(settings, profile, discover),
    )


def _kubernetes_writer(settings: StreamhouseSettings, profile: Profile) -> KubernetesActions | None:
    url = str(settings.kubernetes_api_url) if settings.kubernetes_api_url else None
    try:
        configuration = api_configuration(url)
    except SourceNotConfigured:
        return None
    return KubernetesActions(
        configuration, namespace=settings.streamhouse_namespace, profile=profile
    )


def _metadata_writer(settings: StreamhouseSettings, profile: Profile) -> MetadataActions | None:
    if settings.streamhouse_database_url is None:
        return None
    return MetadataActions(
        settings.streamhouse_database_url.get_secret_value(),
        profile,
        organization_id=settings.streamhouse_organization_id,
    )


def _registry_writer(
    settings: StreamhouseSettings, profile: Profile, discover: OrganizationLookup | None
) -> RegistryActions | None:
    if settings.schema_registry_url is None:
        return None
    return RegistryActions(
        str(settings.schema_registry_url),
        profile,
        organization_id=settings.streamhouse_organization_id,
        discover_organization=discover,
    )


def _prometheus(settings: StreamhouseSettings) -> Prometheus:
    if settings.prometheus_url is None:
        return cast(Prometheus, NotConfigured("prometheus", HINTS["prometheus"]))
    return PrometheusSource(str(settings.prometheus_url))


def _kubernetes(settings: StreamhouseSettings, profile: Profile) -> Kubernetes:
    url = str(settings.kubernetes_api_url) if settings.kubernetes_api_url else None
    try:
        configuration = api_configuration(url)
    except SourceNotConfigured as missing:
        return cast(Kubernetes, NotConfigured(missing.source, missing.detail))
    return KubernetesSource(
        configuration, namespace=settings.streamhouse_namespace, profile=profile
    )


def _metadata(settings: StreamhouseSettings, profile: Profile) -> MetadataDb:
    if settings.streamhouse_database_url is None:
        return cast(MetadataDb, NotConfigured("metadata-db", HINTS["metadata-db"]))
    return MetadataDbSource(
        settings.streamhouse_database_url.get_secret_value(),
        profile,
        organization_id=settings.streamhouse_organization_id,
    )


def _objects(settings: StreamhouseSettings) -> ObjectStore:
    if not settings.s3_bucket:
        return cast(ObjectStore, NotConfigured("s3", HINTS["s3"]))
    return ObjectStoreSource(settings.s3_bucket)


def _registry(
    settings: StreamhouseSettings, profile: Profile, metadata: MetadataDb
) -> SchemaRegistry:
    if settings.schema_registry_url is None:
        return cast(SchemaRegistry, NotConfigured("schema-registry", HINTS["schema-registry"]))
    discover = metadata.organization_id if isinstance(metadata, MetadataDbSource) else None
    return SchemaRegistrySource(
        str(settings.schema_registry_url),
        profile,
        organization_id=settings.streamhouse_organization_id,
        discover_organization=discover,
    )
