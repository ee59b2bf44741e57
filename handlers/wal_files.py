"""Where an agent's WAL can be seen, and how much of it S3 does not hold yet.

The WAL directory (``WAL_DIR``, default ``DEFAULT_WAL_DIR``; upstream one sub-directory per
organization) is listed with ``exec ls -l``. Where RBAC forbids exec, the ``wal_size_bytes``
gauge stands in (an agent exporting its segment-buffer gauge but no WAL gauge has no WAL
backlog), then the kubelet's volume stats, which show the volume but not the files.

A partition's loss window is the WAL's last write (or now) minus the partition's last
upload: from the ``segments`` table where the profile has one (upstream, authoritative),
else from the newest object under ``<topic>/partition-<n>/``. Without the WAL's mtime the
window is an upper bound. Used by wal-recovery (WAL-2, WAL-5) and resource-pressure (RP-2).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.sources.base import Kubernetes, PodInfo, SourceError
from handlers.base import CheckContext
from handlers.logs import require_kubernetes
from handlers.sources import metadata_of, objects_of

DEFAULT_WAL_DIR = "/data/wal"
EXEC, PROMETHEUS, KUBELET = "kubernetes:exec", "prometheus", "kubernetes:kubelet-stats"
_WAL_NAME = re.compile(r"^(?P<topic>.+?)-(?P<partition>\d+)(?:-.+)?\.wal(?P<suffix>\..+)?$")
_MONTHS = {
    month: number
    for number, month in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


# -- listing the WAL ------------------------------------------------------------------------
@dataclass(frozen=True)
class WalFileSeen:
    """A WAL file (or a partition's WAL gauge): size, and mtime when a listing showed it."""

    name: str
    size_bytes: int
    topic: str | None = None
    partition: int | None = None
    modified_at: datetime | None = None
    mtime_slack_s: int = 0  # ``ls -l`` shows minutes: the true mtime is up to 59 s later

    @property
    def key(self) -> str | None:
        """``topic-partition``, when the name says it."""
        return f"{self.topic}-{self.partition}" if self.topic is not None else None


@dataclass(frozen=True)
class PodWal:
    """One agent's WAL as far as it could be seen, and through which source."""

    pod: str
    source: str  # EXEC, PROMETHEUS, KUBELET or "none"
    files: tuple[WalFileSeen, ...] | None  # None: the files are not visible
    volume_used_bytes: int | None = None
    note: str | None = None

    @property
    def total_bytes(self) -> int | None:
        """The WAL's total size, when the files are visible."""
        return None if self.files is None else sum(f.size_bytes for f in self.files)


def parse_ls(output: str, now: datetime) -> tuple[list[WalFileSeen], list[str]]:
    """``ls -l`` (plain or ``--time-style=+%s``) → (files, sub-directories)."""
    files, directories = [], []
    for line in output.splitlines():
        tokens = line.split()
        if len(tokens) < 7 or line.startswith("total"):
            continue
        if tokens[0].startswith("d"):
            directories.append(tokens[-1])
            continue
        modified, slack = _ls_time(tokens[5:-1], now)
        files.append(_wal_file(tokens[-1], int(tokens[4]), modified, slack))
    return files, directories


def _ls_time(fields: Sequence[str], now: datetime) -> tuple[datetime | None, int]:
    if len(fields) == 1 and fields[0].isdigit():
        return datetime.fromtimestamp(int(fields[0]), UTC), 0
    if len(fields) != 3 or fields[0] not in _MONTHS:
        return None, 0
    month, day, clock = _MONTHS[fields[0]], int(fields[1]), fields[2]
    if ":" not in clock:
        return datetime(int(clock), month, day, tzinfo=UTC), 86_399
    hour, minute = (int(part) for part in clock.split(":"))
    stamp = datetime(now.year, month, day, hour, minute, tzinfo=UTC)
    if stamp > now + timedelta(days=1):  # ``ls`` omits the year: it was last year
        stamp = stamp.replace(year=now.year - 1)
    return stamp, 59


def _wal_file(name: str, size: int, modified: datetime | None, slack: int) -> WalFileSeen:
    found = _WAL_NAME.match(name)
    topic = found["topic"] if found else None
    partition = int(found["partition"]) if found else None
    return WalFileSeen(name, size, topic, partition, modified, slack)


async def _list_by_exec(kube: Kubernetes, pod: PodInfo, now: datetime) -> PodWal | str:
    """The pod's WAL directory (one level of sub-directories), or why exec failed."""
    root = pod.env.get("WAL_DIR", DEFAULT_WAL_DIR).rstrip("/")
    command = ["ls", "-l", "--time-style=+%s"]
    try:
        files, directories = parse_ls(await kube.exec(pod.name, [*command, root]), now)
        for directory in directories:
            more, _ = parse_ls(await kube.exec(pod.name, [*command, f"{root}/{directory}"]), now)
            files.extend(more)
    except SourceError as error:
        return error.detail
    return PodWal(pod.name, EXEC, tuple(f for f in files if ".wal" in f.name))


async def _wal_by_metrics(ctx: CheckContext) -> dict[str, list[WalFileSeen]] | None:
    """WAL gauges per pod for pods whose write path is instrumented; None if unreadable."""
    wal_family = ctx.profile.metric("wal_size_bytes")
    buffer_family = ctx.profile.metric("segment_buffer_size_bytes")
    if ctx.sources.prometheus is None or wal_family is None or buffer_family is None:
        return None
    try:
        instrumented = await ctx.sources.prometheus.instant(f"count by (pod) ({buffer_family})")
        sizes = await ctx.sources.prometheus.instant(wal_family)
    except SourceError:
        return None
    by_pod: dict[str, list[WalFileSeen]] = {s.labels.get("pod", ""): [] for s in instrumented}
    for sample in sizes:
        topic, partition = sample.labels.get("topic"), sample.labels.get("partition", "")
        name = f"{topic}-{partition}"
        seen = WalFileSeen(name, int(sample.value), topic, int(partition or 0))
        by_pod.setdefault(sample.labels.get("pod", ""), []).append(seen)
    return by_pod


async def pod_volume(kube: Kubernetes, pod: PodInfo) -> tuple[int, int] | str:
    """(used, capacity) bytes of the pod's WAL volume from kubelet stats, or why not."""
    if pod.node is None:
        return "the pod is not scheduled on a node"
    try:
        stats = [s for s in await kube.volume_stats(pod.node) if s.pod == pod.name]
    except SourceError as error:
        return error.detail
    if not stats:
        return f"the kubelet of {pod.node} reports no volume for this pod"
    wal = [s for s in stats if "wal" in s.volume.lower()] or stats
    chosen = max(wal, key=lambda s: s.capacity_bytes)
    return chosen.used_bytes, chosen.capacity_bytes


async def wal_inventory(ctx: CheckContext) -> list[PodWal]:
    """Every agent's WAL: exec listing, else the WAL gauge, else kubelet volume stats."""
    kube = require_kubernetes(ctx.sources)
    pods = await kube.agent_pods()
    listed = await asyncio.gather(*(_list_by_exec(kube, pod, ctx.now) for pod in pods))
    gauges = None if all(isinstance(x, PodWal) for x in listed) else await _wal_by_metrics(ctx)
    seen = []
    for pod, listing in zip(pods, listed, strict=True):
        if isinstance(listing, PodWal):
            seen.append(listing)
        elif gauges is not None and pod.name in gauges:
            seen.append(PodWal(pod.name, PROMETHEUS, tuple(gauges[pod.name]), note=listing))
        else:
            volume = await pod_volume(kube, pod)
            if isinstance(volume, str):
                seen.append(PodWal(pod.name, "none", None, note=f"{listing}; {volume}"))
            else:
                seen.append(PodWal(pod.name, KUBELET, None, volume[0], note=listing))
    return seen


def file_json(wal: WalFileSeen) -> dict[str, object]:
    """A WAL file for evidence: name, size and modification time."""
    return {
        "name": wal.name,
        "size_bytes": wal.size_bytes,
        "modified_at": wal.modified_at.isoformat() if wal.modified_at else None,
    }


# -- the data-loss window -------------------------------------------------------------------
@dataclass(frozen=True)
class LossWindow:
    """Unflushed time of one partition: WAL write time (or now) minus the last upload."""

    partition: str
    last_upload: datetime | None
    wal_modified: datetime | None
    seconds: float | None
    upper_bound: bool
    source: str

    def text(self) -> str:
        """``orders-2: ≤ 120 s unflushed``, for summaries and confirmations."""
        if self.seconds is None and self.source == "metadata:segments":
            return (
                f"{self.partition}: loss window unknown (no segment row visible: none uploaded"
                " yet, or row-level security hides it from this role)"
            )
        if self.seconds is None:
            return f"{self.partition}: loss window unknown (no upload found in {self.source})"
        if self.seconds == 0:
            return f"{self.partition}: nothing unflushed (uploaded after the last WAL write)"
        bound = "≤ " if self.upper_bound else ""
        return f"{self.partition}: {bound}{self.seconds:.0f} s of unflushed data"


async def last_upload(ctx: CheckContext, topic: str, partition: int) -> tuple[datetime | None, str]:
    """When the partition's newest segment reached S3: ``segments`` upstream, else S3."""
    if ctx.profile.has_segments_table:
        metadata = metadata_of(ctx, "metadata")
        return await metadata.last_segment_upload(topic, partition), "metadata:segments"
    newest = await objects_of(ctx).newest_object(f"{topic}/partition-{partition}/")
    return (newest.last_modified if newest else None), "s3"


async def loss_window(ctx: CheckContext, key: str, files: Sequence[WalFileSeen]) -> LossWindow:
    """WAL-5 for one ``topic-partition``, from the WAL files seen for it (maybe none)."""
    topic, _, number = key.rpartition("-")
    uploaded, source = await last_upload(ctx, topic, int(number))
    stamps = [f.modified_at + timedelta(seconds=f.mtime_slack_s) for f in files if f.modified_at]
    modified = min(max(stamps), ctx.now) if stamps else None
    if uploaded is None:
        return LossWindow(key, None, modified, None, True, source)
    seconds = max(0.0, ((modified or ctx.now) - uploaded).total_seconds())
    exact = modified is not None and all(f.mtime_slack_s == 0 for f in files)
    return LossWindow(key, uploaded, modified, seconds, not exact, source)


def window_json(window: LossWindow) -> dict[str, object]:
    """A loss window for evidence."""
    return {
        "window_s": None if window.seconds is None else round(window.seconds),
        "upper_bound": window.upper_bound,
        "last_upload": window.last_upload.isoformat() if window.last_upload else None,
        "wal_modified": window.wal_modified.isoformat() if window.wal_modified else None,
        "source": window.source,
    }
