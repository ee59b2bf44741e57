"""The few read-only commands ``exec`` can run in an agent pod, answered from the World.

What the runbooks run in a pod: ``ls -l`` / ``find`` / ``du`` in the WAL directory,
``df`` on the WAL volume, and ``date +%s`` (which reads the node's clock, offset by
``Node.clock_offset_seconds``). Commands may come bare or as ``sh -c "..."``; anything else
exits 127 like a shell that has no such command. Nothing here changes the World: a
``mv``/``rm`` of a WAL file exits 1 with a message saying the lab cannot do it.

WAL paths follow the profile: runbook ``/data/wal/<topic>-<partition>.wal``; upstream
``/data/wal/<org_id>/<topic>-<partition>-<agent_id>.wal``.
"""

from __future__ import annotations

import fnmatch
import shlex
from dataclasses import dataclass
from datetime import timedelta

from lab.kubernetes.meta import Cluster
from lab.kubernetes.templates import WAL_MOUNT
from lab.world import Agent


@dataclass(frozen=True)
class Result:
    """What a command printed and its exit code."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


def wal_paths(cluster: Cluster, agent: Agent) -> Files:
    """Every WAL file of an agent: path → (size in bytes, mtime as ``ls`` prints it)."""
    upstream = cluster.world.agent_workload.kind == "StatefulSet"
    files: Files = {}
    for wal in agent.wal_files:
        if upstream:
            name = f"{wal.topic}-{wal.partition}-{agent.agent_id}.wal"
            path = f"{WAL_MOUNT}/{cluster.world.org_id}/{name}"
        else:
            path = f"{WAL_MOUNT}/{wal.topic}-{wal.partition}.wal"
        files[path] = (wal.size_bytes, wal.modified_at.strftime("%b %d %H:%M"))
    return files


Files = dict[str, tuple[int, str]]


def _entries(files: Files, directory: str) -> dict[str, tuple[int, str] | None]:
    """Direct children of ``directory``: files with their stats, subdirectories as None."""
    prefix = directory.rstrip("/") + "/"
    children: dict[str, tuple[int, str] | None] = {}
    for path, stats in files.items():
        if path.startswith(prefix):
            head, _, rest = path[len(prefix) :].partition("/")
            children[head] = None if rest else stats
    return children


def _is_dir(cluster: Cluster, files: Files, path: str) -> bool:
    path = path.rstrip("/") or "/"
    org_dir = f"{WAL_MOUNT}/{cluster.world.org_id}"
    known = path in ("/", "/data", WAL_MOUNT, org_dir)
    return known or any(name.startswith(path + "/") for name in files)


def _ls(cluster: Cluster, files: Files, args: list[str]) -> Result:
    flags = "".join(arg[1:] for arg in args if arg.startswith("-"))
    paths = [arg for arg in args if not arg.startswith("-")] or [WAL_MOUNT]
    out, errors = [], []
    for path in paths:
        if path in files:
            size, mtime = files[path]
            out.append(f"-rw-r--r-- 1 root root {size} {mtime} {path}" if "l" in flags else path)
        elif _is_dir(cluster, files, path):
            children = _entries(files, path)
            if "l" in flags:
                out.append(f"total {sum(s[0] for s in children.values() if s) // 1024}")
            for name, stats in sorted(children.items()):
                if "l" not in flags:
                    out.append(name)
                elif stats is None:
                    out.append(f"drwxr-xr-x 2 root root 4096 Jan 01 00:00 {name}")
                else:
                    out.append(f"-rw-r--r-- 1 root root {stats[0]} {stats[1]} {name}")
        else:
            errors.append(f"ls: cannot access '{path}': No such file or directory")
    text = "\n".join(out) + "\n" if out else ""
    return Result(text, "\n".join(errors) + "\n" if errors else "", 2 if errors else 0)


def _find(files: Files, args: list[str]) -> Result:
    root = args[0] if args and not args[0].startswith("-") else WAL_MOUNT
    pattern = args[args.index("-name") + 1] if "-name" in args[:-1] else "*"
    found = [
        path
        for path in sorted(files)
        if path.startswith(root.rstrip("/") + "/")
        and fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern)
    ]
    return Result("".join(f"{path}\n" for path in found))


def _du(files: Files, args: list[str]) -> Result:
    paths = [arg for arg in args if not arg.startswith("-")] or [WAL_MOUNT]
    in_bytes = any("b" in arg for arg in args if arg.startswith("-"))
    lines = []
    for path in paths:
        total = sum(
            size
            for name, (size, _m) in files.items()
            if name == path or name.startswith(path.rstrip("/") + "/")
        )
        lines.append(f"{total if in_bytes else -(-total // 1024)}\t{path}")
    return Result("".join(f"{line}\n" for line in lines))


def _df(agent: Agent, args: list[str]) -> Result:
    in_bytes = "-B1" in args or "--block-size=1" in args
    unit, header = (1, "1B-blocks") if in_bytes else (1024, "1K-blocks")
    size, used = agent.volume_capacity_bytes // unit, agent.volume_used_bytes // unit
    percent = -(-agent.volume_used_bytes * 100 // max(agent.volume_capacity_bytes, 1))
    return Result(
        f"Filesystem     {header}      Used Available Use% Mounted on\n"
        f"/dev/nvme1n1   {size} {used} {size - used} {percent}% {WAL_MOUNT}\n"
    )


def _date(cluster: Cluster, node_name: str | None, args: list[str]) -> Result:
    node = next((n for n in cluster.world.nodes if n.name == node_name), None)
    at = cluster.now() + timedelta(seconds=node.clock_offset_seconds if node else 0.0)
    if "+%s" in args:
        return Result(f"{int(at.timestamp())}\n")
    return Result(at.strftime("%a %b %d %H:%M:%S UTC %Y") + "\n")


def run(cluster: Cluster, pod: str, command: list[str]) -> Result:
    """Run ``command`` in ``pod`` (an agent pod; the registry image has no WAL)."""
    if (
        len(command) >= 3
        and command[0] in ("sh", "/bin/sh", "bash", "/bin/bash")
        and command[1] == "-c"
    ):
        if any(token in command[2] for token in ("|", "&&", ";", ">", "$(")):
            return Result(
                stderr="lab: shell pipelines are not supported by the fake\n", exit_code=2
            )
        command = shlex.split(command[2])
    if not command:
        return Result(stderr="sh: missing command\n", exit_code=2)
    agent = cluster.world.agent_by_pod(pod)
    name, args = command[0].rsplit("/", 1)[-1], command[1:]
    if agent is None:
        return _without_wal(cluster, name, args)
    files = wal_paths(cluster, agent)
    if name == "ls":
        return _ls(cluster, files, args)
    if name == "find":
        return _find(files, args)
    if name == "du":
        return _du(files, args)
    if name == "df":
        return _df(agent, args)
    if name == "date":
        return _date(cluster, agent.node, args)
    if name in ("mv", "rm", "cp", "truncate"):
        return Result(stderr=f"{name}: the lab World cannot change WAL files\n", exit_code=1)
    return Result(stderr=f"sh: 1: {name}: not found\n", exit_code=127)


def _without_wal(cluster: Cluster, name: str, args: list[str]) -> Result:
    """A schema-registry pod: a clock, but no WAL volume."""
    if name == "date":
        return _date(cluster, None, args)
    if name in ("ls", "find", "du", "df"):
        return Result(
            stderr=f"{name}: cannot access '{WAL_MOUNT}': No such file or directory\n",
            exit_code=2 if name == "ls" else 1,
        )
    return Result(stderr=f"sh: 1: {name}: not found\n", exit_code=127)
