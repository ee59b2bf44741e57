"""RP-A4 (resource-pressure runbook): delete WAL files already uploaded to S3 (``*.old``).

Only the files RP-2's evidence marks ``in_s3`` are touched: a ``*.old`` WAL whose
partition has an upload to S3 newer than the file's last write (WAL-5's comparison, in
``handlers.resource_readings.old_wal_files``). Every other file stays, and the preview
lists exactly the paths that will go, with their sizes. Just before the delete,
``changed`` lists the proven files again and refuses if the set differs (a file appeared,
went, or lost its proof), so what is deleted is what the approver saw.

The delete is ``rm -f <path>...`` in each pod through exec: ``-f`` makes a retry that
finds a file already gone a no-op. Nothing restarts; no live ``*.wal`` is ever named.
Paths follow the profile's layout (``<WAL_DIR>/<name>`` in the runbooks,
``<WAL_DIR>/<org_id>/<name>`` upstream) and are found with ``find`` under ``WAL_DIR``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.approvals import ActionRequest
from bot.errors import BotError
from bot.executors.base import (
    NO_COOLDOWN,
    ActionContext,
    Executor,
    Outcome,
    Preview,
    params_of,
)
from bot.executors.wal import agent_pod, evidence_of, find_files, wal_root
from bot.models import Diagnosis
from bot.settings import Settings
from bot.sources.base import Kubernetes, PodInfo
from handlers.logs import require_kubernetes
from handlers.sizes import size_text
from handlers.wal_files import parse_ls


@dataclass(frozen=True)
class OldWal:
    """One ``*.old`` WAL file proven to be in S3."""

    pod: str
    path: str
    size_bytes: int

    def to_json(self) -> dict[str, Any]:
        """As stored in the preview's params."""
        return {"pod": self.pod, "path": self.path, "size_bytes": self.size_bytes}


def proven_files(diagnosis: Diagnosis) -> list[tuple[str, str]]:
    """(pod, file name) of every ``*.old`` file RP-2 shows S3 holds, sorted."""
    files = evidence_of(diagnosis, "RP-2").get("old_wal_files", [])
    return sorted((str(f["pod"]), str(f["file"])) for f in files if f.get("in_s3") is True)


def unproven_files(diagnosis: Diagnosis) -> list[str]:
    """``pod:file`` of the ``*.old`` files S3 does not prove; they are kept."""
    files = evidence_of(diagnosis, "RP-2").get("old_wal_files", [])
    return sorted(f"{f['pod']}:{f['file']}" for f in files if f.get("in_s3") is not True)


async def locate(kube: Kubernetes, pod: PodInfo, names: Sequence[str]) -> list[OldWal]:
    """The paths and sizes of ``names`` in ``pod``: each must be exactly one file."""
    root, found = wal_root(pod), []
    for name in names:
        paths = await find_files(kube, pod.name, root, name)
        if len(paths) != 1:
            where = ", ".join(paths) or "nowhere"
            raise BotError(f"{name} in pod {pod.name} is at {where}; expected one file.")
        found.append(paths[0])
    listing = await kube.exec(pod.name, ["ls", "-l", "--time-style=+%s", *found])
    sizes = {f.name: f.size_bytes for f in parse_ls(listing, datetime.now(UTC))[0]}
    return [OldWal(pod.name, path, sizes.get(path, 0)) for path in found]


def by_pod(files: Sequence[OldWal]) -> dict[str, list[OldWal]]:
    """The files grouped by pod, pods sorted."""
    grouped: dict[str, list[OldWal]] = {}
    for file in sorted(files, key=lambda f: (f.pod, f.path)):
        grouped.setdefault(file.pod, []).append(file)
    return grouped


def files_of(request: ActionRequest) -> list[OldWal]:
    """The files the approver saw."""
    listed: Sequence[Mapping[str, Any]] = params_of(request).get("files") or []
    return [OldWal(str(f["pod"]), str(f["path"]), int(f["size_bytes"])) for f in listed]


class DeleteUploadedWal:
    """RP-A4: ``rm -f`` the ``*.old`` WAL files WAL-5 proves are in S3, nothing else."""

    def cooldown(self, settings: Settings) -> timedelta:
        return NO_COOLDOWN  # deleting the same proven files twice deletes nothing

    async def preview(self, ctx: ActionContext) -> Preview:
        proven = proven_files(ctx.diagnosis)
        if not proven:
            raise BotError("No *.old WAL file is proven to be in S3 (RP-2); nothing to delete.")
        kube = require_kubernetes(ctx.sources)
        writer = ctx.writers.require_kubernetes()
        pods = await kube.agent_pods()
        files = []
        for name, names in _names_by_pod(proven).items():
            files += await locate(kube, agent_pod(pods, name), names)
        grouped = by_pod(files)
        total = size_text(sum(f.size_bytes for f in files))
        kept = unproven_files(ctx.diagnosis)
        return Preview(
            key="WAL *.old files",
            target=f"{len(files)} *.old WAL file(s) on {', '.join(grouped)}",
            current=", ".join(f"{f.pod}:{f.path} ({size_text(f.size_bytes)})" for f in files),
            new=f"deleted, {total} freed; kept (not proven in S3): {', '.join(kept) or 'none'}",
            call="; ".join(
                writer.exec_call(pod, ["rm", "-f", *(f.path for f in found)])
                for pod, found in grouped.items()
            ),
            rollback="none: a deleted file cannot be restored; its records are in S3 (an "
            "upload newer than the file's last write, WAL-5)",
            blast_radius=f"{len(files)} file(s) on {len(grouped)} pod(s), {total}; no restart, "
            "no live WAL touched",
            params={"files": [f.to_json() for f in files]},
        )

    async def changed(self, ctx: ActionContext, request: ActionRequest) -> str | None:
        return proof_moved(files_of(request), proven_files(ctx.diagnosis))

    async def execute(self, ctx: ActionContext, request: ActionRequest) -> Outcome:
        writer = ctx.writers.require_kubernetes()
        files = files_of(request)
        for pod, found in by_pod(files).items():
            await writer.run_in_pod(pod, ["rm", "-f", *(f.path for f in found)])
        total = size_text(sum(f.size_bytes for f in files))
        return Outcome(
            f"deleted {len(files)} *.old WAL file(s) already in S3, {total} freed",
            {"deleted": [f"{f.pod}:{f.path}" for f in files]},
        )


def proof_moved(approved: Sequence[OldWal], proven: Sequence[tuple[str, str]]) -> str | None:
    """How the proven ``*.old`` files differ from the approved ones (None: the same)."""
    names = sorted((f.pod, f.path.rpartition("/")[2]) for f in approved)
    if names == sorted(proven):
        return None
    gone = [f"{pod}:{name}" for pod, name in names if (pod, name) not in proven]
    new = [f"{pod}:{name}" for pod, name in proven if (pod, name) not in names]
    parts = [f"no longer proven or gone: {', '.join(gone)}"] if gone else []
    parts += [f"newly proven: {', '.join(new)}"] if new else []
    return "the *.old files proven to be in S3 changed (" + "; ".join(parts) + ")"


def _names_by_pod(proven: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for pod, name in proven:
        grouped.setdefault(pod, []).append(name)
    return grouped


EXECUTORS: dict[str, Executor] = {"RP-A4": DeleteUploadedWal()}
