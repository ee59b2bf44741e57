"""The non-Prometheus sources a check cannot run without (Prometheus: ``handlers.promql``;
Kubernetes: ``handlers.logs.require_kubernetes``).

Each returns the source, or raises ``SourceNotConfigured`` naming the setting that is
missing, which ``@check`` turns into an ``unknown`` result.
"""

from __future__ import annotations

from bot.sources.base import MetadataDb, ObjectStore, SourceNotConfigured
from handlers.base import CheckContext


def objects_of(ctx: CheckContext) -> ObjectStore:
    """The S3 source, or ``SourceNotConfigured``."""
    if ctx.sources.objects is None:
        raise SourceNotConfigured("s3", "S3_BUCKET is not set")
    return ctx.sources.objects


def metadata_of(ctx: CheckContext, source: str = "metadata-db") -> MetadataDb:
    """The metadata database, or ``SourceNotConfigured`` naming it ``source``."""
    if ctx.sources.metadata is None:
        raise SourceNotConfigured(source, "STREAMHOUSE_DATABASE_URL is not set")
    return ctx.sources.metadata
