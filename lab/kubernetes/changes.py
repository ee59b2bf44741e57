"""What a patched object asks of the World, validated like the API server would.

A PATCH is applied to the rendered object; the difference between before and after is
turned into World calls: ``spec.replicas`` → ``scale``, the container's ``env`` →
``set_env``, its ``resources`` → ``set_resources``, a new
``kubectl.kubernetes.io/restartedAt`` template annotation → ``rollout_restart``, a PVC's
``spec.resources.requests.storage`` → ``grow_volume``; the workload's own
``metadata.annotations`` → its ``notes`` (no rollout). A stale ``metadata.resourceVersion``
is a 409, an invalid value a 422. A change the World cannot represent (an image, a label,
removing an env var) is also refused with a 422 naming the field, so a test never passes on
a change that silently did nothing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from lab.kubernetes.errors import ApiError, conflict, invalid
from lab.kubernetes.meta import JsonObject
from lab.kubernetes.quantity import parse_bytes, parse_cpu
from lab.kubernetes.templates import RESTARTED_AT
from lab.world import Resources, Workload

_CONTAINERS = "spec.template.spec.containers[0]"
_REVISION = "deployment.kubernetes.io/revision"
_SERVER_METADATA = (
    "resourceVersion",
    "generation",
    "managedFields",
    "creationTimestamp",
    "uid",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


@dataclass
class WorkloadChange:
    """The World calls one workload patch amounts to."""

    replicas: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    resources: Resources | None = None
    restart: bool = False
    notes: dict[str, str] | None = None  # the workload's metadata.annotations, when changed


@dataclass(frozen=True)
class Target:
    """The object being patched, for error messages (``Deployment.apps "x"``)."""

    kind: str
    resource: str
    group: str
    name: str

    def invalid(self, path: str, problem: str) -> ApiError:
        """A 422 about ``path``."""
        return invalid(self.kind, self.name, path, problem, self.group)

    def unsupported(self, path: str) -> ApiError:
        """A 422 for a valid change the lab World cannot represent."""
        return self.invalid(path, "Forbidden: the lab World cannot apply a change to this field")


def check_resource_version(target: Target, after: JsonObject, current: str) -> None:
    """409 when the patch carries a ``resourceVersion`` other than the current one."""
    sent = after.get("metadata", {}).get("resourceVersion")
    if sent not in (None, "", current):
        raise conflict(target.resource, target.name, target.group)
    if after.get("metadata", {}).get("name", target.name) != target.name:
        raise target.invalid("metadata.name", "Invalid value: field is immutable")


def first_difference(before: Any, after: Any, path: str = "") -> str | None:
    """The dotted path of the first place two JSON values differ."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            found = first_difference(before.get(key), after.get(key), f"{path}.{key}".strip("."))
            if found:
                return found
        return None
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            found = first_difference(old, new, f"{path}[{index}]")
            if found:
                return found
        return None
    return None if before == after else path or "<root>"


def replicas_value(target: Target, value: Any, path: str = "spec.replicas") -> int:
    """A valid replica count."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise target.invalid(path, f"Invalid value: {value!r}: must be an integer")
    if value < 0:
        raise target.invalid(path, f"Invalid value: {value}: must be greater than or equal to 0")
    return value


def _without_server_fields(obj: JsonObject) -> JsonObject:
    """A copy without status and the metadata the server owns (a read-modify-write sends
    them back, with times in another format)."""
    stripped = copy.deepcopy(obj)
    stripped.pop("status", None)
    metadata = stripped.get("metadata")
    if isinstance(metadata, dict):
        for key in _SERVER_METADATA:
            metadata.pop(key, None)
    return stripped


def _strip_supported(obj: JsonObject) -> JsonObject:
    stripped = _without_server_fields(obj)
    stripped.get("metadata", {}).pop("annotations", None)  # the workload's notes
    spec = stripped.get("spec", {})
    spec.pop("replicas", None)
    template = spec.get("template", {})
    annotations = template.get("metadata", {}).get("annotations", {})
    annotations.pop(RESTARTED_AT, None)
    if not annotations:
        template.get("metadata", {}).pop("annotations", None)
    for container in template.get("spec", {}).get("containers", []) or []:
        if isinstance(container, dict):
            container.pop("env", None)
            container.pop("resources", None)
    return stripped


def _container(target: Target, after: JsonObject, name: str) -> JsonObject:
    containers = after.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    path = "spec.template.spec.containers"
    if not isinstance(containers, list) or not containers:
        raise target.invalid(path, "Required value")
    for index, container in enumerate(containers):
        if not isinstance(container, dict) or not container.get("name"):
            raise target.invalid(f"{path}[{index}].name", "Required value")
        if not container.get("image"):
            raise target.invalid(f"{path}[{index}].image", "Required value")
    if len(containers) != 1 or containers[0]["name"] != name:
        raise target.unsupported(path)
    only: JsonObject = containers[0]
    return only


def _env(target: Target, container: JsonObject) -> dict[str, str]:
    entries = container.get("env") or []
    if not isinstance(entries, list):
        raise target.invalid(f"{_CONTAINERS}.env", "Invalid value: must be a list")
    env: dict[str, str] = {}
    for index, entry in enumerate(entries):
        path = f"{_CONTAINERS}.env[{index}]"
        named = isinstance(entry, dict) and isinstance(entry.get("name"), str)
        if not named or not entry["name"]:
            raise target.invalid(f"{path}.name", "Required value")
        if "valueFrom" in entry:
            raise target.unsupported(f"{path}.valueFrom")
        value = entry.get("value", "")
        if not isinstance(value, str):
            raise target.invalid(f"{path}.value", f"Invalid value: {value!r}: must be a string")
        env[entry["name"]] = value
    return env


def _quantity(target: Target, values: Any, key: str, path: str, cpu: bool) -> float | int | None:
    if not isinstance(values, dict) or key not in values:
        return None
    try:
        parsed: float | int = parse_cpu(values[key]) if cpu else parse_bytes(values[key])
    except ValueError as exc:
        raise target.invalid(f"{path}.{key}", f"Invalid value: {values[key]!r}: {exc}") from exc
    if parsed < 0:
        raise target.invalid(f"{path}.{key}", "Invalid value: must be greater than or equal to 0")
    return parsed


def _resources(target: Target, container: JsonObject) -> Resources:
    spec = container.get("resources") or {}
    base = f"{_CONTAINERS}.resources"
    limits, requests = spec.get("limits") or {}, spec.get("requests") or {}
    cpu_limit = _quantity(target, limits, "cpu", f"{base}.limits", cpu=True)
    memory_limit = _quantity(target, limits, "memory", f"{base}.limits", cpu=False)
    cpu_request = _quantity(target, requests, "cpu", f"{base}.requests", cpu=True)
    memory_request = _quantity(target, requests, "memory", f"{base}.requests", cpu=False)
    cpu_request = cpu_limit if cpu_request is None else cpu_request  # defaulted like the API
    memory_request = memory_limit if memory_request is None else memory_request
    if cpu_request is None or memory_request is None:
        raise target.unsupported(f"{base}.requests")
    for name, request, limit in (
        ("cpu", cpu_request, cpu_limit),
        ("memory", memory_request, memory_limit),
    ):
        if limit is not None and request > limit:
            raise target.invalid(
                f"{base}.requests",
                f"Invalid value: {request}: must be less than or equal to {name} limit of {limit}",
            )
    return Resources(
        cpu_request=float(cpu_request),
        cpu_limit=None if cpu_limit is None else float(cpu_limit),
        memory_request_bytes=int(memory_request),
        memory_limit_bytes=None if memory_limit is None else int(memory_limit),
    )


def workload_change(
    target: Target, workload: Workload, before: JsonObject, after: JsonObject
) -> WorkloadChange:
    """Validate a patched Deployment/StatefulSet and say what the World must do."""
    name = before["spec"]["template"]["spec"]["containers"][0]["name"]
    container = _container(target, after, name)
    change = WorkloadChange()
    replicas = replicas_value(target, after.get("spec", {}).get("replicas", workload.replicas))
    change.replicas = replicas if replicas != workload.replicas else None
    env = _env(target, container)
    removed = sorted(set(workload.env) - set(env))
    if removed:
        raise target.unsupported(f"{_CONTAINERS}.env[{removed[0]}]")
    change.env = {key: value for key, value in env.items() if workload.env.get(key) != value}
    resources = _resources(target, container)
    change.resources = resources if resources != workload.resources else None
    annotations = after.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations")
    stamp = (annotations or {}).get(RESTARTED_AT)
    if stamp != workload.annotations.get(RESTARTED_AT):
        if not isinstance(stamp, str) or not stamp:
            raise target.unsupported(f"spec.template.metadata.annotations[{RESTARTED_AT}]")
        change.restart = True
    notes = dict(after.get("metadata", {}).get("annotations") or {})
    notes.pop(_REVISION, None)  # the server's own
    change.notes = notes if notes != workload.notes else None
    difference = first_difference(_strip_supported(before), _strip_supported(after))
    if difference:
        raise target.unsupported(difference)
    return change


def pvc_size_change(target: Target, before: JsonObject, after: JsonObject) -> int | None:
    """The new requested size of a patched PVC, or None when it did not change."""
    path = "spec.resources.requests.storage"
    stripped_before, stripped_after = _without_server_fields(before), _without_server_fields(after)
    for obj in (stripped_before, stripped_after):
        obj.get("spec", {}).get("resources", {}).get("requests", {}).pop("storage", None)
    difference = first_difference(stripped_before, stripped_after)
    if difference:
        raise target.unsupported(difference)
    requests = after.get("spec", {}).get("resources", {}).get("requests", {})
    size = _quantity(target, requests, "storage", "spec.resources.requests", cpu=False)
    if size is None:
        raise target.invalid(path, "Required value")
    old = before["spec"]["resources"]["requests"]["storage"]
    return None if size == parse_bytes(old) else int(size)
