"""Sources: the only code that talks to Streamhouse's systems (see ``base`` for the contract).

``build_sources(settings)`` makes the long-lived real sources; ``cached(set.sources)`` wraps
them for one diagnosis so identical calls run once.
"""

from bot.sources.base import (
    Kubernetes,
    MetadataDb,
    ObjectStore,
    Prometheus,
    SchemaRegistry,
    SourceError,
    SourceForbidden,
    SourceNotConfigured,
    SourceQueryError,
    Sources,
    SourceUnreachable,
)
from bot.sources.cache import CachedSources, cached
from bot.sources.factory import NotConfigured, SourceSet, build_sources
from bot.sources.kubernetes import KubernetesSource, api_configuration
from bot.sources.metadata_db import MetadataDbSource
from bot.sources.objects import ObjectStoreSource
from bot.sources.prometheus import PrometheusSource
from bot.sources.schema_registry import SchemaRegistrySource

__all__ = [
    "CachedSources",
    "Kubernetes",
    "KubernetesSource",
    "MetadataDb",
    "MetadataDbSource",
    "NotConfigured",
    "ObjectStore",
    "ObjectStoreSource",
    "Prometheus",
    "PrometheusSource",
    "SchemaRegistry",
    "SchemaRegistrySource",
    "SourceError",
    "SourceForbidden",
    "SourceNotConfigured",
    "SourceQueryError",
    "SourceSet",
    "SourceUnreachable",
    "Sources",
    "api_configuration",
    "build_sources",
    "cached",
]
