"""The few read-only commands ``exec`` can run in an agent pod, answered from the World.

What the runbooks run in a pod: ``ls -l`` / ``find`` / ``du`` in the WAL directory,
``df`` on the WAL volume, and ``date +%s`` (which reads the node's clock, offset by
``Node.clock_offset_seconds``). Commands may come bare or as ``sh -c "..."``; anything else
exits 127 like a shell that has no such command. Two commands change the World, through its
physics: ``mv`` of a WAL file to another name in its directory (``World.quarantine_wal``)
and ``rm`` of a file moved aside that way (``World.delete_aside_wal``); removing a live
WAL, or moving it elsewhere, exits 1 saying the lab does not model it. ``ls`` hides
dot-files unless asked (``-a``/``-A``), as the real one does.

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
from lab.world import Agent, WalFile


@dataclass(frozen=True)
class Result:
    """What a command printed and its exit code."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


def wal_dir(cluster: Cluster) -> str:
    """The directory holding the WAL files: the mount, or its org directory upstream."""
    upstream = cluster.world.agent_workload.kind == "StatefulSet"
    return f"{WAL_MOUNT}/{cluster.world.org_id}" if upstream else WAL_MOUNT


def live_wal_paths(cluster: Cluster, agent: Agent) -> dict[str, WalFile]:
    """The agent's WAL files by path."""
    directory, world = wal_dir(cluster), cluster.world
    return {
        f"{directory}/{world.wal_file_name(agent, wal.topic, wal.partition)}": wal
        for wal in agent.wal_files
    }


def wal_paths(cluster: Cluster, agent: Agent) -> Files:
    """Every WAL file of an agent, live or moved aside: path → (size, mtime as ``ls``)."""
    aside = {f"{wal_dir(cluster)}/{name}": wal for name, wal in agent.wal_aside.items()}
    every = {**live_wal_paths(cluster, agent), **aside}
    return {
        path: (wal.size_bytes, wal.modified_at.strftime("%b %d %H:%M"))
        for path, wal in every.items()
    }


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
            if not {"a", "A"} & set(flags):
                children = {k: v for k, v in children.items() if not k.startswith(".")}
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
    if name == "mv":
        return _mv(cluster, agent, [arg for arg in args if not arg.startswith("-")])
    if name == "rm":
        return _rm(cluster, agent, args)
    if name in ("cp", "truncate"):
        return Result(stderr=f"{name}: the lab World cannot change WAL files\n", exit_code=1)
    return Result(stderr=f"sh: 1: {name}: not found\n", exit_code=127)


def _mv(cluster: Cluster, agent: Agent, paths: list[str]) -> Result:
    """``mv SRC DST``: a live WAL renamed within its directory is moved aside (kept)."""
    if len(paths) != 2:
        return Result(stderr="mv: expected a source and a destination\n", exit_code=1)
    source, destination = paths
    wal = live_wal_paths(cluster, agent).get(source)
    if wal is None:
        why = f"mv: cannot stat '{source}': No such file or directory\n"
        return Result(stderr=why, exit_code=1)
    directory, _, name = destination.rpartition("/")
    if directory != source.rpartition("/")[0] or not name:
        return Result(stderr="lab: mv out of the WAL directory is not modelled\n", exit_code=1)
    if destination in wal_paths(cluster, agent):
        return Result(stderr=f"lab: mv would overwrite '{destination}'\n", exit_code=1)
    cluster.world.quarantine_wal(agent.pod, wal.topic, wal.partition, name)
    return Result()


def _rm(cluster: Cluster, agent: Agent, args: list[str]) -> Result:
    """``rm [-f] PATH...``: only files moved aside can go; a live WAL stays."""
    force = any(arg.startswith("-") and "f" in arg for arg in args)
    live, directory = live_wal_paths(cluster, agent), wal_dir(cluster)
    errors = []
    for path in (arg for arg in args if not arg.startswith("-")):
        folder, _, name = path.rpartition("/")
        if path in live:
            errors.append(f"lab: removing the live WAL '{path}' is not modelled")
        elif folder == directory and name in agent.wal_aside:
            cluster.world.delete_aside_wal(agent.pod, name)
        elif not force:
            errors.append(f"rm: cannot remove '{path}': No such file or directory")
    text = "".join(f"{error}\n" for error in errors)
    return Result(stderr=text, exit_code=1 if errors else 0)


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
