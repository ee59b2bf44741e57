"""What every rendered object shares: times, uids, metadata, list envelopes, hashes.

``Cluster`` is the renderer's view of a ``World``: the world itself plus the moment the
cluster was "created", so objects that the World does not date (the workloads, the
nodes) still have a stable ``creationTimestamp``. Every object carries the World's
``version`` as its ``resourceVersion``, so a write based on an older read conflicts.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lab.world import World

JsonObject = dict[str, Any]

_UID_NAMESPACE = uuid.UUID("0e7c4f8a-5d2b-4f1e-9a3c-6b8d2e4f1a70")
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of pod-template-hash


@dataclass(frozen=True)
class Cluster:
    """A World seen as a Kubernetes cluster."""

    world: World
    created_at: datetime

    @property
    def namespace(self) -> str:
        """The namespace everything lives in."""
        return self.world.namespace

    @property
    def resource_version(self) -> str:
        """The World's version, as the ``resourceVersion`` of every object."""
        return str(self.world.version)

    def now(self) -> datetime:
        """The World's clock."""
        return self.world.now()


def rfc3339(at: datetime) -> str:
    """A Kubernetes ``Time``: UTC, whole seconds, ``Z`` suffix."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(at: datetime) -> str:
    """A Kubernetes ``MicroTime``: UTC with microseconds."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_nano(at: datetime) -> str:
    """The timestamp prefix of ``kubectl logs --timestamps`` (nanosecond precision)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def uid_for(*parts: object) -> str:
    """A stable uid derived from what identifies one incarnation of an object."""
    return str(uuid.uuid5(_UID_NAMESPACE, "/".join(str(part) for part in parts)))


def short_hash(*parts: object, length: int = 10) -> str:
    """A deterministic name suffix in the alphabet Kubernetes uses for generated names."""
    digest = hashlib.sha256("/".join(str(part) for part in parts).encode()).digest()
    return "".join(_HASH_ALPHABET[byte % len(_HASH_ALPHABET)] for byte in digest[:length])


def object_meta(
    cluster: Cluster,
    name: str,
    created_at: datetime,
    *,
    namespaced: bool = True,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    uid_parts: tuple[object, ...] = (),
) -> JsonObject:
    """``metadata`` with name, uid, resourceVersion, creationTimestamp and labels."""
    meta: JsonObject = {
        "name": name,
        "uid": uid_for(name, *uid_parts),
        "resourceVersion": cluster.resource_version,
        "creationTimestamp": rfc3339(created_at),
    }
    if namespaced:
        meta["namespace"] = cluster.namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def kind_list(cluster: Cluster, kind: str, api_version: str, items: list[JsonObject]) -> JsonObject:
    """A ``<Kind>List``; like the API server, items carry no kind/apiVersion of their own."""
    bare = [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in items]
    return {
        "kind": f"{kind}List",
        "apiVersion": api_version,
        "metadata": {"resourceVersion": cluster.resource_version},
        "items": bare,
    }


def selector_string(labels: dict[str, str]) -> str:
    """``a=b,c=d``: the form of ``status.selector`` in a Scale."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
